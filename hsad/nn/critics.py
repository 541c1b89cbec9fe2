"""Critic and discriminator heads, with features for feature matching.

- :class:`CriticX`: D(x) → one logit per sample (GANomaly, Skip-GANomaly, AAE's latent
  discriminator, ALOCC, CAVGA);
- :class:`JointCritic`: D(a, b) from two inputs, each through its own branch, then a joint
  stack: BiGAN's D(x, z) (EGBAD, ALAD's D_xz);
- :class:`PairCritic`: D(u, u') on two inputs of the same space, concatenated: ALAD's
  D_xx and D_zz.

``features(...)`` is the last hidden layer of the joint stack (EGBAD's FM score, ALAD's
f_xx). ``spectral=True`` puts spectral normalisation on every linear and conv layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hsad.nn.coders import FeatureMLP, FeatureNet, WithFrontEnd, dense_stage


def spectral_normalise(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every ``Linear``/``Conv*`` layer of ``module`` (in place)."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)
    for layer in [m for m in module.modules() if isinstance(m, kinds)]:
        nn.utils.parametrizations.spectral_norm(layer)
    return module


def _branch(n_in: int, hidden: Sequence[int], act: str, norm: str | None, dropout: float,
            front: nn.Module | None = None) -> tuple[nn.Sequential, int]:
    """Optional front end, flatten, then dense stages; returns the branch and its width."""
    sizes = [n_in, *hidden]
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    stages = [dense_stage(a, b, act, norm, dropout) for a, b in pairs]
    head = [front] if front is not None else []
    return nn.Sequential(*head, nn.Flatten(), *stages), sizes[-1]


class CriticX(FeatureNet):
    """D(x): optional front end (e.g. a patch or 1-D conv), an MLP, one logit ``(N, 1)``.

    ``n_in`` is the width after the front end (``front.n_features`` for a patch front end).
    Use ``norm="layer"`` or none with a gradient penalty (batch norm mixes samples).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], *, front: nn.Module | None = None,
                 act: str = "leaky_relu", norm: str | None = None, dropout: float = 0.0,
                 spectral: bool = False):
        super().__init__()
        if not hidden:
            raise ValueError("a critic needs at least one hidden layer (its features)")
        body = FeatureMLP([n_in, *hidden, 1], act=act, norm=norm, dropout=dropout)
        self.net = WithFrontEnd(front, body) if front is not None else body
        if spectral:
            spectral_normalise(self)

    def run(self, x):
        return self.net.run(x)


class JointCritic(nn.Module):
    """D(a, b): branch_a(a) ‖ branch_b(b) → joint MLP → logit ``(N, 1)``.

    ``forward(a, b, return_features=False)``; features are the joint stack's hidden layers.
    Empty ``hidden_a``/``hidden_b`` pass that input through flattened; ``front_a`` (e.g. a
    patch front end, then ``n_a`` is its ``n_features``) goes first on ``a``.
    """

    def __init__(self, n_a: int, n_b: int, hidden: Sequence[int], *,
                 hidden_a: Sequence[int] = (), hidden_b: Sequence[int] = (),
                 front_a: nn.Module | None = None, act: str = "leaky_relu",
                 norm: str | None = None, dropout: float = 0.0, spectral: bool = False):
        super().__init__()
        if not hidden:
            raise ValueError("a critic needs at least one joint hidden layer (its features)")
        self.branch_a, w_a = _branch(n_a, hidden_a, act, norm, dropout, front_a)
        self.branch_b, w_b = _branch(n_b, hidden_b, act, norm, dropout)
        self.joint = FeatureMLP([w_a + w_b, *hidden, 1], act=act, norm=norm, dropout=dropout)
        if spectral:
            spectral_normalise(self)

    def run(self, a: torch.Tensor, b: torch.Tensor):
        return self.joint.run(torch.cat([self.branch_a(a), self.branch_b(b)], dim=1))

    def forward(self, a: torch.Tensor, b: torch.Tensor, return_features: bool = False):
        out, feats = self.run(a, b)
        return (out, feats) if return_features else out

    def features(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The joint stack's last hidden layer."""
        return self.run(a, b)[1][-1]


class PairCritic(JointCritic):
    """D(u, u') for two inputs of one space (ALAD's D_xx, D_zz): concatenation → MLP."""

    def __init__(self, n_in: int, hidden: Sequence[int], **kw):
        super().__init__(n_in, n_in, hidden, **kw)
