"""ALAE, the adversarial latent autoencoder (Pidhorskyi, Adjeroh & Doretto, "Adversarial
Latent Autoencoders", CVPR 2020) on spectra or k×k patches; choices and measured figures
in docs/models/alae.md.

Four networks: a mapping F: z → w, a generator G: w → x, an encoder E: x → w and a
discriminator D: w → logit; the GAN's discriminator is D∘E, its generator G∘F. With
softplus(t) = log(1 + eᵗ), z ~ N(0, I) and w = F(z), each mini-batch runs the paper's three
steps (its Algorithm 1):

1. E, D: ``L = softplus(D(E(G(w)))) + softplus(−D(E(x))) + (γ/2)·E‖∇ₓD(E(x))‖²``
   (non-saturating loss, R1 penalty on real samples, γ = 10 as the paper);
2. F, G: ``L = softplus(−D(E(G(F(z)))))``;
3. E, G: the latent reciprocity ``L = mean‖w − E(G(w))‖²``, w = F(z) fixed (F frozen).

Adam, lr 0.002, β = (0, 0.99) (the paper); steps 1 and 3 share the E+D optimiser, steps 2
and 3 the F+G optimiser (the official code steps both after the reciprocity loss).

Score terms: ``error = (1/B)‖x − G(E(x))‖²`` (centre spectrum, the reconstruction the
paper's anomaly experiments compare), and ``latent_error = (1/d_w)‖E(x) − E(G(E(x)))‖²``
(the reciprocity at inference; ``output="latent_error"``). ``output="d_ss"`` fuses the
residual |x − G(E(x))|.

Where the paper is silent for spectra we chose: MLP E, G, F of the framework's widths
(``hidden``, ``depth``) and a 3-layer MLP D (d_w → ``disc_hidden`` → ``disc_hidden`` → 1),
the patch front end on E in patch mode, d_z = d_w = int(√B + 1), the squared error
averaged over bands as the norm of the score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.coders import FeatureMLP, MLPFeatureDecoder, MLPFeatureEncoder, patch_encoder
from hsad.nn.critics import CriticX
from hsad.nn.noise import PixelNoise
from hsad.nn.penalties import r1_penalty
from hsad.nn.trainer import Stage, Update
from hsad.nn.wgan import latent


class _Both:
    """Two optimisers stepped together (step 3 updates E with one and G with the other)."""

    def __init__(self, *optimisers: torch.optim.Optimizer):
        self.optimisers = optimisers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimisers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimisers:
            opt.step()


class ALAE(ReconstructionDetector):
    """ALAE: GAN in the learned latent w, latent reciprocity, R1; reconstruction error."""

    name = "alae"
    summary = ("ALAE (Pidhorskyi et al. CVPR 2020): mapping F, generator G, encoder E, "
               "discriminator on w, reciprocity + R1; ‖x−G(E(x))‖² or latent error, or D_SS")
    score_terms = ("error", "latent_error")

    epochs = 30
    batch_size = 128
    lr = 2e-3
    sample_size = 5_000
    disc_hidden: int = 64
    gamma: float = 10.0

    def _checks(self) -> list[tuple[bool, str]]:
        return [(int(self.disc_hidden) >= 1, "disc_hidden must be ≥ 1"),
                (float(self.gamma) >= 0, "gamma must be ≥ 0")]

    # ---- networks -------------------------------------------------------------------
    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_w, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        encoder = (MLPFeatureEncoder(n_bands, widths, d_w) if k == 1
                   else patch_encoder(n_bands, k, widths, d_w))
        return {"mapping": FeatureMLP([d_w, *widths, d_w]),
                "generator": MLPFeatureDecoder(d_w, widths[::-1], n_bands, patch=k),
                "encoder": encoder,
                "discriminator": CriticX(d_w, [int(self.disc_hidden)] * 2)}

    # ---- training: the paper's three steps --------------------------------------------
    def discriminator_loss(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step 1: non-saturating D∘E loss on real x and fakes G(F(z)), plus (γ/2)·R1."""
        f, g, e, d = (self.networks_[k] for k in
                      ("mapping", "generator", "encoder", "discriminator"))
        with torch.no_grad():
            fake = g(f(z))
        adv = fn.softplus(d(e(fake))).mean() + fn.softplus(-d(e(x))).mean()
        r1 = r1_penalty(lambda real: d(e(real)), x)
        return {"loss_d": adv + 0.5 * float(self.gamma) * r1, "loss_adv_d": adv, "r1": r1}

    def generator_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Step 2: ``softplus(−D(E(G(F(z)))))``."""
        f, g, e, d = (self.networks_[k] for k in
                      ("mapping", "generator", "encoder", "discriminator"))
        return fn.softplus(-d(e(g(f(z))))).mean()

    def reciprocity_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Step 3: ``mean‖w − E(G(w))‖²`` with w = F(z) held fixed."""
        f, g, e = (self.networks_[k] for k in ("mapping", "generator", "encoder"))
        with torch.no_grad():
            w = f(z)
        return ((w - e(g(w))) ** 2).mean()

    def _stages(self) -> list[Stage]:
        f, g, e, d = (self.networks_[k] for k in
                      ("mapping", "generator", "encoder", "discriminator"))
        rng = torch.Generator().manual_seed(int(self.seed) + 1)
        d_z = self.latent_size(self.n_bands_)

        def adam(*modules):
            params = [p for m in modules for p in m.parameters()]
            return torch.optim.Adam(params, lr=float(self.lr), betas=(0.0, 0.99))

        enc_opt, dec_opt = adam(e, d), adam(f, g)

        def step_d(batch, shared):
            (x,) = batch
            return self.discriminator_loss(x, latent(x.shape[0], d_z, rng, x.device))

        def step_g(batch, shared):
            return {"loss_g": self.generator_loss(latent(batch[0].shape[0], d_z, rng,
                                                         batch[0].device))}

        def step_lae(batch, shared):
            return {"loss_lae": self.reciprocity_loss(latent(batch[0].shape[0], d_z, rng,
                                                             batch[0].device))}

        updates = [Update("loss_d", step_d, enc_opt, frozen=(f, g)),
                   Update("loss_g", step_g, dec_opt, frozen=(e, d)),
                   Update("loss_lae", step_lae, _Both(enc_opt, dec_opt), frozen=(f, d))]
        return [Stage("train", updates, int(self.epochs), monitor="loss_lae")]

    # ---- inference ------------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self.networks_["generator"](self.networks_["encoder"](x)))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        g, e = self.networks_["generator"], self.networks_["encoder"]
        w = e(x)
        x_hat = g(w)
        error = ((self._centre(x) - self._centre(x_hat)) ** 2).mean(dim=1)
        latent_error = ((w - e(x_hat)) ** 2).mean(dim=1)
        return torch.stack([error, latent_error], dim=1)
