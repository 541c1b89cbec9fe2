"""The AED spatial detector: HADGAN's D_spatial alone, and what its area threshold means."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hsad import detectors
from hsad.cube import make_cube
from hsad.cube.background import fit_detector
from hsad.errors import ParameterError
from hsad.synthetic import make_scene


def _flat_with_objects():
    """Noise around 100, with a bright 3x3 object and a bright 20x20 one."""
    rng = np.random.default_rng(0)
    x = 100 + rng.normal(size=(60, 60, 6)) * 0.5
    x[10:13, 10:13] += 20
    x[30:50, 30:50] += 20
    return make_cube(x.astype(np.float32))


def test_objects_smaller_than_the_area_respond_and_larger_ones_vanish():
    m = detectors.get("aed", variant="aed", area=36).fit_score(_flat_with_objects()).values
    background = m.copy()
    background[5:18, 5:18] = background[25:55, 25:55] = np.nan  # objects and their rims
    # the 9-pixel object stands out of every background pixel; the 400-pixel one's inside
    # scores like the background's middle or lower: an object above `area` is not found
    assert m[10:13, 10:13].min() > 2 * np.nanmax(background)
    assert m[35:45, 35:45].mean() < np.nanmedian(background)


def test_it_is_hadgans_d_spatial():
    cube = make_scene(rows=32, cols=32, bands=12, n_targets=3, road=False, seed=4).cube
    aed = detectors.get("aed").fit_score(cube).values
    hadgan = detectors.get("hadgan", epochs=1, hidden=16, sample_size=500, progress=False,
                           device="cpu")
    spatial = hadgan.fit(cube).score_stages(cube)["d_spatial"].values
    # the same float32 cube, PCs and filters; only the order of float64 sums may differ
    np.testing.assert_allclose(aed, spatial, rtol=0, atol=1e-9 * np.nanmax(spatial) * 100)


def test_the_multiscale_default_also_finds_objects_up_to_its_largest_area():
    x = _flat_with_objects().values.copy()
    x[40:47, 5:12] += 20  # a 49-pixel object: above area 36, within the ladder
    m = detectors.get("aed").fit_score(make_cube(x)).values
    single = detectors.get("aed", variant="aed", area=36).fit_score(make_cube(x)).values
    rank = lambda a: (a < a[42:45, 7:10].mean()).mean()  # noqa: E731  (its inside's rank)
    assert rank(m) > 0.99 > 0.5 > rank(single)


def test_an_area_above_the_ladder_is_its_last_step():
    """An 18 x 18 object (324 pixels) with area=400: filtered up to 400, not capped at 225
    (it scored AUC 0.42 then: the filters flattened it)."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 0.02, (100, 100, 10)).astype(np.float32)
    x[30:48, 30:48] += 0.15
    inside = np.zeros((100, 100), bool)
    inside[30:48, 30:48] = True
    aed = detectors.get("aed", area=400)
    assert aed._fusion(make_cube(x)).areas() == (9, 25, 49, 121, 225, 400)
    m = aed.fit_score(make_cube(x)).values
    assert roc_auc_score(inside.ravel(), m.ravel()) > 0.9
    assert detectors.get("aed")._fusion(make_cube(x)).areas()[-1] == 225  # the default


def test_a_background_area_does_not_apply():
    with pytest.raises(ParameterError, match="does not apply"):
        fit_detector(detectors.get("aed"), _flat_with_objects(),
                     background=np.ones((60, 60), bool))


@pytest.mark.parametrize("key, value, message", [
    ("area", "abc", "area must be an integer or None, got 'abc'"),
    ("area", 2.5, "area must be an integer or None"),
    ("n_components", True, "n_components must be an integer"),
    ("eps", "small", "eps must be a number"),
    ("target_size_m", [30], "target_size_m must be a number or None"),
])
def test_a_wrongly_typed_parameter_is_a_one_line_error(key, value, message, tmp_path, capsys):
    with pytest.raises(ParameterError, match=message):
        detectors.get("aed", **{key: value}).fit(_flat_with_objects())
    # through the CLI (a YAML value, as -p gives it): exit 2, one line, no traceback
    from test_cli_user_errors import one_error

    from hsad.io.envi_writer import write_envi

    scene = write_envi(_flat_with_objects(), tmp_path / "scene.img")
    line = one_error(["detect", scene, "-m", "aed", "-p", f"{key}={value}", "-o",
                      tmp_path / "out.tif"], capsys)
    assert "aed:" in line and key in line
    assert not (tmp_path / "out.tif").exists()


@pytest.mark.parametrize("name, params, message", [
    ("aed", {"target_size_m": -1}, r"aed: target_size_m must be a number of metres > 0, "
                                   r"got -1"),
    ("hadgan", {"target_size_m": 0.0}, r"hadgan: target_size_m must be a number of metres"),
    ("aed", {"target_size_m": float("inf")}, r"aed: target_size_m must be a number"),
    ("hadgan", {"normalisation": "minmax"}, r"hadgan: normalisation must be one of \('iqr', "
                                            r"'percentile', 'std'\), got 'minmax'"),
    ("fanogan", {"normalisation": "minmax"}, r"fanogan: normalisation must be one of"),
])
def test_a_value_out_of_range_is_refused_by_check_params_naming_the_detector(
        name, params, message):
    """A negative target size and an unknown normalisation were refused only at fit (the
    normalisation after the scene was read), without the detector's name."""
    with pytest.raises(ParameterError, match=message):
        detectors.get(name, **params).check_params()


@pytest.mark.parametrize("name, params, message", [
    ("aed", {"n_components": 1e308}, "aed: n_components must be at most 2147483647, got "
                                      "1e\\+308"),
    ("aed", {"area": 1e308}, "aed: area must be at most 2147483647"),
    ("ae", {"hidden": 1e308, "epochs": 1}, "ae: hidden must be at most 2147483647"),
    ("ae", {"epochs": 1e308}, "ae: epochs must be at most 1000000, got 1e\\+308"),
    ("aed", {"radius": 10**8}, "radius, 100000000, is larger than the scene \\(24 × 24 "
                               "pixels\\): give at most 24"),
    ("hadgan", {"radius": 10**9, "epochs": 1}, "radius, 1000000000, is larger than the scene"),
    ("ae", {"hidden": 10**9, "epochs": 1}, "ae: its networks do not fit in memory "
                                           "\\(hidden=1000000000"),
])
def test_sizes_no_scene_or_memory_holds_are_one_line_errors(name, params, message):
    """1e308 is a whole number: it passed the type check and overflowed deep inside
    (OverflowError, TypeError); radius=1e8 on a 24 × 24 scene ran without end and 1e9 took
    9.7 GB; hidden=10**9 was torch's allocator error."""
    x = np.random.default_rng(0).normal(size=(24, 24, 8)).astype(np.float32)
    with pytest.raises(ParameterError, match=message):
        detectors.get(name, **params).fit_score(make_cube(x))
    detectors.get("aed", radius=24).fit_score(make_cube(x))  # the scene's size: fine


@pytest.mark.parametrize("name, key, value, message", [
    ("aed", "n_components", 0, "aed: n_components must be ≥ 1"),
    ("aed", "eps", 0, "aed: eps must be > 0"),
    ("aed", "area", 0, "aed: area must be ≥ 1 pixel"),
    ("aed", "levels", 1, "aed: levels must be 0"),
    ("hadgan", "eps", 0, "hadgan: eps must be > 0"),
    ("hadgan", "lam", 2, "hadgan: lam must lie in"),
])
def test_a_fusion_value_out_of_range_names_the_detector(name, key, value, message):
    with pytest.raises(ParameterError, match=message):
        detectors.get(name, **{key: value}).check_params()


def test_a_scene_no_larger_than_the_filters_says_what_lowers_them():
    """On 9 pixels the error advised -p area=N, which the multi-scale ladder never takes
    below 9, and its warning advised pca= and ridge=, which aed does not have."""
    x = 100 + np.random.default_rng(1).normal(size=(3, 3, 12)).astype(np.float32)
    with pytest.warns(Warning) as said, pytest.raises(ParameterError) as err:
        detectors.get("aed", area=4).fit_score(make_cube(x))
    assert "give a smaller area (-p variant=aed -p area=N: the multi-scale ladder filters " \
        "at least 9)" in str(err.value)
    assert not [w for w in said if "pca=" in str(w.message) or "ridge=" in str(w.message)]
    with pytest.raises(ParameterError, match=r"smaller area \(-p area=N or target_size_m\)"):
        detectors.get("aed", variant="aed", area=20).fit_score(make_cube(x))
    assert np.isfinite(detectors.get("aed", variant="aed", area=4).fit_score(
        make_cube(x)).values).all()
