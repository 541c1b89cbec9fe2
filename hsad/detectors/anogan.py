"""AnoGAN (Schlegl et al., "Unsupervised Anomaly Detection with Generative Adversarial
Networks to Guide Marker Discovery", IPMI 2017) on spectra or k×k patches; choices and
measured figures in docs/models/anogan.md.

Training: a GAN on the background, generator G: z → x, critic D with last hidden features
f. The paper trains a DCGAN; like the hyperspectral ports of AnoGAN we train a WGAN-GP
(hsad.nn.wgan: ``L_D = E[D(G(z))] − E[D(x)] + 10·E[(‖∇D(x̂)‖₂ − 1)²]``,
``L_G = −E[D(G(z))]``, ``n_critic`` = 5 critic steps per generator step, Adam lr 1e-3,
β = (0, 0.9)), with a LayerNorm critic, as f-AnoGAN here (its losses are tested).

Inference: for every pixel of a batch at once, ``search_steps`` Adam steps (lr
``search_lr``) in z from z0 ~ N(0, I) drawn by pixel position (hsad.nn.noise, so the map
does not depend on tiling) minimise the paper's loss

``A(z) = (1−λ)·‖x − G(z)‖₁ + λ·‖f(x) − f(G(z))‖₁``,   λ = 0.1 (paper),

and the score is A(z*) (sums over all values of x, B·k·k for a patch, and over the n_d
features, as the paper's norms). Score terms: ``anomaly`` = A(z*), ``a_residual`` =
‖x − G(z*)‖₁, ``a_feature`` = ‖f(x) − f(G(z*))‖₁. G(z*) (its centre spectrum) is the
reconstruction, so ``output="d_ss"`` fuses the residual |x − G(z*)|; the search runs once
per batch for both (the score terms are computed first and the reconstruction reuses z*).

Where the paper is silent for spectra we chose: MLP generator d_z → 64 → 64 → B (linear
output; the data are normalised, not in [−1, 1]) and LayerNorm MLP critic B → 64 → 64 → 1,
the patch front end in patch mode; z ~ N(0, I) (the paper draws uniform z; the shared
pixel-keyed draw is Gaussian), d_z = int(√B + 1); the search's step count and learning
rate by the time budget (100 steps, lr 0.1; docs/models/anogan.md), and the GAN's lr
(1e-3, not f-AnoGAN's 1e-4) by its Wasserstein estimate: at 1e-4 the ≈ 1200 critic steps of
the default budget leave it far from converged.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import PatchFrontEnd
from hsad.nn.coders import MLPFeatureDecoder
from hsad.nn.critics import CriticX
from hsad.nn.latent_search import indexed_normal, latent_search
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage
from hsad.nn.wgan import gan_updates

#: The longest latent search a model may ask for (steps per pixel): 100× the default, 20×
#: the paper's Γ = 500. Bounded because a model file sets it, and inference runs as long as
#: it says (10⁴ steps: 25–50 minutes per 100×100 scene on 2 cores).
SEARCH_STEPS_MAX = 10_000

#: The last batch's search, per thread: ``_reconstruct`` reuses the ``_score`` just run.
_LAST = threading.local()


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ‖a − b‖₁ over all axes but the first."""
    return (a - b).abs().flatten(1).sum(dim=1)


class AnoGAN(ReconstructionDetector):
    """AnoGAN: GAN on the background; per-pixel latent search; residual + feature score."""

    #: also read when scoring: the latent search's steps, rate and feature weight
    score_params = ReconstructionDetector.score_params | {"search_steps", "search_lr",
                                                          "lam_feature"}

    name = "anogan"
    summary = ("AnoGAN (Schlegl et al. IPMI 2017): WGAN-GP on the background, batched latent "
               "search z*; (1−λ)‖x−G(z*)‖₁ + λ‖f(x)−f(G(z*))‖₁, or D_SS")
    score_terms = ("anomaly", "a_residual", "a_feature")
    score_needs_grad = True
    residual_uses_score = True

    hidden = 64
    epochs = 30
    batch_size = 128
    lr = 1e-3
    sample_size = 5_000
    n_critic: int = 5
    gp_weight: float = 10.0
    lam_feature: float = 0.1
    search_steps: int = 100
    search_lr: float = 0.1

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (int(self.n_critic) >= 1, "n_critic must be ≥ 1"),
            (float(self.gp_weight) >= 0, "gp_weight must be ≥ 0"),
            (0.0 <= float(self.lam_feature) <= 1.0, "lam_feature must be in [0, 1]"),
            (0 <= int(self.search_steps) <= SEARCH_STEPS_MAX,
             f"search_steps must be 0…{SEARCH_STEPS_MAX} (each pixel's latent search runs "
             f"that many steps), got {self.search_steps}"),
            (float(self.search_lr) > 0, "search_lr must be > 0"),
        ]

    # ---- networks -------------------------------------------------------------------
    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        front = PatchFrontEnd(n_bands, k, 64) if k > 1 else None
        n_in = front.n_features if front is not None else n_bands
        return {"generator": MLPFeatureDecoder(d_z, widths, n_bands, patch=k),
                "critic": CriticX(n_in, widths, front=front, norm="layer")}

    # ---- training: WGAN-GP ----------------------------------------------------------
    def _stages(self) -> list[Stage]:
        gen, critic = self.networks_["generator"], self.networks_["critic"]
        rng = torch.Generator().manual_seed(int(self.seed) + 1)
        d_z = self.latent_size(self.n_bands_)
        updates = gan_updates(gen, critic, d_z, rng, lr=float(self.lr),
                              gp_weight=float(self.gp_weight), n_critic=int(self.n_critic))
        return [Stage("gan", updates, int(self.epochs))]

    # ---- inference: latent search -----------------------------------------------------
    def loss_terms(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per sample ``(A, ‖x − G(z)‖₁, ‖f(x) − f(G(z))‖₁)`` at z."""
        gen, critic = self.networks_["generator"], self.networks_["critic"]
        lam = float(self.lam_feature)
        fake = gen(z)
        residual = _l1(x, fake)
        feature = _l1(critic.features(x), critic.features(fake))
        return (1 - lam) * residual + lam * feature, residual, feature

    def search(self, x: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
        """z* of every sample of ``x`` from ``z0``: ``search_steps`` Adam steps on A(z)."""
        x = x.detach().clone()  # no inference-mode tensor inside the graph
        with torch.no_grad():
            f_x = self.networks_["critic"].features(x)
        gen, critic, lam = self.networks_["generator"], self.networks_["critic"], \
            float(self.lam_feature)

        def objective(z):
            fake = gen(z)
            return (1 - lam) * _l1(x, fake) + lam * _l1(f_x, critic.features(fake))

        z, _ = latent_search(objective, z0, steps=int(self.search_steps),
                             lr=float(self.search_lr))
        return z

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        z = self.search(x, noise.normal(self.latent_size(self.n_bands_)))
        with torch.no_grad():
            terms = self.loss_terms(x, z)
            _LAST.x, _LAST.recon = x, self.networks_["generator"](z)
        return torch.stack(terms, dim=1)

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(z*) of the batch just scored; otherwise a search from z0 keyed by row."""
        if getattr(_LAST, "x", None) is x:
            recon = _LAST.recon
            _LAST.x = _LAST.recon = None
            return self._centre(recon)
        ids = torch.arange(x.shape[0], device=x.device)
        z0 = indexed_normal(ids, self.latent_size(self.n_bands_), int(self.seed))
        with torch.no_grad():
            return self._centre(self.networks_["generator"](self.search(x, z0)))
