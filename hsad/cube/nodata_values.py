"""Nodata values as GDAL reads them: which value a type can hold, which stored values
match it, and which pixels of a block hold data.

:mod:`hsad.cube` re-exports every name; :mod:`hsad.cube.nodata` sets and masks nodata on
cubes.
"""

from __future__ import annotations

import warnings

import numpy as np

#: A float32 nodata value within this relative distance of ±FLT_MAX also matches ±FLT_MAX:
#: headers print FLT_MAX with a few digits (``-3.40282e+38``, ``-3.4e+38``), and GDAL's
#: nodata mask counts the pixels at -FLT_MAX as nodata then.
NEAR_FLT_MAX = 1e-3
_FLT_MAX = float(np.finfo(np.float32).max)


def value_text(value: float, dtype) -> str:
    """``value`` as data of ``dtype`` holds it, written so that it reads back as that very
    value (``--nodata``, ``set_nodata``): a float32 fill of -0.89989996 is not -0.8999,
    which ``:g`` wrote and which then matched no pixel; integers whole (4294967295, not
    4.29497e+09)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub" or float(value).is_integer() and abs(value) < 2**53:
        return str(int(value)) if np.isfinite(value) else str(value)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    return str(dtype.type(value))


def hidden_class_note(nodata, hidden: int, zero_marks: bool = True) -> str:
    """``"its nodata value, V, leaves N pixels out"`` for a mask or truth whose finite
    nodata value V hid ``hidden`` pixels, as when QGIS's Rasterize writes the burn value as
    nodata; ``""`` when none is declared or none was hidden. ``zero_marks``: whether 0 is
    a class of the file (a truth's background), not the absence of one (a mask's)."""
    if nodata is None or not hidden or not np.isfinite(nodata):
        return ""
    if nodata == 0 and not zero_marks:  # it hides unmarked pixels, never marked ones
        return ""
    return f"its nodata value, {value_text(nodata, np.float64)}, leaves {hidden} pixels out"


def nodata_for(dtype, nodata: float | None) -> float | None:
    """``nodata`` as data of ``dtype`` can hold it, as GDAL reads it: None where an integer
    type cannot (NaN, ±inf, outside the type's range), or a float32 one (a finite value
    beyond ±FLT_MAX, farther than :data:`NEAR_FLT_MAX`: -1.797e308, ArcGIS's float64
    default, on a float32 file); the value itself otherwise."""
    if nodata is None:
        return None
    nodata = float(nodata)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return nodata if nodata in (0.0, 1.0) else None
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not np.isfinite(nodata) or not info.min <= nodata <= info.max:
            return None
    if dtype == np.float32 and np.isfinite(nodata) and (
            abs(nodata) - _FLT_MAX > NEAR_FLT_MAX * _FLT_MAX):
        return None
    return nodata


def excluded_fill(dtype, nodata: float | None) -> tuple[np.dtype, float]:
    """``(dtype, fill)`` for pixels a mask excludes: the type kept and the nodata value as
    it stores it (truncated, as :func:`nodata_hits` compares) where the type holds it, else
    NaN in float (float32 up to 16-bit integers, float64 above)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype, dtype.type(np.nan)
    value = nodata_for(dtype, nodata)
    if value is not None and np.isfinite(value):
        return dtype, dtype.type(value)
    wide = np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64)
    return wide, wide.type(np.nan)


def nodata_hits(values, nodata: float):
    """Elementwise (numpy or dask): the values that are ``nodata`` (finite) as their type
    stores it. Integer types compare with the value truncated, as GDAL does; float32
    values also at ±FLT_MAX when ``nodata`` is within :data:`NEAR_FLT_MAX` of it."""
    dtype = values.dtype
    if nodata_for(dtype, nodata) is None:  # the type cannot hold it
        return values != values
    with np.errstate(over="ignore"):  # a float32 nodata beyond FLT_MAX: inf
        if dtype == np.float32 and abs(abs(nodata) - _FLT_MAX) <= NEAR_FLT_MAX * _FLT_MAX:
            edge = np.float32(np.copysign(_FLT_MAX, nodata))
            return (values == np.float32(nodata)) | (values == edge)
        return values == dtype.type(nodata)


def can_miss(dtype, nodata: float | None) -> bool:
    """Whether values of ``dtype`` can hold no data: a float type, or a finite ``nodata``."""
    return np.issubdtype(dtype, np.floating) or (nodata is not None and np.isfinite(nodata))


def missing_values(values, nodata: float | None):
    """Elementwise (numpy or dask): the values that hold no data, not finite or ``nodata``."""
    if np.issubdtype(values.dtype, np.floating):
        missing = ~np.isfinite(values)
    else:
        missing = np.zeros_like(values, dtype=bool)
    if nodata is not None and np.isfinite(nodata):
        missing = missing | nodata_hits(values, nodata)
    return missing


def one_nodata(per_band: list, path, what: str = "the bands have") -> float | None:
    """The first band's of the bands' nodata values (hsad keeps one per scene), with a
    warning naming ``path`` where they differ (``what``: who says so)."""
    distinct = {"nan" if v is not None and v != v else v for v in per_band}
    if len(distinct) > 1:
        shown = ", ".join(str(v) for v in sorted(distinct, key=str)[:4])
        warnings.warn(f"{path}: {what} different nodata values ({shown}); hsad takes one "
                      f"per scene, the first band's ({per_band[0]})", UserWarning,
                      stacklevel=4)
    return per_band[0]


def block_valid(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(rows, cols)`` mask of pixels whose every band is finite and differs from nodata."""
    if not can_miss(block.dtype, nodata):
        return np.ones(block.shape[:2], dtype=bool)
    return ~missing_values(block, nodata).any(axis=-1)


def float32_or_nan(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """A float32 copy of a ``(rows, cols, band)`` block, NaN on the pixels that hold no data
    (:func:`block_valid`)."""
    out = block.astype(np.float32)
    out[~block_valid(block, nodata)] = np.nan
    return out
