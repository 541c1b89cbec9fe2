"""Grey-level area opening and closing (4-connectivity), the attribute filters of the
fusion stage.

hsad's own kernel (:mod:`hsad.area_tree`, compiled by numba) builds one component tree
per polarity and reads every area of the multi-scale ladder from it; DIPlib's union-find
area opening (``diplib.AreaOpening``) and scikit-image's max-tree give the same images one
area per call. They are the references of the tests, and the fallbacks (in that order)
where numba is not installed. On the 2048² principal-component images of benchmark 16
(docs/performance.md) the five areas of the ladder, opening and closing, take less than
half of DIPlib's time; scikit-image slows down super-linearly on quantised images with
large flat zones (1024 × 1024 uint8: 76 s).

Large batches of filters (:func:`attribute_responses`) run in worker processes. This module
imports only numpy (and the kernel when it filters), so that those workers start light.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

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
    from hsad.area_tree import area_filters

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

#: batches of at least this many pixels (about 3 s of filtering at the ladder's five areas)
#: run in worker processes when the machine has more than one core; a worker costs one to
#: two seconds to start (once per run). Processes, not threads: the fallback filters
#: (DIPlib's) hold the GIL; the tree releases it
PARALLEL_PIXELS = 1 << 22

#: environment variable: ``0`` keeps the filters in the calling process, ``1`` allows worker
#: processes; unset, they are allowed when ``__main__`` can be imported again safely (see
#: :func:`_main_is_reimportable`). The ``hsad`` command sets ``1`` unless it is set.
WORKER_PROCESSES_ENV = "HSAD_WORKER_PROCESSES"

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def attribute_response(image: np.ndarray, areas, *, summed: bool = False) -> np.ndarray:
    """``|f − γ_a(f)| + |φ_a(f) − f|`` of one image ``f`` for each area ``a``, stacked
    ``(len(areas), h, w)``: γ the area opening, φ the closing, both read from one tree per
    polarity (:mod:`hsad.area_tree`; without numba, one filter per area and polarity).
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


def _filtered_stacks(f: np.ndarray, areas: tuple[int, ...]):
    """The closings, then the openings of ``f`` at every area, ``(len(areas), h, w)``
    each: from one tree per polarity (:func:`default_backend` ``"tree"``, the pixels
    sorted once) or one filter per area."""
    polarities = ("closing", "opening")
    if default_backend() == "tree":
        from hsad.area_tree import iter_area_filters

        yield from iter_area_filters(f, areas, polarities)
        return
    for polarity in polarities:
        yield (np.stack([area_filter(f, a, polarity) for a in areas]) if areas
               else np.empty((0,) + f.shape, f.dtype))


def response_bytes(dtype, n_areas: int) -> int:
    """Bytes per pixel that :func:`attribute_response` holds at its peak for an image of
    ``dtype`` at ``n_areas`` areas, summed: the pixel order (int64), the tree (three
    int32), one polarity's filtered images, the sum and its part."""
    dtype = np.dtype(dtype)
    return 8 + 12 + n_areas * dtype.itemsize + 2 * 8


def attribute_responses(images, areas, *, summed: bool = False,
                        processes: int | None = None) -> list[np.ndarray]:
    """:func:`attribute_response` of every image (same ``areas``), in worker processes
    when it pays.

    ``processes``: worker count; ``None`` uses every core (``dask.system.CPU_COUNT``) when
    the batch holds at least :data:`PARALLEL_PIXELS` pixels and :func:`workers_allowed`;
    ``0`` or ``1`` runs here. Inside a daemonic process (a dask.distributed worker) or where
    processes cannot start, the filters run here: the results are the same either way.
    """
    images = [np.ascontiguousarray(im) for im in images]
    areas = tuple(int(a) for a in areas)
    if processes is None:
        big = sum(im.size for im in images) >= PARALLEL_PIXELS
        processes = dask_cpu_count() if big and workers_allowed() else 0
    # one image or one process: nothing to share out. The pool keeps its size whatever the
    # batch (it starts workers as jobs need them), so batches of other sizes reuse it
    if min(int(processes), len(images)) > 1 and not multiprocessing.current_process().daemon:
        pool = None
        try:
            pool = _executor(int(processes))
            with _interrupts_blocked():  # workers start here: they inherit the blocked Ctrl-C
                results = pool.map(_response, images, [areas] * len(images),
                                   [summed] * len(images))
            return list(results)
        except (OSError, BrokenProcessPool) as exc:
            if getattr(pool, "hsad_stopped", False):  # stop_workers: stop, do not fall back
                raise
            warnings.warn(f"area filters run in this process: worker processes failed "
                          f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)
            _discard_pool()
        except BaseException:  # interrupted: stop the workers now rather than at exit
            _discard_pool(terminate=True)
            raise
    return [attribute_response(im, areas, summed=summed) for im in images]


def _response(image, areas, summed):
    """:func:`attribute_response` with positional arguments (for ``pool.map``)."""
    return attribute_response(image, areas, summed=summed)


def workers_allowed() -> bool:
    """Whether :func:`attribute_responses` may start worker processes by itself
    (:data:`WORKER_PROCESSES_ENV`)."""
    setting = os.environ.get(WORKER_PROCESSES_ENV, "").strip().lower()
    if setting:
        return setting not in ("0", "false", "no", "off")
    return _main_is_reimportable()


def _main_is_reimportable() -> bool:
    """Whether a spawned worker can import ``__main__`` again without rerunning a user's
    script: a module run with ``-m`` (``python -m hsad.cli.main``, pytest, Jupyter's
    kernel) or an interactive session. A plain script may lack the
    ``if __name__ == "__main__"`` guard, so its filters run in its own process."""
    main = sys.modules.get("__main__")
    return getattr(main, "__spec__", None) is not None or not hasattr(main, "__file__")


def dask_cpu_count() -> int:
    """Cores dask uses (respects the CPU affinity and cgroup limits)."""
    from dask.system import CPU_COUNT  # here: workers never import dask

    return int(CPU_COUNT)


def _executor(size: int) -> ProcessPoolExecutor:
    """A pool of ``size`` spawned workers, made once and kept (it is shut down at exit)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"))
            _pool_size = size
        return _pool


def stop_workers() -> None:
    """Terminate the worker processes (on Ctrl-C or SIGTERM): filters still waiting for
    them fail instead of falling back to the calling process. A later call starts a new
    pool."""
    with _pool_lock:
        if _pool is not None:
            _pool.hsad_stopped = True
    _discard_pool(terminate=True)


@contextlib.contextmanager
def _interrupts_blocked():
    """Ctrl-C blocked in this thread: processes started here inherit the blocked signal, so
    a worker leaves Ctrl-C to the calling process, which stops it (no worker tracebacks,
    even while it starts up). The calling process still receives Ctrl-C in its main
    thread."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _discard_pool(terminate: bool = False) -> None:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is not None:
            workers = list((getattr(_pool, "_processes", None) or {}).values())
            _pool.shutdown(wait=False, cancel_futures=True)
            for process in workers if terminate else ():
                process.terminate()
        _pool, _pool_size = None, 0
