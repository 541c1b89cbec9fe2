"""What a plain dask array was made over, found in its own graph.

A cube a user builds (``dask.array.from_array``, ``xarray``'s ``.chunk()``,
``rioxarray.open_rasterio(..., chunks=...)``) carries no source that
:func:`hsad.cube.keep_source` registered, so its small windows (an even sample of the
scene) would each go through a dask graph: 1–5 ms a window, and one read per chunk a
window touches (a read per band for rioxarray's one-band chunks: 7 s for 128 windows of a
768² × 60 scene). Two graphs that dask's ``from_array`` builds hold the array itself:

- over an array-like (a file's lazy view): a layer ``original-<name>`` holding it, and the
  ``<name>`` layer of ``getter`` tasks slicing it chunk by chunk;
- over a numpy array: one layer of the chunks themselves (views of dask's copy of it).

:func:`graph_source` returns an array-like that reads any window from those, as dask
computes it, and :class:`PermutedSource` the same with its axes in another order
(``rioxarray``'s ``(band, y, x)`` made ``(y, x, band)``).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import weakref

import numpy as np

from hsad.io.window import full_key


def _covering(index, n: int):
    """``(slice with step 1, the index within it)`` for one axis of length ``n``: the
    slice reads what the index needs, the index then picks it (None: all of it; an int
    drops the axis). IndexError for what numpy's outer indexing refuses or reads otherwise
    (a float, a boolean scalar, a mask of another length, None)."""
    if isinstance(index, slice):
        start, stop, step = index.indices(n)
        if step == 1:
            return slice(start, max(start, stop)), None
        picked = np.arange(start, stop, step)
    elif isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
        i = int(index) + (n if index < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"index {index} is out of bounds for an axis of size {n}")
        return slice(i, i + 1), 0
    else:
        picked = np.asarray(index) if isinstance(index, (list, tuple, np.ndarray)) else None
        if picked is None or picked.ndim != 1 or picked.dtype.kind not in "biu" or (
                picked.dtype == bool and picked.shape != (n,)):
            raise IndexError(f"{index!r} is not an index this array takes on an axis of "
                             f"size {n} (slices, integers, 1-D integer or boolean arrays)")
        if picked.dtype == bool:
            picked = np.flatnonzero(picked)
        picked = np.where(picked < 0, picked + n, picked).astype(np.intp)
    if picked.size == 0:
        return slice(0, 0), picked
    lo, hi = int(picked.min()), int(picked.max()) + 1
    if lo < 0 or hi > n:
        raise IndexError(f"index out of bounds for an axis of size {n}")
    return slice(lo, hi), picked - lo


class PermutedSource:
    """Array-like over ``base`` (sliced with step-1 slices only, as dask's getter slices
    it) whose axis ``i`` is ``base``'s axis ``order[i]``. An index (per axis a slice, an
    integer, or a 1-D array of positions or a boolean mask, as numpy's outer indexing
    takes them) reads the window of ``base`` that covers it once, under ``lock`` when one
    is given (scattered positions read all between them)."""

    def __init__(self, base, order=(0, 1, 2), lock=None):
        self.base, self.order, self.lock = base, tuple(order), lock
        self.shape = tuple(int(base.shape[a]) for a in self.order)
        self.dtype = np.dtype(base.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        key = full_key(key, self.ndim)
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for a {self.ndim}-dimensional array")
        parts = [_covering(k, n) for k, n in zip(key, self.shape, strict=True)]
        base_key = [slice(None)] * self.ndim
        for axis, (window, _) in zip(self.order, parts, strict=True):
            base_key[axis] = window
        with self.lock if self.lock else contextlib.nullcontext():
            block = np.asarray(self.base[tuple(base_key)])
        block = block.transpose(self.order)  # view axis i: base axis order[i]
        for axis in reversed(range(self.ndim)):  # later axes first: earlier ones stay put
            picked = parts[axis][1]
            if picked is not None:
                block = np.take(block, picked, axis=axis)
        return block

    def __array__(self, dtype=None, copy=None):
        out = self[(slice(None),) * self.ndim]
        return out if dtype is None else out.astype(dtype, copy=False)


class ChunkGrid:
    """Array-like over a numpy array held as its dask chunks (``chunks``: dask's chunk
    sizes per axis; ``blocks``: the chunk arrays by block index); step-1 slices only
    (wrap it in :class:`PermutedSource` for any index)."""

    def __init__(self, chunks, blocks: dict, dtype):
        self.chunks, self.blocks = chunks, blocks
        self.bounds = [np.cumsum((0, *c)).tolist() for c in chunks]
        self.shape = tuple(b[-1] for b in self.bounds)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        spans, shape = [], []  # per axis: (block, slice within it) of each block crossed
        for window, bounds in zip(key, self.bounds, strict=True):
            start, stop, step = window.indices(bounds[-1])
            if step != 1:
                raise ValueError("ChunkGrid reads step-1 slices only (PermutedSource over it "
                                 "reads any)")
            stop = max(start, stop)
            shape.append(stop - start)
            first = bisect.bisect_right(bounds, start) - 1
            spans.append([(i, slice(max(start, bounds[i]) - bounds[i],
                                    min(stop, bounds[i + 1]) - bounds[i]))
                          for i in range(max(0, first), len(bounds) - 1)
                          if bounds[i] < stop and bounds[i + 1] > bounds[i]])
        if 0 in shape:
            return np.empty(shape, self.dtype)
        pieces = np.empty([len(s) for s in spans], dtype=object)
        for pos in itertools.product(*(range(len(s)) for s in spans)):
            chosen = [spans[a][p] for a, p in enumerate(pos)]
            block = self.blocks[tuple(i for i, _ in chosen)]
            pieces[pos] = block[tuple(w for _, w in chosen)]
        return pieces.item() if pieces.size == 1 else np.block(pieces.tolist())


def _getter_source(data, layers, needs):
    """The array-like a ``from_array`` graph over one slices (see the module), or None.
    ``needs``: the layers ``data``'s own layer depends on (the rest of a merged graph
    does not matter)."""
    from dask.array.core import getter, getter_nofancy

    original = f"original-{data.name}"
    task = getattr(layers[data.name], "task", None)
    if needs != {original} or original not in layers or task is None \
            or getattr(task, "func", None) not in (getter, getter_nofancy):
        return None
    kwargs = getattr(task, "kwargs", None) or {}
    if set(kwargs) - {"asarray", "lock"}:
        return None
    held = dict(layers[original]).get(original)
    try:
        from dask._task_spec import DataNode
    except ImportError:  # older dask: the array itself
        DataNode = ()  # noqa: N806
    if isinstance(held, DataNode):
        held = held.value
    if held is None or not hasattr(held, "__getitem__"):
        return None
    return PermutedSource(held, range(data.ndim), lock=kwargs.get("lock") or None)


def _chunk_source(data, layers, needs):
    """The numpy array a graph of its chunks holds (see the module), or None."""
    from dask.highlevelgraph import MaterializedLayer

    if needs or not isinstance(layers[data.name], MaterializedLayer):
        return None
    mapping = dict(layers[data.name])
    keys = list(itertools.product([data.name], *(range(len(c)) for c in data.chunks)))
    if len(mapping) != len(keys):
        return None
    blocks = {}
    for key, window in zip(keys, itertools.product(*data.chunks), strict=True):
        block = mapping.get(key)
        if type(block) is not np.ndarray or block.shape != window \
                or block.dtype != data.dtype:
            return None
        blocks[key[1:]] = block
    return PermutedSource(ChunkGrid(data.chunks, blocks, data.dtype), range(data.ndim))


def graph_source(data):
    """An array-like that reads windows of the dask array ``data`` from the array its
    graph was made over (``dask.array.from_array`` over an array-like or a numpy array),
    as dask would compute them; None for any other graph, or when ``data``'s meta is not
    a numpy array (cupy, masked arrays). Found once per graph layer: it is kept on the
    layer (not in a registry: an array-like holding its own dask array would then never
    be freed)."""
    layers = getattr(getattr(data, "dask", None), "layers", None)
    if layers is None or type(getattr(data, "_meta", None)) is not np.ndarray \
            or data.name not in layers:
        return None
    layer = layers[data.name]
    found = getattr(layer, _FOUND, None)
    if isinstance(found, _Found) and found.holds(data):
        held = found.held
    else:
        needs = getattr(data.dask, "dependencies", {}).get(data.name)
        try:
            held = (_getter_source(data, layers, needs) or _chunk_source(data, layers, needs)
                    if needs is not None else None)
        except Exception:  # another graph's shape than dask's from_array makes
            held = None
        remember(data, held)
    if held is None or held.shape != data.shape or held.dtype != data.dtype:
        return None
    return held


def remember(data, held) -> None:
    """Keep ``held`` (an array-like ``data`` reads as, or None) on ``data``'s graph layer,
    for :func:`graph_source`, with the layers it depends on; a layer that takes no
    attribute keeps nothing."""
    layer = data.dask.layers[data.name]
    below = _below(data)
    below = None if below is None else {name: weakref.ref(layer)
                                        for name, layer in below.items()}
    with contextlib.suppress(AttributeError, TypeError):
        setattr(layer, _FOUND, _Found(weakref.ref(layer), held, below))


def _below(data) -> dict | None:
    """Every layer ``data``'s own layer depends on, directly or not (name → layer); None
    when the graph does not say, or names a layer it lacks."""
    graph = data.dask
    deps = getattr(graph, "dependencies", {})
    found, todo = {}, list(deps.get(data.name, ()) if data.name in deps else [None])
    while todo:
        name = todo.pop()
        if name is None or name not in graph.layers or name not in deps:
            return None
        if name not in found:
            found[name] = graph.layers[name]
            todo.extend(deps[name])
    return found


#: the attribute of a graph layer that keeps what :func:`graph_source` found for it
_FOUND = "_hsad_graph_source"


class _Found:
    """What :func:`graph_source` found for the graph layer ``layer`` (a weak reference;
    ``held`` None: nothing), in a graph where it depended on the layers ``below``,
    directly or not (name → weak reference; None: no dependencies known). It holds for an
    array whose graph has that layer over those same layers: a copied layer
    (``copy.copy``, which shares this and so keeps ``held`` alive with it), or one beside
    other layers of the same names, is looked at again; a pickled one carries nothing
    (unpickled as False, without hsad)."""

    __slots__ = ("layer", "held", "below")

    def __init__(self, layer: weakref.ref, held, below: dict | None):
        self.layer, self.held, self.below = layer, held, below

    def holds(self, data) -> bool:
        """Whether this is what ``data``'s graph reads as (see the class)."""
        if self.layer() is not data.dask.layers.get(data.name):
            return False
        below = _below(data)
        if below is None or self.below is None:
            return below is None and self.below is None
        return below.keys() == self.below.keys() and all(
            below[name] is ref() for name, ref in self.below.items())

    def __reduce__(self):
        return bool, ()


def reads_windows(data) -> bool:
    """Whether a window of the dask array ``data`` computed alone reads only its pixels:
    dask merges the slice into a read by its ``getter`` (``from_array`` over the array,
    or over its ``original-`` layer). Any other graph (arithmetic, a rechunk, delayed
    chunks, ``fancy=False``'s getter) computes the window's whole chunks."""
    from dask.array.core import getter

    layer = data.dask.layers.get(data.name)
    needs = getattr(data.dask, "dependencies", {}).get(data.name)
    func = getattr(getattr(layer, "task", None), "func", None)
    return func is getter and needs is not None and needs <= {f"original-{data.name}"}
