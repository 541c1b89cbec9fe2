"""Which pixels hold data: :func:`set_nodata` overrides the header's nodata value and
:func:`apply_valid_mask` turns the pixels a mask excludes into nodata.

Both return a lazy cube. Every detector, its statistics and the fusion skip nodata pixels
(:func:`hsad.cube.valid_mask`) and score them NaN, so nothing else needs to know a mask
was applied.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr
from dask.base import tokenize

from hsad.cube import as_cube, excluded_fill, nodata_for
from hsad.errors import ParameterError
from hsad.io.window import ComputedView, array_over


def set_nodata(cube: xr.DataArray, value: float | None) -> xr.DataArray:
    """``cube`` whose nodata is ``value`` (compared with the values as read), not the
    header's; ``None`` leaves it unchanged."""
    cube = as_cube(cube)
    if value is None:
        return cube
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"nodata must be a number or None, got {value!r}",
                             cube.attrs.get("source_path"))
    if nodata_for(cube.dtype, value) is None:
        raise ParameterError(f"nodata {value:g} cannot occur in {cube.dtype} data (outside "
                             f"the type's range)", cube.attrs.get("source_path"))
    out = cube.copy()
    out.attrs["nodata"] = float(value)
    return out


def apply_valid_mask(cube: xr.DataArray, mask) -> xr.DataArray:
    """``cube`` with the pixels outside ``mask`` set to nodata (NaN, or the integer
    nodata value). ``cube`` may be held in memory (``cube.load()``): the result is lazy.

    ``mask``: a raster on the scene's grid (GeoTIFF, ENVI or MAT; non-zero = valid, its own
    nodata = excluded), or a (y, x) bool array or DataArray (True = valid).
    """
    cube = as_cube(cube)
    valid = valid_pixels(cube, mask)
    if valid is None:
        return cube
    dtype, fill = excluded_fill(cube.dtype, cube.attrs.get("nodata"))
    view = _MaskedView(cube.data, valid, dtype, fill)
    data = array_over(view, cube.data.chunks,
                      "masked-" + tokenize(cube.data.name, valid, dtype, fill))
    return cube.copy(data=data)


def valid_pixels(cube: xr.DataArray, mask) -> np.ndarray | None:
    """``mask`` (as :func:`apply_valid_mask` takes it) as a (y, x) bool map of ``cube``'s
    grid, True = valid; None for None. Several masks are one map ANDed, applied once."""
    if mask is None:
        return None
    shape = (cube.sizes["y"], cube.sizes["x"])
    if isinstance(mask, (str, os.PathLike)):
        from hsad.cube.background import raster_mask
        from hsad.io import check_input

        check_input(mask, "valid mask", ParameterError)
        valid = raster_mask(mask, cube, what="valid mask")
    else:
        valid = np.asarray(getattr(mask, "values", mask))
        if valid.shape != shape:
            raise ParameterError(f"valid mask shape {valid.shape} does not match the scene's "
                                 f"{shape}", cube.attrs.get("source_path"))
        valid = np.nan_to_num(valid.astype(np.float64)) != 0
    if not valid.any():
        raise ParameterError("the valid mask excludes every pixel of the scene",
                             mask if isinstance(mask, (str, os.PathLike)) else None)
    return valid


class _MaskedView(ComputedView):
    """``raw`` (y, x, band) as ``dtype``, ``fill`` where the (y, x) map ``valid`` is False;
    windows read as :class:`hsad.io.window.ComputedView` reads them, so a sample of a
    masked scene reads only its pixels."""

    def __init__(self, raw, valid: np.ndarray, dtype, fill):
        self.raw, self.valid, self.fill = raw, valid, fill
        self.dtype, self.shape = np.dtype(dtype), tuple(raw.shape)

    def _window(self, rows, cols, bands):
        values = self._raw(rows, cols, bands).astype(self.dtype, copy=False)
        kept = np.where(self.valid[rows, cols][:, :, None], values, self.fill)  # a new array
        return kept.astype(self.dtype, copy=False)


__all__ = ["apply_valid_mask", "set_nodata", "valid_pixels"]
