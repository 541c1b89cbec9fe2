"""One estimator contract across detectors, as a researcher looping over them relies on:
float32 maps, one error class for a detector used before ``fit``, wrong arguments as
``ParameterError`` naming the parameter, and no state of an earlier fit left behind
(docs/reliability.md, forty-third round)."""

from __future__ import annotations

import numpy as np
import pytest

from hsad import detectors
from hsad.errors import ModelError, NotFittedError, ParameterError
from hsad.synthetic import make_scene


@pytest.fixture(scope="module")
def cube():
    return make_scene(40, 40, 20, seed=1).cube.compute()


def test_aed_maps_are_float32_as_every_detectors(cube):
    """AED's map was float64, every other detector's float32 (its written map too)."""
    assert detectors.get("aed").fit_score(cube).dtype == np.float32
    assert detectors.get("rx").fit_score(cube).dtype == np.float32


@pytest.mark.parametrize("method", ["rx", "cluster-rx", "local-mean-rx", "utd"])
@pytest.mark.parametrize("background", [5, 2.5, b"x", [1, 2]])
def test_a_background_of_another_kind_is_a_parameter_error(cube, method, background):
    """``fit(cube, background=5)`` was a bare TypeError ("'int' object is not iterable")."""
    with pytest.raises(ParameterError, match="background must be a vector or raster file"):
        detectors.get(method).fit(cube, background=background)


def test_a_background_of_mappings_or_geo_interfaces_is_read_as_polygons(cube):
    """Only ``dict`` passed the new check: a fiona feature (a mapping, not a dict) or an
    object with ``__geo_interface__`` must read as the polygon it holds."""
    from collections import UserDict

    x, y = cube["x"].values, cube["y"].values  # pixel centres: 5 x 5 of them inside
    x0, x1, y0, y1 = (x[5] + x[4]) / 2, (x[9] + x[10]) / 2, (y[5] + y[4]) / 2, (y[9] + y[10]) / 2
    poly = {"type": "Polygon", "coordinates": [[(x0, y0), (x1, y0), (x1, y1), (x0, y1),
                                                 (x0, y0)]]}

    class Shape:
        __geo_interface__ = poly

    from hsad.cube.background import background_mask

    want = background_mask(cube, [poly])
    assert want.sum() == 25
    for other in ([UserDict(poly)], [Shape()], UserDict(poly), Shape(), iter([Shape()])):
        np.testing.assert_array_equal(background_mask(cube, other), want)


@pytest.mark.parametrize("method", ["rx", "cluster-rx", "ae"])
def test_a_refit_drops_the_threshold_of_the_earlier_fits_map(cube, method):
    """``threshold_`` of scene A's map stayed after ``fit(B)``: a script printing it
    reported A's threshold for B."""
    other = make_scene(40, 40, 20, seed=5).cube.compute()
    det = detectors.get(method, **({"epochs": 1, "sample_size": 300} if method == "ae" else {}))
    det.threshold(det.fit_score(cube))
    assert np.isfinite(det.threshold_)
    det.fit(other)
    assert not hasattr(det, "threshold_")
    det.threshold(det.score(other))
    assert np.isfinite(det.threshold_)


@pytest.mark.parametrize("method", ["rx", "utd", "ae", "hadgan"])
def test_a_detector_used_before_fit_raises_one_class_for_all(cube, method):
    """Statistics detectors raised ParameterError and neural ones ModelError (not a
    ParameterError): a loop catching one missed the others."""
    with pytest.raises(NotFittedError, match=f"{method}: not fitted") as caught:
        detectors.get(method).score(cube)
    assert isinstance(caught.value, ParameterError) and isinstance(caught.value, ModelError)


def test_a_neural_models_band_count_error_names_the_detector(cube):
    det = detectors.get("ae", epochs=1, sample_size=300).fit(cube)
    with pytest.raises(ModelError, match=r"ae: the model expects \d+ bands but the scene has \d+"):
        det.score(cube.isel(band=slice(0, 15)))


@pytest.mark.parametrize(("method", "params", "words"), [
    ("cavga", {"w_ae": -1.0}, "cavga: loss weight w_ae must be ≥ 0, got -1.0"),
    ("cavga", {"w_cga": -2}, "cavga: loss weight w_cga must be ≥ 0, got -2"),
    ("hadgan", {"fusion_norm": "x"}, "hadgan: fusion_norm must be one of ('minmax', 'rank'), "
                                     "got 'x'"),
    ("hadgan", {"train_window": "abc"}, "hadgan: training window (train_window, "
                                        "--train-window) must be four whole numbers"),
])
def test_a_bad_setting_is_named_with_its_detector(cube, method, params, words):
    """"loss weights must be ≥ 0" (which?), "fusion norm must be…", and "training window
    must be…" without the detector: each now names the parameter and the detector."""
    with pytest.raises(ParameterError) as caught:
        detectors.get(method, epochs=1, sample_size=300, **params).fit(cube)
    assert words in str(caught.value)
