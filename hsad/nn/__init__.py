"""Neural-network building blocks shared by the GAN/AE detectors.

- :mod:`hsad.nn.blocks`: MLP and 1-D conv encoders/decoders, patch front ends,
  discriminators, the WGAN-GP gradient penalty;
- :mod:`hsad.nn.trainer`: the one training loop (device, seed, progress, early stopping);
- :mod:`hsad.nn.normalise`: robust per-band normalisation stored with a model;
- :mod:`hsad.nn.sampling`: seeded pixel/patch samples read chunk by chunk from lazy cubes;
- :mod:`hsad.nn.persistence`: safetensors + JSON model files (``.hsad``), no pickle.
"""

from __future__ import annotations

from hsad.nn.normalise import BandScaler
from hsad.nn.sampling import PixelSample, sample_pixels
from hsad.nn.trainer import History, Trainer, resolve_device, seeded

__all__ = ["BandScaler", "History", "PixelSample", "Trainer", "resolve_device",
           "sample_pixels", "seeded"]
