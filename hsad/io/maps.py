"""Single-band maps: score maps and ground truth from GeoTIFF, ENVI or MAT files."""

from __future__ import annotations

import os
import warnings
from functools import partial

import numpy as np
import xarray as xr

from hsad.errors import FileFormatError, ParameterError


def written_map(path: str | os.PathLike) -> str | None:
    """What a GeoTIFF that ``hsad detect`` wrote holds (its ``hsad_map`` tag: ``score``,
    ``mask``, a stage's name), or None for any other file (a scene)."""
    from hsad.io import detect_format

    try:
        if detect_format(path) != "geotiff":
            return None
        import rasterio

        from hsad.io.gdal_checks import quiet_gdal

        with quiet_gdal(), rasterio.open(path) as src:
            tags = src.tags()
            return tags.get("hsad_map") if "hsad_method" in tags and src.count == 1 else None
    except Exception:  # noqa: BLE001  (unreadable: the reader says why, later)
        return None


def read_single_band(path: str | os.PathLike, key: str | None = None,
                     what: str = "score map", exact32: bool = False, fit=None,
                     truth: bool = False) -> tuple[np.ndarray, xr.DataArray]:
    """Band 1 of a raster as float64 with NaN on nodata, and the one-band cube (georef);
    a score map's infinite pixels are nodata too, with a warning, and its 64-bit integers
    beyond 2**53 are shifted by their minimum first, so that float64 ties none of them
    (:func:`hsad.outputs.metric_inputs.exact_integers`). ``exact32``: as float32,
    in half the memory, when that holds its values exactly (a float32 or float16 file,
    integers of up to 16 bits, bool). ``fit``: called on the lazy one-band cube before any
    pixel is read, to cut it or refuse it (its size against the scene's). ``truth``: a
    declared nodata of 0 is the background, not no data (QGIS's Rasterize declares the
    value it does not burn so), as :func:`hsad.outputs.metrics.evaluate` reads it."""
    from hsad.cube import make_cube, valid_mask
    from hsad.io import detect_format, open_cube

    if detect_format(path, what) == "mat":
        from hsad.io.matlab import read_mat_map

        cube = make_cube(read_mat_map(path, key, what=what, check=sized_up(path, fit))[
            :, :, None], source_format="mat", source_path=os.fspath(path))
    else:
        cube = open_cube(path, key=key)
    if cube.sizes["band"] != 1:
        raise FileFormatError(f"a {what} must have one band, found {cube.sizes['band']}", path)
    if fit is not None:
        cube = fit(cube)
    if truth and cube.attrs.get("nodata") == 0:
        cube = cube.copy(deep=False)
        cube.attrs = {**cube.attrs, "nodata": None}
    band = cube.isel(band=0)
    raw = np.asarray(band.values)
    if what == "score map" and raw.dtype.kind in "iu" and raw.dtype.itemsize == 8:
        from hsad.outputs.metric_inputs import exact_integers

        shifted = exact_integers(raw, cube.attrs.get("nodata"))  # 64-bit, beyond 2**53
        if shifted is not None:
            raw = shifted
    values = np.asarray(raw, dtype=np.float32 if exact32 and _exact_in_float32(
        raw.dtype) else np.float64)
    if what == "score map" and (infinite := int(np.isinf(values).sum())):
        warnings.warn(f"{os.fspath(path)}: {infinite} pixels score ±inf: left out as nodata "
                      "(write them as a finite score to rank them)", UserWarning, stacklevel=2)
    values[~valid_mask(cube).values] = np.nan
    return values, cube


def _exact_in_float32(dtype) -> bool:
    """Whether float32 holds every value of ``dtype``."""
    dtype = np.dtype(dtype)
    return dtype.kind == "b" or (dtype.kind == "f" and dtype.itemsize <= 4) or (
        dtype.kind in "iu" and dtype.itemsize <= 2)


def read_score_map(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """A single-band score map (GeoTIFF, ENVI, MAT) as float64, NaN on nodata pixels."""
    return read_single_band(path, key)[0]


def read_truth(path: str | os.PathLike, key: str | None = None,
               shape: tuple[int, int] | None = None, what: str = "ground truth",
               grid: xr.DataArray | None = None, region: str = "the scene", fit=None,
               ) -> tuple[np.ndarray, xr.DataArray | None]:
    """Ground truth as float32 (1 anomaly, 0 background, NaN nodata) and its raster, if any.

    MAT files: the ground-truth variable ``key`` (or the one found beside the cube); they
    carry no georeference, so the second item is None. Rasters (GeoTIFF, ENVI): their one
    band (more is an error). Any nonzero value is an anomaly; nodata pixels (255 in the
    masks hsad writes) and NaN, in every format, are left out of the evaluation rather
    than counted as background; a nodata of 0 is the background (QGIS's Rasterize declares
    it so).
    Vector files (GeoPackage, GeoJSON, Shapefile, KML, GML, FlatGeobuf;
    ``file|layername=x``): the targets' polygons or points drawn on ``grid`` (a map or
    cube, then the second item), every pixel outside them background
    (:func:`hsad.cube.vector_masks.vector_mask`, no target lost; ``region`` names the grid in
    its errors).
    ``shape``, if given, must match; ``what`` names the map in errors. A raster is sized
    up before it is read: against ``shape``, or cut to ``grid`` as :func:`hsad.cube.placement.
    cut_for_scene` cuts it, or by ``fit`` (called on the lazy raster).
    """
    from hsad.cube.vector_masks import is_vector, vector_mask
    from hsad.io import detect_format

    if is_vector(path):
        if grid is None:
            raise ParameterError(f"a {what} of polygons or points is drawn on the grid of a "
                                 "map; give a raster mask here", path)
        truth = vector_mask(path, grid, what, every_shape=True, region=region
                            ).astype(np.float32)
        cube = grid
    elif detect_format(path, what) == "mat":
        from hsad.io.matlab import read_mat_map

        if fit is None and shape is None and grid is not None:  # sized up as a raster is
            from hsad.cube.placement import cut_for_scene

            fit = partial(cut_for_scene, cube=grid, what=what, path=path)
        gt = read_mat_map(path, key, "ground truth", shape, check=sized_up(  # by its names
            path, fit, shape, what))
        truth, cube = _as_truth(gt), None
    else:
        if fit is None and shape is not None:
            fit = partial(_of_shape, shape=shape, what=what, path=path)
        elif fit is None and grid is not None:
            from hsad.cube.placement import cut_for_scene

            fit = partial(cut_for_scene, cube=grid, what=what, path=path)
        values, cube = read_single_band(path, what=what, exact32=True, fit=fit, truth=True)
        truth = _as_truth(values)
    if shape is not None and truth.shape != tuple(shape):
        raise FileFormatError(
            f"{what} is {truth.shape[0]}x{truth.shape[1]} but the scene is "
            f"{shape[0]}x{shape[1]}", path)
    return truth, cube


def sized_up(path, fit=None, shape=None, what: str = "ground truth"):
    """A check of a MAT map's declared (rows, cols), before it is read, as a raster is sized
    up: against ``shape``, and by ``fit`` called on a lazy stand-in of that size (its
    refusal, if any; the map read is fitted again). None when neither is given."""
    if fit is None and shape is None:
        return None

    def check(size) -> None:
        import dask.array as da

        from hsad.cube import make_cube

        stand_in = make_cube(da.zeros((*size, 1), np.uint8), source_format="mat",
                             source_path=os.fspath(path))
        if shape is not None:
            _of_shape(stand_in, shape, what, path)
        if fit is not None:
            fit(stand_in)

    return check


def _of_shape(raster: xr.DataArray, shape, what: str, path) -> xr.DataArray:
    """``raster`` if it has ``shape`` rows and columns; else refused before it is read."""
    got = (raster.sizes["y"], raster.sizes["x"])
    if got != tuple(shape):
        raise FileFormatError(f"{what} is {got[0]}x{got[1]} but the scene is "
                              f"{shape[0]}x{shape[1]}", path)
    return raster


def _as_truth(values: np.ndarray) -> np.ndarray:
    """1 where ``values`` is nonzero, 0 where zero, NaN where NaN, as float32 (a warning
    where a fill value stands beside other nonzero values: :func:`warn_fill_truth`)."""
    from hsad.outputs.metric_inputs import warn_fill_truth

    warn_fill_truth(np.asarray(values))
    truth = (values != 0).astype(np.float32)
    truth[np.isnan(values)] = np.nan
    return truth
