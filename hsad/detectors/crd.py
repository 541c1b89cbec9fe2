"""Collaborative-representation detector (CRD; Li & Du, IEEE TGRS 53(3), 2015).

Each pixel y (B bands) is represented by the n pixels x_k of its ring (``outer`` window minus
the ``inner`` guard window, clipped at the image edge, nodata left out), the columns of X_s:

    Γ = diag(‖y − x_1‖₂, …, ‖y − x_n‖₂)
    w = (X_sᵀ X_s + λ ΓᵀΓ)⁻¹ X_sᵀ y,        CRD(y) = ‖y − X_s w‖₂

Both X_sᵀX_s and ΓᵀΓ scale with the square of the data, so λ is scale-free and the data are
used as they are (no normalisation). Since D = λΓᵀΓ is diagonal, the residual is
y − X_s w = (I + X_s D⁻¹X_sᵀ)⁻¹ y: one B×B system per pixel instead of n×n, all pixels of a
row solved together. With ``pca=k`` the pixels are
first projected on the k leading principal directions of the scene covariance (x ↦ Vₖᵀx,
not centred, so the representation still sees the pixels' offset), which makes B = k.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad import stopping
from hsad.cube import good_band_mask, map_like
from hsad.detectors.base import BaseDetector
from hsad.detectors.crd_gram import crd_gram_block, row_strips, solve_stacks
from hsad.engine.covariance import check_scales
from hsad.engine.data_checks import scene_moments
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
    ring_offsets,
    single_threaded_linalg,
)
from hsad.errors import DegenerateDataWarning

#: budget for a row's stacks of ring pixels and B×B systems, in bytes
_BUDGET = 128 * 2**20

if TYPE_CHECKING:
    from hsad.cube.array_types import CubeLike


def _residuals(xs: np.ndarray, y: np.ndarray, dist2: np.ndarray, ring_ok: np.ndarray,
               lam: float) -> np.ndarray:
    """‖y − X_s w‖ per pixel: ``xs`` (m, n, B) ring pixels (nodata rows zero), ``y`` (m, B).

    With D = λ ΓᵀΓ, w = (X_sᵀX_s + D)⁻¹X_sᵀy = D⁻¹X_sᵀ(I + X_s D⁻¹X_sᵀ)⁻¹y, so
    y − X_s w = (I + M)⁻¹y with M = Σ_k x_k x_kᵀ / (λ‖y − x_k‖²): a B×B system per pixel
    instead of n×n (n ring pixels, 200 by default, against B = 20 components). A pixel
    with a ring pixel equal to itself (‖y − x_k‖ = 0, D singular) is solved in the n×n
    form, with its Gram matrix.
    """
    bands = y.shape[1]
    exact = (ring_ok & (dist2 == 0)).any(axis=1)
    with np.errstate(divide="ignore", over="ignore"):  # a huge λ: weights 0, its limit
        weight = np.where(ring_ok, 1.0 / (lam * np.where(ring_ok, dist2, 1.0)), 0.0)
    out = np.empty(y.shape[0])
    dual = ~exact
    if dual.any():
        xd, wd = (xs, weight) if dual.all() else (xs[dual], weight[dual])
        system = np.matmul(xd.transpose(0, 2, 1) * wd[:, None, :], xd)
        system[:, np.arange(bands), np.arange(bands)] += 1.0
        z = solve_stacks(system, y[dual])
        out[dual] = np.sqrt(np.einsum("mb,mb->m", z, z))
    if exact.any():
        xe = xs[exact]
        gram = np.matmul(xe, xe.transpose(0, 2, 1))
        n = gram.shape[1]
        gram[:, np.arange(n), np.arange(n)] += lam * np.where(ring_ok[exact], dist2[exact], 1.0)
        w = solve_stacks(gram, np.einsum("mnb,mb->mn", xe, y[exact]))
        resid = y[exact] - np.einsum("mn,mnb->mb", w, xe)
        out[exact] = np.sqrt(np.einsum("mb,mb->m", resid, resid))
    return out


def crd_block(
    block: np.ndarray, inner: int, outer: int, lam: float = 1e-6, halo: int = 0
) -> np.ndarray:
    """CRD scores (float64) of a ``(rows, cols, B)`` block, NaN marking nodata.

    ``halo`` pixels on each side are context only (scores come back for the core); windows
    are clipped where the block ends. Nodata and out-of-block ring pixels are zero columns of
    X_s, which drop out of the representation exactly (their weights solve to 0). A pixel
    that is nodata or has no valid ring pixel scores NaN.
    """
    since = stopping.mark()  # before the setup: a stop asked during it counts
    if block.shape[-1] > len(ring_offsets(inner, outer)):  # B > n: the n×n system is smaller
        return crd_gram_block(block, inner, outer, lam, halo)
    h = outer // 2
    x, valid = padded(block, halo, h)
    rows, cols, bands = x.shape
    ring = ring_offsets(inner, outer)
    n = len(ring)
    core_rows, core_cols = rows - 2 * h, cols - 2 * h
    out = np.full((core_rows, core_cols), np.nan)
    width = max(1, min(core_cols, _BUDGET // (8 * (2 * n * bands + bands * bands) * 2)))
    pixels = x.reshape(-1, bands)
    with single_threaded_linalg():
        for r in range(core_rows):
            stopping.check(since)  # Ctrl-C, SIGTERM: end within a row, not the block
            for c0, c1, ok, p_c, lin, ring_ok in row_strips(valid, ring, r + h, h, width):
                xs = pixels[lin]  # (m, n, B); nodata rows are zero
                y = x[r + h, p_c]
                diff = xs - y[:, None]
                dist2 = np.einsum("mnb,mnb->mn", diff, diff)
                out[r, c0:c1][ok] = _residuals(xs, y, dist2, ring_ok, lam)
    return out


class CRD(BaseDetector):
    """Collaborative-representation anomaly detector (Li & Du 2015).

    Defaults (5, 15), ``pca=20``, ``lam=0.1`` were chosen by leave-one-scene-out over the 10
    benchmark scenes (``benchmarks/loo_local_defaults.py``, docs/detectors.md).

    Parameters
    ----------
    inner, outer : odd widths in pixels of the guard and outer windows (inner < outer ≤ 2001).
    lam : the regularisation λ of the distance-weighted Tikhonov term.
    pca : number of leading principal directions to project the pixels on first
        (None = all good bands; all of them when the scene has fewer good bands).
    dtype : dtype of the returned map; Gram matrices and solves always run in float64.
    """

    #: read when scoring (``pca`` shapes the fitted projection: fit again after it)
    score_params = frozenset({"inner", "outer", "lam", "dtype"})

    name = "crd"
    summary = "Collaborative representation detector: residual of each pixel from its ring"

    def __init__(self, inner: int = 5, outer: int = 15, lam: float = 0.1,
                 pca: int | None = 20, dtype="float32"):
        self.inner = inner
        self.outer = outer
        self.lam = lam
        self.pca = pca
        self.dtype = dtype

    def check_params(self) -> CRD:
        super().check_params()
        self._validate()
        return self

    def _validate(self) -> tuple[int, int]:
        inner, outer = check_windows(self.name, self.inner, self.outer)
        check_nonnegative(self.name, "lam", self.lam, positive=True)
        check_dtype(self.name, self.dtype)
        check_pca(self.name, self.pca)
        return inner, outer

    def fit(self, cube: CubeLike) -> CRD:
        """Validate the hyperparameters, record the band layout and check, in one pass over
        the scene, that it holds distinct valid pixels (CRD learns nothing else)."""
        self.bands_ = good_band_mask(cube)
        self._validate()
        path = cube.attrs.get("source_path")
        moments = scene_moments(cube, self.name)  # no data, or every pixel alike: refused
        check_scales(np.diag(moments.cov), self.name, path)  # PCA leaves them out too
        if self.pca is None:
            self.components_ = None
        else:
            lam, vec = np.linalg.eigh(moments.cov)
            k = min(int(self.pca), lam.size)
            self.components_ = vec[:, ::-1][:, :k]
            self.explained_variance_ = lam[::-1][:k]
        spread = np.trace(moments.cov)
        if moments.mean @ moments.mean > 1e10 * spread:
            warnings.warn(f"{self.name}: the data sit on an offset 1e5 times their spread "
                          "(σ): the Gram matrices of raw pixels cannot resolve them in float64; "
                          "subtract a constant offset first", DegenerateDataWarning, stacklevel=2)
        check_rings(cube, self.inner, self.outer, self.name)
        return self

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map of CRD residual norms, NaN on nodata pixels."""
        self._check_fitted("bands_")
        self._check_bands(cube, self.bands_)
        inner, outer = self._validate()
        if self.components_ is None:
            data = nan_filled(cube, self.bands_)
        else:  # uncentred, as the components were fitted
            basis = self.components_
            data = projected(cube, self.bands_, np.zeros(basis.shape[0]), basis)
        scores = map_windows(
            data,
            crd_block,
            outer // 2,
            dtype=check_dtype(self.name, self.dtype),
            inner=inner,
            outer=outer,
            lam=float(self.lam),
        )
        dim = int(self.bands_.sum()) if self.components_ is None else self.components_.shape[1]
        return map_like(cube, scores, name="score",
                        attrs={"method": self.name, "hsad_dimension": dim})
