"""U-Net-style skip encoder/decoder (Skip-GANomaly's generator) for spectra and patches.

:class:`SpectralUNet` works on spectra ``(N, B)`` with 1-D convolutions over bands;
:class:`PatchUNet` on patches ``(N, B, k, k)`` with 2-D convolutions over space and bands as
channels. The encoder halves the length (or side) at each level, rounding up, so any B or
k works; each decoder level upsamples to the exact size of the matching encoder output,
concatenates it (the skip) and fuses the two. The output has the input's shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hsad.nn.coders import FeatureNet, conv_norm, stage


def _block(conv: nn.Module, norm: str | None, channels: int, dim: int, act: str):
    return stage(conv, conv_norm(norm, channels, dim), act)


class UNet(FeatureNet):
    """Skip encoder/decoder over ``dim`` spatial axes (1: bands, 2: rows × columns).

    Input ``(N, c_in, *size)``. Level 0 keeps the size; levels 1…n−1 and the bottleneck
    halve it. Features are the encoder outputs, level 0 first, then the bottleneck.
    """

    def __init__(self, c_in: int, channels: Sequence[int], dim: int = 1, kernel: int = 3,
                 norm: str | None = "batch", act: str = "leaky_relu", up_act: str = "relu"):
        super().__init__()
        if kernel % 2 == 0 or not channels:
            raise ValueError("a U-Net needs an odd kernel and at least one level")
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        deconv = nn.ConvTranspose1d if dim == 1 else nn.ConvTranspose2d
        p, c = kernel // 2, list(channels)
        self.down = nn.ModuleList([_block(conv(c_in, c[0], kernel, padding=p), None, c[0], dim,
                                          act)])
        for a, b in zip(c[:-1], c[1:], strict=True):
            self.down.append(_block(conv(a, b, kernel, stride=2, padding=p), norm, b, dim, act))
        self.bottom = _block(conv(c[-1], c[-1], kernel, stride=2, padding=p), None, c[-1], dim,
                             act)
        ups = [c[-1], *c[:0:-1]]  # channels entering each decoder level, deepest first
        self.up = nn.ModuleList(deconv(a, b, kernel, stride=2, padding=p)
                                for a, b in zip(ups, c[::-1], strict=True))
        self.fuse = nn.ModuleList(_block(conv(2 * b, b, kernel, padding=p), norm, b, dim, up_act)
                                  for b in c[::-1])
        self.out = conv(c[0], c_in, 1)

    def run(self, x):
        skips, h = [], x
        for level in self.down:
            h = level(h)
            skips.append(h)
        h = self.bottom(h)
        feats = [*skips, h]
        for up, fuse, skip in zip(self.up, self.fuse, skips[::-1], strict=True):
            h = up(h, output_size=list(skip.shape[2:]))
            h = fuse(torch.cat([h, skip], dim=1))
        return self.out(h), feats


class SpectralUNet(UNet):
    """Spectrum ``(N, B)`` → reconstruction ``(N, B)``, 1-D convolutions over bands."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64), **kw):
        super().__init__(1, channels, dim=1, **kw)

    def run(self, x):
        out, feats = super().run(x[:, None, :])
        return out[:, 0, :], feats


class PatchUNet(UNet):
    """Patch ``(N, B, k, k)`` → reconstruction ``(N, B, k, k)``, bands as channels."""

    def __init__(self, n_bands: int, channels: Sequence[int] = (64, 128), **kw):
        super().__init__(n_bands, channels, dim=2, **kw)
