"""Diagonal Gaussians for VAEs (VAE, CAVGA): head, reparameterisation, KL, log-likelihood.

A Gaussian is ``(mu, logvar)``, the mean and the log-variance per dimension. The
importance-weighted estimate (Burda et al. 2016) with L samples ``z_l ~ q(z|x)``::

    log p̂(x) = log (1/L) Σ_l p(x|z_l) p(z_l) / q(z_l|x)

is a lower bound on log p(x) in expectation that rises with L; L = 1 gives the ELBO.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

LOG_2PI = math.log(2.0 * math.pi)

#: ``decode(z) -> (mu_x, logvar_x)``; ``logvar_x`` may be a float (fixed variance).
Decode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | float]]


class GaussianHead(nn.Module):
    """Features ``(N, n_in)`` → ``(mu, logvar)``, each ``(N, n_out)``."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.mu = nn.Linear(n_in, n_out)
        self.logvar = nn.Linear(n_in, n_out)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = h.flatten(1)
        return self.mu(h), self.logvar(h)


class ConvGaussianHead(nn.Module):
    """Feature map ``(N, c_in, *size)`` → ``(mu, logvar)`` maps ``(N, c_out, *size)`` by 1×1
    convolutions: a convolutional latent (CAVGA). ``dim`` is 1 (bands) or 2 (space)."""

    def __init__(self, c_in: int, c_out: int, dim: int = 2):
        super().__init__()
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        self.mu, self.logvar = conv(c_in, c_out, 1), conv(c_in, c_out, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(h), self.logvar(h)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``z = mu + exp(logvar/2)·ε``, ε ~ N(0, I): shape of ``mu``, or ``(L, *mu.shape)``.

    ε is drawn on the generator's device (CPU by default, reproducible on any device).
    """
    shape = mu.shape if n_samples is None else (n_samples, *mu.shape)
    dev = generator.device if generator is not None else mu.device
    eps = torch.randn(shape, generator=generator, dtype=mu.dtype, device=dev).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, σ²) ‖ N(0, I))`` per sample: ``½ Σ (mu² + σ² − 1 − log σ²)``, shape ``(N,)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(dim=1)


def gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor | float = 0.0,
                      event_dims: int = 1) -> torch.Tensor:
    """``log N(x; mu, diag σ²)`` summed over the last ``event_dims`` axes (broadcasts)."""
    logvar = torch.as_tensor(logvar, dtype=mu.dtype, device=mu.device)
    lp = -0.5 * (LOG_2PI + logvar + (x - mu).pow(2) * torch.exp(-logvar))
    return lp.sum(dim=tuple(range(-event_dims, 0)))


def log_mean_exp(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``log mean exp(t)`` along ``dim``, computed stably."""
    return torch.logsumexp(t, dim=dim) - math.log(t.shape[dim])


def _sample_and_decode(x, mu_q, logvar_q, decode: Decode, n_samples: int, generator,
                       event_dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, log p(x|z))``: L draws ``(L, N, d)`` decoded in one batch, and ``(L, N)``."""
    z = reparameterise(mu_q, logvar_q, n_samples, generator)
    mu_x, logvar_x = decode(z.reshape(-1, *z.shape[2:]))
    mu_x = mu_x.reshape(n_samples, *x.shape)
    if torch.is_tensor(logvar_x) and logvar_x.dim() > 0:
        logvar_x = logvar_x.reshape(n_samples, *x.shape)
    return z, gaussian_log_prob(x, mu_x, logvar_x, event_dims)


def importance_terms(x: torch.Tensor, mu_q: torch.Tensor, logvar_q: torch.Tensor,
                     decode: Decode, n_samples: int, generator: torch.Generator | None = None,
                     event_dims: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log p(x|z_l), log p(z_l), log q(z_l|x))``, each ``(L, N)``, for L draws of q(z|x).

    ``decode`` gets all ``L·N`` latents in one batch. Lu & Xu's VAE score is
    ``−log_mean_exp(lpz − lqz) − log_mean_exp(lpx)``.
    """
    z, lpx = _sample_and_decode(x, mu_q, logvar_q, decode, n_samples, generator, event_dims)
    lpz = gaussian_log_prob(z, torch.zeros_like(z), 0.0, mu_q.dim() - 1)
    lqz = gaussian_log_prob(z, mu_q, logvar_q, mu_q.dim() - 1)
    return lpx, lpz, lqz


def iw_log_likelihood(x, mu_q, logvar_q, decode: Decode, n_samples: int,
                      generator: torch.Generator | None = None, event_dims: int = 1):
    """Importance-weighted estimate of ``log p(x)`` per sample, ``(N,)`` (module docstring)."""
    lpx, lpz, lqz = importance_terms(x, mu_q, logvar_q, decode, n_samples, generator,
                                     event_dims)
    return log_mean_exp(lpx + lpz - lqz, dim=0)


def elbo(x, mu_q, logvar_q, decode: Decode, n_samples: int = 1,
         generator: torch.Generator | None = None, event_dims: int = 1):
    """``E_q[log p(x|z)] − KL(q ‖ N(0, I))`` per sample: L-sample mean, analytic KL."""
    _, lpx = _sample_and_decode(x, mu_q, logvar_q, decode, n_samples, generator, event_dims)
    return lpx.mean(dim=0) - kl_standard_normal(mu_q, logvar_q)
