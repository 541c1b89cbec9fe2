"""EGBAD (Zenati, Foo, Lecouat, Manek & Chandrasekhar, "Efficient GAN-based anomaly
detection", ICLR 2018 workshop, arXiv:1802.06222) on spectra or k×k patches.

A BiGAN: encoder E: x → z, generator G: z → x, discriminator D(x, z) (``JointCritic``: an
x branch, a z branch, a joint layer whose output f_D is the feature layer; dropout as in
the paper's code). With σ = BCE-with-logits and z ~ N(0, I):

- D minimises ``σ(D(x, E(x)), 1) + σ(D(G(z), z), 0)``;
- G minimises ``σ(D(G(z), z), 1)`` and E minimises ``σ(D(x, E(x)), 0)`` (the
  non-saturating form of the authors' code), one step of each after each D step.

Score (paper): ``A(x) = α·L_G(x) + (1 − α)·L_D(x)``, α = 0.9, with
``L_G = ‖x − G(E(x))‖₁`` (centre spectrum) and ``L_D`` selected by ``disc_score``:

- ``"fm"`` (default): feature matching ``‖f_D(x, E(x)) − f_D(G(E(x)), E(x))‖₁``;
- ``"bce"``: cross-entropy ``σ(D(x, E(x)), 1)``.

Terms: ``anomaly``, ``l_g``, ``l_d``. The residual ``|x − G(E(x))|`` feeds D_SS. ``fm`` is
the default as in the authors' code (``--m fm``), not chosen by AUC.

Where the paper is silent we chose: MLPs for spectra (a 3×3 conv front end on E and on
D's x branch in patch mode; L_G on the centre spectrum); the scene itself as training
data; no moving average of the weights at inference (the code's EMA); G and E stepped as
one sum by one Adam (their losses involve disjoint weights: the code's two optimisers);
sizes, ``lr`` = 2e-4 and training length for the CPU budget (docs/models/egbad.md).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import PatchFrontEnd
from hsad.nn.coders import MLPFeatureDecoder, MLPFeatureEncoder, patch_encoder
from hsad.nn.critics import JointCritic
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update

#: The two L_D variants of the score.
DISC_SCORES = ("fm", "bce")


class EGBAD(ReconstructionDetector):
    """EGBAD: BiGAN (E, G, D(x, z)); α·‖x − G(E(x))‖₁ + (1 − α)·L_D score, or D_SS."""

    #: also read when scoring: the score's weighting and discriminator term
    score_params = ReconstructionDetector.score_params | {"alpha", "disc_score"}

    name = "egbad"
    summary = ("EGBAD (Zenati et al. 2018) BiGAN with D(x, z): 0.9·‖x − G(E(x))‖₁ + "
               "0.1·L_D (feature matching or cross-entropy), or D_SS")
    #: A(x), then its reconstruction term L_G and its discriminator term L_D.
    score_terms = ("anomaly", "l_g", "l_d")

    hidden = 64
    depth = 1
    epochs = 20
    batch_size = 128
    lr = 2e-4
    sample_size = 10_000
    disc_hidden: int = 64
    dropout: float = 0.2
    channels: int = 32
    patch_only_params: ClassVar[tuple[str, ...]] = ("patch", "channels")
    alpha: float = 0.9
    disc_score: str = "fm"

    def _checks(self) -> list[tuple[bool, str]]:
        return [(self.disc_score in DISC_SCORES, f"disc_score must be one of {DISC_SCORES}"),
                (0.0 <= float(self.alpha) <= 1.0, "alpha must be in [0, 1]"),
                (0.0 <= float(self.dropout) < 1.0, "dropout must be in [0, 1)"),
                (int(self.disc_hidden) >= 1, "disc_hidden must be ≥ 1"),
                (int(self.channels) >= 1, "channels must be ≥ 1")]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k, h = (self.latent_size(n_bands), self.widths, self.patch_size,
                             int(self.disc_hidden))
        if k == 1:
            encoder, front = MLPFeatureEncoder(n_bands, widths, d_z), None
        else:
            encoder = patch_encoder(n_bands, k, widths, d_z, channels=int(self.channels))
            front = PatchFrontEnd(n_bands, k, int(self.channels))
        critic = JointCritic(front.n_features if front else n_bands, d_z, [h], hidden_a=[h],
                             hidden_b=[h], front_a=front, dropout=float(self.dropout))
        return {"encoder": encoder,
                "generator": MLPFeatureDecoder(d_z, widths[::-1], n_bands, patch=k),
                "critic": critic}

    # ---- training -------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        enc, gen, critic = (self.networks_[k] for k in ("encoder", "generator", "critic"))
        prior = torch.Generator().manual_seed(int(self.seed) + 1)
        d_z = self.latent_size(self.n_bands_)

        def draw(x):
            return torch.randn(x.shape[0], d_z, generator=prior).to(x.device)

        def bce(logit, target: float):
            return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))

        def discriminator(batch, shared):
            (x,) = batch
            z = draw(x)
            with torch.no_grad():
                z_x, x_z = enc(x), gen(z)
            return {"loss_d": bce(critic(x, z_x), 1.0) + bce(critic(x_z, z), 0.0)}

        def generator_encoder(batch, shared):
            # G's loss depends on G only and E's on E only, so one step on their sum with
            # one Adam over both is the code's two optimisers (Adam acts per element).
            (x,) = batch
            z = draw(x)
            loss_g = bce(critic(gen(z), z), 1.0)
            z_x = enc(x)
            loss_e = bce(critic(x, z_x), 0.0)
            with torch.no_grad():  # a diagnostic: EGBAD never trains on it
                l_rec = (x - gen(z_x)).abs().mean()
            return {"loss_ge": loss_g + loss_e, "loss_g": loss_g, "loss_e": loss_e,
                    "l_rec": l_rec}

        def adam(*modules):
            params = [p for m in modules for p in m.parameters()]
            return torch.optim.Adam(params, lr=float(self.lr), betas=(0.5, 0.999))

        return [Stage("bigan", [Update("loss_d", discriminator, adam(critic)),
                                Update("loss_ge", generator_encoder, adam(gen, enc),
                                       frozen=(critic,))],
                      int(self.epochs), monitor="l_rec")]

    # ---- inference ------------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self.networks_["generator"](self.networks_["encoder"](x)))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        enc, gen, critic = (self.networks_[k] for k in ("encoder", "generator", "critic"))
        z = enc(x)
        x_hat = gen(z)
        l_g = (self._centre(x) - self._centre(x_hat)).abs().sum(dim=1)
        logit, feats = critic(x, z, return_features=True)
        if self.disc_score == "fm":
            l_d = (feats[-1] - critic.features(x_hat, z)).abs().sum(dim=1)
        else:  # σ(D(x, E(x)), 1) = softplus(−logit)
            l_d = F.softplus(-logit[:, 0])
        a = float(self.alpha)
        return torch.stack([a * l_g + (1 - a) * l_d, l_g, l_d], dim=1)
