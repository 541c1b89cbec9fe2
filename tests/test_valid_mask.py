"""Nodata and valid masks: hsad.cube.nodata (API) and --nodata / --valid-mask in detect and
train (CLI, end to end): excluded pixels score NaN and enter no statistics."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import rasterio
from affine import Affine

from hsad import detectors
from hsad.cli.main import main
from hsad.cube import make_cube, map_like, valid_mask
from hsad.cube.nodata import apply_valid_mask, set_nodata
from hsad.errors import ParameterError
from hsad.io.envi_writer import write_envi
from hsad.io.geotiff_writer import write_mask
from hsad.io.model_archive import load_model

TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 5_100_000.0)
CRS = "EPSG:32633"
ROWS, COLS, BANDS = 20, 24, 5
VALID = np.ones((ROWS, COLS), bool)
VALID[:, 16:] = False  # "water": another mean and covariance
VALID[2, 3] = False


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _data(dtype=np.float32):
    rng = np.random.default_rng(1)
    x = rng.normal(100.0, 3.0, size=(ROWS, COLS, BANDS))
    x[:, 16:] = rng.normal(400.0, 40.0, size=(ROWS, COLS - 16, BANDS))
    return x.astype(dtype)


def _cube(x=None, nodata=None):
    x = _data() if x is None else x
    return make_cube(da.from_array(x, chunks=(8, 8, -1)), transform=TRANSFORM, crs=CRS,
                     nodata=nodata, wavelength=np.linspace(500, 900, BANDS))


# ---- API -----------------------------------------------------------------------------
def test_excluded_pixels_become_nodata_lazily():
    cube = _cube()
    out = apply_valid_mask(cube, VALID)
    assert isinstance(out.data, da.Array) and out.dtype == cube.dtype
    assert np.isnan(out.values[~VALID]).all()
    np.testing.assert_array_equal(out.values[VALID], cube.values[VALID])
    assert np.array_equal(valid_mask(out).values, VALID)
    assert apply_valid_mask(cube, None) is cube


def test_a_cube_held_in_memory_takes_a_valid_mask():
    """``cube.load()`` (numpy inside) takes a mask as the lazy cube does (was an
    AttributeError on ``.chunks``)."""
    cube = _cube()
    out = apply_valid_mask(cube.load(), VALID)
    assert isinstance(out.data, da.Array)
    np.testing.assert_array_equal(out.values, apply_valid_mask(_cube(), VALID).values)
    assert out.rio.crs == cube.rio.crs and out.rio.transform() == cube.rio.transform()


def test_excluded_pixels_enter_no_statistics():
    masked = apply_valid_mask(_cube(), VALID)
    rx = detectors.get("rx").fit(masked)
    ref = detectors.get("rx").fit(_cube(), background=VALID)
    assert rx.n_pixels_ == ref.n_pixels_ == VALID.sum()
    np.testing.assert_allclose(rx.mean_, ref.mean_)
    np.testing.assert_allclose(rx.cov_, ref.cov_)
    scores = rx.score(masked).values
    assert np.isnan(scores[~VALID]).all() and np.isfinite(scores[VALID]).all()


def test_integer_cubes_take_their_nodata_or_become_float():
    ints = _data(np.uint16)
    out = apply_valid_mask(_cube(ints, nodata=0), VALID)
    assert out.dtype == np.uint16 and (out.values[~VALID] == 0).all()
    assert np.array_equal(valid_mask(out).values, VALID)
    out = apply_valid_mask(_cube(ints), VALID)
    assert out.dtype == np.float32 and np.isnan(out.values[~VALID]).all()
    out = apply_valid_mask(_cube(ints, nodata=-9999), VALID)  # not a uint16 value
    assert out.dtype == np.float32 and np.array_equal(valid_mask(out).values, VALID)


def test_a_fractional_nodata_of_integer_data_still_marks_its_pixels():
    """GDAL compares integer data with the nodata truncated (3.5 marks the 3s). The cube
    stays integer, so those pixels stay nodata after the mask, as in the GeoTIFF reader."""
    ints = _data(np.int16)
    ints[0, 0] = 3
    out = apply_valid_mask(_cube(ints, nodata=3.5), VALID)
    assert out.dtype == np.int16 and (out.values[~VALID] == 3).all()
    expected = VALID.copy()
    expected[0, 0] = False
    assert np.array_equal(valid_mask(out).values, expected)
    flags = make_cube(da.from_array(VALID[:, :, None]), nodata=0)  # bool: 0 or 1 only
    assert apply_valid_mask(flags, VALID).dtype == bool


def test_set_nodata_overrides_the_header():
    x = _data()
    x[5, 5] = -1.0
    cube = _cube(x, nodata=-9999)
    assert valid_mask(cube).values.all()
    out = set_nodata(cube, -1)
    assert out.attrs["nodata"] == -1.0 and cube.attrs["nodata"] == -9999.0
    assert not valid_mask(out).values[5, 5] and valid_mask(out).values.sum() == ROWS * COLS - 1
    assert set_nodata(cube, None) is cube


def test_bad_masks_are_refused():
    with pytest.raises(ParameterError, match="does not match"):
        apply_valid_mask(_cube(), VALID[:, :5])
    with pytest.raises(ParameterError, match="excludes every pixel"):
        apply_valid_mask(_cube(), np.zeros_like(VALID))


# ---- the command line, end to end ----------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    cube = _cube()
    scene = write_envi(cube, folder / "scene.img")
    mask = write_mask(map_like(cube, VALID, name="valid"), folder / "valid.tif", like=cube)
    other = folder / "other_grid.tif"
    with rasterio.open(other, "w", driver="GTiff", width=COLS, height=ROWS, count=1,
                       dtype="uint8", crs=CRS,
                       transform=TRANSFORM @ Affine.translation(3, 0)) as dst:
        dst.write(VALID.astype(np.uint8), 1)
    return {"scene": scene, "mask": mask, "other": other}


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_detect_valid_mask_nan_outside_and_statistics_from_inside(files, tmp_path, capsys):
    code, _, err = run_cli(["detect", files["scene"], "-m", "rx", "--valid-mask",
                            files["mask"], "-o", tmp_path / "masked.tif"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["detect", files["scene"], "-m", "rx", "--background",
                            files["mask"], "-o", tmp_path / "background.tif"], capsys)
    assert code == 0, err
    masked, background = _read(tmp_path / "masked.tif"), _read(tmp_path / "background.tif")
    assert np.isnan(masked[~VALID]).all() and np.isfinite(background[~VALID]).all()
    np.testing.assert_allclose(masked[VALID], background[VALID], rtol=1e-6)


def test_train_valid_mask_statistics_from_inside(files, tmp_path, capsys):
    code, _, err = run_cli(["train", files["scene"], "-m", "rx", "--valid-mask",
                            files["mask"], "-o", tmp_path / "rx.hsad"], capsys)
    assert code == 0, err
    rx = load_model(tmp_path / "rx.hsad")
    ref = detectors.get("rx").fit(_cube(), background=VALID)
    assert rx.n_pixels_ == VALID.sum()
    np.testing.assert_allclose(rx.mean_, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(rx.cov_, ref.cov_, rtol=1e-6)
    code, _, err = run_cli(["detect", files["scene"], "--model", tmp_path / "rx.hsad",
                            "--valid-mask", files["mask"], "-o", tmp_path / "s.tif"], capsys)
    assert code == 0, err
    assert np.isnan(_read(tmp_path / "s.tif")[~VALID]).all()


def test_detect_nodata_overrides_the_header(tmp_path, capsys):
    x = _data()
    x[4:6, 7:9] = 0.0
    scene = write_envi(_cube(x, nodata=-9999), tmp_path / "zeros.img")
    code, _, err = run_cli(["detect", scene, "-m", "rx", "--nodata", "0", "-o",
                            tmp_path / "s.tif"], capsys)
    assert code == 0, err
    scores = _read(tmp_path / "s.tif")
    assert np.isnan(scores[4:6, 7:9]).all() and np.isfinite(scores).sum() == ROWS * COLS - 4


def test_valid_mask_on_another_grid_or_as_output_is_refused(files, tmp_path, capsys):
    code, _, err = run_cli(["detect", files["scene"], "-m", "rx", "--valid-mask",
                            files["other"], "-o", tmp_path / "s.tif"], capsys)
    assert code == 2 and "valid mask is not on the scene's grid" in err
    assert err.count("\n") == 1 and not (tmp_path / "s.tif").exists()
    code, _, err = run_cli(["detect", files["scene"], "-m", "rx", "--valid-mask",
                            files["mask"], "-o", files["mask"], "--overwrite"], capsys)
    assert code == 2 and "would overwrite the input" in err
    code, _, err = run_cli(["detect", files["scene"], "-m", "rx", "--valid-mask",
                            tmp_path / "missing.tif", "-o", tmp_path / "s.tif"], capsys)
    assert code == 2 and "valid mask file not found" in err


def test_any_selection_of_a_masked_cube_equals_numpys():
    x = _data(np.int16)
    masked = apply_valid_mask(_cube(x, nodata=-1), VALID)
    want = np.where(VALID[:, :, None], x, -1).astype(np.int16)
    d = masked.data
    assert d.dtype == np.int16
    cases = [(d[3], want[3]), (d[:, 17], want[:, 17]), (d[2:9, 4, 3], want[2:9, 4, 3]),
             (d[[1, 5, 3]], want[[1, 5, 3]]), (d[::-1, ::3], want[::-1, ::3]),
             (d[2, 3, 1], want[2, 3, 1]), (d[:, :, [3, 1]], want[:, :, [3, 1]])]
    for got, expected in cases:
        np.testing.assert_array_equal(np.asarray(got), expected)
    assert (x == _data(np.int16)).all()  # the cube's own array is never written


def test_a_small_window_of_a_masked_file_reads_only_its_pixels(tmp_path, monkeypatch):
    from reader_helpers import count_reads

    from hsad.io import open_cube
    from hsad.io.geotiff import WindowReader
    from hsad.io.geotiff_writer import write_geotiff_cube

    write_geotiff_cube(_cube(), tmp_path / "s.tif")
    masked = apply_valid_mask(open_cube(tmp_path / "s.tif", chunks=16), VALID)
    reads = count_reads(monkeypatch, WindowReader)
    window = masked.data[1:5, 2:6].compute()  # an even sample's window: not the 16 x 16 tile
    assert reads == [16]
    assert np.isnan(window[1, 1]).all() and not np.isnan(window[0]).any()


def test_a_mask_transform_without_a_crs_is_compared_with_the_scenes(tmp_path):
    scene = _cube()
    for shift, placed in ((0, True), (1, False)):
        path = tmp_path / f"mask{shift}.tif"
        write_mask(make_cube(VALID[:, :, None].astype(np.uint8), crs=None,
                             transform=TRANSFORM @ Affine.translation(shift, 0)).isel(band=0),
                   path)
        if placed:
            masked = apply_valid_mask(scene, path).values
            np.testing.assert_array_equal(np.isnan(masked).all(axis=2), ~VALID)
        else:
            with pytest.raises(ParameterError, match="not on the scene's grid"):
                apply_valid_mask(scene, path)


def test_a_vector_valid_mask_is_named_as_one(tmp_path, capsys):
    """`--valid-mask area.gpkg` answered "not a recognised valid mask (expected … an EMIT
    netCDF-4 granule, a PRISMA .he5 product …)", a list of cube formats."""
    import json

    scene = write_envi(_cube(), tmp_path / "s.img")
    area = tmp_path / "area.geojson"
    area.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                          "coordinates": [14.99, 46.0]}}]}))
    code, _, err = run_cli(["detect", scene, "-m", "rx", "--valid-mask", area, "-o",
                            tmp_path / "x.tif"], capsys)
    assert code == 2
    assert err.strip() == (f"error: {area}: is a vector file; a valid mask is a raster on the "
                           "scene's grid (GeoTIFF, ENVI or MAT): burn the polygons into one "
                           "(gdal_rasterize, QGIS's Rasterize)")
