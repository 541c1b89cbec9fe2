"""Network blocks shared by the neural detectors (HADGAN, f-AnoGAN, other GAN/AE models).

Spectra are ``(N, B)`` tensors; patches are ``(N, B, k, k)`` (bands as channels).
Every block is a plain ``torch.nn.Module``; nothing here trains or reads data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

#: Negative slope of LeakyReLU, as in the GAN literature (DCGAN, HADGAN reimplementations).
LEAKY_SLOPE = 0.2


def activation(name: str) -> nn.Module:
    """An activation layer by name: ``leaky_relu`` (slope 0.2), ``relu``, ``elu``, ``tanh``."""
    layers = {
        "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE),
        "relu": nn.ReLU,
        "elu": nn.ELU,
        "tanh": nn.Tanh,
    }
    if name not in layers:
        raise ValueError(f"unknown activation {name!r} (choose from {', '.join(layers)})")
    return layers[name]()


def _norm(kind: str | None, width: int) -> nn.Module | None:
    if kind is None or kind == "none":
        return None
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    raise ValueError(f"unknown normalisation {kind!r} (choose from none, batch, layer)")


def mlp(
    sizes: Sequence[int],
    *,
    act: str = "leaky_relu",
    norm: str | None = None,
    last_bias: bool = True,
    last_act: str | None = None,
) -> nn.Sequential:
    """Fully connected stack ``sizes[0] → … → sizes[-1]``.

    Hidden layers get ``norm`` then ``act``; the last layer is linear unless ``last_act``.
    """
    if len(sizes) < 2:
        raise ValueError("an MLP needs at least an input and an output size")
    layers: list[nn.Module] = []
    n_layers = len(sizes) - 1
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == n_layers - 1
        layers.append(nn.Linear(n_in, n_out, bias=last_bias or not last))
        if not last:
            norm_layer = _norm(norm, n_out)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(activation(act))
        elif last_act is not None:
            layers.append(activation(last_act))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Spectrum ``(N, B)`` → latent code ``(N, d_z)``; the latent layer has no bias."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_latent: int, norm: str | None = None,
                 act: str = "leaky_relu", out_act: str | None = None):
        super().__init__()
        self.net = mlp([n_in, *hidden, n_latent], act=act, norm=norm, last_bias=False,
                       last_act=out_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """Latent code ``(N, d_z)`` → spectrum ``(N, B)`` (linear output: inputs are standardised)."""

    def __init__(self, n_latent: int, hidden: Sequence[int], n_out: int, norm: str | None = None,
                 act: str = "leaky_relu"):
        super().__init__()
        self.net = mlp([n_latent, *hidden, n_out], act=act, norm=norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Conv1dEncoder(nn.Module):
    """Spectrum ``(N, B)`` → latent ``(N, d_z)`` through strided 1-D convolutions along bands."""

    def __init__(self, n_in: int, channels: Sequence[int], n_latent: int, kernel: int = 5,
                 act: str = "leaky_relu"):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, length = 1, n_in
        for c_out in channels:
            layers += [nn.Conv1d(c_in, c_out, kernel, stride=2, padding=kernel // 2),
                       activation(act)]
            c_in, length = c_out, (length + 2 * (kernel // 2) - kernel) // 2 + 1
        self.conv = nn.Sequential(*layers)
        self.feature_shape = (c_in, length)
        self.head = nn.Linear(c_in * length, n_latent, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x[:, None, :]).flatten(1))


class Conv1dDecoder(nn.Module):
    """Latent ``(N, d_z)`` → spectrum ``(N, B)``: the mirror of :class:`Conv1dEncoder`."""

    def __init__(self, n_latent: int, channels: Sequence[int], n_out: int, kernel: int = 5,
                 act: str = "leaky_relu"):
        super().__init__()
        self.n_out = n_out
        length = n_out
        for _ in channels:
            length = (length + 2 * (kernel // 2) - kernel) // 2 + 1
        chans = list(channels)[::-1]
        self.start = (chans[0], length)
        self.head = nn.Sequential(nn.Linear(n_latent, chans[0] * length), activation(act))
        layers: list[nn.Module] = []
        for i, c_in in enumerate(chans):
            c_out = chans[i + 1] if i + 1 < len(chans) else 1
            layers.append(nn.ConvTranspose1d(c_in, c_out, kernel, stride=2,
                                             padding=kernel // 2, output_padding=1))
            if i + 1 < len(chans):
                layers.append(activation(act))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.head(z).view(-1, *self.start)
        out = self.deconv(h)[:, 0, :]
        if out.shape[1] < self.n_out:  # odd band counts: pad the last band
            out = nn.functional.pad(out, (0, self.n_out - out.shape[1]), mode="replicate")
        return out[:, : self.n_out]


class PatchFrontEnd(nn.Module):
    """k×k patch ``(N, B, k, k)`` → feature vector: one valid 3×3 convolution, flattened.

    ``n_features`` is ``channels·(k−2)²``; a 3×3 patch gives ``channels`` features. On a 3×3
    patch the convolution runs as one matrix product with the same weights (about half the
    time of a training step on the CPU).
    """

    def __init__(self, n_bands: int, patch: int, channels: int = 64, act: str = "leaky_relu"):
        super().__init__()
        if patch < 3 or patch % 2 == 0:
            raise ValueError(f"patch size must be odd and ≥ 3, got {patch}")
        self.conv = nn.Sequential(nn.Conv2d(n_bands, channels, 3), activation(act))
        self.n_features = channels * (patch - 2) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, act = self.conv[0], self.conv[1]
        if tuple(x.shape[-2:]) == tuple(conv.kernel_size):
            return act(F.linear(x.flatten(1), conv.weight.flatten(1), conv.bias))
        return self.conv(x).flatten(1)


class PatchEncoder(nn.Module):
    """Patch ``(N, B, k, k)`` → latent ``(N, d_z)``: conv front end then an MLP encoder."""

    def __init__(self, n_bands: int, patch: int, hidden: Sequence[int], n_latent: int,
                 channels: int = 64, norm: str | None = None):
        super().__init__()
        self.front = PatchFrontEnd(n_bands, patch, channels)
        self.mlp = MLPEncoder(self.front.n_features, hidden, n_latent, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.front(x))


class PatchDecoder(nn.Module):
    """Latent ``(N, d_z)`` → patch ``(N, B, k, k)`` through an MLP decoder."""

    def __init__(self, n_latent: int, hidden: Sequence[int], n_bands: int, patch: int,
                 norm: str | None = None):
        super().__init__()
        self.shape = (n_bands, patch, patch)
        self.mlp = MLPDecoder(n_latent, hidden, n_bands * patch * patch, norm=norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(z).view(-1, *self.shape)


class Discriminator(nn.Module):
    """MLP critic ``(N, n_in)`` → logit ``(N, 1)``; :meth:`features` gives the last hidden layer.

    Use ``norm="layer"`` for WGAN-GP critics (batch norm breaks the per-sample gradient
    penalty) and ``spectral=True`` for spectrally normalised critics (ALAD).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], norm: str | None = None,
                 act: str = "leaky_relu", spectral: bool = False):
        super().__init__()
        body = mlp([n_in, *hidden], act=act, norm=norm, last_act=act) if hidden else nn.Identity()
        head = nn.Linear(hidden[-1] if hidden else n_in, 1)
        if spectral:
            for module in [*body.modules(), head]:
                if isinstance(module, nn.Linear):
                    nn.utils.parametrizations.spectral_norm(module)
        self.body, self.head = body, head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``E[(‖∇D(x̂)‖₂ − 1)²]`` on random interpolates of real and fake."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, generator=generator, dtype=real.dtype).to(real.device)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    score = critic(mixed)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
