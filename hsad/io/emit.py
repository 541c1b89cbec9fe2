"""EMIT granules (netCDF-4): L1B radiance, L2A reflectance and its uncertainty.

The cube is read lazily in the instrument's geometry (rows downtrack, columns crosstrack),
with the wavelengths, FWHM and good-band flags of ``sensor_band_parameters`` and the
variable's ``_FillValue`` as nodata; the granule's geometry lookup table
(:mod:`hsad.io.glt`) goes with it and places every map written from it on the granule's
map grid (EPSG:4326 for EMIT).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import xarray as xr
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.errors import CRSError

from hsad.cube import make_cube
from hsad.errors import FileFormatError, ParameterError
from hsad.io.geotiff import tile_chunks
from hsad.io.glt import ATTR as GLT_ATTR
from hsad.io.glt import Glt, only_placed
from hsad.io.hdf5_file import H5_ERRORS, Hdf5Reader, chunk_blocks, file_stamp, number_attr, text
from hsad.io.wavelength_units import wavelength_scale
from hsad.io.window import array_over, check_window, window_attrs

#: the cube variables read by default, in order of preference
CUBES = ("reflectance", "radiance")
_BANDS = "sensor_band_parameters"
_LOCATION = "location"


def is_emit(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file laid out as an EMIT granule (a ``location`` group
    holding ``glt_x`` and ``glt_y``, and a ``geotransform``)."""
    try:
        with h5py.File(path, "r") as f:
            loc = f.get(_LOCATION)
            return (isinstance(loc, h5py.Group) and "glt_x" in loc and "glt_y" in loc
                    and "geotransform" in f.attrs)
    except H5_ERRORS:
        return False


def why_not_emit(path: str | os.PathLike) -> str | None:
    """Why an HDF5 file is not a readable EMIT granule when it is meant as one (named
    ``EMIT_…``, or holding EMIT's groups), or cannot be opened at all; None otherwise."""
    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except H5_ERRORS as exc:
        return (f"cannot be opened as HDF5: truncated or damaged ({p.stat().st_size:,} bytes; "
                f"{exc})")
    with f:
        if not (p.name.upper().startswith("EMIT_") or (_BANDS in f and _LOCATION in f)):
            return None
        missing = [name for name in ("location/glt_x", "location/glt_y") if name not in f]
        if "geotransform" not in f.attrs:
            missing.append("its geotransform attribute")
    return f"an EMIT granule without {' or '.join(missing)}" if missing else None


def _cube_variables(f: h5py.File) -> list[str]:
    return [k for k, v in f.items() if isinstance(v, h5py.Dataset) and v.ndim == 3]


def _cube_key(f: h5py.File, key: str | None, path) -> str:
    found = _cube_variables(f)
    if key is not None:
        if key not in found:
            raise FileFormatError(f"no cube variable {key!r} in the EMIT granule (it has: "
                                  f"{', '.join(found) or 'none'})", path)
        return key
    for name in CUBES:
        if name in found:
            return name
    if len(found) == 1:
        return found[0]
    raise FileFormatError(f"the EMIT granule holds no radiance or reflectance; name its cube "
                          f"with --key (it has: {', '.join(found) or 'none'})", path)


def _band_values(f: h5py.File, name: str, bands: int) -> np.ndarray | None:
    """A per-band variable of ``sensor_band_parameters``, as float64; None when absent or
    of another length."""
    group = f.get(_BANDS)
    if not isinstance(group, h5py.Group) or name not in group:
        return None
    values = np.asarray(group[name][()], dtype=np.float64).reshape(-1)
    return values if values.size == bands else None


def _spectral(f: h5py.File, bands: int) -> tuple:
    """(wavelength nm, fwhm nm, good bands) of the granule, each None when absent."""
    wl, fwhm = _band_values(f, "wavelengths", bands), _band_values(f, "fwhm", bands)
    scale = None
    if wl is not None:
        units = f[_BANDS]["wavelengths"].attrs.get("units")
        scale = wavelength_scale(text(units) if units is not None else None, wl)
        wl = None if scale is None else wl * scale
    if fwhm is not None:
        fwhm = None if scale is None else fwhm * scale
    good = _band_values(f, "good_wavelengths", bands)
    return wl, fwhm, None if good is None else good != 0


def _glt(f: h5py.File, shape, path) -> Glt:
    """The granule's lookup table, checked against the cube's ``shape`` (rows, cols)."""
    loc = f[_LOCATION]
    try:
        gx, gy = np.asarray(loc["glt_x"][()]), np.asarray(loc["glt_y"][()])
        gt = np.asarray(f.attrs["geotransform"], dtype=np.float64).reshape(-1)
    except H5_ERRORS as exc:
        raise FileFormatError(f"cannot read the EMIT granule's lookup table ({exc})",
                              path) from exc
    if gx.ndim != 2 or gx.shape != gy.shape or gt.size != 6 or not np.isfinite(gt).all() \
            or gt[1] * gt[5] - gt[2] * gt[4] == 0:
        raise FileFormatError("the EMIT granule's lookup table is not two tables of one "
                              "shape with a valid geotransform", path)
    if gx.dtype.kind not in "iu" or gy.dtype.kind not in "iu":
        raise FileFormatError(f"the EMIT granule's lookup table holds {gx.dtype} values, not "
                              "pixel indices (integers)", path)
    if np.abs(gy).max(initial=0) > shape[0] or np.abs(gx).max(initial=0) > shape[1]:
        raise FileFormatError(f"the EMIT granule's lookup table points outside its "
                              f"{shape[0]} x {shape[1]} pixels", path)
    if not ((gx != 0) & (gy != 0)).any():
        raise FileFormatError("the EMIT granule's lookup table places no pixel (every cell "
                              "is 0)", path)
    crs = f.attrs.get("spatial_ref")
    crs = text(crs) if crs is not None else "EPSG:4326"
    try:
        CRS.from_user_input(crs)
    except CRSError as exc:
        raise FileFormatError(f"the EMIT granule's spatial_ref is not a CRS ({exc})",
                              path) from None
    return Glt.from_file_tables(gx, gy, gt, crs)


class _EmitReader(Hdf5Reader):
    """Windows of an EMIT cube variable (downtrack, crosstrack, bands)."""

    what = "granule"


def open_emit(path: str | os.PathLike, chunks=None, key: str | None = None,
              window=None) -> xr.DataArray:
    """An EMIT granule's cube (``key``: its variable, default reflectance or radiance),
    lazily, in instrument geometry, with its lookup table in ``attrs["glt"]``; ``window``
    (an :class:`hsad.cube.subset.Window` of instrument pixels) reads only that window."""
    p = os.fspath(path)
    try:  # the layout and the stamp from one open file (nothing can come between them)
        with open(p, "rb") as handle, h5py.File(handle, "r") as f:
            stamp = file_stamp(handle)
            ckey = _cube_key(f, key, p)
            var = f[ckey]
            rows, cols, bands = (int(n) for n in var.shape)
            blocks = chunk_blocks([var], 0, 1)
            dtype = var.dtype
            if dtype.kind not in "iuf":
                raise FileFormatError(f"variable {ckey!r} is not numeric ({dtype})", p)
            nodata = number_attr(var.attrs, "_FillValue", p, ckey)
            wavelength, fwhm, good = _spectral(f, bands)
            glt = _glt(f, (rows, cols), p)
    except H5_ERRORS as exc:
        raise FileFormatError(f"not a readable EMIT granule ({type(exc).__name__}: {exc})",
                              p) from exc
    if window is not None:
        check_window(window, (rows, cols), p)
    tiles = tile_chunks(chunks, *((rows, cols) if window is None
                                  else (window.height, window.width)))
    reader = _EmitReader(p, ckey, (rows, cols, bands), dtype, stamp, blocks)
    tiled = reader.blocks  # None where the cube is unpacked (hsad.io.hdf5_planes)
    if window is not None:
        reader = reader.windowed(window)
    data = array_over(reader, tiles, "emit-" + tokenize(p, ckey, stamp, tiles, window))
    attrs = {"emit_key": ckey, "product": Path(p).stem, **window_attrs(window, (rows, cols))}
    if tiled:  # tiles of whole chunks (hsad.engine.block_tiles.plan_tiles)
        attrs["block_shape"] = tiled
    cube = make_cube(data, nodata=nodata, wavelength=wavelength, fwhm=fwhm, good_band=good,
                     source_format="emit", source_path=p, attrs=attrs)
    if window is not None:
        glt = glt.windowed(window, p)
    if glt is not None and getattr(window, "cells", None) is not None:
        cube = only_placed(cube, glt)  # a --projwin: the pixels its cells hold
    if glt is not None:
        cube.attrs[GLT_ATTR] = glt
    return cube


#: a granule's time, orbit and scene in its file name (EMIT_L2A_RFL_001_20220903T163129_2224611_012)
_GRANULE_ID = re.compile(r"^EMIT_.+?_(\d{8}T\d{6}_\d{7}_\d{3})(?:\.|$)")


def clear_pixels(path: str | os.PathLike, scene: str | os.PathLike | None = None,
                 shapes=None) -> np.ndarray:
    """An EMIT L2A MASK granule as a (downtrack, crosstrack) map: 1 where none of its
    binary flags (the ``mask`` bands named ``… flag``: cloud, cirrus, water, spacecraft,
    dilated cloud, aggregate) is set, 0 where one is, NaN where it holds its fill value.
    ``scene``: the file it is meant for; another granule's mask (by the time, orbit and
    scene in the names) is a ParameterError, and so is a mask of none of ``shapes`` (the
    rows and columns it may have), before its flags are read."""
    p = os.fspath(path)
    ids = [_GRANULE_ID.match(Path(f).name) for f in (p, scene) if f is not None]
    if len(ids) == 2 and all(ids) and ids[0].group(1) != ids[1].group(1):
        raise ParameterError(f"is the mask of granule {ids[0].group(1)}, not of the scene's "
                             f"{ids[1].group(1)}", p)
    try:
        with h5py.File(p, "r") as f:
            if not isinstance(f.get("mask"), h5py.Dataset) or f["mask"].ndim != 3:
                raise FileFormatError("an EMIT granule without a 'mask' variable cannot give "
                                      "the clear pixels (give the EMIT_L2A_MASK file)", p)
            group = f.get(_BANDS)
            names = [text(n) for n in group["mask_bands"][()]] \
                if isinstance(group, h5py.Group) and "mask_bands" in group else []
            flags = [i for i, n in enumerate(names) if "flag" in n.lower()]
            if len(names) != f["mask"].shape[2] or not flags:
                raise FileFormatError("the EMIT mask names no flag band (its "
                                      "sensor_band_parameters/mask_bands)", p)
            var = f["mask"]
            if shapes is not None and tuple(var.shape[:2]) not in {tuple(x) for x in shapes}:
                raise ParameterError(f"the EMIT mask is {var.shape[0]}x{var.shape[1]}, not "
                                     "the scene's size: the mask of another granule?", p)
            fill = number_attr(var.attrs, "_FillValue", p, "mask")
            values = np.stack([np.asarray(var[:, :, i], np.float32) for i in flags], axis=-1)
    except H5_ERRORS as exc:
        raise FileFormatError(f"not a readable EMIT mask ({type(exc).__name__}: {exc})",
                              p) from exc
    missing = ~np.isfinite(values)
    if fill is not None:
        missing |= values == np.float32(fill)
    clear = (values == 0).all(axis=-1).astype(np.float32)
    clear[missing.any(axis=-1)] = np.nan
    return clear


__all__ = ["CUBES", "clear_pixels", "is_emit", "open_emit", "why_not_emit"]
