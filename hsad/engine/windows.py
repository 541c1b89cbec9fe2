"""Dual-window machinery shared by the local detectors (LRX, CRD).

The background of a pixel is its *ring*: the pixels of the ``outer`` × ``outer`` window
centred on it minus those of the ``inner`` × ``inner`` guard window. Windows are clipped at the
image edge: only pixels inside the image (and holding data) count. Block functions receive a
numpy block whose out-of-image and nodata pixels are NaN, with ``halo`` pixels of context on
each side, and return scores for the block's core only; :func:`map_windows` runs them over a
cube with ``dask.array.overlap`` so that tiled and whole-scene results agree.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dask.array as da
import numpy as np
import xarray as xr
from threadpoolctl import ThreadpoolController

from hsad.cube import valid_mask
from hsad.errors import DegenerateDataWarning, ParameterError

#: the widest window taken (pixels): a ring of 4 million pixels, a halo of 1000 a side
MAX_WINDOW = 2001


def check_windows(method: str, inner, outer) -> tuple[int, int]:
    """Validate ``(inner, outer)`` window widths: odd positive integers up to
    :data:`MAX_WINDOW`, inner < outer."""
    for label, value in (("inner", inner), ("outer", outer)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ParameterError(f"{method}: {label} must be an odd integer, got {value!r}")
        if value < 1 or value % 2 == 0:
            raise ParameterError(f"{method}: {label} must be an odd positive integer, got {value}")
        if value > MAX_WINDOW:
            raise ParameterError(f"{method}: {label} must be at most {MAX_WINDOW} pixels, got "
                                 f"{value}")
    if inner >= outer:
        raise ParameterError(
            f"{method}: inner window ({inner}) must be smaller than the outer window ({outer})"
        )
    return int(inner), int(outer)


def check_dtype(method: str, dtype) -> np.dtype:
    """``"float32"`` or ``"float64"`` (any spelling numpy accepts) as a numpy dtype; not
    None (numpy's float64) nor a number (its own type)."""
    named = isinstance(dtype, (str, np.dtype)) or (
        isinstance(dtype, type) and issubclass(dtype, (np.generic, float)))
    if not named:
        raise ParameterError(f"{method}: dtype must be float32 or float64, got {dtype!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ParameterError(f"{method}: dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in (np.float32, np.float64):
        raise ParameterError(f"{method}: dtype must be float32 or float64, got {dtype!r}")
    return dt


def check_pca(method: str, pca) -> None:
    """``pca`` is None (all bands) or an integer ≥ 1."""
    if pca is not None and (isinstance(pca, bool) or not isinstance(pca, (int, np.integer))
                            or pca < 1):
        raise ParameterError(f"{method}: pca must be None or an integer ≥ 1, got {pca!r}")


#: a ridge (relative to the mean eigenvalue, ``ridge·tr(Σ)/B``) above this is refused: the
#: score is then the Euclidean distance already, and far larger ones overflow
MAX_RIDGE = 1e6


def check_nonnegative(method: str, label: str, value, positive: bool = False,
                      maximum: float | None = None) -> float:
    """A finite float ≥ 0 (> 0 when ``positive``), at most ``maximum`` when given."""
    rule = "> 0" if positive else "≥ 0"
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{method}: {label} must be a number {rule}, got {value!r}") from exc
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ParameterError(f"{method}: {label} must be a finite number {rule}, got {value!r}")
    if maximum is not None and v > maximum:
        raise ParameterError(f"{method}: {label} must be at most {maximum:g}, got {value!r}")
    return v


def check_ridge(method: str, ridge) -> float:
    """A relative ridge: a finite number in [0, :data:`MAX_RIDGE`]."""
    return check_nonnegative(method, "ridge", ridge, maximum=MAX_RIDGE)


def ring_offsets(inner: int, outer: int) -> np.ndarray:
    """``(n, 2)`` (row, col) offsets of the ring pixels, row-major, n = outer² − inner²."""
    h, g = outer // 2, inner // 2
    dr, dc = np.mgrid[-h : h + 1, -h : h + 1]
    keep = (np.abs(dr) > g) | (np.abs(dc) > g)
    return np.stack([dr[keep], dc[keep]], axis=1)


def median_ring(rows: int, cols: int, inner: int, outer: int) -> int:
    """The median over a ``rows`` × ``cols`` scene's pixels that have a ring of its size,
    the windows clipped to the scene (what a scene narrower than ``outer`` leaves them)."""
    def cover(n: int, size: int) -> np.ndarray:  # the window's length at each position
        pos, half = np.arange(n), size // 2
        return np.minimum(pos + half, n - 1) - np.maximum(pos - half, 0) + 1

    pairs = []
    for n in (rows, cols):
        both = np.stack([cover(n, outer), cover(n, inner)], axis=1)
        values, counts = np.unique(both, axis=0, return_counts=True)
        pairs.append((values, counts))
    (vr, cr), (vc, cc) = pairs
    rings = (vr[:, None, 0] * vc[None, :, 0] - vr[:, None, 1] * vc[None, :, 1]).ravel()
    weights = (cr[:, None] * cc[None, :]).ravel()
    if (rings > 0).any():  # pixels without a ring score NaN (check_rings says so)
        rings, weights = rings[rings > 0], weights[rings > 0]
    order = np.argsort(rings, kind="stable")
    cumulative = np.cumsum(weights[order])
    return int(rings[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def check_rings(cube: xr.DataArray, inner: int, outer: int, method: str,
                minimum: int = 1) -> None:
    """Refuse a scene in which no valid pixel has ``minimum`` valid pixels in its ring (the
    map would be all NaN); warn when some valid pixels have fewer (they score NaN although
    they hold data).

    One pass over the data for the valid mask, then box sums of the (y, x) mask.
    """
    valid = np.asarray(valid_mask(cube).values, dtype=bool)
    h, g = outer // 2, inner // 2

    def box(r: int) -> np.ndarray:  # clipped (2r+1)² box sums of the mask, separably
        out = valid.astype(np.int32)
        for axis in (0, 1):
            n = out.shape[axis]
            cum = np.concatenate([np.zeros_like(out.take([0], axis)), out.cumsum(axis)], axis)
            idx = np.arange(n)
            hi, lo = np.minimum(idx + r + 1, n), np.maximum(idx - r, 0)
            out = cum.take(hi, axis) - cum.take(lo, axis)
        return out

    lonely = valid & (box(h) - box(g) < minimum)
    path = cube.attrs.get("source_path")
    few = "a valid pixel" if minimum == 1 else f"{minimum} valid pixels"
    if lonely.sum() == valid.sum():
        raise ParameterError(f"{method}: no valid pixel has {few} in its ring (windows "
                             f"{inner}/{outer}): every score would be NaN; use a smaller inner "
                             "or larger outer window, or a scene with contiguous data", path)
    if lonely.any():
        fewer = "no valid pixel" if minimum == 1 else f"fewer than {minimum} valid pixels"
        # an outer window reaching across the scene from every pixel holds all it can
        remedy = ("a smaller inner window (the outer window covers the scene)"
                  if h >= max(valid.shape) - 1 else "a larger outer or a smaller inner window")
        warnings.warn(f"{method}: {int(lonely.sum())} valid pixels have {fewer} in their "
                      f"ring (windows {inner}/{outer}) and score NaN; use {remedy}",
                      DegenerateDataWarning, stacklevel=3)


def nan_filled(cube: xr.DataArray, bands: np.ndarray, dtype=np.float64) -> da.Array:
    """The cube's ``bands`` as a float dask array with NaN on nodata pixels, bands in one chunk."""
    data = cube.data
    if not np.all(bands):
        data = data[:, :, np.asarray(bands)]
    data = data.astype(dtype).rechunk({2: -1})
    valid = valid_mask(cube).data.rechunk(data.chunks[:2])
    return da.where(valid[:, :, None], data, np.asarray(np.nan, dtype=dtype))


def project(block: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``(x − mean) @ basis`` of a ``(rows, cols, B)`` block, float64: cast and centred in
    one pass, piece by piece (:data:`PIECE_PIXELS`, no float64 copy of the block), BLAS on
    one thread (dask runs one tile per core; a threaded BLAS's idle threads spin beside the
    other tiles' work)."""
    block = np.asarray(block)
    rows, cols, bands = block.shape
    out = np.empty((rows * cols, basis.shape[1]))
    flat = block.reshape(-1, bands)
    buf = np.empty((min(PIECE_PIXELS, flat.shape[0]), bands))
    # a pixel holding ±inf projects to NaN, left out as nodata is: no numpy warning for it
    with single_threaded_linalg(), np.errstate(invalid="ignore", over="ignore"):
        for lo in range(0, flat.shape[0], PIECE_PIXELS):
            piece = buf[: len(flat[lo:lo + PIECE_PIXELS])]
            np.subtract(flat[lo:lo + PIECE_PIXELS], mean, out=piece, casting="unsafe")
            out[lo:lo + PIECE_PIXELS] = piece @ basis
    return out.reshape(rows, cols, -1)


def projected(cube: xr.DataArray, bands: np.ndarray, mean: np.ndarray,
              basis: np.ndarray) -> da.Array:
    """Lazy ``(y, x, k)`` float64 ``(x − mean) @ basis`` of the cube's ``bands``, NaN on
    nodata pixels: projected from the stored values (:func:`project`), so no float64 copy
    of the cube is made, as :func:`nan_filled` followed by a product would."""
    data = cube.data
    if not np.all(bands):
        data = data[:, :, np.asarray(bands)]
    data = data.rechunk({2: -1})
    out = data.map_blocks(project, np.asarray(mean, dtype=np.float64), basis,
                          chunks=data.chunks[:2] + ((basis.shape[1],),), dtype=np.float64,
                          meta=np.empty((0, 0, 0), np.float64))
    valid = valid_mask(cube).data.rechunk(out.chunks[:2])
    return da.where(valid[:, :, None], out, np.asarray(np.nan))


def _chunks(n: int, size: int, depth: int) -> tuple[int, ...]:
    """Chunks of ``size`` along an axis of length n, none shorter than ``depth`` (if n allows)."""
    size = max(size, depth, 1)
    chunks = [size] * (n // size) + ([n % size] if n % size else [])
    if len(chunks) > 1 and chunks[-1] < depth:
        chunks[-2:] = [chunks[-2] + chunks[-1]]
    return tuple(chunks)


def map_pixels(
    fn: Callable[..., np.ndarray], data: da.Array, *args, dtype=np.float32, chunks=None, **kwargs
) -> da.Array:
    """Lazy ``(y, x)`` map from ``fn(block, *args, **kwargs)`` over (y, x) blocks of ``data``.

    Like ``map_blocks(..., drop_axis=2)`` with all bands in one chunk, but hands each block
    over as it is (``map_blocks`` would copy it through a concatenation). ``chunks`` gives
    the output's (y, x) chunks when ``fn`` trims its blocks.
    """
    if data.numblocks[2] != 1:
        data = data.rechunk({2: -1})

    def call(blocks, *a, **kw):
        return fn(blocks[0], *a, **kw)

    adjust = None if chunks is None else {"i": chunks[0], "j": chunks[1]}
    return da.blockwise(
        call,
        "ij",
        data,
        "ijk",
        *[item for arg in args for item in (arg, None)],
        concatenate=False,
        adjust_chunks=adjust,
        dtype=dtype,
        meta=np.empty((0, 0), dtype),
        **kwargs,
    )


def map_windows(
    data: da.Array, block_fn: Callable[..., np.ndarray], halo: int, dtype=np.float32, **kwargs
) -> da.Array:
    """Run ``block_fn(block, halo=halo, **kwargs) -> (rows, cols)`` over ``data``, cast to
    ``dtype``.

    ``data`` is a ``(y, x, band)`` float dask array with NaN on nodata. Each block gets
    ``halo`` (= outer // 2) pixels of context, NaN beyond the image edge, so window statistics
    near a tile border see the neighbouring tiles. Row chunks are split so every CPU gets work.
    """
    from hsad.engine.scheduler import cpu_count

    h = halo
    per_worker = math.ceil(data.shape[0] / cpu_count())
    rows = _chunks(data.shape[0], min(max(data.chunks[0]), per_worker), h)
    cols = _chunks(data.shape[1], max(data.chunks[1]), h)
    if min(data.shape[:2]) <= h:  # smaller than a halo: one block, clipped at its edges
        rows, cols = (data.shape[0],), (data.shape[1],)
    data = data.rechunk((rows, cols, -1))
    if len(rows) == len(cols) == 1:
        h = 0  # one block: the block function's own clipping is the image edge
    elif h:
        data = da.overlap.overlap(
            data, depth={0: h, 1: h, 2: 0}, boundary={0: np.nan, 1: np.nan, 2: "none"}
        )
    fn = functools.partial(_cast_block, block_fn, halo=h, dtype=np.dtype(dtype), **kwargs)
    return map_pixels(fn, data, dtype=dtype, chunks=(rows, cols))


def _cast_block(block_fn, block, *, dtype, **kwargs) -> np.ndarray:
    return block_fn(block, **kwargs).astype(dtype, copy=False)


def padded(block: np.ndarray, halo: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-filled float64 block with a context of ≥ h pixels, and its validity (0/1) map.

    Pixels outside ``block`` and NaN pixels get value 0 and validity 0, which leaves them out
    of every window sum: this is the clipped-window rule.
    """
    if halo > h:
        block = block[halo - h : block.shape[0] - halo + h, halo - h : block.shape[1] - halo + h]
    pad = max(h - halo, 0)
    x = np.asarray(block, dtype=np.float64)
    valid = np.isfinite(x).all(axis=-1)
    x = np.where(valid[..., None], x, 0.0)
    if pad:
        x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
        valid = np.pad(valid, pad)
    return x, valid.astype(np.float64)


_lock = threading.Lock()
_depth = 0
_saved: list[int] = []


def _global_setter(lib) -> Callable[[int], int]:
    def set_threads(n: int) -> int:
        previous = lib.num_threads
        lib.set_num_threads(n)
        return previous

    return set_threads


@functools.cache
def _thread_setters() -> tuple[Callable[[int], int], ...]:
    """Per loaded BLAS, ``set(n) -> previous`` for the process-wide thread count (found once).

    OpenBLAS: ``openblas_set_num_threads_local`` (≥ 0.3.27), which acts process-wide from
    any thread; its ``openblas_set_num_threads`` is ignored when called from a thread other
    than the main one (OpenBLAS 0.3.31, measured). Others: threadpoolctl's setter.
    """
    setters = []
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        fn = None
        if lib.internal_api == "openblas":
            try:
                fn = ctypes.CDLL(lib.filepath).openblas_set_num_threads_local
                fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            except (OSError, AttributeError):
                fn = None
        setters.append(fn or _global_setter(lib))
    return tuple(setters)


#: pixels per piece of the per-pixel BLAS loops (cast, centre, then a product: RX scores,
#: moments, projections). A piece of 4096 pixels × 200 bands in float64 (6.5 MB) stays in
#: cache between the cast and the product; pieces of 32768 pixels went to memory and back,
#: 15–40 % slower per pixel with the same results (docs/performance.md, benchmark 11)
PIECE_PIXELS = 4096


@contextmanager
def single_threaded_linalg() -> Iterator[None]:
    """Run BLAS on one thread while any thread is inside.

    Window detectors solve many small systems, and dask already runs one tile per core:
    threading each small BLAS call would oversubscribe the CPUs. It also makes results
    reproducible: OpenBLAS's threaded and single-threaded paths round differently
    (Cholesky from n ≈ 128, LU from n ≈ 100, measured), so each call must see the same
    thread count whatever the timing. The BLAS thread count is process-wide (OpenBLAS's
    ``…_local`` setter included), so the setting is reference-counted: the first thread in
    sets 1, the last one out restores the previous value.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = [fn(1) for fn in _thread_setters()]
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for fn, n in zip(_thread_setters(), _saved, strict=True):
                    fn(n)
