"""Random draws keyed by pixel, so that a score that draws them does not depend on tiling.

A score that needs noise at inference (a latent search's starting points, a sampled
likelihood) gets a :class:`PixelNoise` for each batch. Its draws for a pixel depend only
on the seed, the pixel's position in the scene and how many draws the score made before
(counter-based: :func:`hsad.nn.latent_search.indexed_normal`), not on the order in which
tiles and batches come.
"""

from __future__ import annotations

import numpy as np
import torch

from hsad.nn.latent_search import indexed_normal


class PixelNoise:
    """Noise for one batch of pixels (``keys``: their positions ``row·width + col``).

    Each call draws a fresh stream: ``normal(d)`` twice gives two independent ``(N, d)``
    tensors, the same for a pixel whatever tile or batch it is in.
    """

    def __init__(self, seed: int, keys: np.ndarray, device: torch.device | str = "cpu"):
        self.seed, self.device = int(seed), torch.device(device)
        self.keys = torch.from_numpy(np.asarray(keys, dtype=np.int64))
        self.calls = 0

    def normal(self, n: int) -> torch.Tensor:
        """``(N, n)`` float32 draws of N(0, 1) on the batch's device."""
        self.calls += 1
        stream = (self.seed * 1_000_003 + self.calls) & 0xFFFFFFFF
        return indexed_normal(self.keys, n, seed=stream).to(self.device)
