"""ENVI writer: ``write_envi`` streams a cube's chunks into a memory-mapped temporary data
file and renames data and header into place together; ``header_text`` is the ``.hdr``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine

from hsad.cube import DEFAULT_CHUNK, band_scaling, make_cube, physical_scaling, transform_of
from hsad.errors import ParameterError
from hsad.io.atomic import atomic_paths
from hsad.io.casting import cast_cube
from hsad.io.envi_georef import header_georef
from hsad.io.envi_header import DTYPE_CODES
from hsad.io.envi_pixels import EnviPixels, EnviWindowWriter
from hsad.io.input_guard import refuse_input_files
from hsad.io.sensor_georef import envi_header_fields, sensor_georef_of


def _output_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix.lower() == ".hdr":
        return p.with_suffix(""), p
    return p, (p.with_suffix(".hdr") if p.suffix else p.with_name(p.name + ".hdr"))


def _target_dtype(source: np.dtype, dtype) -> np.dtype:
    if dtype is None:
        widen = {np.dtype(bool): np.dtype("u1"), np.dtype("i1"): np.dtype("i2"),
                 np.dtype("f2"): np.dtype("f4")}
        dtype = widen.get(np.dtype(source), source)
    target = np.dtype(dtype).newbyteorder("=")
    if target not in DTYPE_CODES:
        names = ", ".join(sorted(str(d) for d in DTYPE_CODES))
        raise ParameterError(f"ENVI cannot store dtype {target} (supported: {names})")
    return target


def _as_cube(cube) -> xr.DataArray:
    if isinstance(cube, xr.DataArray):
        if set(cube.dims) == {"y", "x", "band"} and cube.dims != ("y", "x", "band"):
            cube = cube.transpose("y", "x", "band")
        if cube.ndim == 2:
            cube = cube.expand_dims("band", axis=-1)
        return cube
    arr = cube if isinstance(cube, da.Array) else np.asarray(cube)
    return make_cube(arr)


def _list(values, fmt=repr) -> str:
    items = [fmt(v) for v in values]
    lines = [", ".join(items[i:i + 8]) for i in range(0, len(items), 8)]
    return "{" + ",\n ".join(lines) + "}"


#: Control characters become spaces in header text (a NUL would make it "binary").
_CONTROL = {i: " " for i in (*range(32), 127) if chr(i) != "\n"}


def _clean(text, list_item: bool = True) -> str:
    """Header-safe text: no braces (they delimit values), no commas or line breaks in list
    items, no control characters."""
    text = str(text).replace("\r\n", "\n").translate(_CONTROL)
    text = text.replace("{", "(").replace("}", ")")
    return text.replace(",", ";").replace("\n", " ") if list_item else text


def _num(v) -> str:
    return repr(float(v))


def band_lines(coords, complete: bool = False) -> list[str]:
    """The ``wavelength units``, ``wavelength``, ``fwhm`` and ``bbl`` header lines of a
    cube's or spectra's band coordinates: wavelengths and FWHM where some are known (NaN
    written as such), or only where all are (``complete``: a spectral library, which
    readers resample by its wavelengths)."""
    known = np.all if complete else np.any
    lines = []
    if "wavelength" in coords and known(np.isfinite(coords["wavelength"].values)):
        lines += ["wavelength units = Nanometers",
                  f"wavelength = {_list(coords['wavelength'].values, _num)}"]
        if "fwhm" in coords and known(np.isfinite(coords["fwhm"].values)):
            lines.append(f"fwhm = {_list(coords['fwhm'].values, _num)}")
    if "good_band" in coords:
        lines.append(f"bbl = {_list(coords['good_band'].values.astype(int), str)}")
    return lines


def header_text(cube: xr.DataArray, dtype: np.dtype, interleave: str, byte_order: int) -> str:
    """The ``.hdr`` text for ``cube`` stored as ``dtype`` with this layout."""
    rows, cols, bands = cube.shape
    attrs = cube.attrs
    class_names = attrs.get("class_names")
    lines = ["ENVI",
             f"description = {{{_clean(attrs.get('description') or 'written by hsad', False)}}}",
             f"samples = {cols}", f"lines   = {rows}", f"bands   = {bands}",
             "header offset = 0",
             f"file type = {'ENVI Classification' if class_names else 'ENVI Standard'}",
             f"data type = {DTYPE_CODES[dtype]}", f"interleave = {interleave}",
             f"byte order = {byte_order}"]
    crs, transform = cube.rio.crs, transform_of(cube)
    sensor = sensor_georef_of(cube, transform)
    if sensor is not None and crs is None:  # placed by its GCPs or RPCs: no pixel-offset grid
        transform = Affine.identity()
    try:
        georef = header_georef(crs, transform)
    except ParameterError as exc:  # name the input whose grid ENVI cannot store
        raise ParameterError(exc.problem, exc.path or attrs.get("source_path")) from None
    lines += [f"{key} = {value}" for key, value in georef.items()]
    if crs is not None and "TOWGS84" in crs.to_wkt() and "TOWGS84" not in georef.get(
            "coordinate system string", ""):
        warnings.warn(f"{attrs.get('source_path') or 'the cube'}: its CRS's datum shift to "
                      "WGS 84 (TOWGS84) has no place in ENVI's coordinate system string "
                      "(ESRI WKT), so GDAL and hsad read the header's CRS back without it: "
                      "maps in WGS 84 then move by the shift (tens of metres); a GeoTIFF "
                      "keeps it", UserWarning, stacklevel=3)
    if sensor is not None and "map info" in georef:  # GDAL reads neither beside a map info
        if sensor.rpcs is not None:
            warnings.warn(f"{attrs.get('source_path') or 'the cube'}: its RPCs are not "
                          "written: GDAL ignores an ENVI 'rpc info' beside a 'map info' (a "
                          "GeoTIFF keeps both)",
                          UserWarning, stacklevel=3)
        sensor = None
    lines += [f"{key} = {value}" for key, value in envi_header_fields(
        sensor, attrs.get("source_path")).items()]
    coords = cube.coords
    lines += band_lines(coords)
    if "band_name" in coords:
        lines.append(f"band names = {_list(coords['band_name'].values, _clean)}")
    if attrs.get("nodata") is not None:
        lines.append(f"data ignore value = {_num(attrs['nodata'])}")
    # GDAL's spelling of band scale and offset (DN · gain + offset); values a reader divided
    # by the reflectance scale factor take the physical rule's gain and offset, factor done
    scaling = physical_scaling(cube) if attrs.get("scale_applied") else band_scaling(cube)
    if scaling is not None:
        lines.append(f"data gain values = {_list(scaling[0], _num)}")
        lines.append(f"data offset values = {_list(scaling[1], _num)}")
    if attrs.get("reflectance_scale_factor") and not attrs.get("scale_applied"):
        lines.append(f"reflectance scale factor = {_num(attrs['reflectance_scale_factor'])}")
    if class_names:
        lines.append(f"classes = {len(class_names)}")
        lines.append(f"class names = {_list(class_names, _clean)}")
        lookup = attrs.get("class_lookup")
        if lookup is not None and len(lookup) == 3 * len(class_names):  # the colours
            lines.append(f"class lookup = {_list(lookup, lambda v: str(int(v)))}")
    return "\n".join(lines) + "\n"


def write_envi(cube, path: str | os.PathLike, interleave: str = "bsq", byte_order: int = 0,
               dtype=None) -> Path:
    """Write ``cube`` as an ENVI data file plus ``.hdr``; return the data file path.

    ``path`` names the data file (``out.img``, ``out.bil``, ``out``); the header goes to
    ``out.hdr`` (a ``.hdr`` path puts the data beside it without extension). ``dtype``
    casts as :func:`hsad.io.casting.cast_cube` does (rounded and clipped, a nodata value
    the type cannot hold dropped with a warning). Chunks are
    streamed into a memory-mapped temporary file, then data and header are renamed into
    place together. Wavelength (nm), fwhm, bbl, band names, nodata, band scales and offsets
    (``data gain values``, ``data offset values``, as GDAL writes them) and the
    georeferencing (``map info`` + ``coordinate system string``) are kept. A header named
    ``out.img.hdr`` beside ``out.img`` (which readers take before ``out.hdr``) is removed.
    """
    cube = _as_cube(cube)
    interleave = str(interleave).lower()
    if interleave not in ("bsq", "bil", "bip"):
        raise ParameterError(f"interleave must be bsq, bil or bip, got {interleave!r}")
    if byte_order not in (0, 1):
        raise ParameterError(f"byte_order must be 0 (little-endian) or 1 (big-endian), "
                             f"got {byte_order!r}")
    target = _target_dtype(cube.dtype, dtype)
    data_path, header_path = _output_paths(path)
    own = cube.attrs.get("header_path")
    stale = stale_headers(data_path, header_path)  # checked before any write
    for header in stale:
        if own and os.path.realpath(header) == os.path.realpath(own):
            raise ParameterError(f"writing here would remove the header of the input, "
                                 f"{header}; choose another output name", data_path)
    refuse_input_files([data_path, header_path], cube)
    if target != cube.dtype:  # as every writer casts: a nodata -9999 into uint16 had been
        cube = cast_cube(cube, target)  # kept, its pixels wrapped to 55537 and data
    data = cube.data if isinstance(cube.data, da.Array) else da.from_array(
        cube.data, chunks=(DEFAULT_CHUNK, DEFAULT_CHUNK, -1))
    nodata = cube.attrs.get("nodata")
    if data.dtype.kind == "f" and nodata is not None and np.isfinite(nodata):
        data = da.where(da.isnan(data), nodata, data)  # a file mask's NaN: the nodata value
    text = header_text(cube, target, interleave, byte_order)
    file_dtype = target.newbyteorder(">" if byte_order else "<")
    with atomic_paths(data_path, header_path) as (tmp_data, tmp_header):
        with open(tmp_data, "r+b") as fh:
            fh.truncate(data.size * target.itemsize)
            if data.size and hasattr(os, "posix_fallocate"):
                # reserve the blocks now: a full disk is then an ENOSPC error here, not a
                # SIGBUS when the memory map writes a page (see hsad.io.atomic)
                try:
                    os.posix_fallocate(fh.fileno(), 0, data.size * target.itemsize)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                        raise
        pixels = EnviPixels(str(tmp_data), file_dtype, data.shape, interleave, 0)
        da.store(data, EnviWindowWriter(pixels), lock=False)
        tmp_header.write_text(text, encoding="utf-8")
    remove_headers(stale, header_path)  # readers would take them before ours, GDAL too
    return data_path


def remove_headers(stale: list[Path], written: Path) -> None:
    """Delete the ``stale`` headers, except one that is now the header just ``written``
    (a case-insensitive file system, as on macOS and Windows: ``out.HDR`` is ``out.hdr``)."""
    for header in stale:
        with contextlib.suppress(FileNotFoundError):
            if not os.path.samefile(header, written):
                header.unlink()


def stale_headers(data_path: Path, header_path: Path) -> list[Path]:
    """Headers beside ``data_path`` that readers would take instead of ``header_path``
    (GDAL and hsad look for them without regard to case), to be removed: ``out.img.hdr``
    in any letter case, which readers try first, and ``out.hdr`` in another case than the
    one written. One that belongs to another data file (``out.img.hdr`` of
    ``out.img.dat``) cannot be removed, nor left where readers of ``out.img`` would take
    it: ParameterError. ``Scene.hdr`` of a ``Scene.img`` beside a new ``scene.img`` (a
    case-sensitive file system) is another cube's, and readers take ``scene.hdr``: left."""
    folder = data_path.parent if str(data_path.parent) else Path(".")
    first = (data_path.name + ".hdr").lower()
    try:
        entries = [e for e in folder.iterdir() if e.is_file()]
    except OSError:
        return []

    def owner(header: Path) -> Path | None:  # a data file other than ours, named for it
        stem = header.name[:-4]
        return next((e for e in entries if e.name != data_path.name
                     and not e.name.lower().endswith(".hdr")
                     and (e.name == stem or e.name.rsplit(".", 1)[0] == stem)), None)

    stale = []
    for e in entries:
        low = e.name.lower()
        if e.name == header_path.name or low not in (first, header_path.name.lower()):
            continue
        other = owner(e)
        if other is None:
            stale.append(e)
        elif low == first:
            raise ParameterError(f"{e.name} beside it is the header of {other.name}, and "
                                 f"readers would take it for {data_path.name}: choose "
                                 "another output name", data_path)
    return sorted(stale)


__all__ = ["header_text", "write_envi"]
