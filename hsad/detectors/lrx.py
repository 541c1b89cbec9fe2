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
pixels of a row are solved at once with a stacked Cholesky. With ``pca=k`` the cube is first
projected on its k leading principal components (fitted on the whole scene's streamed
moments), which makes B = k and everything far cheaper.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.cube import good_band_mask, map_like
from hsad.detectors.base import BaseDetector
from hsad.engine.ring_features import RingStatistics
from hsad.engine.stats import check_scales, covariance_rank, scene_moments
from hsad.engine.windows import (
    check_dtype,
    check_nonnegative,
    check_pca,
    check_rings,
    check_windows,
    map_windows,
    nan_filled,
    padded,
    projected,
    single_threaded_linalg,
)
from hsad.errors import DegenerateDataWarning

#: relative floor added to every local covariance's diagonal (times tr(Σ_scene)/B)
FLOOR = 1e-10
#: ring pixels per dimension below which "all bands" is reduced automatically
SAMPLES_PER_DIMENSION = 4


def auto_dimension(n_bands: int, pca: int | None, n_ring: int) -> int:
    """Dimension used for rings of ``n_ring`` pixels: ``pca`` unless n_ring ≤ pca (every
    local covariance singular); all bands unless fewer than SAMPLES_PER_DIMENSION ring
    pixels per band. Reduced, it is n_ring // SAMPLES_PER_DIMENSION (at least 1)."""
    target = max(1, min(n_bands, n_ring // SAMPLES_PER_DIMENSION))
    if pca is None:
        return min(n_bands, target)
    pca = min(int(pca), n_bands)
    return pca if n_ring > pca else min(pca, target)


def _pinv_quadratic(moments: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(y − μ)ᵀ (Σ + δI)⁺ (y − μ)`` through an eigendecomposition, from bordered second
    moments ``[[S/n + δI, μ], [μᵀ, 1]]`` (lower triangles, (m, ≥ B+1, ≥ B+1))."""
    b = y.shape[1]
    second = np.tril(moments[:, :b, :b])
    second = second + np.tril(second, -1).transpose(0, 2, 1)
    mean = moments[:, b, :b]
    lam, vec = np.linalg.eigh(second - mean[:, :, None] * mean[:, None, :])
    proj = np.einsum("mbk,mb->mk", vec, y - mean)
    tol = 1e-12 * np.abs(lam).max(axis=1, keepdims=True)
    inv = np.where(lam > tol, 1.0 / np.where(lam > tol, lam, 1.0), 0.0)
    return np.einsum("mk,mk->m", proj * inv, proj)


#: bytes of the matrices per ``np.linalg.cholesky`` call, assembled just before it: a
#: group's matrices and factors stay in cache (32 matrices at 193 bands), where a row's
#: worth (30 MB) went through memory three times; with few dimensions (pca=5) a group is a
#: whole row, as the numpy calls per group, not the arithmetic, are then the cost.
#: (LAPACK's dpotrf in place, one call per pixel, saves numpy's copy but hands the GIL back
#: and forth 100 times a row: two tiles then ran 1.5× slower side by side, measured.)
CHOLESKY_BYTES = 10 * 2**20


def cholesky_group(bands: int) -> int:
    """Pixels per Cholesky group: (B+2)×(B+2) float64 matrices within CHOLESKY_BYTES."""
    return max(1, CHOLESKY_BYTES // (8 * (bands + 2) ** 2))


def _mahalanobis_rows(stats: RingStatistics, sums: np.ndarray, kept: np.ndarray,
                      y: np.ndarray, n: np.ndarray, mean: np.ndarray, delta: np.ndarray,
                      buffer: np.ndarray) -> np.ndarray:
    """``(y − μ)ᵀ (Σ + δI)⁻¹ (y − μ)`` for the pixels ``kept`` of a row of ring ``sums``.

    Groups of ``len(buffer)`` pixels at a time (:func:`cholesky_group`), in ``buffer``
    (reused from row to row: its pages stay mapped and in cache): G =
    [[S/n + δI, μ], [μᵀ, 1]] from :meth:`RingStatistics.moments`, then one Cholesky of
    [[G, z], [zᵀ, c]] with z = [y; 1] gives L⁻¹z as its last row, and ‖L⁻¹z‖² = zᵀG⁻¹z =
    1 + (y − μ)ᵀ(Σ + δI)⁻¹(y − μ): neither Σ nor a triangular solve is needed. c =
    2‖y − μ‖²/δ + 2 exceeds zᵀG⁻¹z because λ_min(Σ + δI) ≥ δ, which keeps the bordered
    matrix positive definite. ``np.linalg.cholesky`` reads the lower triangle only.
    Pixels with δ = 0, and groups holding a numerically indefinite matrix, take an
    eigendecomposition (pseudo-inverse) instead.
    """
    m, b = y.shape
    resid = y - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        corner = 2.0 * np.einsum("mb,mb->m", resid, resid) / delta + 2.0
    whole = kept.size == sums.shape[0]  # slices, not copies, of the row's sums
    diag = np.arange(b)
    out = np.empty(m)
    group = buffer.shape[0]
    for lo in range(0, m, group):
        hi = min(m, lo + group)
        pixels = slice(lo, hi) if whole else kept[lo:hi]
        g = stats.moments(sums, pixels, n[lo:hi], mean[lo:hi], buffer[: hi - lo])
        g[:, diag, diag] += delta[lo:hi, None]
        g[:, b + 1, :b] = y[lo:hi]
        g[:, b + 1, b] = 1.0
        g[:, b + 1, b + 1] = corner[lo:hi]
        try:
            if not np.isfinite(corner[lo:hi]).all():
                raise np.linalg.LinAlgError("δ = 0")
            border = np.linalg.cholesky(g)[:, b + 1, : b + 1]
            out[lo:hi] = np.maximum(np.einsum("mb,mb->m", border, border) - 1.0, 0.0)
        except np.linalg.LinAlgError:  # the group's pixels take the pseudo-inverse
            out[lo:hi] = _pinv_quadratic(g, y[lo:hi])
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
    out = np.full((rows - 2 * h, cols - 2 * h), np.nan)
    stats = RingStatistics(x, valid, inner, outer)
    buffer = np.empty((min(cholesky_group(bands), cols), bands + 2, bands + 2))
    with single_threaded_linalg():
        for r, c, n, mean, sums in stats:
            w = n.shape[0]
            ok = (n > 0.5) & (valid[r, c : c + w] > 0)
            if not ok.any():
                continue
            kept = np.flatnonzero(ok)
            n, mean = n[kept], mean[kept]
            # Σ = S/n − μμᵀ: tr Σ = tr(S/n) − ‖μ‖²
            trace = stats.trace(sums, kept, n) - np.einsum("mb,mb->m", mean, mean)
            delta = ridge * trace / bands + floor
            out[r - h, c - h + kept] = _mahalanobis_rows(stats, sums, kept, x[r, c + kept],
                                                         n, mean, delta, buffer)
    return out


class LocalRX(BaseDetector):
    """Local (dual-window) RX anomaly detector.

    Defaults (7, 21), ``pca=5``, ``ridge=1e-2`` were chosen by leave-one-scene-out over the
    10 benchmark scenes (``benchmarks/loo_local_defaults.py``, docs/detectors.md).

    Parameters
    ----------
    inner, outer : odd widths in pixels of the guard and outer windows (inner < outer).
    pca : number of leading principal components to keep first (None = all good bands; all
        of them when the scene has fewer good bands). When a full ring has no more pixels
        than that dimension (all bands: fewer than 4 per band), it is reduced automatically
        to ring pixels // 4 (warning; recorded in ``reduction_`` and the map's attrs).
    ridge : relative regularisation: ``ridge·tr(Σ)/B`` is added to each local covariance's
        diagonal, on top of the tiny ``floor_`` that keeps singular windows solvable.
    dtype : dtype of the returned map; window statistics and solves always run in float64.
    """

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

    def _validate(self, bands: int) -> None:
        check_windows(self.name, self.inner, self.outer)
        check_nonnegative(self.name, "ridge", self.ridge)
        check_dtype(self.name, self.dtype)
        check_pca(self.name, self.pca)

    def _dimension(self, n_bands: int) -> int:
        """Dimension used (``n_components_``), reduced when the rings are too small; warns."""
        requested = n_bands if self.pca is None else min(int(self.pca), n_bands)
        n_ring = self.outer**2 - self.inner**2
        k = auto_dimension(n_bands, self.pca, n_ring)
        self.reduction_ = None
        if k < requested:
            what = "bands" if self.pca is None else "components"
            self.reduction_ = (f"{n_ring}-pixel rings for {requested} {what}: reduced "
                               f"automatically to {k} principal components")
            warnings.warn(f"{self.name} ({n_ring}-pixel rings): only {n_ring} valid pixels for "
                          f"{requested} {what} (fewer than {SAMPLES_PER_DIMENSION} per dimension): "
                          "local covariances would be (near-)singular and the map poor, so "
                          f"the cube is reduced automatically to its {k} leading principal "
                          f"components; set pca= below {n_ring} or use larger windows to "
                          "choose", DegenerateDataWarning, stacklevel=3)
        return k

    def fit(self, cube: xr.DataArray) -> LocalRX:
        """Validate; stream the scene's moments for the PCA basis and the covariance floor."""
        bands = good_band_mask(cube)
        n_bands = int(bands.sum())
        self._validate(n_bands)
        path = cube.attrs.get("source_path")
        moments = scene_moments(cube, self.name)
        k = self._dimension(n_bands)
        project = self.pca is not None or k < n_bands
        covariance_rank(moments.cov, moments.n, self.name, path)  # warns when singular
        self.bands_ = bands
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
        check_rings(cube, self.inner, self.outer, self.name)
        return self

    def _project(self, cube: xr.DataArray):
        """The good bands (float64, NaN on nodata), or their leading principal components."""
        if self.components_ is None:
            return nan_filled(cube, self.bands_)
        return projected(cube, self.bands_, self.mean_, self.components_)

    def score(self, cube: xr.DataArray) -> xr.DataArray:
        """Lazy ``(y, x)`` map of local RX scores, NaN on nodata pixels."""
        self._check_fitted("floor_", "n_components_")
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
        attrs = {"method": self.name, "hsad_dimension": int(self.n_components_)}
        if self.reduction_:
            attrs["hsad_reduction"] = self.reduction_
        return map_like(cube, scores, name="score", attrs=attrs)
