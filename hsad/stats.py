"""Chunk-streamed statistics: one pass over a cube's chunks, never the whole scene.

Partial results per chunk are ``(n, mean, scatter)`` and are merged with Chan's
parallel update, which stays accurate in float64 where the naive
``E[xxᵀ] − μμᵀ`` loses digits on large radiance values.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import numpy as np
import xarray as xr

from hsad.cube import good_band_mask, valid_mask


@dataclass
class Moments:
    """Pixel count, band means and scatter matrix Σ(x−μ)(x−μ)ᵀ (float64)."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray

    @property
    def cov(self) -> np.ndarray:
        """Covariance normalised by N (as the HAD literature's RX does)."""
        return self.scatter / max(self.n, 1)

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        return Moments(n, mean, scatter)


def block_moments(block: np.ndarray, valid: np.ndarray | None = None) -> Moments:
    """Moments of the pixels of one (rows, cols, bands) block."""
    x = np.asarray(block, dtype=np.float64).reshape(-1, block.shape[-1])
    if valid is not None:
        x = x[np.asarray(valid).reshape(-1)]
    b = x.shape[1]
    if x.shape[0] == 0:
        return Moments(0, np.zeros(b), np.zeros((b, b)))
    mean = x.mean(axis=0)
    xc = x - mean
    return Moments(x.shape[0], mean, xc.T @ xc)


def _tree_merge(parts: list) -> Moments:
    while len(parts) > 1:
        parts = [
            dask.delayed(Moments.merge)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    return parts[0]


def cube_moments(cube: xr.DataArray, use_mask: bool = True, bands=None) -> Moments:
    """Mean and scatter of the cube's valid pixels over its good bands, in one pass.

    ``bands`` overrides the band selection (a boolean vector or index list).
    """
    sel = good_band_mask(cube) if bands is None else bands
    data = cube.data[:, :, np.asarray(sel)]
    data = data.rechunk({2: -1})
    blocks = data.to_delayed()[:, :, 0].ravel()
    if use_mask:
        mask = valid_mask(cube).data.rechunk(data.chunks[:2])
        masks = mask.to_delayed().ravel()
        parts = [dask.delayed(block_moments)(b, m) for b, m in zip(blocks, masks, strict=True)]
    else:
        parts = [dask.delayed(block_moments)(b) for b in blocks]
    (result,) = dask.compute(_tree_merge(list(parts)))
    return result


def pinv_precision(cov: np.ndarray, ridge: float = 0.0, rcond: float = 1e-10) -> np.ndarray:
    """Inverse covariance: pseudo-inverse, optionally of ``cov + ridge·tr(cov)/B·I``."""
    cov = np.asarray(cov, dtype=np.float64)
    if ridge > 0:
        cov = cov + np.eye(cov.shape[0]) * (ridge * np.trace(cov) / cov.shape[0])
    return np.linalg.pinv(cov, rcond=rcond, hermitian=True)


def whitening(
    cov: np.ndarray, ridge: float = 0.0, rcond: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Whitening matrix W (B×r) with W Wᵀ = ``pinv_precision(cov, ridge, rcond)``.

    ``‖(x − μ) W‖²`` is then the squared Mahalanobis distance, computed as one GEMM. Returns
    ``(W, eigenvalues kept)``; r, the number kept, is the rank of the covariance used.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if ridge > 0:
        cov = cov + np.eye(cov.shape[0]) * (ridge * np.trace(cov) / cov.shape[0])
    lam, vec = np.linalg.eigh(cov)
    keep = lam > rcond * max(lam.max(initial=0.0), 0.0)
    lam, vec = lam[keep][::-1], vec[:, keep][:, ::-1]
    return vec / np.sqrt(lam), lam


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row of ``x`` (…, B) → (…)."""
    xc = x - mean.astype(x.dtype, copy=False)
    return np.einsum("...i,...i->...", xc @ precision.astype(x.dtype, copy=False), xc)
