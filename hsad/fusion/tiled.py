"""HADGAN's spatial–spectral fusion (:mod:`hsad.fusion`) on tiles, for scenes of any size.

Global statistics (moments, min/max, medians, band energies) are streamed over the tiles
first; the attribute filters and the guided filter (:mod:`hsad.fusion.filter_tiles`) then
run on tiles with halos of ``area − 1`` and ``2·radius`` pixels
(:func:`hsad.engine.map_halo`), so the maps equal the whole-scene ones. See
docs/performance.md for why the halo of the area opening/closing is exact.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np
import xarray as xr

from hsad.cube import make_cube
from hsad.detectors.rx import rx_block
from hsad.engine.blas import triangular_factor
from hsad.engine.covariance import BANDS_ADVICE, whitening
from hsad.engine.spill import materialise_with
from hsad.engine.stats import cube_moments
from hsad.engine.tiles import (
    finite_extremes,
    halo_tiles,
    map_halo,
    value_range,
)
from hsad.engine.windows import project
from hsad.errors import DegenerateDataWarning, ParameterError
from hsad.fusion import band_energy
from hsad.fusion.filter_tiles import (
    aed_filtered,
    attribute_halo,
    band_stats,
    band_summary,
    guided_halo,
    guided_tile,
    paper_tile,
    tophat_filtered,
)
from hsad.lazy_modules import moved_names


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


def finite_moments(data: da.Array, counted: bool = False):
    """Mean and covariance (normalised by N, float64) of the finite pixels of (y, x, B),
    and with ``counted`` their number too."""
    m = cube_moments(make_cube(data.astype(np.float32)))
    if m.n < 2:
        raise ParameterError("fewer than 2 valid pixels (data in every good band): no "
                             "statistics to score them against")
    return (m.mean, m.cov, m.n) if counted else (m.mean, m.cov)


def spectral_map(residual, moments: tuple[np.ndarray, np.ndarray] | None = None) -> da.Array:
    """Lazy D_spectral: RX of each residual pixel against the residual's ``(mean, cov)``
    (default: streamed over the residual), scored as the RX detector scores by default:
    float64 statistics, a float32 triangular product per pixel (no GIL). The residual's
    covariance is well conditioned (10³–10⁵ on the shared scenes): scores within 4e-5 of
    the float64 product's, the same AUC (docs/performance.md, benchmark 10).

    Statistics streamed over the residual are those of the pixels scored: a residual whose
    pixels determine its covariance exactly (every score n − 1) is refused, and one of
    fewer than 4 pixels a band warns (:func:`hsad.engine.covariance.check_covariance`)."""
    lazy = _lazy(residual)
    if moments is None:
        mean, cov, n = finite_moments(lazy, counted=True)
        mean, tri = spectral_factors((mean, cov), n=n)
    else:
        mean, tri = spectral_factors(moments)
    return lazy.map_blocks(rx_block, mean, tri, drop_axis=2, dtype=np.float32,
                           meta=np.empty((0, 0), np.float32))


def spectral_factors(moments: tuple[np.ndarray, np.ndarray],
                     n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, R)`` of D_spectral from the residual's ``(mean, cov)``: R the float32
    upper-triangular factor (Fortran order) of its pseudo-inverse, as :func:`rx_block`
    takes it. ``n``: the count of the pixels the moments come from, when they are the
    pixels scored (checked as global RX checks its scene)."""
    mean, cov = moments
    white = whitening(cov, n=n, what="D_spectral (RX of the network's residual)",
                      scores_its_pixels=n is not None, advice=BANDS_ADVICE)[0]
    return mean, np.asfortranarray(triangular_factor(white), dtype=np.float32)


def spectral_scores(residual: np.ndarray, mean: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """D_spectral ``(n, 1)`` of ``n`` residual pixels ``(n, B)``, as :func:`spectral_map`
    scores them (for a network's batches, :func:`hsad.engine.infer_batches`'s ``reduce``)."""
    return rx_block(residual[:, None, :], mean, tri)


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
        [d_spec, source, *keep.values()], [*finite_extremes(d_spec), *band_summary(source)],
        memory_limit=memory_limit, desc="network, D_spectral and components")
    stats = band_stats(source, summary)
    if fusion.variant == "paper":
        if len(idx) < 2:  # room for the two output channels
            source = da.concatenate([source, da.zeros_like(source)], axis=2)
        halo = attribute_halo(area)
        f_off = map_halo(paper_tile, halo_tiles(source, halo, memory_limit), halo,
                         n=len(idx), stats=stats, area=area, levels=levels)
        (f_off,), (lo, hi) = materialise_with([f_off], finite_extremes(f_off[:, :, 0]),
                                              memory_limit=memory_limit,
                                              desc="spatial filters")
        lo, hi = value_range(lo, hi)
        d_spat = map_halo(guided_tile, f_off, guided_halo(radius), drop_axis=2, lo=lo, hi=hi,
                          radius=radius, eps=eps)
    else:
        d_spat = aed_filtered(source, fusion, memory_limit, stats)
    if fusion.spectral_tophat:  # D_SS weights D_spectral's area top-hat at 1 − λ
        # its filters run in the same pass as the spatial stage's guided filter
        tophat = tophat_filtered(d_spec, fusion, memory_limit)
        (d_spat, spec_term), (s_lo, s_hi, p_lo, p_hi) = materialise_with(
            [d_spat, tophat], [*finite_extremes(d_spat), *finite_extremes(tophat)],
            memory_limit=memory_limit, desc="D_spatial")
        spec_term = spec_term.rechunk(d_spec.chunks)  # D_SS keeps D_spectral's tiles
    else:
        (d_spat,), (s_lo, s_hi) = materialise_with([d_spat], finite_extremes(d_spat),
                                                   memory_limit=memory_limit,
                                                   desc="D_spatial")
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
    its principal-component images, guided by the first, summed (halo tiles). The
    components are computed and kept first, with their ranges, in one pass (the medians
    that fill a scene's nodata pixels then read them, not the scene again), the filters
    when it is called (their responses are kept, :func:`aed_filtered`); the guided filter
    is lazy."""
    fusion = fusion.resolved()
    comps = components_map(source, int(fusion.n_components))
    (comps,), summary = materialise_with([comps], band_summary(comps), desc="components")
    return aed_filtered(comps, fusion, stats=band_stats(comps, summary))


def _lazy_map(m) -> da.Array:
    data = m.data if isinstance(m, xr.DataArray) else m
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data))


#: names moved to :mod:`hsad.fusion.filter_tiles` in 0.3.1, still served here (no warning)
MOVED = {n: "hsad.fusion.filter_tiles" for n in (
    "FILTER_EDGE", "check_filter_budget")}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.fusion.filter_tiles import FILTER_EDGE as FILTER_EDGE
    from hsad.fusion.filter_tiles import check_filter_budget as check_filter_budget

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "Statistics", "aed_map", "attribute_halo", "components_map",
           "finite_moments", "fusion_stages", "guided_halo", "pc_basis", "spectral_factors",
           "spectral_map", "spectral_scores"]
