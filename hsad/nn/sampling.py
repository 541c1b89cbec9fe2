"""Training samples drawn from a lazy cube, chunk by chunk, without loading the scene.

Pixel positions are drawn uniformly without replacement over the grid (seeded); only the
chunks that hold a drawn position are read, one small group at a time. Positions whose
pixel is nodata (or, on request, holds an undeclared fill value) are dropped and more are
drawn until ``n`` valid pixels are found, so the sample is uniform over the valid pixels.
``patch=k`` returns the k×k neighbourhood of each drawn pixel, reflected at the image
border.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dask
import numpy as np
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from hsad.cube import block_valid, good_band_mask
from hsad.engine.data_checks import fill_limit_note
from hsad.errors import ParameterError

#: Chunks read together (one dask.compute) while sampling.
READ_GROUP = 4


@dataclass
class PixelSample:
    """Sampled spectra ``(n, B)`` or patches ``(n, B, k, k)``, with their row/column."""

    values: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    #: drawn pixels left out (and others drawn) for holding a value beyond ``fill_limit``
    fill: int = 0


def _pad_reflect(block: np.ndarray, pads: tuple[tuple[int, int], ...]) -> np.ndarray:
    if not any(a or b for a, b in pads):
        return block
    small = any(block.shape[i] <= max(pads[i]) for i in range(2))
    return np.pad(block, pads + ((0, 0),), mode="symmetric" if small else "reflect")


def window_inputs(block, pads, nodata, k: int):
    """Network inputs of a window's valid pixels, for inference tile by tile.

    ``block`` is the window plus ``k // 2`` pixels of halo where the scene has them
    (``pads`` tells which sides lack them; those are reflected). Returns ``(inputs, ok,
    (rows, cols))``: the valid pixels' spectra ``(n, B)`` (``k = 1``, in the block's dtype)
    or their ``k × k`` patches, :class:`Patches` ``(n, B, k, k)`` float32 cut batch by
    batch (nodata as NaN), and the validity of the window's own ``rows·cols`` pixels.
    """
    halo = k // 2
    block = np.asarray(block)
    valid = block_valid(block, nodata)
    (top, bottom), (left, right) = pads
    rows = block.shape[0] - 2 * halo + top + bottom
    cols = block.shape[1] - 2 * halo + left + right
    inner = (slice(halo - top, halo - top + rows), slice(halo - left, halo - left + cols))
    ok = valid[inner].reshape(-1)
    if k == 1:
        centre = block[inner].reshape(-1, block.shape[-1])
        return (centre if ok.all() else centre[ok]), ok, (rows, cols)
    if not ok.any():
        return np.empty((0, block.shape[-1], k, k), np.float32), ok, (rows, cols)
    data = block.astype(np.float32)
    data[~valid] = np.nan
    win = sliding_window_view(_pad_reflect(data, pads), (k, k), axis=(0, 1))
    return Patches(win, *np.divmod(np.flatnonzero(ok), cols)), ok, (rows, cols)


class Patches:
    """The ``k × k`` patches ``(n, B, k, k)`` of a window's valid pixels, copied out batch
    by batch (``patches[lo:hi]``, float32): all at once they would take k² times the
    window's own memory (200 bytes a band and pixel for k = 5), beyond any tile budget.
    ``windows``: the window's ``sliding_window_view`` ``(rows, cols, B, k, k)``; ``rows``,
    ``cols``: the valid pixels' positions in it."""

    def __init__(self, windows: np.ndarray, rows: np.ndarray, cols: np.ndarray):
        self.windows, self.rows, self.cols = windows, rows, cols
        self.shape = (len(rows), *windows.shape[2:])
        self.dtype, self.ndim = windows.dtype, len(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: slice) -> np.ndarray:
        return self.windows[self.rows[key], self.cols[key]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)


def stratified_rows(height: int, width: int, n: int, seed: int = 0) -> np.ndarray | None:
    """Rows of a spatially stratified sample of about ``n`` pixels, ascending.

    The scene's rows are split into ``k = ⌈n / width⌉`` strata of equal height and one row
    is drawn (seeded) from each, so that the sample covers the scene from top to bottom and
    no periodic pattern along the track can alias with a fixed spacing. Whole rows are
    cheap to read from files stored row by row. None when ``n`` is 0 or ``k`` reaches the
    scene's height (then every row is needed).
    """
    if n <= 0:
        return None
    k = -(-int(n) // max(int(width), 1))
    if k >= height:
        return None
    edges = np.floor(np.linspace(0, height, k + 1)).astype(np.int64)
    draw = np.random.default_rng(seed).random(k)
    return edges[:-1] + (draw * (edges[1:] - edges[:-1])).astype(np.int64)


def read_window(data, y0: int, y1: int, x0: int, x1: int, halo: int = 0):
    """Rows ``y0−halo … y1+halo`` and columns likewise of a lazy (y, x, band) array.

    Returns a delayed-free numpy block: real neighbours inside the image, reflection
    (without repeating the edge) outside it. ``halo=0`` reads the window itself.
    """
    rows, cols = data.shape[:2]
    ya, yb = max(0, y0 - halo), min(rows, y1 + halo)
    xa, xb = max(0, x0 - halo), min(cols, x1 + halo)
    return data[ya:yb, xa:xb], ((ya - (y0 - halo), (y1 + halo) - yb),
                                (xa - (x0 - halo), (x1 + halo) - xb))


def _bounds(chunks: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(chunks)])


def _extract(block, pads, nodata, rel_r, rel_c, patch, fill_limit=None, dtype=np.float32):
    """Values at (rel_r, rel_c) of an un-padded window, as ``dtype``; patches come from the
    padded one. Returns the centres' validity, their values and how many were refused as
    fill values (a value beyond ± ``fill_limit``; in a patch such a neighbour is NaN, as
    nodata is)."""
    block = np.asarray(block)
    valid = block_valid(block, nodata)
    halo = patch // 2
    # validity of the centres (positions are relative to the unpadded window start)
    top, left = pads[0][0], pads[1][0]
    centre = (rel_r + halo - top, rel_c + halo - left)
    n_fill = 0
    # a type whose largest value is below the limit (float16) holds no fill value
    if fill_limit is not None and block.dtype.kind == "f" and \
            float(np.finfo(block.dtype).max) > fill_limit:
        fill = (np.abs(block) > fill_limit).any(axis=-1)
        n_fill = int((valid[centre] & fill[centre]).sum())
        valid &= ~fill
    ok = valid[centre]
    if patch == 1:
        values = block[rel_r[ok], rel_c[ok]].astype(dtype)
    else:
        data = block.astype(dtype)
        data[~valid] = np.nan
        data = _pad_reflect(data, pads)
        windows = sliding_window_view(data, (patch, patch), axis=(0, 1))
        values = windows[rel_r[ok], rel_c[ok]]  # (m, B, k, k)
    return ok, np.ascontiguousarray(values, dtype=dtype), n_fill


def sample_pixels(
    cube: xr.DataArray,
    n: int,
    *,
    seed: int = 0,
    bands=None,
    patch: int = 1,
    mask: np.ndarray | None = None,
    fill_limit: float | None = None,
    dtype=np.float32,
) -> PixelSample:
    """Uniform random sample of ``n`` valid pixels (all valid ones if fewer).

    ``bands`` selects bands (boolean vector or indices; default: the good bands).
    ``patch=k`` (odd) returns ``(n, B, k, k)`` neighbourhoods, nodata neighbours as NaN.
    Reproducible: the same ``seed`` gives the same sample whatever the chunking.
    ``mask`` (a (y, x) bool array, e.g. from :func:`region_mask`) restricts the draw to
    the pixels where it is True. ``fill_limit``: pixels holding a value beyond ± it (an
    undeclared fill value such as -3.4e38, which no measurement reaches) count as nodata,
    and how many were drawn is :attr:`PixelSample.fill`. ``dtype``: of the values
    (float32, what the networks take; float64 keeps a float64 scene's digits for
    statistics).
    """
    if n < 1:
        raise ParameterError(f"sample size must be ≥ 1, got {n}")
    if patch < 1 or patch % 2 == 0:
        raise ParameterError(f"patch size must be odd, got {patch}")
    sel = good_band_mask(cube) if bands is None else np.asarray(bands)
    data = cube.data[:, :, sel]
    nodata = cube.attrs.get("nodata")
    rows, cols = data.shape[:2]
    total = rows * cols
    universe = None if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    if mask is not None:
        if np.shape(mask) != (rows, cols):
            raise ParameterError(f"mask shape {np.shape(mask)} does not match the cube's "
                                 f"{(rows, cols)}", cube.attrs.get("source_path"))
        total = universe.size
    rng = np.random.default_rng(seed)
    ybounds, xbounds = _bounds(data.chunks[0]), _bounds(data.chunks[1])
    halo = patch // 2

    drawn = np.zeros(0, dtype=np.int64)
    found_pos: list[np.ndarray] = []
    found_val: list[np.ndarray] = []
    n_found, n_fill, rate = 0, 0, 1.0
    while n_found < n and drawn.size < total:
        slack = (1.0, 0) if drawn.size == 0 else (1.1, 8)  # first round: exactly n
        want = int(np.ceil((n - n_found) / max(rate, 1e-3) * slack[0])) + slack[1]
        fresh = rng.choice(total, size=min(total, want + drawn.size), replace=False)
        fresh = fresh if universe is None else universe[fresh]
        fresh = fresh[~np.isin(fresh, drawn)][:want]
        drawn = np.concatenate([drawn, fresh])
        r, c = np.divmod(fresh, cols)
        cy = np.searchsorted(ybounds, r, side="right") - 1
        cx = np.searchsorted(xbounds, c, side="right") - 1
        chunk_id = cy * len(xbounds) + cx
        keys = np.unique(chunk_id)
        ok_all = np.zeros(fresh.size, dtype=bool)
        vals_all: list[tuple[np.ndarray, np.ndarray]] = []
        for g in range(0, len(keys), READ_GROUP):
            group = keys[g:g + READ_GROUP]
            reads, metas = [], []
            for key in group:
                iy, ix = divmod(int(key), len(xbounds))
                y0, y1, x0, x1 = ybounds[iy], ybounds[iy + 1], xbounds[ix], xbounds[ix + 1]
                lazy, pads = read_window(data, y0, y1, x0, x1, halo)
                reads.append(lazy)
                metas.append((np.flatnonzero(chunk_id == key), y0, x0, pads))
            blocks = dask.compute(*reads)
            for block, (idx, y0, x0, pads) in zip(blocks, metas, strict=True):
                ok, values, fill = _extract(block, pads, nodata, r[idx] - y0, c[idx] - x0,
                                            patch, fill_limit, dtype)
                ok_all[idx] = ok
                n_fill += fill
                vals_all.append((idx[ok], values))
        order = np.concatenate([i for i, _ in vals_all]) if vals_all else np.zeros(0, int)
        values = np.concatenate([v for _, v in vals_all]) if vals_all else None
        # restore draw order (uniform random order) among the valid ones
        ranked = np.argsort(order, kind="stable")
        if values is not None and len(ranked):
            found_pos.append(fresh[order[ranked]])
            found_val.append(values[ranked])
            n_found += len(ranked)
        rate = max(ok_all.mean() if fresh.size else 0.0, 1e-3)
    if n_found == 0:
        why = (f"no valid pixel to sample{fill_limit_note(cube, bands)}" if n_fill
               else _nothing_to_sample(cube, bands, mask))
        raise ParameterError(why, cube.attrs.get("source_path"))
    pos = np.concatenate(found_pos)[:n]
    values = np.concatenate(found_val)[:n]
    r, c = np.divmod(pos, cols)
    return PixelSample(values, r, c, n_fill)


def _nothing_to_sample(cube: xr.DataArray, bands, mask) -> str:
    """Why no pixel could be drawn: bands without data (to mark bad), the area given, or
    no pixel holding data in every band."""
    from hsad.engine.data_checks import NO_WHOLE_PIXEL, dead_bands_note

    if bands is not None:
        chosen = np.asarray(bands)
        if chosen.dtype != bool:
            chosen = np.isin(np.arange(cube.sizes["band"]), chosen)
        bands = chosen
    dead = dead_bands_note(cube, bands)  # a pass over the scene: once
    if mask is not None and np.asarray(mask).any() and not dead:
        return "no valid pixel to sample in the area given (background, window or mask)"
    return f"no valid pixel to sample{dead or NO_WHOLE_PIXEL}"


def region_mask(cube: xr.DataArray, mask=None, window=None) -> np.ndarray | None:
    """(y, x) bool map of a training region, or None for the whole scene.

    ``mask``: a (y, x) bool array, a mask file (GeoTIFF, ENVI or MAT; non-zero = in; on
    the scene's grid, or on the whole grid of a window's scene, cut to the window as
    :func:`hsad.cube.placement.on_scene_grid` cuts it) or a vector file's polygons;
    ``window``: rows and columns ``(r0, r1, c0, c1)``, half-open, or the string
    ``"r0,r1,c0,c1"``. Given both, the region is their intersection.
    """
    shape = tuple(cube.shape[:2])
    path = cube.attrs.get("source_path")
    region = None
    if mask is not None:
        if isinstance(mask, (str, os.PathLike)):
            from hsad.cube.placement import on_scene_grid
            from hsad.io.maps import read_truth

            values, raster = read_truth(mask, what="training mask", grid=cube)
            values = np.asarray(on_scene_grid(values, raster, cube, "training mask", mask),
                                dtype=np.float64)
            region = np.nan_to_num(values) != 0
            if not region.any():  # named: "the training region" had named the scene
                from hsad.cube.nodata_values import hidden_class_note

                note = hidden_class_note(None if raster is None else raster.attrs.get("nodata"),
                                         int(np.isnan(values).sum()), zero_marks=False)
                hint = f": {note} (is the marked class written with it?)" if note else ""
                raise ParameterError(f"the training mask marks no pixel{hint}", mask)
        else:
            from hsad.cube.background import array_mask

            region = array_mask(mask, cube, what="training mask")
    if window is not None:
        parts = window.split(",") if isinstance(window, str) else list(window)
        try:
            numbers = [float(v) for v in parts]
            if len(numbers) != 4 or not all(v.is_integer() for v in numbers):
                raise ValueError
            r0, r1, c0, c1 = (int(v) for v in numbers)
        except (TypeError, ValueError, OverflowError):
            raise ParameterError(f"training window (train_window, --train-window) must be "
                                 f"four whole numbers r0,r1,c0,c1, got {window!r}") from None
        if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
            raise ParameterError(f"training window {r0},{r1},{c0},{c1} is empty or outside the "
                                 f"{shape[0]}x{shape[1]} scene", path)
        box = np.zeros(shape, dtype=bool)
        box[r0:r1, c0:c1] = True
        region = box if region is None else region & box
    if region is not None and not region.any():
        raise ParameterError("the training region holds no pixel", path)
    return region
