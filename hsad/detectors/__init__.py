"""Detector registry: ``get(name, **params)`` and ``available()``.

Each detector lives in its own module below and registers itself by name.
"""

from __future__ import annotations

import importlib

from hsad.detectors.base import BaseDetector
from hsad.errors import ParameterError

#: Modules holding one detector each; imported on first use of the registry.
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
    """Instantiate the detector ``name`` with hyperparameters ``params``."""
    registry = available()
    key = name.lower()
    if key not in registry:
        raise ParameterError(f"unknown method {name!r} (available: {', '.join(registry)})")
    det = registry[key]()
    det.set_params(**params)
    return det


__all__ = ["BaseDetector", "available", "get", "register"]
