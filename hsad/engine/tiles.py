"""The scene engine: tiles sized by a memory budget, exact halo operators, streamed global
statistics, batched torch inference and streamed map outputs.

- :func:`chunks_for` / :func:`open_tiled`: ``(y, x)`` tiles with all bands, as large as a
  memory budget allows for the tasks running at once.
- :func:`map_halo`: a tile operator with ``halo`` pixels of real context from the
  neighbouring tiles (``dask.array.map_overlap``), none beyond the image edge, so window
  operators give the whole-scene result exactly.
- :func:`infer_batches`, :func:`model_node`: torch inference in batches on a device
  (optional bf16/fp16 autocast on CUDA), with the model one graph key (sent to each
  worker once).
- :func:`write_map`: a map streamed tile by tile into a (COG) GeoTIFF, with a progress
  bar, from the threaded scheduler or a cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import tempfile
import uuid
import weakref
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

from hsad import stopping
from hsad.cube import map_like
from hsad.engine.scheduler import (
    TileProgress,
    active_client,
    cluster_progress,
    concurrency,
    local_writes,
    parse_memory,
    pull_blocks,
)
from hsad.errors import ModelError, ParameterError

#: Working bytes per band and pixel a tile task needs beyond its raw data, measured: RX
#: moments hold two float64 copies (16), a neural residual about eight float32 arrays (32).
WORK_BYTES = 36
#: Smallest tile edge (pixels), and the multiple tile edges are rounded down to.
MIN_TILE, ALIGN = 32, 16
#: Full-width strips are used for row-interleaved files when at least this many rows fit.
MIN_STRIP = 16
#: Maps below this share of the memory budget are kept in memory, larger ones spilled.
KEEP_SHARE = 0.125
#: Pixels per inference batch on the CPU, and on a CUDA GPU, which larger batches keep busy
#: (f-AnoGAN's score terms: 4.6 Mpixel/s at 8192, 16.7 at 65536 on an H200; performance.md §4).
BATCH, CUDA_BATCH = 8192, 65536
#: Autocast dtypes for ``precision`` (CUDA only; CPU inference stays float32).
PRECISIONS = ("fp32", "bf16", "fp16")


# ---------------------------------------------------------------- tiles


def chunks_for(shape: tuple[int, ...], dtype, memory_limit: str | int | None = None, *,
               workers: int | None = None, halo: int = 0,
               full_rows: bool = False, pixel_bytes: int | None = None) -> tuple[int, int]:
    """Tile size ``(rows, cols)`` for a ``(y, x, band)`` cube of ``dtype`` under a budget.

    The budget (bytes, or a size string such as ``"2GB"``; default
    :func:`hsad.engine.scheduler.default_memory_limit`) is shared by the ``workers`` tiles
    processed at once (default: the current scheduler's threads). Each tile, with ``halo``
    pixels of context on every side, holds ``bands·(2·itemsize + WORK_BYTES)`` bytes per
    pixel, or ``pixel_bytes`` for an operator that knows its own. ``full_rows`` asks for
    full-width strips (contiguous reads of row-interleaved files) when at least
    ``MIN_STRIP`` rows fit; otherwise tiles are square, a multiple of 16 pixels, at least
    32. A budget below :func:`min_memory` (one such smallest tile) is
    refused with a ParameterError naming the minimum.
    """
    rows, cols = int(shape[0]), int(shape[1])
    bands = int(shape[2]) if len(shape) > 2 else 1
    budget = parse_memory(memory_limit)
    check_budget(budget, shape, dtype, halo, pixel_bytes)
    tasks = max(1, int(workers) if workers else concurrency())
    per_pixel = pixel_bytes or bands * (2 * np.dtype(dtype).itemsize + WORK_BYTES)
    pixels = budget / tasks / per_pixel
    h = max(0, int(halo))
    if full_rows:
        strip = int(pixels // (cols + 2 * h)) - 2 * h
        if strip >= max(MIN_STRIP, h):
            return min(rows, strip), cols
    edge = int(math.sqrt(pixels)) - 2 * h
    edge = max(MIN_TILE, edge // ALIGN * ALIGN)
    return min(rows, edge), min(cols, edge)


def min_memory(shape: tuple[int, ...], dtype, halo: int = 0,
               pixel_bytes: int | None = None) -> int:
    """Bytes the smallest tile needs: ``MIN_TILE`` square with ``halo`` pixels of context
    (no more than the scene: a scene within the halo is one tile), at ``pixel_bytes`` a
    pixel (default ``bands·(2·itemsize + WORK_BYTES)``)."""
    rows, cols = _smallest_tile(shape, halo)
    return int(rows * cols * _pixel_bytes(shape, dtype, pixel_bytes))


def _smallest_tile(shape, halo: int) -> tuple[int, int]:
    h = 2 * max(0, int(halo))
    return min(int(shape[0]), MIN_TILE + h), min(int(shape[1]), MIN_TILE + h)


def _pixel_bytes(shape, dtype, pixel_bytes: int | None = None) -> int:
    bands = int(shape[2]) if len(shape) > 2 else 1
    return int(pixel_bytes or bands * (2 * np.dtype(dtype).itemsize + WORK_BYTES))


def check_budget(budget: int, shape: tuple[int, ...], dtype, halo: int = 0,
                 pixel_bytes: int | None = None, what: str = "") -> None:
    """ParameterError naming the minimum when ``budget`` (bytes) is below
    :func:`min_memory`. ``what``: the stage, for the message."""
    need = min_memory(shape, dtype, halo, pixel_bytes)
    if budget < need:
        rows, cols = _smallest_tile(shape, halo)
        bands = int(shape[2]) if len(shape) > 2 else 1
        tile = (f"tile of {what} ({_pixel_bytes(shape, dtype, pixel_bytes)} bytes a pixel)"
                if what else f"tile of {bands} bands ({np.dtype(dtype).name})")
        raise ParameterError(
            f"memory limit {budget / 1e6:.0f} MB is too small for one {rows}x{cols}-pixel "
            f"{tile}: give --memory-limit {math.ceil(need / 1e6)}MB or more")


def open_tiled(path, memory_limit: str | int | None = None, *, chunks=None,
               key: str | None = None, workers: int | None = None,
               subset: dict | None = None) -> xr.DataArray:
    """Open a cube lazily with tiles from :func:`chunks_for` (``chunks`` overrides).

    ENVI files (stored row by row) get full-width strips when the budget allows.
    ``subset``: :func:`hsad.subset.spatial_subset` keywords (``srcwin``, ``projwin``,
    ``projwin_crs``): only that window is opened, in tiles sized for it, and every read (a
    tile, a statistics sample) reads only its own pixels (:mod:`hsad.io.window`).
    """
    from hsad.io import open_cube
    from hsad.subset import window_for

    cube = open_cube(path, chunks=chunks, key=key)
    window = window_for(cube, **(subset or {}))
    if chunks is None:
        shape = cube.shape if window is None else (window.height, window.width,
                                                   *cube.shape[2:])
        chunks = chunks_for(shape, cube.dtype, memory_limit, workers=workers,
                            full_rows=cube.attrs.get("source_format") == "envi")
        planned = None
        if cube.attrs.get("block_shape"):  # a tiled GeoTIFF, a chunked HDF5 cube
            from hsad.engine.block_tiles import plan_tiles, split_cube

            # whole blocks to each tile: 480² tiles of a file in 256² blocks decoded
            # each block about twice (RX of a deflated 2048² × 50 float32 file: 4.4 s of
            # statistics against 2.3 s); blocks larger than a tile read once, then cut
            planned = plan_tiles(cube, shape, chunks, window, memory_limit, workers=workers,
                                 pixel_bytes=_pixel_bytes(shape, cube.dtype))
        if planned is not None:
            chunks, tiles = planned
            if tiles is not None:
                return split_cube(open_cube(path, chunks=chunks, key=key, window=window),
                                  tiles)
        if window is None and chunks == (max(cube.data.chunks[0]), max(cube.data.chunks[1])):
            return cube
    elif window is None:
        return cube
    return open_cube(path, chunks=chunks, key=key, window=window)


def map_halo(func, data: da.Array, halo: int, *, dtype=np.float64, drop_axis=None,
             **kwargs) -> da.Array:
    """``func(block, **kwargs)`` on every tile with ``halo`` pixels of neighbour context.

    ``data`` is ``(y, x)`` or ``(y, x, k)``; ``func`` returns an array whose first two
    axes match its input block (``drop_axis=2`` drops the third). Nothing is padded beyond
    the image edge, so an operator that treats image edges itself (e.g. reflection) sees
    exactly what it sees on the whole scene; the halo is trimmed afterwards. Tiles smaller
    than the halo are merged by dask first; an image axis no longer than the halo becomes a
    single tile (a scene smaller than the halo is processed whole).
    """
    h = int(halo)
    if data.ndim == 3:
        data = data.rechunk({2: -1})
    depth = {2: 0} if data.ndim == 3 else {}
    for axis in (0, 1):  # an axis no longer than the halo is one tile: no halo needed
        if data.shape[axis] <= h:
            data = data.rechunk({axis: -1})
        depth[axis] = h if data.shape[axis] > h else 0
    out_ndim = data.ndim - (1 if drop_axis is not None else 0)
    return da.map_overlap(func, data, depth=depth, boundary="none", trim=True, dtype=dtype,
                          drop_axis=drop_axis, meta=np.empty((0,) * out_ndim, dtype),
                          **kwargs)


def halo_tiles(data: da.Array, halo: int, memory_limit: str | int | None = None, *,
               max_edge: int | None = None, pixel_bytes: int | None = None) -> da.Array:
    """``data`` (y, x[, k]) rechunked into the largest tiles the budget allows for an
    operator with ``halo`` pixels of context (:func:`chunks_for`), so that the halo's
    repeated work stays a small share: a 30-row strip with a 122-pixel halo would filter
    nine times its own rows. ``max_edge``: for an operator whose cost per pixel grows with
    the tile, axes longer than twice ``max_edge`` are cut into tiles of ``max_edge`` to
    twice that. Axes are split into nearly equal tiles, so that no thin remainder carries
    a whole halo. ``pixel_bytes``: the operator's memory per tile pixel, halo included
    (default: :func:`chunks_for`'s)."""
    tile = chunks_for(data.shape, data.dtype, memory_limit, halo=halo,
                      pixel_bytes=pixel_bytes)
    if max_edge:
        tile = tuple(min(t, -(-n // max(1, n // int(max_edge))))
                     for n, t in zip(data.shape[:2], tile, strict=True))
    return data.rechunk({axis: -(-n // -(-n // t)) for axis, (n, t)
                         in enumerate(zip(data.shape[:2], tile, strict=True))})


# ---------------------------------------------------------------- streamed statistics


def finite_extremes(m: da.Array, axis=None) -> tuple[da.Array, da.Array]:
    """Lazy min and max of ``m``'s finite values (over ``axis``; ``+inf``, ``−inf`` where
    there is none), to compute in one pass with other work (:func:`materialise_with`)."""
    finite = da.isfinite(m)
    return da.where(finite, m, np.inf).min(axis=axis), da.where(finite, m, -np.inf).max(axis=axis)


def value_range(lo, hi) -> tuple[float, float]:
    """``(lo, hi)`` as floats, ``(nan, nan)`` for the extremes of no finite value."""
    return (float("nan"), float("nan")) if lo > hi else (float(lo), float(hi))


def minmax(*maps: da.Array) -> list[tuple[float, float]]:
    """``(min, max)`` of the finite values of each map, in one pass over all of them.

    ``(nan, nan)`` for a map without finite values.
    """
    values = dask.compute(*[e for m in maps for e in finite_extremes(m)])
    return [value_range(lo, hi) for lo, hi in zip(values[::2], values[1::2], strict=True)]


def nan_median(values: da.Array, limit: int = 1 << 20) -> float:
    """Exact median of the finite values of a lazy array (as ``np.median`` gives it).

    Histograms narrow down the range holding the middle order statistics, one pass each,
    until it holds at most ``limit`` values, which are then gathered and sorted.
    """
    flat = values.ravel()
    finite = da.isfinite(flat)
    n, lo, hi = dask.compute(finite.sum(), da.where(finite, flat, np.inf).min(),
                             da.where(finite, flat, -np.inf).max())
    n = int(n)
    if n == 0:
        return float("nan")
    k1, k2 = (n - 1) // 2, n // 2  # order statistics to average
    below = 0  # finite values below lo
    while True:
        if lo == hi:
            return float(lo)
        inside = finite & (flat >= lo) & (flat <= hi)
        count = int(inside.sum().compute())
        if count <= limit:
            picked = np.sort(flat[inside].compute())
            return float((picked[k1 - below] + picked[k2 - below]) / 2)
        edges = np.linspace(lo, hi, 1025)
        hist, _ = da.histogram(da.where(inside, flat, np.nan), bins=edges)
        cum = below + np.cumsum(hist.compute())
        b1, b2 = np.searchsorted(cum, k1, side="right"), np.searchsorted(cum, k2, side="right")
        new_below = below + (int(cum[b1 - 1] - below) if b1 > 0 else 0)
        new_lo, new_hi = float(edges[b1]), float(edges[b2 + 1])
        if new_lo == lo and new_hi == hi:  # cannot narrow (float resolution): gather
            picked = np.sort(flat[inside].compute())
            return float((picked[k1 - below] + picked[k2 - below]) / 2)
        lo, hi, below = new_lo, new_hi, new_below


# ---------------------------------------------------------------- materialising maps


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

    def __getitem__(self, key) -> np.ndarray:
        key = self._key(key)
        out = np.empty(self._window_shape(key), self.dtype)
        if out.size:
            for f, view in self._views(key, out.reshape(-1), "rb"):
                if f.readinto(view) != view.nbytes:
                    raise OSError(f"{self.path}: short read")
        return out

    def __setitem__(self, key, value) -> None:
        key = self._key(key)
        flat = np.ascontiguousarray(value, dtype=self.dtype).reshape(-1)
        size = math.prod(self._window_shape(key))
        if flat.size != size:
            raise ValueError(f"a block of {flat.size} values for a window of {size}")
        if size:
            for f, view in self._views(key, flat, "r+b"):
                if f.write(view) != view.nbytes:
                    raise OSError(f"{self.path}: short write")


def materialise(*arrays: da.Array, memory_limit: str | int | None = None) -> list[da.Array]:
    """Compute ``arrays`` together (one pass over what they share) and return cheap lazy
    views of the results: in memory when all fit in ``KEEP_SHARE`` of the budget,
    otherwise in ``.npy`` files in a temporary folder; on a cluster, persisted there."""
    return materialise_with(arrays, (), memory_limit=memory_limit)[0]


def materialise_with(arrays, reductions, *, memory_limit: str | int | None = None
                     ) -> tuple[list[da.Array], tuple]:
    """:func:`materialise` of ``arrays``, and the values of the lazy ``reductions`` of them
    (e.g. :func:`finite_extremes`) computed in the same pass: nothing is read back."""
    arrays, client = list(arrays), active_client()
    if client is not None:
        kept = list(client.persist(arrays))
        cluster_progress(kept)
        return kept, tuple(dask.compute(*reductions)) if reductions else ()
    stores, values = keep_with(arrays, reductions, memory_limit=memory_limit)
    return [_lazy_view(k, a.chunks) for k, a in zip(stores, arrays, strict=True)], values


def keep_with(arrays, reductions=(), *, memory_limit: str | int | None = None
              ) -> tuple[list, tuple]:
    """Compute ``arrays`` (and ``reductions``) in one pass with the local schedulers and
    return what holds them: numpy arrays when all fit in ``KEEP_SHARE`` of the budget,
    otherwise :class:`NpyWindows` files in a temporary folder. Both are sliced, a window at
    a time, by :func:`map_windows`."""
    arrays, reductions = list(arrays), list(reductions)
    budget = parse_memory(memory_limit)
    if sum(a.nbytes for a in arrays) <= KEEP_SHARE * budget:
        values = dask.compute(*arrays, *reductions)
        return list(values[:len(arrays)]), tuple(values[len(arrays):])
    folder = _spill_dir()
    stores = [NpyWindows.create(os.path.join(folder, f"{uuid.uuid4().hex}.npy"), a.shape,
                                a.dtype) for a in arrays]
    stored = da.store(arrays, stores, lock=False, compute=False)
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


# ---------------------------------------------------------------- neural inference


@contextlib.contextmanager
def tile_threads():
    """One torch and one BLAS thread per tile task while the local scheduler runs several
    tasks at once: dask's parallelism over tiles replaces the libraries' own, which would
    otherwise oversubscribe the CPUs (and spin-wait on a busy machine)."""
    if active_client() is not None or concurrency() <= 1:
        yield
        return
    from threadpoolctl import threadpool_limits

    from hsad.nn.trainer import cpu_threads

    with cpu_threads(1), threadpool_limits(1, user_api="blas"):
        yield


def model_node(model) -> dask.delayed:
    """``model`` as one key of a dask graph: tasks taking it as an argument share it, so a
    cluster ships it to each worker once (then keeps it), not once per tile."""
    return dask.delayed(model, name=f"model-{type(model).__name__}-{uuid.uuid4().hex}",
                        traverse=False)


def call_model(model, method: str, *args, **kwargs):
    """``getattr(model, method)(*args, **kwargs)``: the task run per tile on a model node."""
    return getattr(model, method)(*args, **kwargs)


def batch_for(device) -> int:
    """Pixels per inference batch on ``device``: :data:`CUDA_BATCH` on CUDA, else
    :data:`BATCH`."""
    return CUDA_BATCH if str(device).startswith("cuda") else BATCH


def infer_batches(forward, inputs: np.ndarray, *, prepare=None, on_device=None,
                  batch: int | None = None, device="cpu", precision: str | None = None,
                  grad: bool = False, keys: np.ndarray | None = None,
                  reduce=None) -> np.ndarray:
    """``forward`` over ``inputs`` in batches of ``batch`` rows (default
    :func:`batch_for` the device); float32 numpy result.

    ``prepare(numpy batch) -> tensor`` (default ``torch.from_numpy``) runs on the CPU. On
    CUDA, with ``on_device(tensor) -> tensor`` (the same preparation, of a float32 tensor of
    the raw values), the raw batch is copied instead and prepared on the GPU: the CPU only
    copies it into a pinned buffer, and the results come back through another (see
    :func:`_infer_cuda`). ``precision`` ``"bf16"`` or ``"fp16"`` runs ``forward`` under CUDA
    autocast (ignored on the CPU); default from dask config ``hsad.precision``
    (``"fp32"``). ``grad`` runs ``forward`` with autograd on (a score that descends a
    gradient), else under ``inference_mode``. With ``keys`` (one per input row, e.g. the
    pixels' scene positions) ``forward(x, keys_of_the_batch)``. ``reduce(numpy batch
    outputs) -> (rows, C')``: applied to each batch before it is stored, so that only its
    result is kept.
    """
    import torch

    device = torch.device(device)
    batch = int(batch or batch_for(device))
    precision = precision or dask.config.get("hsad.precision", "fp32")
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device.type == "cuda":
        return _infer_cuda(forward, inputs, prepare, on_device, batch, device,
                           precision, grad, keys, reduce)
    result = None  # allocated at the first batch, filled batch by batch
    since = stopping.mark()
    with torch.enable_grad() if grad else torch.inference_mode():
        for lo in range(0, len(inputs), batch):
            stopping.check(since)  # Ctrl-C or SIGTERM: end here, not at the tile's end
            chunk = inputs[lo:lo + batch]
            x = prepare(chunk) if prepare is not None else _as_tensor(chunk)
            args = (x.to(device),) if keys is None else (x.to(device), keys[lo:lo + batch])
            y = forward(*args).detach().float().cpu().numpy()
            result = _store(result, len(inputs), lo, reduce(y) if reduce is not None else y,
                            len(chunk))
    return np.empty((0,), dtype=np.float32) if result is None else result


def _infer_cuda(forward, inputs, prepare, on_device, batch, device, precision, grad, keys,
                reduce) -> np.ndarray:
    """:func:`infer_batches` on a CUDA ``device``.

    Each batch goes to the GPU through one pinned host buffer, reused: the raw values
    (converted to float32 in the same copy) when ``on_device`` prepares them there, else
    ``prepare``'s tensor. The outputs come back into a second pinned buffer
    (asynchronous copy, then one synchronisation a batch, which also frees the first
    buffer for the next batch). ``torch.Tensor.pin_memory`` per batch would allocate and
    copy once more.
    """
    import torch

    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    stream = torch.cuda.current_stream(device)
    staged = returned = result = None
    since = stopping.mark()
    with torch.enable_grad() if grad else torch.inference_mode():
        for lo in range(0, len(inputs), batch):
            stopping.check(since)
            chunk = inputs[lo:lo + batch]
            x = _as_tensor(chunk) if on_device is not None or prepare is None \
                else prepare(chunk)
            if staged is None:
                staged = torch.empty((min(batch, len(inputs)),) + tuple(x.shape[1:]),
                                     dtype=x.dtype, pin_memory=True)
            host = staged[:len(x)]
            host.copy_(x)
            x = host.to(device, non_blocking=True)
            if on_device is not None:
                x = on_device(x)
            args = (x,) if keys is None else (x, keys[lo:lo + batch])
            with torch.autocast(device_type="cuda", dtype=amp or torch.float32,
                                enabled=amp is not None):
                y = forward(*args).detach().float()
            if returned is None:
                returned = torch.empty((min(batch, len(inputs)),) + tuple(y.shape[1:]),
                                       dtype=torch.float32, pin_memory=True)
            back = returned[:len(y)]
            back.copy_(y, non_blocking=True)
            stream.synchronize()
            y = back.numpy()
            result = _store(result, len(inputs), lo, reduce(y) if reduce is not None
                            else y, len(chunk))
    return np.empty((0,), dtype=np.float32) if result is None else result


def _as_tensor(chunk: np.ndarray):
    """A float32 CPU tensor of ``chunk`` (no copy when it is float32 and contiguous)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))


def _store(result: np.ndarray | None, rows: int, lo: int, y: np.ndarray,
           given: int) -> np.ndarray:
    """``y``, the outputs of a batch of ``given`` inputs, into rows ``lo:`` of ``result``,
    allocated (``rows`` long) at the first batch; a row count other than ``given`` is a
    ModelError (unfilled rows would keep whatever the memory held)."""
    if len(y) != given:
        raise ModelError(f"a batch of {given} inputs gave {len(y)} rows of outputs")
    if result is None:
        result = np.empty((rows,) + y.shape[1:], dtype=np.float32)
    result[lo:lo + len(y)] = y
    return result


# ---------------------------------------------------------------- streamed outputs


def write_map(map_, path, like: xr.DataArray | None = None, cog: bool = False,
              progress: bool | None = None, tags: dict | None = None,
              description: str | None = None) -> Path:
    """Stream a ``(y, x)`` map tile by tile into a tiled GeoTIFF (``cog``: COG, converted
    last), with a tqdm bar over the tiles (``progress=None``: when stderr is a terminal);
    ``tags`` and ``description`` as in :func:`hsad.io.geotiff_writer.write_geotiff`.

    On a cluster the tiles are computed there and written here as they arrive.
    """
    from hsad.io.geotiff_writer import write_geotiff

    client = active_client()
    if client is not None and isinstance(getattr(map_, "data", None), da.Array):
        map_ = map_.copy(data=pull_blocks(map_.data, client))
    disable = None if progress is None else not progress
    with local_writes(client), TileProgress(disable=disable, desc=f"writing {Path(path).name}"):
        return write_geotiff(map_, path, like=like, cog=cog, tags=tags,
                             description=description)


def read_map(path, like: xr.DataArray) -> xr.DataArray:
    """A written map, lazily, aligned with ``like`` (chunked like it) and NaN on nodata."""
    from hsad.io.geotiff import open_geotiff

    chunks = (max(like.data.chunks[0]), max(like.data.chunks[1])) \
        if isinstance(like.data, da.Array) else None
    band = open_geotiff(path, chunks=chunks).data[:, :, 0]
    return map_like(like, band, name="score")


__all__ = ["batch_for", "call_model", "chunks_for", "finite_extremes", "halo_tiles",
           "infer_batches", "keep_with", "map_halo", "map_windows", "materialise",
           "materialise_with", "min_memory",
           "minmax", "model_node", "nan_median", "open_tiled", "read_map", "tile_threads",
           "value_range", "write_map"]
