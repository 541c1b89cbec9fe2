"""Detectors from outside hsad: ``register``, installed packages' entry points, and what a
plugin author's mistakes give (one-line errors, never a map of whatever memory held)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from hsad import detectors
from hsad.detectors.ae import Autoencoder
from hsad.detectors.base import BaseDetector
from hsad.errors import ModelError, ParameterError
from hsad.synthetic import make_scene

TINY = dict(epochs=1, batch_size=64, sample_size=200, progress=False, device="cpu", seed=0)


@pytest.fixture
def registry(monkeypatch):
    """The registry as it is, restored after the test."""
    for attr in ("_REGISTRY", "_BROKEN"):
        monkeypatch.setattr(detectors, attr, dict(getattr(detectors, attr)))
    for attr in ("_SCANNED", "_BUILT_IN", "_MISSING"):
        monkeypatch.setattr(detectors, attr, set(getattr(detectors, attr)))
    return detectors


@pytest.fixture(scope="module")
def cube():
    return make_scene(rows=16, cols=16, bands=8, n_targets=1, road=False, seed=1).cube


def test_a_plugin_cannot_take_a_built_in_name_or_an_unusable_one(registry):
    class Clash(Autoencoder):
        name = "rx"

    with pytest.raises(ParameterError, match="'rx' is hsad's own detector"):
        registry.register(Clash)
    assert type(registry.get("rx")).__name__ == "GlobalRX"
    for bad in ("MyUpper", "my.net", "a,b", "x:y", "1net", "with space"):
        cls = type("Bad", (Autoencoder,), {"name": bad, "__module__": __name__})
        with pytest.raises(ParameterError, match="must be lower-case letters"):
            registry.register(cls)


def test_a_plugin_name_is_one_plugins_unless_replaced_and_a_class_defined_again_replaces(
        registry):
    def make(module):
        return type("Mine", (Autoencoder,), {"name": "mine", "__module__": module})

    first = registry.register(make("pkg_a"))
    again = registry.register(make("pkg_a"))  # a notebook cell run twice
    assert registry.get("mine").__class__ is again is not first
    other = make("pkg_b")
    with pytest.raises(ParameterError, match="already registered by pkg_a.Mine"):
        registry.register(other)
    registry.register(other, replace=True)
    assert registry.get("mine").__class__ is other
    registry.available()  # scanning hsad's modules again keeps the plugin
    assert registry.get("mine").__class__ is other


def test_a_package_module_that_cannot_be_imported_is_left_out_with_a_warning(
        registry, tmp_path, monkeypatch):
    (tmp_path / "broken.py").write_text("import not_a_real_dependency\n")
    monkeypatch.setattr(detectors, "__path__", [*detectors.__path__, str(tmp_path)])
    with pytest.warns(UserWarning, match="module hsad.detectors.broken cannot be imported "
                                         "\\(ModuleNotFoundError: No module named "
                                         "'not_a_real_dependency'\\)"):
        found = registry.available()
    assert "rx" in found and "hadgan" in found
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: not again on every lookup
        with pytest.raises(ParameterError, match="unknown method 'rxx'; did you mean 'rx'"):
            registry.get("rxx")
    with pytest.raises(ParameterError, match="module hsad.detectors.broken cannot be imported"):
        registry.get("broken")
    monkeypatch.setattr(detectors, "_SCANNED", detectors._SCANNED - {"broken"})
    monkeypatch.setattr(detectors, "_MISSING", set())  # as in a new process
    with pytest.warns(UserWarning), pytest.raises(ParameterError, match="cannot be imported"):
        registry.get("broken")  # asked for first, by its own name


def test_modules_missing_one_dependency_are_said_once(registry, tmp_path, monkeypatch):
    """Without torch, 21 of hsad's modules each printed "cannot be imported" before every
    command's own line, helpers with no detector among them: the first names the missing
    dependency and says what to install; the others are left out without a word."""
    for name in ("broken_a", "broken_b", "broken_c"):
        (tmp_path / f"{name}.py").write_text("import not_a_real_dependency\n")
    monkeypatch.setattr(detectors, "__path__", [*detectors.__path__, str(tmp_path)])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        registry.available()
    said = [str(w.message) for w in seen if "not_a_real_dependency" in str(w.message)]
    assert said == ["module hsad.detectors.broken_a cannot be imported (ModuleNotFoundError: "
                    "No module named 'not_a_real_dependency'): its detectors are left out, as "
                    "are those of every other module that needs not_a_real_dependency "
                    "(install not_a_real_dependency)"]
    with pytest.raises(ParameterError, match="broken_c cannot be imported"):
        registry.get("broken_c")  # asked for by name, still named


class _Short(Autoencoder):
    name = "short-plugin"

    def _score(self, x, noise):
        return super()._score(x, noise)[:-1]


class _Wide(Autoencoder):
    name = "wide-plugin"

    def _score(self, x, noise):
        return super()._score(x, noise).repeat(1, 2)


class _NotFinite(Autoencoder):
    name = "nan-plugin"

    def _score(self, x, noise):
        return super()._score(x, noise) * float("nan")


@pytest.mark.parametrize("cls, shape", [(_Short, r"\(255, 1\) for 256 inputs"),
                                        (_Wide, r"\(256, 2\) for 256 inputs")])
def test_a_score_of_the_wrong_shape_is_refused_not_stored(registry, cube, cls, shape):
    registry.register(cls)
    det = registry.get(cls.name, **TINY)
    det.fit(cube)
    with pytest.raises(ModelError, match=f"{cls.name}: _score returned shape {shape}; "
                                         r"expected \(256, 1\), one column per score "
                                         r"term \(error\)"):
        det.score(cube).compute()


def test_a_fresh_models_non_finite_scores_do_not_blame_a_model_file(registry, cube, tmp_path):
    registry.register(_NotFinite)
    det = registry.get("nan-plugin", **TINY).fit(cube)
    with pytest.raises(ModelError, match="training diverged, or its _score is not finite"):
        det.score(cube).compute()


class _DiagRX(BaseDetector):
    """A classic plugin written without postponed annotations: ``ridge: float`` is a class."""
    name = "diagrx-plugin"
    model_state = {"bands_": ("B",), "mean_": ("band",), "var_": ("band",)}

    def __init__(self, ridge: float = 0.0):
        self.ridge = ridge

    def fit(self, cube):
        x = np.asarray(cube.values, np.float64).reshape(-1, cube.shape[-1])
        self._remember_bands(cube)
        self.mean_, self.var_ = x.mean(axis=0), x.var(axis=0) + float(self.ridge)
        return self

    def score(self, cube):
        from hsad.cube import map_like

        x = np.asarray(cube.values, np.float64)
        return map_like(cube, (((x - self.mean_) ** 2) / self.var_).sum(axis=-1))


def test_a_classic_plugins_plain_annotations_are_checked(registry):
    registry.register(_DiagRX)
    with pytest.raises(ParameterError, match="diagrx-plugin: ridge must be a number, got 'abc'"):
        registry.get("diagrx-plugin", ridge="abc").check_params()


PLUGIN = textwrap.dedent('''
    """An installed package that adds a detector through the hsad.detectors entry point."""
    from hsad.detectors.ae import Autoencoder


    class EntryNet(Autoencoder):
        """An autoencoder under another name."""
        name = "entrynet"
        summary = "an autoencoder from an installed plugin"
''')


CLASSIC = textwrap.dedent('''
    """A classic plugin as docs/adding_a_model.md section 6 writes one (no postponed
    annotations)."""
    import numpy as np

    from hsad.cube.background import background_mask
    from hsad.cube import map_like
    from hsad.detectors.base import BaseDetector


    class DiagRX(BaseDetector):
        name = "diagrx"
        summary = "RX with a diagonal covariance"
        model_state = {"bands_": ("B",), "mean_": ("B",), "var_": ("B",)}
        param_help = {"floor": "variance floor added to each band, squared units"}

        def __init__(self, floor: float = 0.0):
            self.floor = floor

        def fit(self, cube, background=None):
            self._remember_bands(cube)
            x = np.asarray(cube.values, np.float64)
            area = background_mask(cube, background)
            x = x[area] if area is not None else x.reshape(-1, x.shape[-1])
            self.mean_, self.var_ = x.mean(axis=0), x.var(axis=0) + float(self.floor)
            return self

        def score(self, cube):
            x = np.asarray(cube.values, np.float64)
            return map_like(cube, (((x - self.mean_) ** 2) / self.var_).sum(axis=-1))
''')


def _install(where, name, entry, source):
    (where / f"{name}.py").write_text(source)
    info = where / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hsad.detectors]\n{entry}\n")


def _hsad(args, where, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(where), os.environ.get(
        "PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "hsad", *args], capture_output=True,
                          text=True, env=env, cwd=cwd)


def test_an_installed_plugin_joins_the_command_line_and_a_broken_one_is_left_out(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "hsad_entrynet", "entrynet = hsad_entrynet:EntryNet", PLUGIN)
    _install(site, "hsad_broken", "broken = hsad_broken:Nothing",
             "import not_a_real_dependency\n")
    _install(site, "hsad_diagrx", "diagrx = hsad_diagrx", CLASSIC)  # a module of them
    methods = _hsad(["methods"], site, tmp_path)
    assert methods.returncode == 0, methods.stderr
    assert "entrynet" in methods.stdout and "rx" in methods.stdout
    assert "floor = 0.0 — variance floor added to each band" in methods.stdout
    assert "plugin broken = hsad_broken:Nothing cannot be imported (ModuleNotFoundError" \
        in methods.stderr
    scene = make_scene(rows=16, cols=16, bands=8, n_targets=1, road=False, seed=1)
    import scipy.io

    scipy.io.savemat(tmp_path / "scene.mat", {"data": scene.cube.values})
    run = _hsad(["detect", "scene.mat", "-m", "entrynet", "-p", "epochs=1", "-o", "map.tif",
                 "--no-progress"], site, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "map.tif").exists()
    train = _hsad(["train", "scene.mat", "-m", "diagrx", "-p", "floor=0.5", "-o", "d.hsad",
                   "--background", "box.geojson"], site, tmp_path)
    assert train.returncode == 2 and "box.geojson" in train.stderr  # no such file: one line
    train = _hsad(["train", "scene.mat", "-m", "diagrx", "-p", "floor=0.5", "-o", "d.hsad"],
                  site, tmp_path)
    assert train.returncode == 0, train.stderr
    applied = _hsad(["detect", "scene.mat", "--model", "d.hsad", "-o", "d.tif"], site, tmp_path)
    assert applied.returncode == 0, applied.stderr
    import rasterio

    with rasterio.open(tmp_path / "d.tif") as src:
        x = scene.cube.values.astype(np.float64)
        expected = ((x - x.reshape(-1, 8).mean(0)) ** 2 / (x.reshape(-1, 8).var(0) + 0.5)).sum(-1)
        np.testing.assert_allclose(src.read(1), expected, rtol=1e-5)
    typo = _hsad(["detect", "scene.mat", "-m", "entrynett", "-o", "x.tif"], site, tmp_path)
    assert typo.returncode == 2 and "did you mean 'entrynet'" in typo.stderr
    assert "Traceback" not in typo.stderr + methods.stderr + train.stderr


def test_a_plugin_describes_its_own_parameters_and_inherits_hsads_meanings(registry):
    from hsad.cli.methods import _params
    from hsad.detectors.fanogan import FAnoGAN

    class RidgeNet(_DiagRX):
        name = "ridge-plugin"
        param_help = {"ridge": "variance floor added to each band, squared units"}

    class MyFan(FAnoGAN):
        name = "myfan-plugin"

    meanings = {p: m for p, _, m in _params("ridge-plugin", registry.register(RidgeNet))}
    assert meanings == {"ridge": "variance floor added to each band, squared units"}
    fan = {p: m for p, _, m in _params("myfan-plugin", registry.register(MyFan))}
    assert fan["kappa"].startswith("κ of the score") and fan["epochs"].startswith("training")
    assert all(fan.values())


TWINS = textwrap.dedent('''
    from hsad.detectors.ae import Autoencoder


    class One(Autoencoder):
        name = "multi-one"


    class Twin(Autoencoder):
        name = "twin"
''')


def test_each_entry_point_joins_whole_or_not_at_all_with_a_warning_saying_why(
        registry, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    registry.register(type("Twin", (Autoencoder,), {"name": "twin", "__module__": "pkg_a"}))
    _install(site, "plug_multi", "multi = plug_multi", TWINS.replace("Twin(", "Other(")
             .replace("\"twin\"", "\"twin\"  # another's name"))
    _install(site, "plug_none", "none = plug_none", "x = 1\n")
    _install(site, "plug_alias", "alias = plug_alias",  # one class, two attribute names
             TWINS.replace("multi-one", "aliased").replace('"twin"', '"alias-two"')
             + "\nOldName = One\n")
    _install(site, "plug_dup", "dup = plug_dup",
             TWINS.replace("multi-one", "dupe").replace('"twin"', '"dupe"'))
    _install(site, "plug_named", "mydiag = plug_named:Two",
             TWINS.replace("class One", "class Two").replace("multi-one", "two"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(detectors, "_PLUGINS_LOADED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = registry.available()
    said = " | ".join(str(w.message) for w in caught)
    assert found["twin"].__module__ == "pkg_a"
    assert "multi-one" not in found  # the module's other detector waits with it
    assert "plugin multi = plug_multi: name 'twin' of plug_multi.Other is already " \
           "pkg_a.Twin's: rename one of them; its detectors are left out" in said
    assert "plugin none = plug_none: it names no BaseDetector subclass" in said
    assert "plugin dup = plug_dup: it defines 'dupe' more than once" in said
    assert "dupe" not in found
    assert {"aliased", "alias-two"} <= set(found) and "plug_alias" not in said
    assert "plugin mydiag = plug_named:Two: the entry point's name must be the " \
           "detector's, 'two'" in said
    assert "cannot be imported" not in said


def test_a_model_loads_only_into_the_class_that_saved_it(registry, cube, tmp_path):
    from hsad.io.model_archive import load_model, save_model

    mine = type("Mine", (Autoencoder,), {"name": "mine", "__module__": "pkg_a"})
    path = save_model(registry.register(mine)().set_params(**TINY).fit(cube),
                      tmp_path / "m.hsad")
    assert type(load_model(path)) is mine
    other = type("Other", (Autoencoder,), {"name": "mine", "__module__": "pkg_b"})
    registry.register(other, replace=True)
    with pytest.raises(ModelError, match="saved by pkg_a.Mine, and method 'mine' is now "
                                         "pkg_b.Other: install the plugin that saved it"):
        load_model(path)


def test_a_model_of_a_plugin_not_registered_names_its_class_and_what_to_do(
        registry, cube, tmp_path, monkeypatch):
    """A plugin's model loaded where the plugin is not registered said only that hsad
    "cannot load" its method (a neural one listed hsad's own methods): it names the class
    that saved it, and how to make it loadable."""
    from hsad.io.model_archive import load_model, save_model

    neural = type("Mine", (Autoencoder,), {"name": "mine", "__module__": "pkg_a"})
    classic = type("Diag", (_DiagRX,), {"name": "diag-plugin", "__module__": "pkg_c"})
    paths = [save_model(registry.register(neural)().set_params(**TINY).fit(cube),
                        tmp_path / "n.hsad"),
             save_model(registry.register(classic)().fit(cube), tmp_path / "c.hsad")]
    monkeypatch.setattr(detectors, "_REGISTRY", {k: v for k, v in detectors._REGISTRY.items()
                                                 if v not in (neural, classic)})
    for path, cls, name in zip(paths, ("pkg_a.Mine", "pkg_c.Diag"), ("mine", "diag-plugin"),
                               strict=True):
        with pytest.raises(ModelError) as exc:
            load_model(path)
        message = str(exc.value)
        assert f"needs method {name!r}" in message and f"saved by {cls}, which this " \
            "session has not registered: install the plugin that provides it, or import " \
            "the class and register it (hsad.detectors.register)" in message, message
        assert "model methods:" not in message and "\n" not in message


def test_a_detector_module_interrupted_while_importing_is_tried_again(
        registry, tmp_path, monkeypatch):
    (tmp_path / "flaky.py").write_text(textwrap.dedent('''
        import builtins
        if not getattr(builtins, "_flaky_seen", False):
            builtins._flaky_seen = True
            raise KeyboardInterrupt
        from hsad.detectors.ae import Autoencoder

        class Flaky(Autoencoder):
            name = "flaky"
    '''))
    monkeypatch.setattr(detectors, "__path__", [*detectors.__path__, str(tmp_path)])
    with pytest.raises(KeyboardInterrupt):
        registry.get("flaky")
    assert type(registry.get("flaky")).__name__ == "Flaky"
    import builtins

    del builtins._flaky_seen
    sys.modules.pop("hsad.detectors.flaky", None)


def test_rxd_utd_is_found_in_its_module_without_loading_plugins(registry, monkeypatch):
    monkeypatch.setattr(detectors, "_REGISTRY", {})
    monkeypatch.setattr(detectors, "_SCANNED", set())
    monkeypatch.setattr(detectors, "_PLUGINS_LOADED", False)
    assert type(registry.get("rxd-utd")).__name__ == "RXDUTD"
    assert not detectors._PLUGINS_LOADED and detectors._SCANNED == {"utd"}


KI_PLUGIN = textwrap.dedent("""
    import builtins
    if not getattr(builtins, "_plug_ki_seen", False):
        builtins._plug_ki_seen = True
        raise KeyboardInterrupt
    from hsad.detectors.ae import Autoencoder


    class KiNet(Autoencoder):
        name = "kinet"
""")


def test_a_plugin_interrupted_while_importing_is_tried_again(registry, tmp_path, monkeypatch):
    import builtins

    site = tmp_path / "site"
    site.mkdir()
    _install(site, "plug_ki", "kinet = plug_ki:KiNet", KI_PLUGIN)
    _install(site, "plug_first", "first = plug_first",
             TWINS.replace("multi-one", "first-one").replace('"twin"', '"first-two"'))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(detectors, "_PLUGINS_LOADED", False)
    with pytest.raises(KeyboardInterrupt):
        registry.get("kinet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plugins loaded before the interrupt: not again
        assert type(registry.get("kinet")).__name__ == "KiNet"
    del builtins._plug_ki_seen
    sys.modules.pop("plug_ki", None)


def test_an_installed_plugins_name_is_taken_before_it_is_looked_up(registry, tmp_path,
                                                                   monkeypatch):
    """In a fresh session `register(T)` under an installed plugin's name was accepted
    without replace=True (the plugins not looked up yet), and the installed one dropped
    with a warning at the next `available()`; a second call was refused. The entry points
    are read (not imported: a plugin may register itself as it imports), so the first call
    is refused as the second was; the plugin's own class still registers."""
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "plug_taken", "twin = plug_taken:Twin", TWINS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(detectors, "_PLUGINS_LOADED", False)
    mine = type("Twin", (Autoencoder,), {"name": "twin", "__module__": "my_notebook"})
    with pytest.raises(ParameterError, match=r"name 'twin' is the installed plugin "
                                             r"plug_taken:Twin's; choose another name, or "
                                             r"register\(\.\.\., replace=True\)"):
        registry.register(mine)
    assert "plug_taken" not in sys.modules  # read, not imported
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.available()["twin"].__module__ == "plug_taken"
    assert registry.register(mine, replace=True) is mine


def test_a_plugins_map_of_another_shape_names_the_plugin(registry):
    """`map_like` of a 3 × 3 map for a 16 × 16 scene said "map shape (3, 3) does not match
    the cube's (16, 16)" without the detector (also in `benchmark`'s table of failures)."""
    from hsad.cube import map_like

    class Small(_DiagRX):
        name = "small-map"

        def score(self, cube):
            return map_like(cube, np.zeros((3, 3)))

    registry.register(Small)
    with pytest.raises(ParameterError, match=r"^small-map: score: map shape \(3, 3\) does "
                                             r"not match the cube's \(16, 16\)$"):
        registry.get("small-map").fit_score(np.ones((16, 16, 4), np.float32))


def test_a_plugins_state_is_checked_when_saved_as_when_loaded(registry, tmp_path):
    """`hsad train` of a plugin whose model_state names an attribute its fit does not set
    said "not fitted, nothing to save" (it was fitted), and one whose state disagrees with
    its declared shapes was saved as a success, then refused by `detect --model`."""
    from hsad.errors import ModelError
    from hsad.io.model_archive import save_model

    cube = np.random.default_rng(0).normal(size=(8, 8, 4)).astype(np.float32) + 5
    lacking = type("Lacking", (_DiagRX,), {
        "name": "lacking", "model_state": {**_DiagRX.model_state, "scale_": ("band",)}})
    registry.register(lacking)
    with pytest.raises(ModelError, match="lacking: model_state names scale_, which fit did "
                                         "not set: nothing saved"):
        save_model(registry.get("lacking").fit(cube), tmp_path / "a.hsad")
    shaped = type("Shaped", (_DiagRX,), {
        "name": "shaped", "model_state": {**_DiagRX.model_state, "var_": ("other", "band")}})
    registry.register(shaped)
    with pytest.raises(ModelError, match=r"shaped: its fitted state does not match its "
                                         r"model_state, so the file could not be loaded: "
                                         r"model\.safetensors: state\.var_ .*; nothing saved"):
        save_model(registry.get("shaped").fit(cube), tmp_path / "b.hsad")
    assert not (tmp_path / "a.hsad").exists() and not (tmp_path / "b.hsad").exists()
