"""GANomaly (Akçay, Atapour-Abarghouei & Breckon, ACCV 2018, "GANomaly: semi-supervised
anomaly detection via adversarial training") on spectra or k×k patches.

Generator G = encoder–decoder–encoder: ``z = G_E(x)``, ``x̂ = G_D(z)``, ``ẑ = E(x̂)``; a
discriminator D (one logit; f = its last hidden layer). Generator loss
``L = w_adv·L_adv + w_con·L_con + w_enc·L_enc``, w = 1, 50, 1 (paper):

- ``L_adv = mean ‖f(x) − f(x̂)‖²`` (feature matching; mean over features and batch),
- ``L_con = mean |x − x̂|`` (L1; the whole patch in patch mode),
- ``L_enc = mean ‖z − ẑ‖²``;

D minimises ``BCE(D(x), 1) + BCE(D(x̂), 0)``. One D update follows each G update.
Score (paper, Eq. 7): ``A(x) = ‖G_E(x) − E(G(x))‖₁`` (sum over the d_z latents); the
authors' code scores with the mean squared latent difference instead, reported as the
second term ``latent_mse``. The residual ``|x − x̂|`` (centre spectrum) feeds D_SS.
Choices where the paper is silent: docs/models/ganomaly.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import PatchFrontEnd
from hsad.nn.coders import MLPFeatureDecoder, MLPFeatureEncoder, patch_encoder
from hsad.nn.critics import CriticX
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update


class GANomaly(ReconstructionDetector):
    """GANomaly: encoder–decoder–encoder GAN; latent distance score, or D_SS of x − x̂."""

    name = "ganomaly"
    summary = ("GANomaly (Akçay et al. 2018) encoder-decoder-encoder GAN: latent distance "
               "‖G_E(x) − E(G(x))‖₁, or D_SS")
    #: the paper's L1 latent distance, then the authors' code's mean squared one.
    score_terms = ("latent", "latent_mse")

    hidden = 64
    epochs = 15
    batch_size = 64
    lr = 2e-4
    sample_size = 10_000
    channels: int = 32
    patch_only_params: ClassVar[tuple[str, ...]] = ("patch", "channels")
    w_adv: float = 1.0
    w_con: float = 50.0
    w_enc: float = 1.0

    def _checks(self) -> list[tuple[bool, str]]:
        return [(int(self.channels) >= 1, "channels must be ≥ 1"),
                *((float(getattr(self, k)) >= 0, f"{k} must be ≥ 0")
                  for k in ("w_adv", "w_con", "w_enc"))]

    def _encoder(self, n_bands: int) -> nn.Module:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        if k == 1:
            return MLPFeatureEncoder(n_bands, widths, d_z)
        return patch_encoder(n_bands, k, widths, d_z, channels=int(self.channels))

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        front = PatchFrontEnd(n_bands, k, int(self.channels)) if k > 1 else None
        return {
            "encoder": self._encoder(n_bands),                          # G_E
            "decoder": MLPFeatureDecoder(d_z, widths[::-1], n_bands, patch=k),  # G_D
            "encoder2": self._encoder(n_bands),                         # E
            "critic": CriticX(front.n_features if front else n_bands, widths, front=front),
        }

    def _forward(self, x: torch.Tensor):
        """``(z, x̂, ẑ)`` of a batch."""
        net = self.networks_
        z = net["encoder"](x)
        x_hat = net["decoder"](z)
        return z, x_hat, net["encoder2"](x_hat)

    # ---- training -------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        net = self.networks_
        critic = net["critic"]
        bce = nn.BCEWithLogitsLoss()
        w_adv, w_con, w_enc = float(self.w_adv), float(self.w_con), float(self.w_enc)

        def generator(batch, shared):
            (x,) = batch
            z, x_hat, z_hat = self._forward(x)
            l_adv = ((critic.features(x) - critic.features(x_hat)) ** 2).mean()
            l_con = (x - x_hat).abs().mean()
            l_enc = ((z - z_hat) ** 2).mean()
            shared.update(x=x, x_hat=x_hat.detach())
            return {"loss_g": w_adv * l_adv + w_con * l_con + w_enc * l_enc,
                    "l_adv": l_adv, "l_con": l_con, "l_enc": l_enc}

        def discriminator(batch, shared):
            x, x_hat = shared["x"], shared["x_hat"]
            real, fake = critic(x), critic(x_hat)
            return {"loss_d": bce(real, torch.ones_like(real))
                    + bce(fake, torch.zeros_like(fake))}

        def adam(*modules):
            params = [p for m in modules for p in m.parameters()]
            return torch.optim.Adam(params, lr=float(self.lr), betas=(0.5, 0.999))

        gen = (net["encoder"], net["decoder"], net["encoder2"])
        return [Stage("gan", [Update("loss_g", generator, adam(*gen), frozen=(critic,)),
                              Update("loss_d", discriminator, adam(critic))],
                      int(self.epochs), monitor="l_con")]

    # ---- inference ------------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self._forward(x)[1])

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        z, _, z_hat = self._forward(x)
        diff = z - z_hat
        return torch.stack([diff.abs().sum(dim=1), (diff**2).mean(dim=1)], dim=1)
