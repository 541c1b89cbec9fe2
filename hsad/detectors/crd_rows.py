"""CRD's block kernel in the B × B form (Li & Du 2015): each pixel's residual
``‖(I + X_s D⁻¹X_sᵀ)⁻¹y‖`` from its ring's pixels, all pixels of a row solved together
(:func:`crd_block`). Blocks with more bands than ring pixels take the n × n form
(:mod:`hsad.detectors.crd_gram`). The detector around it is :class:`hsad.detectors.crd.CRD`."""

from __future__ import annotations

import numpy as np

from hsad import stopping
from hsad.detectors.crd_gram import (
    crd_gram_block,
    represented_exactly,
    row_strips,
    solve_stacks,
)
from hsad.engine.windows import padded, ring_offsets, single_threaded_linalg

#: budget for a row's stacks of ring pixels and B×B systems, in bytes
_BUDGET = 128 * 2**20


def _residuals(xs: np.ndarray, y: np.ndarray, dist2: np.ndarray, ring_ok: np.ndarray,
               lam: float) -> np.ndarray:
    """‖y − X_s w‖ per pixel: ``xs`` (m, n, B) ring pixels (nodata rows zero), ``y`` (m, B).

    With D = λ ΓᵀΓ, w = (X_sᵀX_s + D)⁻¹X_sᵀy = D⁻¹X_sᵀ(I + X_s D⁻¹X_sᵀ)⁻¹y, so
    y − X_s w = (I + M)⁻¹y with M = Σ_k x_k x_kᵀ / (λ‖y − x_k‖²): a B×B system per pixel
    instead of n×n (n ring pixels, 200 by default, against B = 20 components). A pixel
    with a ring pixel equal to itself (‖y − x_k‖ = 0, D singular) scores 0
    (:func:`represented_exactly`).
    """
    bands = y.shape[1]
    exact = represented_exactly(dist2, ring_ok)
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
    out[exact] = 0.0
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


__all__ = ["crd_block"]
