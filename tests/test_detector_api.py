"""The detector registry and estimator contract, checked on the classic detectors."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from hsad import detectors
from hsad.cube import make_cube
from hsad.errors import ParameterError

CLASSIC = ("rx", "lrx", "crd")


@pytest.fixture(scope="module")
def cube():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 14, 5)) @ rng.normal(size=(5, 5)) + 20.0
    x[3, 4] += [12.0, -12.0, 12.0, -12.0, 12.0]  # a spectral-shape anomaly
    return make_cube(
        x.astype(np.float32),
        transform=Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4200000.0),
        crs="EPSG:32633",
    )


def test_available_lists_the_classic_detectors():
    found = detectors.available()
    assert set(CLASSIC) <= set(found)
    for name in CLASSIC:
        assert found[name].name == name and found[name].summary


def test_get_builds_a_configured_detector_and_reports_its_params():
    det = detectors.get("RX", ridge=0.01)
    assert det.name == "rx"
    assert det.get_params() == {"ridge": 0.01, "dtype": "float32"}
    assert detectors.get("lrx").get_params() == {
        "inner": 7,
        "outer": 21,
        "pca": 5,
        "ridge": 0.01,
        "dtype": "float32",
    }
    assert detectors.get("crd", inner=3, outer=9).get_params()["outer"] == 9
    assert type(det).param_defaults() == {"ridge": 0.0, "dtype": "float32"}
    assert "ridge=0.01" in repr(det)


def test_unknown_method_names_the_available_ones():
    with pytest.raises(ParameterError) as err:
        detectors.get("nope")
    for name in CLASSIC:
        assert name in str(err.value)


def test_unknown_parameter_is_refused():
    with pytest.raises(ParameterError, match="unknown parameter 'windw'"):
        detectors.get("lrx", windw=3)
    with pytest.raises(ParameterError, match="unknown parameter"):
        detectors.get("rx").set_params(inner=3)


@pytest.mark.parametrize("name", CLASSIC)
def test_fit_score_returns_an_aligned_georeferenced_map(cube, name):
    params = {"lrx": {"inner": 1, "outer": 5}, "crd": {"inner": 1, "outer": 5, "lam": 1.0}}
    det = detectors.get(name, **params.get(name, {}))
    assert det.fit(cube) is det
    scores = det.fit_score(cube)
    assert scores.dims == ("y", "x") and scores.shape == (16, 14)
    assert scores.dtype == np.float32
    assert scores.rio.crs == cube.rio.crs
    assert scores.rio.transform() == cube.rio.transform()
    np.testing.assert_array_equal(scores["x"].values, cube["x"].values)
    np.testing.assert_array_equal(scores["y"].values, cube["y"].values)
    assert np.isfinite(scores.values).all()
    assert np.nanargmax(scores.values) == 3 * 14 + 4


def test_threshold_by_value_contamination_and_far(cube):
    det = detectors.get("crd", inner=1, outer=5, lam=1.0)
    scores = det.fit_score(cube)
    values = scores.values
    mask = det.threshold(scores, value=float(np.median(values)))
    assert mask.dtype == bool and mask.dims == ("y", "x")
    assert mask.values.sum() == (values >= np.median(values)).sum()
    mask = det.threshold(scores, contamination=0.05)
    assert mask.values.sum() == pytest.approx(0.05 * values.size, abs=2)
    assert mask.values[3, 4]
    assert det.threshold_ == mask.attrs["threshold"]
    # no null distribution for CRD: far is taken from a robust fit of the scores
    from hsad.engine.thresholds import robust_threshold

    det.threshold(scores, far=0.05)
    assert det.threshold_ == robust_threshold(values, 0.05)
    rx = detectors.get("rx")
    rx_scores = rx.fit_score(cube)
    rx.threshold(rx_scores, far=0.001)
    assert rx.threshold_ == pytest.approx(rx.null_threshold(0.001))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_threshold_rejects_rates_outside_the_unit_interval(cube, bad):
    det = detectors.get("rx")
    scores = det.fit_score(cube)
    with pytest.raises(ParameterError, match="contamination"):
        det.threshold(scores, contamination=bad)
    with pytest.raises(ParameterError, match="far"):
        det.threshold(scores, far=bad)


def test_threshold_takes_at_most_one_criterion_and_defaults_to_the_robust_rule(cube):
    from hsad.engine.thresholds import DEFAULT_FAR, DEFAULT_RULE, robust_threshold

    det = detectors.get("rx")
    scores = det.fit_score(cube)
    mask = det.threshold(scores)  # no criterion: the default rule, even though RX has a null
    assert mask.attrs["threshold"] == robust_threshold(scores.values, DEFAULT_FAR)
    assert mask.attrs["threshold_rule"] == DEFAULT_RULE
    with pytest.raises(ParameterError, match="exactly one"):
        det.threshold(scores, value=1.0, contamination=0.1)


def test_every_detector_says_which_hyperparameters_scoring_reads():
    for name, cls in detectors.available().items():
        assert cls.score_params is not None, name
        assert cls.score_params <= set(cls.param_defaults()), name


def test_a_hyperparameter_set_after_fit_applies_or_is_refused(cube):
    """``ridge`` shapes RX's fitted whitening: set after fit it was ignored until a refit
    (lrx's ``pca`` likewise, and a network's shape broke deep in torch); now ``score``
    refuses it in one line. Windows read when scoring apply at once."""
    rx = detectors.get("rx").fit(cube)
    with pytest.raises(ParameterError, match=r"rx: ridge is 0.1 but the detector was "
                                             r"fitted with 0.0; .*fit again"):
        rx.set_params(ridge=0.1).score(cube)
    rx.set_params(ridge=0.0)
    np.testing.assert_array_equal(rx.score(cube).values,
                                  detectors.get("rx").fit_score(cube).values)
    crd = detectors.get("crd", inner=3, outer=9).fit(cube)
    moved = crd.set_params(inner=5, outer=11).score(cube).values
    np.testing.assert_array_equal(
        moved, detectors.get("crd", inner=5, outer=11).fit_score(cube).values)
    # LRX's fit sets its dimension from the rings' size: its windows need a refit
    lrx = detectors.get("lrx", inner=3, outer=9).fit(cube)
    for change, message in (({"outer": 11}, "lrx: outer is 11 but"),
                            ({"pca": 3}, "lrx: pca is 3 but")):
        with pytest.raises(ParameterError, match=message):
            lrx.set_params(**change).score(cube)
        lrx.set_params(outer=9, pca=5)
    lrx.set_params(outer=11)
    np.testing.assert_array_equal(  # fitted again: applies
        lrx.fit(cube).score(cube).values,
        detectors.get("lrx", inner=3, outer=11).fit_score(cube).values)


def test_scikit_learns_clone_and_fitted_check(cube):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    det = detectors.get("lrx", inner=3, outer=9)
    with pytest.raises(NotFittedError):
        check_is_fitted(det)
    check_is_fitted(det.fit(cube))
    copy = clone(det)
    assert copy.get_params() == det.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)


def test_a_model_file_refuses_a_training_setting_and_takes_a_scoring_one(cube, tmp_path):
    """A loaded model knows what it was fitted with: a network of another shape is
    refused in one line (it broke deep in torch), a fusion setting applies."""
    from hsad.io.model_archive import load_model, save_model

    det = detectors.get("hadgan", epochs=1, hidden=8, sample_size=200, progress=False)
    save_model(det.fit(cube), tmp_path / "m.hsad")
    loaded = load_model(tmp_path / "m.hsad")
    with pytest.raises(ParameterError, match="hadgan: input is 'patch' but the detector "
                                             "was fitted with 'pixel'"):
        loaded.set_params(input="patch").score(cube)
    loaded.set_params(input="pixel", area=9)
    np.testing.assert_array_equal(loaded.score(cube).values,
                                  det.set_params(area=9).score(cube).values)


def test_seed_given_with_a_model_whose_seed_chose_its_clusters_is_ignored_with_a_note(
        cube, tmp_path, capsys):
    """``--seed`` with a cluster RX model was refused as a setting changed since training
    (its seed chose the clusters); it is ignored with a warning, as it was ignored before."""
    from hsad.cli.main import main
    from hsad.io.geotiff_writer import write_geotiff_cube

    scene = write_geotiff_cube(cube, tmp_path / "scene.tif")
    codes, errs = [], []
    for args in (["train", scene, "-m", "cluster-rx", "-p", "n_clusters=2", "-o",
                  tmp_path / "c.hsad"],
                 ["detect", scene, "--model", tmp_path / "c.hsad", "--seed", "3", "-o",
                  tmp_path / "c.tif"]):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        codes.append(exc.value.code)
        errs.append(capsys.readouterr().err)
    assert codes == [0, 0], errs
    assert "--seed does not apply to this cluster-rx model" in errs[1]
