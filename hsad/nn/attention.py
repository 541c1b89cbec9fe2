"""Grad-CAM attention from a feature map (Selvaraju et al. 2017; CAVGA's latent attention).

For a feature map A ``(N, K, *spatial)`` and a score y per sample that depends on it::

    α_k = mean over positions of ∂y/∂A_k,    M = ReLU(Σ_k α_k A_k)

then M is scaled to [0, 1] per sample (a flat map is left at 0). The map A must be part of
the graph that gave y (computed with gradients enabled, not under
``torch.inference_mode()``). Samples must not interact (eval-mode batch norm), since the
gradient of the batch sum is used.
"""

from __future__ import annotations

import torch


def grad_cam(features: torch.Tensor, score: torch.Tensor, *, normalise: str | None = "minmax",
             create_graph: bool = False, eps: float = 1e-8) -> torch.Tensor:
    """Attention ``(N, *spatial)`` from ``features`` ``(N, K, *spatial)`` and ``score`` ``(N,)``.

    ``normalise``: ``"minmax"`` (per sample to [0, 1]), ``"max"`` (divide by the maximum,
    zeros stay zero) or ``None``. ``create_graph=True`` keeps the map differentiable, for
    a loss on the attention (CAVGA's attention expansion ``mean(1 − A)``).
    """
    if not score.requires_grad:
        raise RuntimeError("grad_cam: the score has no graph; compute it with gradients on")
    if normalise not in ("minmax", "max", None):
        raise ValueError(f"unknown normalisation {normalise!r} (use minmax, max or None)")
    with torch.enable_grad():
        (grads,) = torch.autograd.grad(score.sum(), features, create_graph=create_graph)
    spatial = tuple(range(2, features.dim()))
    alpha = grads.mean(dim=spatial, keepdim=True)
    cam = torch.relu((alpha * features).sum(dim=1))
    if normalise is None:
        return cam
    flat = cam.flatten(1)
    top = flat.max(dim=1).values
    low = flat.min(dim=1).values if normalise == "minmax" else torch.zeros_like(top)
    shape = (-1,) + (1,) * (cam.dim() - 1)
    return (cam - low.view(shape)) / (top - low).clamp_min(eps).view(shape)
