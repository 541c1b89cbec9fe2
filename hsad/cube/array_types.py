"""The array types hsad's public functions take, for annotations (type checkers, IDEs).

A *cube* is anything :func:`hsad.cube.as_cube` turns into a ``(y, x, band)`` DataArray: a
DataArray (``(y, x, band)`` or rioxarray's ``(band, y, x)``), a ``(rows, cols, bands)``
numpy or dask array. A *map* is a ``(y, x)`` DataArray or numpy array. Importing this module
costs nothing at run time: the types are named for type checkers only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import dask.array
    import numpy as np
    import xarray as xr

#: what detectors' ``fit``, ``score`` and ``fit_score`` take
CubeLike = Union["xr.DataArray", "np.ndarray", "dask.array.Array"]
#: a ``(y, x)`` score map or mask as ``threshold`` and ``evaluate`` take it
MapLike = Union["xr.DataArray", "np.ndarray"]

__all__ = ["CubeLike", "MapLike"]
