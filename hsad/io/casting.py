"""Casting a cube to another storage type as GDAL does (``gdal_translate -ot``): NaN to
the nodata value, floats rounded half away from zero, values beyond the type's range
clipped to it, and the clipped values counted (:class:`CastTally`) so that a writer can say
how many it changed."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import xarray as xr


class CastTally:
    """The finite values a cast clipped to its type's range, counted over the blocks of a
    write by threads (a list's ``append`` needs no lock). Blocks cast in the worker
    processes of a dask.distributed cluster count in the workers' copies: the tally then
    says nothing."""

    def __init__(self):
        self._counts: list[int] = []

    def add(self, count: int) -> None:
        if count:
            self._counts.append(int(count))

    @property
    def clipped(self) -> int:
        return sum(self._counts)

    def __dask_tokenize__(self):
        return ("CastTally", id(self))

    def warn(self, where, dtype) -> None:
        """A warning naming how many values were clipped, if any."""
        if not self.clipped:
            return
        dtype = np.dtype(dtype)
        info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
        low, high = (int(info.min), int(info.max)) if dtype.kind in "iu" else (
            f"{float(info.min):.7g}", f"{float(info.max):.7g}")
        n = self.clipped
        warnings.warn(f"{where}: {n} value{'s were' if n > 1 else ' was'} beyond {dtype}'s "
                      f"range ({low} to {high}), clipped to it", UserWarning, stacklevel=2)


def round_half_away(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to whole numbers as GDAL casts floats to integers (``gdal_translate
    -ot``): halves away from zero (−0.5 → −1, 2.5 → 3; NumPy's ``rint`` takes them to the
    even neighbour), in float64; values beyond 2**52, whole already, unchanged."""
    a = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(a) < 2.0**52, np.trunc(a + np.copysign(0.5, a)), a)


def cast_block(block: np.ndarray, out_dtype: np.dtype, nodata: float | None,
               tally: CastTally | None = None) -> np.ndarray:
    """Cast to ``out_dtype``: NaN -> nodata; float -> int rounds (halves away from zero, as
    GDAL) and clips to the type's range; a float beyond a narrower float type's range is
    clipped to its largest finite value, as GDAL casts it (±inf stays). ``tally`` counts the
    values clipped."""
    dtype = np.dtype(out_dtype)
    if block.dtype == dtype and (nodata is None or np.isnan(nodata) or dtype.kind not in "fc"):
        return block
    out = block
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        bad = ~np.isfinite(block) if block.dtype.kind == "f" else None
        if bad is not None:
            # rounded in float64 and the ends set as integers: float32 cannot hold
            # 2**31 - 1 (it rounds up to 2**31, which the cast wraps), float64 not 2**63 - 1
            rounded = round_half_away(np.where(bad, 0, block))
            high, low = rounded >= float(info.max), rounded <= float(info.min)
            out = np.where(high | low, 0, rounded).astype(dtype)
            out[high], out[low] = info.max, info.min
            if nodata is not None and bad.any():
                out[bad] = nodata
            # float(2**63 - 1) is 2**63: a rounded 2**63 is beyond int64 though not above it
            top = float(info.max)
            beyond = ((rounded >= top) if top > info.max else (rounded > top)) | (
                rounded < float(info.min))
        else:
            beyond = (block > info.max) | (block < info.min)
            out = np.clip(block, info.min, info.max)
        if tally is not None:
            tally.add(np.count_nonzero(beyond))
    elif block.dtype.kind == "f":
        if dtype.kind == "f" and dtype.itemsize < block.dtype.itemsize:
            top = float(np.finfo(dtype).max)
            with np.errstate(invalid="ignore"):
                beyond = np.isfinite(block) & (np.abs(block) > top)
            if beyond.any():
                out = np.where(beyond, np.copysign(top, block), block)
                if tally is not None:
                    tally.add(np.count_nonzero(beyond))
        if nodata is not None and not np.isnan(nodata):
            out = np.where(np.isnan(out), nodata, out)
    return out.astype(dtype, copy=False)


def cast_cube(cube: xr.DataArray, dtype, tally: CastTally | None = None) -> xr.DataArray:
    """The cube cast lazily to ``dtype`` with :func:`cast_block` (NaN -> nodata, round, clip;
    ``tally`` counts the values clipped once the cube is computed).

    A nodata value the new type cannot hold is not kept as a wrong one: beyond a float
    type's range (ArcGIS's -1.797e308 into float32) it becomes that type's extreme, as GDAL
    clamps it, and its pixels with it; not an integer of an integer type's range (-0.5 or
    -9999 into uint16) it is dropped, and a warning says what its pixels become.
    """
    out_dtype = np.dtype(dtype)
    if out_dtype == cube.dtype:
        return cube
    data, nodata = da.asarray(cube.data), cube.attrs.get("nodata")
    where = cube.attrs.get("source_path") or "the cube"
    if nodata is not None and np.isfinite(nodata) and out_dtype.kind == "f":
        top = float(np.finfo(out_dtype).max)
        if abs(nodata) > top:
            clamped = float(np.copysign(top, nodata))
            data = da.where(data == nodata, clamped, data)
            warnings.warn(f"{where}: nodata {nodata:g} lies beyond {out_dtype}: written as "
                          f"{clamped:g}, its pixels too", UserWarning, stacklevel=2)
            nodata = clamped
    if nodata is None and out_dtype.kind in "iu" and cube.dtype.kind == "f":
        nodata = np.nan  # a float cube marks pixels without data as NaN, declared or not
    if nodata is not None and out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        held = np.isfinite(nodata) and info.min <= nodata <= info.max and nodata == round(nodata)
        if not held:
            if np.isnan(nodata):
                warnings.warn(f"{where}: {out_dtype} has no NaN: pixels without data (NaN), "
                              "if any, become 0 and the output has no nodata value; convert "
                              "to a float type to keep them apart", UserWarning, stacklevel=2)
            elif np.isfinite(nodata):
                nan = (", and pixels without data held as NaN, if any, become 0"
                       if cube.dtype.kind == "f" else "")
                warnings.warn(f"{where}: nodata {nodata:g} is not a value of {out_dtype}: the "
                              "output has no nodata value, and its pixels become data "
                              f"(rounded and clipped to {out_dtype}){nan}; convert to a float "
                              "type to keep them apart", UserWarning, stacklevel=2)
            nodata = None
    data = data.map_blocks(cast_block, out_dtype=out_dtype, nodata=nodata, tally=tally,
                           dtype=out_dtype,
                           meta=np.empty((0,) * cube.ndim, out_dtype))
    out = cube.copy(data=data)
    out.attrs["nodata"] = nodata
    return out


__all__ = ["CastTally", "cast_block", "cast_cube", "round_half_away"]
