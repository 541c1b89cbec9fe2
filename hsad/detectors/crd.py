"""Collaborative-representation detector (CRD; Li & Du, IEEE TGRS 53(3), 2015).

Each pixel y (B bands) is represented by the n pixels x_k of its ring (``outer`` window minus
the ``inner`` guard window, clipped at the image edge, nodata left out), the columns of X_s:

    Γ = diag(‖y − x_1‖₂, …, ‖y − x_n‖₂)
    w = (X_sᵀ X_s + λ ΓᵀΓ)⁻¹ X_sᵀ y,        CRD(y) = ‖y − X_s w‖₂

Both X_sᵀX_s and ΓᵀΓ scale with the square of the data, so λ is scale-free and the data are
used as they are (no normalisation). The n × n Gram matrices come from a table of inner
products ⟨x_q, x_(q+d)⟩ for every offset d the ring can span (computed once per block), and
all pixels of a row are solved together with a stacked Cholesky. With ``pca=k`` the pixels are
first projected on the k leading principal directions of the scene covariance (x ↦ Vₖᵀx,
not centred, so the representation still sees the pixels' offset), which makes B = k.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.cube import good_band_mask, map_like
from hsad.detectors.base import BaseDetector
from hsad.engine.stats import check_scales, scene_moments
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
from hsad.errors import DegenerateDataWarning, ParameterError

#: budget for the inner-product table and the per-row Gram stacks, in bytes
_BUDGET = 128 * 2**20


def _half_offsets(h: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets d = (dr, dc) with |dr|, |dc| ≤ 2h and d > 0 lexicographically (or d = 0),
    and a lookup ``index[dr + 2h, dc + 2h]`` into them (−1 for the other half)."""
    s = 4 * h + 1
    dr, dc = np.mgrid[-2 * h : 2 * h + 1, -2 * h : 2 * h + 1]
    keep = (dr > 0) | ((dr == 0) & (dc >= 0))
    index = np.full((s, s), -1)
    index[keep] = np.arange(keep.sum())
    return np.stack([dr[keep], dc[keep]], axis=1), index


def _gram_index(ring: np.ndarray, h: int, cols: int) -> np.ndarray:
    """Flat offsets ``rel[i, j]`` into the inner-product table for the ring's Gram matrix.

    The table has layout ``(row, col, d)``; the pair (i, j) reads ⟨x_(p+o_a), x_(p+o_b)⟩
    from the entry of o_a with offset o_b − o_a, choosing (a, b) so that offset is stored.
    """
    half, index = _half_offsets(h)
    diff = ring[None, :, :] - ring[:, None, :]  # o_j − o_i
    stored = index[diff[..., 0] + 2 * h, diff[..., 1] + 2 * h] >= 0
    a = np.where(stored, np.arange(len(ring))[:, None], np.arange(len(ring))[None, :])
    d = np.where(stored[..., None], diff, -diff)
    didx = index[d[..., 0] + 2 * h, d[..., 1] + 2 * h]
    return (ring[a, 0] * cols + ring[a, 1]) * len(half) + didx


def _products(x: np.ndarray, r0: int, r1: int, h: int) -> np.ndarray:
    """Table ``t[q, c, d] = ⟨x[q, c], x[(q, c) + d]⟩`` for rows r0..r1−1, stored offsets d."""
    half, _ = _half_offsets(h)
    rows, cols, _ = x.shape
    t = np.zeros((r1 - r0, cols, len(half)))
    for i, (dr, dc) in enumerate(half):
        q1 = min(r1, rows - dr)
        c0, c1 = max(0, -dc), min(cols, cols - dc)
        if q1 <= r0 or c1 <= c0:
            continue
        a = x[r0:q1, c0:c1]
        b = x[r0 + dr : q1 + dr, c0 + dc : c1 + dc]
        t[: q1 - r0, c0:c1, i] = np.einsum("ijb,ijb->ij", a, b)
    return t


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve the stacks ``a w = b`` (LU); pseudo-inverse (eigh) if one is singular."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(a)
        proj = np.einsum("mkn,mk->mn", vec, b)
        tol = 1e-12 * np.abs(lam).max(axis=1, keepdims=True)
        proj *= np.where(np.abs(lam) > tol, 1.0 / np.where(np.abs(lam) > tol, lam, 1.0), 0.0)
        return np.einsum("mkn,mn->mk", vec, proj)


def crd_block(
    block: np.ndarray, inner: int, outer: int, lam: float = 1e-6, halo: int = 0
) -> np.ndarray:
    """CRD scores (float64) of a ``(rows, cols, B)`` block, NaN marking nodata.

    ``halo`` pixels on each side are context only (scores come back for the core); windows
    are clipped where the block ends. Nodata and out-of-block ring pixels are zero columns of
    X_s, which drop out of the representation exactly (their weights solve to 0). A pixel
    that is nodata or has no valid ring pixel scores NaN.
    """
    h = outer // 2
    x, valid = padded(block, halo, h)
    rows, cols, bands = x.shape
    ring = ring_offsets(inner, outer)
    n = len(ring)
    rel = _gram_index(ring, h, cols)
    ndiff = len(_half_offsets(h)[0])
    core_rows, core_cols = rows - 2 * h, cols - 2 * h
    out = np.full((core_rows, core_cols), np.nan)
    slab = max(1, _BUDGET // (8 * cols * ndiff) - 2 * h)
    width = max(1, min(core_cols, _BUDGET // (8 * n * (n + bands) * 3)))
    with single_threaded_linalg():
        for s0 in range(0, core_rows, slab):
            s1 = min(core_rows, s0 + slab)
            t0 = s0  # table rows cover padded rows s0 … s1 + 2h − 1
            table = _products(x, t0, s1 + 2 * h, h).reshape(-1)
            for r in range(s0, s1):
                for c0 in range(0, core_cols, width):
                    c1 = min(core_cols, c0 + width)
                    p_r, p_c = r + h, np.arange(c0, c1) + h
                    ok = valid[p_r, p_c] > 0
                    lin = (ring[:, 0] + p_r)[None, :] * cols + ring[None, :, 1] + p_c[:, None]
                    ring_ok = valid.reshape(-1)[lin] > 0
                    ok &= ring_ok.any(axis=1)
                    if not ok.any():
                        continue
                    p_c, lin, ring_ok = p_c[ok], lin[ok], ring_ok[ok]
                    base = ((p_r - t0) * cols + p_c) * ndiff
                    gram = table[base[:, None, None] + rel[None]]
                    xs = x.reshape(-1, bands)[lin]  # (m, n, B); nodata rows are zero
                    y = x[p_r, p_c]
                    dist2 = np.einsum("mnb,mnb->mn", xs - y[:, None], xs - y[:, None])
                    dist2 = np.where(ring_ok, dist2, 1.0)
                    idx = np.arange(n)
                    gram[:, idx, idx] += lam * dist2
                    w = _solve(gram, np.einsum("mnb,mb->mn", xs, y))
                    resid = y - np.einsum("mn,mnb->mb", w, xs)
                    out[r, c0:c1][ok] = np.sqrt(np.einsum("mb,mb->m", resid, resid))
    return out


class CRD(BaseDetector):
    """Collaborative-representation anomaly detector (Li & Du 2015).

    Defaults (5, 15), ``pca=20``, ``lam=0.1`` were chosen by leave-one-scene-out over the 10
    benchmark scenes (``benchmarks/loo_local_defaults.py``, docs/detectors.md).

    Parameters
    ----------
    inner, outer : odd widths in pixels of the guard and outer windows (inner < outer).
    lam : the regularisation λ of the distance-weighted Tikhonov term.
    pca : number of leading principal directions to project the pixels on first
        (None = all good bands; all of them when the scene has fewer good bands).
    dtype : dtype of the returned map; Gram matrices and solves always run in float64.
    """

    name = "crd"
    summary = "Collaborative representation detector: residual of each pixel from its ring"

    def __init__(self, inner: int = 5, outer: int = 15, lam: float = 0.1,
                 pca: int | None = 20, dtype="float32"):
        self.inner = inner
        self.outer = outer
        self.lam = lam
        self.pca = pca
        self.dtype = dtype

    def _validate(self) -> tuple[int, int]:
        inner, outer = check_windows(self.name, self.inner, self.outer)
        if check_nonnegative(self.name, "lam", self.lam) == 0:
            raise ParameterError(f"{self.name}: lam must be > 0, got {self.lam!r}")
        check_dtype(self.name, self.dtype)
        check_pca(self.name, self.pca)
        return inner, outer

    def fit(self, cube: xr.DataArray) -> CRD:
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

    def score(self, cube: xr.DataArray) -> xr.DataArray:
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
