"""One model from several scenes: :func:`hsad.cube.mosaic.training_mosaic` and
``hsad train A B ...``, whose fit equals one fitted on the scenes' pixels pooled."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from cli_helpers import one_error, run_cli
from shapely.geometry import box

from hsad import detectors, make_cube, open_cube, synthetic
from hsad.cube.mosaic import context_of, training_mosaic
from hsad.errors import ParameterError
from hsad.io.model_archive import load_model

WAVELENGTHS = np.linspace(450, 900, 6)


def _int_cube(rows, cols, seed, nodata=-9999, **kwargs):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3000, (rows, cols, 6)).astype(np.int16)
    data[0, 0] = nodata
    kwargs.setdefault("wavelength", WAVELENGTHS)
    return make_cube(data, nodata=nodata, source_path=f"s{seed}.img", **kwargs)


def _pooled(*cubes):
    """Every valid pixel of the cubes, float64, one row each."""
    rows = []
    for cube in cubes:
        good = cube["good_band"].values
        x = cube.values.reshape(-1, cube.sizes["band"])[:, good].astype(np.float64)
        nodata = cube.attrs.get("nodata")
        keep = np.isfinite(x).all(axis=1)
        if nodata is not None:
            keep &= ~(x == nodata).any(axis=1)
        rows.append(x[keep])
    return np.concatenate(rows)


def test_the_mosaic_holds_each_scene_apart_and_its_statistics_are_the_pooled_ones():
    a, b = _int_cube(12, 9, 0), _int_cube(7, 5, 1)
    mosaic, region = training_mosaic([a, b], gap=4)
    assert mosaic.shape == (12, 9 + 4 + 5, 6) and mosaic.dtype == np.float32
    assert region is None and mosaic.attrs["scenes"] == ["s0.img", "s1.img"]
    values = mosaic.values
    np.testing.assert_array_equal(values[:, :9][1:], a.values.astype(np.float32)[1:])
    assert np.isnan(values[0, 0]).all()  # the nodata pixel
    assert np.isnan(values[:, 9:13]).all() and np.isnan(values[7:, 13:]).all()  # gap, padding
    rx = detectors.get("rx").fit(mosaic)
    x = _pooled(a, b)
    np.testing.assert_allclose(rx.mean_, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rx.cov_, np.cov(x.T, bias=True), rtol=1e-9)
    assert rx.n_pixels_ == len(x)


class _Counting:
    """An array-like scene that records the windows read from it."""

    def __init__(self, values):
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, 3
        self.reads = []

    def __getitem__(self, key):
        out = self.values[key]
        self.reads.append(out.shape[:2])
        return out


def test_a_window_of_the_mosaic_reads_only_its_pixels_of_each_scene():
    import dask.array as da

    sources = [_Counting(np.random.default_rng(i).normal(size=(300, 200, 6)).astype(np.float32))
               for i in range(2)]
    cubes = [make_cube(da.from_array(s, chunks=(300, 200, -1), asarray=False,
                                     meta=np.empty((0, 0, 0), np.float32)),
                       wavelength=WAVELENGTHS) for s in sources]
    mosaic, _ = training_mosaic(cubes, gap=3)
    for source in sources:  # the check for scenes without data read them (small: whole)
        source.reads.clear()
    window = mosaic.data[10:14, 198:206].compute()  # across the gap: both scenes, the gap
    np.testing.assert_array_equal(window[:, :2], sources[0].values[10:14, 198:200])
    np.testing.assert_array_equal(window[:, 5:], sources[1].values[10:14, :3])
    assert np.isnan(window[:, 2:5]).all()
    assert sources[0].reads == [(4, 2)] and sources[1].reads == [(4, 3)]


def test_the_mosaic_keeps_the_files_band_numbers_a_model_records():
    """`train a.mat b.mat --bands 5:25` recorded bands 1–20 (the mosaic's own numbering):
    `detect --model --bands 5:25` warned it took other bands and `--bands 0:20` did not."""
    rng = np.random.default_rng(0)
    scenes = [make_cube(rng.normal(size=(10, 12, 30)).astype(np.float32) + 5).isel(
        band=slice(5, 25)) for _ in range(2)]
    mosaic, _ = training_mosaic(scenes)
    np.testing.assert_array_equal(mosaic["band"].values, np.arange(6, 26))
    det = detectors.get("rx").fit(mosaic)
    np.testing.assert_array_equal(det._fitted_band_numbers, np.arange(6, 26))


def test_wide_scenes_are_laid_one_below_the_other():
    a, b = _int_cube(4, 20, 0), _int_cube(2, 15, 1)
    left = np.zeros((2, 15), bool)
    left[:, :3] = True
    mosaic, region = training_mosaic([a, b], [None, left], gap=2)
    assert mosaic.shape == (4 + 2 + 2, 20, 6)  # side by side, 4 x 37, would pad more
    values = mosaic.values
    np.testing.assert_array_equal(values[6:, 1:15], b.values[:, 1:].astype(np.float32))
    assert np.isnan(values[4:6]).all() and np.isnan(values[6:, 15:]).all()
    assert region[:4].all() and not region[4:6].any() and region[6:].sum() == 6
    rx = detectors.get("rx").fit(mosaic)
    np.testing.assert_allclose(rx.mean_, _pooled(a, b).mean(axis=0), rtol=1e-12)


def test_regions_go_with_their_scenes_and_bands_bad_anywhere_are_bad():
    a = _int_cube(6, 4, 0, good_band=[True, True, False, True, True, True])
    b = _int_cube(5, 3, 1, good_band=[True, True, True, True, True, False])
    left = np.zeros((5, 3), bool)
    left[:, 0] = True
    mosaic, region = training_mosaic([a, b], [None, left], gap=2)
    assert mosaic["good_band"].values.tolist() == [True, True, False, True, True, False]
    expected = np.zeros((6, 4 + 2 + 3), bool)
    expected[:, :4] = True
    expected[:5, 6] = True
    np.testing.assert_array_equal(region, expected)


@pytest.mark.parametrize("change, message", [
    (dict(cols=3, bands=5), "5 bands, where s0.img has 6"),
    (dict(wavelength=WAVELENGTHS + 25), "wavelengths differ from s0.img's by up to 25.0 nm"),
    (dict(wavelength=None), "s0.img has wavelengths and s1.img none"),
    (dict(gain=2.0), "values stored with other gains or offsets than s0.img's"),
    (dict(bad=True), "no band is good in every scene"),
])
def test_scenes_whose_bands_differ_are_refused_by_name(change, message):
    a = _int_cube(4, 4, 0, good_band=[True] * 3 + [False] * 3)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 3000, (4, 3, change.get("bands", 6))).astype(np.int16)
    b = make_cube(data, source_path="s1.img", wavelength=change.get(
        "wavelength", WAVELENGTHS[:data.shape[2]]),
        good_band=[False] * 3 + [True] * 3 if change.get("bad") else None)
    if "gain" in change:
        from hsad.cube import with_band_scaling

        b = with_band_scaling(b, [change["gain"]] * 6, [0.0] * 6)
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        training_mosaic([a, b])


def test_wavelengths_a_little_apart_are_warned_of():
    a, b = _int_cube(4, 4, 0), _int_cube(4, 4, 1, wavelength=WAVELENGTHS + 3)
    with pytest.warns(UserWarning, match=r"s1\.img: wavelengths differ from s0\.img's by up "
                                         r"to 3\.0 nm"):
        training_mosaic([a, b])


def test_scenes_on_scales_far_apart_are_warned_of():
    """Reflectance beside reflectance × 10000 was pooled in silence (an RX model of both
    scored a scene like the first at AUC 0.65 against 0.997); scenes of one scale say
    nothing."""
    import warnings

    a = _int_cube(8, 8, 0)
    scaled = make_cube(a.values.astype(np.float32) / 10000, source_path="s9.img",
                       wavelength=WAVELENGTHS)
    with pytest.warns(UserWarning, match=r"s9\.img: its values lie about 0\.000\d+× those of "
                      r"s0\.img in the median band: another unit or scale factor"):
        training_mosaic([a, scaled])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        training_mosaic([a, _int_cube(8, 8, 1)])


def test_the_gap_is_the_widest_window_a_detector_looks_through():
    assert context_of(detectors.get("rx")) == 1
    assert context_of(detectors.get("local-mean-rx", kernel=31)) == 31
    assert context_of(detectors.get("ae", input="patch", patch=5)) == 5


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """Two small georeferenced ENVI flight lines, side by side on one UTM grid."""
    folder = tmp_path_factory.mktemp("campaign")
    out = []
    for i, (rows, cols) in enumerate(((24, 20), (20, 24))):
        scene = synthetic.make_scene(rows=rows, cols=cols, bands=8, seed=i,
                                     origin=(500_000.0 + 1000 * i, 5_100_000.0))
        out.append(synthetic.write_scene(scene, folder, name=f"line_{'ab'[i]}"))
    return out


def _left_halves(lines):
    """A mask of the left half of each line beside it, ``<stem>_left.tif``."""
    import rasterio

    for s in lines:
        with rasterio.open(s["truth"]) as src:
            profile, shape = src.profile, src.shape
        left = np.zeros(shape, np.uint8)
        left[:, : shape[1] // 2] = 1
        with rasterio.open(s["cube"].with_name(s["cube"].stem + "_left.tif"), "w",
                           **profile) as dst:
            dst.write(left, 1)


def test_hsad_train_on_two_scenes_fits_their_pooled_pixels(lines, tmp_path, capsys):
    model = tmp_path / "campaign_rx.hsad"
    code, out, err = run_cli(["train", lines[0]["cube"], lines[1]["cube"], "-m", "rx", "-o",
                              model], capsys)
    assert code == 0, err
    assert "rx: fitted on 7 bands of 2 scenes" in out
    rx = load_model(model)
    x = _pooled(*(open_cube(s["cube"]) for s in lines))
    np.testing.assert_allclose(rx.mean_, x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(rx.cov_, np.cov(x.T, bias=True), rtol=1e-5, atol=1e-12)
    code, _, err = run_cli(["detect", lines[1]["cube"], "--model", model, "-o",
                            tmp_path / "b.tif"], capsys)
    assert code == 0, err


def test_a_network_trains_on_several_scenes_the_same_way_twice(lines, tmp_path, capsys):
    weights = []
    for run in ("one", "two"):
        model = tmp_path / f"{run}.hsad"
        code, out, err = run_cli(["train", lines[0]["cube"], lines[1]["cube"], "-m", "ae",
                                  "--epochs", "2", "--seed", "3", "-p", "input=patch", "-p",
                                  "patch=3", "-o", model, "--no-progress"], capsys)
        assert code == 0, err
        assert "ae: trained on 960 pixels x 7 bands of 2 scenes" in out  # 24·20 + 20·24
        with zipfile.ZipFile(model) as archive:
            weights.append(archive.read("model.safetensors"))
    assert weights[0] == weights[1]


def test_each_scene_takes_its_own_training_mask_and_polygons_cover_some_scenes(
        lines, tmp_path, capsys):
    import pyogrio.raw
    import shapely

    _left_halves(lines)
    model = tmp_path / "left.hsad"
    code, _, err = run_cli(["train", *(s["cube"] for s in lines), "-m", "rx", "-o", model,
                            "--train-mask", lines[0]["cube"].parent / "{stem}_left.tif"], capsys)
    assert code == 0, err
    cubes = [open_cube(s["cube"]) for s in lines]
    x = _pooled(*(c[:, : c.sizes["x"] // 2] for c in cubes))
    np.testing.assert_allclose(load_model(model).mean_, x.mean(axis=0), rtol=1e-6)
    # an area over the first line only: the second adds no pixel, and that is no error
    area = tmp_path / "area.gpkg"
    pyogrio.raw.write(area, np.array([shapely.to_wkb(box(500_000, 5_099_700, 500_300,
                                                         5_100_000))], dtype=object),
                      [], [], geometry_type="Polygon", crs="EPSG:32633", driver="GPKG")
    code, _, err = run_cli(["train", *(s["cube"] for s in lines), "-m", "rx", "-o",
                            tmp_path / "area.hsad", "--background", area], capsys)
    assert code == 0, err
    x = _pooled(cubes[0][:10, :10])
    np.testing.assert_allclose(load_model(tmp_path / "area.hsad").mean_, x.mean(axis=0),
                               rtol=1e-6)


def test_a_scene_that_adds_no_pixel_is_named():
    a = _int_cube(6, 6, 0)
    empty = make_cube(np.full((5, 5, 6), np.nan, np.float32), wavelength=WAVELENGTHS,
                      source_path="clouds.img")
    with pytest.warns(UserWarning, match=r"clouds\.img: adds nothing to the training: no pixel"):
        training_mosaic([a, empty])
    with pytest.warns(UserWarning, match=r"s0\.img: adds nothing to the training: its training "
                                         "area holds none"):
        training_mosaic([a, _int_cube(5, 5, 1)], [np.zeros((6, 6), bool), None])


@pytest.mark.parametrize("extra, message", [
    (["-o", "{stem}.hsad"], "-o {stem}.hsad: one file for the scenes together"),
    (["--train-window", "0,5,0,5"], "--train-window applies to one scene; train on 2 scenes"),
    (["--labels", "x.tif"], "--labels applies to one scene; train on 2 scenes"),
])
def test_options_of_one_scene_are_refused_with_several(lines, tmp_path, capsys, extra, message):
    method = ["-m", "cavga"] if "--labels" in extra else ["-m", "rx"]
    output = [] if "-o" in extra else ["-o", tmp_path / "m.hsad"]
    line = one_error(["train", *(s["cube"] for s in lines), *method, *output, *extra], capsys)
    assert message in line
    assert not (tmp_path / "m.hsad").exists()


def test_scenes_of_other_bands_are_one_line_naming_the_scene(lines, tmp_path, capsys):
    line = one_error(["train", *(s["cube"] for s in lines), "--bands", "0:8", "-m", "rx", "-o",
                      tmp_path / "m.hsad", "--valid-mask", tmp_path / "{stem}_none.tif"], capsys)
    assert "valid mask file not found" in line and "line_a_none.tif" in line
    other = tmp_path / "other"
    files = synthetic.write_scene(synthetic.make_scene(rows=24, cols=24, bands=5), other,
                                  name="five")
    line = one_error(["train", lines[0]["cube"], files["cube"], "-m", "rx", "-o",
                      tmp_path / "m.hsad"], capsys)
    assert line.startswith(f"error: {files['cube']}: 5 bands, where {lines[0]['cube']} has 8")


def test_one_scene_fills_stem_in_its_inputs_too(lines, tmp_path, capsys):
    _left_halves(lines)
    code, _, err = run_cli(["train", lines[0]["cube"], "-m", "rx", "-o", tmp_path / "m.hsad",
                            "--train-mask", lines[0]["cube"].parent / "{stem}_left.tif"],
                           capsys)
    assert code == 0, err
    cube = open_cube(lines[0]["cube"])
    x = _pooled(cube[:, : cube.sizes["x"] // 2])
    np.testing.assert_allclose(load_model(tmp_path / "m.hsad").mean_, x.mean(axis=0), rtol=1e-6)
