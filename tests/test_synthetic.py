"""The synthetic demo scene: seeded, georeferenced, with a known truth RX finds imperfectly."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from rasterio.crs import CRS

from hsad.errors import ParameterError
from hsad.outputs.metrics import evaluate
from hsad.synthetic import ABSORPTION_WINDOWS, make_scene


def _global_rx(cube) -> np.ndarray:
    """Squared Mahalanobis distance to the scene mean, good bands only (numpy, pinv)."""
    good = cube["good_band"].values
    x = cube.values[:, :, good].reshape(-1, int(good.sum())).astype(np.float64)
    xc = x - x.mean(axis=0)
    precision = np.linalg.pinv(xc.T @ xc / len(xc), hermitian=True)
    return np.einsum("ij,ij->i", xc @ precision, xc).reshape(cube.shape[:2])


@pytest.fixture(scope="module")
def scene():
    return make_scene(seed=0)


def test_shapes_wavelengths_and_bad_bands(scene):
    cube = scene.cube
    assert cube.dims == ("y", "x", "band") and cube.shape == (128, 128, 150)
    assert isinstance(cube.data, da.Array) and cube.dtype == np.float32
    wl = cube["wavelength"].values
    assert wl[0] == 400.0 and wl[-1] == 2500.0 and np.all(np.diff(wl) > 0)
    assert np.all(cube["fwhm"].values > 0)
    good = cube["good_band"].values
    in_window = np.zeros_like(good)
    for lo, hi in ABSORPTION_WINDOWS:
        in_window |= (wl >= lo) & (wl <= hi)
    np.testing.assert_array_equal(good, ~in_window)
    values = cube.values
    assert np.isfinite(values).all()
    # reflectance-like: visible vegetation/soil within [0, 1] apart from noise
    assert -0.05 < values.min() and values[:, :, good].max() < 1.0


def test_georeference_is_utm(scene):
    assert scene.cube.rio.crs == CRS.from_epsg(32633)
    t = scene.cube.rio.transform()
    assert (t.a, t.e, t.c, t.f) == (30.0, -30.0, 500_000.0, 5_100_000.0)
    assert scene.cube["x"].values[0] == 500_015.0
    assert scene.truth.rio.crs == scene.cube.rio.crs
    assert scene.truth.rio.transform() == t


def test_truth_matches_the_target_list(scene):
    truth = scene.truth.values
    assert truth.dtype == bool and truth.shape == (128, 128)
    assert truth.sum() == sum(t["pixels"] for t in scene.targets)
    assert len(scene.targets) == 20
    for t in scene.targets:
        assert 1 <= t["pixels"] <= 9
        assert 0.1 <= t["fraction"] <= 0.6
        assert truth[t["row"], t["col"]]
    assert len({t["material"] for t in scene.targets}) == 4


def test_same_seed_same_scene_other_seed_other_scene(scene):
    again = make_scene(seed=0)
    np.testing.assert_array_equal(again.cube.values, scene.cube.values)
    np.testing.assert_array_equal(again.truth.values, scene.truth.values)
    assert again.targets == scene.targets
    other = make_scene(seed=1)
    assert not np.array_equal(other.truth.values, scene.truth.values)


def test_global_rx_detects_targets_well_but_not_perfectly(scene):
    for s in (scene, make_scene(seed=1)):
        auc = evaluate(_global_rx(s.cube), s.truth).auc_df
        assert 0.9 < auc < 0.99, auc


def test_tiled_generation_is_consistent():
    big = make_scene(rows=300, cols=40, bands=20, seed=5)
    assert big.cube.data.numblocks[0] == 2  # two row tiles
    whole = big.cube.values
    np.testing.assert_array_equal(big.cube.isel(y=slice(250, 290)).values, whole[250:290])
    # the default target count scales with the area, at least 3
    assert len(big.targets) == max(3, round(20 * 300 * 40 / 128**2))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"rows": 8}, "too small"), ({"fraction": (0.5, 0.2)}, "fraction"),
     ({"noise_rho": 1.0}, "noise_rho"), ({"rows": 20, "cols": 20, "n_targets": 40}, "no room")],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        make_scene(**kwargs)


def test_write_scene_round_trips_through_envi_and_geotiff(tmp_path):
    from hsad import open_cube
    from hsad.io.maps import read_truth
    from hsad.synthetic import write_scene

    s = make_scene(rows=32, cols=40, bands=24, seed=2)
    paths = write_scene(s, tmp_path / "scene", interleave="bil")
    assert paths["cube"].is_file() and paths["truth"].is_file()
    cube = open_cube(paths["cube"])
    assert cube.attrs.get("interleave") == "bil"
    np.testing.assert_array_equal(cube.values, s.cube.values)
    np.testing.assert_allclose(cube["wavelength"].values, s.cube["wavelength"].values)
    np.testing.assert_array_equal(cube["good_band"].values, s.cube["good_band"].values)
    assert cube.rio.crs == CRS.from_epsg(32633)
    assert cube.rio.transform() == s.cube.rio.transform()
    np.testing.assert_array_equal(read_truth(paths["truth"])[0].astype(bool), s.truth.values)


def test_every_size_allowed_builds_with_the_defaults():
    """16×16 is the documented minimum: the default count shrinks to what fits (one target
    at least), whatever the seed or band count; a count given must fit; noise ≥ 0."""
    for rows, bands, seed in ((16, 20, 0), (16, 150, 3), (20, 10, 5), (25, 150, 0)):
        scene = make_scene(rows=rows, cols=rows, bands=bands, seed=seed)
        assert 1 <= len(scene.targets) <= 3
        assert int(scene.truth.values.sum()) == sum(t["pixels"] for t in scene.targets)
    assert len(make_scene(rows=64, cols=64, seed=0).targets) == 5  # room: the full count
    with pytest.raises(ParameterError, match="no room for 9 targets"):
        make_scene(rows=16, cols=16, n_targets=9)
    with pytest.raises(ParameterError, match="noise must be"):
        make_scene(rows=32, cols=32, noise=-1.0)
