"""Grey-level area opening and closing (4-connectivity), the attribute filters of the
fusion stage.

DIPlib's union-find implementation (``diplib.AreaOpening``) is used when it is installed:
it gives the same images as ``skimage.morphology.area_opening``/``area_closing`` and runs
in linear time, whereas scikit-image's max-tree slows down super-linearly on quantised
images with large flat zones (512 × 512 uint8: 0.04 s against 2.3 s; 1024 × 1024: 76 s
for scikit-image). scikit-image is the fallback.

DIPlib holds the GIL, so threads run its filters one at a time: large batches of filters
(:func:`attribute_responses`) run in worker processes instead. This module imports only
numpy and DIPlib, so that those workers start light.
"""

from __future__ import annotations

import contextlib
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
except ImportError:  # pragma: no cover - exercised by the fallback test
    _dip = None


def _skimage(image: np.ndarray, area: int, polarity: str) -> np.ndarray:
    from skimage.morphology import area_closing, area_opening

    op = area_opening if polarity == "opening" else area_closing
    return op(image, area_threshold=area, connectivity=1)


def _diplib(image: np.ndarray, area: int, polarity: str) -> np.ndarray:
    out = _dip.AreaOpening(np.ascontiguousarray(image), None, int(area), 1, polarity)
    return np.asarray(out).astype(image.dtype, copy=False).reshape(image.shape)


def area_filter(image: np.ndarray, area: int, polarity: str = "opening", *,
                backend: str | None = None) -> np.ndarray:
    """Area opening (``polarity="opening"``) or closing of a 2-D image, 4-connectivity.

    The opening removes bright connected structures of fewer than ``area`` pixels (the
    closing, dark ones), as ``skimage.morphology.area_opening(image, area, 1)`` does.
    ``backend``: ``"diplib"``, ``"skimage"`` or ``None`` (DIPlib when installed).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"area_filter needs a 2-D image, got shape {image.shape}")
    if polarity not in ("opening", "closing"):
        raise ValueError(f"polarity must be 'opening' or 'closing', not {polarity!r}")
    backend = backend or ("diplib" if _dip is not None else "skimage")
    if backend == "diplib" and _dip is None:
        raise ImportError("diplib is not installed")
    if area <= 1 or image.size == 0:
        return image.copy()
    if backend == "diplib":
        return _diplib(image, area, polarity)
    if backend == "skimage":
        return _skimage(image, area, polarity)
    raise ValueError(f"backend must be 'diplib' or 'skimage', not {backend!r}")


# ------------------------------------------------------------ attribute responses in parallel

#: batches of at least this many pixel-filters (pixels × areas; about 4 s of filtering) run
#: in worker processes when the machine has more than one core: DIPlib holds the GIL, so
#: threads would run its filters one at a time (two threads take as long as two calls in a
#: row), and a worker costs about a second to start (once per run)
PARALLEL_PIXELS = 1 << 22

#: environment variable: ``0`` keeps the filters in the calling process, ``1`` allows worker
#: processes; unset, they are allowed when ``__main__`` can be imported again safely (see
#: :func:`_main_is_reimportable`). The ``hsad`` command sets ``1`` unless it is set.
WORKER_PROCESSES_ENV = "HSAD_WORKER_PROCESSES"

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def attribute_response(image: np.ndarray, areas, margins=None) -> np.ndarray:
    """``|f − γ_a(f)| + |φ_a(f) − f|`` of one image ``f`` for each area ``a``, stacked
    ``(len(areas), h, w)``: γ the area opening, φ the closing. Integer images give exact
    integers (uint16 for 8-bit images, uint32 otherwise), float images float64.

    ``margins``: per area, the rows and columns ``(top, bottom, left, right)`` left out of
    that area's filters (a tile's halo wider than a small area needs); the response there is
    0. An area's filters cost more than linearly in the pixels they see, so the small areas
    of a multi-scale ladder are not run on the halo of the largest."""
    f = np.asarray(image)
    if np.issubdtype(f.dtype, np.integer):
        # the narrowest signed type holding 2·max: |f − γ(f)| + |φ(f) − f| ≤ 2·max(f)
        f_wide = f.astype({1: np.int16, 2: np.int32}.get(f.dtype.itemsize, np.int64))
        dtype = np.uint16 if f.dtype.itemsize == 1 else np.uint32
    else:
        f_wide, dtype = f.astype(np.float64), np.float64
    margins = [(0, 0, 0, 0)] * len(areas) if margins is None else list(margins)
    if len(margins) != len(areas):
        raise ValueError(f"{len(margins)} margins for {len(areas)} areas")
    out = np.zeros((len(areas),) + f.shape, dtype)
    for i, (a, (top, bottom, left, right)) in enumerate(zip(areas, margins, strict=True)):
        if min(top, bottom, left, right) < 0 or top + bottom >= f.shape[0] \
                or left + right >= f.shape[1]:
            raise ValueError(f"margins {(top, bottom, left, right)} do not fit an image of "
                             f"shape {f.shape}")
        inner = (slice(top, f.shape[0] - bottom), slice(left, f.shape[1] - right))
        part, wide = np.ascontiguousarray(f[inner]), f_wide[inner]
        np.add(np.abs(wide - area_filter(part, a, "opening")),
               np.abs(area_filter(part, a, "closing") - wide), out=out[i][inner],
               casting="unsafe")
    return out


def attribute_responses(images, areas, *, margins=None,
                        processes: int | None = None) -> list[np.ndarray]:
    """:func:`attribute_response` of every image (same ``areas`` and ``margins``), in
    worker processes when it pays.

    ``processes``: worker count; ``None`` uses every core (``dask.system.CPU_COUNT``) when
    the batch holds at least :data:`PARALLEL_PIXELS` pixel-filters and :func:`workers_allowed`;
    ``0`` or ``1`` runs here. Inside a daemonic process (a dask.distributed worker) or where
    processes cannot start, the filters run here: the results are the same either way.
    """
    images = [np.ascontiguousarray(im) for im in images]
    areas = tuple(int(a) for a in areas)
    if processes is None:
        big = sum(im.size for im in images) * len(areas) >= PARALLEL_PIXELS
        processes = dask_cpu_count() if big and workers_allowed() else 0
    # one image or one process: nothing to share out. The pool keeps its size whatever the
    # batch (it starts workers as jobs need them), so batches of other sizes reuse it
    if min(int(processes), len(images)) > 1 and not multiprocessing.current_process().daemon:
        pool = None
        try:
            pool = _executor(int(processes))
            with _interrupts_blocked():  # workers start here: they inherit the blocked Ctrl-C
                results = pool.map(attribute_response, images, [areas] * len(images),
                                   [margins] * len(images))
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
    return [attribute_response(im, areas, margins) for im in images]


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
