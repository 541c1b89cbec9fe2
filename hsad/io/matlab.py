"""MATLAB cubes: MAT v4/v5 via ``scipy.io.loadmat`` and v7.3 (HDF5) via ``h5py``.

The cube variable (rows, cols, bands) and the ground-truth map (rows, cols) are found
by name (``data``, ``hsi``, ``cube``...; ``map``, ``hsi_gt``, ``groundtruth``...) or
passed explicitly. MAT files carry no georeferencing: the pixel grid is the identity.
"""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import scipy.io as sio
import xarray as xr
from dask.base import tokenize

from hsad.cube import make_cube
from hsad.errors import FileFormatError, TruncatedFileError, UnsupportedError
from hsad.io.atomic import atomic_path
from hsad.io.geotiff import WindowReader, cast_cube, nm_scale, tile_chunks

#: MAT v5 stores each variable's size in 32 bits: larger cubes cannot be written.
MAT5_MAX_BYTES = 2**31 - 1

#: Names tried, in order and ignoring case, for the cube and the ground truth.
CUBE_KEYS = ("data", "hsi", "cube", "img", "image", "X", "Y", "hyperspectral")
GT_KEYS = ("map", "hsi_gt", "groundtruth", "ground_truth", "gt", "mask", "label", "labels")
WAVELENGTH_KEYS = ("wavelength", "wavelengths", "wl", "lambda")

_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
            "int64", "uint64"}
_SKIP_H5 = ("#refs#", "#subsystem#")


def _variables(path: str, hdf5: bool) -> list[tuple[str, tuple, str]]:
    """``(name, MATLAB shape, MATLAB class)`` of each top-level variable."""
    try:
        if not hdf5:
            return [(n, tuple(s), c) for n, s, c in sio.whosmat(path)]
        out = []
        with h5py.File(path, "r") as f:
            for name, obj in f.items():
                if name in _SKIP_H5 or not isinstance(obj, h5py.Dataset):
                    continue
                cls = obj.attrs.get("MATLAB_class", b"")
                cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                if obj.dtype.names or "MATLAB_empty" in obj.attrs:
                    cls = "complex" if obj.dtype.names else "empty"
                out.append((name, tuple(obj.shape[::-1]), cls))
        return out
    except Exception as exc:  # noqa: BLE001  scipy/h5py raise many types on bad files
        raise FileFormatError(f"not a readable MAT file ({type(exc).__name__}: {exc})",
                              path) from exc


def _listing(variables) -> str:
    return ", ".join(f"{n} ({'x'.join(map(str, s))} {c})" for n, s, c in variables) or "none"


def _by_name(names: list[str], wanted) -> str | None:
    lower = {n.lower(): n for n in names}
    for w in wanted:
        if w.lower() in lower:
            return lower[w.lower()]
    return None


def _cube_key(variables, key: str | None, path: str) -> str:
    shapes = {n: (s, c) for n, s, c in variables}
    if key is not None:
        if key not in shapes:
            raise FileFormatError(f"no variable {key!r}; variables: {_listing(variables)}", path)
        shape, cls = shapes[key]
        if len(shape) != 3 or cls not in _NUMERIC:
            raise FileFormatError(f"variable {key!r} is {'x'.join(map(str, shape))} {cls}, "
                                  "not a 3-D numeric cube", path)
        return key
    cands = [n for n, s, c in variables if len(s) == 3 and c in _NUMERIC]
    if not cands:
        raise FileFormatError("no 3-D numeric array to use as the cube; variables: "
                              f"{_listing(variables)}", path)
    return _by_name(cands, CUBE_KEYS) or max(cands, key=lambda n: np.prod(shapes[n][0]))


def _gt_key(variables, rows: int, cols: int, gt_key: str | None, path: str) -> str | None:
    shapes = {n: (s, c) for n, s, c in variables}
    if gt_key is not None:
        if gt_key not in shapes:
            raise FileFormatError(f"no variable {gt_key!r}; variables: {_listing(variables)}",
                                  path)
        if shapes[gt_key][0] != (rows, cols):
            raise FileFormatError(f"ground truth {gt_key!r} is "
                                  f"{'x'.join(map(str, shapes[gt_key][0]))}, "
                                  f"not {rows}x{cols} like the cube", path)
        return gt_key
    cands = [n for n, s, c in variables if s == (rows, cols) and c in _NUMERIC | {"logical"}]
    named = _by_name(cands, GT_KEYS)
    return named or next((n for n in cands if n.lower().endswith("_gt")), None)


def _wavelength_key(variables, bands: int) -> str | None:
    cands = [n for n, s, c in variables if c in _NUMERIC and int(np.prod(s)) == bands
             and sum(d > 1 for d in s) <= 1]
    return _by_name(cands, WAVELENGTH_KEYS)


class _H5Reader(WindowReader):
    """Windows of a MATLAB v7.3 variable; h5py sees MATLAB arrays transposed."""

    def __init__(self, path: str, key: str, shape, dtype):
        super().__init__(path, shape, dtype)
        self.key = key

    def _read(self, r0, r1, c0, c1, b0, b1) -> np.ndarray:
        try:
            with h5py.File(self.path, "r") as f:
                return np.transpose(f[self.key][b0:b1, c0:c1, r0:r1], (2, 1, 0))
        except (OSError, KeyError) as exc:
            raise TruncatedFileError(f"cannot read {self.key!r}: {exc}", self.path) from exc


def _read_h5(path: str, key: str) -> np.ndarray:
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f[key][()]).T
    except (OSError, KeyError) as exc:
        raise TruncatedFileError(f"cannot read {key!r}: {exc}", path) from exc


def _read_v5(path: str, keys: list[str]) -> dict:
    try:
        return sio.loadmat(path, variable_names=keys)
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"MAT file is truncated or corrupt ({type(exc).__name__}: "
                              f"{exc})", path) from exc


def _open(path, chunks, key, gt_key, want_gt: bool):
    p = os.fspath(path)
    if not Path(p).is_file():
        raise FileFormatError("no such file", p)
    hdf5 = h5py.is_hdf5(p)
    variables = _variables(p, hdf5)
    ckey = _cube_key(variables, key, p)
    rows, cols, bands = dict((n, s) for n, s, _ in variables)[ckey]
    gkey = _gt_key(variables, rows, cols, gt_key, p)
    wkey = _wavelength_key(variables, bands)
    extra = [k for k in (gkey if want_gt else None, wkey) if k is not None]
    tiles = tile_chunks(chunks, rows, cols)
    if hdf5:
        with h5py.File(p, "r") as f:
            dtype = f[ckey].dtype
        reader = _H5Reader(p, ckey, (rows, cols, bands), dtype)
        st = os.stat(p)
        data = da.from_array(reader, chunks=tiles, asarray=False, fancy=False,
                             meta=np.empty((0, 0, 0), dtype),
                             name="mat73-" + tokenize(p, ckey, st.st_mtime_ns, st.st_size, tiles))
        values = {k: _read_h5(p, k) for k in extra}
    else:
        values = _read_v5(p, [ckey, *extra])
        missing = [k for k in (ckey, *extra) if k not in values]
        if missing:
            raise FileFormatError(f"MAT file is truncated: variable {missing[0]!r} unreadable",
                                  p)
        data = da.from_array(np.ascontiguousarray(values[ckey]), chunks=tiles)
    wavelength = None
    if wkey is not None:
        wl = np.asarray(values[wkey], dtype=np.float64).reshape(-1)
        scale = nm_scale(None, wl)
        wavelength = wl * scale
    attrs = {"mat_version": "7.3" if hdf5 else "5", "mat_key": ckey, "gt_key": gkey}
    cube = make_cube(data, wavelength=wavelength, source_format="mat", source_path=p,
                     attrs=attrs)
    gt = None
    if want_gt and gkey is not None:
        gt = np.nan_to_num(np.asarray(values[gkey], dtype=np.float64)) != 0
    return cube, gt


def open_mat(path: str | os.PathLike, chunks=None, key: str | None = None) -> xr.DataArray:
    """Open the cube of a MAT file (v5 or v7.3) as a ``(y, x, band)`` DataArray.

    ``key`` names the variable; by default a common name or the largest 3-D numeric
    array. The detected ground-truth variable is recorded in ``attrs["gt_key"]``.
    """
    return _open(path, chunks, key, None, want_gt=False)[0]


def load_mat(path: str | os.PathLike, key: str | None = None, gt_key: str | None = None,
             chunks=None) -> tuple[xr.DataArray, np.ndarray | None]:
    """Return ``(cube, gt)``: the cube and its ground truth as a (rows, cols) bool array.

    ``gt`` is None when no ground-truth variable is found (and ``gt_key`` is not given).
    """
    return _open(path, chunks, key, gt_key, want_gt=True)


def write_mat(cube: xr.DataArray, path: str | os.PathLike, gt=None, *, key: str = "data",
              gt_key: str = "map", dtype=None) -> Path:
    """Write a cube (and optional ground truth) as a compressed MAT v5 file; return its path.

    The cube is materialised as ``key`` (rows, cols, bands); known wavelengths are saved
    as a ``wavelength`` row vector (nm), ground truth as uint8 ``gt_key``. Cubes over
    2 GiB raise UnsupportedError (the MAT v5 limit).
    """
    if dtype is not None:
        cube = cast_cube(cube, dtype)
    nbytes = int(np.prod(cube.shape)) * cube.dtype.itemsize
    if nbytes > MAT5_MAX_BYTES:
        raise UnsupportedError(f"cube is {nbytes / 2**30:.1f} GiB but MAT v5 variables are limited "
                               "to 2 GiB: write ENVI or GeoTIFF instead", path)
    variables = {key: np.asarray(cube.transpose("y", "x", "band").values)}
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if np.isfinite(wl).all():
        variables["wavelength"] = wl[None, :]
    if gt is not None:
        variables[gt_key] = np.asarray(getattr(gt, "values", gt), dtype=bool).astype(np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        sio.savemat(fh, variables, do_compression=True, oned_as="row")
    return Path(path)


__all__ = ["load_mat", "open_mat", "write_mat"]
