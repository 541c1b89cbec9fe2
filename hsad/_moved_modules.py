"""The module paths of hsad 0.2, kept working after 0.3 grouped the modules by the data flow.

``import hsad.subset`` (and ``from hsad import subset``, ``from hsad.subset import ...``)
gives the module now at ``hsad.cube.subset``: the same module object, so a name patched
through either path is patched for both. A finder on ``sys.meta_path`` answers only the
old paths, and only when no module of that name exists; it imports nothing until asked.
Type checkers and IDEs see only the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

#: old path -> the module's path now
MOVED = {
    **{f"hsad.{name}": f"hsad.cube.{name}" for name in (
        "array_types", "background", "bands", "grid", "mosaic", "nodata", "nodata_values",
        "subset", "vector_masks")},
    "hsad.area_tree": "hsad.engine.area_tree",
    "hsad.morphology": "hsad.engine.morphology",
    "hsad.thresholds": "hsad.engine.thresholds",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system sets the old one next
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module at the new path is already imported. It gets its own
        spec back, so that ``importlib.reload`` (IPython's ``%autoreload``) re-runs it."""
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the finder on ``sys.meta_path`` once, after the finders of real files."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
