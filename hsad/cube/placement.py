"""Rasters read for a scene (a ground truth, a valid or background mask, a quality layer)
placed on the scene's grid: as they are when of its size; cut to the scene when made for
the whole scene it was cut from (:mod:`hsad.cube.subset`), for a converted window's frame,
or when they cover a larger area of its grid; refused on another grid. A lazy raster is
cut before any of its pixels is read (:func:`cut_for_scene`)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from affine import Affine, TransformNotInvertibleError

from hsad.cube import georeferenced, same_grid, same_place, transform_of
from hsad.cube.subset import current_window, recorded_frame, recorded_window
from hsad.errors import ParameterError
from hsad.io.glt import glt_of


def whole_grid(cube: xr.DataArray) -> Affine:
    """The transform of the whole scene a cut ``cube`` came from (its own when uncut, or
    when no longer a window of it: :func:`hsad.cube.subset.current_window`)."""
    r0, c0 = (current_window(cube) or (0, 0))[:2]
    return transform_of(cube) @ Affine.translation(-c0, -r0)


def offsets_in(small: xr.DataArray, large: xr.DataArray) -> tuple[int, int] | None:
    """Row and column offsets of ``small``'s pixels on ``large``'s grid, when both are
    georeferenced (:func:`hsad.cube.georeferenced`), their CRS agree where both carry one,
    and ``small`` is a whole-pixel window inside ``large`` (:func:`hsad.cube.same_grid`);
    None otherwise."""
    t_small, t_large = transform_of(small), transform_of(large)
    crs = (small.rio.crs, large.rio.crs)
    if not (georeferenced(t_small, crs[0]) and georeferenced(t_large, crs[1])) or (
            None not in crs and crs[0] != crs[1]):
        return None
    rows, cols = small.sizes["y"], small.sizes["x"]
    try:
        col, row = ~t_large @ (t_small.c, t_small.f)
    except TransformNotInvertibleError:  # a degenerate grid places nothing
        return None
    c0, r0 = round(col), round(row)
    if not same_grid(t_small, t_large @ Affine.translation(c0, r0), (rows, cols)):
        return None
    if r0 < 0 or c0 < 0 or r0 + rows > large.sizes["y"] or c0 + cols > large.sizes["x"]:
        return None
    return r0, c0


def on_lookup_grid(raster: xr.DataArray | None, cube: xr.DataArray):
    """``(r0, c0, glt)`` when ``cube`` is placed by a lookup table (an EMIT granule,
    :mod:`hsad.io.glt`) and the georeferenced one-band ``raster`` lies on the table's map
    grid, the grid hsad writes its maps on (one CRS, whole-pixel offsets: the grid's first
    row and column in the raster's, which may lie outside it), covering some of it; None
    otherwise."""
    glt = glt_of(cube)
    if glt is None or raster is None or raster.rio.crs is None:
        return None
    from rasterio.crs import CRS

    t = transform_of(raster)
    if not georeferenced(t, raster.rio.crs) or CRS.from_user_input(glt.crs) != raster.rio.crs:
        return None
    grid = Affine(*glt.transform)
    try:
        col, row = ~t @ (grid.c, grid.f)
    except TransformNotInvertibleError:
        return None
    c0, r0 = round(col), round(row)
    rows, cols = glt.shape
    if not same_grid(grid, t @ Affine.translation(c0, r0), (rows, cols)) or \
            r0 >= raster.sizes["y"] or c0 >= raster.sizes["x"] or r0 + rows <= 0 or \
            c0 + cols <= 0:
        return None
    return r0, c0, glt


def _grid_cells(values: np.ndarray, r0: int, c0: int, shape: tuple[int, int]) -> np.ndarray:
    """The cells of a ``shape`` grid whose first row and column are ``(r0, c0)`` in
    ``values`` (float64, NaN where ``values`` does not reach)."""
    cells = np.full(shape, np.nan)
    rows, cols = shape
    a0, b0 = max(r0, 0), max(c0, 0)
    a1, b1 = min(r0 + rows, values.shape[0]), min(c0 + cols, values.shape[1])
    cells[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = values[a0:a1, b0:b1]
    return cells


def _placement(got: tuple[int, int], raster: xr.DataArray | None, cube: xr.DataArray,
               what: str, path=None) -> tuple[int, int, Affine, bool] | None:
    """Where a one-band ``raster``'s values of ``got`` rows and columns lie on ``cube``:
    None when on its grid, else ``(r0, c0, grid, larger)``: the scene's first row and column
    in them, the grid they are on, and whether they are a larger area of the scene's grid
    (``larger``) rather than the whole grid of the scene it was cut from or a converted
    window's frame. ParameterError when they lie on none of those."""
    shape = (cube.sizes["y"], cube.sizes["x"])
    if tuple(got) == shape:
        return None
    window = current_window(cube)
    lookup = "" if glt_of(cube) is None else (
        "; a raster drawn over the granule's maps must lie on their grid (its CRS and "
        "transform)")
    frame = recorded_frame(cube.attrs)  # a converted window's own file: its grid too
    if window is not None and tuple(got) == tuple(window[2:]):
        return window[0], window[1], transform_of(cube) @ Affine.translation(
            -window[1], -window[0]), False  # the whole scene's grid (whole_grid's)
    if window is not None and frame is not None and tuple(got) == tuple(frame[2:]):
        r0, c0 = window[0] - frame[0], window[1] - frame[1]
        return r0, c0, transform_of(cube) @ Affine.translation(-c0, -r0), False
    if raster is not None and (offsets := offsets_in(cube, raster)) is not None:
        return offsets[0], offsets[1], transform_of(raster), True
    whole = f" (cut from a {window[2]}x{window[3]} scene)" if window is not None else ""
    if window is None and recorded_window(cube.attrs) is not None:
        whole = (" (a window of a scene whose x and y coordinates no longer lie on the grid "
                 "it was cut on: flipped, strided, regridded, relabelled or dropped; cut it "
                 "from the scene again)")
    raise ParameterError(f"{what} is {got[0]}x{got[1]} but the scene is "
                         f"{shape[0]}x{shape[1]}{whole}: not the scene's grid{lookup}", path)


def cut_for_scene(raster: xr.DataArray, cube: xr.DataArray, what: str,
                  path=None) -> xr.DataArray:
    """A lazy one-band ``raster`` as :func:`on_scene_grid` takes it, decided before any of
    its pixels is read: as it is when of the scene's size, of the whole scene's it was cut
    from or of a converted window's frame; cut to the scene where it covers a larger area
    of the scene's grid; otherwise the ParameterError :func:`on_scene_grid` gives (a
    30000 × 30000 mask for a 100 × 100 scene was read whole, 8.8 GB, to be refused). On
    a granule's lookup-table grid (:func:`on_lookup_grid`) it is cut to that grid."""
    if (lookup := on_lookup_grid(raster, cube)) is not None:
        r0, c0, glt = lookup
        return raster.isel(y=slice(max(r0, 0), r0 + glt.shape[0]),
                           x=slice(max(c0, 0), c0 + glt.shape[1]))
    placed = _placement((raster.sizes["y"], raster.sizes["x"]), raster, cube, what, path)
    if placed is None or not placed[3]:
        return raster
    r0, c0 = placed[:2]
    return raster.isel(y=slice(r0, r0 + cube.sizes["y"]), x=slice(c0, c0 + cube.sizes["x"]))


def on_scene_grid(values: np.ndarray, raster: xr.DataArray | None, cube: xr.DataArray,
                  what: str, path=None) -> np.ndarray:
    """``values`` (y, x) of a one-band ``raster`` read for ``cube``: as they are when on the
    cube's grid; cut to the cube's window when on the whole grid of the scene it was cut
    from (:func:`hsad.cube.subset.spatial_subset`), or when ``raster`` covers a larger
    area of the cube's grid (one CRS, whole-pixel offsets). ParameterError for another
    size, CRS or transform (:func:`hsad.cube.same_place`: a transform without a CRS is
    compared too; ``raster`` None, or either without georeference: checked by size
    alone). A raster on the map grid of a granule placed by a lookup table (an EMIT
    granule's, which hsad writes its maps on: :func:`on_lookup_grid`) is taken back to the
    granule's pixels (:func:`hsad.io.glt.pulled_back`: a pixel no cell of the raster places
    is NaN; a truth's pixel takes its cells' largest value, a mask's their smallest)."""
    if (lookup := on_lookup_grid(raster, cube)) is not None:
        from hsad.io.glt import pulled_back

        r0, c0, glt = lookup
        cells = _grid_cells(np.asarray(values, dtype=np.float64), r0, c0, glt.shape)
        return pulled_back(cells, glt, (cube.sizes["y"], cube.sizes["x"]),
                           largest=not what.endswith("mask"))
    grid = transform_of(cube)
    georeferenced_pair = raster is not None and georeferenced(
        transform_of(raster), raster.rio.crs) and georeferenced(grid, cube.rio.crs)
    placed = _placement(values.shape, raster if georeferenced_pair else None, cube, what,
                        path)
    if placed is not None:
        r0, c0, grid, _ = placed
        values = values[r0:r0 + cube.sizes["y"], c0:c0 + cube.sizes["x"]]
    if georeferenced_pair:
        if not same_place(grid, cube.rio.crs, transform_of(raster), raster.rio.crs,
                          tuple(raster.shape[:2])):
            hint = "; give polygons to reproject instead" if what == "background mask" else ""
            raise ParameterError(f"{what} is not on the scene's grid (another CRS or "
                                 f"transform){hint}", path)
    return values


__all__ = ["cut_for_scene", "offsets_in", "on_lookup_grid", "on_scene_grid", "whole_grid"]
