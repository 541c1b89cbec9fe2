"""A cube read in its file's physical units: the band scales and offsets applied as it is
read (``open_cube(path, apply_scale=True)`` on a GeoTIFF, GDAL's ``-unscale``), and a
nodata value of the stored units said in the applied ones (``--nodata`` beside
``--apply-scale``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hsad.cube import nodata_hits, physical_scaling
from hsad.cube.nodata_values import nodata_for
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
        value = float(stored.type(value))  # an integer type truncates it, as GDAL does
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


__all__ = ["physical_cube", "scaled_nodata"]
