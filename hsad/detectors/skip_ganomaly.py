"""Skip-GANomaly (Akçay, Atapour-Abarghouei & Breckon, IJCNN 2019, "Skip-GANomaly: skip
connected and adversarially trained encoder-decoder anomaly detection") on spectra or k×k
patches.

Generator G: a U-Net (hsad.nn.unet) with skip connections, 1-D convolutions over the
spectral axis (``SpectralUNet``), or 2-D over space with bands as channels in patch mode
(``PatchUNet``); ``x̂ = G(x)``. Discriminator D (one logit), also the latent feature
extractor f (its last hidden layer). Generator loss
``λ_adv·L_adv + λ_con·L_con + λ_lat·L_lat``, λ = 1, 40, 1 (paper):

- ``L_adv = BCE(D(x̂), 1)`` (the generator's side of the GAN loss),
- ``L_con = mean |x − x̂|``, ``L_lat = mean ‖f(x) − f(x̂)‖²``;

D minimises ``BCE(D(x), 1) + BCE(D(x̂), 0)``, one D update after each G update.
Score (paper, Eq. 5): ``A(x) = λ·R(x) + (1−λ)·L(x)``, λ = ``score_lambda`` = 0.9,
``R(x) = ‖x − x̂‖₁`` (centre spectrum), ``L(x) = ‖f(x) − f(x̂)‖₂``, both unscaled as in the
paper; the paper's final min-max scaling of A over the test set is monotone and left out.
``score_form="code"``: the authors' code's terms instead, means of squares
``R(x) = mean (x − x̂)²``, ``L(x) = mean (f(x) − f(x̂))²``.
Terms: ``anomaly``, ``r_con``, ``l_lat``. The residual ``|x − x̂|`` feeds D_SS.
Choices where the paper is silent: docs/models/skip_ganomaly.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import PatchFrontEnd
from hsad.nn.critics import CriticX
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update
from hsad.nn.unet import PatchUNet, SpectralUNet

#: the score's terms: the paper's norms (Eq. 5) or the authors' code's means of squares
SCORE_FORMS = ("paper", "code")


class SkipGANomaly(ReconstructionDetector):
    """Skip-GANomaly: U-Net generator + discriminator; λ·R + (1−λ)·L score, or D_SS."""

    #: also read when scoring: the score's weighting and form
    score_params = ReconstructionDetector.score_params | {"score_lambda", "score_form"}

    name = "skip-ganomaly"
    summary = ("Skip-GANomaly (Akçay et al. 2019) U-Net GAN: 0.9·‖x − x̂‖₁ + "
               "0.1·‖f(x) − f(x̂)‖₂, or D_SS")
    #: A(x), then its reconstruction term R(x) and its latent term L(x).
    score_terms = ("anomaly", "r_con", "l_lat")

    hidden = 64
    depth = 1
    epochs = 10
    batch_size = 128
    lr = 1e-3
    sample_size = 5_000
    channels: int = 4
    unet_levels: int = 3
    w_adv: float = 1.0
    w_con: float = 40.0
    w_lat: float = 1.0
    score_lambda: float = 0.9
    score_form: str = "paper"

    unused_params: ClassVar[dict[str, str]] = {
        "latent": "the U-Net's narrowest width is set by channels and unet_levels"}

    def _checks(self) -> list[tuple[bool, str]]:
        return [(int(self.channels) >= 1, "channels must be ≥ 1"),
                (int(self.unet_levels) >= 1, "unet_levels must be ≥ 1"),
                (0.0 <= float(self.score_lambda) <= 1.0, "score_lambda must be in [0, 1]"),
                (self.score_form in SCORE_FORMS,
                 f"score_form must be one of {', '.join(SCORE_FORMS)}, got {self.score_form!r}"),
                *((float(getattr(self, k)) >= 0, f"{k} must be ≥ 0")
                  for k in ("w_adv", "w_con", "w_lat"))]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        k, c = self.patch_size, int(self.channels)
        levels = [c * 2**i for i in range(int(self.unet_levels))]
        if k == 1:
            return {"generator": SpectralUNet(levels),
                    "critic": CriticX(n_bands, self.widths)}
        front = PatchFrontEnd(n_bands, k, 4 * c)
        return {"generator": PatchUNet(n_bands, levels),
                "critic": CriticX(front.n_features, self.widths, front=front)}

    # ---- training -------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        gen, critic = self.networks_["generator"], self.networks_["critic"]
        bce = nn.BCEWithLogitsLoss()
        w_adv, w_con, w_lat = float(self.w_adv), float(self.w_con), float(self.w_lat)

        def generator(batch, shared):
            (x,) = batch
            x_hat = gen(x)
            fake, feats = critic(x_hat, return_features=True)
            l_adv = bce(fake, torch.ones_like(fake))
            l_con = (x - x_hat).abs().mean()
            l_lat = ((critic.features(x) - feats[-1]) ** 2).mean()
            shared.update(x=x, x_hat=x_hat.detach())
            return {"loss_g": w_adv * l_adv + w_con * l_con + w_lat * l_lat,
                    "l_adv": l_adv, "l_con": l_con, "l_lat": l_lat}

        def discriminator(batch, shared):
            real, fake = critic(shared["x"]), critic(shared["x_hat"])
            return {"loss_d": bce(real, torch.ones_like(real))
                    + bce(fake, torch.zeros_like(fake))}

        def adam(module):
            return torch.optim.Adam(module.parameters(), lr=float(self.lr), betas=(0.5, 0.999))

        return [Stage("gan", [Update("loss_g", generator, adam(gen), frozen=(critic,)),
                              Update("loss_d", discriminator, adam(critic))],
                      int(self.epochs), monitor="l_con")]

    # ---- inference ------------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self.networks_["generator"](x))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        x_hat = self.networks_["generator"](x)
        critic = self.networks_["critic"]
        r_diff = self._centre(x) - self._centre(x_hat)
        l_diff = critic.features(x) - critic.features(x_hat)
        if self.score_form == "code":  # the authors' test(): means of squares
            r, lat = (r_diff ** 2).mean(dim=1), (l_diff ** 2).mean(dim=1)
        else:  # the paper's Eq. 5: L1 and L2 norms
            r, lat = r_diff.abs().sum(dim=1), torch.linalg.vector_norm(l_diff, dim=1)
        lam = float(self.score_lambda)
        return torch.stack([lam * r + (1 - lam) * lat, r, lat], dim=1)
