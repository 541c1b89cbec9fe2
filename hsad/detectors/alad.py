"""ALAD (Zenati, Romain, Foo, Lecouat & Chandrasekhar, "Adversarially learned anomaly
detection", ICDM 2018, arXiv:1812.02288) on spectra or k×k patches.

A BiGAN (encoder E: x → z, generator G: z → x) with three discriminators, all spectrally
normalised: D_xz(x, z) (``JointCritic``) separates (x, E(x)) from (G(z), z); D_xx(x, x′)
(``PairCritic``) separates (x, x) from (x, G(E(x))); D_zz(z, z′) separates (z, z) from
(z, E(G(z))): the ALICE conditional-entropy terms that make G(E(x)) ≈ x and E(G(z)) ≈ z.
With σ = BCE-with-logits, z ~ N(0, I), x̂ = G(E(x)), ẑ = E(G(z)) (as the authors' code):

- D_xz, D_xx, D_zz minimise ``σ(D_xz(x, E(x)), 1) + σ(D_xz(G(z), z), 0)``,
  ``σ(D_xx(x, x), 1) + σ(D_xx(x, x̂), 0)`` and ``σ(D_zz(z, z), 1) + σ(D_zz(z, ẑ), 0)``;
- G minimises ``σ(D_xz(G(z), z), 1) + C`` and E minimises ``σ(D_xz(x, E(x)), 0) + C``, with
  ``C = σ(D_xx(x, x), 0) + σ(D_xx(x, x̂), 1) + σ(D_zz(z, z), 0) + σ(D_zz(z, ẑ), 1)``;
  one G/E step after each discriminator step.

Score (paper): ``A(x) = ‖f_xx(x, x) − f_xx(x, G(E(x)))‖₁``, f_xx = D_xx's last hidden
layer. Extra terms, as the authors' code reports them: ``ch = σ(D_xx(x, x̂), 1)`` and
``l1 = ‖x − x̂‖₁`` (centre spectrum). The residual ``|x − x̂|`` feeds D_SS.

Where the paper is silent we chose: MLPs for spectra (patch mode: a 3×3 conv front end on
E and D_xz's x branch, D_xx on the flattened patch pair, ``l1`` on the centre spectrum);
no batch norm in D_xz (the code has one; spectral norm instead), one dropout rate (0.2)
for all discriminators; the scene itself as training data; no moving average of the
weights at inference; G and E stepped as one sum by one Adam (each one's gradient is its
own loss's: the code's two optimisers); sizes, ``lr`` = 2e-4 and training length for the
CPU budget (docs/models/alad.md).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import PatchFrontEnd
from hsad.nn.coders import MLPFeatureDecoder, MLPFeatureEncoder, patch_encoder
from hsad.nn.critics import JointCritic, PairCritic
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update


class ALAD(ReconstructionDetector):
    """ALAD: BiGAN with D_xz, D_xx, D_zz (spectral norm); D_xx feature score, or D_SS."""

    name = "alad"
    summary = ("ALAD (Zenati et al. 2018) BiGAN with spectrally normalised D_xz, D_xx, D_zz: "
               "‖f_xx(x, x) − f_xx(x, G(E(x)))‖₁, or D_SS")
    #: the paper's feature score, then the code's cross-entropy and L1 scores.
    score_terms = ("fm", "ch", "l1")

    hidden = 64
    depth = 1
    epochs = 8
    batch_size = 128
    lr = 2e-4
    sample_size = 10_000
    disc_hidden: int = 64
    disc_hidden_z: int = 32
    dropout: float = 0.2
    channels: int = 32
    patch_only_params: ClassVar[tuple[str, ...]] = ("patch", "channels")

    def _checks(self) -> list[tuple[bool, str]]:
        return [(0.0 <= float(self.dropout) < 1.0, "dropout must be in [0, 1)"),
                *((int(getattr(self, k)) >= 1, f"{k} must be ≥ 1")
                  for k in ("disc_hidden", "disc_hidden_z", "channels"))]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k, h = (self.latent_size(n_bands), self.widths, self.patch_size,
                             int(self.disc_hidden))
        kw = dict(dropout=float(self.dropout), spectral=True)
        if k == 1:
            encoder, front = MLPFeatureEncoder(n_bands, widths, d_z), None
        else:
            encoder = patch_encoder(n_bands, k, widths, d_z, channels=int(self.channels))
            front = PatchFrontEnd(n_bands, k, int(self.channels))
        return {
            "encoder": encoder,
            "generator": MLPFeatureDecoder(d_z, widths[::-1], n_bands, patch=k),
            "d_xz": JointCritic(front.n_features if front else n_bands, d_z, [h],
                                hidden_a=[h], hidden_b=[h], front_a=front, **kw),
            "d_xx": PairCritic(n_bands * k * k, [h], **kw),
            "d_zz": PairCritic(d_z, [int(self.disc_hidden_z)], **kw),
        }

    # ---- training -------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        net = self.networks_
        enc, gen, d_xz, d_xx, d_zz = (net[k] for k in ("encoder", "generator", "d_xz",
                                                         "d_xx", "d_zz"))
        prior = torch.Generator().manual_seed(int(self.seed) + 1)
        d_z = self.latent_size(self.n_bands_)

        def draw(x):
            return torch.randn(x.shape[0], d_z, generator=prior).to(x.device)

        def bce(logit, target: float):
            return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))

        def discriminators(batch, shared):
            (x,) = batch
            z = draw(x)
            with torch.no_grad():
                z_x, x_z = enc(x), gen(z)
                x_hat, z_hat = gen(z_x), enc(x_z)
            loss_xz = bce(d_xz(x, z_x), 1.0) + bce(d_xz(x_z, z), 0.0)
            loss_xx = bce(d_xx(x, x), 1.0) + bce(d_xx(x, x_hat), 0.0)
            loss_zz = bce(d_zz(z, z), 1.0) + bce(d_zz(z, z_hat), 0.0)
            return {"loss_d": loss_xz + loss_xx + loss_zz, "loss_dxz": loss_xz,
                    "loss_dxx": loss_xx, "loss_dzz": loss_zz}

        def generator_encoder(batch, shared):
            # G minimises gen_xz + C, E minimises enc_xz + C. gen_xz depends on G only and
            # enc_xz on E only, so the gradient of gen_xz + enc_xz + C is each player's own
            # gradient: one step of one Adam over both is the code's two optimisers.
            (x,) = batch
            z = draw(x)
            z_x, x_z = enc(x), gen(z)
            x_hat, z_hat = gen(z_x), enc(x_z)
            gen_xz, enc_xz = bce(d_xz(x_z, z), 1.0), bce(d_xz(x, z_x), 0.0)
            cost_x = bce(d_xx(x, x), 0.0) + bce(d_xx(x, x_hat), 1.0)
            cost_z = bce(d_zz(z, z), 0.0) + bce(d_zz(z, z_hat), 1.0)
            cycle = cost_x + cost_z
            return {"loss_ge": gen_xz + enc_xz + cycle, "loss_g": gen_xz + cycle,
                    "loss_e": enc_xz + cycle, "cost_x": cost_x, "cost_z": cost_z,
                    "l_rec": (x - x_hat).abs().mean()}

        def adam(*modules):
            params = [p for m in modules for p in m.parameters()]
            return torch.optim.Adam(params, lr=float(self.lr), betas=(0.5, 0.999))

        critics = (d_xz, d_xx, d_zz)
        return [Stage("alad", [Update("loss_d", discriminators, adam(*critics)),
                               Update("loss_ge", generator_encoder, adam(gen, enc),
                                      frozen=critics)],
                      int(self.epochs), monitor="l_rec")]

    # ---- inference ------------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self.networks_["generator"](self.networks_["encoder"](x)))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        d_xx = self.networks_["d_xx"]
        x_hat = self.networks_["generator"](self.networks_["encoder"](x))
        f_real = d_xx.features(x, x)
        logit, feats = d_xx(x, x_hat, return_features=True)
        fm = (f_real - feats[-1]).abs().sum(dim=1)
        ch = F.softplus(-logit[:, 0])
        l1 = (self._centre(x) - self._centre(x_hat)).abs().sum(dim=1)
        return torch.stack([fm, ch, l1], dim=1)
