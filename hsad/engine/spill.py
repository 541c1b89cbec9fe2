"""Maps kept between the passes over a scene: computed once, then read a window at a time.

:func:`keep_with` holds them in memory when they fit :data:`KEEP_SHARE` of the memory
budget, otherwise in ``.npy`` files of a temporary folder (:class:`NpyWindows`, read and
written with ``pread``/``pwrite``, nothing mapped); :func:`materialise` returns lazy views
of them (on a cluster: persisted there), and :func:`map_windows` runs a tile operator on
windows of what was kept.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import math
import os
import shutil
import tempfile
import uuid
import weakref

import dask
import dask.array as da
import numpy as np

from hsad.engine.scheduler import TileProgress, active_client, cluster_progress, parse_memory
from hsad.errors import OutputError

#: Maps below this share of the memory budget are kept in memory, larger ones spilled.
KEEP_SHARE = 0.125


_SPILL_DIR: list[str] = []


def _spill_dir() -> str:
    if not _SPILL_DIR:
        path = tempfile.mkdtemp(prefix="hsad-spill-")
        atexit.register(shutil.rmtree, path, True)
        _SPILL_DIR.append(path)
    return _SPILL_DIR[0]


def _remove_quietly(path: str) -> None:
    """Remove ``path`` if it is still there (a spill file no graph reads any more)."""
    with contextlib.suppress(OSError):
        os.remove(path)


def _runs(shape: tuple[int, ...], key: tuple[slice, ...]):
    """``(first item, items)`` of each contiguous run of a C-order array of ``shape`` that
    the block ``key`` (one slice of step 1 per axis) covers, in order."""
    starts = [k.indices(n)[0] for k, n in zip(key, shape, strict=True)]
    stops = [k.indices(n)[1] for k, n in zip(key, shape, strict=True)]
    # the trailing axes the block spans whole join the run
    inner = len(shape)
    while inner > 1 and starts[inner - 1] == 0 and stops[inner - 1] == shape[inner - 1]:
        inner -= 1
    strides = np.cumprod((1, *shape[::-1]))[::-1][1:]
    run = (stops[inner - 1] - starts[inner - 1]) * int(np.prod(shape[inner:], dtype=np.int64))
    outer = [range(a, b) for a, b in zip(starts[:inner - 1], stops[:inner - 1], strict=True)]
    base = starts[inner - 1] * int(strides[inner - 1])
    if not outer:
        return [(base, run)], run
    grid = np.stack(np.meshgrid(*[np.asarray(r, np.int64) for r in outer], indexing="ij"),
                    axis=-1).reshape(-1, len(outer))
    return [(int(i), run) for i in grid @ strides[:inner - 1] + base], run


class NpyWindows:
    """Array-like over a ``.npy`` file for ``dask.array.from_array`` (reads) and
    ``dask.array.store`` (writes): a window is read or written with ``pread``/``pwrite``,
    row run by row run, through the page cache: nothing of the file is mapped into the
    process. Thread safe, picklable."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype, offset: int | None = None):
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        if offset is None:  # the .npy header's length
            with open(path, "rb") as f:
                np.lib.format.read_magic(f)
                np.lib.format.read_array_header_1_0(f)
                offset = f.tell()
        self.offset = offset

    @classmethod
    def create(cls, path: str, shape: tuple[int, ...], dtype) -> NpyWindows:
        """A new ``.npy`` file of ``shape`` (sparse until written), removed when the
        returned object is no longer referenced (by the dask graphs reading it): a batch
        of scenes in one process does not pile up its spill files until the end."""
        dtype = np.dtype(dtype)
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                    "shape": tuple(shape)})
            offset = f.tell()
            f.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        out = cls(path, shape, dtype, offset)
        weakref.finalize(out, _remove_quietly, path)
        return out

    def _key(self, key) -> tuple[slice, ...]:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim or not all(isinstance(k, slice) and k.step in (None, 1)
                                            for k in key):
            raise IndexError(f"NpyWindows takes one slice of step 1 per axis, got {key!r}")
        return key

    def _window_shape(self, key: tuple[slice, ...]) -> tuple[int, ...]:
        return tuple(len(range(*k.indices(n))) for k, n in zip(key, self.shape, strict=True))

    def _views(self, key: tuple[slice, ...], flat: np.ndarray, mode: str):
        """``(file, bytes of flat)`` for each contiguous run of the window ``key`` in turn,
        the file (an object of its own: threads) positioned at the run."""
        runs, run = _runs(self.shape, key)
        with open(self.path, mode, buffering=0) as f:
            for i, (first, _) in enumerate(runs):
                f.seek(self.offset + first * self.dtype.itemsize)
                yield f, memoryview(flat[i * run:(i + 1) * run]).cast("B")

    def _read_key(self, key) -> tuple[tuple[slice, ...], tuple]:
        """``key`` as :meth:`_key` takes it, an integer (a band, when dask fuses
        ``x[:, :, i]`` into the read) read as a slice of one; and the index that then drops
        the integers' axes."""
        key = key if isinstance(key, tuple) else (key,)
        slices, drop = [], []
        for k, n in zip(key, self.shape, strict=False):
            if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
                i = int(k) + (n if k < 0 else 0)
                if not 0 <= i < n:
                    raise IndexError(f"index {int(k)} is out of bounds for an axis of {n}")
                slices.append(slice(i, i + 1))
                drop.append(0)
            else:
                slices.append(k)
                drop.append(slice(None))
        return self._key(tuple(slices) + tuple(key[len(slices):])), tuple(drop)

    def __getitem__(self, key) -> np.ndarray:
        key, drop = self._read_key(key)
        last = key[-1].indices(self.shape[-1])[:2]
        if self.ndim > 2 and last != (0, self.shape[-1]):
            # part of the last axis (a band of a pixel-interleaved map): its runs would be
            # a few bytes each, a read call each (a 1500 x 1500 band: 2.25 million); read
            # the window's pixels whole, then take the part
            whole = self[key[:-1] + (slice(None),)]
            out = whole[..., slice(*last)]
        else:
            out = np.empty(self._window_shape(key), self.dtype)
            if out.size:
                for f, view in self._views(key, out.reshape(-1), "rb"):
                    if f.readinto(view) != view.nbytes:
                        raise OSError(f"{self.path}: short read")
        return out[drop] if any(d == 0 for d in drop) else out

    def __setitem__(self, key, value) -> None:
        key = self._key(key)
        flat = np.ascontiguousarray(value, dtype=self.dtype).reshape(-1)
        size = math.prod(self._window_shape(key))
        if flat.size != size:
            raise ValueError(f"a block of {flat.size} values for a window of {size}")
        if size:
            for f, view in self._views(key, flat, "r+b"):
                try:
                    written = f.write(view)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    written = None
                if written != view.nbytes:  # a short write: the disk is full
                    raise OutputError(
                        f"no room left to spill the maps to (maps beyond {KEEP_SHARE:g} of "
                        "the memory budget are kept on disk): set TMPDIR to a folder with "
                        "room, or give a larger --memory-limit",
                        os.path.dirname(self.path)) from None


def materialise(*arrays: da.Array, memory_limit: str | int | None = None,
                desc: str = "maps") -> list[da.Array]:
    """Compute ``arrays`` together (one pass over what they share) and return cheap lazy
    views of the results: in memory when all fit in ``KEEP_SHARE`` of the budget,
    otherwise in ``.npy`` files in a temporary folder; on a cluster, persisted there.
    ``desc`` names the pass on its progress bar (shown inside a :class:`TileProgress`)."""
    return materialise_with(arrays, (), memory_limit=memory_limit, desc=desc)[0]


def materialise_with(arrays, reductions, *, memory_limit: str | int | None = None,
                     desc: str = "maps") -> tuple[list[da.Array], tuple]:
    """:func:`materialise` of ``arrays``, and the values of the lazy ``reductions`` of them
    (e.g. :func:`finite_extremes`) computed in the same pass: nothing is read back."""
    arrays, client = list(arrays), active_client()
    if client is not None:
        # one graph for both: the reductions computed apart from the persisted maps had
        # sent the maps' keys again, optimised otherwise, while the first ran (distributed's
        # "Detected different run_spec … can cause failures and deadlocks", at every score)
        persisted = list(client.persist([*arrays, *reductions]))
        kept, reduced = persisted[:len(arrays)], persisted[len(arrays):]
        cluster_progress(kept, desc)
        return kept, tuple(dask.compute(*reduced)) if reduced else ()
    stores, values = keep_with(arrays, reductions, memory_limit=memory_limit, desc=desc)
    return [_lazy_view(k, a.chunks) for k, a in zip(stores, arrays, strict=True)], values


def _pass_progress(prefixes, desc: str):
    """A bar over a pass's tiles when a :class:`TileProgress` bar is asked for (the
    command's bars count writes and statistics only: the maps kept between passes, a
    network's pass or the spatial filters, ran most of a run without one)."""
    shown = TileProgress.current()
    if shown is None or shown.disable:
        return contextlib.nullcontext()
    return TileProgress(prefixes=prefixes, disable=False, desc=desc)


def keep_with(arrays, reductions=(), *, memory_limit: str | int | None = None,
              desc: str = "maps") -> tuple[list, tuple]:
    """Compute ``arrays`` (and ``reductions``) in one pass with the local schedulers and
    return what holds them: numpy arrays when all fit in ``KEEP_SHARE`` of the budget,
    otherwise :class:`NpyWindows` files in a temporary folder. Both are sliced, a window at
    a time, by :func:`map_windows`. ``desc`` names the pass on its progress bar."""
    arrays, reductions = list(arrays), list(reductions)
    budget = parse_memory(memory_limit)
    if sum(a.nbytes for a in arrays) <= KEEP_SHARE * budget:
        with _pass_progress(tuple(a.name for a in arrays), desc):  # the arrays' tiles
            values = dask.compute(*arrays, *reductions)
        return list(values[:len(arrays)]), tuple(values[len(arrays):])
    folder = _spill_dir()
    stores = [NpyWindows.create(os.path.join(folder, f"{uuid.uuid4().hex}.npy"), a.shape,
                                a.dtype) for a in arrays]
    stored = da.store(arrays, stores, lock=False, compute=False)
    with _pass_progress(("store-map",), desc):  # the tiles written to the files
        _, *values = dask.compute(stored, *reductions)
    return stores, tuple(values)


def _lazy_view(store, chunks) -> da.Array:
    """A dask array reading ``store`` (numpy array or :class:`NpyWindows`) in ``chunks``."""
    if isinstance(store, np.ndarray):
        return da.from_array(store, chunks=chunks)
    return da.from_array(store, chunks=chunks, asarray=False,
                         meta=np.empty((0,) * store.ndim, store.dtype),
                         name=f"spill-{uuid.uuid4().hex}")


def map_windows(func, stores, chunks, halo: int, *, dtype=np.float64, **kwargs) -> da.Array:
    """``func(*windows, **kwargs)`` on every tile of the ``(y, x)`` grid ``chunks``, each
    window being the tile of every one of ``stores`` (from :func:`keep_with`) with ``halo``
    pixels of context, clipped at the image edge; the halo is trimmed from the result
    (2-D). As :func:`map_halo`, but every task reads its own window from what was kept:
    no graph of halo pieces to assemble, which held maps' worth of them."""
    h = int(halo)
    rows, cols = stores[0].shape[:2]

    def tile(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"][:2]
        wy0, wx0 = max(y0 - h, 0), max(x0 - h, 0)
        window = (slice(wy0, min(y1 + h, rows)), slice(wx0, min(x1 + h, cols)))
        out = func(*[np.asarray(s[window]) for s in stores], **kwargs)
        return np.asarray(out, dtype)[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]

    return da.map_blocks(tile, chunks=tuple(chunks[:2]), dtype=dtype,
                         meta=np.empty((0, 0), dtype),
                         name=f"windows-{getattr(func, '__name__', 'func')}-"
                              f"{uuid.uuid4().hex}")


__all__ = ["KEEP_SHARE", "NpyWindows", "keep_with", "map_windows", "materialise",
           "materialise_with"]
