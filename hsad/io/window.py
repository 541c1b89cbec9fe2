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
        if positions.dtype == bool:
            return np.flatnonzero(positions) + off
        return np.where(positions < 0, positions + n, positions) + off

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        return self.base[(self._axis(key[0], 0), self._axis(key[1], 1), *key[2:])]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self[:, :, :])
        return out if dtype is None else out.astype(dtype, copy=False)


def window_transform(transform: Affine | None, crs, window) -> Affine | None:
    """The transform of ``window`` (an :class:`hsad.subset.Window`) of a grid: GDAL's window
    transform for a georeferenced file, and none (the identity) for a file without one, as
    ``gdal_translate -srcwin`` writes no geotransform for such a file (None stays None)."""
    from hsad.cube import georeferenced

    if window is None or transform is None or not georeferenced(transform, crs):
        return transform
    return transform @ Affine.translation(window.col_off, window.row_off)


__all__ = ["WindowView", "window_transform"]
