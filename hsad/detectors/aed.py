"""AED-style spatial detector: HADGAN's D_spatial on its own.

The scene's good bands are standardised and projected on their ``n_components`` leading
principal components; each component image goes through an area opening and closing (the
attribute filter: bright or dark structures smaller than ``area`` pixels respond), the
responses are smoothed by a guided filter led by the first component, and summed:

    D_spatial(p) = Σ_i GF_PC1( mean_a |PC_i − O_a(PC_i)| + |C_a(PC_i) − PC_i| )(p)

over the areas a = 9, 25, 49, 121, 225 (``variant="multiscale"``, the default) or the single
``area`` (``variant="aed"``, Kang et al.'s detector).

No network is involved: this is the map that HADGAN's and f-AnoGAN's default fusion
(``fusion="multiscale"``, ``pc_source="cube"``) weights by λ, offered as a detector so that users
can see what the network adds. ``area`` encodes an assumed target size: objects larger than
``area`` pixels are filtered out and score low (docs/hadgan.md: why the default averages
several areas).
Streams on halo tiles (``area − 1 + 2·radius`` pixels) with global statistics first.

Reference: X. Kang, X. Zhang, S. Li, K. Li, J. Li, J. A. Benediktsson, "Hyperspectral anomaly
detection with attribute and edge-preserving filters", IEEE TGRS 55(10), 2017.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import xarray as xr

from hsad.cube import good_band_mask, map_like, valid_mask
from hsad.detectors.base import BaseDetector
from hsad.detectors.offset_check import check_offset
from hsad.engine.blas import working_scale
from hsad.engine.covariance import BANDS_ADVICE, covariance_rank
from hsad.engine.data_checks import scene_moments
from hsad.errors import ParameterError
from hsad.fusion import LADDER, Fusion, area_tag, chosen_area, warn_below_ladder

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


class AED(BaseDetector):
    """Attribute and edge-preserving filters on principal components (D_spatial alone).

    Parameters (as the fusion stage's, same defaults)
    ----------
    variant : ``"multiscale"`` (default: responses averaged over the areas 9, 25, 49, 121,
        225 up to ``area``) or ``"aed"`` (the one area ``area``).
    n_components : principal components filtered.
    area : area threshold of the attribute filter in pixels (the assumed target size; the
        largest one for ``multiscale``). None: the variant's own, 225 for ``multiscale``
        and 36 for ``aed`` (:data:`hsad.fusion.VARIANT_DEFAULTS`).
    target_size_m : instead of ``area`` (not with it), the target size in metres (the side
        of a square): the area is ``ceil((target_size_m / pixel size)²)`` on each scene
        scored, which must have a projected CRS in metres
        (:func:`hsad.fusion.area_for_target`).
    levels : grey levels the components are quantised to (0: none).
    radius, eps : the guided filter's box radius and regularisation.
    """

    #: every hyperparameter is read when scoring (fit notes the bands only)
    score_params = frozenset({"variant", "n_components", "area", "levels", "radius", "eps",
                              "target_size_m"})

    name = "aed"
    summary = ("AED spatial detector: attribute + guided filters on principal components "
               "(Kang 2017); HADGAN's D_spatial alone")

    def __init__(self, variant: str = "multiscale", n_components: int = 4, area: int | None = None,
                 levels: int = 256, radius: int = 1, eps: float = 0.001,
                 target_size_m: float | None = None):
        self.variant = variant
        self.n_components = n_components
        self.area = area
        self.target_size_m = target_size_m
        self.levels = levels
        self.radius = radius
        self.eps = eps

    def _fusion(self, cube: xr.DataArray | None = None) -> Fusion:
        self._check_types()
        if self.variant not in ("aed", "multiscale"):
            raise ParameterError(f"{self.name}: variant must be 'aed' or 'multiscale', got "
                                 f"{self.variant!r}")
        area = chosen_area(self.name, self.area, self.target_size_m, cube)
        return Fusion(variant=self.variant, n_components=self.n_components, area=area,
                      levels=self.levels, radius=self.radius, eps=self.eps).validate(self.name)

    def check_params(self) -> AED:
        self._fusion()
        return self

    def fit(self, cube: CubeLike) -> Self:
        """Check the parameters; the components are each scene's own (nothing to learn, no
        background area: a pixel's response comes from the structures around it)."""
        from hsad.fusion.filter_tiles import check_filter_budget

        check_filter_budget(self._fusion(cube), cube.shape[:2])  # before any pass over data
        self.bands_ = good_band_mask(cube)
        return self

    def score(self, cube: CubeLike) -> xr.DataArray:
        """``(y, x)`` D_spatial map, NaN on nodata pixels: the attribute filters run here
        (their responses kept in memory or spilled under the memory budget), the guided
        filter lazily."""
        from hsad.fusion.tiled import aed_map

        self._check_fitted("bands_")
        self._check_bands(cube, self.bands_)
        moments = scene_moments(cube, self.name)  # the degeneracy rule: no map of nothing
        covariance_rank(moments.cov, moments.n, self.name, cube.attrs.get("source_path"),
                        advice=BANDS_ADVICE)  # it has no pca= or ridge=
        spread = np.sqrt(np.clip(np.diag(moments.cov), 0.0, None))
        scale = _working_scale(moments.mean, spread)  # 1 for data on any ordinary scale
        check_offset(moments.mean, spread, cube.dtype, self.name, cube.attrs.get("source_path"),
                     band_numbers=np.flatnonzero(good_band_mask(cube)) + 1, scale=scale)
        fusion = self._fusion(cube)
        warn_below_ladder(fusion, self.name)
        smallest = min(fusion.areas())
        if moments.n <= smallest:  # every component of every level is smaller: all alike
            floor = fusion.resolved().variant == "multiscale" and smallest == LADDER[0]
            smaller = (f"-p variant=aed -p area=N: the multi-scale ladder filters at least "
                       f"{LADDER[0]}" if floor else "-p area=N or target_size_m")
            raise ParameterError(
                f"{self.name}: only {moments.n} valid pixels, no more than the filters' area "
                f"of {smallest} pixels: the area opening and closing flatten the whole scene, "
                f"so every pixel would score alike; give a smaller area ({smaller}) or a "
                "larger scene", cube.attrs.get("source_path"))
        data = cube.data[:, :, self.bands_]
        data = (data * scale if scale != 1.0 else data).astype(np.float32)
        source = da.where(valid_mask(cube).data[:, :, None], data, np.nan)
        scores = aed_map(source, fusion)
        if isinstance(cube.data, da.Array):  # tiles below the halo were merged: the cube's
            scores = scores.rechunk(cube.data.chunks[:2])
        attrs = {"method": self.name, **area_tag(fusion, self.target_size_m is not None)}
        # float32 as every detector's map (and as written): the filters sum in float64
        return map_like(cube, scores.astype(np.float32), name="score", attrs=attrs)


def _working_scale(mean: np.ndarray, spread: np.ndarray) -> float:
    """A power of two that brings values of this per-band ``mean`` and ``spread`` near 1
    before they are cast to float32, where they lie beyond its range (float64 data beyond
    3e38) or below its normal numbers; 1 otherwise. The map does not change: the
    components are of standardised bands."""
    peak = float(np.max(np.concatenate([spread, np.abs(mean)]), initial=0.0))
    return working_scale(np.array([1.0 / peak])) if np.isfinite(peak) and peak > 0 else 1.0
