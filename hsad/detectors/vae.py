"""Variational autoencoder (Lu & Xu, "Anomaly detection for skin disease images using
variational autoencoder", arXiv:1807.01349, 2018) on spectra or k×k patches; choices and
measured figures in docs/models/vae.md.

Encoder q(z|x) = N(mu(x), diag σ²(x)) (an MLP, or the patch front end, with a Gaussian
head), prior p(z) = N(0, I), decoder p(x|z) = N(mu_x(z), diag σ_b²) with a **learned
per-band variance** σ_b² (one per band, and per patch position, shared by all pixels),
calibrated in closed form (Rybkin et al. 2021, "σ-VAE"): on each mini-batch σ_b² is its
maximum-likelihood value, the batch's mean squared residual of band b (floor ``VAR_FLOOR``),
and a running mean of it (``RUNNING``) is the σ_b² used at inference. Training maximises
the ELBO, one reparameterised sample per pixel, analytic KL:

``loss = mean_n [KL(q(z|x_n) ‖ N(0, I)) − log p(x_n|z_n)] / n_in`` (n_in = B·k·k).

Score (Lu & Xu's importance-weighted terms, L = ``n_samples`` draws z_l ~ q(z|x)):

``s = kl + reconstruction``, ``kl = −log (1/L)·Σ_l p(z_l)/q(z_l|x)``,
``reconstruction = −log (1/L)·Σ_l p(x|z_l)`` (both by log-sum-exp),

the draws keyed by pixel position (``noise.normal``), so a map does not depend on tiling
or batch size. ``_reconstruct`` is the decoder mean at the posterior mean, mu_x(mu(x)),
whose residual feeds D_SS (``output="d_ss"``).

Where the paper is silent we chose: the Gaussian decoder with a per-band variance learned
in closed form (a fixed unit variance in normalised units is far wider than the residuals;
a variance learned by gradient steps from σ = 1 moved only to σ ≈ 0.74 in 600 Adam steps,
when the residuals' σ is ≈ 0.06–0.3); the loss divided by the input size (the Adam step
does not depend on it); L = 10; MLP networks of the framework's default widths;
d_z = int(√B + 1).
"""

from __future__ import annotations

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import PatchFrontEnd
from hsad.nn.coders import FeatureMLP, MLPFeatureDecoder
from hsad.nn.gaussian import (
    LOG_2PI,
    GaussianHead,
    gaussian_log_prob,
    kl_standard_normal,
    log_mean_exp,
    reparameterise,
)
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update

#: the encoder's log-variance is clipped to at most this when scoring (not in training): an
#: input far outside the training data (an undeclared fill value) drives it to where
#: exp(0.5·logvar) overflows; trained pixels stay near 0 (at most 0.3 on abu-urban-2)
LOGVAR_MAX = 30.0

#: The most draws a model may ask for per pixel (100× the default): a model file sets it,
#: and scoring's time and memory grow with it.
N_SAMPLES_MAX = 1000

#: Smallest decoder variance (normalised units: σ ≥ 0.01 of a band's spread).
VAR_FLOOR = 1e-4
#: Weight of each mini-batch in the running decoder variance used at inference.
RUNNING = 0.1


class _GaussianEncoder(nn.Module):
    """Spectrum or patch → ``(mu, logvar)`` of q(z|x): front end, hidden stages, head."""

    def __init__(self, n_bands: int, patch: int, widths: list[int], n_latent: int):
        super().__init__()
        self.front = PatchFrontEnd(n_bands, patch) if patch > 1 else nn.Flatten()
        n_in = self.front.n_features if patch > 1 else n_bands
        self.body = FeatureMLP([n_in, *widths], out_act="leaky_relu")
        self.head = GaussianHead(widths[-1], n_latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.body(self.front(x)))


class _GaussianDecoder(nn.Module):
    """z → ``(mu_x, logvar_x)``: an MLP mean and one log-variance per input element (band,
    and patch position), the same for every pixel: a buffer that training calibrates."""

    def __init__(self, n_latent: int, widths: list[int], n_bands: int, patch: int):
        super().__init__()
        self.mean = MLPFeatureDecoder(n_latent, widths, n_bands, patch=patch)
        self.register_buffer("logvar", torch.zeros(self.mean.out_shape))

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, mu_x: torch.Tensor) -> torch.Tensor:
        """The batch's maximum-likelihood log σ² per element (floored); it also moves the
        running value used at inference."""
        var = ((x - mu_x) ** 2).mean(dim=0).clamp_min(VAR_FLOOR)
        self.logvar.copy_(torch.lerp(self.logvar.exp(), var, RUNNING).log())
        return var.log()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.mean(z)
        return mu, self.logvar.expand_as(mu)


class VAE(ReconstructionDetector):
    """VAE: importance-weighted KL + reconstruction score, or D_SS of its residual."""

    #: also read when scoring: the draws per pixel
    score_params = ReconstructionDetector.score_params | {"n_samples"}

    name = "vae"
    summary = ("variational autoencoder (Lu & Xu 2018): importance-weighted KL + "
               "reconstruction score, or D_SS")
    score_terms = ("score", "kl", "reconstruction")

    epochs = 30
    n_samples: int = 10

    def _checks(self) -> list[tuple[bool, str]]:
        return [(1 <= int(self.n_samples) <= N_SAMPLES_MAX,
                 f"n_samples must be 1…{N_SAMPLES_MAX} (each pixel's score decodes that "
                 f"many draws), got {self.n_samples}")]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        return {"encoder": _GaussianEncoder(n_bands, k, widths, d_z),
                "decoder": _GaussianDecoder(d_z, widths[::-1], n_bands, k)}

    def _stages(self) -> list[Stage]:
        enc, dec = self.networks_["encoder"], self.networks_["decoder"]
        params = [*enc.parameters(), *dec.parameters()]

        def loss(batch, shared):
            (x,) = batch
            mu, logvar = enc(x)
            mu_x = dec.mean(reparameterise(mu, logvar))
            lpx = gaussian_log_prob(x, mu_x, dec.calibrate(x, mu_x), x.dim() - 1)
            return {"loss": (kl_standard_normal(mu, logvar) - lpx).mean() / x[0].numel()}

        return [Stage("train", [Update("loss", loss, torch.optim.Adam(params, lr=float(self.lr)))],
                      int(self.epochs), monitor="loss")]

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.networks_["encoder"](x)
        return self._centre(self.networks_["decoder"](mu)[0])

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        enc, dec = self.networks_["encoder"], self.networks_["decoder"]
        mu, logvar = enc(x)
        logvar = logvar.clamp(max=LOGVAR_MAX)
        n, d, n_l = mu.shape[0], mu.shape[1], int(self.n_samples)
        eps = noise.normal(n_l * d).reshape(n, n_l, d).transpose(0, 1)  # (L, N, d), by pixel
        z = mu + torch.exp(0.5 * logvar) * eps
        mu_x, logvar_x = dec(z.reshape(n_l * n, d))
        events = x.dim() - 1
        lpx = gaussian_log_prob(x, mu_x.reshape(n_l, *x.shape),
                                logvar_x.reshape(n_l, *x.shape), events)
        lpz = gaussian_log_prob(z, torch.zeros_like(z), 0.0)
        # log q(z|x) of z = mu + σ·eps, from eps itself: (z − mu)²/σ² in float32 is 0·inf
        # (NaN) where logvar < −88, which trained encoders reach (−137 on abu-urban-2)
        lqz = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(dim=-1)
        kl, rec = -log_mean_exp(lpz - lqz), -log_mean_exp(lpx)
        return torch.stack([kl + rec, kl, rec], dim=1)
