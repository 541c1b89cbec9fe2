"""Hand computations of the BiGAN models' networks (EGBAD, ALAD) in numpy, from the weights.

Layers are applied one by one in float64: Linear (``layer.weight``: with spectral
normalisation that is W/σ with the stored power-iteration vectors), LeakyReLU(0.2),
Flatten; dropout is the identity (eval mode).
"""

from __future__ import annotations

import numpy as np
from torch import nn


def apply(module: nn.Module, h: np.ndarray) -> np.ndarray:
    """``module``'s leaf layers applied in registration order (a plain chain)."""
    for name, layer in module.named_modules():
        if "parametrizations" in name:  # spectral norm: already in ``layer.weight``
            continue
        if isinstance(layer, nn.Linear):
            w = layer.weight.detach().numpy().astype(np.float64)
            h = h @ w.T
            if layer.bias is not None:
                h = h + layer.bias.detach().numpy()
        elif isinstance(layer, nn.LeakyReLU):
            h = np.where(h > 0, h, layer.negative_slope * h)
        elif isinstance(layer, nn.Flatten):
            h = h.reshape(h.shape[0], -1)
        elif isinstance(layer, nn.Dropout | nn.Sequential | nn.ModuleList | nn.Identity):
            continue
        elif list(layer.children()):
            continue
        else:
            raise TypeError(f"no reference for {type(layer).__name__}")
    return h


def joint(critic, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(logit (N,), f (N, h))`` of a ``JointCritic``/``PairCritic``."""
    h = np.concatenate([apply(critic.branch_a, a), apply(critic.branch_b, b)], axis=1)
    f = apply(critic.joint.hidden, h)
    return apply(critic.joint.out, f)[:, 0], f


def softplus(t: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, t)
