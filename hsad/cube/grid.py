"""A cube's or map's place on the map: its transform (also of a slice), CRS, and whether
two rasters lie on one grid.

:func:`transform_of` reads a slice's, a reversed or strided slice's and a rotated grid's
transform from the x and y coordinates; :func:`same_grid` and :func:`same_place` compare
grids in pixels; :func:`vector_frame` is where vector data are placed on a raster (QGIS's
frame for one without georeference). :mod:`hsad.cube` re-exports every name.
"""

from __future__ import annotations

import math

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine, TransformNotInvertibleError
from rasterio.crs import CRS
from rasterio.errors import CRSError

from hsad.errors import GeoreferenceError, ParameterError

#: the attribute marking x/y coordinates that are pixel indices + 0.5 (a rotated grid's)
PIXEL_INDEX = {"hsad_coordinate": "pixel index + 0.5 on a rotated grid"}


def refuse_singular(transform: Affine, path=None, what: str = "the transform") -> None:
    """:class:`GeoreferenceError` naming ``path`` for a singular (non-invertible) transform:
    a pixel size of 0 places no pixel on the map (GDAL's inverse fails on it)."""
    if transform.determinant == 0:
        values = tuple(float(v) + 0.0 for v in tuple(transform)[:6])  # no -0.0
        raise GeoreferenceError(f"{what} {values} is singular (a pixel size of 0): it "
                                "places no pixel on the map", path)


def check_transform(transform: Affine, path=None) -> None:
    """:class:`GeoreferenceError` naming ``path`` unless ``transform`` is finite and
    invertible."""
    values = tuple(float(v) for v in tuple(transform)[:6])
    if not all(map(math.isfinite, values)):
        raise GeoreferenceError(f"the transform {values} is not finite", path)
    refuse_singular(transform, path)


def crs_of(crs) -> CRS:
    """``crs`` (a rasterio CRS, ``"EPSG:32633"``, WKT, PROJ, an EPSG code) as a CRS; a
    ParameterError naming it when PROJ does not know it."""
    if isinstance(crs, CRS):
        return crs
    try:
        return CRS.from_user_input(crs)
    except (CRSError, TypeError, ValueError) as exc:
        raise ParameterError(f"crs {crs!r} is not a coordinate reference system PROJ knows "
                             f"({' '.join(str(exc).split())})") from None


def rows_first(a):
    """``a`` with its ``y`` dimension before ``x`` where it is a DataArray holding both the
    other way round (a map read by name, as plain arrays beside it are read: rows first);
    anything else as it is."""
    dims = tuple(getattr(a, "dims", ()) or ())
    if {"y", "x"} <= set(dims) and dims.index("x") < dims.index("y"):
        return a.transpose(..., "y", "x")
    return a


def with_crs(obj: xr.DataArray, crs) -> xr.DataArray:
    """``obj`` with ``crs`` written as rioxarray writes it (a CF grid mapping beside the WKT),
    without pyproj's warning that a parameter is "lost in conversion to CF" (a Swiss
    oblique Mercator's skew angle): the WKT, which GDAL and hsad read, keeps every one."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lost in conversion to CF")
        return obj.rio.write_crs(crs_of(crs))


def transform_of(obj: xr.DataArray) -> Affine:
    """The affine transform of a cube or map, also of a strided or reversed slice, of a
    coarsened cube and of a slice of a rotated or sheared grid: each pixel centred on its
    coordinate, as rioxarray and CF read coordinates (a slice's window transform; a step of
    k pixels makes pixels k times as large, centred on the pixels kept, so that
    ``cube.coarsen(x=2, y=2).mean()`` lies on its 2 × 2 blocks).

    rioxarray's ``rio.transform()`` computes a north-up grid's origin from the x and y
    coordinates but keeps the stored pixel size, and returns a rotated grid's stored
    GeoTransform, the full grid's, also for a slice (rows 7:22 and columns 9:35 of a rotated
    30 m grid lie 305 m from it). hsad marks a rotated grid's coordinates as pixel indices
    + 0.5 (:data:`PIXEL_INDEX`), so a slice's own transform follows from its first
    coordinates and their step. Unevenly spaced rows or columns (``isel`` with a list) have
    no affine transform: ParameterError. Coordinates alone cannot tell a block's size where
    an axis has one row or column (a one-row slice of a coarsened cube): it gets the stored
    pixel size; write the coarse transform (``rio.write_transform``) for such a cube.
    A singular transform (constant coordinates, a pixel size of 0) is a
    :class:`GeoreferenceError` naming the cube's ``source_path``.
    """
    t = obj.rio.transform()
    refuse_singular(t, obj.attrs.get("source_path"))
    if "x" not in obj.coords or "y" not in obj.coords:
        return t
    x, y = (np.asarray(obj[d].values, dtype=np.float64) for d in ("x", "y"))
    if not (x.size and y.size):
        return t
    if t.b == 0 and t.d == 0:  # coordinates in map units; rioxarray's origin for step 1
        sx, sy = _steps_in_pixels(x, t.a, "columns"), _steps_in_pixels(y, t.e, "rows")
        if sx == 1 and sy == 1:
            return t
        return Affine(t.a * sx, 0.0, x[0] - sx * t.a / 2,
                      0.0, t.e * sy, y[0] - sy * t.e / 2)
    if not all(obj[d].attrs.get(key) == value for d in ("x", "y")
               for key, value in PIXEL_INDEX.items()):
        return t  # coordinates of another meaning: the stored transform is all there is
    sx, sy = _steps_in_pixels(x, 1.0, "columns"), _steps_in_pixels(y, 1.0, "rows")
    corner = [v[0] - step / 2 for v, step in ((x, sx), (y, sy))]
    return t @ Affine.translation(*corner) @ Affine.scale(sx, sy)


def _steps_in_pixels(coord: np.ndarray, size: float, what: str) -> float:
    """The step of ``coord`` in pixels of ``size`` (1.0 for a single value), a whole number
    where it lies within 0.01 of one; ParameterError unless every step is the same within a
    tenth of a pixel (picked rows differ by whole pixels; coordinates stored in float32, as
    a NetCDF may hold them, stay well within it)."""
    if not np.isfinite(coord).all():
        from hsad.errors import ParameterError

        raise ParameterError(f"the map's {what} have coordinates that are not finite (a "
                             "padded cube?): no affine transform places them")
    if coord.size < 2:
        return 1.0
    ratios = np.diff(coord) / size
    mean = (coord[-1] - coord[0]) / (coord.size - 1) / size
    if mean == 0 or np.abs(ratios - mean).max() > 0.1:
        from hsad.errors import ParameterError

        raise ParameterError(f"the map's {what} are not evenly spaced on its grid (a "
                             "selection of single rows or columns, or a coarsen with "
                             "boundary='pad' and a partial last block): no affine transform "
                             "places them; take a slice (a:b or a:b:k), or coarsen with "
                             "boundary='trim'")
    return float(round(mean)) if abs(mean - round(mean)) < 0.01 else float(mean)


def georef(obj: xr.DataArray) -> tuple[CRS | None, Affine]:
    """Return ``(crs, transform)`` of a cube or map."""
    return obj.rio.crs, transform_of(obj)


#: the largest offset, in the score map's pixels, at which two grids are the same
GRID_TOLERANCE = 1e-3


def same_grid(a, b, shape: tuple[int, int]) -> bool:
    """Whether transforms ``a`` and ``b`` put a ``shape`` raster's corners on the same
    places, within :data:`GRID_TOLERANCE` of ``a``'s pixels (not in map units, which would
    let a shift of several 0.1 m pixels through and refuse 1e-4 m on 30 m ones)."""
    rows, cols = shape
    corners = np.array([(0, 0), (cols, 0), (0, rows), (cols, rows)], dtype=np.float64)
    try:
        back = np.array([~a @ (b @ tuple(c)) for c in corners])
    except TransformNotInvertibleError:  # a degenerate grid: compare the numbers
        return a.almost_equals(b)
    return bool(np.abs(back - corners).max() <= GRID_TOLERANCE)


#: the frame in which QGIS draws a raster without georeference (GDAL's default transform):
#: pixel size (1, −1), so y = −row
QGIS_PIXEL_FRAME = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def georeferenced(transform: Affine, crs) -> bool:
    """Whether a raster has a georeference: a CRS, or a transform other than GDAL's default
    (the identity)."""
    return crs is not None or not transform.almost_equals(Affine.identity())


def same_place(a: Affine, a_crs, b: Affine, b_crs, shape: tuple[int, int]) -> bool:
    """Whether two rasters of ``shape`` lie on one grid as far as their georeference tells:
    True when either has none (:func:`georeferenced`: their sizes are all there is to
    compare); else their CRS where both carry one, and their transforms (:func:`same_grid`;
    a transform without a CRS still places the pixels)."""
    if not (georeferenced(a, a_crs) and georeferenced(b, b_crs)):
        return True
    if a_crs is not None and b_crs is not None and a_crs != b_crs:
        return False
    return same_grid(a, b, shape)


def vector_frame(transform: Affine, crs) -> Affine:
    """The transform that places vector data on a raster: its own, or for a raster
    without georeference (:func:`georeferenced`) :data:`QGIS_PIXEL_FRAME`, so that
    polygons written or drawn in QGIS over it line up with its pixels."""
    return transform if georeferenced(transform, crs) else QGIS_PIXEL_FRAME
