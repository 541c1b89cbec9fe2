"""Even samples of a scene: small windows on a grid, read without a pass over the scene.

The scene checks (nodata, undeclared fill values, overflow, the scene's level against a
model's) each look at an even sample of a few thousand pixels. :func:`even_sample` reads
it; within one detector call (:func:`shared_samples`, entered by ``fit``, ``score`` and
``fit_score``) the same sample of the same array is read once and handed to each check
that asks for it.
"""

from __future__ import annotations

import contextlib
import contextvars

import dask
import numpy as np
from dask.local import get_sync

from hsad.cube import source_of

#: side of the small windows an even sample of a scene is read in (:func:`even_sample`)
SAMPLE_WINDOW = 8
#: a lazy scene no larger than this is read whole for a sample: that costs less than one
#: computation per window (about 3 ms each: 64 windows of a 256² window took 0.24 s)
ONE_PASS_BYTES = 16 * 2**20

#: samples larger than this are read again rather than held through a call (a 65 536-pixel
#: sample of 425 float32 bands is 111 MB)
SHARED_BYTES = 32 * 2**20


class _Samples(dict):
    """The samples read in one detector call: ``(id of the array, its dask name, pixels)``
    → ``(array, sample)`` (the array held so that its id stays its own; dask renames an
    array that is assigned to in place); ``open`` until the call ends."""

    open = True


#: the current detector call's samples (None outside a call)
_SHARED: contextvars.ContextVar[_Samples | None] = contextvars.ContextVar("hsad_samples",
                                                                          default=None)


@contextlib.contextmanager
def shared_samples():
    """Within the block, :func:`even_sample` reads each sample of an array once (a
    compressed GeoTIFF's windows decode whole tiles: two checks' samples cost two decodes);
    nothing is kept after it, not even by a context copied inside it (an asyncio task): an
    array may change between calls. Nested blocks share the outermost one's samples. A
    numpy array changed in place during the block is not seen by the checks that follow."""
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
    dask, read as small windows on an even grid (all of it when it is no larger): a lazy
    reader then reads those windows only, where a strided slice makes it read whole chunks
    (GeoTIFF windows, ENVI rows under a band selection). A dask array made over a numpy
    array or a reader (:func:`hsad.cube.source_of`) is sliced there directly, without a
    dask graph per window; a reader's scene of at most :data:`ONE_PASS_BYTES` is read
    once, whole. Within :func:`shared_samples`, a sample read already is handed out again
    (a copy)."""
    shared = _SHARED.get()
    if shared is None or not shared.open:
        return _read_sample(data, n_pixels)
    key = (id(data), getattr(data, "name", None), int(n_pixels))
    entry = shared.get(key)
    if entry is not None and entry[0] is data:
        return entry[1].copy()
    sample = _read_sample(data, n_pixels)
    if sample.nbytes <= SHARED_BYTES:
        shared[key] = (data, sample.copy())
    return sample


def _read_sample(data, n_pixels: int) -> np.ndarray:
    """:func:`even_sample`, read."""
    rows, cols, bands = data.shape
    w = SAMPLE_WINDOW
    if rows * cols <= n_pixels or rows < w or cols < w:
        windows = [(slice(None), slice(None))]
    else:
        side = max(1, int(np.ceil(np.sqrt(n_pixels / (w * w)))))
        ys = np.unique(np.linspace(0, rows - w, side).astype(int))
        xs = np.unique(np.linspace(0, cols - w, side).astype(int))
        windows = [(slice(y, y + w), slice(x, x + w)) for y in ys for x in xs]
    # each window of a reader alone: computed together, windows sharing a chunk would read
    # it whole (dask's scheduler as a function: given by name it imports
    # dask.distributed); a GeoTIFF stays open meanwhile, so that its tiles are decoded
    # once for all the windows in them (hsad.io.kept_open). A reader's slice is its read.
    # Where dask cannot merge the slice into the read (arithmetic on the cube), a window
    # alone computes its whole chunks: then all windows in one computation, each chunk
    # once.
    from hsad.io.graph_sources import reads_windows
    from hsad.io.kept_open import session
    from hsad.io.window import ComputedView

    held = source_of(data)
    if isinstance(held, ComputedView) and not held.reads_windows():
        held = None  # hsad's view of such a graph: its windows would compute whole chunks
        together = True
    else:
        together = held is None and hasattr(data, "dask") and not reads_windows(data)
    small = data.nbytes <= ONE_PASS_BYTES
    with session():
        if held is not None and (isinstance(held, np.ndarray) or not small):
            data = held  # numpy, or a reader's own windows: sliced without dask
        elif held is not None:
            data = np.asarray(held[:, :, :])  # a reader's small scene: one read, whole
        elif hasattr(data, "dask") and small:
            data = data.compute(scheduler=get_sync)  # small: read whole, at once
        blocks = [data[rs, cs, :] for rs, cs in windows]
        if together and hasattr(data, "dask"):
            blocks = dask.compute(*blocks, scheduler=get_sync)
        blocks = [b.compute(scheduler=get_sync) if hasattr(b, "dask") else b
                  for b in blocks]
    return np.concatenate([np.asarray(b).reshape(-1, bands) for b in blocks])
