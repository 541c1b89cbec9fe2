"""Gradient penalties on a critic's input gradient.

- :func:`gradient_penalty` (WGAN-GP, Gulrajani et al. 2017): ``E[(‖∇D(x̂)‖₂ − 1)²]`` on
  random interpolates x̂ of real and fake samples (the implementation in
  :mod:`hsad.nn.blocks`, re-exported here);
- :func:`r1_penalty` (Mescheder et al. 2018): ``E[‖∇_x D(x)‖₂²]`` on real samples; the
  paper's regulariser is ``(γ/2)·r1_penalty``. Several inputs (a joint D(x, z)) share one
  squared norm.

Both keep the graph (``create_graph``) so the penalty trains the critic. The critic must
treat samples independently (no batch norm) for the per-sample gradient to be right.
"""

from __future__ import annotations

import torch
from torch import nn

from hsad.nn.blocks import gradient_penalty

__all__ = ["gradient_penalty", "input_gradients", "r1_penalty"]


def input_gradients(critic: nn.Module, *inputs: torch.Tensor,
                    create_graph: bool = True) -> tuple[torch.Tensor, ...]:
    """``∇_{inputs} Σ_n critic(*inputs)_n``: each sample's gradient of its own output."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        out = critic(*leaves)
        return torch.autograd.grad(out.sum(), leaves, create_graph=create_graph)


def r1_penalty(critic: nn.Module, *real: torch.Tensor) -> torch.Tensor:
    """``E_n[‖∇D(real_n)‖₂²]``, the squared norm taken over all inputs together."""
    grads = input_gradients(critic, *real)
    return sum(g.flatten(1).pow(2).sum(dim=1) for g in grads).mean()
