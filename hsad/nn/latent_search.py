"""Latent search: gradient descent in z for every sample of a batch at once (AnoGAN).

``objective(z)`` returns one loss per sample, ``(N,)``, e.g. AnoGAN's
``(1−λ)‖x−G(z)‖₁ + λ‖f(x)−f(G(z))‖₁``. The samples are independent (the networks must be
in eval mode: no batch statistics), so descending on the batch sum moves each z_n by the
gradient of its own loss, and the elementwise Adam/SGD updates keep every sample's path
the same whatever batch it is in. Only z gets gradients: the networks' ``.grad`` stay as
they are.

Gradients are enabled inside (``torch.enable_grad()``), so the search runs under an outer
``torch.no_grad()``. It cannot run under ``torch.inference_mode()``, and the objective must
not hold inference-mode tensors that autograd would save: clone them first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hsad import stopping

_MASK32 = 0xFFFFFFFF


def random_latents(n: int, d_z: int, generator: torch.Generator | None = None,
                   device=None) -> torch.Tensor:
    """``(n, d_z)`` draws of N(0, I) from ``generator`` (CPU by default), moved to ``device``."""
    dev = generator.device if generator is not None else "cpu"
    return torch.randn(n, d_z, generator=generator, device=dev).to(device or dev)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x·c mod 2³²`` for x in [0, 2³²) without int64 overflow (16-bit halves)."""
    return (((x & 0xFFFF) * c) + ((((x >> 16) * c) & 0xFFFF) << 16)) & _MASK32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (Wellons' lowbias32) on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def indexed_normal(ids: torch.Tensor, d_z: int, seed: int = 0) -> torch.Tensor:
    """``(N, d_z)`` float32 N(0, I) draws that depend only on ``(seed, ids[n], j)``.

    A counter-based draw (hash → uniforms → Box–Muller) on ``ids``' device: a pixel's
    initial z is the same whatever tile or batch it is scored in. ``ids`` are int64 ≥ 0.
    """
    ids = ids.to(torch.int64)
    h = _hash32(torch.full_like(ids, seed & _MASK32))
    h = _hash32(h ^ (ids & _MASK32))
    h = _hash32(h ^ ((ids >> 32) & _MASK32))
    k = torch.arange(2 * ((d_z + 1) // 2), device=ids.device, dtype=torch.int64)
    bits = _hash32(_hash32((h[:, None] + k * 0x9E3779B9) & _MASK32))
    u = (bits.to(torch.float64) + 0.5) / 2.0**32  # in (0, 1)
    u1, u2 = u[:, 0::2], u[:, 1::2]
    r, theta = torch.sqrt(-2.0 * torch.log(u1)), 2.0 * torch.pi * u2
    z = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=2).flatten(1)
    return z[:, :d_z].to(torch.float32)


def latent_search(objective: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor,
                  steps: int = 100, lr: float = 0.05, method: str = "adam",
                  betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` updates of z from ``z0`` (on z0's device); returns ``(z*, objective(z*))``.

    ``method`` is ``"adam"`` (AnoGAN's choice) or ``"sgd"`` (plain gradient descent). Both
    results are detached.
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError("latent_search needs autograd: call it outside torch.inference_mode()")
    if method not in ("adam", "sgd"):
        raise ValueError(f"unknown latent-search method {method!r} (use adam or sgd)")
    z = z0.detach().clone()
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    since = stopping.mark()
    with torch.enable_grad():
        for t in range(1, steps + 1):
            stopping.check(since)  # Ctrl-C or SIGTERM: a long search ends at this step
            z.requires_grad_(True)
            loss = objective(z)
            if loss.shape != z.shape[:1]:
                raise ValueError(f"objective must return one loss per sample, got {loss.shape}")
            (g,) = torch.autograd.grad(loss.sum(), z)
            z = z.detach()
            if method == "sgd":
                z = z - lr * g
                continue
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g * g
            m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            z = z - lr * m_hat / (v_hat.sqrt() + eps)
    with torch.no_grad():
        return z, objective(z).detach()
