"""A plain autoencoder, the worked example of docs/adding_a_model.md.

An MLP encoder (a patch encoder with ``input="patch"``) compresses each spectrum to
``latent`` numbers and a mirrored decoder rebuilds it, trained on the mean squared error.
The score of a pixel is its reconstruction error ``(1/B)‖x − De(E(x))‖²`` (normalised
units, centre spectrum); as a reconstruction detector it also gives the residual's
spatial–spectral fusion (``output="d_ss"``).
"""

from __future__ import annotations

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import MLPDecoder, MLPEncoder, PatchDecoder, PatchEncoder
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update


class Autoencoder(ReconstructionDetector):
    """Plain autoencoder: reconstruction error, or D_SS of its residual."""

    name = "ae"
    summary = "plain autoencoder (the guide's example): reconstruction error, or D_SS"
    score_terms = ("error",)

    hidden = 64
    epochs = 30
    sample_size = 20_000
    weight_decay: float = 0.0

    def _checks(self) -> list[tuple[bool, str]]:
        return [(float(self.weight_decay) >= 0, "weight_decay must be ≥ 0")]

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        if k == 1:
            return {"encoder": MLPEncoder(n_bands, widths, d_z),
                    "decoder": MLPDecoder(d_z, widths[::-1], n_bands)}
        return {"encoder": PatchEncoder(n_bands, k, widths, d_z),
                "decoder": PatchDecoder(d_z, widths[::-1], n_bands, k)}

    def _rebuild(self, x: torch.Tensor) -> torch.Tensor:
        return self.networks_["decoder"](self.networks_["encoder"](x))

    def _stages(self) -> list[Stage]:
        params = [p for net in self.networks_.values() for p in net.parameters()]
        optimiser = torch.optim.Adam(params, lr=float(self.lr),
                                     weight_decay=float(self.weight_decay))

        def loss(batch, shared):
            (x,) = batch
            return {"loss": ((x - self._rebuild(x)) ** 2).mean()}

        return [Stage("train", [Update("loss", loss, optimiser)], int(self.epochs),
                      monitor="loss")]

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self._rebuild(x))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        error = (self._centre(x) - self._reconstruct(x)) ** 2
        return error.mean(dim=1, keepdim=True)
