"""f-AnoGAN's losses and score (Schlegl et al., Medical Image Analysis 2019); its two
training stages are built from them in hsad.detectors.fanogan (hsad.nn.trainer runs them).

Stage 1 is a WGAN-GP (Gulrajani et al. 2017): ``n_critic`` critic steps per generator
step, each on a fresh batch of real samples and latent draws ``z ~ N(0, I)``::

    L_D = E[D(G(z))] − E[D(x)] + λ·E[(‖∇D(x̂)‖₂ − 1)²],  x̂ = εx + (1 − ε)G(z), ε ~ U(0, 1)
    L_G = −E[D(G(z))]

Stage 2 trains the encoder E with G and D frozen, on one of three objectives:

- ``ziz``:   ``(1/d)‖z − E(G(z))‖²``, z ~ N(0, I);
- ``izi``:   ``(1/n)‖x − G(E(x))‖²``;
- ``izi_f``: ``izi + κ·(1/n_d)‖f(x) − f(G(E(x)))‖²``, f = the critic's last hidden features.

The anomaly score is ``A(x) = (1/n)‖x − G(E(x))‖² + κ·(1/n_d)‖f(x) − f(G(E(x)))‖²``, with n
the number of values in x (B for a spectrum, B·k·k for a patch) and n_d the feature width.

The functions take any modules: ``critic(x)`` returns one value per sample and
``critic.features(x)`` its last hidden layer; ``generator(z)`` and ``encoder(x)`` map
between the latent space ``(N, d_z)`` and the data space ``(N, …)``.
"""

from __future__ import annotations

import torch
from torch import nn

from hsad.errors import ParameterError
from hsad.nn.blocks import Discriminator, activation, gradient_penalty

#: Encoder objectives of f-AnoGAN's stage 2.
OBJECTIVES = ("izi_f", "izi", "ziz")


class Critic(nn.Module):
    """A LayerNorm MLP critic (:class:`~hsad.nn.blocks.Discriminator`) behind an optional
    front end (a 1-D conv over bands or a patch convolution).

    ``features(x)`` is the last hidden layer f(x). With ``n_out = d_z`` and
    ``out_act = "tanh"`` the same architecture is f-AnoGAN's encoder.
    """

    def __init__(self, body: Discriminator, front: nn.Module | None = None, n_out: int = 1,
                 out_act: str | None = None):
        super().__init__()
        self.front = front if front is not None else nn.Identity()
        self.body = body.body
        self.head = body.head if n_out == 1 else nn.Linear(body.head.in_features, n_out)
        self.out_act = activation(out_act) if out_act else nn.Identity()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.front(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_act(self.head(self.features(x)))


def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    """WGAN-GP's Adam (β = 0, 0.9); the fused kernel (≈ 20 % faster steps) when available."""
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.0, 0.9), fused=True)
    except (RuntimeError, TypeError):  # older torch, or a device without the fused kernel
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.0, 0.9))


def latent(n: int, d_z: int, rng: torch.Generator | None, device) -> torch.Tensor:
    """``(n, d_z)`` draws of N(0, I) from a CPU generator (reproducible on any device)."""
    return torch.randn(n, d_z, generator=rng).to(device)


def _per_sample_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the first: ``(N, …) → (N,)``."""
    return t.reshape(t.shape[0], -1).mean(dim=1)


def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                gp_weight: float = 10.0, rng: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_D, W)``: WGAN-GP critic loss and the estimate W = E[D(x)] − E[D(G(z))]."""
    fake = fake.detach()
    wasserstein = critic(real).mean() - critic(fake).mean()
    penalty = gradient_penalty(critic, real, fake, generator=rng)
    return gp_weight * penalty - wasserstein, wasserstein.detach()


def gan_updates(generator: nn.Module, critic: nn.Module, d_z: int, rng: torch.Generator,
                *, lr: float, gp_weight: float, n_critic: int) -> list:
    """The WGAN-GP game as trainer updates (hsad.nn.trainer.Update): a critic step on every
    batch (:func:`critic_loss` on G(z), z ~ N(0, I) from ``rng``) and a generator step
    ``−E[D(G(z))]`` every ``n_critic`` batches with the critic frozen; Adam (β = 0, 0.9).
    AnoGAN's training, and f-AnoGAN's first stage."""
    from hsad.nn.trainer import Update

    def critic_update(batch, shared):
        (real,) = batch
        with torch.no_grad():
            fake = generator(latent(real.shape[0], d_z, rng, real.device))
        loss_d, wasserstein = critic_loss(critic, real, fake, gp_weight, rng)
        return {"loss_d": loss_d, "wasserstein": wasserstein}

    def generator_update(batch, shared):
        z = latent(batch[0].shape[0], d_z, rng, batch[0].device)
        return {"loss_g": -critic(generator(z)).mean()}

    return [Update("loss_d", critic_update, adam(critic, lr)),
            Update("loss_g", generator_update, adam(generator, lr), every=int(n_critic),
                   frozen=(critic,))]


def feature_error(critic: nn.Module, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """``(1/n_d)‖f(x) − f(x̂)‖²`` per sample, f = the critic's last hidden features."""
    return _per_sample_mean((critic.features(x) - critic.features(recon)) ** 2)


def encoder_loss(objective: str, encoder: nn.Module, generator: nn.Module, critic: nn.Module,
                 x: torch.Tensor, kappa: float = 1.0, d_z: int | None = None,
                 rng: torch.Generator | None = None) -> torch.Tensor:
    """Batch mean of the stage-2 objective ``izi_f``, ``izi`` or ``ziz`` (module docstring)."""
    if objective == "ziz":
        z = latent(x.shape[0], d_z, rng, x.device)
        return _per_sample_mean((z - encoder(generator(z))) ** 2).mean()
    if objective not in OBJECTIVES:
        raise ParameterError(f"unknown encoder objective {objective!r} "
                             f"(use {', '.join(OBJECTIVES)})")
    recon = generator(encoder(x))
    loss = _per_sample_mean((x - recon) ** 2)
    if objective == "izi_f":
        loss = loss + kappa * feature_error(critic, x, recon)
    return loss.mean()


@torch.no_grad()
def anomaly_terms(x: torch.Tensor, encoder: nn.Module, generator: nn.Module, critic: nn.Module,
                  kappa: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: ``A(x)``, ``(1/n)‖x − G(E(x))‖²`` and ``(1/n_d)‖f(x) − f(G(E(x)))‖²``."""
    recon = generator(encoder(x))
    residual = _per_sample_mean((x - recon) ** 2)
    feature = feature_error(critic, x, recon)
    return residual + kappa * feature, residual, feature
