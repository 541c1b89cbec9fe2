"""One contract, every registered detector (``detectors.available()``): scikit-learn
parameters, aligned georeferenced maps, NaN exactly on nodata, seed determinism, save/load
round trips and the CLI (``train`` + ``detect --model`` equals ``detect -m``).

A new model passes this file without writing its own: neural detectors run with tiny
settings (declared common hyperparameters; every ``*epochs`` parameter set to 2).
"""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from sklearn.base import clone

from hsad import detectors, open_cube
from hsad.cube import make_cube
from hsad.detectors.neural import NeuralDetector
from hsad.errors import ParameterError
from hsad.nn.persistence import load_detector, save_detector
from hsad.synthetic import make_scene

NAMES = sorted(detectors.available())
TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 5_100_000.0)
NODATA = [(0, 0), (5, 7), (23, 23), (12, 0)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quick(name: str) -> dict:
    """Tiny settings: for neural detectors the common ones, and 2 epochs in every stage."""
    cls = detectors.available()[name]
    if not issubclass(cls, NeuralDetector):
        return {}
    params = dict(hidden=16, depth=1, batch_size=64, sample_size=300, progress=False,
                  device="cpu", seed=3)
    params.update({k: 2 for k in cls.param_defaults() if k.endswith("epochs")})
    return params


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    """A 24×24×12 ENVI scene with a CRS, a transform and nodata pixels."""
    from hsad.io.envi_writer import write_envi

    data = np.array(make_scene(rows=24, cols=24, bands=12, n_targets=3, road=False,
                               seed=2).cube.values)
    for r, c in NODATA:
        data[r, c] = -9999.0
    cube = make_cube(data, transform=TRANSFORM, crs="EPSG:32633", nodata=-9999.0,
                     wavelength=np.linspace(450, 2400, 12))
    path = tmp_path_factory.mktemp("conformance") / "scene.img"
    write_envi(cube, path)
    return path


@pytest.fixture(scope="module")
def cube(scene_file):
    return open_cube(scene_file).persist()


@pytest.mark.parametrize("name", NAMES)
def test_parameters_follow_scikit_learn(name):
    det = detectors.get(name)
    params = det.get_params()
    assert list(params) == list(type(det).param_defaults())
    twin = clone(det)
    assert type(twin) is type(det) and twin.get_params() == params and twin is not det
    key, value = next((k, v) for k, v in params.items() if isinstance(v, int | float)
                      and not isinstance(v, bool))
    assert det.set_params(**{key: value + 1}) is det
    assert det.get_params()[key] == value + 1 and twin.get_params()[key] == value
    with pytest.raises(ParameterError, match="unknown parameter"):
        det.set_params(no_such_parameter=1)
    assert det.get_params() == {**params, key: value + 1}
    assert repr(det).startswith(type(det).__name__ + "(")


@pytest.mark.parametrize("name", NAMES)
def test_fit_score_keeps_shape_georeference_and_nodata(name, cube):
    scores = detectors.get(name, **quick(name)).fit_score(cube)
    values = np.asarray(scores.values)
    assert scores.dims == ("y", "x") and values.shape == cube.shape[:2]
    assert scores.rio.crs == cube.rio.crs and scores.rio.transform() == cube.rio.transform()
    off = np.zeros(values.shape, bool)
    off[tuple(np.array(NODATA).T)] = True
    np.testing.assert_array_equal(np.isnan(values), off)


@pytest.mark.parametrize("name", ["ae", "hadgan"])
def test_every_stage_map_keeps_the_georeference(name, cube):
    """``score_stages``: the maps and the (y, x, band) residual alike (the residual had no
    CRS)."""
    stages = detectors.get(name, **quick(name)).fit(cube).score_stages(cube)
    assert "residual" in stages
    for key, stage in stages.items():
        assert stage.rio.crs == cube.rio.crs, key
        assert stage.rio.transform() == cube.rio.transform(), key


def assert_float32_close(got, want):
    """Maps stored or computed in float32 from the same data: a different order of sums or
    blocking of products moves each value by a few float32 ulps of the map's range (CRD and
    residual maps subtract near-equal norms, so the bound is relative to the largest value)."""
    ulp = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(got, want, rtol=8 * ulp, equal_nan=True,
                               atol=8 * ulp * np.nanmax(np.abs(want)))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_map(name, cube):
    first = detectors.get(name, **quick(name)).fit_score(cube).values
    again = detectors.get(name, **quick(name)).fit_score(cube).values
    np.testing.assert_array_equal(again, first)
    if "seed" in quick(name):  # and the seed matters
        other = detectors.get(name, **{**quick(name), "seed": 4}).fit_score(cube).values
        assert not np.allclose(other, first, equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
def test_tiled_scores_equal_whole(name, cube):
    # Tiling must not change the computation; rounding may differ by the BLAS blocking of
    # each tile size. The scene's covariance has κ ≈ 1e8, so a float32 RX-type map carries
    # rounding up to κ·u₃₂ that moves with the blocking (seen under OPENBLAS_CORETYPE=
    # Prescott): where a detector offers float64, the check runs in it, to test the tiling.
    params = quick(name)
    if "dtype" in detectors.available()[name]().get_params():
        params["dtype"] = "float64"
    det = detectors.get(name, **params).fit(cube)
    whole = det.score(cube).values
    tiled = det.score(cube.chunk({"y": 7, "x": 9}))
    assert len(tiled.data.chunks[0]) > 1 and len(tiled.data.chunks[1]) > 1
    assert_float32_close(tiled.values, whole)


def savable(name: str) -> bool:
    """Neural detectors and those whose fitted statistics a model file holds."""
    cls = detectors.available()[name]
    return issubclass(cls, NeuralDetector) or bool(cls.model_state)


@pytest.mark.parametrize("name", [n for n in NAMES if savable(n)])
def test_saved_model_gives_the_same_map(name, cube, tmp_path):
    det = detectors.get(name, **quick(name)).fit(cube)
    model = load_detector(save_detector(det, tmp_path / "m.hsad"))
    assert model.get_params() == det.get_params()
    np.testing.assert_array_equal(model.score(cube).values, det.score(cube).values)
    # a fitted detector pickles (dask.distributed sends it to its workers): ALAD's
    # spectrally normalised networks did not
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(det)).score(cube).values,
                                  det.score(cube).values)


def _cli(args, capsys):
    from hsad.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err


@pytest.mark.parametrize("name", NAMES)
def test_cli_train_then_detect_equals_detect(name, scene_file, tmp_path, capsys):
    import rasterio

    params = [a for k, v in quick(name).items() for a in ("-p", f"{k}={v}")]
    _cli(["detect", scene_file, "-m", name, *params, "--chunks", 16, "--no-progress",
          "-o", tmp_path / "direct.tif"], capsys)
    with rasterio.open(tmp_path / "direct.tif") as src:
        direct = src.read(1)
    if savable(name):
        _cli(["train", scene_file, "-m", name, *params, "--chunks", 16, "-o",
              tmp_path / "m.hsad"], capsys)
        _cli(["detect", scene_file, "--model", tmp_path / "m.hsad", "--chunks", 16,
              "--no-progress", "-o", tmp_path / "model.tif"], capsys)
        with rasterio.open(tmp_path / "model.tif") as src:
            np.testing.assert_array_equal(src.read(1), direct)
    tiled = open_cube(scene_file, chunks=16)  # the CLI's tiles: the same streamed sums
    expected = detectors.get(name, **quick(name)).fit_score(tiled).values
    assert_float32_close(direct, expected)  # the CLI writes float32
