"""Detector registry: ``get(name, **params)`` and ``available()``.

Each detector lives in its own module below and registers itself by name.
"""

from __future__ import annotations

import importlib

from hsad.detectors.base import BaseDetector
from hsad.errors import ParameterError

#: Modules holding one detector each, named after it; imported when first needed.
_MODULES = ("rx", "lrx", "crd", "hadgan", "fanogan")

_REGISTRY: dict[str, type[BaseDetector]] = {}


def register(cls: type[BaseDetector]) -> type[BaseDetector]:
    """Class decorator: make a detector available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(f"hsad.detectors.{mod}")


def available() -> dict[str, type[BaseDetector]]:
    """Registered detectors by name."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str, **params) -> BaseDetector:
    """Instantiate the detector ``name`` with hyperparameters ``params``.

    Only the detector's own module is imported (RX users do not pay torch's import).
    """
    key = name.lower()
    if key in _MODULES and key not in _REGISTRY:
        importlib.import_module(f"hsad.detectors.{key}")
    if key not in _REGISTRY:
        raise ParameterError(f"unknown method {name!r} (available: {', '.join(available())})")
    det = _REGISTRY[key]()
    det.set_params(**params)
    return det


__all__ = ["BaseDetector", "available", "get", "register"]
