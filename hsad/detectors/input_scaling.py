"""A neural detector's inputs, normalised by the band scaler fitted on its training sample
(the mixin :class:`InputScaling`, part of :class:`~hsad.detectors.neural.NeuralDetector`),
in float32 on the batch's device, clipped where an undeclared fill value would overflow
the networks."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from hsad.engine.data_checks import FILL_ADVICE
from hsad.errors import DegenerateDataWarning

#: normalised inputs are clipped to ± this many of the training sample's spreads: a value no
#: real pixel reaches (an undeclared fill value such as -3.4e38 overflowed the networks and
#: scored NaN), and one that keeps every network's arithmetic finite
INPUT_CLIP = 1e6


class InputScaling:
    """Raw spectra or patches → the networks' normalised float32 inputs."""

    def _prepare(self, values: np.ndarray) -> torch.Tensor:
        """Normalise raw spectra/patches (bands on axis 1) → float32 tensor, NaN → 0, and
        values beyond ± :data:`INPUT_CLIP` (±inf too) clipped to it (:meth:`_normalise`)."""
        return self._normalise(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)))

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_prepare` of a float32 tensor of raw values, on its device (the CPU, or
        the GPU the batch was copied to): ``(x − centre) / scale`` in float32 as
        :meth:`BandScaler.transform` computes it (the same values on either device),
        without numpy's temporaries."""
        shape = (1, -1) + (1,) * (x.ndim - 2)  # bands on axis 1
        centre, scale = self._scaler_on(x.device)
        x = torch.nan_to_num_(torch.sub(x, centre.view(shape)).div_(scale.view(shape)), nan=0.0)
        lo, hi = torch.aminmax(x) if x.numel() else (x.new_zeros(()), x.new_zeros(()))
        if lo < -INPUT_CLIP or hi > INPUT_CLIP:  # one pass, no temporary
            warnings.warn(f"{self.name}: pixels lie over {INPUT_CLIP:g} spreads from the "
                          f"training sample's; {FILL_ADVICE}", DegenerateDataWarning,
                          stacklevel=2)
        return x.clamp_(-INPUT_CLIP, INPUT_CLIP)

    def _scaler_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The band scaler's centre and scale as tensors on ``device`` (two copies of a
        value per band on a GPU: nothing beside the batch's megabytes, and no state to
        ship with the model)."""
        centre = torch.from_numpy(self.scaler_.centre)
        scale = torch.from_numpy(self.scaler_.scale)
        if device.type == "cpu":
            return centre, scale
        return centre.to(device), scale.to(device)

    def _training_level(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scaler_.centre, self.scaler_.scale

    def _level_bands(self) -> np.ndarray:
        return self.band_mask_
