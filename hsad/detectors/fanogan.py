"""f-AnoGAN (Schlegl et al. 2019) on spectra or k×k patches; choices in docs/fanogan.md.

Stage ``gan`` trains a WGAN-GP (generator G, LayerNorm critic D; ``n_critic`` critic
steps per generator step), stage ``encoder`` an encoder E with G and D frozen
(hsad.nn.wgan). The anomaly score of a pixel is

``A(x) = (1/n)‖x − G(E(x))‖² + κ·(1/n_d)‖f(x) − f(G(E(x)))‖²``,

f = the critic's last hidden features. With ``output="d_ss"`` the reconstruction residual
``|x − G(E(x))|`` goes through the spatial–spectral fusion instead (hsad.fusion → D_SS).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.nn.blocks import (
    Conv1dDecoder,
    Conv1dEncoder,
    Discriminator,
    MLPDecoder,
    PatchDecoder,
    PatchFrontEnd,
)
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update
from hsad.nn.wgan import OBJECTIVES, Critic, anomaly_terms, encoder_loss, gan_updates

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike

ARCHS = ("mlp", "conv1d")


class _SpectrumConv(nn.Module):
    """``(N, B)`` spectrum → flattened strided 1-D conv features (the conv1d front end)."""

    def __init__(self, n_bands: int, channels: list[int]):
        super().__init__()
        conv = Conv1dEncoder(n_bands, channels, 1)
        self.conv = conv.conv
        self.n_features = conv.feature_shape[0] * conv.feature_shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x[:, None, :]).flatten(1)


class FAnoGAN(ReconstructionDetector):
    """f-AnoGAN: WGAN-GP + izi_f encoder; score = residual + critic-feature error (or D_SS)."""

    name = "fanogan"
    summary = "f-AnoGAN: WGAN-GP + encoder; residual + critic-feature score, or D_SS fusion"
    #: A(x), its residual term and its feature term.
    score_terms = ("anomaly", "a_residual", "a_feature")

    arch: str = "mlp"
    channels: int = 16
    epochs = 48
    encoder_epochs: int = 20
    batch_size = 128
    lr = 1e-4
    encoder_lr: float = 5e-5
    n_critic: int = 5
    gp_weight: float = 10.0
    objective: str = "izi_f"
    kappa: float = 1.0
    sample_size = 10_000

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (self.arch in ARCHS, f"arch must be one of {ARCHS}"),
            (self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}"),
            (float(self.kappa) >= 0, "kappa must be ≥ 0"),
            (float(self.gp_weight) >= 0, "gp_weight must be ≥ 0"),
            (float(self.encoder_lr) > 0, "encoder_lr must be > 0"),
            *((int(getattr(self, k)) >= 1, f"{k} must be ≥ 1")
              for k in ("encoder_epochs", "n_critic", "channels")),
        ]

    def fit(self, cube: CubeLike, train_mask=None, background=None) -> Self:
        """As :meth:`ReconstructionDetector.fit`; ``arch`` other than ``mlp`` with patch
        input warns that it is not used (patches go through the patch front end)."""
        if self.input == "patch" and self.arch != "mlp":
            warnings.warn(f"{self.name}: arch={self.arch!r} shapes pixel input only; patches "
                          "go through the patch front end (docs/fanogan.md)", UserWarning,
                          stacklevel=4)  # past the two wrappers every fit gets (cube_methods)
        return super().fit(cube, train_mask=train_mask, background=background)

    # ---- networks -------------------------------------------------------------------
    def _front(self, n_bands: int) -> tuple[nn.Module | None, int]:
        """Shared input stage of critic and encoder: none, 1-D conv, or the patch conv."""
        if self.patch_size > 1:
            front = PatchFrontEnd(n_bands, self.patch_size, int(self.channels))
            return front, front.n_features
        if self.arch == "conv1d":
            front = _SpectrumConv(n_bands, [int(self.channels), 2 * int(self.channels)])
            return front, front.n_features
        return None, n_bands

    @classmethod
    def upgrade_params(cls, saved: dict, format_version: int) -> dict:
        """Files from before the shared base: ``fusion`` none|dss → ``output``,
        ``fusion_variant`` → ``fusion``; then the reconstruction models' upgrade."""
        if "fusion_variant" in saved:
            mode = saved.get("fusion", "none")
            saved = {**{k: v for k, v in saved.items() if k != "fusion_variant"},
                     "fusion": saved["fusion_variant"],
                     "output": {"dss": "d_ss", "none": cls.score_terms[0]}[mode]}
        return super().upgrade_params(saved, format_version)

    def _build(self, n_bands: int) -> dict[str, nn.Module]:
        d_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        if k > 1:
            generator = PatchDecoder(d_z, widths, n_bands, k)
        elif self.arch == "conv1d":
            generator = Conv1dDecoder(d_z, [int(self.channels), 2 * int(self.channels)], n_bands)
        else:
            generator = MLPDecoder(d_z, widths, n_bands)
        nets = {"generator": generator}
        for name, n_out, out_act in (("critic", 1, None), ("encoder", d_z, "tanh")):
            front, n_in = self._front(n_bands)
            body = Discriminator(n_in, widths, norm="layer")
            nets[name] = Critic(body, front=front, n_out=n_out, out_act=out_act)
        return nets

    # ---- training -------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        gen, critic, enc = (self.networks_[k] for k in ("generator", "critic", "encoder"))
        rng = torch.Generator().manual_seed(int(self.seed) + 1)
        d_z = self.latent_size(self.n_bands_)

        def encoder_update(batch, shared):
            return {"loss_e": encoder_loss(self.objective, enc, gen, critic, batch[0],
                                           float(self.kappa), d_z, rng)}

        rmsprop = torch.optim.RMSprop(enc.parameters(), lr=float(self.encoder_lr))
        gan = gan_updates(gen, critic, d_z, rng, lr=float(self.lr),
                          gp_weight=float(self.gp_weight), n_critic=int(self.n_critic))
        return [Stage("gan", gan, int(self.epochs)),
                Stage("encoder", [Update("loss_e", encoder_update, rmsprop)],
                      int(self.encoder_epochs), monitor="loss_e", frozen=(gen, critic))]

    # ---- inference ------------------------------------------------------------------
    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._centre(self.networks_["generator"](self.networks_["encoder"](x)))

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        net = self.networks_
        terms = anomaly_terms(x, net["encoder"], net["generator"], net["critic"],
                              float(self.kappa))
        return torch.stack(terms, dim=1)
