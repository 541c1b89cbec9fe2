"""ALOCC: adversarially learned one-class classifier (Sabokrou, Khalooei, Fathy, Adeli,
CVPR 2018, "Adversarially learned one-class classifier for novelty detection").

R is a denoising autoencoder (MLP on spectra, or a patch front end and MLP with
``input="patch"``), D a classifier with a sigmoid output. Training input is corrupted,
``X̃ = X + η``, ``η ~ N(0, σ²I)`` (``noise_std`` = σ, normalised units). Alternating updates
on each mini-batch, D first, then R (D frozen):

- D: ``BCE(D(X), 1) + BCE(D(R(X̃)), 0)``, i.e. it maximises ``L_{R+D} = log D(X) +
  log(1 − D(R(X̃)))``;
- R: ``BCE(D(R(X̃)), 1) + λ·(1/B)‖X − R(X̃)‖²``, the paper's ``L_{R+D} + λ·L_R`` with the
  usual non-saturating generator term; λ = ``lam_r`` = 0.4 (the paper, §4.1).

The plain score is the paper's ``1 − D(R(x))`` on the clean input (computed as
``sigmoid(−logit)``, the same value without the cancellation near 1); the second term is
R's error ``(1/B)‖x − R(x)‖²``. The residual for D_SS is ``x − R(x)``. Choices where the
paper is silent, and measured figures: docs/models/alocc.md.
"""

from __future__ import annotations

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import PatchFrontEnd
from hsad.nn.coders import MLPFeatureDecoder, MLPFeatureEncoder, patch_encoder
from hsad.nn.critics import CriticX
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update


class ALOCC(ReconstructionDetector):
    """ALOCC: denoising autoencoder R + classifier D; score 1 − D(R(x)), or D_SS."""

    name = "alocc"
    summary = ("ALOCC one-class classifier (Sabokrou et al. 2018): denoising AE R + "
               "discriminator D; 1 − D(R(x)), or D_SS of x − R(x)")
    #: The paper's score 1 − D(R(x)), then R's reconstruction error.
    score_terms = ("novelty", "r_error")

    hidden = 64
    epochs = 30
    sample_size = 20_000
    #: λ of ``L_{R+D} + λ·L_R`` (the paper: 0.4; the authors' code: 0.2).
    lam_r: float = 0.4
    #: σ of the training noise η, in normalised units (the authors' code: 0.155).
    noise_std: float = 0.155

    def _checks(self) -> list[tuple[bool, str]]:
        return [(float(self.lam_r) >= 0, "lam_r must be ≥ 0"),
                (float(self.noise_std) >= 0, "noise_std must be ≥ 0")]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        if k == 1:
            encoder, classifier = MLPFeatureEncoder(n_bands, widths, d_z), CriticX(n_bands, widths)
        else:
            front = PatchFrontEnd(n_bands, k)
            encoder = patch_encoder(n_bands, k, widths, d_z)
            classifier = CriticX(front.n_features, widths, front=front)
        decoder = MLPFeatureDecoder(d_z, widths[::-1], n_bands, patch=k)
        return {"reconstructor": nn.Sequential(encoder, decoder), "classifier": classifier}

    def _stages(self) -> list[Stage]:
        r_net, d_net = self.networks_["reconstructor"], self.networks_["classifier"]
        bce = nn.BCEWithLogitsLoss()
        rng = torch.Generator().manual_seed(int(self.seed) + 1)
        sigma, lam = float(self.noise_std), float(self.lam_r)

        def corrupt(x: torch.Tensor) -> torch.Tensor:
            return x + sigma * torch.randn(x.shape, generator=rng).to(x.device)

        def classifier(batch, shared):
            (x,) = batch
            x_noisy = corrupt(x)
            with torch.no_grad():
                fake = r_net(x_noisy)
            shared["x_noisy"] = x_noisy
            real_logit, fake_logit = d_net(x), d_net(fake)
            return {"loss_d": bce(real_logit, torch.ones_like(real_logit))
                    + bce(fake_logit, torch.zeros_like(fake_logit))}

        def reconstructor(batch, shared):
            (x,) = batch
            rebuilt = r_net(shared["x_noisy"])
            logit = d_net(rebuilt)
            adv = bce(logit, torch.ones_like(logit))
            loss_r = ((x - rebuilt) ** 2).mean()
            return {"loss_rd": adv + lam * loss_r, "adv_r": adv, "loss_r": loss_r}

        adam = torch.optim.Adam
        updates = [Update("loss_d", classifier, adam(d_net.parameters(), lr=float(self.lr))),
                   Update("loss_rd", reconstructor, adam(r_net.parameters(), lr=float(self.lr)),
                          frozen=(d_net,))]
        return [Stage("adversarial", updates, int(self.epochs), monitor="loss_r")]

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self.networks_["reconstructor"](x))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        rebuilt = self.networks_["reconstructor"](x)
        novelty = torch.sigmoid(-self.networks_["classifier"](rebuilt)[:, 0])
        r_error = ((self._centre(x) - self._centre(rebuilt)) ** 2).mean(dim=1)
        return torch.stack([novelty, r_error], dim=1)
