"""Ground-truth maps: a boolean (rows, cols) array from GeoTIFF, ENVI or MAT files."""

from __future__ import annotations

import os

import numpy as np

from hsad.errors import FileFormatError


def read_truth(path: str | os.PathLike, key: str | None = None,
               shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth map as bool (non-zero = anomaly).

    MAT files: the ground-truth variable (``key`` or auto-detected). Rasters: band 1.
    ``shape`` (rows, cols), when given, must match.
    """
    from hsad.io import detect_format, open_cube

    if detect_format(path) == "mat":
        from hsad.io.matlab import load_mat

        _, gt = load_mat(path, gt_key=key)
        if gt is None:
            raise FileFormatError("no ground-truth variable found (give --truth-key)", path)
        gt = np.asarray(getattr(gt, "values", gt))
    else:
        cube = open_cube(path)
        if cube.shape[2] != 1:
            raise FileFormatError(f"ground truth must have one band, found {cube.shape[2]}", path)
        band = cube.isel(band=0).values
        nodata = cube.attrs.get("nodata")
        gt = band != 0
        if nodata is not None:
            gt &= band != nodata
        if np.issubdtype(band.dtype, np.floating):
            gt &= np.isfinite(band)
    gt = np.asarray(gt).astype(bool)
    if shape is not None and gt.shape != tuple(shape):
        raise FileFormatError(
            f"ground truth is {gt.shape[0]}x{gt.shape[1]} but the scene is {shape[0]}x{shape[1]}",
            path,
        )
    return gt
