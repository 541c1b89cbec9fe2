"""Scene → detector → exports: the work behind ``hsad detect`` and ``hsad demo``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from hsad import detectors
from hsad.detectors.base import BaseDetector
from hsad.errors import ParameterError


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


def make_detector(method: str | None = None, params: dict | None = None,
                  model: str | Path | None = None) -> BaseDetector:
    """A detector by registry name and hyperparameters, or a fitted one from a saved model."""
    if model is not None:
        if method is not None and params:
            raise ParameterError("--model carries its own method and parameters; drop --param")
        from hsad.nn.persistence import load_detector

        return load_detector(model)
    if method is None:
        raise ParameterError("no method given (use -m NAME, a config file, or --model)")
    return detectors.get(method, **(params or {}))


def run_detector(detector: BaseDetector, cube: xr.DataArray, fitted: bool = False,
                 stages: bool = False) -> Detection:
    """Fit (unless ``fitted``) and score ``cube``, timing both; collect stages if asked."""
    t0 = time.perf_counter()
    if not fitted:
        detector.fit(cube)
    if stages and hasattr(detector, "score_stages"):
        stage_maps = detector.score_stages(cube)
        scores = stage_maps["score"]
        stage_maps = {k: v for k, v in stage_maps.items() if k != "score"}
    else:
        scores, stage_maps = detector.score(cube), {}
    scores = scores.compute() if hasattr(scores.data, "dask") else scores
    return Detection(scores, detector, time.perf_counter() - t0, stage_maps)


def threshold(det: Detection, contamination: float | None = None, far: float | None = None,
              value: float | None = None) -> xr.DataArray | None:
    """Store and return the anomaly mask when a threshold criterion is given."""
    if contamination is None and far is None and value is None:
        return None
    det.mask = det.detector.threshold(det.scores, contamination=contamination, far=far,
                                      value=value)
    return det.mask


def export(det: Detection, cube: xr.DataArray, *, scores_path=None, cog: bool = False,
           mask_path=None, polygons_path=None, png_path=None, stages_dir=None,
           truth: np.ndarray | None = None) -> dict[str, Path]:
    """Write whichever outputs are asked for; every writer is atomic."""
    from hsad.io.geotiff import write_geotiff, write_mask

    out = det.written
    if scores_path:
        write_geotiff(det.scores, scores_path, like=cube, cog=cog)
        out["scores"] = Path(scores_path)
    if stages_dir and det.stages:
        base = Path(stages_dir)
        for name, stage in det.stages.items():
            if stage.ndim == 2:
                target = base / f"{name}.tif"
                write_geotiff(stage, target, like=cube, cog=cog)
                out[f"stage:{name}"] = target
    if (mask_path or polygons_path) and det.mask is None:
        raise ParameterError("--mask/--polygons need a threshold: --contamination, --far or "
                             "--threshold")
    if mask_path:
        write_mask(det.mask, mask_path, like=cube)
        out["mask"] = Path(mask_path)
    if polygons_path:
        from hsad.export import polygons, write_polygons

        feats = polygons(det.mask, scores=det.scores)
        write_polygons(feats, polygons_path, crs=cube.rio.crs)
        out["polygons"] = Path(polygons_path)
    if png_path:
        from hsad.plots import quicklook

        quicklook(cube, det.scores, truth=truth, path=png_path)
        out["png"] = Path(png_path)
    return out
