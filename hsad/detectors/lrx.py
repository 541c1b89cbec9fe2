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
    ring_sums,
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


#: matrices per ``np.linalg.cholesky`` call: its factors are allocated per call, and a
#: row's worth at once (30 MB at 100 pixels × 194 bands) comes as fresh pages that the
#: kernel zeroes each time, where a few matrices' worth (10 MB) is reused from the heap
CHOLESKY_GROUP = 32


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
            mats = aug if fast.all() else aug[fast]
            row = np.empty((mats.shape[0], b))
            for lo in range(0, mats.shape[0], CHOLESKY_GROUP):
                row[lo:lo + CHOLESKY_GROUP] = np.linalg.cholesky(
                    mats[lo:lo + CHOLESKY_GROUP])[:, b, :b]
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
    # one buffer for the rows' bordered covariances (w·(B+1)² values, 30 MB at 100 × 194
    # bands): a fresh one per row cost more in page faults than the Cholesky took
    buffer = np.empty((0, bands + 1, bands + 1))
    with single_threaded_linalg():
        for r, c, sums in ring_sums(features, (rows, cols), k, inner, outer):
            w = sums.shape[0]
            ok = (sums[:, 0] > 0.5) & (valid[r, c : c + w] > 0)
            if not ok.any():
                continue
            s = sums if ok.all() else sums[ok]
            inv_n = 1.0 / s[:, :1]
            mean = s[:, 1 : 1 + bands] * inv_n
            if buffer.shape[0] < s.shape[0]:
                buffer = np.empty((w, bands + 1, bands + 1))
            aug = buffer[: s.shape[0]]  # lower triangles only are written and read
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


def _centred_onto(block: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``(block − mean) @ basis``, BLAS on one thread (dask runs one tile per core)."""
    with single_threaded_linalg():
        return (block - mean) @ basis


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
        data = nan_filled(cube, self.bands_)
        if self.components_ is None:
            return data
        basis, mean = self.components_, self.mean_
        return data.map_blocks(_centred_onto, mean, basis,
                               chunks=data.chunks[:2] + ((basis.shape[1],),), dtype=np.float64)

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
