"""Constrained adversarial autoencoder (Chen & Konukoglu, "Unsupervised Detection of Lesions
in Brain MRI using constrained adversarial auto-encoders", MIDL 2018) on spectra or k×k
patches; choices and measured figures in docs/models/aae.md.

An encoder E and a decoder De rebuild the background; a discriminator D on the code pushes
the aggregate posterior of z = E(x) towards the prior N(0, I) (adversarial autoencoder),
and the latent-consistency constraint keeps the code of the reconstruction at the code of
the input. With x̂ = De(E(x)), per mini-batch:

- autoencoder (E, De): ``L = L_rec + w_const·L_const + w_adv·BCE(D(E(x)), 1)``,
  ``L_rec = mean((x − x̂)²)``, ``L_const = mean((E(x) − E(x̂))²)``;
- discriminator (D): ``BCE(D(z_p), 1) + BCE(D(E(x)), 0)``, z_p ~ N(0, I).

Score (the paper's reconstruction residual, summarised per pixel): ``error =
(1/B)‖x − x̂‖²`` of the centre spectrum; ``latent_error = (1/d_z)‖E(x) − E(x̂)‖²`` is an
extra map (the constraint at inference). ``output="d_ss"`` fuses the residual |x − x̂|.

Where the paper is silent we chose: squared errors averaged over elements (the paper's
‖·‖ on images); one combined autoencoder step (weights w_const = 1, w_adv = 0.01, METHODS
§7's measured AAE) then one discriminator step per mini-batch; MLP (or patch front end)
networks of the framework's default widths; d_z = int(√B + 1).
"""

from __future__ import annotations

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.coders import MLPFeatureDecoder, MLPFeatureEncoder, patch_encoder
from hsad.nn.critics import CriticX
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update


class AAE(ReconstructionDetector):
    """Constrained adversarial autoencoder: reconstruction error, or D_SS of its residual."""

    name = "aae"
    summary = ("constrained adversarial autoencoder (Chen & Konukoglu 2018): latent prior "
               "+ consistency; reconstruction error, or D_SS")
    score_terms = ("error", "latent_error")

    disc_hidden: int = 64
    w_const: float = 1.0
    w_adv: float = 0.01

    def _checks(self) -> list[tuple[bool, str]]:
        return [(int(self.disc_hidden) >= 1, "disc_hidden must be ≥ 1"),
                (float(self.w_const) >= 0, "w_const must be ≥ 0"),
                (float(self.w_adv) >= 0, "w_adv must be ≥ 0")]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        encoder = (MLPFeatureEncoder(n_bands, widths, d_z) if k == 1
                   else patch_encoder(n_bands, k, widths, d_z))
        return {"encoder": encoder,
                "decoder": MLPFeatureDecoder(d_z, widths[::-1], n_bands, patch=k),
                "discriminator": CriticX(d_z, [int(self.disc_hidden)])}

    def _stages(self) -> list[Stage]:
        enc, dec, disc = (self.networks_[k] for k in ("encoder", "decoder", "discriminator"))
        bce = nn.BCEWithLogitsLoss()
        w_const, w_adv = float(self.w_const), float(self.w_adv)
        prior = torch.Generator().manual_seed(int(self.seed) + 1)

        def autoencoder(batch, shared):
            (x,) = batch
            z = enc(x)
            x_hat = dec(z)
            loss_rec = ((x - x_hat) ** 2).mean()
            loss_const = ((z - enc(x_hat)) ** 2).mean()
            loss_adv = bce(disc(z), torch.ones(x.shape[0], 1, device=x.device))
            shared["z"] = z.detach()
            return {"loss": loss_rec + w_const * loss_const + w_adv * loss_adv,
                    "loss_rec": loss_rec, "loss_const": loss_const, "loss_adv": loss_adv}

        def discriminator(batch, shared):
            z = shared["z"]
            z_prior = torch.randn(z.shape, generator=prior).to(z.device)
            ones = torch.ones(z.shape[0], 1, device=z.device)
            return {"loss_d": bce(disc(z_prior), ones) + bce(disc(z), torch.zeros_like(ones))}

        adam = torch.optim.Adam
        updates = [Update("loss", autoencoder,
                          adam([*enc.parameters(), *dec.parameters()], lr=float(self.lr)),
                          frozen=(disc,))]
        if w_adv > 0:
            updates.append(Update("loss_d", discriminator,
                                  adam(disc.parameters(), lr=float(self.lr))))
        return [Stage("train", updates, int(self.epochs), monitor="loss_rec")]

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self.networks_["decoder"](self.networks_["encoder"](x)))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        enc, dec = self.networks_["encoder"], self.networks_["decoder"]
        z = enc(x)
        x_hat = dec(z)
        error = ((self._centre(x) - self._centre(x_hat)) ** 2).mean(dim=1)
        latent_error = ((z - enc(x_hat)) ** 2).mean(dim=1)
        return torch.stack([error, latent_error], dim=1)
