"""The common hyperparameters of hsad's neural detectors, checked and read (the mixin
:class:`NeuralParameters`, part of :class:`~hsad.detectors.neural.NeuralDetector`, which
declares them): patch size, layer widths, d_z, the maps ``output`` can name, and every
check ``fit`` makes before training."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hsad.detectors.declared import FLOAT32_MAX
from hsad.detectors.param_types import SEED_MAX
from hsad.errors import ParameterError
from hsad.nn.normalise import METHODS as NORMALISATIONS
from hsad.nn.trainer import DEVICE_NAME

if TYPE_CHECKING:
    from typing_extensions import Self


class NeuralParameters:
    """What the declared hyperparameters (``input``, ``patch``, ``hidden``…) mean, checked."""

    @property
    def patch_size(self) -> int:
        return 1 if self.input == "pixel" else int(self.patch)

    @property
    def widths(self) -> list[int]:
        """Hidden layer widths: ``depth`` layers of ``hidden`` units."""
        return [int(self.hidden)] * int(self.depth)

    def latent_size(self, n_bands: int) -> int:
        """d_z: ``latent``, or ``int(√B + 1)`` (as the reference code) when None."""
        return int(np.sqrt(n_bands) + 1) if self.latent is None else int(self.latent)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The maps ``output`` can name."""
        return self.score_terms

    @property
    def output_(self) -> str:
        """The map ``score`` returns: ``output``, or the plain score when None."""
        return self.output if self.output is not None else self.outputs[0]

    def check_params(self) -> Self:
        """As :meth:`BaseDetector.check_params`: every check ``fit`` makes before training."""
        self._validate()
        return self

    def _validate(self) -> None:
        self._check_types()
        if not self.outputs:
            raise ParameterError(f"{self.name}: the model declares no score_terms")
        checks = [
            (self.input in ("pixel", "patch"), "input must be 'pixel' or 'patch'"),
            (self.input == "pixel" or int(self.patch) in (3, 5, 7),
             f"patch must be 3, 5 or 7, got {self.patch}"),
            (self.output_ in self.outputs, f"output must be one of {self.outputs}, got "
                                           f"{self.output!r}"),
            (self.latent is None or int(self.latent) >= 1,
             f"latent must be ≥ 1 (or None for int(√B + 1)), got {self.latent!r}"),
            (0 < float(self.lr) <= FLOAT32_MAX, f"lr must be a number > 0 within float32's "
                                                f"range, got {self.lr!r}"),
            (0 <= int(self.seed) <= SEED_MAX, f"seed must lie in 0…{SEED_MAX}, got {self.seed}"),
            (not isinstance(self.device, str) or DEVICE_NAME.fullmatch(self.device) is not None,
             f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
            (self.early_stopping is None or int(self.early_stopping) >= 1,
             "early_stopping must be ≥ 1 epochs (or None)"),
            (self.normalisation in NORMALISATIONS, f"normalisation must be one of "
                                                   f"{NORMALISATIONS}, got {self.normalisation!r}"),
        ]
        for key in ("epochs", "batch_size", "sample_size", "hidden", "depth"):
            checks.append((int(getattr(self, key)) >= 1, f"{key} must be ≥ 1"))
        for ok, message in checks + self._bound_checks() + self._checks():
            if not ok:
                raise ParameterError(f"{self.name}: {message}")
