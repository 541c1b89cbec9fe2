"""Slow per-pixel reference loop for the dual-window detectors (local RX, CRD) in tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def per_pixel(x: np.ndarray, inner: int, outer: int,
              statistic: Callable[[np.ndarray, np.ndarray], float]) -> np.ndarray:
    """``statistic(y, ring)`` for every valid pixel y: ``ring`` (n × B, float64) holds the
    valid pixels of the outer window, clipped at the image edge, outside the inner window.
    NaN for invalid pixels and empty rings."""
    rows, cols, _ = x.shape
    h, g = outer // 2, inner // 2
    valid = np.isfinite(x).all(axis=-1)
    out = np.full((rows, cols), np.nan)
    for i in range(rows):
        for j in range(cols):
            if not valid[i, j]:
                continue
            ring = [
                x[a, b]
                for a in range(max(0, i - h), min(rows, i + h + 1))
                for b in range(max(0, j - h), min(cols, j + h + 1))
                if (abs(a - i) > g or abs(b - j) > g) and valid[a, b]
            ]
            if ring:
                out[i, j] = statistic(x[i, j], np.array(ring, dtype=np.float64))
    return out
