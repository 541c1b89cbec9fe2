"""The spatial stage's filters on tiles with halos: the scene's per-band ranges and the
quantisation they fix, the attribute (area) filters of AED and the paper variant, the
guided filter, D_spectral's area top-hat, and the tile sizes and memory budget they need.
:func:`hsad.fusion.tiled.fusion_stages` runs them; each tile's result equals the
whole-scene filter's (docs/performance.md explains why the area filters' halo is exact)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from hsad.engine.morphology import attribute_responses, response_bytes
from hsad.engine.scheduler import active_client, parse_memory
from hsad.engine.spill import keep_with, map_windows
from hsad.engine.tiles import (
    check_budget,
    finite_extremes,
    halo_tiles,
    map_halo,
    nan_median,
)
from hsad.errors import ParameterError
from hsad.fusion import guided_filter, tophat_units

#: largest tile edge (pixels, without the halo) of the attribute filters: axes longer
#: than twice this are cut into tiles of this to twice this. The largest area's halo (224
#: pixels a side) is filtered again by every tile, and the tree's cost per pixel grows only
#: mildly with the image (0.3–0.45 µs a pixel and polarity at five areas, 1472² to 2496²),
#: so the tiles are as large as the memory budget allows up to this edge: a 2048² scene is
#: filtered whole under a 1 GB budget (docs/performance.md, benchmark 16)
FILTER_EDGE = 2048


def _scaled(band: da.Array, lo: float, hi: float) -> da.Array:
    """``(band − lo)/(hi − lo)`` as ``fusion.quantise``/``normalise_map`` compute it."""
    return (band - lo) / (hi - lo) if hi > lo else da.zeros_like(band)


def band_summary(bands: da.Array) -> tuple[da.Array, da.Array, da.Array]:
    """Lazy per-band min and max of the finite values of ``bands`` (y, x, k), and their count
    of other values: computed in the sweep that makes ``bands`` (:func:`materialise_with`)."""
    lo, hi = finite_extremes(bands, axis=(0, 1))
    return lo, hi, (~da.isfinite(bands)).sum(axis=(0, 1))


def band_stats(bands: da.Array, summary=None) -> list[tuple[float, float, float]]:
    """Per band of ``bands`` (y, x, k) ``(lo, hi, fill)``: global min/max (``summary``, from
    :func:`band_summary`; computed here when None) and the median of the scaled finite
    values, which nodata pixels take (computed only if there are)."""
    lo, hi, holes = dask.compute(*band_summary(bands)) if summary is None else summary
    out = []
    for i in range(bands.shape[-1]):
        if lo[i] > hi[i]:  # no finite value
            out.append((float("nan"), float("nan"), 0.0))
            continue
        lo_i, hi_i = float(lo[i]), float(hi[i])
        fill = nan_median(_scaled(bands[:, :, i], lo_i, hi_i)) if holes[i] else 0.0
        out.append((lo_i, hi_i, fill))
    return out


def _quantised_dtype(levels: int) -> np.dtype:
    """The dtype of :func:`_quantise`'s images: float64 unquantised (``levels`` 0)."""
    return np.dtype(np.float64 if not levels else np.uint8 if levels <= 256 else np.uint16)


def _quantise(band: np.ndarray, lo: float, hi: float, fill: float, levels: int) -> np.ndarray:
    """``fusion.quantise`` of a tile, with the scene's range and median fill."""
    band = np.asarray(band, dtype=np.float64)
    finite = np.isfinite(band)
    if not np.isfinite(lo):
        scaled = np.zeros_like(band)
    else:
        scaled = (band - lo) / (hi - lo) if hi > lo else np.zeros_like(band)
        scaled[~finite] = fill
    if not levels:
        return scaled
    return np.round(scaled * (levels - 1)).astype(_quantised_dtype(levels))


def _guide(band: np.ndarray, lo: float, hi: float, fill: float) -> np.ndarray:
    """``_nan_fill(normalise_map(band))`` with the scene's range and median."""
    band = np.asarray(band, dtype=np.float64)
    finite = np.isfinite(band)
    out = np.where(finite, (band - lo) / (hi - lo) if hi > lo else 0.0, fill)
    return out if np.isfinite(lo) else np.zeros_like(band)


def attribute_halo(area: int) -> int:
    """Halo making a tile's area opening/closing equal the whole scene's (4-connectivity):
    a component of fewer than ``area`` pixels lies within ``area − 1`` steps of any of its
    pixels, and one of ``area`` or more has ``area`` pixels that close."""
    return max(int(area) - 1, 0)


def guided_halo(radius: int) -> int:
    """Halo of the guided filter: two box means of radius ``radius`` in a row."""
    return 2 * int(radius)


def _quantised_tile(block, *, stats, levels):
    """``_quantise`` of every band of a tile, stacked ``(y, x, k)``."""
    bands = np.asarray(block, dtype=np.float64)
    return np.stack([_quantise(bands[:, :, i], *stats[i], levels)
                     for i in range(bands.shape[-1])], axis=-1)


def _response_tile(block, *, areas, scale):
    """Sum over the bands of a quantised tile of their attribute responses summed over
    ``areas``, each scaled by ``scale`` (the filters of all bands in one call:
    :func:`attribute_responses`, on every core for large tiles)."""
    total = np.zeros(block.shape[:2])
    bands = [block[:, :, i] for i in range(block.shape[-1])]
    for response in attribute_responses(bands, areas, summed=True):
        total += response.astype(np.float64) / scale
    return total


def _guided_sum_tile(block, *, stats, radius, eps):
    """:func:`_guided_pair` of a tile of ``(first component, summed response)``."""
    return _guided_pair(block[:, :, 0], block[:, :, 1], stats=stats, radius=radius, eps=eps)


def _guided_pair(first, total, *, stats, radius, eps):
    """D_spatial of a tile: the summed response ``total`` guided by the ``first``
    component; NaN where that is NaN (:func:`_guide_channel` makes it NaN where any
    component is not finite)."""
    first = np.asarray(first, dtype=np.float64)
    out = guided_filter(_guide(first, *stats[0]), np.asarray(total, np.float64), radius, eps)
    out[~np.isfinite(first)] = np.nan
    return out


def _guide_channel(comps: da.Array) -> da.Array:
    """The first component of ``comps`` (y, x, k), float64, NaN where any component is not
    finite: all that the guided filter reads of them."""
    first = comps[:, :, 0].astype(np.float64)
    if comps.shape[2] > 1:
        first = da.where(da.isfinite(comps).all(axis=2), first, np.nan)
    return first


def _tophat_tile(block, *, stats, areas, levels):
    """:func:`hsad.fusion.spectral_tophat` of a tile of D_spectral ``(y, x, 1)``, with the
    scene's range and median fill (``stats``)."""
    band = np.asarray(block[:, :, 0], dtype=np.float64)
    return tophat_units(_quantise(band, *stats[0], levels), areas, levels, ~np.isfinite(band))


def paper_tile(block, *, n, stats, area, levels):
    """Mean attribute response ``f`` of the first ``n`` bands (channel 0) and the off-data
    mask (channel 1); other channels are padding."""
    bands = np.asarray(block, dtype=np.float64)[:, :, :n]
    out = np.zeros(block.shape[:2] + (block.shape[2],))
    quantised = _quantised_tile(bands, stats=stats, levels=levels)
    out[:, :, 0] = _response_tile(quantised, areas=(area,), scale=levels - 1 if levels else 1) / n
    out[:, :, 1] = ~np.isfinite(bands).all(axis=-1)
    return out


def guided_tile(block, *, lo, hi, radius, eps):
    f, off = block[:, :, 0], block[:, :, 1] > 0
    guide = (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
    out = guided_filter(guide, f, radius, eps)
    out[off] = np.nan
    return out


def aed_filtered(comps: da.Array, fusion, memory_limit=None, stats=None) -> da.Array:
    """The AED filters on principal-component images ``comps`` (y, x, k) in two tiled
    stages: the attribute responses of the quantised components, summed over the areas
    and components, on tiles with the largest area's halo and as large as the budget allows
    (the filters need little memory a pixel, and every tile filters its halo again); then
    the guided filter, on tiles with its own small halo, each reading its window of the
    first component and the responses, which are computed and kept here (in memory or
    spilled, :func:`keep_with`; on a cluster both stages stay lazy). ``stats``:
    :func:`band_stats` of ``comps`` when the caller has them."""
    radius, levels = int(fusion.radius), int(fusion.levels)
    areas = fusion.areas()
    stats = band_stats(comps) if stats is None else stats
    k = comps.shape[2]
    qtype = _quantised_dtype(levels)
    quantised = comps.rechunk({2: -1}).map_blocks(
        _quantised_tile, stats=stats, levels=levels, dtype=qtype,
        meta=np.empty((0, 0, 0), qtype))
    halo = attribute_halo(max(areas))
    tiles = halo_tiles(quantised, halo, memory_limit, max_edge=FILTER_EDGE,
                       pixel_bytes=_filter_bytes(k, qtype, len(areas)))
    scale = len(areas) * (levels - 1 if levels else 1)
    total = map_halo(_response_tile, tiles, halo, drop_axis=2, areas=areas, scale=scale)
    smooth, first = guided_halo(radius), _guide_channel(comps)
    pair = halo_tiles(da.stack([first.rechunk(total.chunks), total], axis=2), smooth,
                      memory_limit)
    kw = {"stats": stats, "radius": radius, "eps": float(fusion.eps)}
    if active_client() is not None:  # kept on the cluster's workers
        return map_halo(_guided_sum_tile, pair, smooth, drop_axis=2, **kw)
    # The guide and the responses are kept first (in memory, or spilled), and each guided
    # tile reads its window: halo pieces of the lazy pair held most of the map's two
    # float64 channels (and the components' rechunk all four) before they were read.
    stores, _ = keep_with([first, total], memory_limit=memory_limit, desc="spatial filters")
    return map_windows(_guided_pair, stores, pair.chunks, smooth, **kw)


def _filter_bytes(k: int, qtype, n_areas: int) -> int:
    """Memory a pixel of the AED filter tiles: the tile, each of the ``k`` components'
    response and the sum, and one filter job per tile in flight (the filters' shared thread
    pool runs at most one job a core, and one tile a core is in flight)."""
    return k * (np.dtype(qtype).itemsize + 4) + 16 + response_bytes(qtype, n_areas)


def _tophat_bytes(dtype, qtype, n_areas: int) -> int:
    """Memory a pixel of the top-hat tiles: the map, its quantised copy and the output, and
    one filter job."""
    return np.dtype(dtype).itemsize + np.dtype(qtype).itemsize + 8 + response_bytes(qtype,
                                                                                    n_areas)


def check_filter_budget(fusion, shape: tuple[int, int], memory_limit=None) -> None:
    """Refuse, before any work, a budget too small for the fusion's filter tiles on a
    ``shape`` scene (ParameterError naming the minimum): the filters run last, after the
    statistics, the components and, for a network, its training."""
    fusion = fusion.resolved()
    edge = max(shape[:2])
    if int(fusion.radius) > edge:  # its tiles' halos grew with it: 9.7 GB for 1e9
        raise ParameterError(f"the guided filter's radius, {int(fusion.radius)}, is larger "
                             f"than the scene ({shape[0]} × {shape[1]} pixels): give at most "
                             f"{edge}")
    areas, qtype = fusion.areas(), _quantised_dtype(int(fusion.levels))
    halo = attribute_halo(max(areas))
    budget = parse_memory(memory_limit)
    if fusion.variant == "paper":
        check_budget(budget, (*shape[:2], 2), np.float32, halo, what="the spatial filters")
        return
    check_budget(budget, shape[:2], qtype, halo, _filter_bytes(int(fusion.n_components),
                                                               qtype, len(areas)),
                 what="the spatial filters")
    if fusion.spectral_tophat:
        check_budget(budget, shape[:2], qtype, halo,
                     _tophat_bytes(np.float32, qtype, len(areas)), what="the top-hat")


def tophat_filtered(d_spec: da.Array, fusion, memory_limit=None) -> da.Array:
    """Lazy area top-hat of a (materialised) D_spectral map (:func:`hsad.fusion.spectral_tophat`)
    on tiles with the largest area's halo, as large as the budget allows."""
    areas, levels = fusion.areas(), int(fusion.levels)
    bands = d_spec[:, :, None]
    qtype = _quantised_dtype(levels)
    halo = attribute_halo(max(areas))
    tiles = halo_tiles(bands, halo, memory_limit, max_edge=FILTER_EDGE,
                       pixel_bytes=_tophat_bytes(d_spec.dtype, qtype, len(areas)))
    return map_halo(_tophat_tile, tiles, halo, drop_axis=2, stats=band_stats(bands),
                    areas=areas, levels=levels)


__all__ = ["FILTER_EDGE", "aed_filtered", "attribute_halo", "band_stats", "band_summary",
           "check_filter_budget", "guided_halo", "guided_tile", "paper_tile",
           "tophat_filtered"]
