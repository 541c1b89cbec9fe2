"""Writing a cube as a compressed MAT v5 file, streamed band by band.

``scipy.io.savemat`` needs the whole array in memory and then copies and compresses it
there (a peak of several times the cube). The cube's own variable is written here as the
element scipy writes (a ``miCOMPRESSED`` element holding a ``miMATRIX``, the same bytes
once decompressed; ``tests/test_matlab.py`` compares them), its values compressed a group
of bands at a time; the file header and the small variables (wavelengths, bad-band list,
ground truth) are written by scipy.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import scipy.io as sio
import xarray as xr

from hsad.cube import georeferenced, physical_scaling, transform_of
from hsad.errors import ParameterError, UnsupportedError
from hsad.io.atomic import atomic_path
from hsad.io.casting import CastTally, cast_cube
from hsad.io.input_guard import refuse_input_files
from hsad.progress import bar_style, wanted

#: MAT v5 stores each variable's size in 32 bits: larger cubes cannot be written.
MAT5_MAX_BYTES = 2**31 - 1
#: what MATLAB takes for a variable name (``namelengthmax`` is 63)
MATLAB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
#: MATLAB's keywords (``iskeyword``), which are no variable names
MATLAB_KEYWORDS = frozenset(
    "break case catch classdef continue else elseif end for function global if otherwise "
    "parfor persistent return spmd switch try while".split())
#: Bytes of the cube read and compressed at a time (a group of whole bands).
BLOCK_BYTES = 64 * 2**20

#: numpy type -> (MATLAB array class mxCLASS, data element type miTYPE)
_CLASSES = {
    np.dtype(np.int8): (8, 1), np.dtype(np.uint8): (9, 2), np.dtype(np.int16): (10, 3),
    np.dtype(np.uint16): (11, 4), np.dtype(np.int32): (12, 5), np.dtype(np.uint32): (13, 6),
    np.dtype(np.int64): (14, 12), np.dtype(np.uint64): (15, 13),
    np.dtype(np.float32): (7, 7), np.dtype(np.float64): (6, 9),
}
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED = 1, 5, 6, 14, 15


def _tag(mi_type: int, nbytes: int) -> bytes:
    return struct.pack("=II", mi_type, nbytes)


def _padded(element: bytes) -> bytes:
    """A data element padded to a multiple of 8 bytes."""
    return element + bytes(-len(element) % 8)


def _matrix_head(name: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[bytes, int]:
    """The ``miMATRIX`` element's bytes up to its values, and the padding after them (an
    element of at most 4 bytes in the small format, as scipy and MATLAB write it)."""
    mx_class, mi_type = _CLASSES[dtype]
    nbytes = int(np.prod(shape)) * dtype.itemsize
    small = nbytes <= 4
    pad = 4 - nbytes if small else -nbytes % 8
    raw_name = name.encode("latin1")
    name_element = (struct.pack("=HH", _MI_INT8, len(raw_name)) + raw_name.ljust(4, b"\0")
                    if len(raw_name) <= 4 else _padded(_tag(_MI_INT8, len(raw_name)) + raw_name))
    body = (_tag(_MI_UINT32, 8) + struct.pack("=II", mx_class, 0)
            + _padded(_tag(_MI_INT32, 4 * len(shape)) + struct.pack(f"={len(shape)}i", *shape))
            + name_element
            + (struct.pack("=HH", mi_type, nbytes) if small else _tag(mi_type, nbytes)))
    return _tag(_MI_MATRIX, len(body) + nbytes + pad) + body, pad


def _band_groups(bands: int, band_bytes: int):
    """``(b0, b1)`` groups of whole bands of at most BLOCK_BYTES (one band at least)."""
    step = max(1, BLOCK_BYTES // max(band_bytes, 1))
    return [(b0, min(b0 + step, bands)) for b0 in range(0, bands, step)]


def write_streamed(fh, name: str, data, progress: bool | None = None, label: str = "") -> None:
    """Append ``data`` (rows, cols, bands; numpy or dask) to the open MAT v5 file ``fh`` as
    the compressed variable ``name``, reading a group of whole bands at a time (``label``:
    the file's name on the progress bar)."""
    from tqdm.auto import tqdm

    dtype = np.dtype(data.dtype).newbyteorder("=")
    rows, cols, bands = data.shape
    head, pad = _matrix_head(name, (rows, cols, bands), dtype)
    start = fh.tell()
    fh.write(_tag(_MI_COMPRESSED, 0))  # its size once known
    deflate = zlib.compressobj()
    fh.write(deflate.compress(head))
    groups = _band_groups(bands, rows * cols * dtype.itemsize)
    show = wanted(progress) and len(groups) > 1
    for b0, b1 in tqdm(groups, desc=f"writing {label}".rstrip(), unit="block",
                       disable=not show, **(bar_style() if show else {})):
        block = np.asarray(data[:, :, b0:b1])
        # MATLAB's column order: band by band, each band column by column
        fh.write(deflate.compress(np.ascontiguousarray(block.transpose(2, 1, 0), dtype)))
    fh.write(deflate.compress(bytes(pad)))
    fh.write(deflate.flush())
    end = fh.tell()
    if end - start - 8 >= 2**32:
        raise UnsupportedError("the compressed cube exceeds MAT v5's 4 GiB element size: "
                               "write ENVI or GeoTIFF instead", label or None)
    fh.seek(start)
    fh.write(_tag(_MI_COMPRESSED, end - start - 8))
    fh.seek(end)


def _warn_lost(cube: xr.DataArray, path) -> None:
    """One warning naming what a MAT file cannot keep: the georeference, the nodata value
    (its pixels stay in the cube as data) and the values' scaling to physical units."""
    lost = []
    if georeferenced(transform_of(cube), cube.rio.crs):
        lost.append("CRS and transform")
    nodata = cube.attrs.get("nodata")
    if nodata is not None and not np.isnan(nodata):
        lost.append(f"nodata value ({nodata:g}: those pixels become data; pass the value "
                    "again, e.g. --nodata, when reading the file)")
    if physical_scaling(cube) is not None:
        lost.append("band scale, offset or reflectance scale factor (the values are written "
                    "as stored, not in physical units)")
    if lost:
        warnings.warn(f"{path}: a MAT file keeps no {' and no '.join(lost)}", UserWarning,
                      stacklevel=3)


def write_mat(cube: xr.DataArray, path: str | os.PathLike, gt=None, *, key: str = "data",
              gt_key: str = "map", dtype=None, progress: bool | None = None) -> Path:
    """Write a cube (and optional ground truth) as a compressed MAT v5 file; return its path.

    The cube is written as ``key`` (rows, cols, bands), read a group of bands at a time
    (:data:`BLOCK_BYTES`); its wavelengths are saved as a ``wavelength`` row vector (nm,
    NaN for a band whose wavelength is unknown), bad bands as a ``bbl`` row vector (1 good,
    0 bad) when there are any, ground truth as uint8 ``gt_key``. Cubes over 2 GiB raise
    UnsupportedError (the MAT v5 limit). A CRS, transform, nodata value or scaling to
    physical units, which MAT files cannot hold, is named in one warning. ``progress``:
    a bar over the groups (default: when stderr is a terminal).
    """
    for name in (key, gt_key):
        if not MATLAB_NAME.fullmatch(str(name)) or name in MATLAB_KEYWORDS:
            raise ParameterError(f"{name!r} is no MATLAB variable name (a letter, then "
                                 "letters, digits or underscores, 63 at most; no keyword)",
                                 path)
    taken = {"wavelength", "bbl"} | ({gt_key} if gt is not None else set())
    if key in taken or (gt is not None and gt_key in {"wavelength", "bbl"}):
        raise ParameterError(f"variable names must differ from each other and from "
                             f"'wavelength' and 'bbl': key={key!r}, gt_key={gt_key!r}", path)
    refuse_input_files([path], cube, gt)
    tally = CastTally()
    if dtype is not None:
        cube = cast_cube(cube, dtype, tally)
    nbytes = int(np.prod(cube.shape)) * cube.dtype.itemsize
    if nbytes > MAT5_MAX_BYTES:
        raise UnsupportedError(f"cube is {nbytes / 2**30:.1f} GiB but MAT v5 variables are limited "
                               "to 2 GiB: write ENVI or GeoTIFF instead", path)
    _warn_lost(cube, path)
    data = cube.transpose("y", "x", "band").data
    small = {}
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if np.isfinite(wl).any():  # NaN where a band's wavelength is unknown
        small["wavelength"] = wl[None, :]
    good = np.asarray(cube["good_band"].values, dtype=bool)
    if not good.all():  # read back as the bad-band list
        small["bbl"] = good.astype(np.uint8)[None, :]
    if gt is not None:
        small[gt_key] = np.asarray(getattr(gt, "values", gt), dtype=bool).astype(np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        sio.savemat(fh, {}, oned_as="row")  # the file header
        if np.dtype(data.dtype).newbyteorder("=") in _CLASSES:
            write_streamed(fh, key, data, progress, Path(path).name)
        else:  # a type MATLAB has no class for: scipy's conversion, in memory
            small = {key: np.asarray(data), **small}
        sio.savemat(fh, small, do_compression=True, oned_as="row")
    tally.warn(path, cube.dtype)
    return Path(path)


__all__ = ["MAT5_MAX_BYTES", "write_mat", "write_streamed"]
