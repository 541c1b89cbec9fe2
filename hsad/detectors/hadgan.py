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

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import Discriminator, MLPDecoder, MLPEncoder, PatchDecoder, PatchEncoder
from hsad.nn.trainer import Stage, Update


class HADGAN(ReconstructionDetector):
    """HADGAN: adversarial autoencoder + spatial–spectral residual fusion (D_SS)."""

    name = "hadgan"
    summary = "HADGAN adversarial autoencoder; RX + attribute-filter fusion of its residual"

    latent: int | None = 4
    disc_hidden: int = 64
    w_ziz: float = 1.0
    w_shrink: float = 0.1
    w_adv_z: float = 0.01
    w_adv_i: float = 0.01
    output = "d_ss"

    def _checks(self) -> list[tuple[bool, str]]:
        return [(int(self.disc_hidden) >= 1, "disc_hidden must be ≥ 1")] + [
            (float(getattr(self, w)) >= 0, f"{w} must be ≥ 0")
            for w in ("w_ziz", "w_shrink", "w_adv_z", "w_adv_i")]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
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
        return self._centre(self.networks_["decoder"](self.networks_["encoder"](x)))

    def _stages(self) -> list[Stage]:
        net = self.networks_
        enc, dec, d_z, d_i = net["encoder"], net["decoder"], net["d_z"], net["d_i"]
        bce = nn.BCEWithLogitsLoss()
        w_adv_z, w_adv_i = float(self.w_adv_z), float(self.w_adv_i)
        prior = torch.Generator().manual_seed(int(self.seed) + 1)

        def autoencoder(batch, shared):
            (y,) = batch
            z = enc(y)
            y_hat = dec(z)
            loss_r = ((y - y_hat) ** 2).mean()
            loss_ziz = ((z - enc(dec(z))) ** 2).mean()
            loss_shrink = (z**2).mean()
            loss = loss_r + float(self.w_ziz) * loss_ziz + float(self.w_shrink) * loss_shrink
            out = {"loss": loss, "loss_r": loss_r, "loss_ziz": loss_ziz,
                   "loss_shrink": loss_shrink}
            if w_adv_z > 0 or w_adv_i > 0:  # E fools D_z, De (through ŷ) fools D_I
                ones = torch.ones(y.shape[0], 1, device=y.device)
                out["adv_z"], out["adv_i"] = bce(d_z(z), ones), bce(d_i(y_hat), ones)
                out["loss"] = loss + w_adv_z * out["adv_z"] + w_adv_i * out["adv_i"]
            shared.update(y=y, z=z.detach(), y_hat=y_hat.detach())
            return out

        def discriminators(batch, shared):
            y, z, y_hat = shared["y"], shared["z"], shared["y_hat"]
            ones = torch.ones(y.shape[0], 1, device=y.device)
            zeros = torch.zeros(y.shape[0], 1, device=y.device)
            z_prior = torch.randn(y.shape[0], z.shape[1], generator=prior).to(y.device)
            return {"loss_d": bce(d_z(z_prior), ones) + bce(d_z(z), zeros)
                    + bce(d_i(y), ones) + bce(d_i(y_hat), zeros)}

        adam = torch.optim.Adam
        updates = [Update("loss", autoencoder, adam([*enc.parameters(), *dec.parameters()],
                                                    lr=float(self.lr)))]
        if w_adv_z > 0 or w_adv_i > 0:
            opt_d = adam([*d_z.parameters(), *d_i.parameters()], lr=float(self.lr))
            updates.append(Update("loss_d", discriminators, opt_d))
        return [Stage("autoencoder", updates, int(self.epochs), monitor="loss_r")]
