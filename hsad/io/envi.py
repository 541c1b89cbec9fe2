"""ENVI cubes: lazy reading through memory-mapped windows (the writer is in
:mod:`hsad.io.envi_writer`).

``open_envi`` returns a dask-backed cube whose chunks are ``(y, x)`` tiles with all
bands. Each chunk maps only the rows it needs (``np.memmap``): a native-endian BIP file's
window is a copy-on-write view of those rows, a BIP window that is copied is read by
positional reads, other windows are copied into a native-endian ``(y, x, band)`` array
and unmapped. Memory follows the chunk size, not the scene size. The window access itself,
for reading and writing, is :mod:`hsad.io.envi_pixels`; this module finds the files
(header, data, gzip) and makes the cube.
"""

from __future__ import annotations

import errno
import gzip
import os
import tempfile
import warnings
import weakref
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from dask.base import tokenize

from hsad.cube import (
    DEFAULT_CHUNK,
    make_cube,
    nodata_hits,
    one_nodata,
    with_band_scaling,
)
from hsad.errors import (
    FileFormatError,
    HeaderError,
    ParameterError,
    TruncatedFileError,
    UnsupportedError,
)
from hsad.io.envi_files import data_candidates, find_data, find_header, header_candidates
from hsad.io.envi_gdal_view import pam_nodata
from hsad.io.envi_georef import georef_from_header, sensor_georef_from_header
from hsad.io.envi_header import EnviHeader, band_gains, parse_header, split_list
from hsad.io.envi_pixels import EnviPixels, EnviWindowWriter
from hsad.io.missing import no_file
from hsad.io.physical_units import physical_cube
from hsad.io.sensor_georef import ATTR as SENSOR_ATTR
from hsad.io.window import (
    WindowView,
    array_over,
    check_window,
    window_attrs,
    window_transform,
)
from hsad.lazy_modules import moved_names

#: Decompressed gzip payloads up to this size stay in memory; larger go to a temp file.
_GZIP_IN_MEMORY = 64 * 2**20
_UNSUPPORTED_FILE_TYPES = ("envi meta file", "envi virtual mosaic", "envi fft result")


# --------------------------------------------------------------------------- files


def _interleave_from_name(data_path: Path) -> str:
    ext = data_path.suffix.lower().lstrip(".")
    return ext if ext in ("bsq", "bil", "bip") else "bsq"


def _starts_with_envi(path: Path) -> bool:
    from hsad.io import check_regular

    check_regular(path)  # a named pipe would be waited on, a device read without end
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except PermissionError:
        raise FileFormatError("permission denied (file is not readable)", path) from None
    return head.lstrip(b"\xef\xbb\xbf").lstrip().upper().startswith(b"ENVI")


def resolve_paths(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """``(header, data)`` for a header or data path; ``data`` is None when given a header
    (it is looked up once the header is parsed)."""
    p = Path(path)
    if not p.exists():
        raise FileFormatError(no_file(p), p)
    if p.is_dir():
        raise FileFormatError("is a directory, not an ENVI header or data file", p)
    if p.suffix.lower() == ".hdr":
        return p, None
    header = find_header(p)
    if header is not None:
        return header, p
    if _starts_with_envi(p):
        return p, None
    looked = ", ".join(header_candidates(p))
    raise HeaderError(f"no ENVI header found beside this file (looked for {looked})", p)


def _locate_data(hdr: EnviHeader, data: Path | None) -> Path:
    if data is None:
        data = find_data(hdr.path, hdr.interleave)
        if data is None:
            names = data_candidates(hdr.path, hdr.interleave)
            from hsad.io import check_regular

            wanted = {n.lower() for n in names}  # found as find_data finds, in any case
            for entry in os.scandir(hdr.path.parent):  # a named pipe or device: not "not found"
                if entry.name.lower() in wanted:
                    check_regular(entry.path)
            folders = [hdr.path.parent / n for n in names if (hdr.path.parent / n).is_dir()]
            if folders:
                raise FileFormatError("data file is a directory", folders[0])
            looked = ", ".join(names)
            raise FileFormatError(f"data file not found for this header (looked for {looked})",
                                  hdr.path)
    if data.is_dir():
        raise FileFormatError("data file is a directory", data)
    from hsad.io import check_regular

    check_regular(data)  # a named pipe: opening it would wait for a writer
    try:
        with open(data, "rb"):
            pass
    except PermissionError:
        raise FileFormatError("permission denied (data file is not readable)", data) from None
    return data


#: bytes a gzip data file may decompress to beyond what its header declares (then read
#: to the end, so that its checksum is verified); more is refused without inflating it all
GZIP_SURPLUS = 64 * 2**20


def _gunzip(data: Path, needed: int):
    """Decompress a gzip data file: bytes when small, else a temporary file path. Only the
    ``needed`` bytes the header declares are kept; the rest is read to verify the
    checksum, unless it runs past :data:`GZIP_SURPLUS` (a 3 MB file inflating to 3 GiB,
    under a header of one byte, was held whole in memory)."""
    with open(data, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        raise FileFormatError("header says 'file compression = 1' but the data file is not "
                              "gzip-compressed", data)
    tmp = None
    try:
        with gzip.open(data, "rb") as src:
            if needed <= _GZIP_IN_MEMORY:
                payload = src.read(needed)
                size, source = len(payload), payload
            else:
                fd, tmp = tempfile.mkstemp(prefix="hsad-envi-", suffix=".raw")
                with os.fdopen(fd, "wb") as dst:
                    left = needed
                    while left and (piece := src.read(min(left, 8 * 2**20))):
                        dst.write(piece)
                        left -= len(piece)
                size, source = needed - left, tmp
            surplus = 0
            while piece := src.read(8 * 2**20):  # to the end: the checksum is verified there
                surplus += len(piece)
                if surplus > GZIP_SURPLUS:
                    raise FileFormatError(
                        f"decompresses to more than {GZIP_SURPLUS // 2**20} MiB beyond the "
                        f"{needed} bytes its header declares: not this header's data", data)
    except BaseException as exc:
        if tmp is not None:
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise FileFormatError(f"decompressing it filled the temporary folder "
                                  f"{tempfile.gettempdir()}: set TMPDIR to a larger one, or "
                                  "decompress it yourself (gunzip)", data) from None
        if isinstance(exc, (OSError, EOFError, zlib.error)):
            raise FileFormatError(f"corrupt gzip data (file compression = 1): {exc}",
                                  data) from None
        raise
    return source, size


def _nodata(hdr: EnviHeader, data_path: Path) -> float | None:
    """The header's nodata, or the one a GDAL ``.aux.xml`` sidecar gives every band (as
    GDAL reads the file); differing values per band: the first band's, with a warning."""
    sidecar = pam_nodata(data_path, hdr.bands)
    if not sidecar:
        return hdr.nodata
    return one_nodata([sidecar.get(b, hdr.nodata) for b in range(hdr.bands)], data_path,
                      "its .aux.xml sidecar gives the bands")


def _framed(hdr: EnviHeader) -> str:
    pre, post = hdr.frame_offsets
    return f", lines framed by {pre} + {post} bytes" if pre or post else ""


def _pixels(hdr: EnviHeader, data: Path, interleave: str) -> EnviPixels:
    shape = (hdr.lines, hdr.samples, hdr.bands)
    layout = EnviPixels(b"", hdr.dtype, shape, interleave, hdr.header_offset, hdr.frame_offsets)
    needed = layout.offset + layout.span()
    if hdr.file_compression:
        source, size = _gunzip(data, needed)
        what = "decompressed data"
    else:
        source, size, what = data, data.stat().st_size, "data file"
    if size < needed:
        if isinstance(source, str):
            os.unlink(source)
        raise TruncatedFileError(
            f"{what} is truncated: expected {needed} bytes (header offset {hdr.header_offset} + "
            f"{hdr.lines} lines x {hdr.samples} samples x {hdr.bands} bands x "
            f"{hdr.dtype.itemsize} bytes{_framed(hdr)}), found {size}", data)
    pixels = EnviPixels(source, hdr.dtype, shape, interleave, hdr.header_offset,
                        hdr.frame_offsets)
    if isinstance(source, str):  # temporary decompressed file: remove with the reader
        weakref.finalize(pixels, _remove, source)
    return pixels


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _chunk_sizes(chunks, rows: int, cols: int) -> tuple[int, int]:
    if chunks is None:
        chunks = DEFAULT_CHUNK
    if isinstance(chunks, (int, np.integer)):
        chunks = (int(chunks), int(chunks))
    if isinstance(chunks, dict) and set(chunks) <= {"y", "x", "band"}:
        chunks = (chunks.get("y", DEFAULT_CHUNK), chunks.get("x", DEFAULT_CHUNK))
    if not isinstance(chunks, (tuple, list)) or len(chunks) != 2:
        raise ParameterError(f"chunks must be an int, (rows, cols) or {{'y':, 'x':}}, "
                             f"got {chunks!r}")
    out = []
    for c, n in zip(chunks, (rows, cols), strict=True):
        if not isinstance(c, (int, np.integer)) or (c < 1 and c != -1):
            raise ParameterError(f"chunk sizes must be positive integers (or -1), got {chunks!r}")
        out.append(n if c == -1 else min(int(c), n))
    return out[0], out[1]


# --------------------------------------------------------------------------- public API


def open_envi(path: str | os.PathLike, chunks: int | tuple | None = None,
              apply_scale: bool = False, window=None) -> xr.DataArray:
    """Open an ENVI cube (header or data path) lazily as a ``(y, x, band)`` DataArray.

    Chunks are ``(y, x)`` tiles with all bands (``chunks``: int, ``(rows, cols)`` or
    ``{"y": rows, "x": cols}``; -1 = whole axis; default ``hsad.cube.DEFAULT_CHUNK``).
    ``apply_scale`` divides by the header's ``reflectance scale factor`` (float32 result,
    nodata pixels become NaN), and applies its ``data gain values`` and ``data offset
    values`` where it has them: (DN · gain + offset) / factor. ``window`` (an
    :class:`hsad.cube.subset.Window`): only that window, read as a file of its own
    (:mod:`hsad.io.window`).
    Raises :class:`~hsad.errors.HsadError` subclasses for unreadable input.
    """
    header_path, data_hint = resolve_paths(path)
    hdr = parse_header(header_path)
    if hdr.is_spectral_library:
        raise UnsupportedError(
            f"file type '{hdr.file_type}' holds spectra, not an image; read it with "
            "hsad.io.envi.read_spectral_library(path)", header_path)
    if hdr.file_type.lower() in _UNSUPPORTED_FILE_TYPES:
        raise UnsupportedError(f"file type '{hdr.file_type}' is not supported", header_path)
    data_path = _locate_data(hdr, data_hint)
    interleave = hdr.interleave or _interleave_from_name(data_path)
    pixels = _pixels(hdr, data_path, interleave)
    whole = pixels.shape
    if window is not None:
        check_window(window, whole, header_path)
        pixels = WindowView(pixels, window.row_off, window.col_off, window.height, window.width)
    cy, cx = _chunk_sizes(chunks, pixels.shape[0], pixels.shape[1])
    stat = data_path.stat()
    name = "envi-" + tokenize(str(header_path.resolve()), str(data_path.resolve()),
                              stat.st_mtime_ns, stat.st_size, hdr.raw, cy, cx, window)
    data = array_over(pixels, (cy, cx, hdr.bands), name, lock=False, fancy=True,
                      inline_array=True)
    transform, crs = georef_from_header(hdr.raw, header_path, gdal=hdr.gdal, text=hdr.text)
    sensor = sensor_georef_from_header(hdr.raw, header_path, gdal=hdr.gdal, grid=transform,
                                       data_path=data_path)
    transform = window_transform(transform, crs, window)
    sensor = sensor and sensor.windowed(window, transform or Affine.identity())

    nodata, scale = _nodata(hdr, data_path), hdr.reflectance_scale_factor
    gains = band_gains(hdr.raw, hdr.bands, header_path)
    gained = gains is not None and not (np.all(np.asarray(gains[0]) == 1)
                                        and not np.any(gains[1]))
    # the factor alone divides here; with gains and offsets too, the whole physical rule
    # is applied below (physical_cube: a GeoTIFF's band scale written as ENVI gains by
    # `hsad convert` had been left unapplied)
    scaled = bool(apply_scale and scale and not gained)
    stored = str(data.dtype)  # what --nodata is given in, once scaled
    if scaled:
        data, nodata = divided_by_factor(data, nodata, scale)
    attrs = {
        "interleave": interleave, "byte_order": hdr.byte_order, "data_type": hdr.data_type,
        "header_offset": hdr.header_offset, "file_type": hdr.file_type,
        "file_compression": hdr.file_compression, "reflectance_scale_factor": scale,
        "scale_applied": scaled, "description": hdr.description,
        "wavelength_units": hdr.wavelength_units, "header_path": str(header_path),
        "data_path": str(data_path), "envi_header": dict(hdr.raw),
        **window_attrs(window, whole), **({"stored_dtype": stored} if scaled else {}),
    }
    if hdr.class_names is not None:
        attrs["class_names"] = list(hdr.class_names)
        if (lookup := class_lookup(hdr.raw.get("class lookup"), len(hdr.class_names))):
            attrs["class_lookup"] = lookup
    if sensor:
        attrs[SENSOR_ATTR] = sensor
    cube = make_cube(data, transform=transform, crs=crs, nodata=nodata,
                     wavelength=hdr.wavelength, fwhm=hdr.fwhm, good_band=hdr.good_band,
                     band_names=hdr.band_names, source_format="envi",
                     source_path=str(data_path), attrs=attrs)
    cube = cube if gains is None else with_band_scaling(cube, *gains)
    return physical_cube(cube) if apply_scale and gained else cube


def class_lookup(text: str | None, classes: int) -> list[int] | None:
    """A classification's ``class lookup`` (an RGB triple of 0–255 for each class, as
    GDAL reads it into the colour table), or None where it is missing or not that."""
    try:
        values = [int(v) for v in split_list(text or "")]
    except ValueError:
        return None
    if len(values) != 3 * classes or not all(0 <= v <= 255 for v in values):
        return None
    return values


def divided_by_factor(data: da.Array, nodata, factor: float):
    """``(data / factor as float32, nodata)``, lazily, the nodata pixels NaN (and the nodata
    value then NaN): a ``reflectance scale factor`` applied (``open_cube(apply_scale=True)``)."""
    values = data.astype(np.float32) / np.float32(factor)
    if nodata is not None:
        values = da.where(nodata_hits(data, nodata), np.float32(np.nan), values)
        nodata = float("nan")
    return values, nodata


def read_spectral_library(path: str | os.PathLike) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Read an ENVI Spectral Library: ``(spectra (n, bands), names, wavelength nm)``.

    Each library line is one spectrum; ``samples`` is its number of bands.
    Wavelengths are NaN when the header gives none.
    """
    header_path, data_hint = resolve_paths(path)
    hdr = parse_header(header_path)
    if not hdr.is_spectral_library:
        raise FileFormatError(f"not an ENVI Spectral Library (file type '{hdr.file_type}'); "
                              "open images with open_envi", header_path)
    if hdr.bands != 1:
        raise UnsupportedError(f"spectral library with bands = {hdr.bands} (expected 1)",
                               header_path)
    data_path = _locate_data(hdr, data_hint)
    pixels = _pixels(hdr, data_path, hdr.interleave or "bsq")
    needed = pixels.offset + pixels.span()
    if not hdr.file_compression and (size := data_path.stat().st_size) > needed:
        # an image's file may run on (GDAL reads it); a library's is its spectra exactly,
        # and a longer one is no library of this header's (a CSV export named like it)
        raise FileFormatError(f"holds {size} bytes where the library of {header_path.name} "
                              f"takes {needed}: not its data file", data_path)
    spectra = pixels[:, :, 0]
    names = hdr.spectra_names
    if names is None or len(names) != hdr.lines:
        if names is not None:
            warnings.warn(f"{header_path}: {len(names)} spectra names for {hdr.lines} spectra;"
                          " using 'Spectrum <i>'", UserWarning, stacklevel=2)
        names = [f"Spectrum {i + 1}" for i in range(hdr.lines)]
    wavelength = hdr.wavelength if hdr.wavelength is not None else np.full(hdr.samples, np.nan)
    return spectra, list(names), np.asarray(wavelength, dtype=np.float64)


#: the writers that left this module for their own (2026-12-02), found here with a warning
MOVED = {n: "hsad.io.envi_writer" for n in ("header_text", "write_envi")}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.io.envi_writer import header_text as header_text
    from hsad.io.envi_writer import write_envi as write_envi

__getattr__ = moved_names(__name__, MOVED, warn=True)


__all__ = ["EnviPixels", "EnviWindowWriter", "divided_by_factor", "open_envi",
           "read_spectral_library"]
