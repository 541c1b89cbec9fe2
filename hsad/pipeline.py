"""Scene → detector → exports: the work behind ``hsad detect`` and ``hsad demo``."""

from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from hsad import detectors
from hsad.detectors.base import BaseDetector
from hsad.errors import DegenerateDataWarning, ParameterError


def style_files(paths) -> list[Path]:
    """The QGIS styles :func:`export` writes beside the rasters ``paths`` (None skipped)."""
    from hsad.outputs.qgis_style import style_path

    return [style_path(p) for p in paths if p]


@dataclass
class Detection:
    """A finished detection: the score map, the fitted detector and what was written."""

    scores: xr.DataArray
    detector: BaseDetector
    seconds: float
    stages: dict[str, xr.DataArray] = field(default_factory=dict)
    mask: xr.DataArray | None = None
    written: dict[str, Path] = field(default_factory=dict)
    metrics: dict | None = None
    n_bands: int | None = None  # bands scored (a saved model's, read from a wider scene)


def make_detector(method: str | None = None, params: dict | None = None,
                  model: str | Path | None = None, named: dict | None = None,
                  load=None) -> BaseDetector:
    """A detector by registry name and hyperparameters, or a fitted one from a saved model.
    ``named``: how errors name where the ``method`` and the ``params`` came from (default
    ``-m`` and ``--param``; a config file's keys). ``load``: what reads the ``model`` file
    (default :func:`hsad.io.model_archive.load_model`; a command reads it once)."""
    named = {"method": "-m", "params": "--param", **(named or {})}
    if model is not None:
        from hsad.io.model_archive import load_model

        detector = (load or load_model)(model)
        if method is not None and str(method).strip().lower() != detector.name:
            raise ParameterError(f"the model holds a {detector.name} detector, not {method}: "
                                 f"drop {named['method']} (a model carries its own method)",
                                 model)
        return _with_score_params(detector, params or {}, named) if params else detector
    if method is None:
        raise ParameterError("no method given (use -m NAME, a config file, or --model)")
    try:
        detector = detectors.get(method, **(params or {}))
        detector.check_params()  # every check that needs no scene, before any is read
    except ParameterError as exc:
        raise _named(exc, params or {}, named) from None
    return detector


def _with_score_params(detector: BaseDetector, params: dict, named: dict) -> BaseDetector:
    """A saved model with settings read when scoring (its ``score_params``: HADGAN's
    ``lam``, ``output``, the fusion stage), as ``set_params`` on a loaded model gives them
    in Python; a parameter that shaped the fit is refused, never ignored: it needs
    training again."""
    unknown = set(params) - set(detector.get_params())
    if unknown:  # a typo is named as such, as without --model (set_params refuses the
        try:  # first unknown name before it sets anything)
            detector.set_params(**{k: params[k] for k in sorted(unknown)})
        except ParameterError as exc:
            raise _named(exc, params, named) from None
    if detector.score_params is None:  # a plugin that does not say: as set_params takes it
        allowed = frozenset(params)
    else:
        allowed = detector.score_params
    fixed = sorted(set(params) - allowed)
    if fixed:
        scoring = (f"; beside a model only its scoring settings can be given "
                   f"({', '.join(sorted(allowed - {'progress'}))})") if allowed else ""
        raise ParameterError(f"--model carries its own method and the parameters it was "
                             f"fitted with ({', '.join(fixed)}); drop {named['params']} (set "
                             f"them when training: hsad train -p KEY=VALUE){scoring}")
    try:
        detector.set_params(**params)
        detector.check_params()
    except ParameterError as exc:
        raise _named(exc, params, named) from None
    return detector


def _named(exc: ParameterError, params: dict, named: dict) -> ParameterError:
    """``exc`` naming where the parameter it is about came from (``named[key]``: a
    config file's key, ``-p KEY=VALUE``), and which option chose the method when the
    config's ``params`` meet another method (``-m rx`` over a config of ``lrx``): a
    config's ``inner: abc`` had been "lrx: inner must be an integer" alone."""
    if exc.path is not None:
        return exc
    keys = [k for k in params if k in named
            and re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", exc.problem)]
    if not keys:
        return exc
    where = "; ".join(named[k] for k in keys)  # every one the message names
    if "config" in where and "over the config" in named.get("method", ""):
        where += f", with the method of {named['method']}"
    return ParameterError(f"{exc.problem} ({where})")


def prepare_cube(cube: xr.DataArray, bands: dict | None = None, nodata: float | None = None,
                 valid_mask=None, exclude_quality=None) -> xr.DataArray:
    """The part of ``cube`` to analyse, lazily: the bands chosen by ``bands``
    (:func:`hsad.select_bands` keywords), ``nodata`` replacing the header's (in the file's
    stored units, also where its scale was applied: ``--nodata -9999 --apply-scale``), and
    the pixels outside ``valid_mask`` set to nodata (:mod:`hsad.cube.nodata`); for an EnMAP
    product or a NEON file, also those its quality layers flag with one of
    ``exclude_quality`` (flag names, or their comma-separated list; ``()`` or ``"none"``:
    none, without the cloud-cover warning that None gives, :mod:`hsad.io.quality`)."""
    from hsad.cube.bands import select_bands
    from hsad.cube.nodata import apply_valid_mask, set_nodata, valid_pixels
    from hsad.io.quality import parse_flags, quality_valid, warn_cover

    if isinstance(exclude_quality, str):
        exclude_quality = parse_flags(exclude_quality)
    elif exclude_quality is not None:  # flags as a sequence: read as the option's text
        exclude_quality = parse_flags(",".join(exclude_quality)) if exclude_quality else ()
    if nodata is not None and cube.attrs.get("scale_applied"):  # in the file's units
        from hsad.io.physical_units import scaled_nodata

        nodata = scaled_nodata(cube, float(nodata))
    cube = set_nodata(select_bands(cube, **(bands or {})), nodata)
    valid = valid_pixels(cube, valid_mask)
    if exclude_quality is None:
        warn_cover(cube, valid)
    elif (clear := quality_valid(cube, exclude_quality)) is not None:
        valid = clear if valid is None else valid & clear  # one mask, applied once
        if not valid.any():
            raise ParameterError(f"--exclude-quality {','.join(exclude_quality)}"
                                 f"{' with the valid mask' if valid_mask is not None else ''}"
                                 " excludes every pixel of the scene",
                                 cube.attrs.get("source_path"))
    return apply_valid_mask(cube, valid)


def apply_fusion(detector: BaseDetector, mode: str | None, params: dict | None = None,
                 named: dict | None = None) -> BaseDetector:
    """``--fusion`` on a reconstruction detector: ``none``, ``dss`` or a variant's name
    (``multiscale``, ``aed``, ``paper``; ``None`` leaves it as it is). ``params``: the
    ``-p`` (and config) values given beside it; a valid ``output`` or ``fusion`` that names
    another map than ``--fusion`` is refused, as ``-p seed=`` beside another ``--seed``
    (an invalid one first by the detector's own check, which names what it takes);
    ``named[key]``: how the error names the value and where it came from (default
    ``-p key=value``)."""
    if mode is None:
        return detector
    if not callable(getattr(detector, "set_fusion", None)):
        raise ParameterError(f"--fusion applies to the reconstruction detectors (hadgan, "
                             f"fanogan, the autoencoder and GAN seed models), not "
                             f"{detector.name}")
    if {"output", "fusion"} & set(params or {}):
        detector.check_params()  # an invalid value: the detector's own error, naming it
    detector.set_fusion(mode)
    now = detector.get_params()
    for name in ("output", "fusion"):
        if name in (params or {}) and str(params[name]) != str(now[name]):
            where = (named or {}).get(name, f"-p {name}={params[name]}")
            raise ParameterError(f"{where} and --fusion {mode} disagree: give one")
    return detector


def stage_names(detector: BaseDetector) -> tuple[str, ...]:
    """The maps ``--save-stages`` writes for ``detector``: a staged detector's outputs
    (HADGAN's D_spectral, D_spatial, D_SS; a reconstruction model's own score terms too)
    but one named ``score`` (VAE's plain score: that name is the output map's, in ``-o``),
    none for a detector without stages."""
    if not hasattr(detector, "score_stages"):
        return ()
    return tuple(name for name in getattr(detector, "outputs", ()) if name != "score")


def stage_path(folder, name: str) -> Path:
    """Where ``export`` writes stage ``name`` in ``folder``."""
    return Path(folder) / f"{name}.tif"


def uses_labels(detector: BaseDetector) -> bool:
    """Whether ``detector.fit`` learns from labelled anomaly pixels (``labels=``: CAVGA)."""
    import inspect

    return "labels" in inspect.signature(detector.fit).parameters


def check_labels(detector: BaseDetector, labels, fitted: bool = False) -> None:
    """Refuse ``--labels`` for a detector that does not learn from them, or a saved model."""
    if labels is None:
        return
    if fitted:
        raise ParameterError("--labels applies when fitting; a saved model keeps what it "
                             "learnt from its labels")
    if not uses_labels(detector):
        raise ParameterError(f"--labels applies to detectors that learn from labelled "
                             f"anomalies (cavga), not {detector.name}")


def run_detector(detector: BaseDetector, cube: xr.DataArray, fitted: bool = False,
                 stages: bool = False, lazy: bool = False, background=None,
                 labels=None) -> Detection:
    """Fit (unless ``fitted``) and score ``cube``, timing both; collect stages if asked.

    ``background`` (a mask, polygons or their file, :mod:`hsad.cube.background`) is the area the
    detector's statistics come from; refused for a fitted model and local detectors. A
    ``fitted`` model reads its own bands from ``cube``, by wavelength when the cube has more
    (:func:`hsad.cube.model_bands.match_model_bands`).

    ``lazy`` leaves dask-backed maps uncomputed: :func:`export` then streams them tile by
    tile into their GeoTIFFs (hsad.engine) and reads the score map back from its file.

    ``labels`` (a raster on the scene's grid or a (y, x) array, non-zero = anomaly) goes to
    a detector that learns from labelled anomalies (:func:`uses_labels`).
    """
    from hsad.cube.background import fit_detector

    check_labels(detector, labels, fitted)
    if fitted and background is not None:
        raise ParameterError("--background applies when fitting; a saved model keeps the "
                             "background it was trained on")
    t0 = time.perf_counter()
    if fitted:
        from hsad.cube.model_bands import match_model_bands

        cube = match_model_bands(cube, detector)
    else:
        if callable(check := getattr(detector, "check_scorable", None)):
            check(cube)  # before the fit: what scoring this cube would refuse after it
        if labels is not None:
            detector.fit(cube, background=background, labels=labels)
        else:
            fit_detector(detector, cube, background)
    if stages and hasattr(detector, "score_stages"):
        stage_maps = detector.score_stages(cube)
        scores = stage_maps["score"]
        stage_maps = {k: v for k, v in stage_maps.items() if k != "score"}
    else:
        scores, stage_maps = detector.score(cube), {}
    if not lazy:
        scores = scores.compute() if hasattr(scores.data, "dask") else scores
    return Detection(scores, detector, time.perf_counter() - t0, stage_maps,
                     n_bands=int(cube.shape[2]))


def quicklook_title(det: Detection, cube, rule: bool = True) -> str:
    """``rx on abu-urban-1; detections: contamination 0.01 (score quantile)``: the method,
    the scene's file name and (``rule``: a picture that draws the mask) the rule of the
    mask drawn."""
    source = cube.attrs.get("source_path")
    title = det.detector.name + (f" on {Path(source).stem}" if source else "")
    rule = None if det.mask is None or not rule else det.mask.attrs.get("threshold_rule")
    return title + (f"; detections: {rule.split(' (median')[0]}" if rule else "")


def threshold(det: Detection, contamination: float | None = None, far: float | None = None,
              value: float | None = None) -> xr.DataArray:
    """Store and return the anomaly mask: by the criterion given, else by the default rule
    that needs no ground truth (:data:`hsad.engine.thresholds.DEFAULT_RULE`)."""
    det.mask = det.detector.threshold(det.scores, contamination=contamination, far=far,
                                      value=value)
    return det.mask


def warn_constant(path, scores: xr.DataArray, method: str, values: np.ndarray) -> None:
    """Warn when the score map written to ``path`` holds one value wherever it has data: it
    ranks nothing (a network's attention zero everywhere, say). ``values``, its decimated
    sample read for the style (:func:`hsad.outputs.qgis_style.sampled_values`), tells
    first; only a sample of one value costs a pass over the map."""
    from hsad.engine import minmax

    if not values.size or values.min() != values.max():
        return
    import dask.array as da

    data = scores.data if hasattr(scores.data, "dask") else da.asarray(scores.data)
    (lo, hi), = minmax(data)
    if lo == hi:
        warnings.warn(f"{os.fspath(path)}: {method}'s score map is {lo:g} at every pixel with "
                      "data: it ranks no pixel above another (try another detector, or "
                      "another output: -p output=…)", DegenerateDataWarning, stacklevel=2)


def export(det: Detection, cube: xr.DataArray, *, scores_path=None, cog: bool = False,
           mask_path=None, polygons_path=None, spectra_path=None, spectra_png=None,
           stages_png=None, library=None, png_path=None, stages_dir=None,
           truth: np.ndarray | None = None, progress: bool | None = False, model=None, rgb=None,
           rgb_positions=None, max_regions: int | None = 100_000) -> dict[str, Path]:
    """Write whichever outputs are asked for; every writer is atomic.

    Maps are streamed tile by tile (``progress``: a bar over the tiles). A lazy score map
    is replaced by a lazy view of its written file, so thresholds never recompute it. Every
    raster carries provenance tags and a band description (:mod:`hsad.outputs.provenance`;
    ``model``: the saved model applied), and each score raster a QGIS style beside it
    (:mod:`hsad.outputs.qgis_style`). The mask, polygons, spectra
    (:mod:`hsad.outputs.spectra`; ``library``: a spectral library to name each region by,
    :mod:`hsad.outputs.library_match`, in the spectra and the polygons; ``spectra_png``:
    their picture, :mod:`hsad.outputs.spectra_plot`) and quicklook use
    the stored mask, else the default threshold rule. ``rgb``/``rgb_positions``: the
    quicklook's wavelengths (nm) or band positions. ``stages_png``: the stage maps written
    (to ``stages_dir``, in this call or an earlier one) drawn side by side with the
    composite, ``truth`` outlined. ``max_regions``: the most regions the polygons and
    spectra may hold (:data:`hsad.outputs.polygons.MAX_REGIONS`; None: no limit), checked
    before the mask and they are written.
    """
    import dask

    from hsad.engine import read_map, write_map
    from hsad.io.geotiff_writer import write_mask
    from hsad.io.glt import glt_of
    from hsad.outputs.provenance import MAP_DESCRIPTIONS, describe_map, provenance
    from hsad.outputs.qgis_style import sampled_values, write_style

    method = det.detector.name
    out = det.written
    if glt_of(cube) is not None:  # maps go onto the GLT's grid whole (hsad.io.glt): once
        det.scores, *stages = dask.compute(det.scores, *det.stages.values())
        det.stages = dict(zip(det.stages, stages, strict=True))

    def write_raster(map_, path, what) -> np.ndarray:
        """Write the map and its style; return the decimated sample the style was made of."""
        fusion = None  # the fused maps' own settings, described (their area is not needed)
        output = getattr(det.detector, "output_", None)  # a model's score: its output map
        name = output if what == "score" and output in MAP_DESCRIPTIONS else what
        if name in ("d_ss", "d_spatial") and callable(getattr(det.detector, "fusion_", None)):
            fusion = det.detector.fusion_(cube)
        write_map(map_, path, like=cube, cog=cog, progress=progress,
                  tags=provenance(det.detector, cube, what, model),
                  description=describe_map(name, method, fusion))
        values = sampled_values(path)
        out["style" if what == "score" else f"style:{what}"] = write_style(path, values=values)
        return values

    if scores_path:
        out["scores"] = Path(scores_path)
        sample = write_raster(det.scores, scores_path, "score")
        if hasattr(det.scores.data, "dask"):
            attrs = dict(det.scores.attrs)
            det.scores = read_map(scores_path, cube)
            det.scores.attrs.update(attrs)
        warn_constant(scores_path, det.scores, method, sample)
    if stages_dir and det.stages:
        for name, stage in det.stages.items():
            if stage.ndim == 2:
                target = stage_path(stages_dir, name)
                write_raster(stage, target, name)
                out[f"stage:{name}"] = target
    if (mask_path or polygons_path or spectra_path or spectra_png or png_path) and \
            det.mask is None:
        threshold(det)
    if polygons_path or spectra_path or spectra_png:  # refused before any of them is written
        from hsad.outputs.polygons import check_region_count, count_regions

        check_region_count(count_regions(det.mask), max_regions,
                           polygons_path or spectra_path or spectra_png)
    if mask_path:
        tags = provenance(det.detector, cube, "mask", model)
        # every digit (float64 round trip): `score >= tag` in any tool gives this mask
        tags.update(hsad_threshold=repr(float(det.mask.attrs["threshold"])),
                    hsad_threshold_rule=det.mask.attrs["threshold_rule"])
        # pixels without a score (no data) are nodata (255) in the mask, not background
        write_mask(det.mask, mask_path, like=cube, valid=np.isfinite(det.scores), cog=cog,
                   tags=tags, description=describe_map("mask", method))
        out["mask"] = Path(mask_path)
        out["style:mask"] = write_style(mask_path, "mask")
    found = None
    if spectra_path or spectra_png:
        from hsad.outputs.spectra import region_spectra, write_spectra

        found = region_spectra(cube, det.mask, det.scores)
        if library is not None:
            from hsad.outputs.library_match import match_library

            found = match_library(found, library)
        if spectra_path:
            out["spectra"] = write_spectra(found, spectra_path)
        if spectra_png:
            from hsad.outputs.spectra_plot import plot_spectra

            plot_spectra(found, spectra_png, title=quicklook_title(det, cube))
            out["spectra_png"] = Path(spectra_png)
    if polygons_path:
        from hsad.outputs.polygons import regions, vector_crs, write_regions

        _say_frame(cube, polygons_path)
        # the mask's own frame, as regions() traces it (the cube's GCPs or RPCs, carried)
        geoms, props = regions(det.mask, scores=det.scores)
        if found is not None and "match" in found:  # the same regions, the same ids
            props.update(match=found["match"].values.astype(str),
                         match_angle=found["match_angle"].values)
        write_regions(geoms, props, polygons_path, crs=vector_crs(det.mask), with_scores=True)
        out["polygons"] = Path(polygons_path)
    if png_path:
        from hsad.outputs.plots import quicklook
        from hsad.outputs.provenance import score_label

        quicklook(cube, det.scores, truth=truth, detections=det.mask, path=png_path, rgb=rgb,
                  rgb_positions=rgb_positions, title=quicklook_title(det, cube),
                  score_label=score_label(det.detector))
        out["png"] = Path(png_path)
    if stages_png:
        _draw_stages(det, cube, stages_png, truth, rgb, rgb_positions)
    return out


def _say_frame(cube, polygons_path) -> None:
    """Warn when the polygons of a window of a scene without georeference, written in the
    window's own pixel frame (where QGIS draws its maps), would be read back in another
    frame: polygons for such a window are read in the frame of the file it was cut from
    (``hsad.io.window.FRAME_ATTR``), so they cannot be given back as they are."""
    from hsad.cube import georeferenced, transform_of
    from hsad.cube.subset import current_window, recorded_frame
    from hsad.outputs.polygons import vector_crs

    window = current_window(cube)
    if window is None or georeferenced(transform_of(cube), cube.rio.crs):
        return
    if cube.rio.crs is None and vector_crs(cube) is not None:  # GCPs, RPCs, a GLT: on the
        return  # ground, where the polygons of a window of it lie too
    frame = recorded_frame(cube.attrs) or (0, 0)
    rows, cols = window[0] - frame[0], window[1] - frame[1]
    if rows or cols:
        source = "whole scene" if frame[:2] == (0, 0) else "file the window was cut from"
        warnings.warn(f"{polygons_path}: the polygons lie in this window's own pixel frame, "
                      "where QGIS draws its maps; polygons for a window of this scene "
                      f"(--truth, --background) are read in the frame of the {source}, "
                      f"{rows} rows and {cols} columns away: give the mask back instead "
                      "(--mask)", UserWarning, stacklevel=3)


def _draw_stages(det: Detection, cube, path, truth, rgb, rgb_positions) -> None:
    """The stage maps :func:`export` wrote, read back from their files, drawn side by
    side with the RGB composite, each titled with its AUC(D,F) when ``truth`` is given
    (nothing when it wrote none: its caller says so). A scene placed by a lookup table
    (EMIT) is drawn in its instrument geometry, as its quicklook is: from the maps in
    memory, not from the files on the table's grid."""
    from hsad.engine import read_map
    from hsad.io.glt import glt_of
    from hsad.outputs.plots import quicklook
    from hsad.outputs.provenance import SCORE_UNITS

    written = {key.removeprefix("stage:"): file for key, file in det.written.items()
               if key.startswith("stage:")}
    if not written:
        return
    maps = ({name: det.stages[name] for name in written} if glt_of(cube) is not None else
            {name: read_map(file, cube) for name, file in written.items()})
    labels = {name: SCORE_UNITS.get(name, name) for name in maps}
    if truth is not None:  # each stage judged on its own: what each part of the score adds
        from hsad.outputs.metrics import evaluate

        titles = {}
        for name, m in maps.items():
            try:
                titles[name] = f"{name}: AUC(D,F) {evaluate(m.values, truth)['auc_df']:.4f}"
            except ParameterError:  # no anomaly pixel with a score there: no AUC to give
                titles[name] = name
        maps = {titles[name]: m for name, m in maps.items()}
        labels = {titles[name]: label for name, label in labels.items()}
    quicklook(cube, maps, truth=truth, path=path, rgb=rgb, rgb_positions=rgb_positions,
              title=f"{quicklook_title(det, cube, rule=False)}: the stage maps",
              score_label=labels)
    det.written["stages_png"] = Path(path)


__all__ = [
    "apply_fusion", "check_labels", "Detection", "export", "make_detector", "prepare_cube",
    "quicklook_title", "run_detector", "stage_names", "stage_path", "style_files",
    "threshold", "uses_labels", "warn_constant"
]
