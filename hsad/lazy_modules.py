"""``package.<module>`` on first use, for packages that do not import their modules eagerly
(``import hsad; hsad.detectors.get(...)``, ``hsad.io.model_archive.load_model(...)``).

A package whose modules all load this way takes :func:`lazy_package`'s pair::

    __getattr__, __dir__ = lazy_package(__name__)

A module whose names moved to other modules serves them from there with
:func:`moved_names`::

    __getattr__ = moved_names(__name__, MOVED)
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def submodule(package: str, name: str) -> ModuleType:
    """The module ``package.name``, imported now; AttributeError when there is none (the
    error a module's ``__getattr__`` must raise)."""
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def listing(package: str, names=()) -> list[str]:
    """``dir()`` of a package whose modules (and ``names``) load on first use: what it holds
    now, and its public modules and ``names`` still to load (tab completion in IPython)."""
    import pkgutil

    module = sys.modules[package]
    modules = {m.name for m in pkgutil.iter_modules(module.__path__)
               if not m.name.startswith("_")}
    return sorted(set(vars(module)) | modules | set(names))


def lazy_package(package: str, names: dict[str, str] | None = None):
    """``(__getattr__, __dir__)`` for ``package``: its modules, and the public ``names``
    (name -> the module that defines it), load on first use, and ``dir()`` lists them
    before they do."""
    names = dict(names or {})

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        return submodule(package, name)

    def __dir__() -> list[str]:
        return listing(package, names)

    return __getattr__, __dir__


def moved_names(module: str, moved: dict[str, str], warn: bool = False):
    """``__getattr__`` for ``module``, whose names in ``moved`` (name -> the module that
    defines it now) moved out: each is read from its module now, with a DeprecationWarning
    when ``warn`` (:func:`hsad.io.moved.moved_attribute`); any other name is an
    AttributeError."""

    def __getattr__(name: str):
        from hsad.io.moved import moved_attribute

        return moved_attribute(module, name, moved, warn=warn)

    return __getattr__
