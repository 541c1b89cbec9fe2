"""Where a map came from: the GeoTIFF tags and band descriptions hsad writes.

Every raster ``hsad detect`` (and :func:`hsad.pipeline.export`) writes carries dataset tags
``hsad_version``, ``hsad_method``, ``hsad_params`` (JSON), ``hsad_input``, ``hsad_model``
(when applied from a saved model), ``hsad_window`` and ``hsad_window_of`` (a spatial
subset's ``-srcwin`` on the input, and the input's columns and rows, :mod:`hsad.cube.subset`),
``hsad_created`` (UTC, ISO 8601), ``hsad_map``, ``hsad_code`` (:func:`code_digest`: which
code made it, where the version alone cannot tell) and, on a map the fusion stage made,
``hsad_fusion`` (its settings as resolved: the variant's defaults, the filters' areas), and a
band description naming the map and its unit (:data:`MAP_DESCRIPTIONS`). ``hsad info``
prints them back.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

#: The order ``hsad info`` prints the tags in (others follow, sorted).
ORDER = ("hsad_version", "hsad_code", "hsad_method", "hsad_map", "band", "hsad_params",
         "hsad_fusion", "hsad_input", "hsad_selection", "hsad_window", "hsad_window_of",
         "hsad_model",
         "hsad_created", "hsad_threshold", "hsad_threshold_rule")
#: the cube attribute holding the ``hsad_selection`` tag: the options of ``hsad detect``
#: that chose the data (window, bands, nodata…; ``hsad.cli.detect_plan.selection_tag``)
SELECTION_ATTR = "hsad_selection"
#: Hyperparameters that only say how to run, not what was computed: not recorded.
RUNTIME = ("device", "progress")

#: Band description of each map hsad writes: what it is and its unit.
MAP_DESCRIPTIONS = {
    "score": "anomaly score of {method} (higher = more anomalous)",
    "mask": "anomaly mask of {method}: 1 anomaly, 0 background, 255 nodata",
    "d_spectral": "D_spectral: RX of the reconstruction residual, squared Mahalanobis "
                  "distance (unitless, about the band count on background)",
    "d_spatial": "D_spatial: attribute-filter responses of the principal components, "
                 "summed (unitless: each a fraction of its component's grey-level range)",
    "d_ss": "D_SS = lam*N(D_spatial) + (1-lam)*N(S), S = D_spectral or its area top-hat, "
            "N = min-max or rank to 0..1 (unitless, 0..1)",
    "anomaly": "f-AnoGAN anomaly score A(x) = residual + kappa*feature (normalised units)",
    "a_residual": "f-AnoGAN residual term, mean squared error (normalised units)",
    "a_feature": "f-AnoGAN critic feature term, mean squared error (critic feature units)",
}


#: The short unit of a score map for a colour bar, by the map a detector outputs (its
#: ``output_``) or by the detector.
SCORE_UNITS = {
    "d_ss": "D_SS, unitless 0..1",
    "d_spectral": "D_spectral, squared Mahalanobis distance",
    "d_spatial": "D_spatial, fractions of grey-level ranges",
    "rx": "squared Mahalanobis distance",
    "lrx": "squared Mahalanobis distance to the local background",
    "local-mean-rx": "squared Mahalanobis distance",
    "cluster-rx": "squared Mahalanobis distance to the nearest cluster",
}


def score_label(detector) -> str:
    """The colour bar's label of ``detector``'s score map: its name and, where known, the
    map's unit (:data:`SCORE_UNITS`)."""
    output = getattr(detector, "output_", None)
    unit = SCORE_UNITS.get(output) or SCORE_UNITS.get(detector.name)
    return f"{detector.name} score" + (f" ({unit})" if unit else "")


def describe_map(name: str, method: str, fusion=None) -> str:
    """The band description of map ``name`` (a key of :data:`MAP_DESCRIPTIONS`, or a
    model's own score term; ``score`` with its unit where :data:`SCORE_UNITS` knows the
    ``method``'s: a model's score map is described as its output map); ``fusion`` (a
    resolved :class:`hsad.fusion.Fusion`) puts the D_SS map's own λ, spectral term and
    normalisation in."""
    if name == "d_ss" and fusion is not None:
        term = "T(D_spectral), T = area top-hat" if fusion.spectral_tophat else "D_spectral"
        scaling = "min-max" if fusion.norm == "minmax" else "rank (average ranks / n)"
        lam = float(fusion.lam)
        return (f"D_SS = {lam:g}*N(D_spatial) + {1 - lam:g}*N({term}), N = {scaling} to "
                "0..1 (unitless, 0..1)")
    if name == "d_spatial" and fusion is not None and fusion.variant == "paper":
        return (f"D_spatial: attribute-filter responses of the {int(fusion.n_components)} "
                "lowest-energy residual bands, averaged and self-guided (unitless: a "
                "fraction of each band's grey-level range)")
    if name == "score" and method in SCORE_UNITS:
        return f"anomaly score of {method} ({SCORE_UNITS[method]}; higher = more anomalous)"
    text = MAP_DESCRIPTIONS.get(name, f"{name}: score term of {{method}} (in the model's "
                                      "own units, docs/seed_models.md)")
    return text.format(method=method)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """The first 12 hex digits of a SHA-256 over hsad's own source (its Python files and the
    command line's, by path): the version number says which release, this says which code,
    so maps, model files and benchmark rows made by different code tell apart."""
    import hsad
    import hsad.cli
    import hsad.data_manifests

    digest = hashlib.sha256()
    # by their installed paths: a checkout maps cli/ and data_manifests/ into the package
    roots = {Path(hsad.__file__).parent: "hsad", Path(hsad.cli.__file__).parent: "hsad/cli",
             Path(hsad.data_manifests.__file__).parent: "hsad/data_manifests"}
    files = {}
    for root, prefix in roots.items():
        for f in root.rglob("*.py"):
            files.setdefault(f"{prefix}/{f.relative_to(root).as_posix()}", f)
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return digest.hexdigest()[:12]


#: the maps the fusion stage makes (a detector's ``score`` and ``mask`` when its output is one)
FUSED_MAPS = ("d_ss", "d_spatial")


def fusion_settings(detector, cube, what: str) -> dict | None:
    """The fusion stage's settings as map ``what`` was made with them (the variant's
    defaults filled in, the filters' areas), for a map the fusion stage made; else None."""
    fusion_of = getattr(detector, "fusion_", None)
    fused = what in FUSED_MAPS or (what in ("score", "mask")
                                   and getattr(detector, "output_", None) in FUSED_MAPS)
    if not callable(fusion_of) or not fused:
        return None
    fusion = fusion_of(cube).resolved()
    settings = {k: v for k, v in asdict(fusion).items() if k != "model_format"}
    return settings | {"areas": list(fusion.areas())}


def provenance(detector, cube, what: str, model=None) -> dict[str, str]:
    """The ``hsad_*`` tags of map ``what`` computed by ``detector`` from ``cube``."""
    from hsad import __version__
    from hsad.io import printable
    from hsad.io.window import window_tags

    params = {k: v for k, v in detector.get_params().items() if k not in RUNTIME}
    source = cube.attrs.get("source_path") or cube.attrs.get("header_path")
    tags = {
        "hsad_version": __version__,
        "hsad_code": code_digest(),
        "hsad_method": detector.name,
        "hsad_params": json.dumps(params, sort_keys=True, default=str),
        # a name that is not UTF-8 (Latin-1 from an old share) with its odd bytes as \xfc:
        # GDAL's UTF-8 tags cannot hold them raw
        "hsad_input": printable(Path(source).resolve()) if source else "",
        "hsad_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hsad_map": what,
    }
    fusion = fusion_settings(detector, cube, what)
    if fusion is not None:  # hsad_params' None values as they were resolved for this map
        tags["hsad_fusion"] = json.dumps(fusion, sort_keys=True)
    if cube.attrs.get(SELECTION_ATTR):  # the command's options choosing the data
        tags["hsad_selection"] = str(cube.attrs[SELECTION_ATTR])
    tags.update(window_tags(cube))  # -srcwin xoff yoff xsize ysize of the input, its size
    if model is not None:
        tags["hsad_model"] = printable(Path(model).resolve())
    return tags


def read_provenance(path) -> dict[str, str]:
    """The ``hsad_*`` tags of a GeoTIFF and its band description (``band``), in
    :data:`ORDER` (empty if none)."""
    import rasterio

    from hsad.io.gdal_checks import quiet_gdal

    with quiet_gdal(), rasterio.open(path) as src:
        found = {k: v for k, v in src.tags().items() if k.startswith("hsad_")}
        if src.count == 1 and src.descriptions[0]:
            found["band"] = src.descriptions[0]
    first = [k for k in ORDER if k in found]
    return {k: found[k] for k in first + sorted(set(found) - set(first))}


__all__ = ["FUSED_MAPS", "MAP_DESCRIPTIONS", "SCORE_UNITS", "code_digest", "describe_map",
           "fusion_settings", "provenance", "read_provenance", "score_label"]
