"""hsad as a type checker and an IDE see it: the py.typed marker, annotations that hold for
the documented uses (checked by mypy), the classes by name, docstrings that document every
hyperparameter, and short reprs (docs/api.md, "Type checkers and IDEs")."""

from __future__ import annotations

import importlib
import importlib.resources
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hsad
from hsad import detectors
from hsad.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]

#: a script written from docs/api.md: a type checker must find nothing wrong in it
USER_SCRIPT = """
import numpy as np

import hsad
from hsad.detectors import HADGAN, GlobalRX
from hsad.io.model_archive import load_model
from hsad.outputs.metrics import evaluate

arr = np.zeros((20, 20, 6), dtype="float32")
det = GlobalRX(ridge=0.01)
scores = det.fit_score(arr)
mask = det.threshold(scores.values, far=1e-3)
fitted: GlobalRX = det.fit(arr)
print(fitted.precision_.shape, mask.attrs)
model = load_model("model.hsad")
print(model.score(arr).max())
cube = hsad.open_cube("scene.hdr", chunks=256)
h = HADGAN(epochs=1, seed=3)
plain = h.score(cube)
print(plain.attrs, h.score(cube, stages=True)["d_ss"].shape)
r = evaluate(scores, np.zeros((20, 20), bool))
r2, curve = evaluate(scores, np.zeros((20, 20), bool), return_curve=True)
print(r.auc_df, r2.auc_df, curve.pd)
hsad.write_geotiff(scores, "out.tif", tags={"a": "b"}, description="rx")
from hsad.cube import make_cube, valid_mask
from hsad.cube.bands import select_bands
from hsad.detectors import UTD
from hsad.synthetic import implant
u: UTD = UTD().fit(arr)
flag = bool(arr.size)
r3 = evaluate(scores, np.zeros((20, 20), bool), return_curve=flag)
s3 = h.score(cube, stages=flag)
made = make_cube(arr, wavelength=np.linspace(400, 900, 6), good_band=np.ones(6, bool))
print(r3, s3, made, valid_mask(arr), select_bands(arr, bands=[0, 1]))
print(implant(arr, np.ones((1, 6))))
"""

#: mistakes a type checker must catch, one per line after the script: the proof that it
#: read hsad's annotations rather than taking hsad as ``Any`` (a subpackage reached through
#: ``import hsad`` too: it was ``Any``)
MISTAKES = """
HADGAN(epochz=1)
print(r.no_such_metric)
GlobalRX().fit(arr).no_such_attribute
not_a_map: int = GlobalRX().fit_score(arr)
hsad.datasets.names(splitz="test")
"""


def _mypy(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy", reason="mypy is a dev dependency (pip install -e .[dev])")
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent(text))
    env = {**os.environ, "MYPYPATH": str(ROOT)}  # this checkout's hsad, however installed
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), "--python-executable", sys.executable,
         str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


def test_a_script_written_from_the_docs_type_checks_and_mistakes_are_caught(tmp_path):
    """One mypy run: errors on exactly the mistakes' lines, none in the script above them."""
    result = _mypy(tmp_path, USER_SCRIPT + MISTAKES)
    first = len(textwrap.dedent(USER_SCRIPT).splitlines()) + 2
    lines = {int(line.split(":")[1]) for line in result.stdout.splitlines()
             if line.startswith("user.py:") and ": error:" in line}
    assert lines == set(range(first, first + 5)), result.stdout + result.stderr


def test_a_name_served_at_its_old_path_keeps_its_type(tmp_path):
    """Names that moved out of a module and are still served there (docs/api.md, "Package
    layout") are typed at the old path, not ``Any``: a wrong call through each is caught."""
    script = """
    from hsad.cube.bands import bin_bands
    from hsad.engine.stats import whitening
    from hsad.engine.tiles import infer_batches
    from hsad.io.envi import write_envi
    bin_bands()
    whitening()
    infer_batches()
    write_envi()
    """
    result = _mypy(tmp_path, script)
    lines = {int(line.split(":")[1]) for line in result.stdout.splitlines()
             if line.startswith("user.py:") and ": error:" in line}
    assert lines == {6, 7, 8, 9}, result.stdout + result.stderr


def test_the_package_carries_the_py_typed_marker():
    assert (importlib.resources.files("hsad") / "py.typed").is_file()
    assert '"hsad" = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_every_built_in_detector_class_is_importable_by_its_class_name():
    from hsad.detectors import CLASSES

    built_in = {cls.__name__: cls for cls in detectors.available().values()
                if cls.__module__.startswith("hsad.detectors.")}
    assert set(CLASSES) == set(built_in)
    for name, cls in built_in.items():
        assert getattr(detectors, name) is cls
        assert name in detectors.__all__
    with pytest.raises(AttributeError):
        detectors.NoSuchDetector  # noqa: B018


@pytest.mark.parametrize("name", sorted(detectors.available()))
def test_every_detectors_docstring_documents_each_hyperparameter(name):
    cls = detectors.available()[name]
    doc = cls.__doc__ or ""
    assert "Parameters" in doc, name
    heads = [line.split(" :")[0].strip() for line in doc.splitlines() if " : " in line
             or line.rstrip().endswith(" :")]
    named = {n.strip() for head in heads for n in head.split(",")}  # "inner, outer : ..."
    assert set(cls.param_defaults()) <= named, (name, set(cls.param_defaults()) - named)


def test_a_generated_parameter_section_gives_type_default_and_meaning():
    doc = detectors.available()["hadgan"].__doc__
    assert "epochs : int, default 20\n    training epochs" in doc
    assert "device : str, default 'auto'\n    where the networks run" in doc


def test_the_repr_shows_the_settings_that_differ_and_evaluates_back():
    from hsad.detectors import HADGAN, GlobalRX

    assert repr(GlobalRX()) == "GlobalRX()"
    assert repr(GlobalRX(ridge=0.01)) == "GlobalRX(ridge=0.01)"
    det = HADGAN(epochs=3, train_window=[0, 5, 0, 5])
    assert repr(det) == "HADGAN(epochs=3, train_window=[0, 5, 0, 5])"
    assert eval(repr(det), {"HADGAN": HADGAN}).get_params() == det.get_params()


def test_a_training_history_repr_stays_short_however_long_the_training():
    from hsad.nn.trainer import History

    history = History()
    for epoch in range(2000):
        history.add({"reconstruction": 1.0 / (epoch + 1), "adversarial": 0.5})
    assert len(repr(history)) < 200
    assert "epochs=2000" in repr(history) and "reconstruction=0.0005" in repr(history)


def test_dir_of_hsad_lists_its_subpackages_not_its_imports():
    names = dir(hsad)
    assert {"detectors", "io", "cube", "outputs", "open_cube", "write_geotiff"} <= set(names)
    assert not {"annotations", "importlib", "os", "Path", "TYPE_CHECKING"} & set(names)


def test_the_top_level_write_geotiff_takes_tags_and_a_description(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    scores = hsad.make_cube(np.arange(12, dtype="float32").reshape(3, 4, 1))[:, :, 0]
    out = hsad.write_geotiff(scores, tmp_path / "m.tif", tags={"site": "a"},
                             description="rx scores")
    with rasterio.open(out) as src:
        assert src.tags()["site"] == "a"
        assert src.descriptions[0] == "rx scores"


def test_a_nodata_that_is_not_a_number_is_a_parameter_error():
    from hsad.cube.nodata import set_nodata

    cube = hsad.make_cube(np.zeros((3, 3, 2), "float32"))
    with pytest.raises(ParameterError, match="nodata must be a number"):
        set_nodata(cube, "x")
    assert set_nodata(cube, np.float32(-1)).attrs["nodata"] == -1.0


@pytest.mark.parametrize("module", [
    "hsad.errors", "hsad.cube", "hsad.io.model_archive", "hsad.fusion", "hsad.cube.mosaic",
    "hsad.nn.persistence", "hsad.outputs.evaluation", "hsad.outputs.polygons",
    "hsad.outputs.benchmark", "hsad.pipeline", "hsad.config", "hsad.cube.background",
    "hsad.cube.vector_masks", "hsad.detectors"])
def test_a_star_import_brings_the_modules_own_names_not_its_imports(module):
    mod = importlib.import_module(module)
    namespace: dict = {}
    exec(f"from {module} import *", namespace)
    assert {"np", "xr", "da", "os", "warnings", "annotations"}.isdisjoint(namespace)
    assert all(hasattr(mod, name) for name in mod.__all__)


@pytest.mark.parametrize(("old", "new"), [
    ("hsad.io.geotiff", "hsad.io.geotiff_writer"), ("hsad.io.envi", "hsad.io.envi_writer")])
def test_writers_that_moved_are_found_at_their_old_place_with_a_warning(old, new):
    """The writers left the readers' modules (2026-12-02): scripts written against the docs
    of that time still run, told where they went."""
    module = importlib.import_module(old)
    for name, now in module.MOVED.items():  # the casts went on to hsad.io.casting (0.3.11)
        assert now in (new, "hsad.io.casting")
        with pytest.warns(DeprecationWarning, match=f"moved to {now}.{name}"):
            assert getattr(module, name) is getattr(importlib.import_module(now), name)
            assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="has no attribute"):
        module.no_such_writer  # noqa: B018


def test_the_version_is_one_number_and_the_changelog_has_it():
    """pyproject's version, ``hsad.__version__`` (``hsad --version``, maps' and models'
    ``hsad_version``) and the changelog's latest entry agree."""
    import re as _re

    declared = _re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(),
                          _re.M).group(1)
    assert hsad.__version__ == declared
    latest = _re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), _re.M).group(1)
    assert latest == declared
