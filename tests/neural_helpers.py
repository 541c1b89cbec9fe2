"""Helpers of the neural models' own tests: a detector built as ``fit`` builds it."""

from __future__ import annotations

import torch


def built(cls, n_bands: int, **params):
    """A ``cls`` detector with its networks (seed 0) and training stages, as ``fit`` makes
    them on ``n_bands``-band spectra, without training."""
    det = cls(**params)
    det.n_bands_ = n_bands
    torch.manual_seed(0)
    det.networks_ = det._build(n_bands)
    return det, det._stages()
