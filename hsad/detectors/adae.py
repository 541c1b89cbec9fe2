"""ADAE: adversarial dual autoencoders (Vu, Ueta, Hashimoto, Maeno, Pranata, Shen, 2019,
"Anomaly detection with adversarial dual autoencoders", arXiv:1902.06924).

The generator G and the discriminator D are two autoencoders of the same architecture (MLP
on spectra, or a patch front end and MLP with ``input="patch"``), with a bounded output
``c·tanh(h/c)``, c = ``out_bound`` (the paper's images have a fixed value range; with a
linear output ``L_D`` is unbounded below and training diverged, docs/models/adae.md).
Alternating updates on each mini-batch, D first, G second (D frozen), with ``|·|`` the mean
absolute error:

- ``L_D = |X − D(X)| − |G(X) − D(G(X))|``: D rebuilds real spectra and fails on G's output;
- ``L_G = |X − G(X)| + |G(X) − D(G(X))|``: G rebuilds X so that D rebuilds its output.

The score of a pixel is the paper's ``A(x) = ‖x − D(G(x))‖₂`` (normalised units, centre
spectrum); the second term is G's own error ``‖x − G(x)‖₂``. The residual for D_SS is
``x − D(G(x))``, the vector whose norm is the paper's score (``residual_net="generator"``:
``x − G(x)`` instead). Choices where the paper is silent, and measured figures:
docs/models/adae.md.
"""

from __future__ import annotations

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.coders import MLPFeatureDecoder, MLPFeatureEncoder, patch_encoder
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update

RESIDUAL_NETS = ("discriminator", "generator")


class _Bounded(nn.Module):
    """``c·tanh(h/c)``: the decoder's output kept within ±c (normalised units); ≈ h for |h| ≪ c."""

    def __init__(self, bound: float | None):
        super().__init__()
        self.bound = None if bound is None else float(bound)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.bound is None else self.bound * torch.tanh(h / self.bound)


class ADAE(ReconstructionDetector):
    """ADAE: two autoencoders as generator and discriminator; score ‖x − D(G(x))‖₂."""

    name = "adae"
    summary = ("ADAE adversarial dual autoencoders (Vu et al. 2019): ‖x − D(G(x))‖₂, "
               "or D_SS of its residual")
    #: The paper's score ‖x − D(G(x))‖₂, then the generator's error ‖x − G(x)‖₂.
    score_terms = ("anomaly", "g_error")
    #: whose rebuild feeds D_SS is read when scoring (training never uses it)
    score_params = ReconstructionDetector.score_params | {"residual_net"}

    hidden = 64
    epochs = 30
    sample_size = 20_000
    #: Whose rebuild gives the D_SS residual: D(G(x)) (the paper's score) or G(x).
    residual_net: str = "discriminator"
    #: Both autoencoders' outputs lie within ±out_bound (normalised units); None: linear.
    out_bound: float | None = 3.0

    def _checks(self) -> list[tuple[bool, str]]:
        return [(self.residual_net in RESIDUAL_NETS,
                 f"residual_net must be one of {RESIDUAL_NETS}, got {self.residual_net!r}"),
                (self.out_bound is None or float(self.out_bound) > 0,
                 "out_bound must be > 0 (or None for a linear output)")]

    def _autoencoder(self, n_bands: int) -> nn.Sequential:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        encoder = (MLPFeatureEncoder(n_bands, widths, d_z) if k == 1
                   else patch_encoder(n_bands, k, widths, d_z))
        return nn.Sequential(encoder, MLPFeatureDecoder(d_z, widths[::-1], n_bands, patch=k),
                             _Bounded(self.out_bound))

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        return {"generator": self._autoencoder(n_bands),
                "discriminator": self._autoencoder(n_bands)}

    def _stages(self) -> list[Stage]:
        gen, disc = self.networks_["generator"], self.networks_["discriminator"]
        adam = torch.optim.Adam

        def discriminator(batch, shared):
            (x,) = batch
            with torch.no_grad():
                g_x = gen(x)
            real = (x - disc(x)).abs().mean()
            fake = (g_x - disc(g_x)).abs().mean()
            return {"loss_d": real - fake, "d_real": real, "d_fake": fake}

        def generator(batch, shared):
            (x,) = batch
            g_x = gen(x)
            rec = (x - g_x).abs().mean()
            fool = (g_x - disc(g_x)).abs().mean()
            return {"loss_g": rec + fool, "g_rec": rec}

        updates = [Update("loss_d", discriminator, adam(disc.parameters(), lr=float(self.lr))),
                   Update("loss_g", generator, adam(gen.parameters(), lr=float(self.lr)),
                          frozen=(disc,))]
        return [Stage("adversarial", updates, int(self.epochs), monitor="g_rec")]

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        g_x = self.networks_["generator"](x)
        if self.residual_net == "generator":
            return self._centre(g_x)
        return self._centre(self.networks_["discriminator"](g_x))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        net = self.networks_
        g_x = net["generator"](x)
        centre = self._centre(x)
        anomaly = torch.linalg.vector_norm(centre - self._centre(net["discriminator"](g_x)),
                                           dim=1)
        g_error = torch.linalg.vector_norm(centre - self._centre(g_x), dim=1)
        return torch.stack([anomaly, g_error], dim=1)
