"""Detectors of installed packages: the ``hsad.detectors`` entry points.

An entry point names a :class:`~hsad.detectors.base.BaseDetector` subclass (the entry
point's name is then the detector's) or a module, whose detectors join together. The
registry (:mod:`hsad.detectors`) asks here which classes an entry point brings and why
they cannot join; it keeps the state and the warnings (docs/adding_a_model.md §7).
"""

from __future__ import annotations

import inspect
from importlib import metadata

from hsad.detectors.base import BaseDetector

#: the entry-point group through which installed packages add detectors
ENTRY_POINTS = "hsad.detectors"


def entry_points():
    """The installed ``hsad.detectors`` entry points."""
    return metadata.entry_points(group=ENTRY_POINTS)


def detector_classes(obj) -> list[type[BaseDetector]]:
    """The detectors an entry point's object brings: a BaseDetector subclass with a name,
    or those a module defines (a class under two attribute names, an alias, once)."""
    if inspect.isclass(obj):
        return [obj] if issubclass(obj, BaseDetector) and obj.__dict__.get("name") else []
    if not inspect.ismodule(obj):
        return []
    return list(dict.fromkeys(
        c for _, c in inspect.getmembers(obj, inspect.isclass)
        if issubclass(c, BaseDetector) and c.__module__ == obj.__name__
        and c.__dict__.get("name")))


def refusal(ep, obj, classes: list[type[BaseDetector]], clash) -> str | None:
    """Why entry point ``ep`` (its loaded ``obj`` bringing ``classes``) cannot join, all
    of it, or None; ``clash(cls)`` says why a class cannot take its name."""
    names = [c.__dict__.get("name") for c in classes]
    if not classes:
        return "it names no BaseDetector subclass with a name, and no module holding one"
    if inspect.isclass(obj) and ep.name != obj.name:
        return f"the entry point's name must be the detector's, {obj.name!r}"
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        return f"it defines {', '.join(map(repr, twice))} more than once"
    return next(filter(None, map(clash, classes)), None)  # all of its detectors, or none
