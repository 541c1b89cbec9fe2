"""NEON AOP surface reflectance (HDF5, data products DP1.30006 and DP3.30006).

A NEON file holds one site group, ``<SITE>/Reflectance``:

- ``Reflectance_Data``, ``(lines, samples, bands)`` int16, reflectance × ``Scale_Factor``
  (10 000; kept as the cube's ``reflectance_scale_factor``), ``Data_Ignore_Value`` (−9999)
  its nodata; ``Band_Window_1_Nanometers`` and ``Band_Window_2_Nanometers`` (the water
  vapour windows, 1340–1445 and 1790–1955 nm) mark bad bands;
- ``Metadata/Spectral_Data``: ``Wavelength`` and ``FWHM`` (nanometres);
- ``Metadata/Coordinate_System``: ``Map_Info``, an ENVI ``map info`` read by GDAL's ENVI
  driver as for an ENVI header (:mod:`hsad.io.envi_georef`), beside the
  ``Coordinate_System_String`` (WKT) and ``EPSG Code``.

The cube is read lazily through :class:`hsad.io.hdf5_file.Hdf5Reader`. A file that
stores each band of the scene as one gzip chunk is unpacked once to a temporary file
(:mod:`hsad.io.hdf5_planes`). NEON's L1 radiance files (integer and decimal parts)
are not read.
"""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import xarray as xr
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.errors import CRSError

from hsad.cube import make_cube
from hsad.errors import FileFormatError, HsadError
from hsad.io.geotiff import block_chunks, tile_chunks
from hsad.io.hdf5_file import H5_ERRORS, Hdf5Reader, chunk_blocks, file_stamp, number_attr, text
from hsad.io.wavelength_units import wavelength_scale
from hsad.io.window import array_over, check_window, window_attrs, window_transform

_CUBE = "Reflectance/Reflectance_Data"
_SPECTRAL = "Reflectance/Metadata/Spectral_Data"
_COORDINATES = "Reflectance/Metadata/Coordinate_System"
_WINDOWS = ("Band_Window_1_Nanometers", "Band_Window_2_Nanometers")


def _sites(f: h5py.File, what: str = _CUBE) -> list[str]:
    """The top-level groups holding ``what``."""
    return [name for name, item in f.items()
            if isinstance(item, h5py.Group) and isinstance(item.get(what), h5py.Dataset)]


def is_neon(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file holding a NEON reflectance cube
    (``<SITE>/Reflectance/Reflectance_Data``)."""
    try:
        with h5py.File(path, "r") as f:
            return bool(_sites(f))
    except H5_ERRORS:
        return False


def why_not_neon(path: str | os.PathLike) -> str | None:
    """Why an HDF5 file laid out as a NEON product is not read (an L1 radiance file, a
    ``Reflectance`` group without its data); None otherwise."""
    try:
        with h5py.File(path, "r") as f:
            if _sites(f, "Radiance/RadianceIntegerPart"):
                return ("a NEON L1 radiance file (integer and decimal parts): hsad reads NEON "
                        "surface reflectance (DP1.30006, DP3.30006)")
            groups = [name for name, item in f.items() if isinstance(item, h5py.Group)
                      and isinstance(item.get("Reflectance"), h5py.Group)]
            if groups:
                return f"a NEON file without {groups[0]}/{_CUBE}"
    except H5_ERRORS:
        return None
    return None


class _NeonReader(Hdf5Reader):
    """Windows of a NEON ``Reflectance_Data`` (lines, samples, bands)."""

    what = "NEON file"


def _georef(site: h5py.Group, path: str):
    """``(transform, crs)`` from the site's ``Map_Info`` (GDAL's reading of it as an ENVI
    map info) and coordinate system, the ``EPSG Code`` where GDAL builds no CRS from them;
    ``(None, None)`` without a map info, or (with a warning) one GDAL finds no grid in."""
    from hsad.io.envi_georef import georef_from_header

    coords = site.get(_COORDINATES)
    if not isinstance(coords, h5py.Group) or "Map_Info" not in coords:
        return None, None
    raw = {"map info": text(coords["Map_Info"][()])}
    shown = " ".join(raw["map info"].split())
    if "Coordinate_System_String" in coords:
        raw["coordinate system string"] = text(coords["Coordinate_System_String"][()])
    transform, crs = georef_from_header(raw, path)
    if transform is None:  # GDAL finds no grid in it: no CRS either (not the EPSG Code's)
        warnings.warn(f"{path}: GDAL reads no grid from its Map_Info {shown[:80]!r}; the "
                      "scene and its maps are not georeferenced", UserWarning, stacklevel=3)
        return None, None
    code = _epsg_code(coords, path)
    if crs is None and code is not None:
        crs = CRS.from_epsg(code)
    elif crs is not None and code is not None and crs.to_epsg() not in (None, code):
        warnings.warn(f"{path}: its EPSG Code {code} differs from the CRS of its Map_Info "
                      f"(EPSG:{crs.to_epsg()}); the Map_Info's is used, as GDAL reads it",
                      UserWarning, stacklevel=3)
    return transform, crs


def _epsg_code(coords: h5py.Group, path: str) -> int | None:
    """The ``EPSG Code`` of the site's coordinate system, None without one."""
    if "EPSG Code" not in coords:
        return None
    value = text(coords["EPSG Code"][()])
    try:
        code = int(float(value))
        CRS.from_epsg(code)
    except (CRSError, ValueError):
        raise FileFormatError(f"unreadable EPSG Code {value!r}", path) from None
    return code


def _spectral(site: h5py.Group, bands: int, cube: h5py.Dataset, path: str):
    """Wavelengths and FWHM (nm) and the good-band flags (outside the water vapour
    windows the cube's attributes give)."""
    spectral = site.get(_SPECTRAL)
    if not isinstance(spectral, h5py.Group) or "Wavelength" not in spectral:
        return None, None, None
    wl = np.asarray(spectral["Wavelength"][()], np.float64).reshape(-1)
    if wl.size != bands:
        raise FileFormatError(f"{wl.size} wavelengths for {bands} bands", path)
    scale = wavelength_scale(text(spectral["Wavelength"].attrs.get("Units", "")), wl) or 1.0
    fwhm = None
    if "FWHM" in spectral and spectral["FWHM"].size == bands:
        fwhm = np.asarray(spectral["FWHM"][()], np.float64).reshape(-1) * scale
    wl = wl * scale
    good = np.ones(bands, bool)
    for name in _WINDOWS:
        window = np.asarray(cube.attrs.get(name, []), np.float64).reshape(-1)
        if window.size == 2 and np.all(np.isfinite(window)):
            good &= ~((wl >= window.min()) & (wl <= window.max()))
    return wl, fwhm, good


def open_neon(path: str | os.PathLike, chunks=None, window=None,
              apply_scale: bool = False) -> xr.DataArray:
    """A NEON reflectance file's cube, lazily (module docstring); ``window`` (an
    :class:`hsad.cube.subset.Window`) reads only that window; ``apply_scale`` divides the
    values by the file's ``Scale_Factor`` (float32 reflectance, nodata NaN), as for ENVI's
    ``reflectance scale factor``."""
    p = os.fspath(path)
    try:  # the layout and the stamp from one open file (nothing can come between them)
        with open(p, "rb") as handle, h5py.File(handle, "r") as f:
            stamp = file_stamp(handle)
            sites = _sites(f)
            if len(sites) != 1:
                raise FileFormatError(f"{len(sites)} NEON sites in one file "
                                      f"({', '.join(sites) or 'none'}); hsad reads one", p)
            site = f[sites[0]]
            var = site[_CUBE]
            if var.ndim != 3 or var.dtype.kind not in "iuf":
                raise FileFormatError(f"{sites[0]}/{_CUBE} is not a numeric cube "
                                      f"({var.dtype}, {var.ndim} dimensions)", p)
            rows, cols, bands = (int(n) for n in var.shape)
            dtype, blocks = var.dtype.newbyteorder("="), chunk_blocks([var], 0, 1)
            nodata = number_attr(var.attrs, "Data_Ignore_Value", p, _CUBE)
            factor = number_attr(var.attrs, "Scale_Factor", p, _CUBE)
            wavelength, fwhm, good = _spectral(site, bands, var, p)
            transform, crs = _georef(site, p)
    except HsadError:
        raise
    except H5_ERRORS as exc:
        raise FileFormatError(f"not a readable NEON file ({type(exc).__name__}: {exc})",
                              p) from exc
    reader = _NeonReader(p, f"{sites[0]}/{_CUBE}", (rows, cols, bands), dtype, stamp, blocks)
    attrs = {"site": sites[0], **window_attrs(window, (rows, cols))}
    if reader.blocks:  # tiles of whole chunks (hsad.engine.block_tiles.plan_tiles)
        attrs["block_shape"] = reader.blocks
    if factor and factor != 1:
        attrs["reflectance_scale_factor"] = factor
        attrs["scale_applied"] = bool(apply_scale)
    if window is not None:
        check_window(window, (rows, cols), p)
        reader = reader.windowed(window)
        if transform is not None:
            transform = window_transform(transform, crs, window)
    tiles = tile_chunks(chunks, reader.shape[0], reader.shape[1])
    if chunks is None and window is None:  # whole chunks to each tile
        tiles = (*block_chunks(*tiles[:2], reader.blocks, (rows, cols)), -1)
    data = array_over(reader, tiles, "neon-" + tokenize(p, stamp, tiles, window))
    if attrs.get("scale_applied"):
        from hsad.io.envi import divided_by_factor

        attrs["stored_dtype"] = str(data.dtype)  # what --nodata is given in
        data, nodata = divided_by_factor(data, nodata, factor)
    return make_cube(data, transform=transform, crs=crs, nodata=nodata,
                     wavelength=wavelength, fwhm=fwhm, good_band=good, source_format="neon",
                     source_path=p, attrs=attrs)


__all__ = ["is_neon", "open_neon", "why_not_neon"]
