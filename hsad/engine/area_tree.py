"""Area openings at several areas from one component tree (4-connectivity), compiled.

The multi-scale fusion filters each principal-component image at five areas, opening and
closing. One call of a union-find area opening per area (DIPlib's) builds the same tree
five times; here the tree is built once per polarity, and each area is then a single pass
over the tree from the root down. The images equal ``skimage.morphology.area_opening``/
``area_closing`` and DIPlib's (tested).

Two ways to build the tree:

- **flooding** (Nistér & Stewénius 2008, "Linear time maximally stable extremal regions";
  Salembier et al. 1998): from one pixel, always to the lowest level reached, with one
  stack per grey level and a stack of open components. Its memory accesses follow the
  image, so it stays in cache: about four times as fast as union-find on 2048² 8-bit
  images (docs/performance.md, benchmark 19). For integer images of at most
  :data:`FLOOD_LEVELS` grey levels: the quantised images of the fusion stage.
- **union-find** (Berger et al. 2007, "Effective component tree computation with
  application to pattern recognition in astronomical imaging": path compression over the
  pixels sorted by grey level): for float images and wide integer ranges.

Both compare grey levels only through their order, so the same code gives the opening
(the max-tree) and the closing (the min-tree). They are compiled by numba on first use
(cached on disk where numba can write, :func:`njit`) and release the GIL.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from numba import config as _numba_config
from numba import njit as _numba_njit


def _installed() -> bool:
    """Whether this copy is an installed one (in site-packages), where a cache beside it
    would outlive ``pip uninstall`` and leave ``import hsad`` working."""
    return bool({"site-packages", "dist-packages"} & set(Path(__file__).resolve().parts))


@contextlib.contextmanager
def _cache_folder():
    """numba's cache in the user's hsad cache (``~/.cache/hsad/numba``) while functions are
    decorated, for an installed copy and unless ``NUMBA_CACHE_DIR`` names a folder; a
    checkout's stays beside its sources."""
    if _numba_config.CACHE_DIR or not _installed():
        yield
        return
    import pooch

    _numba_config.CACHE_DIR = str(Path(pooch.os_cache("hsad")) / "numba")
    try:
        yield
    finally:
        _numba_config.CACHE_DIR = ""


def njit(**options):
    """numba's ``njit`` with ``options``, cached on disk where numba can write its cache
    (:func:`_cache_folder`, else beside this file or in numba's user cache); compiled on
    each first use where it cannot (a read-only install run with a read-only home)."""
    def decorate(function):
        with _cache_folder():
            try:
                return _numba_njit(**options)(function)
            except RuntimeError:  # "cannot cache function …: no locator available"
                return _numba_njit(**{**options, "cache": False})(function)
    return decorate


@njit(cache=True, nogil=True)
def _root(zpar, p):
    """Root of ``p``'s set, compressing the path to it."""
    r = p
    while zpar[r] != r:
        r = zpar[r]
    while zpar[p] != r:
        q = zpar[p]
        zpar[p] = r
        p = q
    return r


@njit(cache=True, nogil=True)
def _neighbour(p, j, y, x, height, width):
    """The ``j``-th 4-neighbour (up, right, down, left) of pixel ``p`` at ``(y, x)``, or -1
    beyond the image's edge."""
    if j == 0:
        return p - width if y > 0 else -1
    if j == 1:
        return p + 1 if x < width - 1 else -1
    if j == 2:
        return p + width if y < height - 1 else -1
    return p - 1 if x > 0 else -1


@njit(cache=True, nogil=True)
def _filtered(values, order, height, width, areas, reverse):
    """Area openings of the flat image ``values`` (``height`` × ``width``) at each of
    ``areas``, for the processing ``order`` (decreasing levels: openings; increasing:
    closings), read backwards when ``reverse``. Returns ``(len(areas), height·width)``."""
    n = height * width
    parent = np.empty(n, np.int32)
    zpar = np.full(n, -1, np.int32)  # -1: not reached yet
    size = np.ones(n, np.int32)
    for k in range(n):  # the tree, leaves (extreme levels) first
        p = order[n - 1 - k] if reverse else order[k]
        parent[p] = p
        zpar[p] = p
        y = p // width
        x = p - y * width
        for j in range(4):
            q = _neighbour(p, j, y, x, height, width)
            if q < 0 or zpar[q] < 0:
                continue
            r = _root(zpar, q)
            if r != p:
                parent[r] = p
                zpar[r] = p
                size[p] += size[r]
    n_areas = areas.shape[0]
    out = np.empty((n_areas, n), values.dtype)
    for k in range(n - 1, -1, -1):  # from the root: a parent is final before its children
        p = order[n - 1 - k] if reverse else order[k]
        q = parent[p]
        if q == p:  # the root (the whole image) keeps its level
            for a in range(n_areas):
                out[a, p] = values[p]
            continue
        if values[parent[q]] == values[q]:  # point to the node's canonical pixel
            q = parent[q]
            parent[p] = q
        if values[q] != values[p]:  # p is its node's canonical pixel: the node's size
            for a in range(n_areas):
                out[a, p] = values[p] if size[p] >= areas[a] else out[a, q]
        else:
            for a in range(n_areas):
                out[a, p] = out[a, q]
    return out


#: integer images spanning at most this many grey levels are filtered by flooding (one
#: stack per level; finding the next non-empty one scans the levels between)
FLOOD_LEVELS = 4096


@njit(cache=True, nogil=True)
def _level(values, p, low, high, increasing):
    """Grey level of pixel ``p`` counted from the flood's start: from ``low`` upwards
    (``increasing``: the min-tree), else from ``high`` downwards (the max-tree)."""
    return np.int64(values[p]) - low if increasing else high - np.int64(values[p])


@njit(cache=True, nogil=True)
def _flood_tree(values, low, high, increasing, height, width):
    """The component tree of ``values`` by flooding. Returns ``(pixel_node, parent, level,
    size, order)``: each pixel's node; each node's parent (the root its own), level (as
    :func:`_level`) and area; the nodes in the order they were closed (children before
    their parent, the root last)."""
    n = height * width
    n_levels = high - low + 1
    start = np.zeros(n_levels + 1, np.int64)  # each level's stack: start[v] … top[v]
    for p in range(n):
        start[_level(values, p, low, high, increasing) + 1] += 1
    for v in range(n_levels):
        start[v + 1] += start[v]
    top = start[:n_levels].copy()
    stack = np.empty(n, np.int32)
    edge = np.full(n, 255, np.uint8)  # the next neighbour to visit; 255: not reached
    pixel_node = np.empty(n, np.int32)
    parent = np.empty(n, np.int32)
    level = np.empty(n, np.uint16)  # at most 65536 levels (iter_area_filters)
    size = np.empty(n, np.int32)
    order = np.empty(n, np.int32)
    n_closed = 0
    # the open components, lowest on top, above a sentinel beyond every level; the flood
    # starts at pixel 0, in a component of its own level
    c_level = np.empty(n_levels + 2, np.int64)
    c_size = np.empty(n_levels + 2, np.int64)
    c_node = np.empty(n_levels + 2, np.int32)
    c_level[0] = n_levels
    p = 0
    lp = _level(values, p, low, high, increasing)
    edge[p] = 0
    c_level[1], c_size[1], c_node[1] = lp, 0, 0
    level[0] = lp
    n_nodes, depth = 1, 2
    while True:
        y = p // width
        x = p - y * width
        while edge[p] < 4:  # visit p's neighbours; descend at the first lower one
            q = _neighbour(p, edge[p], y, x, height, width)
            edge[p] += 1
            if q < 0 or edge[q] != 255:
                continue
            edge[q] = 0
            lq = _level(values, q, low, high, increasing)
            if lq >= lp:
                stack[top[lq]] = q
                top[lq] += 1
                continue
            stack[top[lp]] = p  # p waits; a new component opens at q's level
            top[lp] += 1
            p, lp = q, lq
            y = p // width
            x = p - y * width
            c_level[depth], c_size[depth], c_node[depth] = lp, 0, n_nodes
            level[n_nodes] = lp
            n_nodes += 1
            depth += 1
        pixel_node[p] = c_node[depth - 1]  # p joins the open component of its level
        c_size[depth - 1] += 1
        v = c_level[depth - 1]  # the lowest waiting pixel
        while v < n_levels and top[v] == start[v]:
            v += 1
        if v == n_levels:
            break
        top[v] -= 1
        p, lp = stack[top[v]], v
        while v > c_level[depth - 1]:  # close the components below v
            t = depth - 1
            node = c_node[t]
            size[node] = c_size[t]
            order[n_closed] = node
            n_closed += 1
            if v < c_level[t - 1]:  # it grows on at level v: a new node above it
                parent[node] = n_nodes
                level[n_nodes] = v
                c_node[t], c_level[t] = n_nodes, v
                n_nodes += 1
            else:  # it joins the component below
                parent[node] = c_node[t - 1]
                c_size[t - 1] += c_size[t]
                depth -= 1
    root = c_node[depth - 1]
    size[root] = c_size[depth - 1]
    parent[root] = root
    order[n_closed] = root
    return pixel_node, parent, level, size, order[:n_closed + 1]


@njit(cache=True, nogil=True)
def _flood_filtered(values, low, high, increasing, height, width, areas):
    """Area closings (``increasing``) or openings of the flat integer image ``values``
    (grey levels ``low`` … ``high``) at each of ``areas``: ``(len(areas), height·width)``."""
    pixel_node, parent, level, size, order = _flood_tree(values, low, high, increasing,
                                                         height, width)
    out = np.empty((areas.shape[0], height * width), values.dtype)
    kept = np.empty(order.shape[0], values.dtype)  # each node's filtered value at one area
    for a in range(areas.shape[0]):
        for k in range(order.shape[0] - 1, -1, -1):  # from the root: parents first
            node = order[k]
            q = parent[node]
            if q == node or size[node] >= areas[a]:
                kept[node] = low + level[node] if increasing else high - level[node]
            else:
                kept[node] = kept[q]
        for p in range(height * width):
            out[a, p] = kept[pixel_node[p]]
    return out


def area_filters(image: np.ndarray, areas, polarities=("opening", "closing")) -> dict:
    """``{polarity: (len(areas), h, w)}``: the area opening (bright structures of fewer
    than ``a`` pixels removed) and/or closing (dark ones) of a 2-D image at every area
    ``a``, from one tree per polarity. Same dtype as ``image``; no NaN allowed."""
    return dict(zip(polarities, iter_area_filters(image, areas, polarities), strict=True))


def iter_area_filters(image: np.ndarray, areas, polarities=("opening", "closing")):
    """:func:`area_filters` one polarity at a time: the stacks in the order of
    ``polarities``: by flooding for integer images of at most :data:`FLOOD_LEVELS` grey
    levels, else by union-find (the pixels sorted once). A caller that reduces each stack
    before taking the next holds one polarity's images at a time."""
    image = np.ascontiguousarray(image)
    if image.ndim != 2:
        raise ValueError(f"area filters need a 2-D image, got shape {image.shape}")
    if image.dtype.kind == "f" and np.isnan(image).any():
        raise ValueError("area filters need an image without NaN")
    for polarity in polarities:
        if polarity not in ("opening", "closing"):
            raise ValueError(f"polarity must be 'opening' or 'closing', not {polarity!r}")
    areas = np.asarray([int(a) for a in areas], np.int64)
    height, width = image.shape
    if image.size == 0:
        for _ in polarities:
            yield np.empty((len(areas), height, width), image.dtype)
        return
    flat = image.ravel()
    if image.dtype.kind in "iub" and image.dtype.itemsize <= 4:
        flat = flat.view(np.uint8) if image.dtype.kind == "b" else flat
        low, high = int(flat.min()), int(flat.max())
        if high - low < min(FLOOD_LEVELS, 1 << 16):  # node levels are uint16
            for polarity in polarities:
                out = _flood_filtered(flat, low, high, polarity == "closing", height,
                                      width, areas)
                yield out.view(image.dtype).reshape(len(areas), height, width)
            return
    increasing = np.argsort(flat, kind="stable")  # radix sort for 8- and 16-bit images
    for polarity in polarities:
        yield _filtered(flat, increasing, height, width, areas,
                        polarity == "opening").reshape(len(areas), height, width)
