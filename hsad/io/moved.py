"""Names that moved to another module, still found at their old place with a
DeprecationWarning that names the new one (the writers left the readers' modules on
2026-12-02: docs/api.md, "Package layout")."""

from __future__ import annotations

import importlib
import warnings


def moved_attribute(module: str, name: str, moved: dict[str, str], warn: bool = True):
    """``name`` of ``module`` if it moved (``moved``: name -> its module now), with a
    DeprecationWarning unless ``warn`` is false; AttributeError otherwise (what a module
    ``__getattr__`` raises)."""
    if name not in moved:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    if warn:
        warnings.warn(f"{module}.{name} moved to {moved[name]}.{name}; import it from there",
                      DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(moved[name]), name)


__all__ = ["moved_attribute"]
