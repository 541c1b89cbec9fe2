"""The scene engine's tiles: sized by a memory budget, exact halo operators, streamed
reductions of maps and streamed map outputs.

- :func:`chunks_for` / :func:`open_tiled`: ``(y, x)`` tiles with all bands, as large as a
  memory budget allows for the tasks running at once.
- :func:`map_halo`: a tile operator with ``halo`` pixels of real context from the
  neighbouring tiles (``dask.array.map_overlap``), none beyond the image edge, so window
  operators give the whole-scene result exactly.
- :func:`write_map`: a map streamed tile by tile into a (COG) GeoTIFF, with a progress
  bar, from the threaded scheduler or a cluster.

Maps kept between passes are in :mod:`hsad.engine.spill`, torch inference over tiles in
:mod:`hsad.engine.inference` (both were here before 0.3.0; their names still import
from here).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np
import xarray as xr

from hsad.cube import map_like
from hsad.engine.scheduler import (
    TileProgress,
    active_client,
    concurrency,
    local_writes,
    parse_memory,
    pull_blocks,
)
from hsad.errors import ParameterError
from hsad.lazy_modules import moved_names

#: Working bytes per band and pixel a tile task needs beyond its raw data, measured: RX
#: moments hold two float64 copies (16), a neural residual about eight float32 arrays (32).
WORK_BYTES = 36
#: Smallest tile edge (pixels), and the multiple tile edges are rounded down to.
MIN_TILE, ALIGN = 32, 16
#: Full-width strips are used for row-interleaved files when at least this many rows fit.
MIN_STRIP = 16


# ---------------------------------------------------------------- tiles


def chunks_for(shape: tuple[int, ...], dtype, memory_limit: str | int | None = None, *,
               workers: int | None = None, halo: int = 0,
               full_rows: bool = False, pixel_bytes: int | None = None) -> tuple[int, int]:
    """Tile size ``(rows, cols)`` for a ``(y, x, band)`` cube of ``dtype`` under a budget.

    The budget (bytes, or a size string such as ``"2GB"``; default
    :func:`hsad.engine.scheduler.default_memory_limit`) is shared by the ``workers`` tiles
    processed at once (default: the current scheduler's threads). Each tile, with ``halo``
    pixels of context on every side, holds ``bands·(2·itemsize + WORK_BYTES)`` bytes per
    pixel, or ``pixel_bytes`` for an operator that knows its own. ``full_rows`` asks for
    full-width strips (contiguous reads of row-interleaved files) when at least
    ``MIN_STRIP`` rows fit; otherwise tiles are square, a multiple of 16 pixels, at least
    32. A budget below :func:`min_memory` (one such smallest tile) is
    refused with a ParameterError naming the minimum.
    """
    rows, cols = int(shape[0]), int(shape[1])
    bands = int(shape[2]) if len(shape) > 2 else 1
    budget = parse_memory(memory_limit)
    check_budget(budget, shape, dtype, halo, pixel_bytes)
    tasks = max(1, int(workers) if workers else concurrency())
    per_pixel = pixel_bytes or bands * (2 * np.dtype(dtype).itemsize + WORK_BYTES)
    pixels = budget / tasks / per_pixel
    h = max(0, int(halo))
    if full_rows:
        strip = int(pixels // (cols + 2 * h)) - 2 * h
        if strip >= max(MIN_STRIP, h):
            return min(rows, strip), cols
    edge = int(math.sqrt(pixels)) - 2 * h
    edge = max(MIN_TILE, edge // ALIGN * ALIGN)
    return min(rows, edge), min(cols, edge)


def min_memory(shape: tuple[int, ...], dtype, halo: int = 0,
               pixel_bytes: int | None = None) -> int:
    """Bytes the smallest tile needs: ``MIN_TILE`` square with ``halo`` pixels of context
    (no more than the scene: a scene within the halo is one tile), at ``pixel_bytes`` a
    pixel (default ``bands·(2·itemsize + WORK_BYTES)``)."""
    rows, cols = _smallest_tile(shape, halo)
    return int(rows * cols * _pixel_bytes(shape, dtype, pixel_bytes))


def _smallest_tile(shape, halo: int) -> tuple[int, int]:
    h = 2 * max(0, int(halo))
    return min(int(shape[0]), MIN_TILE + h), min(int(shape[1]), MIN_TILE + h)


def _pixel_bytes(shape, dtype, pixel_bytes: int | None = None) -> int:
    bands = int(shape[2]) if len(shape) > 2 else 1
    return int(pixel_bytes or bands * (2 * np.dtype(dtype).itemsize + WORK_BYTES))


def check_budget(budget: int, shape: tuple[int, ...], dtype, halo: int = 0,
                 pixel_bytes: int | None = None, what: str = "") -> None:
    """ParameterError naming the minimum when ``budget`` (bytes) is below
    :func:`min_memory`. ``what``: the stage, for the message."""
    need = min_memory(shape, dtype, halo, pixel_bytes)
    if budget < need:
        rows, cols = _smallest_tile(shape, halo)
        bands = int(shape[2]) if len(shape) > 2 else 1
        tile = (f"tile of {what} ({_pixel_bytes(shape, dtype, pixel_bytes)} bytes a pixel)"
                if what else f"tile of {bands} bands ({np.dtype(dtype).name})")
        raise ParameterError(
            f"memory limit {budget / 1e6:.0f} MB is too small for one {rows}x{cols}-pixel "
            f"{tile}: give --memory-limit {math.ceil(need / 1e6)}MB or more")


def open_tiled(path, memory_limit: str | int | None = None, *, chunks=None,
               key: str | None = None, workers: int | None = None,
               subset: dict | None = None, apply_scale: bool = False) -> xr.DataArray:
    """Open a cube lazily with tiles from :func:`chunks_for` (``chunks`` overrides).

    ENVI files (stored row by row) get full-width strips when the budget allows.
    ``subset``: :func:`hsad.cube.subset.spatial_subset` keywords (``srcwin``, ``projwin``,
    ``projwin_crs``): only that window is opened, in tiles sized for it, and every read (a
    tile, a statistics sample) reads only its own pixels (:mod:`hsad.io.window`).
    ``apply_scale``: as :func:`hsad.io.open_cube`'s.
    """
    from hsad.cube.subset import window_for
    from hsad.io import open_cube

    cube = open_cube(path, chunks=chunks, key=key, apply_scale=apply_scale)
    window = window_for(cube, **(subset or {}))
    if chunks is None:
        shape = cube.shape if window is None else (window.height, window.width,
                                                   *cube.shape[2:])
        chunks = chunks_for(shape, cube.dtype, memory_limit, workers=workers,
                            full_rows=cube.attrs.get("source_format") == "envi")
        planned = None
        if cube.attrs.get("block_shape"):  # a tiled GeoTIFF, a chunked HDF5 cube
            from hsad.engine.block_tiles import plan_tiles, split_cube

            # whole blocks to each tile: 480² tiles of a file in 256² blocks decoded
            # each block about twice (RX of a deflated 2048² × 50 float32 file: 4.4 s of
            # statistics against 2.3 s); blocks larger than a tile read once, then cut
            planned = plan_tiles(cube, shape, chunks, window, memory_limit, workers=workers,
                                 pixel_bytes=_pixel_bytes(shape, cube.dtype))
        if planned is not None:
            chunks, tiles = planned
            if tiles is not None:
                return split_cube(open_cube(path, chunks=chunks, key=key, window=window,
                                            apply_scale=apply_scale), tiles)
        if window is None and chunks == (max(cube.data.chunks[0]), max(cube.data.chunks[1])):
            return cube
    elif window is None:
        return cube
    return open_cube(path, chunks=chunks, key=key, window=window, apply_scale=apply_scale)


def map_halo(func, data: da.Array, halo: int, *, dtype=np.float64, drop_axis=None,
             **kwargs) -> da.Array:
    """``func(block, **kwargs)`` on every tile with ``halo`` pixels of neighbour context.

    ``data`` is ``(y, x)`` or ``(y, x, k)``; ``func`` returns an array whose first two
    axes match its input block (``drop_axis=2`` drops the third). Nothing is padded beyond
    the image edge, so an operator that treats image edges itself (e.g. reflection) sees
    exactly what it sees on the whole scene; the halo is trimmed afterwards. Tiles smaller
    than the halo are merged by dask first; an image axis no longer than the halo becomes a
    single tile (a scene smaller than the halo is processed whole).
    """
    h = int(halo)
    if data.ndim == 3:
        data = data.rechunk({2: -1})
    depth = {2: 0} if data.ndim == 3 else {}
    for axis in (0, 1):  # an axis no longer than the halo is one tile: no halo needed
        if data.shape[axis] <= h:
            data = data.rechunk({axis: -1})
        depth[axis] = h if data.shape[axis] > h else 0
    out_ndim = data.ndim - (1 if drop_axis is not None else 0)
    return da.map_overlap(func, data, depth=depth, boundary="none", trim=True, dtype=dtype,
                          drop_axis=drop_axis, meta=np.empty((0,) * out_ndim, dtype),
                          **kwargs)


def halo_tiles(data: da.Array, halo: int, memory_limit: str | int | None = None, *,
               max_edge: int | None = None, pixel_bytes: int | None = None) -> da.Array:
    """``data`` (y, x[, k]) rechunked into the largest tiles the budget allows for an
    operator with ``halo`` pixels of context (:func:`chunks_for`), so that the halo's
    repeated work stays a small share: a 30-row strip with a 122-pixel halo would filter
    nine times its own rows. ``max_edge``: for an operator whose cost per pixel grows with
    the tile, axes longer than twice ``max_edge`` are cut into tiles of ``max_edge`` to
    twice that. Axes are split into nearly equal tiles, so that no thin remainder carries
    a whole halo. ``pixel_bytes``: the operator's memory per tile pixel, halo included
    (default: :func:`chunks_for`'s)."""
    tile = chunks_for(data.shape, data.dtype, memory_limit, halo=halo,
                      pixel_bytes=pixel_bytes)
    if max_edge:
        tile = tuple(min(t, -(-n // max(1, n // int(max_edge))))
                     for n, t in zip(data.shape[:2], tile, strict=True))
    return data.rechunk({axis: -(-n // -(-n // t)) for axis, (n, t)
                         in enumerate(zip(data.shape[:2], tile, strict=True))})


# ---------------------------------------------------------------- streamed statistics


def finite_extremes(m: da.Array, axis=None) -> tuple[da.Array, da.Array]:
    """Lazy min and max of ``m``'s finite values (over ``axis``; ``+inf``, ``−inf`` where
    there is none), to compute in one pass with other work (:func:`materialise_with`)."""
    finite = da.isfinite(m)
    return da.where(finite, m, np.inf).min(axis=axis), da.where(finite, m, -np.inf).max(axis=axis)


def value_range(lo, hi) -> tuple[float, float]:
    """``(lo, hi)`` as floats, ``(nan, nan)`` for the extremes of no finite value."""
    return (float("nan"), float("nan")) if lo > hi else (float(lo), float(hi))


def minmax(*maps: da.Array) -> list[tuple[float, float]]:
    """``(min, max)`` of the finite values of each map, in one pass over all of them.

    ``(nan, nan)`` for a map without finite values.
    """
    values = dask.compute(*[e for m in maps for e in finite_extremes(m)])
    return [value_range(lo, hi) for lo, hi in zip(values[::2], values[1::2], strict=True)]


def nan_median(values: da.Array, limit: int = 1 << 20) -> float:
    """Exact median of the finite values of a lazy array (as ``np.median`` gives it).

    Histograms narrow down the range holding the middle order statistics, one pass each,
    until it holds at most ``limit`` values, which are then gathered and sorted; each pass
    also takes the range to the extremes of the values inside it, so that a median tied
    by more than ``limit`` values is that value. A range too narrow for 1024 bins (a few
    floats apart) is binned by the values it holds.
    """
    flat = values.ravel()
    finite = da.isfinite(flat)
    n, lo, hi = dask.compute(finite.sum(), da.where(finite, flat, np.inf).min(),
                             da.where(finite, flat, -np.inf).max())
    n = int(n)
    if n == 0:
        return float("nan")
    k1, k2 = (n - 1) // 2, n // 2  # order statistics to average
    below = 0  # finite values below lo
    while True:
        if lo == hi:
            return float(lo)
        inside = finite & (flat >= lo) & (flat <= hi)
        held = da.where(inside, flat, np.nan)
        count, lo, hi = dask.compute(inside.sum(), da.nanmin(held), da.nanmax(held))
        lo, hi = float(lo), float(hi)  # no value lies between the old bounds and these
        if lo == hi:
            return lo
        if int(count) <= limit:
            picked = np.sort(flat[inside].compute())
            return float((picked[k1 - below] + picked[k2 - below]) / 2)
        edges = np.linspace(lo, hi, 1025)
        if not np.all(np.diff(edges) > 0):  # a few floats apart: a bin for each value held
            distinct = da.unique(held).compute()
            distinct = distinct[np.isfinite(distinct)]
            edges = np.append(distinct, np.nextafter(distinct[-1], np.inf))
            cum = below + np.cumsum(da.histogram(held, bins=edges)[0].compute())
            b1, b2 = np.searchsorted(cum, k1, side="right"), np.searchsorted(cum, k2, side="right")
            return float((distinct[b1] + distinct[b2]) / 2)
        hist, _ = da.histogram(held, bins=edges)
        cum = below + np.cumsum(hist.compute())
        b1, b2 = np.searchsorted(cum, k1, side="right"), np.searchsorted(cum, k2, side="right")
        new_below = below + (int(cum[b1 - 1] - below) if b1 > 0 else 0)
        new_lo, new_hi = float(edges[b1]), float(edges[b2 + 1])
        if new_lo == lo and new_hi == hi:  # cannot narrow (float resolution): gather
            picked = np.sort(flat[inside].compute())
            return float((picked[k1 - below] + picked[k2 - below]) / 2)
        lo, hi, below = new_lo, new_hi, new_below


# ---------------------------------------------------------------- streamed outputs


def write_map(map_, path, like: xr.DataArray | None = None, cog: bool = False,
              progress: bool | None = None, tags: dict | None = None,
              description: str | None = None) -> Path:
    """Stream a ``(y, x)`` map tile by tile into a tiled GeoTIFF (``cog``: COG, converted
    last), with a tqdm bar over the tiles (``progress=None``: when stderr is a terminal);
    ``tags`` and ``description`` as in :func:`hsad.io.geotiff_writer.write_geotiff`.

    On a cluster the tiles are computed there and written here as they arrive.
    """
    from hsad.io.geotiff_writer import write_geotiff

    client = active_client()
    if client is not None and isinstance(getattr(map_, "data", None), da.Array):
        map_ = map_.copy(data=pull_blocks(map_.data, client))
    disable = None if progress is None else not progress
    with local_writes(client), TileProgress(disable=disable, desc=f"writing {Path(path).name}"):
        return write_geotiff(map_, path, like=like, cog=cog, tags=tags,
                             description=description)


def read_map(path, like: xr.DataArray) -> xr.DataArray:
    """A written map, lazily, aligned with ``like`` (chunked like it) and NaN on nodata."""
    from hsad.io.geotiff import open_geotiff

    chunks = (max(like.data.chunks[0]), max(like.data.chunks[1])) \
        if isinstance(like.data, da.Array) else None
    band = open_geotiff(path, chunks=chunks).data[:, :, 0]
    return map_like(like, band, name="score")


#: where the names that lived here before 0.3.0 moved: the old imports still work
MOVED = {**{n: "hsad.engine.spill" for n in (
    "KEEP_SHARE", "NpyWindows", "keep_with", "map_windows", "materialise", "materialise_with")},
    **{n: "hsad.engine.inference" for n in (
        "BATCH", "CUDA_BATCH", "PRECISIONS", "batch_for", "call_model", "infer_batches",
        "model_node", "tile_threads")}}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.engine.inference import BATCH as BATCH
    from hsad.engine.inference import CUDA_BATCH as CUDA_BATCH
    from hsad.engine.inference import PRECISIONS as PRECISIONS
    from hsad.engine.inference import batch_for as batch_for
    from hsad.engine.inference import call_model as call_model
    from hsad.engine.inference import infer_batches as infer_batches
    from hsad.engine.inference import model_node as model_node
    from hsad.engine.inference import tile_threads as tile_threads
    from hsad.engine.spill import KEEP_SHARE as KEEP_SHARE
    from hsad.engine.spill import NpyWindows as NpyWindows
    from hsad.engine.spill import keep_with as keep_with
    from hsad.engine.spill import map_windows as map_windows
    from hsad.engine.spill import materialise as materialise
    from hsad.engine.spill import materialise_with as materialise_with

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "chunks_for", "finite_extremes", "halo_tiles", "map_halo", "min_memory",
           "minmax", "nan_median", "open_tiled", "read_map", "value_range", "write_map"]
