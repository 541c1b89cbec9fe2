"""Where a map came from: the GeoTIFF tags and band descriptions hsad writes.

Every raster ``hsad detect`` (and :func:`hsad.pipeline.export`) writes carries dataset tags
``hsad_version``, ``hsad_method``, ``hsad_params`` (JSON), ``hsad_input``, ``hsad_model``
(when applied from a saved model), ``hsad_window`` and ``hsad_window_of`` (a spatial
subset's ``-srcwin`` on the input, and the input's columns and rows, :mod:`hsad.subset`),
``hsad_created`` (UTC, ISO 8601) and ``hsad_map``, and a
band description naming the map and its unit (:data:`MAP_DESCRIPTIONS`). ``hsad info``
prints them back.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

#: The order ``hsad info`` prints the tags in (others follow, sorted).
ORDER = ("hsad_version", "hsad_method", "hsad_map", "band", "hsad_params", "hsad_input",
         "hsad_window", "hsad_window_of", "hsad_model", "hsad_created", "hsad_threshold",
         "hsad_threshold_rule")
#: Hyperparameters that only say how to run, not what was computed: not recorded.
RUNTIME = ("device", "progress")

#: Band description of each map hsad writes: what it is and its unit.
MAP_DESCRIPTIONS = {
    "score": "anomaly score of {method} (higher = more anomalous)",
    "mask": "anomaly mask of {method}: 1 anomaly, 0 background, 255 nodata",
    "d_spectral": "D_spectral: RX of the reconstruction residual, squared Mahalanobis "
                  "distance (unitless, about the band count on background)",
    "d_spatial": "D_spatial: attribute-filter response of the principal components "
                 "(unitless, in PC standard deviations)",
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
    "d_spatial": "D_spatial, in PC standard deviations",
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
    model's own score term); ``fusion`` (a resolved :class:`hsad.fusion.Fusion`) puts the
    D_SS map's own λ, spectral term and normalisation in."""
    if name == "d_ss" and fusion is not None:
        term = "T(D_spectral), T = area top-hat" if fusion.spectral_tophat else "D_spectral"
        scaling = "min-max" if fusion.norm == "minmax" else "rank (average ranks / n)"
        lam = float(fusion.lam)
        return (f"D_SS = {lam:g}*N(D_spatial) + {1 - lam:g}*N({term}), N = {scaling} to "
                "0..1 (unitless, 0..1)")
    text = MAP_DESCRIPTIONS.get(name, f"{name}: score term of {{method}}")
    return text.format(method=method)


def provenance(detector, cube, what: str, model=None) -> dict[str, str]:
    """The ``hsad_*`` tags of map ``what`` computed by ``detector`` from ``cube``."""
    from hsad import __version__
    from hsad.io import printable
    from hsad.io.window import window_tags

    params = {k: v for k, v in detector.get_params().items() if k not in RUNTIME}
    source = cube.attrs.get("source_path") or cube.attrs.get("header_path")
    tags = {
        "hsad_version": __version__,
        "hsad_method": detector.name,
        "hsad_params": json.dumps(params, sort_keys=True, default=str),
        # a name that is not UTF-8 (Latin-1 from an old share) with its odd bytes as \xfc:
        # GDAL's UTF-8 tags cannot hold them raw
        "hsad_input": printable(Path(source).resolve()) if source else "",
        "hsad_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hsad_map": what,
    }
    tags.update(window_tags(cube))  # -srcwin xoff yoff xsize ysize of the input, its size
    if model is not None:
        tags["hsad_model"] = printable(Path(model).resolve())
    return tags


def read_provenance(path) -> dict[str, str]:
    """The ``hsad_*`` tags of a GeoTIFF and its band description (``band``), in
    :data:`ORDER` (empty if none)."""
    import rasterio

    from hsad.io.geotiff import quiet_gdal

    with quiet_gdal(), rasterio.open(path) as src:
        found = {k: v for k, v in src.tags().items() if k.startswith("hsad_")}
        if src.count == 1 and src.descriptions[0]:
            found["band"] = src.descriptions[0]
    first = [k for k in ORDER if k in found]
    return {k: found[k] for k in first + sorted(set(found) - set(first))}


__all__ = ["MAP_DESCRIPTIONS", "SCORE_UNITS", "describe_map", "provenance", "read_provenance",
           "score_label"]
