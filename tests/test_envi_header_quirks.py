"""ENVI header quirks GDAL reads (rasterio is the reference): trailing commas, Fortran
exponents, NUL padding, inline comments, contradictory wavelength units, and singular
transforms, which hsad refuses when the file is opened."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error

import hsad
from hsad.cube import make_cube, transform_of
from hsad.errors import GeoreferenceError, HeaderError
from hsad.io.envi import open_envi
from hsad.io.envi_header import parse_header

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

HEAD = "ENVI\nsamples = 10\nlines = 12\nbands = 5\ndata type = 4\ninterleave = bsq\n"
VALUES = np.random.default_rng(0).random((5, 12, 10)).astype("f4")


def envi(folder: Path, body: str | bytes, name: str = "s") -> Path:
    """A 12 x 10 x 5 float32 BSQ scene whose header is ``HEAD`` + ``body``."""
    text = HEAD.encode() + (body.encode() if isinstance(body, str) else body)
    (folder / f"{name}.hdr").write_bytes(text)
    data = folder / f"{name}.img"
    VALUES.tofile(data)
    return data


def quiet_open(path):
    """``hsad.open_cube`` with any user or numpy warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return hsad.open_cube(path)


def gdal_band_tags(path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return [ds.tags(i) for i in range(1, ds.count + 1)]


# --------------------------------------------------------------------------- 1. singular


@pytest.mark.parametrize("sizes", ["0, 0", "30, 0", "0, 30"])
def test_a_singular_map_info_is_refused_at_open(tmp_path, sizes, capsys):
    data = envi(tmp_path, f"map info = {{UTM, 1, 1, 500000, 4000000, {sizes}, 33, North, "
                          "WGS-84}\n")
    with rasterio.open(data) as ds:  # GDAL reports it, but cannot invert it
        assert ds.transform.determinant == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy divide warnings
        with pytest.raises(GeoreferenceError) as info:
            hsad.open_cube(data)
    assert str(info.value).startswith(f"{tmp_path / 's.hdr'}: ")
    assert "singular" in info.value.problem and "'map info'" in info.value.problem
    line = one_error(["info", data], capsys)
    assert "s.hdr" in line and "singular" in line


def test_a_valid_map_info_still_opens(tmp_path):
    data = envi(tmp_path, "map info = {UTM, 1, 1, 500000, 4000000, 30, 30, 33, North, WGS-84}\n")
    with rasterio.open(data) as ds:
        expected = ds.transform
    assert transform_of(quiet_open(data)) == expected


def test_a_singular_geotiff_is_refused_at_open(tmp_path):
    path = tmp_path / "zero.tif"
    with rasterio.open(path, "w", driver="GTiff", height=12, width=10, count=5,
                       dtype="float32", crs="EPSG:32633",
                       transform=Affine(30, 0, 500000, 0, 0, 4000000)) as ds:
        ds.write(VALUES)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(GeoreferenceError) as info:
            hsad.open_cube(path)
    assert str(info.value).startswith(f"{path}: ") and "singular" in info.value.problem


def test_transform_of_a_singular_grid_is_a_georeference_error(tmp_path):
    cube = make_cube(np.ones((3, 4, 2), "f4"), transform=Affine(2, 0, 10, 0, -2, 50),
                     source_path="scene.img")
    cube = cube.rio.write_transform(Affine(2, 0, 10, 0, 0, 50))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(GeoreferenceError) as info:
            transform_of(cube)
    assert str(info.value).startswith("scene.img: ") and "singular" in info.value.problem
    with pytest.raises(GeoreferenceError, match="singular"):
        make_cube(np.ones((3, 4, 2), "f4"), transform=Affine(0, 0, 1, 0, 0, 1))


# --------------------------------------------------------------------------- 2. lists


@pytest.mark.parametrize("key", ["wavelength", "fwhm", "bbl"])
def test_a_trailing_comma_ends_a_list_as_in_gdal(tmp_path, key):
    values = {"wavelength": "400, 500, 600, 700, 800", "fwhm": "10, 10, 10, 10, 10",
              "bbl": "1, 1, 0, 1, 1"}
    body = "".join(f"{k} = {{{v}{',' if k == key else ''}}}\n" for k, v in values.items())
    data = envi(tmp_path, body)
    assert [t.get("wavelength") for t in gdal_band_tags(data)] == ["400", "500", "600",
                                                                   "700", "800"]
    cube = quiet_open(data)
    np.testing.assert_array_equal(cube["wavelength"].values, [400, 500, 600, 700, 800])
    np.testing.assert_array_equal(cube["fwhm"].values, [10] * 5)
    np.testing.assert_array_equal(cube["good_band"].values, [True, True, False, True, True])


def test_fortran_exponents_are_numbers(tmp_path):
    data = envi(tmp_path, "wavelength = {4.0D+02, 5.0d2, 6.0D+02, 7.0D+02, 8.0D+02}\n"
                          "fwhm = {1.0D+01, 1.0D+01, 1.0D+01, 1.0D+01, 1.0D+01}\n")
    assert gdal_band_tags(data)[0]["wavelength"] == "4.0D+02"  # GDAL passes the text
    cube = quiet_open(data)
    np.testing.assert_array_equal(cube["wavelength"].values, [400, 500, 600, 700, 800])
    np.testing.assert_array_equal(cube["fwhm"].values, [10] * 5)


@pytest.mark.parametrize(("body", "key", "item"), [
    ("bbl = {yes, no, 1, 1, 1}\n", "bbl", "yes"),
    ("wavelength = {a, b, c, d, e}\n", "wavelength", "a"),
    ("wavelength = {400, , 600, 700, 800}\n", "wavelength", ""),
    ("wavelength = {400, 500, 600, 700, 800}\nfwhm = {x, 1, 1, 1, 1}\n", "fwhm", "x"),
])
def test_an_unreadable_optional_list_is_ignored_with_a_warning(tmp_path, body, key, item):
    data = envi(tmp_path, body)
    gdal_band_tags(data)  # GDAL opens it
    with pytest.warns(UserWarning) as caught:
        cube = hsad.open_cube(data)
    mine = [str(w.message) for w in caught if f"'{key}'" in str(w.message)]
    assert mine == [f"{tmp_path / 's.hdr'}: '{key}' item '{item}' is not a number; the list "
                    "is ignored"]
    assert cube["good_band"].values.all() and np.isnan(cube["fwhm"].values).all()
    if key == "fwhm":
        np.testing.assert_array_equal(cube["wavelength"].values, [400, 500, 600, 700, 800])


def test_gain_lists_take_a_trailing_comma_as_gdal_does(tmp_path):
    data = envi(tmp_path, "data gain values = {2, 2, 2, 2, 2,}\n")
    with rasterio.open(data) as ds:
        assert ds.scales == (2.0,) * 5
    np.testing.assert_array_equal(quiet_open(data)["band_scale"].values, [2.0] * 5)


# --------------------------------------------------------------------------- 3. NUL bytes


@pytest.mark.parametrize("body", [
    b"\x00", b"\x00" * 300, b"wavelength = {400, 500, 600, 700, 800}\x00\n\x00\x00",
    b"\x00\ndescription = {after a NUL line}\n",
])
def test_nul_bytes_end_a_line_as_in_gdal(tmp_path, body):
    data = envi(tmp_path, body)
    gdal_band_tags(data)
    cube = quiet_open(data)
    assert cube.shape == (12, 10, 5)
    np.testing.assert_array_equal(cube.values, np.transpose(VALUES, (1, 2, 0)))


def test_text_after_a_nul_on_its_line_is_not_read_as_in_gdal(tmp_path):
    data = envi(tmp_path, b"wavelength units = Nano\x00meters\n"
                          b"wavelength = {1, 2, 3, 4, 5}\n")
    assert gdal_band_tags(data)[0]["wavelength_units"] == "Nano"
    assert parse_header(tmp_path / "s.hdr").wavelength_units == "Nano"


@pytest.mark.parametrize("raw", [b"\x00\x01\x02ENVI\nsamples = 1\n", b"EN\x00VI\n",
                                 b"\x7fELF\x02\x01\x01\x00" + bytes(64)])
def test_binary_files_are_still_refused(tmp_path, raw):
    hdr = tmp_path / "b.hdr"
    hdr.write_bytes(raw)
    (tmp_path / "b.img").write_bytes(bytes(8))
    with pytest.raises(HeaderError, match="binary content"):
        open_envi(hdr)


# --------------------------------------------------------------------------- 4. comments


@pytest.mark.parametrize("field", ["samples = 10 ; pixels", "samples = 10;", "data type = 4 ;f",
                                   "byte order = 0 ; little"])
def test_an_inline_comment_after_an_integer_is_read_as_in_gdal(tmp_path, field):
    key = field.split("=")[0]
    old = next((ln for ln in HEAD.splitlines() if ln.startswith(key)), None)
    body = HEAD.replace(old, field) if old else HEAD + field + "\n"
    data = envi(tmp_path, "")
    (tmp_path / "s.hdr").write_text(body)
    with rasterio.open(data) as ds:
        assert (ds.width, ds.height, ds.count, ds.dtypes[0]) == (10, 12, 5, "float32")
    assert quiet_open(data).shape == (12, 10, 5)


@pytest.mark.parametrize("value", ["10abc", "; 10", "10.5"])
def test_other_text_after_an_integer_is_still_refused(tmp_path, value):
    data = envi(tmp_path, "")
    (tmp_path / "s.hdr").write_text(HEAD.replace("samples = 10", f"samples = {value}"))
    with pytest.raises(HeaderError, match="'samples' must be an integer"):
        hsad.open_cube(data)


# --------------------------------------------------------------------------- 5. units


@pytest.mark.parametrize(("units", "values", "looks_like", "kept"), [
    ("Micrometers", "400, 500, 600, 700, 800", "nanometres", 400_000),
    ("Nanometers", "0.4, 0.5, 0.6, 0.7, 0.8", "micrometres", 0.4),
])
def test_units_contradicting_the_values_warn_and_keep_them(tmp_path, units, values,
                                                           looks_like, kept):
    data = envi(tmp_path, f"wavelength units = {units}\nwavelength = {{{values}}}\n")
    assert gdal_band_tags(data)[0]["wavelength_units"] == units  # passed through
    with pytest.warns(UserWarning) as caught:
        cube = hsad.open_cube(data)
    lines = [str(w.message) for w in caught if "wavelength units" in str(w.message)]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith(f"{tmp_path / 's.hdr'}: 'wavelength units = {units}'")
    assert f"look like {looks_like}" in lines[0]
    assert cube["wavelength"].values[0] == pytest.approx(kept)


@pytest.mark.parametrize(("units", "values"), [
    ("Micrometers", "0.4, 0.5, 0.6, 0.7, 0.8"), ("Nanometers", "400, 500, 600, 700, 800"),
    ("Micrometers", "8, 9, 10, 11, 12"), ("Nanometers", "50, 80, 100, 150, 200"),
    ("Index", "1, 2, 3, 4, 5"),
])
def test_plausible_units_do_not_warn(tmp_path, units, values):
    data = envi(tmp_path, f"wavelength units = {units}\nwavelength = {{{values}}}\n")
    quiet_open(data)


@pytest.mark.parametrize("units", ["Wavenumber", "cm-1", "GHz"])
def test_wavelengths_in_no_length_unit_are_set_aside_with_a_warning(tmp_path, units):
    """`wavelength units = Wavenumber` was read as a scene without wavelengths in silence,
    and the model matching then said "the scene has no wavelengths"."""
    data = envi(tmp_path, f"wavelength units = {units}\nwavelength = {{4000, 5000, 6000, "
                          "7000, 8000}\n")
    with pytest.warns(UserWarning, match=f"'wavelength units = {units}' is no length: hsad "
                                         "reads wavelengths in a length unit only"):
        cube = hsad.open_cube(data)
    assert np.isnan(cube["wavelength"].values).all()


#: a big-endian int16 BSQ file of 3 bands, 5 lines, 4 samples, values 0..59
LAYOUT_HEAD = "ENVI\nsamples = 4\nlines = 5\nbands = 3\ndata type = 2\n"


@pytest.mark.parametrize("body, why", [
    ("interleave = bsq\n\tbyte order = 1\n", "its line starts with a tab"),
    ("interleave = bsq\nbyte  order = 1\n", "its name is written with a tab or more than"),
    ("interleave = bsq\ndescription = {" + "x" * 10_000 + "}\nbyte order = 1\n",
     "a line over 10,000 characters"),
    ("interleave = bsq\nsensor type = Unknown {x\nbyte order = 1\n", "a '{' left open"),
])
def test_a_layout_key_gdal_skips_is_read_as_written_and_said(tmp_path, body, why):
    """GDAL (and QGIS) then show the bytes as little-endian; hsad read the header's byte
    order, silently, so that its pixels were not those the analyst saw in QGIS."""
    (tmp_path / "f.hdr").write_text(LAYOUT_HEAD + body)
    np.arange(60, dtype=">i2").tofile(tmp_path / "f.img")
    with rasterio.open(tmp_path / "f.img") as ds:
        assert list(ds.read(1)[0, :3]) == [0, 256, 512]  # GDAL skipped it
    with pytest.warns(UserWarning, match=rf"GDAL does not read this header's 'byte order' "
                      rf"\(.*{re.escape(why)}.*hsad reads them as the header says"):
        cube = hsad.open_cube(tmp_path / "f.img")
    assert list(cube.values[0, :3, 0]) == [0, 1, 2]


def test_a_map_info_gdal_skips_for_its_spelling_says_so(tmp_path):
    body = "map  info = {UTM, 1, 1, 500000, 4000000, 30, 30, 33, North, WGS-84}\n"
    with pytest.warns(UserWarning, match=r"'map info' \(its name is written with a tab or "
                      r"more than one space in it\); neither does hsad"):
        cube = hsad.open_cube(envi(tmp_path, body))
    assert cube.rio.crs is None


def test_an_interleave_with_a_comment_opens_as_in_gdal(tmp_path):
    """``interleave = bil ; line`` was refused as an unknown interleave; GDAL reads BIL."""
    path = envi(tmp_path, "interleave = bil ; by line\n")
    with rasterio.open(path) as ds:
        expected = ds.read()
    cube = quiet_open(path)
    assert np.array_equal(np.moveaxis(cube.values, 2, 0), expected)


@pytest.mark.parametrize("body", ["\tbyte order = 0\ninterleave = bsq\n",
                                  "\tinterleave = bsq\n", "\theader offset = 0\n"])
def test_a_skipped_layout_key_that_says_gdals_default_warns_of_nothing(tmp_path, body):
    (tmp_path / "f.hdr").write_text(LAYOUT_HEAD + body)
    np.arange(60, dtype="<i2").tofile(tmp_path / "f.img")
    cube = quiet_open(tmp_path / "f.img")
    with rasterio.open(tmp_path / "f.img") as ds:
        assert np.array_equal(np.moveaxis(cube.values, 2, 0), ds.read())
