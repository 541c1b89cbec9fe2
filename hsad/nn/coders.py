"""Spectral encoders and decoders that expose their intermediate features.

Every network here is a :class:`FeatureNet`: ``net(x)`` is the output and
``net(x, return_features=True)`` is ``(output, [hidden layers, first to last])``;
``net.features(x)`` is the last hidden layer, f(x), as used by feature-matching losses
(AnoGAN's f(x), EGBAD's FM, f-AnoGAN's ``izi_f``). Spectra are ``(N, B)``, patches
``(N, B, k, k)``; lengths along the band axis may be any B (stride-2 stages round up).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hsad.nn.blocks import PatchFrontEnd, _norm, activation


class FeatureNet(nn.Module):
    """Base class: subclasses implement ``run(x) -> (output, [hidden layers])``."""

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_features: bool = False):
        out, feats = self.run(x)
        return (out, feats) if return_features else out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer f(x); a network without one (``FeatureMLP([5, 3])``, a
        single linear layer) has no features: a ValueError saying so."""
        feats = self.run(x)[1]
        if not feats:
            raise ValueError(f"{type(self).__name__} has no hidden layer, so no features "
                             "f(x): give it one (e.g. sizes [n_in, hidden, n_out])")
        return feats[-1]


def stage(layer: nn.Module, norm: nn.Module | None, act: str | None,
          dropout: float = 0.0) -> nn.Sequential:
    """``layer`` → ``norm`` → ``act`` → dropout, leaving out what is ``None``/0."""
    parts = [layer] + ([norm] if norm is not None else []) + ([activation(act)] if act else [])
    return nn.Sequential(*parts, *([nn.Dropout(dropout)] if dropout else []))


def dense_stage(n_in: int, n_out: int, act: str | None = "leaky_relu", norm: str | None = None,
                dropout: float = 0.0) -> nn.Sequential:
    """Linear → norm (``None``, ``"batch"``, ``"layer"``) → ``act`` → dropout."""
    return stage(nn.Linear(n_in, n_out), _norm(norm, n_out), act, dropout)


class FeatureMLP(FeatureNet):
    """Fully connected ``sizes[0] → … → sizes[-1]``; each hidden stage is a feature.

    Hidden stages are Linear → ``norm`` → ``act`` (→ dropout); the last layer is linear
    unless ``out_act``. Inputs are flattened; ``out_shape`` reshapes the output.
    """

    def __init__(self, sizes: Sequence[int], *, act: str = "leaky_relu", norm: str | None = None,
                 dropout: float = 0.0, out_act: str | None = None, last_bias: bool = True,
                 out_shape: Sequence[int] | None = None):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an MLP needs at least an input and an output size")
        pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
        self.hidden = nn.ModuleList(dense_stage(a, b, act, norm, dropout) for a, b in pairs[:-1])
        self.out = stage(nn.Linear(*pairs[-1], bias=last_bias), None, out_act)
        self.out_shape = tuple(out_shape) if out_shape is not None else (sizes[-1],)

    def run(self, x):
        h, feats = x.flatten(1), []
        for layer in self.hidden:
            h = layer(h)
            feats.append(h)
        return self.out(h).reshape(-1, *self.out_shape), feats


class MLPFeatureEncoder(FeatureMLP):
    """Spectrum ``(N, B)`` (or any flattened input) → latent ``(N, d_z)``, bias-free latent."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_latent: int, **kw):
        super().__init__([n_in, *hidden, n_latent], last_bias=False, **kw)


class MLPFeatureDecoder(FeatureMLP):
    """Latent ``(N, d_z)`` → spectrum ``(N, B)``, or patch ``(N, B, k, k)`` with ``patch=k``."""

    def __init__(self, n_latent: int, hidden: Sequence[int], n_bands: int, patch: int = 1,
                 **kw):
        shape = (n_bands,) if patch == 1 else (n_bands, patch, patch)
        super().__init__([n_latent, *hidden, n_bands * patch * patch], out_shape=shape, **kw)


def halved_lengths(n: int, stages: int) -> list[int]:
    """Lengths after each stride-2 stage with 'same' padding: ``⌈n/2⌉, ⌈n/4⌉, …``."""
    out = []
    for _ in range(stages):
        n = (n + 1) // 2
        out.append(n)
    return out


def conv_norm(kind: str | None, channels: int, dim: int = 1) -> nn.Module | None:
    """Normalisation after a ``dim``-D convolution: ``None`` or ``"batch"``."""
    if kind is None or kind == "none":
        return None
    if kind == "batch":
        return (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(channels)
    raise ValueError(f"unknown convolution normalisation {kind!r} (choose from none, batch)")


class Conv1dFeatureEncoder(FeatureNet):
    """Spectrum ``(N, B)`` → latent ``(N, d_z)``: stride-2 1-D convolutions over bands.

    Features are the conv stages' outputs ``(N, c_i, ⌈B/2^i⌉)``; ``norm`` is ``None`` or
    ``"batch"``.
    """

    def __init__(self, n_bands: int, channels: Sequence[int], n_latent: int, kernel: int = 5,
                 act: str = "leaky_relu", norm: str | None = None):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        ins = [1, *channels[:-1]]
        self.convs = nn.ModuleList(
            stage(nn.Conv1d(a, b, kernel, stride=2, padding=kernel // 2), conv_norm(norm, b), act)
            for a, b in zip(ins, channels, strict=True))
        self.lengths = halved_lengths(n_bands, len(channels))
        self.head = nn.Linear(channels[-1] * self.lengths[-1], n_latent, bias=False)

    def run(self, x):
        h, feats = x.reshape(x.shape[0], 1, -1), []
        for layer in self.convs:
            h = layer(h)
            feats.append(h)
        return self.head(h.flatten(1)), feats


class Conv1dFeatureDecoder(FeatureNet):
    """Latent ``(N, d_z)`` → spectrum ``(N, B)``: mirror of :class:`Conv1dFeatureEncoder`.

    ``channels`` is given in encoder order; transposed convolutions restore the exact
    lengths, so any B works. Features are the hidden stages ``(N, c_i, L_i)``.
    """

    def __init__(self, n_latent: int, channels: Sequence[int], n_bands: int, kernel: int = 5,
                 act: str = "leaky_relu", norm: str | None = None):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        lengths = [n_bands, *halved_lengths(n_bands, len(channels))]
        self.targets = lengths[-2::-1]  # output length of each transposed conv
        chans = list(channels)[::-1]
        self.start = (chans[0], lengths[-1])
        self.head = nn.Sequential(nn.Linear(n_latent, chans[0] * lengths[-1]), activation(act))
        outs = [*chans[1:], 1]
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose1d(a, b, kernel, stride=2, padding=kernel // 2)
            for a, b in zip(chans, outs, strict=True))
        self.post = nn.ModuleList(stage(nn.Identity(), conv_norm(norm, b), act) for b in outs[:-1])

    def run(self, z):
        h = self.head(z).view(-1, *self.start)
        feats = [h]
        for i, deconv in enumerate(self.deconvs):
            h = deconv(h, output_size=[self.targets[i]])
            if i < len(self.post):
                h = self.post[i](h)
                feats.append(h)
        return h[:, 0, :], feats


class WithFrontEnd(FeatureNet):
    """``body(front(x))``; the front end's output is the first feature."""

    def __init__(self, front: nn.Module, body: FeatureNet):
        super().__init__()
        self.front, self.body = front, body

    def run(self, x):
        h = self.front(x)
        out, feats = self.body.run(h)
        return out, [h, *feats]


def patch_encoder(n_bands: int, patch: int, hidden: Sequence[int], n_latent: int,
                  channels: int = 64, **kw) -> WithFrontEnd:
    """Patch ``(N, B, k, k)`` → latent: :class:`~hsad.nn.blocks.PatchFrontEnd` + MLP encoder."""
    front = PatchFrontEnd(n_bands, patch, channels)
    return WithFrontEnd(front, MLPFeatureEncoder(front.n_features, hidden, n_latent, **kw))
