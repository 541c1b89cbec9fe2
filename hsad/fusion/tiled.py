"""HADGAN's spatial–spectral fusion (:mod:`hsad.fusion`) on tiles, for scenes of any size.

Global statistics (moments, min/max, medians, band energies) are streamed over the tiles
first; the attribute filters and the guided filter then run on tiles with halos of
``area − 1`` and ``2·radius`` pixels (:func:`hsad.engine.map_halo`), so the maps equal the
whole-scene ones. See docs/performance.md for why the halo of the area opening/closing is
exact.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr

from hsad.cube import make_cube
from hsad.detectors.rx import rx_block
from hsad.engine.blas import triangular_factor
from hsad.engine.covariance import whitening
from hsad.engine.morphology import attribute_responses, response_bytes
from hsad.engine.scheduler import active_client, parse_memory
from hsad.engine.spill import keep_with, map_windows, materialise_with
from hsad.engine.stats import cube_moments
from hsad.engine.tiles import (
    check_budget,
    finite_extremes,
    halo_tiles,
    map_halo,
    nan_median,
    value_range,
)
from hsad.engine.windows import project
from hsad.errors import DegenerateDataWarning, ParameterError
from hsad.fusion import band_energy, guided_filter, tophat_units


def _lazy(data) -> da.Array:
    if isinstance(data, xr.DataArray):
        data = data.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(512, 512, -1))
    return data.rechunk({2: -1})


@dataclass
class Statistics:
    """Global statistics the fusion stage needs before its sweep over the tiles, given
    instead of computed exactly (e.g. from a sample of rows, see
    :meth:`hsad.detectors.reconstruction.ReconstructionDetector.fusion_statistics`):
    ``(mean, cov)`` of the residual (D_spectral) and of the spatial stage's source (its
    principal components), and the residual's band energies (the paper variant)."""

    residual: tuple[np.ndarray, np.ndarray]
    source: tuple[np.ndarray, np.ndarray]
    energy: np.ndarray


def finite_moments(data: da.Array):
    """Mean and covariance (normalised by N, float64) of the finite pixels of (y, x, B)."""
    m = cube_moments(make_cube(data.astype(np.float32)))
    if m.n < 2:
        raise ParameterError("fewer than 2 valid pixels: no statistics to fuse")
    return m.mean, m.cov


def spectral_map(residual, moments: tuple[np.ndarray, np.ndarray] | None = None) -> da.Array:
    """Lazy D_spectral: RX of each residual pixel against the residual's ``(mean, cov)``
    (default: streamed over the residual), scored as the RX detector scores by default:
    float64 statistics, a float32 triangular product per pixel (no GIL). The residual's
    covariance is well conditioned (10³–10⁵ on the shared scenes): scores within 4e-5 of
    the float64 product's, the same AUC (docs/performance.md, benchmark 10)."""
    lazy = _lazy(residual)
    mean, tri = spectral_factors(finite_moments(lazy) if moments is None else moments)
    return lazy.map_blocks(rx_block, mean, tri, drop_axis=2, dtype=np.float32,
                           meta=np.empty((0, 0), np.float32))


def spectral_factors(moments: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, R)`` of D_spectral from the residual's ``(mean, cov)``: R the float32
    upper-triangular factor (Fortran order) of its pseudo-inverse, as :func:`rx_block`
    takes it."""
    mean, cov = moments
    return mean, np.asfortranarray(triangular_factor(whitening(cov)[0]), dtype=np.float32)


def spectral_scores(residual: np.ndarray, mean: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """D_spectral ``(n, 1)`` of ``n`` residual pixels ``(n, B)``, as :func:`spectral_map`
    scores them (for a network's batches, :func:`hsad.engine.infer_batches`'s ``reduce``)."""
    return rx_block(residual[:, None, :], mean, tri)


#: largest tile edge (pixels, without the halo) of the attribute filters: axes longer
#: than twice this are cut into tiles of this to twice this. The largest area's halo (224
#: pixels a side) is filtered again by every tile, and the tree's cost per pixel grows only
#: mildly with the image (0.3–0.45 µs a pixel and polarity at five areas, 1472² to 2496²),
#: so the tiles are as large as the memory budget allows up to this edge: a 2048² scene is
#: filtered whole under a 1 GB budget (docs/performance.md, benchmark 16)
FILTER_EDGE = 2048


def pc_basis(mean: np.ndarray, cov: np.ndarray, k: int,
             standardise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, basis)`` of the first ``k`` principal components of ``(mean, cov)``
    (standardised bands: the scale is folded into ``basis``), as :func:`project` takes
    them; each component's sign makes its largest loading positive."""
    scale = np.sqrt(np.clip(np.diag(cov), 0, None)) if standardise else np.ones(len(mean))
    scale = np.where(scale > 0, scale, 1.0)
    values, vectors = np.linalg.eigh(cov / np.outer(scale, scale))
    basis = vectors[:, np.argsort(values)[::-1][:k]]
    basis *= np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])])
    return mean, basis / scale[:, None]


def components_map(data, k: int, standardise: bool = True,
                   moments: tuple[np.ndarray, np.ndarray] | None = None) -> da.Array:
    """Lazy ``(y, x, k)`` principal-component images (as ``fusion.principal_components``),
    of ``data``'s ``(mean, cov)`` (default: streamed over ``data``)."""
    lazy = _lazy(data)
    mean, basis = pc_basis(*(finite_moments(lazy) if moments is None else moments), k,
                           standardise)
    return lazy.map_blocks(project, mean, basis,
                           chunks=lazy.chunks[:2] + ((basis.shape[1],),), dtype=np.float64,
                           meta=np.empty((0, 0, 0), np.float64))


def _scaled(band: da.Array, lo: float, hi: float) -> da.Array:
    """``(band − lo)/(hi − lo)`` as ``fusion.quantise``/``normalise_map`` compute it."""
    return (band - lo) / (hi - lo) if hi > lo else da.zeros_like(band)


def _band_summary(bands: da.Array) -> tuple[da.Array, da.Array, da.Array]:
    """Lazy per-band min and max of the finite values of ``bands`` (y, x, k), and their count
    of other values: computed in the sweep that makes ``bands`` (:func:`materialise_with`)."""
    lo, hi = finite_extremes(bands, axis=(0, 1))
    return lo, hi, (~da.isfinite(bands)).sum(axis=(0, 1))


def _band_stats(bands: da.Array, summary=None) -> list[tuple[float, float, float]]:
    """Per band of ``bands`` (y, x, k) ``(lo, hi, fill)``: global min/max (``summary``, from
    :func:`_band_summary`; computed here when None) and the median of the scaled finite
    values, which nodata pixels take (computed only if there are)."""
    lo, hi, holes = dask.compute(*_band_summary(bands)) if summary is None else summary
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


def _paper_tile(block, *, n, stats, area, levels):
    """Mean attribute response ``f`` of the first ``n`` bands (channel 0) and the off-data
    mask (channel 1); other channels are padding."""
    bands = np.asarray(block, dtype=np.float64)[:, :, :n]
    out = np.zeros(block.shape[:2] + (block.shape[2],))
    quantised = _quantised_tile(bands, stats=stats, levels=levels)
    out[:, :, 0] = _response_tile(quantised, areas=(area,), scale=levels - 1 if levels else 1) / n
    out[:, :, 1] = ~np.isfinite(bands).all(axis=-1)
    return out


def _guided_tile(block, *, lo, hi, radius, eps):
    f, off = block[:, :, 0], block[:, :, 1] > 0
    guide = (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
    out = guided_filter(guide, f, radius, eps)
    out[off] = np.nan
    return out


def _average_rank(block, ordered, n):
    """``rankdata(…, "average") / n`` of a tile's values among the ``ordered`` finite values
    of the whole map: ties share the mean of their positions."""
    b = np.asarray(block, dtype=np.float64)
    lo = np.searchsorted(ordered, b, side="left")
    hi = np.searchsorted(ordered, b, side="right")
    return np.where(np.isfinite(b), (lo + hi + 1) / 2 / n, np.nan)


def _normalised(m: da.Array, lo: float, hi: float, method: str) -> da.Array:
    """``fusion.normalise_map`` of a (materialised) map, lazily, tile by tile.

    ``rank``: the map's finite values are sorted once (8 bytes a pixel, one graph key) and
    each tile looks its values up, which gives ``rankdata``'s average ranks exactly.
    """
    if method == "rank":
        values = np.asarray(m.compute(), dtype=np.float64).ravel()
        ordered = values[np.isfinite(values)]
        del values
        ordered.sort()
        if ordered.size == 0:
            return da.full_like(m, np.nan, dtype=np.float64)
        node = dask.delayed(ordered, name=f"sorted-{uuid.uuid4().hex}", traverse=False)
        return m.map_blocks(_average_rank, node, ordered.size, dtype=np.float64,
                            meta=np.empty((0,) * m.ndim, np.float64))
    span = hi - lo
    scaled = (m - lo) / span if span > 0 else da.zeros_like(m)
    return da.where(da.isfinite(m), scaled, np.nan)


def fusion_stages(fusion, residual, cube=None, *, memory_limit: str | int | None = None,
                  d_spectral=None, statistics: Statistics | None = None,
                  keep: dict[str, da.Array] | None = None,
                  components=None) -> dict[str, da.Array]:
    """:meth:`hsad.fusion.Fusion.stages` on tiles: lazy ``d_spectral``, ``d_spatial``
    (both materialised, see :func:`materialise`) and ``d_ss`` maps (float64, NaN off-data).

    Equal to the whole-scene result to float rounding: global statistics (moments, ranges,
    medians, band energies) are streamed over the tiles first; attribute filters and the
    guided filter then run on tiles with a halo of ``area − 1 (+ 2·radius)`` pixels.

    One sweep computes D_spectral and the few bands the spatial stage filters (principal
    components, or the paper's minimum-energy residual bands) together, so a residual that
    is recomputed per pass is computed once more for the statistics only, and not at all
    when ``statistics`` are given. ``keep``: other lazy arrays to compute in that sweep
    (e.g. a network's score terms), returned materialised under their names.
    ``components``: the cube's principal-component images when the caller computes them
    in its own sweep (a network reading the same windows; AED variants with
    ``pc_source="cube"``).
    """
    fusion = fusion.resolved()
    area, levels = int(fusion.area), int(fusion.levels)
    radius, eps = int(fusion.radius), float(fusion.eps)
    res = _lazy(residual)
    d_spec = (spectral_map(res, statistics and statistics.residual) if d_spectral is None
              else _lazy_map(d_spectral))
    if fusion.variant == "paper":
        energy = band_energy(res) if statistics is None else statistics.energy
        idx = np.sort(np.argsort(energy, kind="stable")[:int(fusion.n_components)])
        source = res[:, :, idx]
    elif components is not None:
        source = _lazy(components)
    else:
        if cube is None and fusion.pc_source == "cube":
            raise ParameterError("fusion variant 'aed' with pc_source='cube' needs the cube")
        source = components_map(res if fusion.pc_source == "residual" else _lazy(cube),
                                int(fusion.n_components),
                                moments=statistics and statistics.source)
    keep = dict(keep or {})
    # the sweep also takes the ranges the filters and the normalisation need
    (d_spec, source, *kept), (p_lo, p_hi, *summary) = materialise_with(
        [d_spec, source, *keep.values()], [*finite_extremes(d_spec), *_band_summary(source)],
        memory_limit=memory_limit)
    stats = _band_stats(source, summary)
    if fusion.variant == "paper":
        if len(idx) < 2:  # room for the two output channels
            source = da.concatenate([source, da.zeros_like(source)], axis=2)
        halo = attribute_halo(area)
        f_off = map_halo(_paper_tile, halo_tiles(source, halo, memory_limit), halo,
                         n=len(idx), stats=stats, area=area, levels=levels)
        (f_off,), (lo, hi) = materialise_with([f_off], finite_extremes(f_off[:, :, 0]),
                                              memory_limit=memory_limit)
        lo, hi = value_range(lo, hi)
        d_spat = map_halo(_guided_tile, f_off, guided_halo(radius), drop_axis=2, lo=lo, hi=hi,
                          radius=radius, eps=eps)
    else:
        d_spat = _aed_filtered(source, fusion, memory_limit, stats)
    if fusion.spectral_tophat:  # D_SS weights D_spectral's area top-hat at 1 − λ
        # its filters run in the same pass as the spatial stage's guided filter
        tophat = _tophat_filtered(d_spec, fusion, memory_limit)
        (d_spat, spec_term), (s_lo, s_hi, p_lo, p_hi) = materialise_with(
            [d_spat, tophat], [*finite_extremes(d_spat), *finite_extremes(tophat)],
            memory_limit=memory_limit)
        spec_term = spec_term.rechunk(d_spec.chunks)  # D_SS keeps D_spectral's tiles
    else:
        (d_spat,), (s_lo, s_hi) = materialise_with([d_spat], finite_extremes(d_spat),
                                                   memory_limit=memory_limit)
        spec_term = d_spec
    (s_lo, s_hi), (p_lo, p_hi) = value_range(s_lo, s_hi), value_range(p_lo, p_hi)
    if s_lo == s_hi and p_lo < p_hi:  # finite, flat: the filters found no structure at all
        areas = ", ".join(map(str, fusion.areas()))
        warnings.warn(f"the spatial stage D_spatial is flat (every valid pixel {s_lo:g}): no "
                      f"structure of the scene is smaller than the filters' areas ({areas} "
                      "pixels), so D_SS ranks by the spectral term alone; give a smaller area "
                      "(-p area=N or target_size_m) or a larger scene",
                      DegenerateDataWarning, stacklevel=2)
    lam = float(fusion.lam)
    d_ss = (lam * _normalised(d_spat, s_lo, s_hi, fusion.norm)
            + (1.0 - lam) * _normalised(spec_term, p_lo, p_hi, fusion.norm))
    return {"d_spectral": d_spec, "d_spatial": d_spat, "d_ss": d_ss,
            **dict(zip(keep, kept, strict=True))}


def aed_map(source, fusion) -> da.Array:
    """AED-style D_spatial of ``source`` (y, x, B; NaN off-data): attribute filters on
    its principal-component images, guided by the first, summed (halo tiles). The filters
    run when it is called (their responses are kept, :func:`_aed_filtered`); the guided
    filter is lazy."""
    fusion = fusion.resolved()
    return _aed_filtered(components_map(source, int(fusion.n_components)), fusion)


def _aed_filtered(comps: da.Array, fusion, memory_limit=None, stats=None) -> da.Array:
    """The AED filters on principal-component images ``comps`` (y, x, k) in two tiled
    stages: the attribute responses of the quantised components, summed over the areas
    and components, on tiles with the largest area's halo and as large as the budget allows
    (the filters need little memory a pixel, and every tile filters its halo again); then
    the guided filter, on tiles with its own small halo, each reading its window of the
    first component and the responses, which are computed and kept here (in memory or
    spilled, :func:`keep_with`; on a cluster both stages stay lazy). ``stats``:
    :func:`_band_stats` of ``comps`` when the caller has them."""
    radius, levels = int(fusion.radius), int(fusion.levels)
    areas = fusion.areas()
    stats = _band_stats(comps) if stats is None else stats
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
    stores, _ = keep_with([first, total], memory_limit=memory_limit)
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


def _tophat_filtered(d_spec: da.Array, fusion, memory_limit=None) -> da.Array:
    """Lazy area top-hat of a (materialised) D_spectral map (:func:`hsad.fusion.spectral_tophat`)
    on tiles with the largest area's halo, as large as the budget allows."""
    areas, levels = fusion.areas(), int(fusion.levels)
    bands = d_spec[:, :, None]
    qtype = _quantised_dtype(levels)
    halo = attribute_halo(max(areas))
    tiles = halo_tiles(bands, halo, memory_limit, max_edge=FILTER_EDGE,
                       pixel_bytes=_tophat_bytes(d_spec.dtype, qtype, len(areas)))
    return map_halo(_tophat_tile, tiles, halo, drop_axis=2, stats=_band_stats(bands),
                    areas=areas, levels=levels)


def _lazy_map(m) -> da.Array:
    data = m.data if isinstance(m, xr.DataArray) else m
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data))


__all__ = ["Statistics", "aed_map", "attribute_halo", "components_map", "finite_moments",
           "fusion_stages", "guided_halo", "pc_basis", "spectral_factors",
           "spectral_map", "spectral_scores"]
