"""MATLAB cubes: MAT v4/v5 via ``scipy.io.loadmat`` and v7.3 (HDF5) via ``h5py``.

The cube variable (rows, cols, bands) and the ground-truth map (rows, cols) are found
by name (``data``, ``hsi``, ``cube``...; ``map``, ``hsi_gt``, ``groundtruth``...) or
passed explicitly (:mod:`hsad.io.mat_variables`). MAT files carry no georeferencing: the
pixel grid is the identity. A v5 file's bytes are checked first (:mod:`hsad.io.mat_v5`):
SciPy's reader crashes the interpreter on some damaged files.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import scipy.io as sio
import scipy.sparse
import xarray as xr
from dask.base import tokenize

from hsad.cube import make_cube, wrap_numpy
from hsad.errors import FileFormatError, TruncatedFileError
from hsad.io.geotiff import tile_chunks
from hsad.io.hdf5_file import H5_ERRORS, Hdf5Reader, chunk_blocks, file_stamp, row_cache
from hsad.io.mat_v5 import stored_type
from hsad.io.mat_variables import (
    BBL_KEYS,
    NUMERIC,
    band_vector_key,
    check_band_axis,
    cube_key,
    dims,
    listing,
    maps_of,
    mat_variables,
    plane,
    probe,
    truth_key,
    truth_off_grid,
)
from hsad.io.missing import no_file
from hsad.io.wavelength_units import wavelength_scale
from hsad.io.window import array_over, check_window, window_attrs
from hsad.lazy_modules import moved_names


def _good_bands(value, key: str, p: str) -> np.ndarray | None:
    """A ``bbl`` vector as good-band flags (1 good, 0 bad, as ENVI's), or None with a
    warning when it holds other values."""
    bbl = _as_float(value, key, p).reshape(-1)
    if not np.isin(bbl, (0.0, 1.0)).all():
        warnings.warn(f"{p}: {key!r} holds values other than 0 and 1: not read as a bad-band "
                      "list", UserWarning, stacklevel=4)
        return None
    return bbl != 0


def _numeric(dtype: np.dtype, key: str, path: str) -> np.dtype:
    """``dtype`` in native byte order; FileFormatError unless it is a real number type."""
    if dtype.kind not in "biuf":
        raise FileFormatError(f"variable {key!r} holds {dtype} data, not a real numeric "
                              "array", path)
    return dtype.newbyteorder("=")


def _as_float(value, key: str, path: str) -> np.ndarray:
    if hasattr(value, "toarray"):  # a sparse matrix (scipy's reading of a MAT v5 sparse)
        value = value.toarray()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"variable {key!r} is not numeric ({exc})", path) from None


#: bytes of a v7.3 variable's unwritten chunks beyond which it is refused, not read as
#: its fill value: a writer may leave chunks of a sparse truth unwritten, a file does not
#: declare gigabytes it never stores
UNWRITTEN_LIMIT = 2**30


def _check_written(ds, key: str, path: str) -> None:
    """FileFormatError for a v7.3 variable of which more than :data:`UNWRITTEN_LIMIT` bytes
    were never written: HDF5 reads a chunk (or a block) never stored as the fill value, so
    a 2 KB file declaring a 37 TB cube was a cube of zeros that was read until killed."""
    if ds.size == 0:
        return
    if ds.chunks is None:
        missing = ds.size * ds.dtype.itemsize - ds.id.get_storage_size()
        if missing > UNWRITTEN_LIMIT:
            raise FileFormatError(f"variable {key!r} declares {_gib(ds)} of which "
                                  f"{missing / 2**30:.1f} GiB were never written (a truncated "
                                  "or unfinished file)", path)
        return
    whole = int(np.prod([-(-n // c) for n, c in zip(ds.shape, ds.chunks, strict=True)]))
    stored = ds.id.get_num_chunks()
    chunk_bytes = int(np.prod(ds.chunks)) * ds.dtype.itemsize
    if (whole - stored) * chunk_bytes > UNWRITTEN_LIMIT:
        raise FileFormatError(f"variable {key!r} declares {_gib(ds)} but holds {stored} of its "
                              f"{whole} chunks; the rest were never written (a truncated or "
                              "unfinished file)", path)


def _gib(ds) -> str:
    return f"{ds.size * ds.dtype.itemsize / 2**30:.1f} GiB"


class _H5Reader(Hdf5Reader):
    """Windows of a MATLAB v7.3 variable; h5py sees MATLAB arrays transposed
    ``(bands, cols, rows)``."""

    what = "MAT file"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cache_bytes = row_cache(self.blocks, self.shape, self.dtype)

    def _stored(self, r0, r1, c0, c1, b0, b1):
        return self._slab(self.key, np.s_[b0:b1, c0:c1, r0:r1])

    def _arrange(self, stored, r0, r1, c0, c1, b0, b1) -> np.ndarray:
        return np.transpose(stored, (2, 1, 0))


def _read_h5(path: str, key: str) -> np.ndarray:
    """A whole v7.3 variable in MATLAB's orientation; a sparse one (a group of CSC arrays:
    ``data``, row indices ``ir``, column starts ``jc``) as a dense array."""
    try:
        with h5py.File(path, "r") as f:
            obj = f[key]
            if isinstance(obj, h5py.Group) and "MATLAB_sparse" in obj.attrs:
                jc, ir = obj["jc"][()].astype(np.int64), obj["ir"][()].astype(np.int64)
                data = obj["data"][()] if "data" in obj else np.ones(ir.shape, np.uint8)
                shape = (int(obj.attrs["MATLAB_sparse"]), jc.shape[0] - 1)
                return scipy.sparse.csc_matrix((data, ir, jc), shape=shape).toarray()
            _check_written(obj, key, path)
            return np.asarray(obj[()]).T
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise TruncatedFileError(f"cannot read {key!r}: {exc}", path) from exc


def _read_v5(path: str, keys: list[str]) -> dict:
    try:
        return sio.loadmat(path, variable_names=keys)
    except Exception as exc:  # noqa: BLE001
        raise FileFormatError(f"MAT file is truncated or corrupt ({type(exc).__name__}: "
                              f"{exc})", path) from exc


class _V5Variable:
    """A MAT v5 cube variable, read whole on its first use and kept (a compressed element
    cannot be read in parts): opening a file reads none of it, so ``hsad info`` on a 1 MB
    file declaring a 1000³ cube no longer inflates 1 GB to print its size."""

    def __init__(self, path: str, key: str, shape: tuple, dtype: np.dtype, window=None):
        import threading

        self.path, self.key, self.full, self.window = path, key, tuple(shape), window
        self.dtype = np.dtype(dtype)
        self.shape = self.full if window is None else (window.height, window.width, shape[2])
        self.ndim = 3
        self._values = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # a worker reads the file itself
        return {k: v for k, v in self.__dict__.items() if k not in ("_values", "_lock")}

    def __setstate__(self, state: dict) -> None:
        import threading

        self.__dict__.update(state, _values=None, _lock=threading.Lock())

    def _load(self) -> np.ndarray:
        with self._lock:
            if self._values is None:
                values = _read_v5(self.path, [self.key])
                if self.key not in values:
                    raise FileFormatError(f"MAT file is truncated: variable {self.key!r} "
                                          "unreadable", self.path)
                cube = values[self.key]
                native = _numeric(getattr(cube, "dtype", np.dtype(object)), self.key,
                                  self.path)
                if cube.shape != self.full or native != self.dtype:
                    raise FileFormatError(
                        f"variable {self.key!r} reads as {'x'.join(map(str, cube.shape))} "
                        f"{native} but its header says {'x'.join(map(str, self.full))} "
                        f"{self.dtype}", self.path)
                if self.window is not None:
                    cube = cube[self.window.row_off:self.window.row_off + self.window.height,
                                self.window.col_off:self.window.col_off + self.window.width]
                self._values = np.ascontiguousarray(cube.astype(native, copy=False))
            return self._values

    def __getitem__(self, index) -> np.ndarray:
        return self._load()[index]


def _open(path, chunks, key, gt_key, want_gt: bool, window=None, unlabelled_nan=False,
          lazy: bool = False):
    p = os.fspath(path)
    if not Path(p).is_file():
        raise FileFormatError(no_file(p), p)
    hdf5, variables = probe(p)
    ckey = cube_key(variables, key, p)
    check_band_axis(variables, ckey, p)
    rows, cols, bands = dict((n, s) for n, s, _ in variables)[ckey]
    if min(rows, cols) == 0:
        raise FileFormatError(f"variable {ckey!r} is {rows}x{cols}x{bands}: an empty cube; "
                              f"variables: {listing(variables)}", p)
    gkey = truth_key(variables, (rows, cols), gt_key, p, strict=want_gt)
    wkey = band_vector_key(variables, bands)
    bkey = band_vector_key(variables, bands, BBL_KEYS, NUMERIC | {"logical"})
    extra = [k for k in (gkey if want_gt else None, wkey, bkey) if k is not None]
    if window is not None:
        check_window(window, (rows, cols), p)
    tiles = tile_chunks(chunks, *((rows, cols) if window is None
                                  else (window.height, window.width)))
    if hdf5:
        try:  # the layout and the stamp from one open file (nothing can come between them)
            with open(p, "rb") as handle, h5py.File(handle, "r") as f:
                stamp = file_stamp(handle)
                dtype = _numeric(f[ckey].dtype, ckey, p)
                _check_written(f[ckey], ckey, p)
                blocks = chunk_blocks([f[ckey]], 2, 1)
        except H5_ERRORS as exc:
            raise FileFormatError(f"cannot read {ckey!r}: {exc}", p) from exc
        reader = _H5Reader(p, ckey, (rows, cols, bands), dtype, stamp, blocks)
        tiled = reader.blocks  # None where the cube is unpacked (hsad.io.hdf5_planes)
        if window is not None:
            reader = reader.windowed(window)
        # (fancy indexing stays on: with fancy=False dask does not fuse a slice into the
        # read, and every statistics sample window read its whole tile)
        data = array_over(reader, tiles, "mat73-" + tokenize(p, ckey, stamp, tiles, window))
        values = {k: _read_h5(p, k) for k in extra}
    elif lazy and (stored := stored_type(p, ckey)) is not None:
        reader = _V5Variable(p, ckey, (rows, cols, bands), stored, window)
        st = os.stat(p)
        data = array_over(reader, tiles, "mat5-" + tokenize(p, ckey, st.st_mtime_ns,
                                                            st.st_size, tiles, window))
        values = _read_v5(p, extra) if extra else {}
        missing = [k for k in extra if k not in values]
        if missing:
            raise FileFormatError(f"MAT file is truncated: variable {missing[0]!r} unreadable",
                                  p)
    else:
        values = _read_v5(p, [ckey, *extra])
        missing = [k for k in (ckey, *extra) if k not in values]
        if missing:
            raise FileFormatError(f"MAT file is truncated: variable {missing[0]!r} unreadable",
                                  p)
        cube = values[ckey]
        native = _numeric(getattr(cube, "dtype", np.dtype(object)), ckey, p)
        cube = cube.astype(native, copy=False)
        if cube.shape != (rows, cols, bands):
            raise FileFormatError(f"variable {ckey!r} reads as {'x'.join(map(str, cube.shape))}"
                                  f" but its header says {rows}x{cols}x{bands}", p)
        if window is not None:
            cube = cube[window.row_off:window.row_off + window.height,
                        window.col_off:window.col_off + window.width]
        data = wrap_numpy(np.ascontiguousarray(cube), chunks=tiles)
    wavelength = None
    if wkey is not None:
        wl = _as_float(values[wkey], wkey, p).reshape(-1)
        scale = wavelength_scale(None, wl)
        wavelength = wl * scale
    good = None if bkey is None else _good_bands(values[bkey], bkey, p)
    attrs = {"mat_version": "7.3" if hdf5 else "5", "mat_key": ckey, "gt_key": gkey,
             **window_attrs(window, (rows, cols))}
    if hdf5 and tiled:  # tiles of whole chunks (hsad.engine.block_tiles.plan_tiles)
        attrs["block_shape"] = tiled
    cube = make_cube(data, wavelength=wavelength, good_band=good, source_format="mat",
                     source_path=p,
                     attrs=attrs)
    gt = None
    if want_gt and gkey is not None:
        gt = _as_float(values[gkey], gkey, p).reshape(rows, cols)
        if unlabelled_nan and np.isnan(gt).any():
            gt = np.where(np.isnan(gt), np.nan, gt != 0).astype(np.float32)
        else:
            if np.isnan(gt).any():
                warnings.warn(f"{p}: {int(np.isnan(gt).sum())} NaN pixels of the ground truth"
                              f" '{gkey}' count as background here (hsad evaluate leaves them "
                              "out)", UserWarning, stacklevel=3)
            gt = np.nan_to_num(gt) != 0
        if window is not None:
            rows_cut, cols_cut = window.slices()
            gt = gt[rows_cut, cols_cut]
    return cube, gt


def open_mat(path: str | os.PathLike, chunks=None, key: str | None = None,
             window=None) -> xr.DataArray:
    """Open the cube of a MAT file (v5 or v7.3) as a ``(y, x, band)`` DataArray.

    ``key`` names the variable; by default a common name or the largest 3-D numeric
    array. The detected ground-truth variable is recorded in ``attrs["gt_key"]``.
    ``window`` (an :class:`hsad.cube.subset.Window`): only that window. A v5 cube is read whole
    on its first use (not when opened), then kept: its checks against its header (a
    truncated variable) come with that first read; a complex one is refused when opened.
    """
    return _open(path, chunks, key, None, want_gt=False, window=window, lazy=True)[0]


def load_mat(path: str | os.PathLike, key: str | None = None, gt_key: str | None = None,
             chunks=None, window=None, unlabelled_nan: bool = False,
             ) -> tuple[xr.DataArray, np.ndarray | None]:
    """Return ``(cube, gt)``: the cube and its ground truth as a (rows, cols) bool array.

    ``gt`` is None when no ground-truth variable is found (and ``gt_key`` is not given).
    ``window`` (an :class:`hsad.cube.subset.Window`): that window of both. A truth's NaN
    pixels count as background, with a warning; with ``unlabelled_nan`` such a truth is
    float32 instead (1 anomaly, 0 background, NaN unlabelled), which the metrics leave
    out as ``hsad evaluate`` does.
    """
    return _open(path, chunks, key, gt_key, want_gt=True, window=window,
                 unlabelled_nan=unlabelled_nan)


def read_mat_map(path: str | os.PathLike, key: str | None = None, what: str = "ground truth",
                 shape: tuple[int, int] | None = None, check=None) -> np.ndarray:
    """A 2-D variable of a MAT file as float64: a ground truth or a score map, with or
    without a cube beside it.

    ``key`` names it. Otherwise a ground truth is found by name (as :func:`load_mat` does) on
    ``shape``, or on the cube's grid when the file holds a cube; any other map must be the
    only 2-D numeric variable of a file without a multi-band array. Sparse and (rows, cols,
    1) variables are read too. ``check``: called with the variable's declared (rows, cols)
    before it is read, to refuse it (a 60000 × 60000 truth for a small map was read whole,
    GBs, to be refused).
    """
    p = os.fspath(path)
    hdf5, variables, name, maps = _map_variable(p, key, what, shape)
    if check is not None:
        check(maps[name])
    value = _read_h5(p, name) if hdf5 else _read_v5(p, [name]).get(name)
    if value is None:
        raise FileFormatError(f"MAT file is truncated: variable {name!r} unreadable", p)
    return _as_float(value, name, p).reshape(maps[name])


def mat_map_name(path: str | os.PathLike, key: str | None = None,
                 what: str = "ground truth") -> str:
    """The variable :func:`read_mat_map` reads for ``key`` and ``what`` (without reading it)."""
    return _map_variable(os.fspath(path), key, what, None)[2]


def _map_variable(p: str, key, what: str, shape):
    """``(is v7.3, variables, the map's name, 2-D shapes by name)`` for :func:`read_mat_map`."""
    if not Path(p).is_file():
        raise FileFormatError(no_file(p), p)
    hdf5, variables = probe(p)
    if shape is None:
        with contextlib.suppress(FileFormatError):
            shape = dict((n, s) for n, s, _ in variables)[
                cube_key(variables, None, p, warn=False)][:2]  # its grid only
    maps = maps_of(variables)
    stacks = {n: plane(s) for n, s, c in variables if c in NUMERIC and len(plane(s)) == 3}
    if key in stacks or (key is None and what != "ground truth" and stacks):
        name = key if key in stacks else max(stacks, key=lambda n: int(np.prod(stacks[n])))
        raise FileFormatError(f"a {what} must have one band, found {stacks[name][2]} "
                              f"({name!r} is {dims(stacks[name])})", p)
    if what == "ground truth" or key is not None:
        name = truth_key(variables, None if key is not None else shape, key, p, strict=True)
    else:
        plain = [n for n in maps if shape is None or maps[n] == tuple(shape)]
        name = plain[0] if len(plain) == 1 else None
    if name is None:
        raise FileFormatError(f"no {what} variable found (give its key); variables: "
                              f"{listing(variables)}", p)
    return hdf5, variables, name, maps


from hsad.io.mat_writer import write_mat  # noqa: E402  (its place before; the writer's own module)

#: names moved to :mod:`hsad.io.mat_variables` in 0.3.1, still served here (no warning;
#: ``mat_variables`` and ``truth_off_grid`` are imported above)
MOVED = {n: "hsad.io.mat_variables" for n in (
    "CUBE_KEYS", "GT_KEYS", "WAVELENGTH_KEYS", "MAX_PREVIEW_BANDS")}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.io.mat_variables import CUBE_KEYS as CUBE_KEYS
    from hsad.io.mat_variables import GT_KEYS as GT_KEYS
    from hsad.io.mat_variables import MAX_PREVIEW_BANDS as MAX_PREVIEW_BANDS
    from hsad.io.mat_variables import WAVELENGTH_KEYS as WAVELENGTH_KEYS

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "load_mat", "mat_variables", "open_mat", "read_mat_map", "truth_off_grid",
           "write_mat"]
