"""CRD in the n × n form (Li & Du 2015), for blocks with more bands than ring pixels.

``w = (X_sᵀX_s + λΓᵀΓ)⁻¹X_sᵀy`` with the n × n Gram matrices X_sᵀX_s gathered from one table
of inner products ⟨x_q, x_(q+d)⟩ over every offset d the ring spans (half of them, by
symmetry), computed per slab of rows. :mod:`hsad.detectors.crd` solves the B × B form
otherwise, which is smaller whenever B ≤ n.
"""

from __future__ import annotations

import numpy as np

from hsad import stopping
from hsad.engine.windows import padded, ring_offsets, single_threaded_linalg

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


def row_strips(valid: np.ndarray, ring: np.ndarray, row: int, h: int, width: int):
    """The core pixels of padded row ``row`` in strips of ``width`` columns: per strip that
    holds any, ``(c0, c1, ok, cols, lin, ring_ok)`` with ``ok`` the strip's pixels that are
    valid and have a valid ring pixel, ``cols`` their padded columns, ``lin`` the flat
    indices of their ring pixels (m, n) and ``ring_ok`` which of those are valid."""
    core_cols = valid.shape[1] - 2 * h
    for c0 in range(0, core_cols, width):
        c1 = min(core_cols, c0 + width)
        cols = np.arange(c0, c1) + h
        ok = valid[row, cols] > 0
        lin = (ring[:, 0] + row)[None, :] * valid.shape[1] + ring[None, :, 1] + cols[:, None]
        ring_ok = valid.reshape(-1)[lin] > 0
        ok &= ring_ok.any(axis=1)
        if ok.any():
            yield c0, c1, ok, cols[ok], lin[ok], ring_ok[ok]


def represented_exactly(dist2: np.ndarray, ring_ok: np.ndarray) -> np.ndarray:
    """The pixels (rows of ``dist2``, their squared distances to their ring pixels) with a
    valid ring pixel equal to themselves: ``w = e_k`` then costs nothing (λ‖y − x_k‖² = 0)
    and leaves no residual, so the minimum is 0 exactly. Their systems are singular with
    two such copies, which LU solved in the B × B form to weights of 1e16 and scores of
    1e7 (the n × n form to about 1e-12)."""
    return (ring_ok & (dist2 == 0)).any(axis=1)


def solve_stacks(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve the stacks ``a w = b`` (LU); pseudo-inverse (eigh) if one is singular."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(a)
        proj = np.einsum("mkn,mk->mn", vec, b)
        tol = 1e-12 * np.abs(lam).max(axis=1, keepdims=True)
        proj *= np.where(np.abs(lam) > tol, 1.0 / np.where(np.abs(lam) > tol, lam, 1.0), 0.0)
        return np.einsum("mkn,mn->mk", vec, proj)


def crd_gram_block(
    block: np.ndarray, inner: int, outer: int, lam: float = 1e-6, halo: int = 0
) -> np.ndarray:
    """:func:`crd_block` in the n×n form, for B > n (more bands than ring pixels).

    The n × n Gram matrices come from a table of inner products ⟨x_q, x_(q+d)⟩ for every
    offset d the ring can span (half of them, by symmetry), computed per slab of rows.

    ``halo`` pixels on each side are context only (scores come back for the core); windows
    are clipped where the block ends. Nodata and out-of-block ring pixels are zero columns of
    X_s, which drop out of the representation exactly (their weights solve to 0). A pixel
    that is nodata or has no valid ring pixel scores NaN; one equal to a ring pixel, 0
    (:func:`represented_exactly`).
    """
    since = stopping.mark()  # before the setup: a stop asked during it counts
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
                stopping.check(since)  # Ctrl-C, SIGTERM: end within a row, not the block
                p_r = r + h
                for c0, c1, ok, p_c, lin, ring_ok in row_strips(valid, ring, p_r, h, width):
                    base = ((p_r - t0) * cols + p_c) * ndiff
                    gram = table[base[:, None, None] + rel[None]]
                    xs = x.reshape(-1, bands)[lin]  # (m, n, B); nodata rows are zero
                    y = x[p_r, p_c]
                    dist2 = np.einsum("mnb,mnb->mn", xs - y[:, None], xs - y[:, None])
                    exact = represented_exactly(dist2, ring_ok)
                    if exact.any():  # residual 0; the others solved alone
                        keep = ~exact
                        gram, xs, y = gram[keep], xs[keep], y[keep]
                        dist2, ring_ok = dist2[keep], ring_ok[keep]
                    dist2 = np.where(ring_ok, dist2, 1.0)
                    idx = np.arange(n)
                    gram[:, idx, idx] += lam * dist2
                    w = solve_stacks(gram, np.einsum("mnb,mb->mn", xs, y))
                    resid = y - np.einsum("mn,mnb->mb", w, xs)
                    scores = np.zeros(len(exact))
                    scores[~exact] = np.sqrt(np.einsum("mb,mb->m", resid, resid))
                    out[r, c0:c1][ok] = scores
    return out
