"""Hyperparameters declared as annotated class attributes, dataclass style (the neural
detectors, docs/adding_a_model.md): the ``__init__`` generated from them, their kinds, and
the bounds every declared size, count and rate keeps."""

from __future__ import annotations

import copy
import inspect
import sys
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from hsad.detectors.param_types import annotation_kind
from hsad.errors import ParameterError

#: the largest float32: hyperparameters beyond it overflow torch's arithmetic
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: integer hyperparameters (sizes, counts) fit a C int, as torch and tqdm take them
INT_MAX = 2**31 - 1
#: more epochs than this is a typo (a run of a million epochs is a month of training)
MAX_EPOCHS = 1_000_000
#: the most layers a network's ``depth`` (or a U-Net's levels) takes
MAX_LAYERS = 64


def _is_classvar(annotation) -> bool:
    return str(annotation).replace("typing.", "").startswith("ClassVar")


if sys.version_info >= (3, 11):
    from typing import dataclass_transform
elif TYPE_CHECKING:  # a type checker targeting 3.10 (mypy follows sys.version_info)
    from typing_extensions import dataclass_transform
else:  # Python 3.10 at run time: the marker only informs type checkers
    def dataclass_transform(**_):
        return lambda cls: cls


@dataclass_transform(kw_only_default=True)  # type checkers and IDEs see the keywords
class DeclaredHyperparameters:
    """A class whose hyperparameters are its annotated class attributes (each with its
    default), gathered over its bases by :meth:`_declare`, which generates ``__init__``
    (keyword arguments, each defaulting to its declared value)."""

    #: Declared hyperparameters and defaults, in declaration order (set per class).
    _declared: ClassVar[dict] = {}
    #: Declared hyperparameters' annotations (``"int | None"``), which their values must fit.
    _kinds: ClassVar[dict] = {}

    @classmethod
    def _declare(cls) -> None:
        if "__init__" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: declare hyperparameters as annotated class "
                            "attributes, not in __init__")
        names: list[str] = []
        kinds: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if not (isinstance(klass, type) and issubclass(klass, DeclaredHyperparameters)):
                continue
            for name, annotation in klass.__dict__.get("__annotations__", {}).items():
                if _is_classvar(annotation) or name in names:
                    continue
                if name not in klass.__dict__:
                    raise TypeError(f"{klass.__name__}.{name}: a hyperparameter needs a default")
                names.append(name)
                kinds[name] = annotation_kind(annotation)
        cls._declared = {n: getattr(cls, n) for n in names}
        cls._kinds = kinds
        init = cls._init
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=v)
                   for n, v in cls._declared.items()]

        def __init__(self, **hyperparameters):
            init(self, hyperparameters)

        __init__.__signature__ = inspect.Signature(params)
        __init__.__doc__ = f"{cls.__name__}'s hyperparameters (declared class attributes)."
        cls.__init__ = __init__
        from hsad.detectors.param_help import document_parameters

        document_parameters(cls)

    def _init(self, given: dict) -> None:
        unknown = sorted(set(given) - set(self._declared))
        if unknown:
            raise ParameterError(f"{self.name}: unknown parameter {unknown[0]!r} (valid: "
                                 f"{', '.join(sorted(self._declared))})")
        for key, default in self._declared.items():
            setattr(self, key, given[key] if key in given else copy.copy(default))

    @classmethod
    def _param_kinds(cls) -> dict[str, str]:
        """The declared annotations (the generated ``__init__`` carries none)."""
        return dict(cls._kinds)

    def _bound_checks(self) -> list[tuple[bool, str]]:
        """``(condition, message)`` of the bounds every declared integer (sizes, counts:
        within a C int; epochs and layers far less) and float (within float32) keeps."""
        checks = []
        for key in self._hyperparameters_of("int", "int | None"):  # sizes, counts
            value = getattr(self, key)
            whole = isinstance(value, (int, np.integer)) or (  # 1e308 is whole too
                isinstance(value, (float, np.floating)) and float(value).is_integer())
            if key != "seed" and whole and not isinstance(value, (bool, np.bool_)):
                most = (MAX_EPOCHS if key.endswith("epochs") else
                        MAX_LAYERS if key in ("depth", "unet_levels") else INT_MAX)
                checks.append((value <= most, f"{key} must be at most {most}, got {value}"))
        for key in self._float_hyperparameters():  # rates and weights torch can hold
            value = getattr(self, key)
            if value is not None and not abs(float(value)) <= FLOAT32_MAX:
                checks.append((False, f"{key} must be a finite number within float32's "
                                      f"range, got {value}"))
        return checks

    @classmethod
    def _float_hyperparameters(cls) -> list[str]:
        """The networks' hyperparameters declared as floats (learning rates, loss weights);
        not the fusion stage's, optional (``float | None``), whose ``eps=inf`` is the guided
        filter's box-mean limit."""
        return cls._hyperparameters_of("float")

    @classmethod
    def _hyperparameters_of(cls, *kinds: str) -> list[str]:
        """The hyperparameters declared of one of ``kinds`` (``"int"``, ``"int | None"``),
        every class of the detector's included."""
        return list(dict.fromkeys(
            name for klass in cls.__mro__ for name, kind in
            vars(klass).get("__annotations__", {}).items()
            if kind in kinds and not name.startswith("_")))


__all__ = ["FLOAT32_MAX", "INT_MAX", "MAX_EPOCHS", "MAX_LAYERS", "DeclaredHyperparameters"]
