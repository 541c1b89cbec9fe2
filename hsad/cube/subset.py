"""Spatial subsets of a scene, cut as ``gdal_translate`` cuts them.

A window is given in pixels (``srcwin``: column and row offsets, width and height, as
``gdal_translate -srcwin``) or in map coordinates (``projwin``: upper-left x and y,
lower-right x and y, as ``-projwin``; ``projwin_crs`` names their CRS, as
``-projwin_srs``). Map coordinates become pixels by GDAL's rule for nearest-neighbour
copies: offsets ``floor(v + 0.001)``, sizes ``floor(v + 0.5)``; only the two corners are
transformed from ``projwin_crs``, as GDAL does. A window reaching beyond the scene is cut to
it with a warning (GDAL pads it with nodata instead: hsad invents no pixels); one wholly
outside is an error.

The cut cube keeps its georeference (:func:`hsad.cube.transform_of` gives the window's) and
records the window in ``attrs["hsad_window"]`` (row and column offsets, the whole scene's
rows and columns) and its grid in ``attrs["hsad_window_grid"]``, so that rasters made for
the whole scene (a valid mask, a ground truth) are cut the same way by
:func:`hsad.cube.placement.on_scene_grid`, also after a slice taken of the cut in Python
(:func:`current_window`).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from affine import Affine, TransformNotInvertibleError

from hsad.cube import (
    WINDOW_ATTR,
    WINDOW_GRID_ATTR,
    georeferenced,
    transform_of,
)
from hsad.errors import GeoreferenceError, ParameterError
from hsad.io.glt import ATTR as GLT_ATTR
from hsad.io.glt import glt_of, only_placed
from hsad.io.window import FRAME_ATTR
from hsad.lazy_modules import moved_names


@dataclass(frozen=True)
class Window:
    """A pixel window: column and row offsets, width and height (GDAL's order)."""

    col_off: int
    row_off: int
    width: int
    height: int
    #: for an EMIT granule's ``--projwin``: the map-grid cells asked for (row and column
    #: bounds), whose pixels alone are read as data (:meth:`hsad.io.glt.Glt.windowed`)
    cells: tuple[int, int, int, int] | None = None

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) slices."""
        return (slice(self.row_off, self.row_off + self.height),
                slice(self.col_off, self.col_off + self.width))

    def srcwin(self) -> str:
        """The window as ``gdal_translate -srcwin`` takes it."""
        return f"{self.col_off} {self.row_off} {self.width} {self.height}"


def _whole(value, name: str) -> int:
    """``value`` as an int; ParameterError for fractions and non-numbers."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} takes whole pixel numbers, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ParameterError(f"{name} takes whole pixel numbers, got {value!r}")
    return int(number)


def clip_window(xoff: int, yoff: int, xsize: int, ysize: int, shape: tuple[int, int],
                name: str = "--srcwin", source=None, grid: str = "pixel scene") -> Window:
    """The window ``xoff yoff xsize ysize`` cut to a ``shape`` (rows, columns) scene, with a
    warning when it reaches beyond; ParameterError when it is empty or wholly outside."""
    rows, cols = shape
    asked = f"{name} " + " ".join(str(v) if abs(v) < 10**15 else f"{float(v):.6g}"
                                  for v in (xoff, yoff, xsize, ysize))
    if xsize <= 0 or ysize <= 0:
        raise ParameterError(f"{asked}: the width and height must be positive", source)
    c0, r0 = max(xoff, 0), max(yoff, 0)
    c1, r1 = min(xoff + xsize, cols), min(yoff + ysize, rows)
    if c1 <= c0 or r1 <= r0:
        raise ParameterError(f"{asked} lies outside the {cols} x {rows} {grid}"
                             f"{' (columns, rows)' if grid == 'pixel scene' else ''}", source)
    window = Window(c0, r0, c1 - c0, r1 - r0)
    if (c0, r0, c1 - c0, r1 - r0) != (xoff, yoff, xsize, ysize):
        warnings.warn(f"{os.fspath(source) + ': ' if source else ''}{asked} reaches beyond "
                      f"the {cols} x {rows} {grid}: cut to "
                      f"{'-srcwin ' if grid == 'pixel scene' else ''}{window.srcwin()}",
                      UserWarning, stacklevel=3)
    return window


def srcwin_window(srcwin, shape: tuple[int, int], source=None) -> Window:
    """The pixel window ``srcwin`` (xoff, yoff, xsize, ysize) on a ``shape`` scene."""
    if len(srcwin) != 4:
        raise ParameterError(f"--srcwin takes four numbers (xoff yoff xsize ysize), got "
                             f"{len(srcwin)}", source)
    xoff, yoff, xsize, ysize = (_whole(v, "--srcwin") for v in srcwin)
    return clip_window(xoff, yoff, xsize, ysize, shape, "--srcwin", source)


def projwin_srs(projwin_crs):
    """``--projwin-srs`` as a rasterio CRS (any form GDAL takes); ParameterError in one line
    (GDAL's own error line kept off stderr: parsed inside a rasterio environment)."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        with rasterio.Env():
            return CRS.from_user_input(projwin_crs)
    except CRSError as err:
        raise ParameterError(f"--projwin-srs {projwin_crs!r} is not a CRS: {err}") from None


def _to_scene_crs(points, projwin_crs, scene_crs, source) -> list[tuple[float, float]]:
    """The (x, y) ``points`` from ``projwin_crs`` to the scene's CRS (GIS axis order)."""
    from rasterio.warp import transform

    src = projwin_srs(projwin_crs)
    if scene_crs is None:
        raise ParameterError(f"--projwin-srs {projwin_crs}: the scene has no CRS to "
                             "transform the window into; give --projwin in its own "
                             "coordinates or a pixel window (--srcwin)", source)
    if src == scene_crs:
        return list(points)
    try:
        xs, ys = transform(src, scene_crs, [p[0] for p in points], [p[1] for p in points])
    except Exception as err:  # PROJ refuses the points (a latitude beyond 90°…): GDAL's
        # CPLE_* errors are not RasterioErrors
        raise ParameterError(f"--projwin: its corners do not transform from {projwin_crs} "
                             f"into the scene's CRS ({err})", source) from None
    if not np.all(np.isfinite(list(xs) + list(ys))):
        raise ParameterError(f"--projwin: its corners do not transform from {projwin_crs} "
                             "into the scene's CRS", source)
    return list(zip(xs, ys, strict=True))


def projwin_window(cube: xr.DataArray, projwin, projwin_crs=None) -> Window:
    """The window of ``cube`` whose corners are ``projwin`` (ulx, uly, lrx, lry) in map
    coordinates, in ``projwin_crs`` (default: the scene's), by GDAL's rounding."""
    source = cube.attrs.get("source_path")
    if len(projwin) != 4:
        raise ParameterError(f"--projwin takes four numbers (ulx uly lrx lry), got "
                             f"{len(projwin)}", source)
    try:
        ulx, uly, lrx, lry = (float(v) for v in projwin)
    except (TypeError, ValueError):
        raise ParameterError(f"--projwin takes numbers, got {' '.join(map(str, projwin))}",
                             source) from None
    if not all(math.isfinite(v) for v in (ulx, uly, lrx, lry)):
        raise ParameterError("--projwin takes finite numbers", source)
    glt = glt_of(cube)
    if glt is not None:  # an EMIT granule: the window on its lookup table's map grid
        return _lookup_window(cube, glt, (ulx, uly, lrx, lry), projwin_crs, source)
    t = transform_of(cube)
    if not georeferenced(t, cube.rio.crs):
        raise ParameterError("--projwin needs a georeferenced scene; this one has no map "
                             "coordinates: give a pixel window (--srcwin)", source)
    corners = _in_crs((ulx, uly, lrx, lry), projwin_crs, cube.rio.crs, source)
    xoff, yoff, xsize, ysize = _pixel_window(corners, t, source)
    return clip_window(xoff, yoff, xsize, ysize, cube.shape[:2], "computed -srcwin", source)


def _in_crs(corners, projwin_crs, crs, source) -> tuple[float, float, float, float]:
    """``(ulx, uly, lrx, lry)`` from ``projwin_crs`` (None: already) into ``crs``."""
    if projwin_crs is None:
        return corners
    ulx, uly, lrx, lry = corners
    (ulx, uly), (lrx, lry) = _to_scene_crs([(ulx, uly), (lrx, lry)], projwin_crs, crs, source)
    return ulx, uly, lrx, lry


def _pixel_window(corners, t: Affine, source) -> tuple[int, int, int, int]:
    """GDAL's ``-projwin`` rounding of ``corners`` on the north-up grid ``t``: ``(xoff,
    yoff, xsize, ysize)``, not yet clipped."""
    ulx, uly, lrx, lry = corners
    if t.b != 0 or t.d != 0:
        raise ParameterError("--projwin on a rotated or sheared grid is not supported (as in "
                             "gdal_translate): give a pixel window (--srcwin)", source)
    pixels = ((ulx - t.c) / t.a + 0.001, (uly - t.f) / t.e + 0.001,
              (lrx - ulx) / t.a + 0.5, (lry - uly) / t.e + 0.5)
    if not all(math.isfinite(v) for v in pixels):
        raise ParameterError(f"--projwin {ulx:.12g} {uly:.12g} {lrx:.12g} {lry:.12g} is beyond "
                             "any pixel of the scene's grid", source)
    xoff, yoff, xsize, ysize = (math.floor(v) for v in pixels)
    if xsize <= 0 or ysize <= 0:
        raise ParameterError(
            f"--projwin {ulx:.12g} {uly:.12g} {lrx:.12g} {lry:.12g}: the window has no width "
            "or height on the scene's grid (give the upper-left corner, then the "
            "lower-right one)", source)
    return xoff, yoff, xsize, ysize


def _lookup_window(cube: xr.DataArray, glt, corners, projwin_crs, source) -> Window:
    """The instrument pixels of an EMIT granule that the cells of ``corners`` on its
    lookup table's grid take (:mod:`hsad.io.glt`), as their bounding window, with those
    cells (``Window.cells``: the reader leaves the window's other pixels out)."""
    from rasterio.crs import CRS

    corners = _in_crs(corners, projwin_crs, CRS.from_user_input(glt.crs), source)
    grid = clip_window(*_pixel_window(corners, Affine(*glt.transform), source), glt.shape,
                       "--projwin, as cells of the map grid (xoff yoff xsize ysize):", source,
                       grid="(columns x rows) map grid of the granule")
    rows, cols = grid.slices()
    taken = glt.source_window(rows, cols)
    if taken is None:
        raise ParameterError("--projwin holds no pixel of the granule (only empty cells of "
                             "its map grid)", source)
    r0, r1, c0, c1 = taken
    window = clip_window(c0, r0, c1 - c0, r1 - r0, cube.shape[:2], "computed -srcwin", source)
    return replace(window, cells=(rows.start, rows.stop, cols.start, cols.stop))


def check_choice(srcwin=None, projwin=None, projwin_crs=None) -> None:
    """ParameterError unless at most one window is given, and a CRS only with ``projwin``."""
    if srcwin is not None and projwin is not None:
        raise ParameterError("--srcwin and --projwin exclude each other: give one window")
    if projwin_crs is not None and projwin is None:
        raise ParameterError("--projwin-srs applies to --projwin only")


def window_for(cube: xr.DataArray, srcwin=None, projwin=None, projwin_crs=None,
               ) -> Window | None:
    """The window of ``cube`` that ``srcwin`` or ``projwin`` (in ``projwin_crs``) name,
    checked (warning when cut to the scene); None when neither is given."""
    check_choice(srcwin, projwin, projwin_crs)
    if srcwin is None and projwin is None:
        return None
    if srcwin is not None:
        return srcwin_window(srcwin, tuple(cube.shape[:2]), cube.attrs.get("source_path"))
    return projwin_window(cube, projwin, projwin_crs)


def _four_numbers(value) -> tuple[int, int, int, int] | None:
    """``value`` as four whole numbers; None for anything else (text, as rioxarray reads
    hsad's tags into ``attrs``)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 4:
        return None
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v == int(v) for v in numbers):
        return None
    return tuple(int(v) for v in numbers)


def recorded_window(attrs) -> tuple[int, int, int, int] | None:
    """``attrs["hsad_window"]`` as hsad records it (row and column offsets, the scene's rows
    and columns); None when absent, or held in another form (the ``hsad_window`` tag's text,
    as ``rioxarray.open_rasterio`` reads it from a map)."""
    return _four_numbers(attrs.get(WINDOW_ATTR))


def recorded_frame(attrs) -> tuple[int, int, int, int] | None:
    """``attrs["hsad_frame"]`` (:data:`hsad.io.window.FRAME_ATTR`) as hsad records it; None
    when absent or held as text."""
    return _four_numbers(attrs.get(FRAME_ATTR))


#: how far, in pixels, a cube's grid may lie from a whole-pixel shift of the grid its
#: window was cut on and still be a slice of it (float32 coordinates of a UTM grid lie
#: within a few hundredths; as :func:`hsad.cube.transform_of` reads steps)
SLICE_TOLERANCE = 0.1


def _shift_on(now: Affine, then: Affine, shape: tuple[int, int]) -> tuple[int, int] | None:
    """``(rows, cols)`` by which the grid ``now`` of a ``shape`` raster is a whole-pixel
    shift of the grid ``then``; None for anything else (a flip, a stride, a coarsening, a
    reprojection, coordinates relabelled, a shift by part of a pixel)."""
    rows, cols = shape
    corners = np.array([(0, 0), (cols, 0), (0, rows), (cols, rows)], dtype=np.float64)
    try:
        back = np.array([~then @ (now @ tuple(c)) for c in corners])
    except TransformNotInvertibleError:
        return None
    shift = back - corners
    if not np.all(np.isfinite(shift)):
        return None
    dc, dr = (round(float(v)) for v in shift[0])
    if np.abs(shift - (dc, dr)).max() > SLICE_TOLERANCE:
        return None
    return dr, dc


def current_window(cube: xr.DataArray) -> tuple[int, int, int, int] | None:
    """``cube``'s window of the scene it was cut from (:func:`recorded_window`), moved by
    any slice taken of the cut since: its x and y coordinates against its grid when cut
    (``attrs["hsad_window_grid"]``). A window recorded without that grid (a map's tags) is
    taken as it is. None when uncut, and when the cube is no longer known to be a window of
    that scene's pixels: its coordinates dropped, relabelled, flipped, strided, coarsened,
    reprojected, shifted by part of a pixel or beyond the scene."""
    window = recorded_window(cube.attrs)
    if window is None:
        return None
    r0, c0, rows, cols = window
    then = cube.attrs.get(WINDOW_GRID_ATTR)
    if then is None:
        return window
    if "x" not in cube.coords or "y" not in cube.coords:
        return None
    shape = (cube.sizes["y"], cube.sizes["x"])
    try:
        moved = _shift_on(transform_of(cube), Affine(*then[:6]), shape)
    except (GeoreferenceError, ParameterError, TypeError, ValueError):
        return None
    if moved is None:
        return None
    r0, c0 = r0 + moved[0], c0 + moved[1]
    if r0 < 0 or c0 < 0 or r0 + shape[0] > rows or c0 + shape[1] > cols:
        return None
    return r0, c0, rows, cols


def mark_window(cut: xr.DataArray, window: Window, whole_shape,
                source: xr.DataArray | None = None) -> xr.DataArray:
    """``cut`` (the ``window`` of a scene of ``whole_shape`` rows and columns, or of a cut of
    one: ``source``, the cube it was cut from, when given, else ``cut``'s own attributes)
    with the window recorded in ``attrs["hsad_window"]``, offsets from the whole scene, and
    its grid in ``attrs["hsad_window_grid"]``. A cut of a window that is no longer one
    (flipped, strided: :func:`current_window`) records none: its scene is unknown."""
    if source is None:
        prior = recorded_window(cut.attrs)
    else:
        prior = current_window(source)
        if prior is None and recorded_window(source.attrs) is not None:
            cut.attrs = {k: v for k, v in cut.attrs.items()
                         if k not in (WINDOW_ATTR, WINDOW_GRID_ATTR, FRAME_ATTR)}
            return cut
    if FRAME_ATTR in cut.attrs and recorded_frame(cut.attrs) is None:  # text: not hsad's
        cut.attrs = {k: v for k, v in cut.attrs.items() if k != FRAME_ATTR}
    r0, c0, rows, cols = prior or (0, 0, *tuple(whole_shape)[:2])
    cut.attrs[WINDOW_ATTR] = (r0 + window.row_off, c0 + window.col_off, rows, cols)
    cut.attrs[WINDOW_GRID_ATTR] = tuple(transform_of(cut))[:6]
    return cut


def spatial_subset(cube: xr.DataArray, srcwin=None, projwin=None, projwin_crs=None,
                   ) -> xr.DataArray:
    """``cube`` cut to a pixel window (``srcwin``) or a map window (``projwin``, in
    ``projwin_crs``), lazily, with GDAL's window transform (a scene without georeference
    keeps none); unchanged when neither is given. For a file, ``hsad.open_cube(path,
    srcwin=…)`` reads the window more cheaply (:mod:`hsad.io.window`)."""
    window = window_for(cube, srcwin, projwin, projwin_crs)
    if window is None:
        return cube
    rows, cols = window.slices()
    out = cube.isel(y=rows, x=cols)
    if not georeferenced(transform_of(cube), cube.rio.crs):  # as gdal_translate: none
        out = out.assign_coords(x=np.arange(window.width) + 0.5,
                                y=np.arange(window.height) + 0.5)
        out = out.rio.write_transform(Affine.identity())
        glt = glt_of(cube)  # an EMIT granule: the table of the window's own pixels
        if glt is not None:
            out.attrs = {k: v for k, v in out.attrs.items() if k != GLT_ATTR}
            part = glt.windowed(window, cube.attrs.get("source_path"))
            if part is not None:
                if window.cells is not None:  # a --projwin: the pixels its cells hold
                    out = only_placed(out, part)
                out.attrs[GLT_ATTR] = part
    return mark_window(out, window, cube.shape[:2], source=cube)


#: names moved to :mod:`hsad.cube.placement` in 0.3.1, still served here (no warning)
MOVED = {n: "hsad.cube.placement" for n in (
    "cut_for_scene", "offsets_in", "on_scene_grid", "whole_grid")}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.cube.placement import cut_for_scene as cut_for_scene
    from hsad.cube.placement import offsets_in as offsets_in
    from hsad.cube.placement import on_scene_grid as on_scene_grid
    from hsad.cube.placement import whole_grid as whole_grid

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "WINDOW_ATTR", "WINDOW_GRID_ATTR", "Window", "check_choice", "clip_window",
           "current_window", "mark_window", "projwin_srs", "projwin_window", "recorded_frame",
           "recorded_window", "spatial_subset", "srcwin_window", "window_for"]
