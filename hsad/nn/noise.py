"""Random numbers keyed by pixel, so that a score drawing them does not depend on tiling.

A score that draws noise at inference (a latent search's starting points, a sampled
likelihood) gets a :class:`PixelNoise` for each batch. Its draws for a pixel depend only
on the seed, the pixel's position in the scene and how many draws the score made before:
a counter-based generator (SplitMix64 of seed, position and counter, vectorised in numpy)
replaces a sequential one, whose draws would follow the order tiles and batches come in.
"""

from __future__ import annotations

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (uint64 arithmetic wraps, as intended)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def pixel_uniform(seed: int, keys: np.ndarray, n: int, stream: int = 0) -> np.ndarray:
    """``(len(keys), n)`` float64 draws of U(0, 1), open interval, one row per key."""
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        start = np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
        base = _mix(start + _GOLDEN + np.uint64(int(stream)) * _M2)
        counter = keys * np.uint64(n) + np.arange(n, dtype=np.uint64)
        bits = _mix(_mix(counter + base) + _GOLDEN)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


class PixelNoise:
    """Noise for one batch of pixels (``keys``: their positions ``row·width + col``).

    Each call draws a fresh stream: calling ``normal(d)`` twice gives two independent
    ``(N, d)`` tensors, the same for a pixel in any tiling.
    """

    def __init__(self, seed: int, keys: np.ndarray, device: torch.device | str = "cpu"):
        self.seed, self.keys, self.device = int(seed), np.asarray(keys), torch.device(device)
        self.calls = 0

    def _next(self, n: int) -> np.ndarray:
        self.calls += 1
        return pixel_uniform(self.seed, self.keys, n, stream=self.calls)

    def uniform(self, n: int) -> torch.Tensor:
        """``(N, n)`` float32 draws of U(0, 1)."""
        return torch.from_numpy(self._next(n).astype(np.float32)).to(self.device)

    def normal(self, n: int) -> torch.Tensor:
        """``(N, n)`` float32 draws of N(0, 1) (Box–Muller)."""
        u = self._next(2 * n)
        z = np.sqrt(-2.0 * np.log(u[:, :n])) * np.cos(2.0 * np.pi * u[:, n:])
        return torch.from_numpy(z.astype(np.float32)).to(self.device)
