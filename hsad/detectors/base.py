"""The estimator contract every hsad detector follows (see docs/api.md).

- ``__init__`` only stores keyword hyperparameters (no validation, no work).
- ``fit(cube)`` validates, learns state into attributes ending in ``_`` and returns ``self``.
- ``score(cube)`` returns a ``(y, x)`` anomaly map (higher = more anomalous) aligned with
  the cube, NaN on nodata pixels.
- ``fit_score(cube)`` does both; ``threshold(scores, ...)`` turns a map into a mask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr

from hsad.detectors.cube_methods import CUBE_METHODS, recording_scene_level, taking_any_cube
from hsad.detectors.hyperparameters import Hyperparameters
from hsad.detectors.scene_checks import SceneChecks
from hsad.detectors.thresholding import Thresholding
from hsad.errors import NotFittedError

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


class BaseDetector(Hyperparameters, Thresholding, SceneChecks):
    """Base class: the cube methods' contract, ``fit_score`` and the fitted state's checks
    (hyperparameters: :class:`Hyperparameters`; masks: :class:`Thresholding`)."""

    #: one-line description for ``hsad methods``
    summary: str = ""
    #: fitted attributes a model file holds, with their shapes in named dimensions (see
    #: :mod:`hsad.detectors.state`); empty: ``hsad train`` cannot save this detector
    model_state: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: what this class's own hyperparameters mean, with their units (``hsad methods``;
    #: hsad's detectors keep theirs in :mod:`hsad.detectors.param_help`)
    param_help: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in CUBE_METHODS:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "takes_any_cube", False):
                if name == "fit":
                    method = recording_scene_level(method)
                setattr(cls, name, taking_any_cube(method))
        if not hasattr(cls, "_declare"):  # declared hyperparameters: documented when declared
            from hsad.detectors.param_help import document_parameters

            document_parameters(cls)

    def _derive(self) -> None:
        """Compute the fitted state that follows from ``model_state`` (after fit or load)."""

    def _remember_bands(self, cube: xr.DataArray) -> None:
        """Note the cube's band layout (``bands_``) and wavelengths (``wavelength_``)."""
        from hsad.cube import good_band_mask

        self.bands_ = good_band_mask(cube)
        self.wavelength_ = np.asarray(cube["wavelength"].values, dtype=np.float64)

    def fit(self, cube: CubeLike) -> Self:
        """Learn the detector's state from ``cube`` (a :data:`hsad.cube.array_types.CubeLike`)
        and return ``self``."""
        raise NotImplementedError

    def score(self, cube: CubeLike) -> xr.DataArray:
        """The ``(y, x)`` anomaly map of ``cube`` (higher = more anomalous), NaN where a
        pixel holds no data."""
        raise NotImplementedError

    @taking_any_cube
    def fit_score(self, cube: CubeLike, **fit_options) -> xr.DataArray:
        """Fit on ``cube`` (with ``fit``'s own keywords: ``background=``, ``train_mask=``…)
        and return its anomaly map."""
        self.check_scorable(cube)
        return self.fit(cube, **fit_options).score(cube)

    def check_scorable(self, cube: xr.DataArray) -> None:
        """Refuse (ParameterError), before a fit on ``cube`` that is then scored, what the
        scoring would refuse after it; nothing by default."""

    def _check_fitted(self, *attrs: str) -> None:
        """Raise :class:`NotFittedError` unless ``fit`` has set ``attrs``, and
        ``ParameterError`` unless with today's hyperparameters (:meth:`_check_fit_params`)."""
        if any(not hasattr(self, a) for a in attrs):
            raise NotFittedError(f"{self.name}: not fitted; call fit(cube) before score(cube)")
        self._check_fit_params()

    def __sklearn_is_fitted__(self) -> bool:
        """Whether ``fit`` has run or a model file was loaded (scikit-learn's
        ``check_is_fitted`` asks)."""
        return "_fitted_params" in self.__dict__

    def __sklearn_tags__(self):
        """scikit-learn's estimator tags: unsupervised, fitted before use."""
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False))
