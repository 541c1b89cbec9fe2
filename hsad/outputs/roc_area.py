"""The ROC area AUC(D,F) from ranks, holding nothing beyond the scores themselves.

The trapezoid area of the ROC curve through every distinct threshold equals the
Mann–Whitney statistic: the share of (anomaly, background) pairs the anomaly wins, a tie
counting one half. Counted from the sorted scores, it needs no curve (three float64
arrays a distinct score) and no argsort (an int64 index a pixel): the scores are sorted in
place, and the smaller class is sorted as a copy and looked up in them.
"""

from __future__ import annotations

import numpy as np

#: Values of the smaller class looked up at a time (bounds the int64 positions).
LOOKUP_BLOCK = 1 << 20


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC(D,F) of the finite 1-D ``scores`` with their bool ``labels`` (True = anomaly),
    correctly rounded from exact integer counts. **Sorts** ``scores`` **in place.**

    For each value ``v`` of the smaller class, ``#all < v + #all ≤ v`` minus the same count
    within its own class is ``2·#other < v + #other = v``; summed, that is twice the pairs
    it wins plus its ties.
    """
    n_anomaly = int(np.count_nonzero(labels))
    n_background = scores.size - n_anomaly
    anomalies_fewer = n_anomaly <= n_background
    fewer = np.sort(scores[labels] if anomalies_fewer else scores[~labels])
    scores.sort()
    twice = 0  # Python integers: exact whatever the pixel count
    for lo in range(0, fewer.size, LOOKUP_BLOCK):
        v = fewer[lo:lo + LOOKUP_BLOCK]
        twice += int(np.searchsorted(scores, v, "left").sum(dtype=np.int64))
        twice += int(np.searchsorted(scores, v, "right").sum(dtype=np.int64))
        twice -= int(np.searchsorted(fewer, v, "left").sum(dtype=np.int64))
        twice -= int(np.searchsorted(fewer, v, "right").sum(dtype=np.int64))
    pairs = 2 * n_anomaly * n_background
    won = twice if anomalies_fewer else pairs - twice  # 2·(pairs the anomaly wins) + ties
    return won / pairs


__all__ = ["LOOKUP_BLOCK", "rank_auc"]
