"""Model files of statistics detectors (RX, UTD, RXD-UTD, local-mean RX, cluster RX):
trained on one scene, applied to another; every field checked on load; no torch needed."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from hsad import detectors
from hsad.cube import make_cube
from hsad.errors import ModelError
from hsad.io.model_archive import load_model, read_archive, save_model
from hsad.synthetic import make_scene

STATISTICS = ["cluster-rx", "local-mean-rx", "rx", "rxd-utd", "utd"]
WAVELENGTH = np.linspace(450, 2400, 12)


def _cube(seed: int, wavelength=WAVELENGTH):
    scene = make_scene(rows=32, cols=32, bands=12, n_targets=3, road=False, seed=seed)
    return make_cube(np.asarray(scene.cube.values), wavelength=wavelength)


def test_the_statistics_detectors_declare_a_model_state():
    declared = sorted(n for n, cls in detectors.available().items() if cls.model_state)
    assert declared == STATISTICS


@pytest.mark.parametrize("name", STATISTICS)
def test_a_model_fitted_on_one_scene_scores_another_as_the_fitted_detector(name, tmp_path):
    det = detectors.get(name).fit(_cube(1))
    model = load_model(save_model(det, tmp_path / "m.hsad"))
    other = _cube(2)
    np.testing.assert_array_equal(model.score(other).values, det.score(other).values)
    assert model.get_params() == det.get_params()


def test_cluster_rx_keeps_its_clusters(tmp_path):
    det = detectors.get("cluster-rx", n_clusters=4, covariance="shrunk").fit(_cube(1))
    model = load_model(save_model(det, tmp_path / "m.hsad"))
    np.testing.assert_array_equal(model.centres_, det.centres_)
    np.testing.assert_array_equal(model.triangular_, det.triangular_)
    assert model.n_clusters_ == det.n_clusters_ == len(det.centres_)
    for counts in (det.counts_ - 10**6, det.counts_ + 0.5):  # counts are integers ≥ 0
        bad = _rewrite(tmp_path / "m.hsad", tmp_path / "bad.hsad",
                       tensors=lambda t, c=counts: t.update({"state.counts_": c}))
        with pytest.raises(ModelError, match="counts_ must hold counts"):
            load_model(bad)
    # the cluster count must be the centres' (its map tag came from it)
    for count, message in ((7, "n_clusters_ = 7 but centres_ holds 4 clusters"),
                           (3.5, "'n_clusters_' must be a count"),
                           (True, "'n_clusters_' must be a count")):
        bad = _rewrite(tmp_path / "m.hsad", tmp_path / "bad.hsad",
                       config=lambda c, n=count: c["state"].update(n_clusters_=n))
        with pytest.raises(ModelError, match=message):
            load_model(bad)


def test_fitting_and_loading_statistics_models_does_not_import_torch(tmp_path):
    path = save_model(detectors.get("rx").fit(_cube(1)), tmp_path / "rx.hsad")
    code = ("import sys; from hsad import detectors; from hsad.synthetic import make_scene; "
            "from hsad.io.model_archive import load_model; "
            "detectors.get('cluster-rx').fit(make_scene(rows=20, cols=20, bands=6).cube); "
            f"load_model({str(path)!r}); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def _rewrite(path, out, config=None, tensors=None):
    """A copy of model ``path`` with its config and tensors changed by the given functions."""
    import json

    with zipfile.ZipFile(path) as zf:
        cfg = json.loads(zf.read("config.json"))
        arrays = dict(st_load(zf.read("model.safetensors")))
    if config:
        config(cfg)
    if tensors:
        tensors(arrays)
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("model.safetensors", st_save(arrays))
    return out


@pytest.mark.parametrize("change, message", [
    (dict(tensors=lambda t: t.update({"state.mean_": t["state.mean_"][:-1]})),
     "state.mean_ has G = 11, 12 elsewhere"),
    (dict(tensors=lambda t: t.pop("state.cov_")), r"state.cov_ missing or unexpected"),
    (dict(tensors=lambda t: t.update({"state.extra": np.zeros(3)})), "state.extra"),
    (dict(tensors=lambda t: t.update({"state.bands_": np.full(12, 2, np.uint8)})),
     "0/1 band mask"),
    (dict(config=lambda c: c["state"].update(n_pixels_="many")), "'n_pixels_' must be"),
    (dict(config=lambda c: c["state"].update(n_pixels_=-3)), "'n_pixels_' must be a count"),
    (dict(config=lambda c: c.update(wavelength=[1.0])), "wavelength must hold 12"),
    (dict(config=lambda c: c.update(method="lrx")), "cannot load"),
    (dict(config=lambda c: c["params"].update(ridge="big")), "wrong type"),
    (dict(tensors=lambda t: t.update({"state.whitening_": t["state.whitening_"].astype(
        np.float16)})), "whitening_ must be float32 or float64, found float16"),
    (dict(tensors=lambda t: t.update({"state.mean_": t["state.mean_"].astype(np.int8)})),
     "mean_ must be float32 or float64, found int8"),
    (dict(tensors=lambda t: t.update({"state.whitening_": t["state.whitening_"] * 1e30})),
     r"whitening_ holds values beyond ±1e\+15: not fitted statistics"),
    (dict(tensors=lambda t: t["state.cov_"].__setitem__((0, 0), np.nan)),
     "cov_ holds non-finite values"),
    # statistics edited apart: a zero whitening scored every pixel 0, loaded in silence
    (dict(tensors=lambda t: t.update({"state.whitening_": 0 * t["state.whitening_"]})),
     r"the whitening does not whiten the covariance \(Wᵀ Σ W is 1 from the identity\)"),
    (dict(tensors=lambda t: t.update({"state.cov_": 4 * t["state.cov_"]})),
     "the whitening does not whiten the covariance"),
    (dict(tensors=lambda t: t.update({"state.eigenvalues_": -t["state.eigenvalues_"]})),
     "eigenvalues must be positive"),
])
def test_an_inconsistent_statistics_model_is_refused_in_one_line(tmp_path, change, message):
    good = save_model(detectors.get("rx").fit(_cube(1)), tmp_path / "rx.hsad")
    bad = _rewrite(good, tmp_path / "bad.hsad", **change)
    with pytest.raises(ModelError, match=message) as exc:
        load_model(bad)
    assert "\n" not in str(exc.value) and "bad.hsad" in str(exc.value)


def test_statistics_stored_in_float32_still_load_and_a_zero_whitening_does_not(tmp_path):
    """The whitening check (WᵀΣW the identity) refused a model whose arrays were stored in
    float32, which a model file may hold: their rounding moves single entries of WᵀΣW by
    ε₃₂ times the condition number (to 1.115 on abu-airport-1)."""
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(12, 12)) @ np.diag(np.logspace(0, 4, 12))  # κ(Σ) about 1e8
    cube = make_cube((rng.normal(size=(40, 40, 12)) @ mix.T).astype(np.float32))
    good = save_model(detectors.get("rx").fit(cube), tmp_path / "rx.hsad")

    def to_float32(t):
        t.update({k: v.astype(np.float32) for k, v in t.items() if v.dtype == np.float64})

    model = load_model(_rewrite(good, tmp_path / "f32.hsad", tensors=to_float32))
    np.testing.assert_allclose(model.score(cube).values, load_model(good).score(cube).values,
                               rtol=2e-3)
    with pytest.raises(ModelError, match="the whitening does not whiten the covariance"):
        load_model(_rewrite(tmp_path / "f32.hsad", tmp_path / "zero.hsad",
                            tensors=lambda t: t.update(
                                {"state.whitening_": 0 * t["state.whitening_"]})))


@pytest.mark.parametrize("name", STATISTICS)
def test_a_model_of_data_in_large_units_loads_again(name, tmp_path):
    """Values of 5e8 ± 1e8 (photon counts) have a covariance of 1e16: the value check
    refused the model hsad had just saved."""
    cube = _cube(1)
    big = cube.copy(data=cube.data * 3e9 + 5e8)  # standard deviations of 1e8 to 5e8
    det = detectors.get(name).fit(big)
    model = load_model(save_model(det, tmp_path / "big.hsad"))
    np.testing.assert_allclose(model.score(big).values, det.score(big).values, rtol=1e-5)


def test_a_scene_of_other_wavelengths_is_refused(tmp_path):
    model = load_model(save_model(detectors.get("rx").fit(_cube(1)), tmp_path / "rx.hsad"))
    assert read_archive(tmp_path / "rx.hsad")[0]["wavelength"][0] == 450.0
    with pytest.raises(ModelError, match="wavelengths differ"):
        model.score(_cube(2, wavelength=WAVELENGTH + 40))


def _flagged(seed: int, bad=()):
    """``_cube(seed)`` with the bands ``bad`` (0-based) marked bad."""
    cube = _cube(seed)
    good = np.ones(12, bool)
    good[list(bad)] = False
    return make_cube(np.asarray(cube.values), wavelength=WAVELENGTH, good_band=good)


@pytest.mark.parametrize("name", STATISTICS)
def test_a_scene_with_other_bad_band_flags_is_scored_on_the_models_bands(name, tmp_path):
    """Same bands and wavelengths, other bad-band flags (another product level, a header
    edited): the model reads the bands it was fitted on, as the networks do."""
    from hsad.pipeline import run_detector

    det = detectors.get(name).fit(_flagged(1, bad=[3, 7]))
    model = load_model(save_model(det, tmp_path / "m.hsad"))
    expected = det.score(_flagged(2, bad=[3, 7])).values
    for flags in ([], [7]):  # every band good, or only one of the model's two bad
        got = run_detector(model, _flagged(2, bad=flags), fitted=True).scores.values
        np.testing.assert_array_equal(got, expected)
    # a band the model needs, marked bad: refused, named by its wavelength
    with pytest.raises(ModelError, match=r"marks 1 of the model's 10 bands bad \(1513.6 nm\)"):
        run_detector(model, _flagged(2, bad=[3, 6, 7]), fitted=True)


def test_a_statistics_model_with_bad_bands_reads_a_wider_scene():
    """Fitted on 12 bands with two flagged bad; the scene holds those 12 among 23, all
    good: the model's bands are found by wavelength and read under the model's flags."""
    from hsad.pipeline import run_detector

    det = detectors.get("rx").fit(_flagged(1, bad=[3, 7]))
    cube = _flagged(2, bad=[3, 7])
    expected = det.score(cube).values
    extra = np.linspace(460, 2390, 11)  # 11 more bands, between the model's
    order = np.argsort(np.r_[WAVELENGTH, extra])
    data = np.concatenate([np.asarray(cube.values), np.asarray(cube.values)[..., :11]], axis=2)
    wider = make_cube(data[..., order], wavelength=np.r_[WAVELENGTH, extra][order])
    got = run_detector(det, wider, fitted=True).scores.values
    np.testing.assert_array_equal(got, expected)


def _cli(args):
    return subprocess.run([sys.executable, "-m", "hsad.cli.main", *map(str, args)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    from hsad.io.envi_writer import write_envi

    return write_envi(_cube(1), tmp_path_factory.mktemp("scene") / "scene.img")


def test_cli_refuses_to_train_a_local_detector_or_neural_options(scene_file, tmp_path):
    done = _cli(["train", scene_file, "-m", "lrx", "-o", tmp_path / "m.hsad"])
    assert done.returncode == 2 and "has no model to train" in done.stderr
    done = _cli(["train", scene_file, "-m", "rx", "--epochs", 3, "-o", tmp_path / "m.hsad"])
    assert done.returncode == 2 and "--epochs applies to neural detectors" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "m.hsad").exists()


def test_cli_train_window_restricts_the_statistics(scene_file, tmp_path):
    done = _cli(["train", scene_file, "-m", "rx", "--train-window", "0,16,0,32", "-o",
                 tmp_path / "m.hsad"])
    assert done.returncode == 0, done.stderr
    assert "inside the area given (--train-window)" in done.stdout  # as the user named it
    from hsad import open_cube

    top = open_cube(scene_file)[:16]
    np.testing.assert_allclose(load_model(tmp_path / "m.hsad").mean_,
                               top.values.reshape(-1, 12).mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("window", ["0,16.5,0,32", "0,16,0", "0,16,0,32,4", "a,b,c,d",
                                    (0.5, 16, 0, 32)])
def test_a_training_window_is_four_whole_numbers(window):
    from hsad.errors import ParameterError
    from hsad.nn.sampling import region_mask

    with pytest.raises(ParameterError, match="four whole numbers"):
        region_mask(_cube(1), window=window)
    assert region_mask(_cube(1), window=(0, 4.0, 0, 5)).sum() == 20
