"""A window of a reader's array, read as a whole file is read.

The readers hand ``dask.array.from_array`` an array-like over the file (ENVI, GeoTIFF, MAT
v7.3). Wrapping it in :class:`WindowView` before that call makes the window a file of its
own to dask: every tile, and every small sample a statistic takes, reads only its own
pixels. (Slicing the dask array of the whole file instead adds a second slicing step that
dask does not merge into the read: a sample of a window then read the window's whole tile.)
"""

from __future__ import annotations

import numpy as np
from affine import Affine


def check_window(window, shape, path=None) -> None:
    """ParameterError unless ``window`` (an :class:`hsad.cube.subset.Window`) lies inside a
    ``shape`` (rows, columns, …) file and holds a pixel."""
    from hsad.errors import ParameterError

    rows, cols = int(shape[0]), int(shape[1])
    if min(window.row_off, window.col_off) < 0 or window.height < 1 or window.width < 1 \
            or window.row_off + window.height > rows or window.col_off + window.width > cols:
        raise ParameterError(f"window -srcwin {window.srcwin()} is not inside the {cols} x "
                             f"{rows} pixel scene", path)


def window_attrs(window, shape, within=None) -> dict:
    """The attribute a reader's cube of ``window`` of a ``shape`` file carries
    (``hsad_window``: row and column offsets, the file's rows and columns); ``within``: the
    file's own place in a larger scene (:func:`window_from_tags`), the offsets then
    counted from that scene, as a window of a window is."""
    from hsad.cube.subset import WINDOW_ATTR

    if within is not None:
        r0, c0, rows, cols = within
        if window is None:
            return {WINDOW_ATTR: within}
        return {WINDOW_ATTR: (r0 + window.row_off, c0 + window.col_off, rows, cols)}
    if window is None:
        return {}
    return {WINDOW_ATTR: (window.row_off, window.col_off, int(shape[0]), int(shape[1]))}


#: ``attrs`` key, for a window of a scene without georeference: ``(r0, c0, rows, cols)``,
#: in the scene, of the raster in whose frame polygons for it are read (x = column,
#: y = −row, as QGIS draws a raster without geotransform) and on whose grid rasters for it
#: are taken: the whole scene for a window cut from it, a converted window's own file
#: (QGIS draws that file from its own origin)
FRAME_ATTR = "hsad_frame"

#: the ``attrs`` of a window (:mod:`hsad.cube.subset`), written to files as
#: :func:`window_tags`, never as they are held
WINDOW_ATTRS = ("hsad_window", "hsad_window_grid", FRAME_ATTR)


def window_tags(cube, own_frame: bool = False) -> dict[str, str]:
    """The ``hsad_window``, ``hsad_window_of`` and ``hsad_frame`` tags of a cube or map of a
    window of a scene (``attrs["hsad_window"]``), as :func:`window_from_tags` and
    :func:`frame_from_tags` read them; none for a whole scene. ``own_frame``: the file
    written is the window's own (``convert``): polygons and rasters for it are on its grid."""
    from hsad.cube import georeferenced, transform_of
    from hsad.cube.subset import current_window, recorded_frame

    window = current_window(cube)  # moved by a slice taken since the cut
    if window is None:
        return {}
    rows, cols = cube.sizes["y"], cube.sizes["x"]
    tags = {"hsad_window": f"{window[1]} {window[0]} {cols} {rows}",
            "hsad_window_of": f"{window[3]} {window[2]}"}  # the scene's columns, rows
    if georeferenced(transform_of(cube), cube.rio.crs):  # placed by its grid: no frame
        return tags
    frame = ((*window[:2], rows, cols) if own_frame else
             recorded_frame(cube.attrs) or (0, 0, *window[2:]))
    return {**tags, "hsad_frame": f"{frame[1]} {frame[0]} {frame[3]} {frame[2]}"}


def frame_from_tags(tags, within, shape) -> tuple[int, int, int, int] | None:
    """The ``hsad_frame`` tag (:data:`FRAME_ATTR`) of a ``shape`` (rows, cols) file placed
    ``within`` a scene (:func:`window_from_tags`): None when it is malformed, lies outside
    the scene or does not hold the file; the whole scene when there is none (maps written
    before the tag)."""
    if "hsad_frame" not in tags:
        return (0, 0, *within[2:])
    frame = _numbers(tags["hsad_frame"], 4)
    if frame is None:
        return None
    c0, r0, cols, rows = frame
    r, c = within[:2]
    holds = r0 <= r and c0 <= c and r + shape[0] <= r0 + rows and c + shape[1] <= c0 + cols
    inside = r0 + rows <= within[2] and c0 + cols <= within[3]
    return (r0, c0, rows, cols) if holds and inside else None


def _numbers(text, count: int) -> list[int] | None:
    """``count`` non-negative integers written in ASCII digits, or None."""
    parts = str(text).split()
    if len(parts) != count or not all(v.isascii() and v.isdigit() for v in parts):
        return None
    return [int(v) for v in parts]


def window_from_tags(tags, shape) -> tuple[int, int, int, int] | None:
    """``(r0, c0, scene rows, scene cols)`` from the ``hsad_window`` (``-srcwin`` xoff yoff
    xsize ysize) and ``hsad_window_of`` (columns rows) tags hsad writes into a map or cube of
    a window of a scene, when the window's size is the file's ``shape`` (rows, cols; a file
    cut again by another tool keeps the old window's tags) and it lies inside that scene;
    else None."""
    window, scene = _numbers(tags.get("hsad_window", ""), 4), _numbers(
        tags.get("hsad_window_of", ""), 2)
    if window is None or scene is None:
        return None
    c0, r0, width, height = window
    cols, rows = scene
    if (height, width) != tuple(shape) or r0 + height > rows or c0 + width > cols:
        return None
    return r0, c0, rows, cols


def decode_grid(source) -> tuple[int, int, int, int] | None:
    """``(block rows, block cols, row phase, col phase)`` of the blocks an array-like
    ``source`` decodes whole for any window in one (a compressed or tiled GeoTIFF's), as
    its ``decode_grid()`` gives them; None when it has none (numpy, an ENVI file)."""
    method = getattr(source, "decode_grid", None)
    return method() if callable(method) else None


def full_key(key, ndim: int) -> tuple:
    """``key`` (an index) as a tuple of ``ndim`` entries: its first ``...`` expanded
    (found by identity: an index array before it compares by value), the rest padded with
    full slices."""
    key = key if isinstance(key, tuple) else (key,)
    where = [i for i, k in enumerate(key) if k is Ellipsis]
    if where:
        i = where[0]
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1:]
    return key + (slice(None),) * (ndim - len(key))


class WindowView:
    """Array-like ``(y, x, band)`` view of rows ``row_off:row_off+height`` and columns
    ``col_off:col_off+width`` of ``base`` (any array-like indexed ``(y, x, band)``)."""

    def __init__(self, base, row_off: int, col_off: int, height: int, width: int):
        self.base = base
        self.offsets = (int(row_off), int(col_off))
        self.shape = (int(height), int(width), *tuple(base.shape)[2:])
        self.dtype = base.dtype
        self.ndim = len(self.shape)

    def _axis(self, index, axis: int):
        """``index`` on axis ``axis`` of the view as an index on ``base``."""
        off, n = self.offsets[axis], self.shape[axis]
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            stop = stop + off
            return slice(start + off, stop if stop >= 0 else None, step)
        if isinstance(index, (int, np.integer)):
            i = int(index) + (n if index < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {index} is out of bounds for axis {axis} of size {n}")
            return i + off
        positions = np.asarray(index)
        if positions.size == 0:
            return positions.astype(np.intp)
        if positions.dtype == bool:
            if positions.shape != (n,):
                raise IndexError(f"a boolean index of {positions.size} for axis {axis} of "
                                 f"size {n}")
            return np.flatnonzero(positions) + off
        positions = np.where(positions < 0, positions + n, positions)
        if positions.size and (positions.min() < 0 or positions.max() >= n):
            raise IndexError(f"index out of bounds for axis {axis} of size {n}")
        return positions + off

    def __getitem__(self, key):
        key = full_key(key, self.ndim)
        return self.base[(self._axis(key[0], 0), self._axis(key[1], 1), *key[2:])]

    def decode_grid(self) -> tuple[int, int, int, int] | None:
        """The base's blocks (:func:`decode_grid`), in the view's rows and columns."""
        grid = decode_grid(self.base)
        if grid is None:
            return None
        bh, bw, pr, pc = grid
        return bh, bw, (pr - self.offsets[0]) % bh, (pc - self.offsets[1]) % bw

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self[:, :, :])
        return out if dtype is None else out.astype(dtype, copy=False)


def array_over(reader, chunks, name: str, **options):
    """The lazy dask array of ``reader``, an array-like ``(y, x, band)`` read by slicing
    it (its ``shape`` and ``dtype`` the array's): dask slices fuse into its reads, and
    small windows of it (:func:`hsad.engine.sampling.even_sample`, :func:`computed_window`)
    are read by slicing it directly (:func:`hsad.cube.keep_source`). ``options``: more
    arguments of ``dask.array.from_array``."""
    import dask.array as da

    from hsad.cube import keep_source

    data = da.from_array(reader, chunks=chunks, name=name, asarray=False,
                         meta=np.empty((0, 0, 0), reader.dtype), **options)
    return keep_source(data, reader)


def computed_window(raw, rows: slice, cols: slice, bands) -> np.ndarray:
    """The values of the lazy ``raw`` on ``rows`` × ``cols`` and ``bands`` (positions; a run
    of them read as a slice), computed alone, so that dask fuses the slice into the file
    reader's own read."""
    bands = np.asarray(bands)
    if bands.size and np.array_equal(bands, np.arange(bands[0], bands[0] + bands.size)):
        bands = slice(int(bands[0]), int(bands[0]) + bands.size)
    from hsad.cube import source_of

    held = source_of(raw)  # a reader's own read, without a dask graph
    if held is not None:
        return np.asarray(held[rows, cols, bands])
    return np.asarray(raw[rows, cols, bands].compute(scheduler="sync"))


class ComputedView:
    """Array-like ``(y, x, band)`` view whose values are computed from the same window of a
    lazy dask array ``raw``. Each read computes that window of ``raw`` alone, where dask
    fuses the slice into the file reader's own read, so a small sample reads only its
    pixels; a dask operation on ``raw`` (``da.where``, ``map_blocks``) would read whole
    chunks for any slice of its result. Subclasses set ``raw``, ``shape`` and ``dtype``, and
    give :meth:`_window`."""

    ndim = 3

    def _window(self, rows: slice, cols: slice, bands: np.ndarray) -> np.ndarray:
        """The view's values on ``rows`` × ``cols`` (slices) and ``bands`` (positions)."""
        raise NotImplementedError

    def _raw(self, rows: slice, cols: slice, bands) -> np.ndarray:
        """``raw``'s values there (``bands`` positions; a run of them read as a slice)."""
        return computed_window(self.raw, rows, cols, bands)

    def _raws(self) -> list:
        """The lazy arrays the view's values are computed from."""
        return [self.raw]

    def decode_grid(self) -> tuple[int, int, int, int] | None:
        """The blocks of what the view is computed from, when that is one reader (or a view
        of one) read window by window: a window of the view reads the same window of it."""
        from hsad.cube import source_of

        raws = self._raws()
        if len(raws) != 1 or not hasattr(raws[0], "dask") \
                or tuple(raws[0].shape[:2]) != tuple(self.shape[:2]):
            return None
        held = source_of(raws[0])
        return None if held is None else decode_grid(held)

    def reads_windows(self) -> bool:
        """Whether a window of the view computes only its own pixels of what it views: each
        of those is numpy, a reader (or such a view) sliced directly, or a graph dask
        reads window by window; not arithmetic on a cube, whose windows compute whole
        chunks (:func:`hsad.io.graph_sources.reads_windows`)."""
        from hsad.cube import source_of
        from hsad.io.graph_sources import reads_windows

        for raw in self._raws():
            held = source_of(raw) if hasattr(raw, "dask") else raw
            if held is None and not reads_windows(raw):
                return False
            if isinstance(held, ComputedView) and not held.reads_windows():
                return False
        return True

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        spans, picks = [], []  # rows and columns: the span computed, then what is kept of it
        for k, n in zip(key[:2], self.shape[:2], strict=True):
            if isinstance(k, slice):
                spans.append(k)
                picks.append(None)
                continue
            at = np.arange(n)[k]
            lo = int(at.min()) if at.size else 0
            spans.append(slice(lo, int(at.max()) + 1 if at.size else 0))
            picks.append(at - lo)
        bands = np.arange(self.shape[2])[key[2]]
        out = self._window(spans[0], spans[1], np.atleast_1d(bands))
        axis = 0
        for pick in picks:  # one axis at a time, as numpy indexes one array each
            if pick is not None:
                out = np.take(out, pick, axis=axis)
            axis += pick is None or pick.ndim > 0
        return out[..., 0] if np.ndim(bands) == 0 else out


def window_transform(transform: Affine | None, crs, window) -> Affine | None:
    """The transform of ``window`` (an :class:`hsad.cube.subset.Window`) of a grid: GDAL's window
    transform for a georeferenced file, and none (the identity) for a file without one, as
    ``gdal_translate -srcwin`` writes no geotransform for such a file (None stays None)."""
    from hsad.cube import georeferenced

    if window is None or transform is None or not georeferenced(transform, crs):
        return transform
    return transform @ Affine.translation(window.col_off, window.row_off)


__all__ = ["ComputedView", "WindowView", "array_over", "check_window", "computed_window",
           "decode_grid", "full_key", "window_attrs", "window_transform"]
