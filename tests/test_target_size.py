"""``target_size_m``: the fusion area from the pixel size (hsad.fusion.area_for_target)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hsad import detectors, make_cube
from hsad.errors import ParameterError
from hsad.fusion import area_for_target
from hsad.synthetic import make_scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cube():  # 30 m pixels, EPSG:32633
    return make_scene(rows=32, cols=32, bands=12, n_targets=3, road=False, seed=4).cube


def test_area_is_the_target_in_pixels_rounded_up(cube):
    assert area_for_target(60, cube) == 4      # 2 x 2 pixels
    assert area_for_target(45, cube) == 3      # 1.5² = 2.25
    assert area_for_target(10, cube) == 1
    assert area_for_target(330, cube) == 121   # 11 x 11


def test_web_mercator_metres_are_taken_as_ground_metres():
    """EPSG:3857's metres are 1/cos φ ground metres: 2 m targets on a 0.5 m grid at 48.85° N
    were 16 pixels where the ground (and the same run's polygons' area_m2) asks 37; UTM's
    scale (within 0.1 %) is kept as its metres, so 60 m on a 30 m grid stays 4."""
    from affine import Affine

    values = np.zeros((20, 20, 3), np.float32)
    mercator = make_cube(values, crs="EPSG:3857", transform=Affine(0.5, 0, 1335000, 0, -0.5,
                                                                     6250000))
    assert area_for_target(2, mercator) == 37  # ceil((2 / (0.5 cos 48.85°))²)
    equator = make_cube(values, crs="EPSG:3857", transform=Affine(0.5, 0, 0, 0, -0.5, 0))
    assert area_for_target(2, equator) == 16
    edge = make_cube(values, crs="EPSG:32633", transform=Affine(30, 0, 760000, 0, -30, 5e6))
    assert area_for_target(60, edge) == 4  # at the zone's edge (scale 1.0006)


def test_a_scene_without_metres_refuses_it(cube):
    plain = make_cube(np.asarray(cube.values))  # no CRS (a MAT file)
    with pytest.raises(ParameterError, match="projected CRS in metres"):
        area_for_target(60, plain)
    geographic = make_cube(np.asarray(cube.values), crs="EPSG:4326",
                           transform=cube.rio.transform())
    with pytest.raises(ParameterError, match="projected CRS in metres"):
        area_for_target(60, geographic)
    with pytest.raises(ParameterError, match="> 0"):
        area_for_target(0, cube)


def test_aed_with_a_target_size_equals_aed_with_its_area(cube):
    by_size = detectors.get("aed", target_size_m=150).fit_score(cube)
    by_area = detectors.get("aed", area=25).fit_score(cube)
    np.testing.assert_array_equal(by_size.values, by_area.values)
    assert by_size.attrs["hsad_area"] == 25
    with pytest.raises(ParameterError, match="not both"):
        detectors.get("aed", target_size_m=150, area=25).fit(cube)


def test_a_target_below_the_ladders_smallest_step_is_filtered_at_it_and_said(cube):
    with pytest.warns(UserWarning, match="area 1 pixels is below the multi-scale ladder's "
                                         "smallest step, 9: the filters use 9"):
        small = detectors.get("aed", target_size_m=20).fit_score(cube)  # 1 pixel at 30 m
    assert small.attrs["hsad_area"] == 9  # the area filtered, not the 1 asked for
    np.testing.assert_array_equal(small.values,
                                  detectors.get("aed", area=9).fit_score(cube).values)
    with pytest.warns(UserWarning, match="area 4 pixels is below"):
        assert detectors.get("aed", area=4).fit_score(cube).attrs["hsad_area"] == 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the single-area variant filters at the area itself
        detectors.get("aed", variant="aed", area=1).fit_score(cube)


def test_aed_takes_each_variants_own_area_unless_given(cube):
    plain = detectors.get("aed")
    assert plain.area is None
    np.testing.assert_array_equal(plain.fit_score(cube).values,
                                  detectors.get("aed", area=225).fit_score(cube).values)
    single = detectors.get("aed", variant="aed").fit_score(cube).values
    np.testing.assert_array_equal(
        single, detectors.get("aed", variant="aed", area=36).fit_score(cube).values)
    assert not np.array_equal(
        single, detectors.get("aed", variant="aed", area=225).fit_score(cube).values)


def test_neural_fusion_takes_it_and_refuses_it_before_training(cube):
    params = dict(epochs=1, sample_size=256, hidden=8, output="d_ss", seed=0, device="cpu",
                  progress=False)
    det = detectors.get("ae", target_size_m=150, **params).fit(cube)
    by_size = det.score(cube)
    assert by_size.attrs["hsad_area"] == 25
    stages = det.score_stages(cube)  # D_spectral was tagged with an area it never had
    assert stages["d_spatial"].attrs["hsad_area"] == stages["d_ss"].attrs["hsad_area"] == 25
    assert "hsad_area" not in stages["d_spectral"].attrs
    det.set_params(target_size_m=None, area=25)
    np.testing.assert_array_equal(by_size.values, det.score(cube).values)
    with pytest.raises(ParameterError, match="not both"):
        detectors.get("ae", target_size_m=150, area=25, **params).fit(cube)
    untrained = detectors.get("ae", target_size_m=150, **params)
    with pytest.raises(ParameterError, match="projected CRS in metres"):
        untrained.fit(make_cube(np.asarray(cube.values)))
    assert not hasattr(untrained, "history_")  # refused before any training
