"""scikit-learn's hyperparameter protocol for detectors (the mixin :class:`Hyperparameters`,
part of :class:`~hsad.detectors.base.BaseDetector`): names and defaults read from
``__init__``, ``get_params``/``set_params``, type checks, the ``repr``, and the refusal to
score with a hyperparameter changed since ``fit``."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from hsad.errors import ParameterError

if TYPE_CHECKING:
    from typing_extensions import Self


def same_value(a, b) -> bool:
    """Whether two hyperparameter values are equal (arrays element-wise)."""
    try:
        return bool(np.array_equal(a, b)) if isinstance(a, np.ndarray) or isinstance(
            b, np.ndarray) else bool(a == b)
    except (TypeError, ValueError):
        return a is b


class Hyperparameters:
    """The keyword hyperparameters of ``__init__``, read and set as scikit-learn does."""

    #: registry name, e.g. ``"rx"`` (in messages)
    name: str = ""
    #: the hyperparameters read when scoring: set after ``fit``, they apply at the next
    #: ``score``. The others shape what ``fit`` computes: set after it, ``score`` refuses
    #: them until the detector is fitted again (:meth:`_check_fit_params`). None (a plugin
    #: that does not say): no check
    score_params: ClassVar[frozenset[str] | None] = None

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
                         or not same_value(v, defaults[k]))
        return f"{type(self).__name__}({args})"

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
            if key in now and not same_value(now[key], old):
                raise ParameterError(
                    f"{self.name}: {key} is {now[key]!r} but the detector was fitted with "
                    f"{old!r}; {key} takes effect when it is fitted again: set it back, or "
                    "fit again")
