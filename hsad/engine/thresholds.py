"""Thresholds that need no ground truth.

The default rule (:func:`robust_threshold`) fits a log-normal to the bulk of the score
distribution, robustly (median and MAD of ``log s``; of ``log(s − min + δ)`` when some
scores are ≤ 0), and puts the threshold where
that fit is exceeded with probability ``far`` (:data:`DEFAULT_FAR`). The anomalies are a few
pixels in the upper tail, so they barely move the median and the MAD; the log makes the
fit follow the right skew that every detector's scores show (Mahalanobis distances,
reconstruction errors, normalised fused maps alike).

The fit approximates each detector's tail and misses in both directions: on a Gaussian
background without anomalies lrx's scores exceed it 10× less often than nominal, aed's 8×
more often (``benchmarks/far_on_gaussian_background.py``); real backgrounds are heavier-
tailed still, so the rate achieved there is mostly higher: ``benchmarks/default_threshold.py``
measures it on the labelled scenes (docs/outputs.md).
"""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np

from hsad.errors import DegenerateDataWarning, ParameterError

#: Nominal false-alarm rate of the default rule.
DEFAULT_FAR = 1e-3
#: Values a block when scores are gathered (:func:`gathered_float64`).
BLOCK = 1 << 16
#: How the default rule is named in messages, GeoTIFF tags and ``--help``.
DEFAULT_RULE = (f"robust log-normal fit of the scores, false-alarm rate {DEFAULT_FAR:g} "
                f"(median + {NormalDist().inv_cdf(1 - DEFAULT_FAR):.2f}·1.4826·MAD of log scores)")


def check_threshold(contamination: float | None = None, far: float | None = None,
                    value: float | None = None) -> None:
    """Refuse bad threshold options before any work or output (ParameterError)."""
    given = [v is not None for v in (contamination, far, value)]
    if sum(given) > 1:
        raise ParameterError("threshold: give exactly one of contamination, far or value "
                             "(on the command line: --contamination, --far or --threshold)")
    for label, number in (("contamination", contamination), ("far", far), ("threshold", value)):
        if number is None:
            continue
        named = f"{label} (--{label})"  # the keyword, and the option on the command line
        try:
            number = float(number)
        except (TypeError, ValueError):
            raise ParameterError(f"{named} must be a number, got {number!r}") from None
        if label != "threshold" and not 0.0 < number < 1.0:
            raise ParameterError(f"{named} must lie in (0, 1), got {number}")
        if not np.isfinite(number):
            raise ParameterError(f"{named} must be a finite number, got {number}")


#: what a rule fitted to the scores adds when its tail lies beyond every one of them
BEYOND_THE_MAP = ("; no pixel lies beyond the tail the rule fitted to the background (right "
                  "on a scene without anomalies): to flag the highest scores give "
                  "--contamination RATE or --threshold VALUE (contamination= or value= in "
                  "Python)")


def say_if_all_or_none(mask: np.ndarray, s: np.ndarray, thr: float, advice: str = "") -> None:
    """Warn when a threshold flags no pixel, or every pixel with a score: an absolute value
    beyond the scores' range (another map's threshold, a typo), or a rule's threshold above
    the whole map (``advice`` then ends the message), which the mask alone would not
    tell."""
    flagged = int(np.count_nonzero(mask))
    scored = int(np.count_nonzero(np.isfinite(s)))
    if not scored or 0 < flagged < scored:
        return
    finite = s[np.isfinite(s)]
    extreme = float(finite.max() if flagged == 0 else finite.min())
    shown = [f"{v:.10g}" for v in (thr, extreme)]
    if shown[0] == shown[1] and thr != extreme:  # told apart in every digit float64 has
        shown = [repr(float(v)) for v in (thr, extreme)]
    if flagged == 0:
        warnings.warn(f"threshold {shown[0]} lies above every score (the highest is "
                      f"{shown[1]}): the mask flags no pixel{advice}", UserWarning,
                      stacklevel=3)
    else:
        warnings.warn(f"threshold {shown[0]} lies at or below every score (the lowest is "
                      f"{shown[1]}): the mask flags every pixel with a score{advice}",
                      UserWarning, stacklevel=3)


def at_or_above(s: np.ndarray, thr: float) -> np.ndarray:
    """``s >= thr`` decided as in float64 (every digit of ``thr`` counts), with no float64
    copy of a float32 map: ``thr`` becomes the smallest value of the map's type at or above
    it. (NumPy 1.x compared a float32 array with a float64 scalar in float32, so a threshold
    between two float32 values flagged the one below it.)"""
    thr = float(thr)
    if not np.issubdtype(s.dtype, np.floating) or s.dtype == np.float64 or np.isnan(thr):
        return s >= np.float64(thr)
    kind = s.dtype.type
    with np.errstate(over="ignore"):  # beyond the type's range: ±inf, as float64 decides
        t = kind(thr)
    if float(t) < thr:
        t = np.nextafter(t, kind(np.inf))
    return s >= t


def gathered_float64(values, where=None, dtype=np.float64) -> np.ndarray:
    """``values[where]`` of a map (any shape; ``where`` default: its finite values) as a
    new float64 vector (or ``dtype``), taken ``BLOCK`` values at a time: beside it nothing
    map-sized (not even a mask, when ``where`` is not given)."""
    v = np.asarray(getattr(values, "values", values)).reshape(-1)
    w = None if where is None else np.asarray(where).reshape(-1)

    def picked(lo: int) -> np.ndarray:
        return np.isfinite(v[lo:lo + BLOCK]) if w is None else w[lo:lo + BLOCK]

    starts = range(0, v.size, BLOCK)
    counts = [int(np.count_nonzero(picked(lo))) for lo in starts]
    out = np.empty(sum(counts), dtype=dtype)
    at = 0
    for lo, n in zip(starts, counts, strict=True):
        out[at:at + n] = v[lo:lo + BLOCK][picked(lo)]
        at += n
    return out


def _median(s: np.ndarray) -> float:
    """``np.median(s)``, partitioning ``s`` in place (its order is lost, not its values)."""
    return float(np.median(s, overwrite_input=True))


def _shift(s: np.ndarray, median: float | None = None) -> float:
    """The offset taken off before the log: 0 for positive scores; otherwise ``min − δ``,
    δ a millionth of the distance from the minimum to the median (so the minimum itself
    does not dominate the fit). ``median``: ``s``'s, when known; else taken (reordering
    ``s``)."""
    lo = float(s.min())
    if lo > 0:
        return 0.0
    median = _median(s) if median is None else median
    return lo - 1e-6 * (median - lo or float(s.max()) - lo or 1.0)


def robust_threshold(scores, far: float = DEFAULT_FAR) -> float:
    """The score exceeded with probability ``far`` under a robust log-normal fit of the
    finite ``scores`` (NaN = nodata is ignored).

    A map whose median absolute deviation is zero, or nearly (half the pixels or more share
    one score), is fitted on the scores above that value (and so on, while the rest ties
    again; under :data:`MIN_FIT` of them, with a warning that the fit is rough). When those
    are a single value, its pixels are flagged if they are a few outliers (at most
    :data:`MOST_FLAGGED` of the scores, or one pixel: a scene of one repeated spectrum and
    an outlier), else none (two levels of a map). A constant map has no anomaly and gives
    ``inf``, as does a map whose shared score is its highest; each case with a
    :class:`~hsad.errors.DegenerateDataWarning` saying which.

    Memory: one float64 vector of the finite scores, transformed and partitioned in place
    (every step is a median: the order is not needed), whatever the map's type: 8 bytes a
    map pixel beside the map itself (docs/performance.md).
    """
    if not 0.0 < float(far) < 1.0:
        raise ParameterError(f"far must lie in (0, 1), got {far}")
    s = gathered_float64(scores)
    if s.size < 2 or s.min() == s.max():
        warnings.warn("the score map is constant (or has under 2 scores): no pixel is "
                      "flagged", DegenerateDataWarning, stacklevel=2)
        return float("inf")
    total, shared = s.size, None
    median = _median(s)  # s's median, while s is all the scores left to fit
    # the MAD is zero when over half the scores equal the median: |s − median| = 0
    # exactly where s == median, and the middle of the sorted deviations is then 0; with
    # exactly half, it is half the smallest other deviation, no spread either (250 of 1000
    # scores above 500 tied were all flagged at far 1e-3); the fit goes to the scores
    # above, as often as that holds (ties on several levels)
    while 2 * (tied := np.count_nonzero(s == median)) >= s.size:
        shared = median
        s, median = s[s > shared], None
        if not s.size:
            warnings.warn(f"{tied} of {total} scores share the highest score, {shared:g}: no "
                          "pixel stands above them and none is flagged (give --threshold, "
                          "--far or --contamination)", DegenerateDataWarning, stacklevel=2)
            return float("inf")
        if s.min() == s.max():
            return _one_value_above(s, shared, total)
        median = _median(s)
    if shared is not None and s.size < MIN_FIT:
        warnings.warn(f"only {s.size} of {total} scores lie above the {shared:g} most of the "
                      "others share: the fit of so few is rough (give --threshold, --far or "
                      "--contamination)", DegenerateDataWarning, stacklevel=2)
    offset = _shift(s, median)
    logs = np.log(np.subtract(s, offset, out=s), out=s)
    centre = _median(logs)
    scale = 1.4826 * _median(np.abs(np.subtract(logs, centre, out=logs), out=logs))
    return float(np.exp(centre + NormalDist().inv_cdf(1 - float(far)) * scale) + offset)


#: the pixels of one score above all the others (which tie) that :func:`robust_threshold`
#: flags as a few outliers: at most this share of the scores, or one pixel of a map of
#: ``MIN_FIT`` or more; beyond it they are a second level of the map
MOST_FLAGGED = 0.01
#: fewer scores than this above a tied majority make a rough fit (a warning says so)
MIN_FIT = 10


def _one_value_above(above: np.ndarray, shared: float, total: int) -> float:
    """The threshold of a map whose scores above a tied level ``shared`` (every other score
    at it or below) are all one value: those pixels flagged when they are a few outliers (a
    scene of one repeated spectrum and an outlier), else none (two levels of a map); a
    warning says which."""
    n, value = above.size, float(above[0])
    head = (f"{n} of {total} scores share one score, {value:g}, above all the others (which "
            f"tie at {shared:g} or below)")
    if n <= MOST_FLAGGED * total or (n == 1 and total >= MIN_FIT):
        warnings.warn(f"{head}: those are flagged (no spread to fit a distribution to)",
                      DegenerateDataWarning, stacklevel=3)
        return value
    warnings.warn(f"{head}: two levels, not a few outliers (at most 1 % of the scores, or "
                  f"one pixel of {MIN_FIT} or more); none is flagged (give --threshold, --far "
                  "or --contamination)", DegenerateDataWarning, stacklevel=3)
    return float("inf")


def contamination_threshold(scores: np.ndarray, contamination: float, *,
                            overwrite_input: bool = False) -> float:
    """The ``1 − contamination`` quantile of the finite ``scores`` (``inf`` for none): the
    mask ``score ≥`` it flags that share of them. Pixels tied at the quantile (saturated
    spectra, a clipped map) are all flagged, never some of them; when that flags more than
    5 % (and one pixel) beyond the share asked, a warning gives both counts.
    ``overwrite_input``: the quantile may reorder ``scores`` (a float64 array) instead of
    copying it."""
    s = np.asarray(scores, dtype=np.float64)
    if not s.size:
        return float("inf")
    thr = float(np.quantile(s, 1.0 - float(contamination), overwrite_input=overwrite_input))
    wanted, flagged = contamination * s.size, int(np.count_nonzero(s >= thr))
    if flagged - wanted > max(1.0, 0.05 * wanted):
        tied = int(np.count_nonzero(s == thr))
        warnings.warn(f"contamination {contamination:g}: {tied} pixels share the score at the "
                      f"quantile ({thr:.6g}), so {flagged} pixels are flagged for the "
                      f"{wanted:.0f} asked (pixels of one score are flagged all or none)",
                      DegenerateDataWarning, stacklevel=3)
    return thr


def weighted_chi2_isf(far: float, weights) -> float:
    """The value a weighted sum ``Σ wᵢ·χ²₁`` (independent, ``wᵢ ≥ 0``) exceeds with
    probability ``far``: exact (``w·χ²_B``) when the weights are equal, else the
    Lugannani–Rice saddlepoint approximation of the distribution (Kuonen 1999, *Biometrika*
    86): within 6 % of ``far`` from 1e-1 to 1e-5 against exact tails and simulation
    (``tests/test_thresholds.py``; 7 % at 1e-8, where one χ²₁ dominates), continuous and
    decreasing in ``far`` over (0, 1)."""
    from scipy.optimize import brentq
    from scipy.stats import chi2

    w = np.asarray(weights, dtype=np.float64)
    w = w[w > 0]
    if not w.size:
        return float("inf")
    top = w.max()  # in units of the largest weight: no underflow for tiny weights
    w = w / top
    if w.min() == 1.0:
        return float(top * chi2.isf(float(far), w.size))
    log_far = float(np.log(far))
    high = 0.5 * (1.0 - 1e-12)  # the cumulant generating function's domain ends at 1/2
    if _log_tail(high, w) > log_far:  # beyond float64's reach
        return float("inf")
    low = -1.0
    while _log_tail(low, w) < log_far and low > -1e15:  # far near 1: x near 0
        low *= 10.0
    if _log_tail(low, w) < log_far:
        return 0.0
    s = brentq(lambda t: _log_tail(t, w) - log_far, low, high, xtol=1e-15, rtol=1e-13)
    return float(top * _cumulants(s, w)[1])


#: about the mean (saddlepoint 0) the Lugannani–Rice formula cancels: within ±NEAR_MEAN
#: the tail is interpolated linearly in the saddlepoint between the two ends
NEAR_MEAN = 1e-3


def _cumulants(s: float, w: np.ndarray) -> tuple[float, float, float]:
    """``(K, K', K'')`` of ``Σ wᵢχ²₁`` at ``s`` (< 1/(2·max w)): the cumulant generating
    function ``K(s) = −½ Σ log(1 − 2wᵢs)`` and its derivatives (``K'(s) = x``, the value
    whose saddlepoint ``s`` is)."""
    a = 1.0 - 2.0 * w * s
    return (float(-0.5 * np.log(a).sum()), float((w / a).sum()),
            float((2.0 * w**2 / a**2).sum()))


def _log_tail(s: float, w: np.ndarray) -> float:
    """``log P(Σ wᵢχ²₁ > K'(s))`` by Lugannani–Rice, in logs: the upper tail above the
    mean (s > 0), one minus the lower tail below it, linear in ``s`` about the mean."""
    from scipy.special import erfcx

    if abs(s) < NEAR_MEAN:
        lo, hi = _log_tail(-NEAR_MEAN, w), _log_tail(NEAR_MEAN, w)
        t = (s + NEAR_MEAN) / (2 * NEAR_MEAN)
        return float(np.log((1 - t) * np.exp(lo) + t * np.exp(hi)))
    k, x, k2 = _cumulants(s, w)
    r = np.sign(s) * np.sqrt(max(2.0 * (s * x - k), 0.0))
    u = s * np.sqrt(k2)
    mills = np.sqrt(np.pi / 2) * erfcx(abs(r) / np.sqrt(2))  # (1 − Φ(|r|))/φ(r)
    log_phi = -0.5 * r * r - 0.5 * np.log(2 * np.pi)
    if s > 0:  # P ≈ 1 − Φ(r) + φ(r)(1/u − 1/r)
        bracket = mills + 1.0 / u - 1.0 / r
        return float(log_phi + np.log(bracket)) if bracket > 0 else float("-inf")
    lower = mills - 1.0 / u + 1.0 / r  # P(≤ x) ≈ Φ(r) − φ(r)(1/u − 1/r), r < 0
    if not lower > 0:
        return 0.0
    return float(np.log1p(-min(np.exp(log_phi) * lower, 1.0 - 1e-300)))


__all__ = ["BEYOND_THE_MAP", "DEFAULT_FAR", "DEFAULT_RULE", "at_or_above", "check_threshold",
           "contamination_threshold", "gathered_float64", "robust_threshold",
           "say_if_all_or_none", "weighted_chi2_isf"]
