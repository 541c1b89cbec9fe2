"""Grey-level area opening and closing (4-connectivity), the attribute filters of the
fusion stage.

hsad's own kernel (:mod:`hsad.engine.area_tree`, compiled by numba) builds one component tree
per polarity and reads every area of the multi-scale ladder from it; DIPlib's union-find
area opening (``diplib.AreaOpening``) and scikit-image's max-tree give the same images one
area per call. They are the references of the tests, and the fallbacks (in that order)
where numba is not installed. On a 2496² filter tile of the benchmark scene
(docs/performance.md, benchmark 19) the five areas of the ladder, opening and closing, take
1.1 s against DIPlib's 11.9 s; scikit-image slows down super-linearly on quantised images
with large flat zones (1024 × 1024 uint8: 76 s).

Large batches of filters (:func:`attribute_responses`) are shared out over the cores in
threads: the kernel releases the GIL.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hsad.stopping import StopCounter

try:
    import diplib as _dip
except ImportError:  # a reference backend only (pip install hsad[dev])
    _dip = None

BACKENDS = ("tree", "diplib", "skimage")


def default_backend() -> str:
    """``"tree"`` where numba is installed, else ``"diplib"`` where DIPlib is, else
    ``"skimage"``."""
    if importlib.util.find_spec("numba") is not None:
        return "tree"
    return "diplib" if _dip is not None else "skimage"


def _skimage(image: np.ndarray, area: int, polarity: str) -> np.ndarray:
    from skimage.morphology import area_closing, area_opening

    op = area_opening if polarity == "opening" else area_closing
    return op(image, area_threshold=area, connectivity=1)


def _diplib(image: np.ndarray, area: int, polarity: str) -> np.ndarray:
    out = _dip.AreaOpening(np.ascontiguousarray(image), None, int(area), 1, polarity)
    return np.asarray(out).astype(image.dtype, copy=False).reshape(image.shape)


def _tree(image: np.ndarray, area: int, polarity: str) -> np.ndarray:
    from hsad.engine.area_tree import area_filters

    return area_filters(image, (area,), (polarity,))[polarity][0]


def area_filter(image: np.ndarray, area: int, polarity: str = "opening", *,
                backend: str | None = None) -> np.ndarray:
    """Area opening (``polarity="opening"``) or closing of a 2-D image, 4-connectivity.

    The opening removes bright connected structures of fewer than ``area`` pixels (the
    closing, dark ones), as ``skimage.morphology.area_opening(image, area, 1)`` does.
    ``backend``: ``"tree"`` (hsad's kernel), ``"diplib"``, ``"skimage"`` or ``None``
    (:func:`default_backend`).
    """
    image = np.asarray(image)
    backend = backend or default_backend()
    if image.ndim != 2:
        raise ValueError(f"area_filter needs a 2-D image, got shape {image.shape}")
    if polarity not in ("opening", "closing"):
        raise ValueError(f"polarity must be 'opening' or 'closing', not {polarity!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "diplib" and _dip is None:
        raise ImportError("diplib is not installed")
    if area <= 1 or image.size == 0:
        return image.copy()
    return {"tree": _tree, "diplib": _diplib, "skimage": _skimage}[backend](
        image, area, polarity)


# ------------------------------------------------------------ attribute responses in parallel

#: batches of at least this many pixels (about 0.03 s of filtering at the ladder's five
#: areas) are shared out over every core; smaller ones run in the calling thread. Threads
#: cost next to nothing to start: four 256² images take 0.043 s on two threads against
#: 0.079 s on one (docs/performance.md, benchmark 17)
PARALLEL_PIXELS = 1 << 16

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_stops = StopCounter()  # the stops asked by stop_filters


class FiltersStopped(RuntimeError):
    """Filters of a batch that :func:`stop_filters` stopped before they began."""


def attribute_response(image: np.ndarray, areas, *, summed: bool = False) -> np.ndarray:
    """``|f − γ_a(f)| + |φ_a(f) − f|`` of one image ``f`` for each area ``a``, stacked
    ``(len(areas), h, w)``: γ the area opening, φ the closing, both read from one tree per
    polarity (:mod:`hsad.engine.area_tree`; without numba, one filter per area and polarity).
    Integer images give exact integers (uint16 for 8-bit images, uint32 otherwise), float
    images float64. ``summed``: the sum over the areas instead, ``(h, w)`` (uint32 for
    integer images)."""
    f = np.asarray(image)
    if f.ndim != 2:
        raise ValueError(f"attribute_response needs a 2-D image, got shape {f.shape}")
    areas = tuple(int(a) for a in areas)
    if np.issubdtype(f.dtype, np.integer):
        # a signed type holding φ − γ ≤ max(f) − min(f)
        wide = {1: np.int16, 2: np.int32}.get(f.dtype.itemsize, np.int64)
        dtype = np.uint32 if summed or f.dtype.itemsize > 1 else np.uint16
    else:
        wide = dtype = np.float64
    stacks = _filtered_stacks(f, areas)  # the closings, then the openings
    if summed:  # each polarity reduced before the next is made (response_bytes)
        acc = np.float64 if f.dtype.kind == "f" else np.int64
        total = np.sum(next(stacks), axis=0, dtype=acc)
        total -= np.sum(next(stacks), axis=0, dtype=acc)
        return total.astype(dtype)
    # γ ≤ f ≤ φ, so |f − γ| + |φ − f| = φ − γ
    out = next(stacks).astype(wide)
    out -= next(stacks)
    return out.astype(dtype)


def tophat_response(image: np.ndarray, areas) -> np.ndarray:
    """``Σ_a (f − γ_a(f))``, the white top-hats of one image ``f`` by area opening summed
    over ``areas``: bright structures smaller than an area respond, larger ones vanish.
    Integer images give exact integers (uint32), float images float64."""
    f = np.asarray(image)
    if f.ndim != 2:
        raise ValueError(f"tophat_response needs a 2-D image, got shape {f.shape}")
    areas = tuple(int(a) for a in areas)
    acc = np.float64 if f.dtype.kind == "f" else np.int64
    opened = next(_filtered_stacks(f, areas, ("opening",)))
    total = len(areas) * f.astype(acc) - np.sum(opened, axis=0, dtype=acc)
    return total.astype(np.float64 if f.dtype.kind == "f" else np.uint32)


def _filtered_stacks(f: np.ndarray, areas: tuple[int, ...],
                     polarities: tuple[str, ...] = ("closing", "opening")):
    """The closings, then the openings of ``f`` at every area, ``(len(areas), h, w)``
    each (or the ``polarities`` asked for): from one tree per polarity
    (:func:`default_backend` ``"tree"``, :mod:`hsad.engine.area_tree`) or one filter per area."""
    if default_backend() == "tree":
        from hsad.engine.area_tree import iter_area_filters

        yield from iter_area_filters(f, areas, polarities)
        return
    for polarity in polarities:
        yield (np.stack([area_filter(f, a, polarity) for a in areas]) if areas
               else np.empty((0,) + f.shape, f.dtype))


def response_bytes(dtype, n_areas: int) -> int:
    """Bytes per pixel that :func:`attribute_response` holds at its peak for an image of
    ``dtype`` at ``n_areas`` areas, summed: the tree (flooding: each pixel's node and at
    most one node a pixel, its parent, level, area and place, or during the build the
    pixel stack and visits; union-find: the pixel order and three int32), one polarity's
    filtered images, the sum and its part."""
    dtype = np.dtype(dtype)
    return 8 + 12 + n_areas * dtype.itemsize + 2 * 8


def attribute_responses(images, areas, *, summed: bool = False,
                        workers: int | None = None) -> list[np.ndarray]:
    """:func:`attribute_response` of every image (same ``areas``), on several cores when
    it pays: one job per image in a pool of threads shared by every caller (the tree
    kernel and numpy's sort release the GIL, so threads run in parallel; the fallback
    filters hold it, and then gain nothing but lose nothing either).

    ``workers``: the pool's thread count (the pool grows to the largest asked for);
    ``None`` uses every core the process may use (:func:`hsad.engine.scheduler.cpu_count`)
    when the batch holds at least :data:`PARALLEL_PIXELS` pixels; ``0`` or ``1`` runs here.
    Inside a dask.distributed worker process (daemonic, one thread per core already) the
    filters run here. The results are the same either way.
    """
    images = [np.ascontiguousarray(im) for im in images]
    areas = tuple(int(a) for a in areas)
    if workers is None:
        from hsad.engine.scheduler import cpu_count

        big = sum(im.size for im in images) >= PARALLEL_PIXELS
        workers = cpu_count() if big else 0
    stops = _stops.mark()
    if min(int(workers), len(images)) < 2 or multiprocessing.current_process().daemon:
        return [_response(im, areas, summed, stops) for im in images]
    pool = _executor(int(workers))
    jobs = [pool.submit(_response, im, areas, summed, stops) for im in images]
    try:
        return [job.result() for job in jobs]
    finally:  # on an error or an interrupt, the jobs not yet begun are dropped
        for job in jobs:
            job.cancel()


def _response(image, areas, summed, stops):
    """:func:`attribute_response`, unless :func:`stop_filters` was called since the batch
    began (``stops``: the count then)."""
    if _stops.stopped_since(stops):
        raise FiltersStopped("area filters stopped")
    return attribute_response(image, areas, summed=summed)


def _executor(size: int) -> ThreadPoolExecutor:
    """The shared pool of at least ``size`` threads (made once and kept: one pool serves
    every caller, so filter jobs in flight stay within the cores)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < size:
            # a batch may still be using the smaller pool: left to it, its idle threads
            # end once nothing refers to it
            _pool = ThreadPoolExecutor(size, thread_name_prefix="hsad-area-filters")
            _pool_size = size
        return _pool


def forget_pool() -> None:
    """Drop the shared pool without its threads (a forked child: :mod:`hsad._fork_safety`);
    the next batch makes one."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


def stop_filters() -> None:
    """Stop every batch under way (on Ctrl-C or SIGTERM): their jobs not yet begun raise
    :class:`FiltersStopped` instead of filtering. Jobs already filtering finish their image
    (the compiled kernel cannot be interrupted). Later batches run normally."""
    _stops.stop()
