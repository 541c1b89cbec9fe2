"""``hsad detect``: run a detector on a scene and write the anomaly map and friends."""

from __future__ import annotations

import gc
import os
import warnings

import click

from hsad.cli.batch import (
    SceneSkipped,
    check_collisions,
    drop_stale_claim,
    not_done,
    resumed_summary,
    scene_claim,
    unfinished_record,
    without_maps,
)
from hsad.cli.detect_plan import (
    DETECTORS,
    READ,
    asked,
    config_of,
    detector_of,
    library_of,
    model_of,
    planned,
    selection_tag,
)
from hsad.cli.options import (
    QUIET,
    background_option,
    band_options,
    band_selection,
    check_agree,
    check_truth_key,
    chunks_option,
    device_option,
    echo,
    engine_options,
    fusion_option,
    key_option,
    labels_option,
    mask_options,
    overwrite_option,
    quiet_option,
    say,
    seed_option,
    subset_options,
    subset_selection,
)
from hsad.cli.outputs import FOLDERS_NOTE, plan_outputs
from hsad.config import parse_numbers
from hsad.engine.thresholds import DEFAULT_RULE, check_threshold
from hsad.errors import ParameterError
from hsad.outputs.provenance import SELECTION_ATTR


@click.command("detect", epilog=f"{FOLDERS_NOTE} Without --contamination, --far or "
               f"--threshold, the mask, polygons, spectra and quicklook use the default rule, "
               f"which needs no ground truth: {DEFAULT_RULE}.")
@click.argument("scenes", nargs=-1, required=True, type=click.Path(dir_okay=True),
                metavar="SCENE...")
@click.option("-m", "--method", help="Detector name (see `hsad methods`).")
@click.option("-c", "--config", "config_path", type=click.Path(),
              help="YAML/TOML file with method, params and threshold options.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Hyperparameter, repeatable (e.g. -p inner=5 -p outer=15).")
@click.option("--model", type=click.Path(), help="Apply a model saved by `hsad train`.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Score map GeoTIFF to write (.tif or .tiff), with a QGIS style (.qml) "
                   "beside it; --mask and --save-stages maps get one too.")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs.")
@click.option("--mask", "mask_path", type=click.Path(),
              help="Thresholded mask GeoTIFF (.tif or .tiff).")
@click.option("--contamination", type=float, help="Share of pixels flagged, in (0, 1).")
@click.option("--far", type=float,
              help="False-alarm rate on background, in (0, 1): the null distribution where "
                   "the detector has one (RX: χ²), else a robust log-normal fit of the scores.")
@click.option("--threshold", "value", type=float, help="Absolute score threshold.")
@click.option("--polygons", "polygons_path", type=click.Path(),
              help="Anomaly polygons: .gpkg in the scene's CRS, .geojson/.json in WGS 84 "
                   "longitude/latitude (RFC 7946).")
@click.option("--max-regions", "max_regions", type=click.IntRange(min=1), default=None,
              metavar="N",
              help="Most regions --polygons and --spectra may hold (default 100000): a mask "
                   "of more is refused before they are written.")
@click.option("--spectra", "spectra_path", type=click.Path(),
              help="Spectra of the detections (.csv table, or .sli ENVI spectral library "
                   "with a .hdr): each region's peak-pixel and mean spectrum (the ids of "
                   "--polygons), with the background's mean and standard deviation.")
@click.option("--spectra-png", "spectra_png", type=click.Path(),
              help="Picture (.png) of the detections' spectra: the mean spectrum of each of "
                   "the 8 regions of highest peak score, over the background's mean ± one "
                   "standard deviation.")
@click.option("--library", "library_path", type=click.Path(),
              help="Spectral library (ENVI .sli with its .hdr) to name the detections by: "
                   "each region's mean spectrum gets the library spectrum at the smallest "
                   "spectral angle (SAM), the library resampled to the scene's bands; adds "
                   "match, match_angle and second_angle to --spectra, and match and "
                   "match_angle to --polygons (reflectance scenes).")
@click.option("--png", "png_path", type=click.Path(),
              help="Quicklook PNG (.png): RGB composite and anomaly map, with the detections "
                   "(and --truth) outlined.")
@click.option("--rgb", metavar="R,G,B",
              help="Quicklook composite wavelengths in nm (default 640,550,460).")
@click.option("--rgb-bands", metavar="R,G,B",
              help="Quicklook composite bands by 0-based position in the file, as "
                   "--bands counts them (scenes without wavelengths).")
@click.option("--truth", type=click.Path(),
              help="Ground truth, to print the AUC: a mask (GeoTIFF, ENVI, MAT) or the "
                   "targets' polygons or points (GeoPackage, GeoJSON, Shapefile, KML, GML, "
                   "FlatGeobuf).")
@click.option("--truth-key", help="Ground-truth variable in a MAT file.")
@key_option
@click.option("--save-stages", "stages_dir", type=click.Path(file_okay=False),
              help="Folder for the stage maps of a reconstruction detector, as GeoTIFFs: "
                   "d_spectral.tif (RX of the residual, squared Mahalanobis distance), "
                   "d_spatial.tif (attribute-filter response) and d_ss.tif (fused, 0..1), "
                   "and one file per score term of the model (f-AnoGAN: anomaly.tif, "
                   "a_residual.tif, a_feature.tif; vae: kl.tif, reconstruction.tif; "
                   "`hsad methods NAME` lists them as output's choices). Units are in each "
                   "file's band description.")
@click.option("--stages-png", "stages_png", type=click.Path(),
              help="Picture (.png) of the --save-stages maps side by side with the RGB "
                   "composite (and --truth outlined), each map with its colour bar.")
@band_options
@subset_options
@mask_options
@background_option
@labels_option
@overwrite_option
@click.option("--skip-existing", is_flag=True,
              help="Skip a scene whose every output exists already, whole and made with "
                   "these settings (a batch of scenes resumed after an interrupt); not "
                   "with --overwrite.")
@fusion_option
@chunks_option
@seed_option
@device_option
@engine_options
@quiet_option
def command(scenes, **options):
    """Detect anomalies in SCENE (ENVI, GeoTIFF, MAT, EMIT netCDF, PRISMA .he5 or an EnMAP
    product) and write a georeferenced map.

    The scene is processed in tiles sized by --memory-limit, on the threaded scheduler or a
    dask.distributed cluster (--workers, --scheduler); maps are streamed into the GeoTIFFs.
    A --model reads the bands it was trained on from SCENE, by wavelength.

    Several scenes run one after another with the same settings (each fitted on itself, or
    scored by the one --model), when every output path holds {stem}, the scene's file name
    without its extension: -o out/{stem}_rx.tif. --truth, --valid-mask, --background and
    --labels may hold {stem} too. A scene that fails is reported and the others go on; the
    exit status is then 2. --skip-existing resumes a batch: scenes whose outputs all exist
    are skipped; a scene with some of them, one not whole or made with other settings, or
    whose --overwrite run stopped part-way, is named and left out.
    """
    from hsad.cli.batch import run_jobs, scene_jobs

    DETECTORS.clear()
    READ.clear()
    skip = options.pop("skip_existing")
    if skip and options["overwrite"]:
        raise ParameterError("give --skip-existing (keep the outputs there are) or "
                             "--overwrite (replace them), not both")
    if options.get("truth_key") is not None and not options.get("truth"):
        raise ParameterError("--truth-key names a variable of the --truth file: give --truth "
                             "too")  # as evaluate: refused, not ignored
    every = without_maps(scene_jobs(scenes, options))
    check_collisions(every)  # also between a scene done and one to do
    jobs, partial = not_done(every) if skip else (every, [])
    status = 2 if partial else 0
    skipped = len(every) - len(jobs) - len(partial)
    if not jobs:
        if partial and len(every) > 1:
            echo("0 scenes to run" + resumed_summary(skipped, partial))
        return status
    detect = _unless_done_meanwhile if skip else _detect_one
    if len(every) == 1:
        scene, filled = jobs[0]
        try:
            return detect(scene, **filled)
        except SceneSkipped as exc:
            say(f"skipped {scene}: {exc}")
            return 0
    _check_batch(jobs, every)  # the skipped scenes' inputs are inputs still
    return max(run_jobs(jobs, detect, skipped=skipped, left_out=partial) or 0, status)


def _unless_done_meanwhile(scene, **filled):
    """One scene of a resumed batch, claimed (:func:`hsad.cli.batch.scene_claim`) and
    looked at again when its turn comes: another run of the same batch (two overlapping
    cron jobs) may have made it meanwhile, or be making it now."""
    with scene_claim(filled["output"]) as mine:
        if not mine:
            raise SceneSkipped("another hsad run is making it", elsewhere=True)
        left, partial = not_done([(scene, filled)], quiet=True)
        if partial:
            raise ParameterError(partial[0])
        if not left:
            raise SceneSkipped("its outputs exist (made meanwhile by another run)")
        return _detect_one(scene, **filled)


def _check_batch(jobs: list[tuple[str, dict]], every: list[tuple[str, dict]]) -> None:
    """What would fail every scene, or one later on, fails before the first: the method and
    its parameters, every other option, and every scene's files to write (formats, existing
    files, folders, styles and other side files; none an input of any scene of the batch,
    ``every`` one, skipped or not)."""
    from hsad.cli.batch import batch_inputs
    from hsad.cli.outputs import KnownInputs

    detector_of(jobs[0][1])
    known = KnownInputs.of(batch_inputs(every))  # looked up once for the whole batch
    for scene, filled in jobs:
        filled["also_inputs"] = known  # each scene's plan keeps the others' inputs too
        _detect_one(scene, **filled, check_only=True)


def _truth_on(cube, truth, truth_key):
    """The ground truth of ``--truth`` on the scene's grid, checked before any detection:
    it has anomaly and background pixels (errors name the file, and its nodata value when
    that is what leaves a class out)."""
    from hsad.cube.placement import on_scene_grid
    from hsad.io.maps import read_truth
    from hsad.outputs.metrics import check_truth

    check_truth_key(truth, truth_key)
    values, raster = read_truth(truth, key=truth_key, grid=cube)
    gt = on_scene_grid(values, raster, cube, "ground truth", truth)
    try:
        check_truth(gt, nodata=None if raster is None else raster.attrs.get("nodata"))
    except ParameterError as exc:
        raise ParameterError(exc.problem, truth) from exc
    return gt


def _detect_one(scene, method, config_path, params, model, output, cog, mask_path,
                contamination, far, value, polygons_path, spectra_path, spectra_png,
                library_path, png_path, rgb, rgb_bands, truth, truth_key, key, stages_dir,
                stages_png, wavelengths, exclude_wavelengths, band_indices, drop_bad_bands,
                wavelength_file, srcwin, projwin, projwin_crs, nodata, valid_mask,
                exclude_quality, apply_scale, background, labels, overwrite, fusion, chunks,
                seed, device, memory_limit, workers, scheduler, precision, progress,
                max_regions=None,
                also_inputs=None, check_only=False):
    """One scene of ``hsad detect``. ``also_inputs``: the inputs of every scene of a batch
    (:class:`hsad.cli.outputs.KnownInputs`), which its outputs may not replace;
    ``check_only``: check the options and outputs, then return, before any reading."""
    import time

    import dask

    from hsad import engine, pipeline
    from hsad.cube.subset import current_window
    from hsad.engine.scheduler import (
        TileProgress,
        parse_memory,
        remote_scheduler,
        use_scheduler,
    )
    from hsad.io.quality import check_flags, parse_flags
    from hsad.outputs.polygons import MAX_REGIONS

    if remote_scheduler(scheduler):  # its workers read the inputs from their own folders
        scene, valid_mask, background, labels = (
            os.path.abspath(p) if p is not None and os.path.exists(p) else p
            for p in (scene, valid_mask, background, labels))
    cfg = config_of(config_path)
    method, merged, named = asked(method, params, cfg, config_path)
    check_agree(merged, seed=seed)
    if contamination is None and far is None and value is None:  # options beat the config
        contamination, far, value = (cfg.get(k) for k in ("contamination", "far", "threshold"))
        try:
            check_threshold(contamination, far, value)
        except ParameterError as exc:  # the config's numbers: the error names the file
            raise ParameterError(exc.problem, exc.path or config_path) from None
    check_threshold(contamination, far, value)
    if library_path and not (spectra_path or spectra_png):
        raise ParameterError("--library names the detections in the --spectra table or "
                             "picture: give --spectra or --spectra-png too", library_path)
    if stages_png and not stages_dir:
        raise ParameterError("--stages-png draws the maps --save-stages writes: give "
                             "--save-stages too", stages_png)
    quality = parse_flags(exclude_quality)  # a bad flag fails before any work
    check_flags(quality, scene)  # so does one of another source's
    bands = band_selection(wavelengths, exclude_wavelengths, band_indices, drop_bad_bands,
                           wavelength_file)
    subset = subset_selection(srcwin, projwin, projwin_crs)
    rgb = parse_numbers(rgb, "--rgb", float)
    rgb_bands = parse_numbers(rgb_bands, "--rgb-bands", int)
    settings = {"hsad.memory_limit": parse_memory(memory_limit)}
    # made here when its stage maps are planned, and then the one that runs (a model file
    # loaded once)
    made = pipeline.make_detector(method, merged, model=model, named=named,
                                  load=model_of) if stages_dir else None
    stage_names = () if made is None else pipeline.stage_names(made)
    plan = plan_outputs(
        planned({"output": output, "mask_path": mask_path, "stages_dir": stages_dir,
                  "stage_names": stage_names,
                  "polygons_path": polygons_path, "png_path": png_path,
                  "spectra_path": spectra_path, "spectra_png": spectra_png,
                  "stages_png": stages_png}),
        inputs=also_inputs or [scene, config_path, model, truth, background, valid_mask,
                               labels, library_path, wavelength_file],
        overwrite=overwrite, record=unfinished_record(output))
    if check_only:
        return None
    if precision:
        settings["hsad.precision"] = precision
    with plan, dask.config.set(settings), use_scheduler(scheduler, workers, memory_limit):
        cube = pipeline.prepare_cube(engine.open_tiled(scene, memory_limit, chunks=chunks,
                                                       key=key, subset=subset,
                                                       apply_scale=apply_scale),
                                     bands, nodata=nodata, valid_mask=valid_mask,
                                     exclude_quality=quality)
        cube.attrs[SELECTION_ATTR] = selection_tag(  # what --skip-existing compares
            {"key": key, "srcwin": srcwin, "projwin": projwin, "projwin_crs": projwin_crs,
             "band_indices": band_indices, "wavelengths": wavelengths,
             "exclude_wavelengths": exclude_wavelengths, "wavelength_file": wavelength_file,
             "drop_bad_bands": drop_bad_bands, "exclude_quality": exclude_quality,
             "apply_scale": apply_scale, "nodata": nodata, "valid_mask": valid_mask,
             "background": background})
        if png_path or stages_png:
            from hsad.outputs.quicklook import check_default_composite, file_positions
            from hsad.outputs.quicklook import rgb_bands as check_rgb

            if rgb_bands is not None:  # counted in the file, as --bands counts
                rgb_bands = file_positions(cube, rgb_bands)
            check_rgb(cube, rgb, rgb_bands)  # a bad --rgb fails before any work
            check_default_composite(cube, rgb, rgb_bands)
        library = None
        if library_path:  # read, and matched to the scene's bands, before any work
            from hsad.outputs.library_match import references

            library = library_of(library_path)
            references(cube, library)
        if polygons_path:
            from hsad.outputs.polygons import polygon_target, vector_crs

            polygon_target(polygons_path, vector_crs(cube))  # GeoJSON needs a CRS
        if made is None:
            made = pipeline.make_detector(method, merged, model=model, named=named,
                                          load=model_of)
        det = pipeline.apply_fusion(made, fusion, merged, named)
        pipeline.check_labels(det, labels, fitted=model is not None)
        given = set(det.get_params())
        training_bar = progress  # --progress: into a log too; --no-progress: none at all
        scored = det.score_params  # what a loaded model still takes (None: all)
        for name, val in (("seed", seed), ("device", device), ("progress", training_bar)):
            if val is None or name not in given or name in merged:
                continue
            if model is not None and scored is not None and name not in scored:
                if name == "seed" and val != det.get_params()[name]:
                    warnings.warn(f"--seed does not apply to this {det.name} model: its seed "
                                  "chose what it learnt at training; ignored", stacklevel=1)
                continue
            det.set_params(**{name: val})
        gt = _truth_on(cube, truth, truth_key) if truth else None

        t0 = time.perf_counter()
        # the objects that exist now (the libraries', the model) stay out of the cyclic
        # collector's full passes while the tiles run (0.6 → 0.3 s on a 2048² HADGAN run,
        # docs/performance.md benchmark 11)
        gc.freeze()
        try:
            with TileProgress(disable=None if progress is None else not progress):
                result = pipeline.run_detector(det, cube, fitted=model is not None,
                                               stages=stages_dir is not None, lazy=True,
                                               background=background, labels=labels)
            pipeline.export(result, cube, scores_path=output, cog=cog,
                            stages_dir=stages_dir, progress=progress, model=model)
        finally:
            gc.unfreeze()
        result.seconds = time.perf_counter() - t0
        if stages_dir is not None and not any(m.ndim == 2 for m in (result.stages or {}).values()):
            drawn = " and --stages-png draws nothing" if stages_png else ""
            warnings.warn(f"{det.name} has no stage maps: --save-stages wrote nothing{drawn} "
                          "(HADGAN and the reconstruction detectors have them)", stacklevel=1)
        if mask_path or polygons_path or spectra_path or spectra_png or png_path or any(
                v is not None for v in (contamination, far, value)):
            pipeline.threshold(result, contamination=contamination, far=far, value=value)
        written = pipeline.export(result, cube, mask_path=mask_path, cog=cog,
                                  polygons_path=polygons_path, spectra_path=spectra_path,
                                  spectra_png=spectra_png, stages_png=stages_png,
                                  library=library,
                                  png_path=png_path, truth=gt,
                                  model=model, rgb=rgb, rgb_positions=rgb_bands,
                                  max_regions=MAX_REGIONS if max_regions is None
                                  else max_regions)
        if gt is not None:
            from hsad.outputs.metrics import evaluate

            try:
                auc = evaluate(result.scores.values, gt)
            except ParameterError as exc:  # e.g. no anomaly pixel with a score: name it
                raise ParameterError(exc.problem, exc.path or truth) from exc
    drop_stale_claim(output)  # a killed --skip-existing run's, on a scene now made whole
    used = getattr(det, "n_bands_", None) or (int(sum(map(bool, det.bands_))) if getattr(
        det, "bands_", None) is not None else None)  # the bands scored, as train says
    of_model = f"the model's {result.n_bands} bands" + (
        f", {used} used" if model and used and used != result.n_bands else "")
    bands = f"x{result.n_bands}" if result.n_bands == cube.shape[2] else \
        f"x{cube.shape[2]} ({of_model})"
    window = current_window(cube)
    where = (f" (rows {window[0]}:{window[0] + cube.shape[0]}, columns "
             f"{window[1]}:{window[1] + cube.shape[1]} of {window[2]}x{window[3]})"
             if window is not None else "")
    say(f"{det.name}: scored {cube.shape[0]}x{cube.shape[1]}{bands}{where} "
        f"in {result.seconds:.2f} s")
    if result.mask is not None:
        n = int(result.mask.values.sum())
        say(f"threshold {result.mask.attrs['threshold']:.6g} "
            f"({result.mask.attrs['threshold_rule']}): {n} anomalous pixels")
    for what, path in written.items():
        say(f"wrote {what.replace(':', ' ')}: {path}")  # "stage:d_ss" as "stage d_ss"
    if gt is not None:
        named = f"{scene}: " if QUIET.get() else ""  # -q: no "scene 2/5" line names it
        echo(f"{named}AUC(D,F) = {auc['auc_df']:.4f}   "
                   f"AUC(F,tau) = {auc['auc_ft']:.4f}")
