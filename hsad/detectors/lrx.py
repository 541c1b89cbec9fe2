"""Local dual-window RX: Mahalanobis distance of each pixel to its own ring background.

For a pixel y with ring R (``outer`` window minus the ``inner`` guard window, clipped at the
image edge, nodata pixels left out; n pixels):

    μ = (1/n) Σ_R x,   Σ = (1/n) Σ_R (x − μ)(x − μ)ᵀ,   δ = ridge·tr(Σ)/B + floor
    LRX(y) = (y − μ)ᵀ (Σ + δ I)⁻¹ (y − μ)

``floor`` = 1e-10·tr(Σ_scene)/B keeps singular and constant windows solvable. When a full
ring holds no more pixels than the dimensions (n ≤ k; with all bands already when n < 4B),
the cube is reduced automatically to its n // 4 leading principal components, with a
warning and a record in ``reduction_`` and the map's attrs. Sums of x and of x xᵀ over
every ring come from running box sums (vectorised, streamed row by row in float64), then all
pixels of a row are solved at once with a stacked Cholesky (the block kernel:
:func:`hsad.engine.ring_rx.lrx_block`). With ``pca=k`` the cube is first
projected on its k leading principal components (fitted on the whole scene's streamed
moments), which makes B = k and everything far cheaper.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad.cube import good_band_mask, map_like
from hsad.detectors.base import BaseDetector
from hsad.engine.covariance import PIXELS_PER_DIRECTION, check_scales, covariance_rank
from hsad.engine.data_checks import scene_moments
from hsad.engine.ring_rx import MIN_RING_PIXELS, lrx_block
from hsad.engine.windows import (
    check_dtype,
    check_pca,
    check_ridge,
    check_rings,
    check_windows,
    map_windows,
    median_ring,
    nan_filled,
    projected,
)
from hsad.errors import DegenerateDataWarning

#: relative floor added to every local covariance's diagonal (times tr(Σ_scene)/B)
FLOOR = 1e-10
#: ring pixels per dimension below which "all bands" is reduced automatically: the count
#: below which global RX warns too (:data:`hsad.engine.covariance.PIXELS_PER_DIRECTION`)
SAMPLES_PER_DIMENSION = PIXELS_PER_DIRECTION

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


def auto_dimension(n_bands: int, pca: int | None, n_ring: int) -> int:
    """Dimension used for rings of ``n_ring`` pixels: ``pca`` unless n_ring ≤ pca (every
    local covariance singular); all bands unless fewer than SAMPLES_PER_DIMENSION ring
    pixels per band. Reduced, it is n_ring // SAMPLES_PER_DIMENSION (at least 1)."""
    target = max(1, min(n_bands, n_ring // SAMPLES_PER_DIMENSION))
    if pca is None:
        return min(n_bands, target)
    pca = min(int(pca), n_bands)
    return pca if n_ring > pca else min(pca, target)


class LocalRX(BaseDetector):
    """Local (dual-window) RX anomaly detector.

    Defaults (7, 21), ``pca=5``, ``ridge=1e-2`` were chosen by leave-one-scene-out over the
    10 benchmark scenes (``benchmarks/loo_local_defaults.py``, docs/detectors.md).

    Parameters
    ----------
    inner, outer : odd widths in pixels of the guard and outer windows (inner < outer ≤ 2001).
    pca : number of leading principal components to keep first (None = all good bands; all
        of them when the scene has fewer good bands). When a full ring has no more pixels
        than that dimension (all bands: fewer than 4 per band), it is reduced automatically
        to ring pixels // 4 (warning; recorded in ``reduction_`` and the map's attrs).
    ridge : relative regularisation: ``ridge·tr(Σ)/B`` is added to each local covariance's
        diagonal, on top of the tiny ``floor_`` that keeps singular windows solvable (at
        most 1e6).
    dtype : dtype of the returned map; window statistics and solves always run in float64.
    """

    #: read when scoring (``pca`` and the windows, whose ring size sets the fitted
    #: dimension, shape the fitted projection: fit again after them)
    score_params = frozenset({"ridge", "dtype"})

    name = "lrx"
    summary = "Local dual-window RX: Mahalanobis distance to each pixel's ring background"

    def __init__(
        self,
        inner: int = 7,
        outer: int = 21,
        pca: int | None = 5,
        ridge: float = 1e-2,
        dtype: str = "float32",
    ):
        self.inner = inner
        self.outer = outer
        self.pca = pca
        self.ridge = ridge
        self.dtype = dtype

    def check_params(self) -> LocalRX:
        """As :meth:`BaseDetector.check_params`, with the windows, ``pca``, ``ridge`` and
        ``dtype`` checked (every check ``fit`` makes that needs no scene)."""
        super().check_params()
        self._validate()
        return self

    def _validate(self) -> None:
        check_windows(self.name, self.inner, self.outer)
        check_ridge(self.name, self.ridge)
        check_dtype(self.name, self.dtype)
        check_pca(self.name, self.pca)

    def _dimension(self, n_bands: int, shape: tuple[int, int]) -> int:
        """Dimension used (``n_components_``), reduced when the rings are too small (also
        when the ``shape`` of the scene clips every ring: a scene narrower than ``outer``);
        warns."""
        requested = n_bands if self.pca is None else min(int(self.pca), n_bands)
        rows, cols = (int(v) for v in shape)
        narrow = min(rows, cols) < self.outer
        n_ring = (median_ring(rows, cols, self.inner, self.outer) if narrow
                  else self.outer**2 - self.inner**2)
        k = auto_dimension(n_bands, self.pca, n_ring)
        self.reduction_ = None
        if k < requested:
            what = "bands" if self.pca is None else "components"
            self.reduction_ = (f"{n_ring}-pixel rings for {requested} {what}: reduced "
                               f"automatically to {k} principal components")
            clipped = (f" in the median, the {rows}x{cols} scene being narrower than the "
                       "outer window" if narrow else "")
            remedy = "a smaller inner window" if narrow else "larger windows"
            choose = f"set pca= below {n_ring} or " if n_ring > 1 else ""
            warnings.warn(f"{self.name} ({n_ring}-pixel rings{clipped}): only {n_ring} valid "
                          f"pixels for "
                          f"{requested} {what} (fewer than {SAMPLES_PER_DIMENSION} per dimension): "
                          "local covariances would be (near-)singular and the map poor, so "
                          f"the cube is reduced automatically to its {k} leading principal "
                          f"components; {choose}use {remedy} to choose",
                          DegenerateDataWarning, stacklevel=3)
        return k

    def fit(self, cube: CubeLike) -> Self:
        """Validate; stream the scene's moments for the PCA basis and the covariance floor."""
        bands = good_band_mask(cube)
        n_bands = int(bands.sum())
        self._validate()
        path = cube.attrs.get("source_path")
        moments = scene_moments(cube, self.name)
        # rings first: no valid ring anywhere is refused before a reduction is said
        check_rings(cube, self.inner, self.outer, self.name, minimum=MIN_RING_PIXELS)
        k = self._dimension(n_bands, cube.shape[:2])
        project = self.pca is not None or k < n_bands
        rank = covariance_rank(moments.cov, moments.n, self.name, path, warn=False)
        if not (project and k <= rank):  # else moot: the k leading components lie within
            covariance_rank(moments.cov, moments.n, self.name, path)  # its warnings
        self._remember_bands(cube)  # its bands and wavelengths, checked at score
        self.mean_ = moments.mean
        self.n_components_ = k
        lam, vec = np.linalg.eigh(moments.cov)
        if not project:
            self.components_ = None
            variance = np.trace(moments.cov) / moments.cov.shape[0]
        else:
            self.components_ = vec[:, ::-1][:, :k]
            self.explained_variance_ = lam[::-1][:k]
            variance = self.explained_variance_.mean()
        self.floor_ = FLOOR * max(float(variance), np.finfo(float).tiny)
        # the floor (1e-10 of the mean variance) and PCA both leave tiny bands out
        check_scales(np.diag(moments.cov), self.name, path)
        return self

    def _project(self, cube: xr.DataArray):
        """The good bands (float64, NaN on nodata), or their leading principal components."""
        if self.components_ is None:
            return nan_filled(cube, self.bands_)
        return projected(cube, self.bands_, self.mean_, self.components_)

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map of local RX scores, NaN on nodata pixels."""
        self._check_fitted("floor_", "n_components_")
        self._check_layout(cube)
        self._validate()
        inner, outer = check_windows(self.name, self.inner, self.outer)
        scores = map_windows(
            self._project(cube),
            lrx_block,
            outer // 2,
            dtype=check_dtype(self.name, self.dtype),
            inner=inner,
            outer=outer,
            ridge=float(self.ridge),
            floor=self.floor_,
        )
        attrs = {"method": self.name, "hsad_dimension": int(self.n_components_)}
        if self.reduction_:
            attrs["hsad_reduction"] = self.reduction_
        return map_like(cube, scores, name="score", attrs=attrs)
