"""A cube read in its file's physical units: the band scales and offsets applied as it is
read (``open_cube(path, apply_scale=True)`` on a GeoTIFF, GDAL's ``-unscale``), and a
nodata value of the stored units said in the applied ones (``--nodata`` beside
``--apply-scale``)."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.cube import nodata_hits, physical_scaling
from hsad.cube.nodata_values import nodata_for, value_text
from hsad.errors import ParameterError


def physical_cube(cube: xr.DataArray) -> xr.DataArray:
    """``cube`` as DN · scale + offset of its band coordinates ``band_scale`` and
    ``band_offset`` (divided by an ENVI ``reflectance scale factor``:
    :func:`hsad.cube.physical_scaling`), lazily, in float32, its nodata pixels NaN (and
    its nodata NaN), the band coordinates dropped and ``attrs["scale_applied"]`` True;
    ``cube`` itself when it has no scaling (its values are in physical units already)."""
    own = physical_scaling(cube)  # an ENVI reflectance scale factor divides both
    if own is None:
        return cube
    import dask.array as da

    data, nodata = cube.data, cube.attrs.get("nodata")
    gain, offset = (np.asarray(values, dtype=np.float32) for values in own)
    values = data.astype(np.float32) * gain + offset
    if nodata is not None:
        values = da.where(nodata_hits(data, nodata), np.float32(np.nan), values)
    out = cube.copy(data=values).drop_vars(["band_scale", "band_offset"], errors="ignore")
    uniform = np.ptp(gain) == 0 and np.ptp(offset) == 0
    out.attrs.update(nodata=None if nodata is None else float("nan"), scale_applied=True,
                     applied_scaling=(float(gain[0]), float(offset[0])) if uniform else None,
                     stored_dtype=str(data.dtype))
    return out


def scaled_nodata(cube: xr.DataArray, value: float) -> float:
    """A nodata ``value`` given in the file's stored units (``--nodata -9999``) as the
    values of ``cube`` hold it once its scale was applied (``--apply-scale``), computed as
    the reader computed them, so that the two compare equal: value / factor (ENVI's and
    NEON's reflectance scale factor), value · scale + offset (band scales and offsets
    applied: a GeoTIFF's, ENVI's gains), after the stored type's rules (an integer type
    truncates it; one it cannot hold is a ParameterError). ``value`` itself for a cube
    read as stored, or NaN. ParameterError for bands of different scales, where one value
    cannot say it."""
    if not cube.attrs.get("scale_applied") or np.isnan(value):
        return value
    if (stored := cube.attrs.get("stored_dtype")) is not None:  # as the stored type holds it
        stored = np.dtype(stored)
        if nodata_for(stored, value) is None:
            raise ParameterError(f"nodata {value:g} cannot occur in the file's {stored} data "
                                 "(outside the type's range)", cube.attrs.get("source_path"))
        truncated = float(stored.type(value))  # an integer type truncates it, as GDAL does
        if stored.kind in "iu" and value != truncated and _given_scaled(cube, value, stored):
            # the scaled value, as before 0.3.14? (truncated to 0, it had matched nothing)
            warnings.warn(
                f"{cube.attrs.get('source_path') or 'cube'}: --nodata {value_text(value, float)}"
                f" beside --apply-scale is in the file's stored {stored} units, so it is taken "
                f"as {value_text(truncated, stored)}; if it was the scaled value, give "
                f"--nodata {value_text(stored_value(cube, value), stored)}", UserWarning,
                stacklevel=3)
        value = truncated
    if "applied_scaling" in cube.attrs:  # band scales and offsets applied (physical_cube)
        applied = cube.attrs.get("applied_scaling")
        if applied is None:
            raise ParameterError(
                f"--nodata {value:g} with --apply-scale: the bands have different scales or "
                "offsets, so no one value is the fill in all of them; give --nodata without "
                "--apply-scale, or a --valid-mask", cube.attrs.get("source_path"))
        gain, offset = (np.float32(v) for v in applied)
        return float(np.float32(value) * gain + offset)
    factor = cube.attrs.get("reflectance_scale_factor")
    return float(np.float32(value) / np.float32(factor)) if factor else value


def _unscaled(cube: xr.DataArray, value: float) -> float | None:
    """``value`` of the scaled ``cube`` in stored units, unrounded; None where the bands'
    scales differ."""
    if "applied_scaling" in cube.attrs:
        applied = cube.attrs.get("applied_scaling")
        if applied is None or not applied[0]:
            return None
        return (value - applied[1]) / applied[0]
    factor = cube.attrs.get("reflectance_scale_factor")
    return value * factor if factor else value


def _given_scaled(cube: xr.DataArray, value: float, stored: np.dtype) -> bool:
    """Whether a fractional ``value`` is a scaled one: what an integer the file can
    store reads as (``-0.9999`` for -9999 at a factor of 10000)."""
    raw = _unscaled(cube, value)
    if raw is None or not np.isfinite(raw) or nodata_for(stored, np.rint(raw)) is None:
        return False
    return abs(raw - np.rint(raw)) <= max(1e-3, 1e-5 * abs(raw))  # printed to 6 digits


def stored_value(cube: xr.DataArray, value: float) -> float | None:
    """The value the file stores for ``value`` of ``cube``, the inverse of
    :func:`scaled_nodata` (what ``--nodata`` takes beside ``--apply-scale``), rounded to an
    integer for an integer stored type; ``value`` itself for a cube read as stored; None
    where the bands' scales differ, so that no one stored value says it."""
    if not cube.attrs.get("scale_applied") or not np.isfinite(value):
        return value
    stored = _unscaled(cube, value)
    kind = np.dtype(cube.attrs.get("stored_dtype") or np.float32).kind
    return float(np.rint(stored)) if stored is not None and kind in "iu" else stored


__all__ = ["physical_cube", "scaled_nodata", "stored_value"]
