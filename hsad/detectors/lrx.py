"""Local dual-window RX: Mahalanobis distance of each pixel to its own ring background.

For a pixel y with ring R (``outer`` window minus the ``inner`` guard window, clipped at the
image edge, nodata pixels left out; n pixels):

    μ = (1/n) Σ_R x,   Σ = (1/n) Σ_R (x − μ)(x − μ)ᵀ,   δ = ridge·tr(Σ)/B + floor
    LRX(y) = (y − μ)ᵀ (Σ + δ I)⁻¹ (y − μ)

``floor`` = 1e-10·tr(Σ_scene)/B keeps singular and constant windows solvable; ``ridge``
defaults to 0. Sums of x and of x xᵀ over
every ring come from running box sums (vectorised, streamed row by row in float64), then all
pixels of a row are solved at once with a stacked Cholesky. With ``pca=k`` the cube is first
projected on its k leading principal components (fitted on the whole scene's streamed
moments), which makes B = k and everything far cheaper.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hsad.cube import good_band_mask, map_like
from hsad.detectors.base import BaseDetector
from hsad.engine.stats import check_covariance, check_scales, covariance_rank, scene_moments
from hsad.engine.windows import (
    check_dtype,
    check_nonnegative,
    check_rings,
    check_windows,
    map_windows,
    nan_filled,
    padded,
    ring_sums,
    single_threaded_linalg,
)
from hsad.errors import ParameterError

#: relative floor added to every local covariance's diagonal (times tr(Σ_scene)/B)
FLOOR = 1e-10


def _pinv_quadratic(aug: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """``rᵀ C⁺ r`` through an eigendecomposition; C in the lower triangle of ``aug``."""
    b = resid.shape[1]
    cov = np.tril(aug[:, :b, :b])
    cov = cov + np.tril(cov, -1).transpose(0, 2, 1)
    lam, vec = np.linalg.eigh(cov)
    proj = np.einsum("mbk,mb->mk", vec, resid)
    tol = 1e-12 * np.abs(lam).max(axis=1, keepdims=True)
    inv = np.where(lam > tol, 1.0 / np.where(lam > tol, lam, 1.0), 0.0)
    return np.einsum("mk,mk->m", proj * inv, proj)


def _mahalanobis_rows(aug: np.ndarray, resid: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``rᵀ C⁻¹ r`` per pixel; ``aug`` (m, B+1, B+1) holds C in its lower triangle.

    One Cholesky of the bordered matrix [[C, r], [rᵀ, c]] gives (L⁻¹r)ᵀ as its last row, so
    the score ‖L⁻¹r‖² needs no triangular solve. c = 2‖r‖²/δ + 1 exceeds rᵀC⁻¹r because
    λ_min(C) ≥ δ, which keeps the bordered matrix positive definite. ``np.linalg.cholesky``
    reads the lower triangle only. Pixels with δ = 0, or whose C is numerically indefinite,
    fall back to an eigendecomposition (pseudo-inverse).
    """
    b = resid.shape[1]
    aug[:, b, :b] = resid
    with np.errstate(divide="ignore", invalid="ignore"):
        aug[:, b, b] = 2.0 * np.einsum("mb,mb->m", resid, resid) / delta + 1.0
    out = np.empty(resid.shape[0])
    fast = np.isfinite(aug[:, b, b])
    if fast.any():
        try:
            row = np.linalg.cholesky(aug[fast])[:, b, :b]
            out[fast] = np.einsum("mb,mb->m", row, row)
        except np.linalg.LinAlgError:
            fast[:] = False
    slow = ~fast | ~np.isfinite(out)
    if slow.any():
        out[slow] = _pinv_quadratic(aug[slow], resid[slow])
    return out


def lrx_block(
    block: np.ndarray,
    inner: int,
    outer: int,
    ridge: float = 0.0,
    floor: float = 0.0,
    halo: int = 0,
) -> np.ndarray:
    """Local RX scores (float64) of a ``(rows, cols, B)`` block, NaN marking nodata.

    ``halo`` pixels on each side are context only (scores come back for the core,
    ``(rows − 2·halo, cols − 2·halo)``); windows are clipped where the block ends. A pixel
    that is nodata or has no valid ring pixel scores NaN.
    """
    h = outer // 2
    x, valid = padded(block, halo, h)
    rows, cols, bands = x.shape
    if valid.any():  # centring on the block mean limits cancellation in Σ = S/n − μμᵀ
        x = (x - x[valid > 0].mean(axis=0)) * valid[..., None]
    # features per pixel: [valid, x (B), lower triangle of x xᵀ row by row (B(B+1)/2)]
    start = 1 + bands + np.arange(bands + 1) * np.arange(1, bands + 2) // 2
    k = 1 + bands + bands * (bands + 1) // 2

    def features(r: int, c0: int, c1: int, out: np.ndarray) -> None:
        xr_ = x[r, c0:c1]
        out[:, 0] = valid[r, c0:c1]
        out[:, 1 : 1 + bands] = xr_
        for i in range(bands):
            np.multiply(xr_[:, i : i + 1], xr_[:, : i + 1], out=out[:, start[i] : start[i + 1]])

    out = np.full((rows - 2 * h, cols - 2 * h), np.nan)
    diag = np.arange(bands)
    with single_threaded_linalg():
        for r, c, sums in ring_sums(features, (rows, cols), k, inner, outer):
            w = sums.shape[0]
            ok = (sums[:, 0] > 0.5) & (valid[r, c : c + w] > 0)
            if not ok.any():
                continue
            s = sums[ok]
            inv_n = 1.0 / s[:, :1]
            mean = s[:, 1 : 1 + bands] * inv_n
            aug = np.empty((s.shape[0], bands + 1, bands + 1))
            for i in range(bands):  # Σ = S/n − μμᵀ, lower triangle, row i
                row = aug[:, i, : i + 1]
                np.multiply(s[:, start[i] : start[i + 1]], inv_n, out=row)
                row -= mean[:, i : i + 1] * mean[:, : i + 1]
            trace = aug[:, diag, diag].sum(axis=1)
            delta = ridge * trace / bands + floor
            aug[:, diag, diag] += delta[:, None]
            resid = x[r, c : c + w][ok] - mean
            out[r - h, c - h : c - h + w][ok] = _mahalanobis_rows(aug, resid, delta)
    return out


class LocalRX(BaseDetector):
    """Local (dual-window) RX anomaly detector.

    Parameters
    ----------
    inner, outer : odd widths in pixels of the guard and outer windows (inner < outer).
    pca : number of leading principal components to keep first (None = all good bands).
    ridge : relative regularisation: ``ridge·tr(Σ)/B`` is added to each local covariance's
        diagonal (default 0: only the tiny ``floor_``, which keeps singular windows solvable;
        on the ABU scenes any ridge ≥ 1e-6 lowered the all-band AUC).
    dtype : dtype of the returned map; window statistics and solves always run in float64.
    """

    name = "lrx"
    summary = "Local dual-window RX: Mahalanobis distance to each pixel's ring background"

    def __init__(
        self,
        inner: int = 5,
        outer: int = 15,
        pca: int | None = None,
        ridge: float = 0.0,
        dtype: str = "float32",
    ):
        self.inner = inner
        self.outer = outer
        self.pca = pca
        self.ridge = ridge
        self.dtype = dtype

    def _validate(self, bands: int) -> None:
        check_windows(self.name, self.inner, self.outer)
        check_nonnegative(self.name, "ridge", self.ridge)
        check_dtype(self.name, self.dtype)
        if self.pca is not None and (
            isinstance(self.pca, bool)
            or not isinstance(self.pca, (int, np.integer))
            or not 1 <= self.pca <= bands
        ):
            raise ParameterError(
                f"{self.name}: pca must be None or an integer in 1..{bands}, got {self.pca!r}"
            )

    def fit(self, cube: xr.DataArray) -> LocalRX:
        """Validate; stream the scene's moments for the PCA basis and the covariance floor."""
        bands = good_band_mask(cube)
        self._validate(int(bands.sum()))
        path = cube.attrs.get("source_path")
        moments = scene_moments(cube, self.name)
        if not self.ridge and self.pca is None:  # the floor alone regularises: say so
            covariance_rank(moments.cov, moments.n, self.name, path)
        k = int(bands.sum()) if self.pca is None else int(self.pca)
        n_ring = self.outer**2 - self.inner**2
        check_covariance(min(n_ring - 1, k), k, n_ring, f"{self.name} ({n_ring}-pixel rings)",
                         path)
        self.bands_ = bands
        self.mean_ = moments.mean
        lam, vec = np.linalg.eigh(moments.cov)
        if self.pca is None:
            self.components_ = None
            variance = np.trace(moments.cov) / moments.cov.shape[0]
        else:
            self.components_ = vec[:, ::-1][:, : self.pca]
            self.explained_variance_ = lam[::-1][: self.pca]
            variance = self.explained_variance_.mean()
        self.floor_ = FLOOR * max(float(variance), np.finfo(float).tiny)
        if self.pca is None:  # the floor is 1e-10 of the mean variance: it hides tiny bands
            check_scales(np.diag(moments.cov), self.name, path)
        check_rings(cube, self.inner, self.outer, self.name)
        return self

    def _project(self, cube: xr.DataArray):
        data = nan_filled(cube, self.bands_)
        if self.components_ is None:
            return data
        basis, mean = self.components_, self.mean_
        return data.map_blocks(
            lambda b: (b - mean) @ basis,
            chunks=data.chunks[:2] + ((basis.shape[1],),),
            dtype=np.float64,
        )

    def score(self, cube: xr.DataArray) -> xr.DataArray:
        """Lazy ``(y, x)`` map of local RX scores, NaN on nodata pixels."""
        self._check_fitted("floor_")
        self._check_bands(cube, self.bands_)
        self._validate(int(self.bands_.sum()))
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
        return map_like(cube, scores, name="score", attrs={"method": self.name})
