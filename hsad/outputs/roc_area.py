"""The ROC area AUC(D,F) and the ROC curve from ranks, holding little beyond the scores.

The trapezoid area of the ROC curve through every distinct threshold equals the
Mann–Whitney statistic: the share of (anomaly, background) pairs the anomaly wins, a tie
counting one half. Counted from the sorted scores, it needs no curve (three float64
arrays a distinct score) and no argsort (an int64 index a pixel): the scores are sorted in
place, and the smaller class is sorted as a copy and looked up in them. The curve's point
at a threshold ``t`` is looked up the same way (the pixels scoring ``t`` or more, and those
of the smaller class), so it can be taken at every distinct score, or at a bounded number
of them for a plot.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Values of the smaller class looked up at a time (bounds the int64 positions).
LOOKUP_BLOCK = 1 << 20


class Ranked(NamedTuple):
    """Valid scores sorted ascending (in place), and their smaller class sorted."""

    scores: np.ndarray
    fewer: np.ndarray
    anomalies_fewer: bool
    n_anomaly: int
    n_background: int


def ranked(scores: np.ndarray, labels: np.ndarray) -> Ranked:
    """**Sorts** the finite 1-D ``scores`` **in place** and copies out their smaller class
    (``labels``: True = anomaly), sorted."""
    n_anomaly = int(np.count_nonzero(labels))
    n_background = scores.size - n_anomaly
    anomalies_fewer = n_anomaly <= n_background
    fewer = np.sort(scores[labels] if anomalies_fewer else scores[~labels])
    scores.sort()
    return Ranked(scores, fewer, anomalies_fewer, n_anomaly, n_background)


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC(D,F) of the finite 1-D ``scores`` with their bool ``labels`` (True = anomaly),
    correctly rounded from exact integer counts. **Sorts** ``scores`` **in place.**"""
    return area(ranked(scores, labels))


def area(r: Ranked) -> float:
    """AUC(D,F) of :func:`ranked` scores. For each value ``v`` of the smaller class,
    ``#all < v + #all ≤ v`` minus the same count within its own class is
    ``2·#other < v + #other = v``; summed, that is twice the pairs it wins plus its ties."""
    twice = 0  # Python integers: exact whatever the pixel count
    for lo in range(0, r.fewer.size, LOOKUP_BLOCK):
        v = r.fewer[lo:lo + LOOKUP_BLOCK]
        twice += int(np.searchsorted(r.scores, v, "left").sum(dtype=np.int64))
        twice += int(np.searchsorted(r.scores, v, "right").sum(dtype=np.int64))
        twice -= int(np.searchsorted(r.fewer, v, "left").sum(dtype=np.int64))
        twice -= int(np.searchsorted(r.fewer, v, "right").sum(dtype=np.int64))
    pairs = 2 * r.n_anomaly * r.n_background
    won = twice if r.anomalies_fewer else pairs - twice  # 2·(pairs the anomaly wins) + ties
    return won / pairs


def curve_points(r: Ranked, points: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pd, pf, thresholds)`` of :func:`ranked` scores, by decreasing threshold, without
    the (0, 0) point: at every distinct score (``points`` None, or at least as many as the
    distinct scores), or at the distinct scores of about ``points`` ranks from the highest:
    a third evenly spaced, a third geometrically spaced from the highest score and a third
    from the highest background score (so that a log P_F axis keeps its first false
    alarms). Each is a point of the full curve, with the counts it has there; the last is
    the lowest score, (1, 1)."""
    s = r.scores
    n = s.size
    ends = s[1:] != s[:-1]  # the ends of the runs of equal scores
    if points is None or points > int(np.count_nonzero(ends)):
        thresholds = np.r_[s[:-1][ends], s[-1]][::-1]
    else:
        del ends
        third = max(points // 3, 2)
        first_false = _first_background_rank(r)
        from_top = np.r_[np.linspace(0, n - 1, third), np.geomspace(1, n, third) - 1,
                         first_false + np.geomspace(1, n - first_false, third) - 1]
        thresholds = np.unique(s[n - 1 - np.unique(from_top.round().astype(np.int64))])[::-1]
    at_or_above = n - np.searchsorted(s, thresholds, "left")
    few = r.fewer.size - np.searchsorted(r.fewer, thresholds, "left")
    tp = few if r.anomalies_fewer else at_or_above - few
    fp = at_or_above - tp
    return tp / r.n_anomaly, fp / r.n_background, thresholds


def _first_background_rank(r: Ranked) -> int:
    """The rank, from the highest score (0), of the highest background score (a tie with
    anomalies ranks it with them)."""
    s, n = r.scores, r.scores.size
    if not r.anomalies_fewer:  # the background is the smaller class, sorted
        return n - int(np.searchsorted(s, r.fewer[-1], "right"))
    top = s[::-1][:r.fewer.size + 1]  # the highest scores against the anomalies' own
    differ = np.flatnonzero(top[:r.fewer.size] != r.fewer[::-1])
    return int(differ[0]) if differ.size else r.fewer.size


__all__ = ["LOOKUP_BLOCK", "Ranked", "area", "curve_points", "rank_auc", "ranked"]
