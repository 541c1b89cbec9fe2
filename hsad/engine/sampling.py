"""Even samples of a scene: small windows on a grid, read without a pass over the scene.

The scene checks (nodata, undeclared fill values, overflow, the scene's level against a
model's) each look at an even sample of a few thousand pixels. :func:`even_sample` reads
it, from a reader's own windows where it can (a file decoded in blocks, a compressed
GeoTIFF's, block by block and in threads); within one detector call
(:func:`shared_samples`, entered by ``fit``, ``score`` and ``fit_score``) each window of
an array is read once and handed to each check that asks for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
from dask.local import get_sync

from hsad.cube import source_of

#: side of the small windows an even sample of a scene is read in (:func:`even_sample`)
SAMPLE_WINDOW = 8
#: a lazy scene no larger than this is read whole for a sample: that costs less than one
#: computation per window (about 3 ms each: 64 windows of a 256² window took 0.24 s)
ONE_PASS_BYTES = 16 * 2**20

#: the sizes of the scene checks' samples (the nodata checks', the level check's): within a
#: detector call, a sample of a file decoded in blocks also reads the windows of the
#: smaller ones in the same pass (:func:`_read_sample`), so that a compressed GeoTIFF's
#: blocks are decoded once for both (the level check's 4 096 pixels cost 2.8 s on their own
#: on a deflated 2048² × 50 file, for 64 blocks decoded again)
COMPANION_SAMPLES = (65536, 4096)
#: windows of a reader read per thread, at least: fewer are read in the calling thread
THREAD_WINDOWS = 64

#: window blocks held through a detector call, at most (:func:`shared_samples`): beyond
#: it they are read again (a 65 536-pixel sample of 425 float32 bands is 111 MB)
SHARED_BYTES = 32 * 2**20


class _Samples(dict):
    """The windows read in one detector call: ``(id of the array, its dask name)`` →
    ``(array, {window: block})`` (the array held so that its id stays its own; dask
    renames an array that is assigned to in place); ``open`` until the call ends."""

    open = True
    nbytes = 0

    def keep(self, known: dict, window: tuple, block: np.ndarray) -> None:
        """Hold ``block`` as ``window`` of an array (``known``) while the call's budget
        (:data:`SHARED_BYTES`) allows."""
        if self.open and self.nbytes + block.nbytes <= SHARED_BYTES:
            known[window] = block if block.base is None else block.copy()  # not a view
            self.nbytes += block.nbytes


#: the current detector call's samples (None outside a call)
_SHARED: contextvars.ContextVar[_Samples | None] = contextvars.ContextVar("hsad_samples",
                                                                          default=None)


@contextlib.contextmanager
def shared_samples():
    """Within the block, :func:`even_sample` reads each window of an array once (a
    compressed GeoTIFF's windows decode whole blocks: two checks' samples cost two
    decodes); nothing is kept after it, not even by a context copied inside it (an
    asyncio task): an array may change between calls. Nested blocks share the outermost
    one's windows. A numpy array changed in place during the block is not seen by the
    checks that follow."""
    current = _SHARED.get()
    if current is not None and current.open:
        yield
        return
    samples = _Samples()
    token = _SHARED.set(samples)
    try:
        yield
    finally:
        samples.open = False
        samples.clear()
        _SHARED.reset(token)


def even_sample(data, n_pixels: int) -> np.ndarray:
    """About ``n_pixels`` pixels ``(n, bands)`` of ``data`` ``(rows, cols, bands)``, numpy or
    dask, read as small windows on an even grid (:func:`sample_windows`; all of it when it
    is no larger): a lazy reader then reads those windows only, where a strided slice
    makes it read whole chunks (GeoTIFF windows, ENVI rows under a band selection). A dask
    array made over a numpy array or a reader (:func:`hsad.cube.source_of`) is sliced
    there directly, without a dask graph per window (a reader's windows block by block, in
    threads: :func:`_read_windows`); a reader's scene of at most :data:`ONE_PASS_BYTES` is
    read once, whole. Within :func:`shared_samples`, a window read already is taken again
    (a copy)."""
    shared = _SHARED.get()
    if shared is None or not shared.open:
        return _read_sample(data, n_pixels, None, {})
    key = (id(data), getattr(data, "name", None))
    entry = shared.get(key)
    if entry is None or entry[0] is not data:
        entry = shared[key] = (data, {})
    return _read_sample(data, n_pixels, shared, entry[1])


def _even(lo: int, hi: int, count: int) -> np.ndarray:
    """Up to ``count`` first rows (or columns) of windows evenly from ``lo`` to ``hi``."""
    return np.unique(np.linspace(lo, hi, count).astype(int))


def sample_windows(shape: tuple[int, ...], n_pixels: int) -> list[tuple[slice, slice]]:
    """The ``(rows, cols)`` windows of an even sample of about ``n_pixels`` pixels of a
    scene ``shape`` (rows, cols, …): :data:`SAMPLE_WINDOW`-pixel squares on an even grid
    from its first pixel to its last, or the whole scene when it is no larger."""
    rows, cols = shape[:2]
    w = SAMPLE_WINDOW
    if rows * cols <= n_pixels or rows < w or cols < w:
        return [(slice(0, rows), slice(0, cols))]
    side = max(1, int(np.ceil(np.sqrt(n_pixels / (w * w)))))
    ys, xs = _even(0, rows - w, side), _even(0, cols - w, side)
    return [(slice(int(y), int(y) + w), slice(int(x), int(x) + w)) for y in ys for x in xs]


def _read_sample(data, n_pixels: int, shared: _Samples | None, known: dict) -> np.ndarray:
    """:func:`even_sample`, read: the windows not in ``known`` (``{(row, col) bounds:
    block}``), which then holds them as far as ``shared`` allows."""
    bands = data.shape[2]
    # each window of a reader alone: computed together, windows sharing a chunk would read
    # it whole (dask's scheduler as a function: given by name it imports
    # dask.distributed); a GeoTIFF stays open meanwhile, so that its tiles are decoded
    # once for all the windows in them (hsad.io.kept_open). A reader's slice is its read.
    # Where dask cannot merge the slice into the read (arithmetic on the cube), a window
    # alone computes its whole chunks: then all windows in one computation, each chunk
    # once.
    from hsad.io.graph_sources import reads_windows
    from hsad.io.kept_open import session
    from hsad.io.window import ComputedView, decode_grid

    held = source_of(data)
    if isinstance(held, ComputedView) and not held.reads_windows():
        held = None  # hsad's view of such a graph: its windows would compute whole chunks
        together = True
    else:
        together = held is None and hasattr(data, "dask") and not reads_windows(data)
    small = data.nbytes <= ONE_PASS_BYTES
    by_reader = held is not None and not isinstance(held, np.ndarray) and not small
    windows = sample_windows(data.shape, n_pixels)
    names = [_name(window) for window in windows]
    missing = [i for i, name in enumerate(names) if name not in known]
    companions: set = set()  # the smaller samples' windows: held first
    if not missing:
        blocks = []
    elif by_reader:  # a reader's own windows: sliced without dask
        grid = decode_grid(held)
        wanted = [windows[i] for i in missing]
        whole = len(windows) == 1 and _name(windows[0]) == (0, data.shape[0], 0, data.shape[1])
        if grid is not None and shared is not None and not whole:  # the other checks' windows
            others = [c for n in COMPANION_SAMPLES if n < n_pixels
                      for c in sample_windows(data.shape, n) if _name(c) not in known]
            companions = {_name(c) for c in others}
            wanted += [c for c in others if c not in wanted]
        read = _read_windows(held, wanted, grid)
        blocks = read[: len(missing)]
        for window, block in zip(wanted[len(missing):], read[len(missing):], strict=True):
            shared.keep(known, _name(window), block.reshape(-1, bands))
    else:
        with session():
            if isinstance(held, np.ndarray):
                data = held  # sliced without dask
            elif held is not None:
                data = np.asarray(held[:, :, :])  # a reader's small scene: one read, whole
            elif hasattr(data, "dask") and small:
                data = data.compute(scheduler=get_sync)  # small: read whole, at once
            blocks = [data[windows[i][0], windows[i][1], :] for i in missing]
            if together and hasattr(data, "dask"):
                blocks = dask.compute(*blocks, scheduler=get_sync)
            blocks = [b.compute(scheduler=get_sync) if hasattr(b, "dask") else b
                      for b in blocks]
    fresh = {names[i]: np.asarray(block).reshape(-1, bands)
             for i, block in zip(missing, blocks, strict=True)}
    if shared is not None:  # where the budget holds only some, the smaller samples' first
        for name in sorted(fresh, key=lambda n: n not in companions):
            shared.keep(known, name, fresh[name])
    return np.concatenate([fresh[n] if n in fresh else known[n] for n in names])


def _name(window: tuple[slice, slice]) -> tuple:
    """A window's bounds, ``(row0, row1, col0, col1)``, its name in a call's memo."""
    rs, cs = window
    return rs.start, rs.stop, cs.start, cs.stop


def _read_windows(source, windows: list[tuple[slice, slice]],
                  grid: tuple[int, int, int, int] | None) -> list[np.ndarray]:
    """``windows`` of a reader (or a view of one), sliced from it directly: the windows of
    one block (``grid``) one after the other, so that each block is decoded once
    (:mod:`hsad.io.kept_open`), and runs of blocks (or of windows) in threads, one file
    handle each; the blocks in the order of ``windows``."""
    from hsad.engine.scheduler import concurrency, cpu_count
    from hsad.io.kept_open import session

    if grid is None:
        keys = [(0, 0)] * len(windows)
    else:
        bh, bw, pr, pc = grid
        keys = [((rs.start - pr) // bh, (cs.start - pc) // bw) for rs, cs in windows]
    order = sorted(range(len(windows)), key=lambda i: (keys[i], i))
    parts = max(1, min(concurrency(), cpu_count(), len(windows) // THREAD_WINDOWS))
    if grid is not None:  # whole blocks to each thread
        parts = min(parts, len(set(keys)))
    cuts = [0]
    for p in range(1, max(1, parts)):
        cut = max(cuts[-1], len(order) * p // parts)
        while grid is not None and 0 < cut < len(order) \
                and keys[order[cut]] == keys[order[cut - 1]]:
            cut += 1
        cuts.append(cut)
    runs = [order[a:b] for a, b in zip(cuts, cuts[1:] + [len(order)], strict=True) if b > a]

    leaving = threading.Event()  # a run or the caller raised: the others end at their next window

    def read(run: list[int]) -> list[np.ndarray]:
        try:
            with session():
                return [np.asarray(source[windows[i][0], windows[i][1], :]) for i in run
                        if not leaving.is_set()]
        except BaseException:
            leaving.set()
            raise

    if len(runs) == 1:
        done = [read(runs[0])]
    else:
        with ThreadPoolExecutor(len(runs)) as pool:
            try:
                done = list(pool.map(read, runs))
            except BaseException:  # a read failed, Ctrl-C, SIGTERM: not one window more
                leaving.set()
                raise
    pieces: list = [None] * len(windows)
    for run, blocks in zip(runs, done, strict=True):
        for i, block in zip(run, blocks, strict=True):
            pieces[i] = block
    return pieces
