"""The block kernel of local RX: each pixel's Mahalanobis distance to its own ring.

:func:`lrx_block` scores a ``(rows, cols, B)`` block from the ring statistics of
:class:`~hsad.engine.ring_features.RingStatistics`: a stacked Cholesky of each pixel's
bordered second moment, a few pixels at a time, or a pseudo-inverse where that fails.
The detector around it (dimension, ridge, tiles) is :class:`hsad.detectors.lrx.LocalRX`.
"""

from __future__ import annotations

import numpy as np

from hsad import stopping
from hsad.engine.ring_features import RingStatistics
from hsad.engine.windows import padded, single_threaded_linalg


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
#: group's matrices and factors stay in cache (6 matrices at 193 bands, within a core's
#: L2 of 2 MB on a current Xeon), where a row's worth (30 MB) went through memory three
#: times; with few dimensions (pca=5) a group is a whole row, as the numpy calls per group,
#: not the arithmetic, are then the cost. 10 MiB groups (34 matrices) made local RX on all
#: 193 bands of abu-beach-2 13 % slower on a Sapphire Rapids Xeon (2.48–2.50 s against
#: 2.12–2.19 s; docs/performance.md, benchmark 35). (LAPACK's dpotrf in place, one call
#: per pixel, saves numpy's copy but hands the GIL back and forth 100 times a row: two
#: tiles then ran 1.5× slower side by side, measured; called without the GIL it is 5–10 %
#: faster than numpy's call, not worth a second code path.)
CHOLESKY_BYTES = 2 * 2**20


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


#: valid ring pixels below which a pixel scores NaN: one pixel has no covariance (Σ = 0),
#: and its distance to that pixel over the floor alone would rank it first in the scene
MIN_RING_PIXELS = 2


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
    that is nodata or has fewer than :data:`MIN_RING_PIXELS` valid ring pixels scores NaN.
    """
    since = stopping.mark()  # before the setup: a stop asked during it counts
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
            stopping.check(since)  # Ctrl-C, SIGTERM: end within a strip, not the block
            w = n.shape[0]
            ok = (n > MIN_RING_PIXELS - 0.5) & (valid[r, c : c + w] > 0)
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
