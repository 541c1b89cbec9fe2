"""What an installation from the project's files needs: every package hsad imports is
declared in pyproject.toml, and the source distribution carries what the tests need."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
#: imported only where they are asked for, with a one-line error naming the extra
OPTIONAL = {"distributed": "distributed", "diplib": "dev"}


def _declared(requirements) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def _for_type_checkers(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks: imports for type checkers
    (``typing_extensions.Self``), never made at run time."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def _imported() -> dict[str, set[str]]:
    """Top-level third-party modules imported by hsad's code at run time, and where."""
    found: dict[str, set[str]] = {}
    for root in ("hsad", "cli"):
        for path in (ROOT / root).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            typing_only = _for_type_checkers(tree)
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    # tomllib: the standard library's from 3.11, under a guard before
                    if top not in sys.stdlib_module_names and top not in (
                            "hsad", "cli", "__future__", "tomllib"):
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_package_hsad_imports_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = _declared(project["dependencies"])
    extras = {k: _declared(v) for k, v in project["optional-dependencies"].items()}
    distributions = metadata.packages_distributions()
    for module, files in _imported().items():
        names = {d.lower() for d in distributions.get(module, [module])}
        if module == "tomli":  # the tomllib of Python 3.10
            assert "tomli" in required
        elif module in OPTIONAL:
            assert names & extras[OPTIONAL[module]], (module, files)
        else:
            assert names & required, f"{module} imported by {sorted(files)} is not declared"


def test_every_source_file_compiles_on_every_python_it_claims():
    """A lone surrogate in a docstring (an escape for the character U+DCFC, where the
    text meant the escape's letters) compiles on 3.10 to 3.12, and Python 3.13's compiler
    refuses it: every ``hsad`` command ended in a traceback there. No string constant of
    hsad's code, the tests' or the scripts' may hold one."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if any(part.startswith(".") or part in ("build", "dist") for part in
               path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    node.value.encode("utf-8")
                except UnicodeEncodeError:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    allowed = {"tests/test_odd_file_names.py"}  # a test's written name, not a docstring
    assert [b for b in bad if b.split(":")[0] not in allowed] == []


def test_the_source_distribution_carries_the_tests_and_their_helpers():
    manifest = (ROOT / "MANIFEST.in").read_text(encoding="utf-8").split()
    for folder in ("tests", "docs", "benchmarks", "scripts", "data_manifests", "cli"):
        assert folder in manifest


def test_the_source_distribution_carries_every_top_level_file():
    """CHANGELOG.md was left out of the sdist: its version test failed there, and the
    README's link to it was dead."""
    lines = (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines()
    included = {name for line in lines if line.startswith("include ")
                for name in line.split()[1:]}
    top = {p.name for p in ROOT.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert top <= included, sorted(top - included)
    assert {"CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml"} <= included


def test_the_licence_file_holds_the_licence_text():
    """LICENSE held only the appendix's notice; Apache-2.0 §4(a) asks that redistributions
    pass on the licence itself."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and "Copyright 2026 The hsad developers" in text


def test_an_installed_copy_caches_its_compiled_kernels_in_the_users_cache(tmp_path,
                                                                          monkeypatch):
    """numba wrote its cache beside the installed sources: ``pip uninstall hsad`` left
    ``site-packages/hsad/engine/__pycache__`` behind, and ``import hsad`` still worked (an
    empty namespace package). A checkout keeps its cache beside its sources."""
    pytest.importorskip("numba")
    import numba
    import pooch

    from hsad.engine import area_tree

    monkeypatch.setattr(numba.config, "CACHE_DIR", "")  # a NUMBA_CACHE_DIR of the machine's
    monkeypatch.setattr(pooch, "os_cache", lambda name: tmp_path / name)
    monkeypatch.setattr(area_tree, "_installed", lambda: True)

    @area_tree.njit(cache=True)
    def add_one(x):
        return x + 1

    assert add_one(1) == 2
    assert numba.config.CACHE_DIR == ""  # numba's setting is left as it was
    assert list((tmp_path / "hsad" / "numba").rglob("*.nbi"))
