"""The module paths of hsad 0.2 still import after 0.3 grouped the modules into packages."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from hsad._moved_modules import MOVED


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing of hsad imported yet); its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_imports_the_module_at_its_new_path(old):
    """``import hsad.<old>`` and ``from hsad.<old> import name`` give the module that now
    lives elsewhere, the same object whichever path was imported first."""
    new = MOVED[old]
    package, name = old.rsplit(".", 1)
    code = (f"import importlib, {package}\n"
            f"old = importlib.import_module({old!r})\n"
            f"new = importlib.import_module({new!r})\n"
            f"from {package} import {name} as attr\n"
            "print(old is new, attr is new, old.__name__)")
    assert _run(code) == f"True True {new}"
    code_new_first = (f"import importlib\nnew = importlib.import_module({new!r})\n"
                      f"old = importlib.import_module({old!r})\nprint(old is new)")
    assert _run(code_new_first) == "True"


def test_a_name_patched_through_the_old_path_is_patched_for_the_code_that_uses_it():
    """A plugin or a test that patches ``hsad.thresholds.robust_threshold`` reaches the
    function the detectors call."""
    code = ("import hsad.thresholds as old\n"
            "import hsad.engine.thresholds as new\n"
            "old.DEFAULT_FAR = 0.5\n"
            "print(new.DEFAULT_FAR)")
    assert _run(code) == "0.5"


def test_a_module_that_never_existed_is_still_not_found():
    """The finder answers only the moved paths."""
    code = ("try:\n    import hsad.no_such_module\n"
            "except ModuleNotFoundError as exc:\n    print(exc.name)")
    assert _run(code) == "hsad.no_such_module"


def test_the_top_of_the_package_shows_the_data_flow():
    """Only the pipeline, the benchmark scenes, settings, errors, the progress and stop
    helpers and the fork hook sit beside the packages."""
    import pkgutil

    import hsad

    modules = {m.name for m in pkgutil.iter_modules(hsad.__path__) if not m.ispkg}
    packages = {m.name for m in pkgutil.iter_modules(hsad.__path__) if m.ispkg}
    assert {"cube", "io", "engine", "detectors", "nn", "fusion", "outputs"} <= packages
    assert modules == {"__main__", "_fork_safety", "_moved_modules", "config", "datasets",
                       "errors", "lazy_modules", "pipeline", "progress", "stopping"}
    assert not {old.rsplit(".", 1)[1] for old in MOVED} & (modules | packages)


def test_names_moved_out_of_the_tiles_module_still_import_from_it():
    """0.3.0 moved the maps kept between passes to ``hsad.engine.spill`` and the torch
    inference to ``hsad.engine.inference``; ``from hsad.engine.tiles import ...`` of them
    still works, and a name that never existed is still an AttributeError."""
    from hsad.engine import inference, spill, tiles

    assert tiles.infer_batches is inference.infer_batches
    assert tiles.NpyWindows is spill.NpyWindows
    assert tiles.KEEP_SHARE == spill.KEEP_SHARE and tiles.BATCH == inference.BATCH
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        tiles.no_such_name  # noqa: B018


#: modules that serve the names 0.3.0 and 0.3.1 moved out of them (their ``MOVED``)
SERVING = ("hsad.engine.tiles", "hsad.cube.bands", "hsad.cube.subset", "hsad.io.envi_header",
           "hsad.io.enmap", "hsad.io.atomic", "hsad.io.matlab", "hsad.fusion.tiled")


@pytest.mark.parametrize("module", SERVING)
def test_every_moved_name_still_imports_from_its_old_module_without_a_warning(module):
    """``from <old module> import <name>`` gives the object of the module it moved to, with
    no DeprecationWarning; a name that never existed is still an AttributeError."""
    old = importlib.import_module(module)
    assert old.MOVED
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, new in old.MOVED.items():
            assert name not in vars(old), name  # served, not a copy
            assert getattr(old, name) is getattr(importlib.import_module(new), name), name
            assert name in importlib.import_module(new).__all__, name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        old.no_such_name  # noqa: B018


@pytest.mark.parametrize("module", SERVING)
def test_a_star_import_of_an_old_module_still_gives_the_names_that_left_it(module):
    """``from <old module> import *`` (a notebook's) still brings every moved name: each
    old module lists them in ``__all__``, and the star import asks its ``__getattr__``."""
    space: dict = {}
    exec(f"from {module} import *", space)  # noqa: S102
    old = importlib.import_module(module)
    assert set(old.MOVED) <= set(space)
    assert all(space[name] is getattr(old, name) for name in old.MOVED)


@pytest.mark.parametrize("module", [*SERVING, "hsad.engine.stats", "hsad.io.envi",
                                    "hsad.io.geotiff"])
def test_type_checkers_see_every_moved_name_at_its_old_path(module):
    """Each old module imports its moved names under ``if TYPE_CHECKING:`` (a type checker
    reads those, not ``__getattr__``, which it would type as Any), each from the module
    ``MOVED`` serves it from, and nothing else there."""
    import ast
    import inspect

    old = importlib.import_module(module)
    tree = ast.parse(inspect.getsource(old))
    blocks = [node for node in tree.body if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    assert len(blocks) == 1
    seen = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            assert alias.asname == alias.name  # an explicit re-export
            seen[alias.name] = node.module
    assert seen == old.MOVED
    for name, new in seen.items():  # defined there, not imported in turn (a strict
        # checker refuses a name a module only imports)
        source = ast.parse(inspect.getsource(importlib.import_module(new)))
        defined = {node.name for node in source.body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        defined |= {name.id for node in source.body if isinstance(node, ast.Assign)
                    for target in node.targets for name in ast.walk(target)
                    if isinstance(name, ast.Name)}
        defined |= {node.target.id for node in source.body
                    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
        assert name in defined, (name, new)


def test_the_light_engine_modules_load_without_dask():
    """The thresholds and the area filters do not load dask or xarray with the engine
    package (its public names load on first use)."""
    code = ("import sys, hsad.engine.thresholds, hsad.engine.morphology\n"
            "print(sorted(m for m in ('dask.array', 'xarray') if m in sys.modules))")
    assert _run(code) == "[]"


def test_a_module_imported_through_its_old_path_keeps_its_own_spec_and_reloads():
    """``importlib.reload`` (IPython's ``%autoreload``) re-runs a moved module however it
    was imported."""
    code = ("import importlib, importlib.util, hsad.engine.thresholds as new, hsad.thresholds\n"
            "new.DEFAULT_FAR = 0.5\n"
            "importlib.reload(hsad.thresholds)\n"
            "spec = importlib.util.find_spec('hsad.engine.thresholds')\n"
            "print(new.DEFAULT_FAR, spec.name, spec.origin.endswith('thresholds.py'))")
    assert _run(code) == "0.001 hsad.engine.thresholds True"


def test_dir_of_a_package_lists_the_modules_still_to_load():
    """Tab completion shows ``hsad.cube.subset`` and ``hsad.engine.thresholds`` before they
    are imported, and the engine's public names."""
    code = ("import hsad\n"
            "print('subset' in dir(hsad.cube), 'thresholds' in dir(hsad.engine),\n"
            "      'infer_batches' in dir(hsad.engine), 'metrics' in dir(hsad.outputs))")
    assert _run(code) == "True True True True"
