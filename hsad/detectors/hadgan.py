"""HADGAN (Jiang et al., TGRS 2020): an adversarial autoencoder with a latent and a spectral
discriminator, trained on the scene itself; anomalies are the pixels it rebuilds badly.

Autoencoder loss ``L_R + w_ziz·L_ziz + w_shrink·L_shrink + w_adv_z·L_adv(D_z) +
w_adv_i·L_adv(D_I)``:

- ``L_R = (1/B)‖y − De(E(y))‖²``, ``L_ziz = (1/d_z)‖z − E(De(z))‖²``, ``L_shrink = (1/d_z)‖z‖²``
- D_z separates prior samples N(0, I) from codes z = E(y); E learns to fool it.
- D_I separates real spectra from reconstructions; De learns to fool it.

Detection runs the residual through hsad.fusion (D_spectral, D_spatial, D_SS).
Choices and measured figures: docs/hadgan.md.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hsad.detectors import register
from hsad.detectors.neural import ReconstructionDetector
from hsad.nn.blocks import (
    Discriminator,
    MLPDecoder,
    MLPEncoder,
    PatchDecoder,
    PatchEncoder,
)
from hsad.nn.trainer import History, Trainer


@register
class HADGAN(ReconstructionDetector):
    """HADGAN: adversarial autoencoder + spatial–spectral residual fusion (D_SS)."""

    name = "hadgan"
    summary = "HADGAN adversarial autoencoder; RX + attribute-filter fusion of its residual"

    def __init__(
        self,
        input: str = "pixel",
        patch: int = 3,
        hidden: int = 128,
        depth: int = 2,
        latent: int | None = 4,
        disc_hidden: int = 64,
        epochs: int = 20,
        batch_size: int = 512,
        lr: float = 1e-3,
        w_ziz: float = 1.0,
        w_shrink: float = 0.1,
        w_adv_z: float = 0.01,
        w_adv_i: float = 0.01,
        sample_size: int = 50_000,
        normalisation: str = "percentile",
        fusion: str = "aed",
        lam: float = 0.6,
        n_components: int = 4,
        area: int = 36,
        levels: int = 256,
        radius: int = 1,
        eps: float = 0.001,
        fusion_norm: str = "minmax",
        pc_source: str = "cube",
        output: str = "d_ss",
        seed: int = 0,
        device: str = "auto",
        progress: bool = True,
        early_stopping: int | None = None,
    ):
        self.input = input
        self.patch = patch
        self.hidden = hidden
        self.depth = depth
        self.latent = latent
        self.disc_hidden = disc_hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.w_ziz = w_ziz
        self.w_shrink = w_shrink
        self.w_adv_z = w_adv_z
        self.w_adv_i = w_adv_i
        self.sample_size = sample_size
        self.normalisation = normalisation
        self.fusion = fusion
        self.lam = lam
        self.n_components = n_components
        self.area = area
        self.levels = levels
        self.radius = radius
        self.eps = eps
        self.fusion_norm = fusion_norm
        self.pc_source = pc_source
        self.output = output
        self.seed = seed
        self.device = device
        self.progress = progress
        self.early_stopping = early_stopping

    def latent_size(self, n_bands: int) -> int:
        """d_z: ``latent`` if given, else ``int(√B + 1)`` as in the reference code."""
        return int(self.latent) if self.latent else int(math.sqrt(n_bands) + 1)

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        if int(self.hidden) < 1 or int(self.depth) < 1:
            raise ValueError("hidden and depth must be ≥ 1")
        d_z = self.latent_size(n_bands)
        widths = [int(self.hidden)] * int(self.depth)
        k = self.patch_size
        if k == 1:
            encoder = MLPEncoder(n_bands, widths, d_z)
            decoder = MLPDecoder(d_z, widths[::-1], n_bands)
        else:
            encoder = PatchEncoder(n_bands, k, widths, d_z)
            decoder = PatchDecoder(d_z, widths[::-1], n_bands, k)
        return {
            "encoder": encoder,
            "decoder": decoder,
            "d_z": Discriminator(d_z, [int(self.disc_hidden)]),
            "d_i": Discriminator(n_bands * k * k, [int(self.disc_hidden)]),
        }

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        out = self.networks_["decoder"](self.networks_["encoder"](x))
        if out.dim() == 4:  # patch mode: the centre spectrum of the rebuilt patch
            h = out.shape[-1] // 2
            out = out[:, :, h, h]
        return out

    def _train(self, x: torch.Tensor, trainer: Trainer) -> History:
        net = self.networks_
        enc, dec, d_z, d_i = net["encoder"], net["decoder"], net["d_z"], net["d_i"]
        lr = float(self.lr)
        opt_ae = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
        opt_d = torch.optim.Adam([*d_z.parameters(), *d_i.parameters()], lr=lr)
        bce = nn.BCEWithLogitsLoss()
        w_ziz, w_shrink = float(self.w_ziz), float(self.w_shrink)
        w_adv_z, w_adv_i = float(self.w_adv_z), float(self.w_adv_i)
        adversarial = w_adv_z > 0 or w_adv_i > 0
        prior = torch.Generator().manual_seed(int(self.seed) + 1)

        def step(batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
            (y,) = batch
            n = y.shape[0]
            ones = torch.ones(n, 1, device=y.device)
            zeros = torch.zeros(n, 1, device=y.device)
            z = enc(y)
            y_hat = dec(z)
            loss_r = ((y - y_hat) ** 2).mean()
            loss_ziz = ((z - enc(dec(z))) ** 2).mean()
            loss_shrink = (z**2).mean()
            loss = loss_r + w_ziz * loss_ziz + w_shrink * loss_shrink
            if adversarial:  # E fools D_z, De (through ŷ) fools D_I
                adv_z = bce(d_z(z), ones)
                adv_i = bce(d_i(y_hat), ones)
                loss = loss + w_adv_z * adv_z + w_adv_i * adv_i
            opt_ae.zero_grad(set_to_none=True)
            loss.backward()
            opt_ae.step()
            out = {"loss": loss.item(), "loss_r": loss_r.item(), "loss_ziz": loss_ziz.item(),
                   "loss_shrink": loss_shrink.item()}
            if adversarial:
                z_prior = torch.randn(n, z.shape[1], generator=prior).to(y.device)
                loss_d = (bce(d_z(z_prior), ones) + bce(d_z(z.detach()), zeros)
                          + bce(d_i(y), ones) + bce(d_i(y_hat.detach()), zeros))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                out.update(adv_z=adv_z.item(), adv_i=adv_i.item(), loss_d=loss_d.item())
            return out

        for module in net.values():
            module.train()
        return trainer.fit(step, x)
