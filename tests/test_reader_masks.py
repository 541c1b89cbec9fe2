"""Which pixels the readers count as data, against GDAL on the same files: nodata values a
type cannot hold, float32 nodata printed near FLT_MAX, GeoTIFF per-dataset masks and alpha
bands; and the metadata GDAL keeps in other places (IMAGERY fwhm, band scales, GCPs)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint

from hsad import detectors, open_cube
from hsad.cube import nodata_hits, valid_mask
from hsad.cube.nodata import set_nodata
from hsad.errors import ParameterError

TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_000.0)
FLT_MAX = float(np.finfo(np.float32).max)
HEADER = ("ENVI\nsamples = {cols}\nlines = {rows}\nbands = {bands}\nheader offset = 0\n"
          "file type = ENVI Standard\ndata type = {code}\ninterleave = bsq\nbyte order = 0\n")
CODES = {np.dtype("uint16"): 12, np.dtype("int16"): 2, np.dtype("float32"): 4}


def envi(folder, values, extra="", name="scene.img"):
    """An ENVI file (BSQ, little-endian) of ``values`` (bands, rows, cols) and its header."""
    path = folder / name
    values.astype(values.dtype.newbyteorder("<")).tofile(path)
    bands, rows, cols = values.shape
    (folder / "scene.hdr").write_text(HEADER.format(cols=cols, rows=rows, bands=bands,
                                                    code=CODES[values.dtype]) + extra)
    return path


def gdal_valid(path) -> np.ndarray:
    """GDAL's (rows, cols) valid pixels: every band's mask non-zero."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return (src.read_masks() != 0).all(axis=0)


def hsad_valid(path) -> np.ndarray:
    return valid_mask(open_cube(path)).values


def test_nodata_outside_the_type_is_dropped_with_a_warning_as_gdal_does(tmp_path):
    rng = np.random.default_rng(0)
    path = envi(tmp_path, rng.integers(0, 60_000, (3, 8, 9)).astype(np.uint16),
                "data ignore value = -9999\n")
    with pytest.warns(UserWarning, match=r"nodata -9999 cannot occur in uint16 data"):
        cube = open_cube(path)
    assert cube.attrs["nodata"] is None
    with rasterio.open(path) as src:
        assert src.nodata is None
    np.testing.assert_array_equal(valid_mask(cube).values, gdal_valid(path))
    assert np.isfinite(detectors.get("rx").fit_score(cube).values).all()


def test_nodata_the_data_cannot_hold_is_refused_when_given_by_the_user(tmp_path):
    cube = open_cube(envi(tmp_path, np.ones((2, 4, 5), np.uint16)))
    with pytest.raises(ParameterError, match=r"nodata -5 cannot occur in uint16 data"):
        set_nodata(cube, -5)
    assert set_nodata(cube, 7).attrs["nodata"] == 7.0


@pytest.mark.parametrize("written", ["-3.40282e+38", "-3.4028235e+38", "-3.4e+38"])
@pytest.mark.parametrize("container", ["envi", "geotiff"])
def test_float32_nodata_printed_near_flt_max_marks_those_pixels(tmp_path, written, container):
    values = np.ones((2, 5, 7), np.float32)
    values[:, 1, 1] = -FLT_MAX
    values[:, 3, 4] = np.float32(written)  # the value as printed, stored as float32
    # far from FLT_MAX: data (GDAL's float32 comparison also takes values such as -1e38, whose
    # sum with the nodata overflows; hsad does not follow that)
    values[0, 2, 2] = -1e30
    if container == "envi":
        path = envi(tmp_path, values, f"data ignore value = {written}\n")
    else:
        path = tmp_path / "scene.tif"
        try:
            with rasterio.open(path, "w", driver="GTiff", width=7, height=5, count=2,
                               dtype="float32", nodata=float(written)) as dst:
                dst.write(values)
        except ValueError as exc:  # rasterio on NumPy 1.x: the value is past float32's range
            pytest.skip(f"rasterio cannot write this nodata here: {exc}")
    valid = hsad_valid(path)
    assert not valid[1, 1] and not valid[3, 4] and valid[2, 2] and valid.sum() == 33
    if container == "envi" and abs(float(written)) > FLT_MAX:
        # GDAL's ENVI driver drops a nodata just beyond FLT_MAX (docs/formats.md)
        assert gdal_valid(path).all()
    else:
        np.testing.assert_array_equal(valid, gdal_valid(path))


def test_integer_nodata_is_compared_truncated_as_gdal_does(tmp_path):
    values = np.array([[[0, 1, 2, -9999, 32767]]], dtype=np.int16)
    path = envi(tmp_path, values, "data ignore value = 0.5\n")
    np.testing.assert_array_equal(hsad_valid(path), gdal_valid(path))
    assert nodata_hits(values, 0.5).tolist() == [[[True, False, False, False, False]]]
    assert not nodata_hits(values, 1e10).any()


def _masked_geotiff(path, dtype, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=20, height=10, count=3, dtype=dtype,
                       crs="EPSG:32633", transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(np.arange(600, dtype=dtype).reshape(3, 10, 20) % 50 + 1)
        mask = np.full((10, 20), 255, np.uint8)
        mask[:4] = 0
        mask[6, 7] = 0
        dst.write_mask(mask)
    return path


def test_a_per_dataset_mask_marks_pixels_as_gdal_does(tmp_path):
    path = _masked_geotiff(tmp_path / "masked.tif", "int16")
    cube = open_cube(path)
    assert cube.attrs["file_mask"] == "per-dataset mask"
    assert cube.dtype == np.float32  # an integer file without nodata: NaN marks the mask
    np.testing.assert_array_equal(valid_mask(cube).values, gdal_valid(path))
    assert valid_mask(cube).values.sum() == 119
    with rasterio.open(path) as src:
        raw = np.moveaxis(src.read(), 0, -1)
    np.testing.assert_array_equal(cube.values[valid_mask(cube).values],
                                  raw[gdal_valid(path)])
    scores = detectors.get("rx").fit_score(cube).values
    assert np.isnan(scores[:4]).all() and np.isnan(scores[6, 7])
    assert np.isfinite(scores[gdal_valid(path)]).all()


def test_a_mask_in_an_integer_file_with_nodata_keeps_the_type(tmp_path):
    path = _masked_geotiff(tmp_path / "masked.tif", "uint16", nodata=0)
    cube = open_cube(path)
    assert cube.dtype == np.uint16 and cube.attrs["nodata"] == 0
    assert (cube.values[:4] == 0).all()
    np.testing.assert_array_equal(valid_mask(cube).values, gdal_valid(path))


def test_an_alpha_band_is_the_mask_not_a_band(tmp_path):
    path = tmp_path / "rgba.tif"
    with rasterio.open(path, "w", driver="GTiff", width=20, height=10, count=4, dtype="uint8",
                       photometric="RGB", alpha="YES") as dst:
        data = np.full((4, 10, 20), 7, np.uint8)
        data[3] = 255
        data[3, :3] = 0
        dst.write(data)
    cube = open_cube(path)
    assert cube.shape == (10, 20, 3) and cube.attrs["file_mask"] == "alpha band 4"
    np.testing.assert_array_equal(valid_mask(cube).values, gdal_valid(path))


def test_fwhm_from_the_imagery_domain_of_gdal_translated_envi(tmp_path):
    path = envi(tmp_path, np.zeros((3, 4, 5), np.int16),
                "wavelength units = Micrometers\nwavelength = {0.45, 0.55, 0.65}\n"
                "fwhm = {0.01, 0.01, 0.02}\n")
    tif = tmp_path / "scene.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rasterio.shutil.copy(path, tif, driver="GTiff")
    with rasterio.open(tif) as src:
        assert "fwhm" not in src.tags(1) and "FWHM_UM" in src.tags(1, ns="IMAGERY")
    cube = open_cube(tif)
    np.testing.assert_allclose(cube["wavelength"].values, [450, 550, 650])
    np.testing.assert_allclose(cube["fwhm"].values, [10, 10, 20])


def test_an_envi_data_file_whose_bytes_spell_matlab_is_read_as_envi(tmp_path):
    raw = np.frombuffer(b"MATLAB 5.0 MAT-file" + b"\0" * 13, np.uint8).reshape(1, 4, 8)
    path = tmp_path / "scene.dat"
    raw.tofile(path)
    (tmp_path / "scene.hdr").write_text(HEADER.format(cols=8, rows=4, bands=1, code=1))
    np.testing.assert_array_equal(open_cube(path).values[..., 0], raw[0])


def test_gcps_and_band_scales_are_kept(tmp_path):
    path = tmp_path / "gcp.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=20, height=10, count=2,
                           dtype="int16") as dst:
            dst.write(np.ones((2, 10, 20), np.int16))
            dst.gcps = ([GroundControlPoint(0, 0, 12, 45), GroundControlPoint(0, 20, 12.1, 45),
                         GroundControlPoint(10, 0, 12, 44.9)], rasterio.crs.CRS.from_epsg(4326))
            dst.scales, dst.offsets = [0.01, 0.02], [-5, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kept (hsad.io.sensor_georef), so nothing to warn of
        cube = open_cube(path)
    assert len(cube.attrs["sensor_georef"].gcps) == 3
    assert cube.rio.crs is None and cube["band_scale"].values.tolist() == [0.01, 0.02]
    assert cube["band_offset"].values.tolist() == [-5.0, 0.0]
    assert (cube.values == 1).all()  # raw values, as GDAL's read gives them


def test_info_names_the_file_mask(tmp_path, capsys):
    from hsad.cli.main import main

    path = _masked_geotiff(tmp_path / "masked.tif", "int16")
    with pytest.raises(SystemExit) as exc:
        main(["info", str(path)])
    assert exc.value.code == 0
    assert "nodata:     none and the file's per-dataset mask" in capsys.readouterr().out


def test_an_alpha_band_after_many_bands_masks_too(tmp_path):
    path = tmp_path / "hsi_alpha.tif"
    with rasterio.open(path, "w", driver="GTiff", width=20, height=10, count=6, dtype="uint8",
                       photometric="MINISBLACK") as dst:
        dst.colorinterp = [rasterio.enums.ColorInterp.gray] * 5 + [
            rasterio.enums.ColorInterp.alpha]
        data = np.full((6, 10, 20), 7, np.uint8)
        data[5] = 255
        data[5, :2] = 0
        dst.write(data)
    with rasterio.open(path) as src:  # GDAL takes alpha as the mask of RGBA files only
        assert src.colorinterp[5] == rasterio.enums.ColorInterp.alpha
    cube = open_cube(path)
    assert cube.shape == (10, 20, 5) and cube.attrs["file_mask"] == "alpha band 6"
    valid = valid_mask(cube).values
    assert not valid[:2].any() and valid[2:].all()


def test_a_boolean_cube_holds_only_0_and_1_as_nodata():
    from hsad.cube import nodata_for

    assert nodata_for(bool, 0.5) is None and nodata_for(bool, 1) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning for a nodata beyond FLT_MAX
        assert not nodata_hits(np.ones(3, np.float32), 1e39).any()
