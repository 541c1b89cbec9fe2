"""Test tolerances that follow from the problem's conditioning, not from one machine's rounding.

A backward-stable solve of ``A w = b`` (Cholesky, LU, an eigendecomposition for a
pseudo-inverse) has a relative forward error of order ``√n · u · κ(A)``, with ``u`` the unit
roundoff of the working precision, ``n`` the size of the sums involved and κ the 2-norm
condition number (Higham, *Accuracy and Stability of Numerical Algorithms*, §7.1 and §9.4;
``√n`` rather than ``n`` is the probabilistic bound of Higham & Mary, 2019). Two correct
implementations each meet it, so they may differ by twice that. Which BLAS kernel runs (the
CPU, ``OPENBLAS_CORETYPE``, thread count) changes the rounding inside that bound, never the
bound itself.

When a covariance is formed from raw sums (``Σxxᵀ/n − μμᵀ``) rather than from centred data,
the cancellation adds ``u · ‖μ‖² / λ_min``: :func:`covariance_condition` includes it.
"""

from __future__ import annotations

import numpy as np

#: Both sides carry the bound; a factor 2 more covers the small constants of the bound.
SAFETY = 4.0


def unit_roundoff(dtype=np.float64) -> float:
    """Half the machine epsilon of ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def solve_rtol(cond, n: int, dtype=np.float64):
    """Relative tolerance for a quantity computed through a solve of condition ``cond``."""
    return SAFETY * np.sqrt(n) * unit_roundoff(dtype) * np.asarray(cond, dtype=np.float64)


def covariance_condition(cov: np.ndarray, mean: np.ndarray | None = None) -> float:
    """κ(C), plus the cancellation term ‖μ‖²/λ_min when C may come from raw sums."""
    lam = np.linalg.eigvalsh(cov)
    lo = max(lam[0], np.finfo(np.float64).tiny)
    offset = 0.0 if mean is None else float(mean @ mean)
    return float((lam[-1] + offset) / lo)


def assert_within_conditioning(actual, desired, cond, n: int, dtype=np.float64,
                               stored=None, meaningful: float = 1e-2) -> None:
    """Elementwise ``|actual − desired| ≤ solve_rtol(cond) · |desired|``, NaN where NaN.

    ``stored``: the dtype the result was rounded to after computing in ``dtype`` (a float32
    map from float64 solves); one unit in its last place is added, since two values within
    the bound may round to neighbouring numbers.

    ``meaningful`` guards the test itself: a tolerance looser than this (relative) would no
    longer check anything, so the problem is too ill-conditioned for the test and it fails.
    """
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    rtol = solve_rtol(cond, n, dtype)
    if stored is not None:
        rtol = rtol + float(np.finfo(stored).eps)
    rtol = np.broadcast_to(rtol, desired.shape)
    finite = np.isfinite(desired)
    assert np.array_equal(finite, np.isfinite(actual)), "NaN pattern differs"
    assert rtol[finite].max() < meaningful, f"test too ill-conditioned: rtol {rtol.max():.2g}"
    err = np.abs(actual - desired)[finite]
    bound = rtol[finite] * np.abs(desired[finite])
    worst = int(np.argmax(err / np.maximum(bound, np.finfo(np.float64).tiny)))
    assert (err <= bound).all(), (
        f"{int((err > bound).sum())} of {err.size} values beyond the conditioning bound; "
        f"worst: |Δ| {err[worst]:.3g} > {bound[worst]:.3g} (rtol {rtol[finite][worst]:.3g})"
    )
