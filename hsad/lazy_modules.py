"""``package.<module>`` on first use, for packages that do not import their modules eagerly
(``import hsad; hsad.detectors.get(...)``, ``hsad.io.model_archive.load_model(...)``)."""

from __future__ import annotations

import importlib
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
    import sys

    module = sys.modules[package]
    modules = {m.name for m in pkgutil.iter_modules(module.__path__)
               if not m.name.startswith("_")}
    return sorted(set(vars(module)) | modules | set(names))
