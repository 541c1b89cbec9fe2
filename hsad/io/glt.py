"""Geometry lookup tables (GLT): how an EMIT granule's pixels are placed on a map.

An EMIT granule is stored as the instrument saw it, downtrack by crosstrack, and carries a
lookup table on a north-up grid (``location/glt_x``, ``glt_y``; the grid's ``geotransform``
and ``spatial_ref``): each grid cell holds the 1-based crosstrack and downtrack index of the
pixel that falls there, 0 where none does (a negative index, which some GLT producers write
for a cell filled from a neighbour, is taken by its absolute value). Orthorectifying is a
lookup, as NASA's ``emit_tools.apply_glt`` does it: nothing is resampled.

hsad analyses the granule in its own geometry (every pixel once, none duplicated or
interpolated) and places each map on the grid through the table when writing it
(:func:`orthorectify_map`). A :class:`Glt` is kept in a cube's attrs (:data:`ATTR`) and
follows a window or slice of the cube (:meth:`Glt.on_grid`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr
from affine import Affine

#: the cube attr (and map attr) holding a :class:`Glt`
ATTR = "glt"


@dataclass(frozen=True, eq=False)
class Glt:
    """The source ``rows`` and ``cols`` (0-based, -1: no pixel) of each cell of a map grid
    of affine ``transform`` in ``crs`` (WKT), for the raster whose transform is ``grid``."""

    rows: np.ndarray
    cols: np.ndarray
    transform: tuple
    crs: str
    grid: tuple = tuple(Affine.identity())[:6]

    @classmethod
    def from_file_tables(cls, glt_x, glt_y, geotransform, crs: str) -> Glt:
        """From EMIT's 1-based tables (0: no pixel) and the grid's GDAL geotransform."""
        gx, gy = np.asarray(glt_x), np.asarray(glt_y)
        valid = (gx != 0) & (gy != 0)
        rows = np.where(valid, np.abs(gy) - 1, -1).astype(np.int32, copy=False)
        cols = np.where(valid, np.abs(gx) - 1, -1).astype(np.int32, copy=False)
        return cls(rows, cols, tuple(Affine.from_gdal(*geotransform))[:6], crs)

    @property
    def shape(self) -> tuple[int, int]:
        """The map grid's (rows, columns)."""
        return self.rows.shape

    def on_grid(self, transform: Affine, shape) -> Glt | None:
        """The table for a raster of ``transform`` and ``shape`` (rows, cols) that is a
        window of the grid (whole pixels, steps of 1): the cells placing its pixels, the
        map grid cropped to them. None for any other raster (a strided or binned one), or
        when no cell places one of its pixels."""
        rel = ~Affine(*self.grid) @ transform  # the raster's pixel frame -> the grid's
        if not rel.almost_equals(Affine.translation(round(rel.c), round(rel.f)),
                                 precision=1e-9):
            return None
        height, width = int(shape[0]), int(shape[1])
        row_off, col_off = round(rel.f), round(rel.c)
        if (row_off, col_off) == (0, 0) and (self.rows.max(initial=-1) < height
                                             and self.cols.max(initial=-1) < width):
            return replace(self, grid=tuple(transform)[:6])
        rows, cols = self.rows - row_off, self.cols - col_off
        inside = (self.rows >= 0) & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        if not inside.any():
            return None
        r = np.flatnonzero(inside.any(axis=1))
        c = np.flatnonzero(inside.any(axis=0))
        cut = (slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1))
        keep = inside[cut]
        moved = Affine(*self.transform) @ Affine.translation(int(c[0]), int(r[0]))
        return Glt(np.where(keep, rows[cut], -1).astype(np.int32),
                   np.where(keep, cols[cut], -1).astype(np.int32),
                   tuple(moved)[:6], self.crs, tuple(transform)[:6])

    def windowed(self, window, source=None) -> Glt | None:
        """The table of ``window`` (an :class:`hsad.cube.subset.Window` of this table's raster)
        read as a raster of its own (pixels from 0, no transform): the cells placing its
        pixels, only those of ``window.cells`` (row and column bounds on the map grid, a
        ``--projwin``'s) when given. None, with a warning naming ``source``, when no cell
        places one of its pixels: its maps are then written in pixels."""
        table = self
        cells = getattr(window, "cells", None)
        if cells is not None:
            r0, r1, c0, c1 = cells
            moved = Affine(*self.transform) @ Affine.translation(c0, r0)
            table = replace(self, rows=self.rows[r0:r1, c0:c1], cols=self.cols[r0:r1, c0:c1],
                            transform=tuple(moved)[:6])
        part = table.on_grid(Affine(*self.grid) @ Affine.translation(window.col_off,
                                                                     window.row_off),
                             (window.height, window.width))
        if part is None:
            warnings.warn(f"{source or 'the window'}: the granule's lookup table places no "
                          f"pixel of -srcwin {window.srcwin()}; its maps are written in "
                          "instrument pixels, without georeference", UserWarning, stacklevel=3)
            return None
        return replace(part, grid=tuple(Affine.identity())[:6])

    def orthorectify(self, values, fill=np.nan) -> np.ndarray:
        """``values`` (rows, cols[, bands], on this table's raster) on the map grid;
        ``fill`` where no pixel falls (float output for a NaN fill)."""
        values = np.asarray(values)
        dtype = np.result_type(values.dtype, np.float32) if isinstance(fill, float) and \
            np.isnan(fill) else values.dtype
        return _gather(values.astype(dtype, copy=False), self.rows, self.cols, fill)

    def source_window(self, rows: slice, cols: slice) -> tuple[int, int, int, int] | None:
        """``(r0, r1, c0, c1)``: the raster's pixels the map cells ``[rows, cols]`` take,
        as a bounding window; None when they take none."""
        r, c = self.rows[rows, cols], self.cols[rows, cols]
        hit = r >= 0
        if not hit.any():
            return None
        return int(r[hit].min()), int(r[hit].max()) + 1, int(c[hit].min()), int(c[hit].max()) + 1


def glt_of(obj) -> Glt | None:
    """The table placing ``obj`` (a cube or map read from an EMIT granule, or a window or
    slice of one); None when it has none."""
    from hsad.cube import transform_of

    held = getattr(obj, "attrs", {}).get(ATTR)
    if not isinstance(held, Glt) or getattr(obj, "ndim", 0) < 2:
        return None
    return held.on_grid(transform_of(obj), obj.shape[:2])


def only_placed(cube: xr.DataArray, glt: Glt) -> xr.DataArray:
    """``cube`` (on ``glt``'s raster) with the pixels no cell of ``glt`` places set to
    nodata, lazily: a ``--projwin``'s pixels outside its box."""
    from hsad.cube.nodata import apply_valid_mask

    placed = np.zeros(cube.shape[:2], bool)
    hit = glt.rows >= 0
    placed[glt.rows[hit], glt.cols[hit]] = True
    return cube if placed.all() else apply_valid_mask(cube, placed)


def map_grid(glt: Glt, values, name=None, attrs: dict | None = None) -> xr.DataArray:
    """A ``(y, x[, band])`` DataArray of ``values`` on the table's map grid, with its CRS
    and transform (pixel-centre coordinates, as hsad's cubes have)."""
    from hsad.cube import _pixel_centre_coords
    from hsad.cube.grid import with_crs

    transform = Affine(*glt.transform)
    y, x = _pixel_centre_coords(transform, *glt.shape)
    dims = ("y", "x", "band")[:np.ndim(values)]
    out = xr.DataArray(values, dims=dims, coords={"y": y, "x": x}, name=name)
    out.attrs.update(attrs or {})
    return with_crs(out, glt.crs).rio.write_transform(transform)


def map_values(map_) -> np.ndarray:
    """A ``(y, x)`` map's values in memory (a lazy one computed, once), a boolean one as
    0/1 (so that NaN can mark the cells no pixel falls in)."""
    if isinstance(map_, xr.DataArray) and set(map_.dims) == {"y", "x"}:
        map_ = map_.transpose("y", "x")
    values = np.asarray(getattr(map_, "values", map_))
    return values.astype(np.float32) if values.dtype == bool else values


def place(glt: Glt, map_, name=None, attrs: dict | None = None) -> xr.DataArray:
    """A ``(y, x)`` map (array or DataArray) of ``glt``'s raster on its map grid, NaN where
    no pixel falls (:func:`map_grid`)."""
    return map_grid(glt, glt.orthorectify(map_values(map_)), name=name, attrs=attrs)


def orthorectify_map(map_: xr.DataArray) -> xr.DataArray:
    """A ``(y, x)`` map of a scene in instrument geometry placed on its GLT's map grid
    (NaN where no pixel falls; a boolean mask becomes 0/1 with NaN there). A map without a
    table is returned as it is."""
    glt = glt_of(map_)
    if glt is None:
        return map_
    return place(glt, map_, name=map_.name,
                 attrs={k: v for k, v in map_.attrs.items() if k != ATTR})


def pulled_back(cells: np.ndarray, glt: Glt, shape: tuple[int, int],
                largest: bool = True) -> np.ndarray:
    """Values on ``glt``'s map grid (a truth or a mask drawn over the orthorectified map)
    taken back to the ``shape`` raster's pixels the cells place: a pixel placed by several
    cells takes their largest value (a target on any of them is a target), or with
    ``largest=False`` their smallest (a mask: a pixel any of whose cells is left out is
    left out); one placed by none or only by NaN is NaN (float64)."""
    out = np.full(shape, np.nan)
    hit = glt.rows >= 0
    (np.fmax if largest else np.fmin).at(out, (glt.rows[hit], glt.cols[hit]),
                                         np.asarray(cells, dtype=np.float64)[hit])
    return out


def _gather(window: np.ndarray, rows: np.ndarray, cols: np.ndarray, fill) -> np.ndarray:
    """Cells ``(rows, cols)`` of ``window`` (-1: ``fill``), one block of the map grid."""
    out = np.full(rows.shape + window.shape[2:], fill, dtype=window.dtype)
    hit = rows >= 0
    out[hit] = window[rows[hit], cols[hit]]
    return out


def orthorectify_cube(cube: xr.DataArray, tile: int = 256) -> xr.DataArray:
    """A ``(y, x, band)`` cube in instrument geometry placed on its GLT's map grid, lazily:
    each ``tile`` x ``tile`` block of the grid reads the bounding window of the pixels it
    takes. Cells without a pixel hold the cube's nodata (NaN for a float cube without one,
    which then becomes its nodata). A cube without a table is returned as it is."""
    import dask
    import dask.array as da

    from hsad.cube import make_cube, wrap_numpy

    glt = glt_of(cube)
    if glt is None:
        return cube
    cube = cube.transpose("y", "x", "band")
    data = cube.data if isinstance(cube.data, da.Array) else wrap_numpy(np.asarray(cube.data))
    nodata = cube.attrs.get("nodata")
    if nodata is None:
        nodata = float("nan") if data.dtype.kind == "f" else 0
    rows_of_blocks = []
    for i in range(0, glt.shape[0], tile):
        row = []
        for j in range(0, glt.shape[1], tile):
            cut = (slice(i, min(i + tile, glt.shape[0])), slice(j, min(j + tile, glt.shape[1])))
            shape = (cut[0].stop - i, cut[1].stop - j, data.shape[2])
            window = glt.source_window(*cut)
            if window is None:
                row.append([da.full(shape, nodata, dtype=data.dtype)])
                continue
            r0, r1, c0, c1 = window
            rows, cols = glt.rows[cut], glt.cols[cut]
            block = dask.delayed(_gather)(data[r0:r1, c0:c1], np.where(rows >= 0, rows - r0, -1),
                                          np.where(rows >= 0, cols - c0, -1), nodata)
            row.append([da.from_delayed(block, shape, dtype=data.dtype)])  # blocks on y, x, band
        rows_of_blocks.append(row)
    band_names = cube["band_name"].values if "band_name" in cube.coords else None
    attrs = {k: v for k, v in cube.attrs.items()
             if k not in (ATTR, "nodata", "source_format", "source_path")}
    return make_cube(da.block(rows_of_blocks), transform=Affine(*glt.transform), crs=glt.crs,
                     nodata=nodata, wavelength=cube["wavelength"].values,
                     fwhm=cube["fwhm"].values, good_band=cube["good_band"].values,
                     band_names=band_names, source_format=cube.attrs.get("source_format"),
                     source_path=cube.attrs.get("source_path"), attrs=attrs)


__all__ = ["ATTR", "Glt", "glt_of", "map_grid", "map_values", "only_placed",
           "orthorectify_cube", "orthorectify_map", "place"]
