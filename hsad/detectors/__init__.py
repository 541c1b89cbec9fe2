"""Detector registry: ``get(name, **params)`` and ``available()``.

Registration happens in one place, the class: every module of this package is found with
``pkgutil``, and each :class:`BaseDetector` subclass it defines with its own ``name`` is
registered under that name. A module named after its detector (``rx.py`` for ``rx``,
``cluster_rx.py`` for ``cluster-rx``) is imported alone by ``get``, so RX users do not pay
torch's import. Detectors defined elsewhere (a plugin) join with :func:`register`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil

from hsad.detectors.base import BaseDetector
from hsad.errors import ParameterError

_REGISTRY: dict[str, type[BaseDetector]] = {}
_SCANNED: set[str] = set()


def register(cls: type[BaseDetector]) -> type[BaseDetector]:
    """Make a detector defined outside this package available under ``cls.name``."""
    if not cls.__dict__.get("name"):
        raise ParameterError(f"{cls.__name__} has no name to register")
    _REGISTRY[cls.name] = cls
    return cls


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _scan(module: str) -> None:
    """Import ``hsad.detectors.<module>`` and register the detectors it defines."""
    if module in _SCANNED:
        return
    mod = importlib.import_module(f"{__name__}.{module}")
    for _, obj in inspect.getmembers(mod, inspect.isclass):
        if (issubclass(obj, BaseDetector) and obj.__module__ == mod.__name__
                and obj.__dict__.get("name")):
            _REGISTRY[obj.name] = obj
    _SCANNED.add(module)


def available() -> dict[str, type[BaseDetector]]:
    """Registered detectors by name."""
    for module in _modules():
        _scan(module)
    return dict(sorted(_REGISTRY.items()))


def get(name: str, **params) -> BaseDetector:
    """Instantiate the detector ``name`` with hyperparameters ``params``."""
    key = name.lower()
    module = key.replace("-", "_")  # "cluster-rx" lives in cluster_rx.py
    if key not in _REGISTRY and module in _modules():
        _scan(module)
    if key not in _REGISTRY:
        available()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(str(name).lower(), available(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ParameterError(f"unknown method {name!r}{hint} (available: "
                             f"{', '.join(available())})")
    det = _REGISTRY[key]()
    det.set_params(**params)
    return det


def __getattr__(name: str):
    """Modules of this package load on first use."""
    from hsad.lazy_modules import submodule

    return submodule(__name__, name)


__all__ = ["BaseDetector", "available", "get", "register"]
