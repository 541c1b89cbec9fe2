"""The estimator contract every hsad detector follows (see docs/api.md).

- ``__init__`` only stores keyword hyperparameters (no validation, no work).
- ``fit(cube)`` validates, learns state into attributes ending in ``_`` and returns ``self``.
- ``score(cube)`` returns a ``(y, x)`` anomaly map (higher = more anomalous) aligned with
  the cube, NaN on nodata pixels.
- ``fit_score(cube)`` does both; ``threshold(scores, ...)`` turns a map into a mask.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr

from hsad.detectors.scene_checks import SceneChecks
from hsad.errors import ParameterError

#: Detector methods whose first argument is a cube, wrapped by :func:`taking_any_cube` in
#: every subclass that defines them.
CUBE_METHODS = ("fit", "score", "fit_score", "score_stages", "residual")

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike, MapLike


def taking_any_cube(method):
    """``method`` with its cube argument passed through :func:`hsad.cube.as_cube`, so that
    a numpy array, a cube loaded into memory or a ``(band, y, x)`` DataArray works as a cube
    (or is refused with a ParameterError), never as a raw AttributeError deep inside. The
    maps of a cube given in memory are returned computed, as the cube was.

    A ``KeyboardInterrupt`` (Ctrl-C, a notebook's "interrupt") stops the work left in the
    worker threads (:func:`hsad.stopping.stop_work`) before it goes on up: a signal reaches
    only the main thread, and the workers would otherwise compute on in the background."""

    @functools.wraps(method)
    def wrapper(self, cube, *args, **kwargs):
        from hsad.cube import as_cube
        from hsad.engine.sampling import shared_samples

        try:
            with shared_samples():  # the scene checks' samples: read once per call
                result = method(self, as_cube(cube), *args, **kwargs)
            return _computed(result) if _in_memory(cube) and result is not self else result
        except KeyboardInterrupt:
            from hsad.stopping import stop_work

            stop_work()
            raise

    wrapper.takes_any_cube = True
    return wrapper


def _in_memory(cube) -> bool:
    """Whether ``cube`` is an array in memory (numpy, a DataArray loaded), not a lazy one."""
    if isinstance(cube, xr.DataArray):
        return cube.chunks is None and getattr(cube.variable, "_in_memory", True)
    return isinstance(cube, np.ndarray)


def _computed(result):
    """A map (or a dict of maps) of a cube given in memory, computed: a lazy one would read
    the caller's array at each use (recomputed each time, and changed when the array is).
    A (y, x, band) residual stays lazy: computing it would hold a second scene."""
    if isinstance(result, dict):
        return {k: _computed(v) for k, v in result.items()}
    if isinstance(result, xr.DataArray) and result.chunks is not None and result.ndim == 2:
        return result.compute()
    return result  # a residual cube stays lazy: as large as the scene, computed if asked


def recording_scene_level(fit):
    """``fit`` that then notes the fitted scene's per-band medians (``_fitted_scene_level``,
    for :meth:`BaseDetector._check_level`), dropped first so that a failed fit leaves none;
    a fit that calls its parent's (itself recorded) reads the scene's sample once. A model
    loaded from a file and fitted again is today's: its file's format goes. The ``seed``
    it was fitted with is kept (``training_seed_``): a seed set afterwards changes only
    what scoring draws, and a model file records both."""

    @functools.wraps(fit)
    def wrapper(self, cube, *args, **kwargs):
        self._check_types()  # a value the model file could not keep: refused before any work
        self.__dict__.pop("_fitted_scene_level", None)
        self.__dict__.pop("_fitted_scene_name", None)
        model_format = self.__dict__.pop("model_format_", None)
        try:
            result = fit(self, cube, *args, **kwargs)
        except BaseException:  # a failed fit leaves the model as it was
            if model_format is not None:
                self.model_format_ = model_format
            raise
        if "_fitted_scene_level" not in self.__dict__:
            self._remember_scene_level(cube)
        self._fitted_params = self._fit_params()
        seed = self.get_params().get("seed")  # kept: seed may change after fit
        self.training_seed_ = (int(seed) if isinstance(seed, (int, np.integer))
                               and not isinstance(seed, bool) and 0 <= seed <= 2**32 - 1
                               else None)  # a plugin's Generator or wider seed: not recorded
        return result

    return wrapper


def _same_value(a, b) -> bool:
    """Whether two hyperparameter values are equal (arrays element-wise)."""
    try:
        return bool(np.array_equal(a, b)) if isinstance(a, np.ndarray) or isinstance(
            b, np.ndarray) else bool(a == b)
    except (TypeError, ValueError):
        return a is b


class BaseDetector(SceneChecks):
    """Base class: parameter handling, ``fit_score`` and thresholding."""

    #: registry name, e.g. ``"rx"``
    name: str = ""
    #: one-line description for ``hsad methods``
    summary: str = ""
    #: fitted attributes a model file holds, with their shapes in named dimensions (see
    #: :mod:`hsad.detectors.state`); empty: ``hsad train`` cannot save this detector
    model_state: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: what this class's own hyperparameters mean, with their units (``hsad methods``;
    #: hsad's detectors keep theirs in :mod:`hsad.detectors.param_help`)
    param_help: ClassVar[dict[str, str]] = {}
    #: the hyperparameters read when scoring: set after ``fit``, they apply at the next
    #: ``score``. The others shape what ``fit`` computes: set after it, ``score`` refuses
    #: them until the detector is fitted again (:meth:`_check_fit_params`). None (a plugin
    #: that does not say): no check
    score_params: ClassVar[frozenset[str] | None] = None

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

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def check_params(self) -> Self:
        """Refuse (:class:`ParameterError`, one line) hyperparameters this detector cannot
        run with, before any data is read: wrong types, and the checks of detectors whose
        checks need no scene (``hsad benchmark`` runs it for every method first)."""
        self._check_types()
        return self

    @classmethod
    def _param_kinds(cls) -> dict[str, str]:
        """Each hyperparameter's annotation (``"int | None"``), from ``__init__``, postponed
        (a string) or not (``int``: a plugin without ``from __future__ import annotations``)."""
        from hsad.detectors.param_types import annotation_kind

        sig = inspect.signature(cls.__init__)
        kinds = {n: annotation_kind(sig.parameters[n].annotation) for n in cls._param_names()}
        return {n: kind for n, kind in kinds.items() if kind is not None}

    def _check_types(self) -> None:
        """Each hyperparameter's value fits its annotation (``"abc"`` for an ``int`` is a
        one-line ParameterError, not a ValueError deep in the checks)."""
        from hsad.detectors.param_types import describe, dtype_like, fits

        for name, kind in self._param_kinds().items():
            value = getattr(self, name)
            if name == "dtype" and dtype_like(value):
                continue  # np.float64 for "float64", as numpy takes it (saved by its name)
            if not fits(value, kind):
                raise ParameterError(f"{self.name}: {name} must be {describe(kind)}, got "
                                     f"{value!r}")

    @classmethod
    def param_defaults(cls) -> dict:
        """Hyperparameter names and their defaults."""
        sig = inspect.signature(cls.__init__)
        return {n: sig.parameters[n].default for n in cls._param_names()}

    @classmethod
    def upgrade_params(cls, saved: dict, format_version: int) -> dict:
        """Hyperparameters saved by an earlier hsad in model format ``format_version``, in
        today's names and meanings (a model file's loader calls this first). The default
        has nothing to change."""
        return saved

    def get_params(self, deep: bool = False) -> dict:
        """Current hyperparameters, as given to ``__init__``."""
        return {n: getattr(self, n) for n in self._param_names()}

    def set_params(self, **params) -> Self:
        """Set hyperparameters by name (unknown names refused) and return ``self``; they
        are checked when the detector is next fitted (or by :meth:`check_params`)."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ParameterError(
                    f"{self.name}: unknown parameter {key!r} (valid: {', '.join(sorted(valid))})"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        """``Class(name=value, ...)`` with the hyperparameters that differ from their
        defaults, as scikit-learn prints estimators (``get_params()`` has them all)."""
        defaults = self.param_defaults()
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                         if k not in defaults or type(v) is not type(defaults[k])
                         or not _same_value(v, defaults[k]))
        return f"{type(self).__name__}({args})"

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
        return self.fit(cube, **fit_options).score(cube)

    def threshold(
        self,
        scores: MapLike,
        contamination: float | None = None,
        far: float | None = None,
        value: float | None = None,
    ) -> xr.DataArray:
        """Boolean anomaly mask from a score map; give at most one criterion.

        - ``value``: pixels with ``score >= value``.
        - ``contamination``: the expected share of anomalous pixels; the threshold is the
          ``1 − contamination`` quantile of the valid scores (pixels tied at it are all
          flagged, with a warning when that flags more than asked).
        - ``far``: the false-alarm rate wanted on background. Detectors with a known null
          distribution (RX: χ² with B degrees of freedom) use it; others fit the background
          robustly (:func:`hsad.engine.thresholds.robust_threshold`).
        - none: the default rule, which needs no ground truth and is the same for every
          detector: a robust log-normal fit of the scores at a false-alarm rate of 0.001
          (:data:`hsad.engine.thresholds.DEFAULT_RULE`).

        The mask's attrs record ``threshold`` and ``threshold_rule``.
        """
        from hsad.engine.thresholds import (
            BEYOND_THE_MAP,
            DEFAULT_FAR,
            DEFAULT_RULE,
            at_or_above,
            check_threshold,
            robust_threshold,
            say_if_all_or_none,
        )

        check_threshold(contamination, far, value)
        contamination, far, value = (None if v is None else float(v)
                                     for v in (contamination, far, value))  # "0.1" too
        if np.ndim(scores) != 2:
            raise ParameterError(f"threshold: a score map is (y, x), got shape "
                                 f"{np.shape(scores)}")
        if not isinstance(scores, xr.DataArray):  # a numpy map
            scores = xr.DataArray(np.asarray(scores), dims=("y", "x"), name="scores")
        s = np.asarray(scores.values)  # as it is: no float64 copy of the map
        if not np.issubdtype(s.dtype, np.floating):
            s = s.astype(np.float64)
        fitted = False  # a tail fitted to the scores (the robust rule, below)
        if value is not None:
            thr, rule = float(value), "absolute score"
        elif contamination is not None:
            from hsad.engine.thresholds import contamination_threshold, gathered_float64

            thr = contamination_threshold(gathered_float64(s), float(contamination),
                                          overwrite_input=True)
            rule = f"contamination {contamination:g} (score quantile)"
        elif far is not None and self.null_threshold(far) is not None:
            thr, rule = self.null_threshold(far), f"false-alarm rate {far:g} (null distribution)"
        else:
            fitted = True
            rate = DEFAULT_FAR if far is None else float(far)
            thr = robust_threshold(s, rate)
            rule = DEFAULT_RULE if far is None else \
                f"false-alarm rate {far:g} (robust log-normal fit of the scores)"
        # decided as in float64, on any NumPy, with no float64 copy of the map
        mask = np.isfinite(s) & at_or_above(s, thr)
        if value is not None:
            say_if_all_or_none(mask, s, thr)
        elif fitted and np.isfinite(thr) and not mask.any():
            # a fitted tail beyond the whole map (an infinite threshold: the rule has said
            # why already); a null distribution's threshold is no fit, and says nothing
            say_if_all_or_none(mask, s, thr, advice=BEYOND_THE_MAP)
        out = scores.copy(data=mask)
        out.name = "mask"
        out.attrs = {**scores.attrs, "threshold": thr, "threshold_rule": rule}
        self.threshold_ = thr
        return out

    def null_threshold(self, far: float) -> float | None:
        """Score exceeded by background with probability ``far``; None if unknown."""
        return None

    def _check_fitted(self, *attrs: str) -> None:
        """Raise ``ParameterError`` unless ``fit`` has set ``attrs`` with today's
        hyperparameters (:meth:`_check_fit_params`)."""
        if any(not hasattr(self, a) for a in attrs):
            raise ParameterError(f"{self.name}: not fitted; call fit(cube) before score(cube)")
        self._check_fit_params()

    def __sklearn_is_fitted__(self) -> bool:
        """Whether ``fit`` has run or a model file was loaded (scikit-learn's
        ``check_is_fitted`` asks)."""
        return "_fitted_params" in self.__dict__

    def __sklearn_tags__(self):
        """scikit-learn's estimator tags: unsupervised, fitted before use."""
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False))

    def _fit_params(self) -> dict:
        """The hyperparameters ``fit`` used (all but :attr:`score_params`), as they are."""
        if self.score_params is None:
            return {}
        return {k: v for k, v in self.get_params().items() if k not in self.score_params}

    def _check_fit_params(self) -> None:
        """ParameterError when a hyperparameter that shapes the fitted state was set since
        ``fit`` (or the model file's load): scoring would use the old value in one place
        and the new one in another, or fail deep inside (a network of another shape)."""
        fitted = self.__dict__.get("_fitted_params")
        if not fitted:
            return
        now = self.get_params()
        for key, old in fitted.items():
            if key in now and not _same_value(now[key], old):
                raise ParameterError(
                    f"{self.name}: {key} is {now[key]!r} but the detector was fitted with "
                    f"{old!r}; {key} takes effect when it is fitted again: set it back, or "
                    "fit again")
