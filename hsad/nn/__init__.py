"""Neural-network building blocks shared by the GAN/AE detectors.

- :mod:`hsad.nn.blocks`: MLP and 1-D conv encoders/decoders, patch front ends,
  discriminators, the WGAN-GP gradient penalty;
- :mod:`hsad.nn.trainer`: the one training loop (device, seed, progress, early stopping);
- :mod:`hsad.nn.normalise`: robust per-band normalisation stored with a model;
- :mod:`hsad.nn.sampling`: seeded pixel/patch samples read chunk by chunk from lazy cubes;
- :mod:`hsad.nn.persistence`: safetensors + JSON model files (``.hsad``), no pickle.
"""

from __future__ import annotations

import importlib

#: where each public name lives; imported on first use, so that ``hsad.nn.sampling`` (used
#: by cluster RX) does not import torch
_HOMES = {"BandScaler": "normalise", "PixelSample": "sampling", "sample_pixels": "sampling",
          "History": "trainer", "Trainer": "trainer", "resolve_device": "trainer",
          "seeded": "trainer"}


def __getattr__(name: str):
    """A public name from its module, or a module of this package, on first use."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    from hsad.lazy_modules import submodule

    return submodule(__name__, name)


def __dir__() -> list[str]:
    """The package's names, and its modules still to load."""
    from hsad.lazy_modules import listing

    return listing(__name__, _HOMES)


__all__ = ["BandScaler", "History", "PixelSample", "Trainer", "resolve_device",
           "sample_pixels", "seeded"]
