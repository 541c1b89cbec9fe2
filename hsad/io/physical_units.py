"""A cube read in its file's physical units: the band scales and offsets applied as it is
read (``open_cube(path, apply_scale=True)`` on a GeoTIFF, GDAL's ``-unscale``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hsad.cube import band_scaling, nodata_hits


def physical_cube(cube: xr.DataArray) -> xr.DataArray:
    """``cube`` as DN · scale + offset of its band coordinates ``band_scale`` and
    ``band_offset``, lazily, in float32, its nodata pixels NaN (and its nodata NaN), the
    band coordinates dropped and ``attrs["scale_applied"]`` True; ``cube`` itself when it
    has no scaling (its values are in physical units already)."""
    own = band_scaling(cube)
    if own is None:
        return cube
    import dask.array as da

    data, nodata = cube.data, cube.attrs.get("nodata")
    gain, offset = (np.asarray(values, dtype=np.float32) for values in own)
    values = data.astype(np.float32) * gain + offset
    if nodata is not None:
        values = da.where(nodata_hits(data, nodata), np.float32(np.nan), values)
    out = cube.copy(data=values).drop_vars(["band_scale", "band_offset"], errors="ignore")
    out.attrs.update(nodata=None if nodata is None else float("nan"), scale_applied=True)
    return out


__all__ = ["physical_cube"]
