"""`hsad convert` keeps what GDAL would keep: nodata a new type cannot hold, a file's own
mask, band scale and offset, partly unknown wavelengths, and the header readers take
(found by a differential review against GDAL; docs/reliability.md, sixth round)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error, run_cli
from rasterio.enums import ColorInterp

from hsad.cube import make_cube
from hsad.io import open_cube
from hsad.io.envi_writer import write_envi

GRID = Affine(30, 0, 500_000, 0, -30, 4_100_000)


def _tif(path, data, **profile):
    bands, rows, cols = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=bands,
                       dtype=data.dtype, crs="EPSG:32633", transform=GRID, **profile) as dst:
        dst.write(data)
    return path


def _gdal_masked(path) -> int:
    with rasterio.open(path) as src:
        return int((src.dataset_mask() == 0).sum())


@pytest.mark.parametrize("suffix", [".tif", ".img"])
def test_a_float64_nodata_beyond_float32_is_clamped_as_gdal_clamps_it(tmp_path, capsys,
                                                                      suffix):
    """ArcGIS's -DBL_MAX into float32: a traceback (GeoTIFF) or -inf pixels under a nodata
    that matched none of them (ENVI); now GDAL's clamped value, on the pixels too."""
    data = np.ones((2, 3, 4))
    data[:, 0, 0] = -np.finfo(np.float64).max
    src = _tif(tmp_path / "in.tif", data, nodata=-np.finfo(np.float64).max)
    out = tmp_path / f"out{suffix}"
    code, _, err = run_cli(["convert", src, out, "--dtype", "float32"], capsys)
    assert code == 0 and "written as -3.40282e+38" in err
    low = -float(np.finfo(np.float32).max)
    with rasterio.open(out) as dst:
        assert dst.nodata == low and dst.read(1)[0, 0] == np.float32(low)
    assert _gdal_masked(out) == 1 and open_cube(out).attrs["nodata"] == low


@pytest.mark.parametrize("suffix", [".tif", ".img"])
def test_a_files_own_mask_stays_masked(tmp_path, capsys, suffix):
    """A uint16 GeoTIFF with an internal mask and no nodata is read as float with NaN
    there; the output had no nodata, so GDAL took the NaN pixels for data."""
    src = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(src, "w", driver="GTiff", width=12, height=10, count=4,
                           dtype="uint16", crs="EPSG:32633", transform=GRID) as dst:
            dst.write(np.full((4, 10, 12), 500, "uint16"))
            mask = np.full((10, 12), 255, "uint8")
            mask[2:4, 3:7] = 0
            dst.write_mask(mask)
    out = tmp_path / f"out{suffix}"
    assert run_cli(["convert", src, out], capsys)[0] == 0
    assert _gdal_masked(out) == 8
    code, _, err = run_cli(["convert", src, tmp_path / f"int{suffix}", "--dtype", "uint16"],
                           capsys)
    assert code == 0 and "uint16 has no NaN: pixels without data (NaN), if any, become 0" in err


def test_nan_pixels_of_a_float_cube_without_nodata_are_named_when_cast_to_integers(
        tmp_path, capsys):
    """A float ENVI file without a data ignore value, NaN where there is no data: cast to
    int16 the NaN became 0 without the warning the docs promise."""
    data = np.full((10, 12, 3), 0.25, np.float32)
    data[2:4, 3:5] = np.nan
    src = write_envi(make_cube(data, crs="EPSG:32633", transform=GRID), tmp_path / "f.img")
    code, _, err = run_cli(["convert", src, tmp_path / "i.tif", "--dtype", "int16"], capsys)
    assert code == 0 and "int16 has no NaN: pixels without data (NaN), if any, become 0" in err
    with rasterio.open(tmp_path / "i.tif") as ds:
        assert ds.nodata is None and (ds.read()[:, 2:4, 3:5] == 0).all()


def test_band_scale_offset_and_a_reflectance_scale_factor_are_kept(tmp_path, capsys):
    data = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    src = _tif(tmp_path / "scaled.tif", data)
    with rasterio.open(src, "r+") as dst:
        dst.scales, dst.offsets = (1e-4, 2e-4), (-0.1, 0.5)
    for out in ("a.tif", "a.img", "sub.img"):
        extra = ["--bands", "1"] if out == "sub.img" else []
        assert run_cli(["convert", src, tmp_path / out, *extra], capsys)[0] == 0
        with rasterio.open(tmp_path / out) as dst:  # GDAL reads ENVI's data gain values
            want = ((2e-4,), (0.5,)) if extra else ((1e-4, 2e-4), (-0.1, 0.5))
            assert (dst.scales, dst.offsets) == want, out
    assert open_cube(tmp_path / "a.img")["band_scale"].values.tolist() == [1e-4, 2e-4]
    # an ENVI reflectance scale factor F becomes GDAL's band scale 1/F in a GeoTIFF
    assert run_cli(["convert", tmp_path / "a.img", tmp_path / "b.img"], capsys)[0] == 0
    header = (tmp_path / "b.hdr").read_text()
    (tmp_path / "b.hdr").write_text(header.split("data gain values")[0]
                                    + "reflectance scale factor = 10000\n")
    assert run_cli(["convert", tmp_path / "b.img", tmp_path / "r.tif"], capsys)[0] == 0
    with rasterio.open(tmp_path / "r.tif") as dst:
        assert dst.scales == (1e-4, 1e-4) and dst.offsets == (0.0, 0.0)


@pytest.mark.parametrize("suffix", [".tif", ".mat", ".img"])
def test_wavelengths_known_for_some_bands_survive(tmp_path, capsys, suffix):
    """One unknown wavelength made the GeoTIFF and MAT outputs lose all of them."""
    data = np.ones((4, 3, 5), np.float32)
    src = tmp_path / "in.tif"
    with rasterio.open(src, "w", driver="GTiff", width=5, height=3, count=4, dtype="float32",
                       crs="EPSG:32633", transform=GRID) as dst:
        dst.write(data)
        for b, (wl, fw) in enumerate([(450.25, 10), (550.5, 10), (None, 10), (750.75, 10)]):
            tags = {"fwhm": str(fw), "wavelength_units": "Nanometers"}
            dst.update_tags(b + 1, **(tags | ({"wavelength": str(wl)} if wl else {})))
    np.testing.assert_array_equal(open_cube(src)["wavelength"].values,
                                  [450.25, 550.5, np.nan, 750.75])
    out = tmp_path / f"out{suffix}"
    assert run_cli(["convert", src, out], capsys)[0] == 0
    np.testing.assert_array_equal(open_cube(out)["wavelength"].values,
                                  [450.25, 550.5, np.nan, 750.75])


def test_a_nodata_an_integer_type_cannot_hold_is_dropped_with_a_warning(tmp_path, capsys):
    """-0.5 into int16 was kept: GDAL then masked every 0, real data included."""
    data = np.array([[[-0.5, 0.2, 7.0], [3.0, 0.0, 9.0]]], np.float32)
    src = _tif(tmp_path / "frac.tif", data, nodata=-0.5)
    code, _, err = run_cli(["convert", src, tmp_path / "i.tif", "--dtype", "int16"], capsys)
    assert code == 0 and "nodata -0.5 is not a value of int16" in err
    # a float cube's NaN pixels become 0 too: said in the same line
    assert "pixels without data held as NaN, if any, become 0" in err
    with rasterio.open(tmp_path / "i.tif") as dst:
        assert dst.nodata is None


def _int64_envi(path, nodata):
    data = np.arange(8, dtype="<i8").reshape(1, 2, 4)
    data[0, 0, 0] = nodata
    data.tofile(path)
    path.with_suffix(".hdr").write_text(
        "ENVI\nsamples = 4\nlines = 2\nbands = 1\ndata type = 14\ninterleave = bsq\n"
        f"byte order = 0\ndata ignore value = {nodata}\n")
    return path


@pytest.mark.parametrize("nodata", [-2**63, 123456789012345678])
def test_an_int64_nodata_a_geotiff_tag_cannot_hold_is_refused(tmp_path, capsys, nodata):
    """GDAL writes a GeoTIFF's nodata tag from a double in exponent form, and reads an int64
    file's back as an integer up to the point: -2**63 came back as -9, and pixels of -9
    were taken for no data (those of -2**63 for data). Refused, nothing written; ENVI
    keeps it, and a value the tag holds is written."""
    src = _int64_envi(tmp_path / "s.img", nodata)
    err = one_error(["convert", src, tmp_path / "o.tif"], capsys)
    assert f"o.tif: nodata {float(nodata):.0f} of int64 does not survive a GeoTIFF's " \
           "nodata tag (GDAL reads it back as" in err
    assert not list(tmp_path.glob("o.tif*"))
    assert run_cli(["convert", src, tmp_path / "o.img"], capsys)[0] == 0
    assert open_cube(tmp_path / "o.img").attrs["nodata"] == float(nodata)
    src = _int64_envi(tmp_path / "t.img", -99_999_999_999)
    assert run_cli(["convert", src, tmp_path / "t.tif"], capsys)[0] == 0
    with rasterio.open(tmp_path / "t.tif") as dst:
        assert dst.nodata == -99_999_999_999


def test_a_stale_header_beside_the_output_is_refused_or_replaced(tmp_path, capsys):
    """`out.img.hdr` (which GDAL and hsad read before `out.hdr`) was left beside a new
    `out.img`, so both read the new pixels through the old header."""
    src = _tif(tmp_path / "in.tif", np.ones((6, 5, 4), np.int16))
    stale = tmp_path / "out.img.hdr"
    stale.write_text("ENVI\nsamples = 3\nlines = 2\nbands = 1\nheader offset = 0\n"
                     "file type = ENVI Standard\ndata type = 1\ninterleave = bsq\n"
                     "byte order = 0\n")
    assert "exists; give --overwrite" in one_error(["convert", src, tmp_path / "out.img"],
                                                   capsys)
    assert run_cli(["convert", src, tmp_path / "out.img", "--overwrite"], capsys)[0] == 0
    assert not stale.exists() and open_cube(tmp_path / "out.img").shape == (5, 4, 6)


def test_a_device_is_never_an_output(tmp_path, capsys):
    """With --overwrite, the rename into place replaced a device node (as root, /dev/null)."""
    import os

    src = _tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.int16))
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    assert "not a regular file" in one_error(["convert", src, fifo, "--overwrite"], capsys)
    assert not fifo.is_file()


def test_a_stale_header_in_another_letter_case_is_found_too(tmp_path, capsys):
    """`out.img.HDR` is read (case-blind) before `out.hdr` as well."""
    src = _tif(tmp_path / "in.tif", np.ones((6, 5, 4), np.int16))
    stale = tmp_path / "out.img.HDR"
    stale.write_text("ENVI\nsamples = 3\nlines = 2\nbands = 1\n")
    assert "exists; give --overwrite" in one_error(["convert", src, tmp_path / "out.img"],
                                                   capsys)
    assert run_cli(["convert", src, tmp_path / "out.img", "--overwrite"], capsys)[0] == 0
    assert not stale.exists() and open_cube(tmp_path / "out.img").shape == (5, 4, 6)


def test_write_envi_never_removes_its_inputs_header(tmp_path):
    """`s.img.dat` with its header `s.img.hdr`, written as `s.img`: readers of `s.img` take
    that header first, and it is another file's (here the input's): refused, not deleted."""
    from hsad.errors import ParameterError
    from hsad.io.envi_writer import write_envi

    src = _tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.int16))
    first = write_envi(open_cube(src), tmp_path / "s.img.dat")
    assert (tmp_path / "s.img.hdr").exists()
    with pytest.raises(ParameterError, match="s.img.hdr beside it is the header of "
                       "s.img.dat, and readers would take it for s.img"):
        write_envi(open_cube(first), tmp_path / "s.img")
    assert (tmp_path / "s.img.hdr").exists()


def test_scales_follow_bands_reordered_in_python(tmp_path):
    """Band scale and offset are band coordinates: `isel` reorders them with the bands."""
    from hsad.io.envi_writer import write_envi
    from hsad.io.geotiff_writer import write_geotiff_cube

    src = _tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.int16))
    with rasterio.open(src, "r+") as dst:
        dst.scales, dst.offsets = (1e-4, 1.0), (0.0, 2.0)
    swapped = open_cube(src).isel(band=[1, 0])
    for path in (write_geotiff_cube(swapped, tmp_path / "s.tif"),
                 write_envi(swapped, tmp_path / "s.img")):
        with rasterio.open(path) as dst:
            assert (dst.scales, dst.offsets) == ((1.0, 1e-4), (2.0, 0.0)), path


def test_unreadable_gain_lists_are_ignored_with_a_warning(tmp_path):
    """`data gain values = {1.0D0, 1.0D0}` (Fortran exponents) read before gains were read:
    metadata no detector uses does not make the file unreadable."""
    src = _tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.int16))
    from hsad.io.envi_writer import write_envi

    path = write_envi(open_cube(src), tmp_path / "g.img")
    header = tmp_path / "g.hdr"
    header.write_text(header.read_text() + "data gain values = {1.0D0, 1.0D0}\n")
    with pytest.warns(UserWarning, match="band scales and offsets are ignored"):
        cube = open_cube(path)
    assert "band_scale" not in cube.coords and cube.shape == (3, 4, 2)


def test_a_complete_wavelength_list_beats_partial_band_tags(tmp_path):
    src = tmp_path / "in.tif"
    with rasterio.open(src, "w", driver="GTiff", width=2, height=2, count=3, dtype="float32",
                       crs="EPSG:32633", transform=GRID) as dst:
        dst.write(np.ones((3, 2, 2), np.float32))
        dst.update_tags(ns="ENVI", wavelength="{400, 500, 600}",
                        wavelength_units="Nanometers")
        dst.update_tags(2, wavelength="500")
    np.testing.assert_array_equal(open_cube(src)["wavelength"].values, [400, 500, 600])


def test_a_masked_file_with_a_nodata_value_stays_masked_in_envi(tmp_path, capsys):
    """A float file with nodata -9999 and its own mask: the masked pixels (NaN) were written
    as NaN under `data ignore value = -9999`, so GDAL took them for data."""
    src = tmp_path / "m.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(src, "w", driver="GTiff", width=4, height=3, count=2,
                           dtype="float32", nodata=-9999, crs="EPSG:32633",
                           transform=GRID) as dst:
            dst.write(np.ones((2, 3, 4), np.float32))
            mask = np.full((3, 4), 255, "uint8")
            mask[0, :2] = 0
            dst.write_mask(mask)
    for out in ("m.img", "m2.tif"):
        assert run_cli(["convert", src, tmp_path / out], capsys)[0] == 0
        assert _gdal_masked(tmp_path / out) == 2, out


def test_a_float32_file_with_a_float64_nodata_converts(tmp_path, capsys):
    """`data ignore value = -1.797e308` on float32 data: no pixel can hold it, so it is
    ignored with a warning, as GDAL ignores it (it was a traceback when writing GeoTIFF)."""
    from hsad.io.envi_writer import write_envi

    path = write_envi(open_cube(_tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.float32))),
                      tmp_path / "f.img")
    header = tmp_path / "f.hdr"
    header.write_text(header.read_text() + "data ignore value = -1.7976931348623157e+308\n")
    code, _, err = run_cli(["convert", path, tmp_path / "f.tif"], capsys)
    assert code == 0 and "cannot occur in float32 data; ignored" in err


def test_a_symbolic_link_as_output_is_replaced_not_followed(tmp_path, capsys):
    import os

    src = _tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.int16))
    dangling = tmp_path / "d.tif"
    os.symlink(tmp_path / "nowhere.tif", dangling)
    assert run_cli(["convert", src, dangling, "--overwrite"], capsys)[0] == 0
    assert dangling.is_file() and not dangling.is_symlink()


def test_another_cubes_header_in_another_case_is_left_alone(tmp_path):
    """`Scene.img` + `Scene.hdr` beside a new `scene.img`: on a case-sensitive file system
    that header is another cube's, not a stale one of the output; it stays."""
    from hsad.io.envi_writer import write_envi

    cube = open_cube(_tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.int16)))
    write_envi(cube, tmp_path / "Scene.img")
    write_envi(cube.isel(band=[0]), tmp_path / "scene.img")
    assert open_cube(tmp_path / "Scene.img").shape == (3, 4, 2)
    assert (tmp_path / "Scene.hdr").exists() and (tmp_path / "scene.hdr").exists()


def test_one_half_of_the_band_scaling_pairs_with_the_identity(tmp_path):
    """xarray drops a coordinate two cubes disagree on: the offsets of `(a + b) // 2` went,
    the scales stayed, and the writers raised KeyError."""
    from hsad.cube import band_scaling, with_band_scaling

    cube = open_cube(_tif(tmp_path / "in.tif", np.ones((2, 3, 4), np.int16)))
    scaled = with_band_scaling(cube, [1e-4, 1e-4], [0.0, 0.5]).drop_vars("band_offset")
    assert band_scaling(scaled) == ([1e-4, 1e-4], [0.0, 0.0])


@pytest.mark.parametrize("dtype", ["int32", "uint32"])
def test_float32_beyond_a_32_bit_integers_range_clips_not_wraps(tmp_path, capsys, dtype):
    """float32 cannot hold 2**31 - 1 or 2**32 - 1: clipped in float32 they rounded up past
    the type's end, and the cast wrapped (+3e9 → -2147483648 in int32, 5e9 → 0 in uint32)
    with a numpy warning."""
    data = np.array([[[3e9], [-3e9], [5e9], [1e30], [7.6]]], np.float32)
    src = write_envi(make_cube(data, crs="EPSG:32633", transform=GRID), tmp_path / "f.img")
    code, _, err = run_cli(["convert", src, tmp_path / "i.tif", "--dtype", dtype], capsys)
    assert code == 0 and "invalid value" not in err
    with rasterio.open(tmp_path / "i.tif") as ds:
        got = ds.read(1)[0]
    want = {"int32": [2**31 - 1, -(2**31), 2**31 - 1, 2**31 - 1, 8],
            "uint32": [3_000_000_000, 0, 2**32 - 1, 2**32 - 1, 8]}[dtype]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bands", [3, 4])
def test_four_byte_bands_stay_four_bands_not_an_rgba_image(tmp_path, capsys, bands):
    """GDAL writes 3 or 4 byte bands as RGB by default, a 4th as alpha: a 4-band uint8
    cube read back as 3 bands, its pixels NaN where band 4 was 0 (74 % of a scene)."""
    data = np.random.default_rng(0).integers(0, 3, size=(6, 7, bands)).astype(np.uint8)
    src = write_envi(make_cube(data, crs="EPSG:32633", transform=GRID), tmp_path / "u8.img")
    for cog in ([], ["--cog"]):
        out = tmp_path / f"u8{len(cog)}.tif"
        code, _, err = run_cli(["convert", src, out, *cog], capsys)
        assert code == 0, err
        back = open_cube(out)
        assert back.dtype == np.uint8 and _gdal_masked(out) == 0
        np.testing.assert_array_equal(back.values, data)
        with rasterio.open(out) as ds:
            assert ColorInterp.alpha not in ds.colorinterp


@pytest.mark.parametrize("to", [".tif", ".img", ".mat"])
def test_values_clipped_by_a_cast_are_counted_in_a_warning(tmp_path, capsys, to):
    """1e5 into int16 became 32767, -1e5 into uint16 0, and a float64 1e39 into float32
    +inf with numpy's bare "overflow encountered in cast", exit 0 each time. The values
    clipped are now counted in a warning naming the output; float32 takes its largest
    value, as GDAL casts it."""
    import scipy.io as sio

    data = np.zeros((3, 4, 2))
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 0], data[2, 3, 1] = 1e5, -1e5, 1e39, -np.inf
    sio.savemat(tmp_path / "src.mat", {"data": data})
    key = ["--key", "data"] if to == ".mat" else []

    def read(path):
        return np.asarray(open_cube(path, **({"key": "data"} if to == ".mat" else {})).values)

    out = tmp_path / f"i16{to}"
    code, _, err = run_cli(["convert", tmp_path / "src.mat", out, "--dtype", "int16"], capsys)
    assert code == 0 and "3 values were beyond int16's range (-32768 to 32767)" in err, err
    assert str(out) in err and "overflow" not in err
    assert read(out)[0, 0, 0] == 32767 and read(out)[2, 2, 0] == 32767
    out = tmp_path / f"f32{to}"
    code, _, err = run_cli(["convert", tmp_path / "src.mat", out, "--dtype", "float32"], capsys)
    assert code == 0 and "1 value was beyond float32's range" in err and "overflow" not in err
    got = read(out)
    assert got[2, 2, 0] == np.finfo(np.float32).max and got[2, 3, 1] == -np.inf
    assert got[0, 0, 0] == 1e5
    code, _, err = run_cli(["convert", out, tmp_path / f"again{to}", *key], capsys)
    assert code == 0 and "clipped" not in err  # nothing cast, nothing said
    code, _, err = run_cli(["convert", tmp_path / f"i16{to}", tmp_path / f"u8{to}", *key,
                            "--dtype", "uint8"], capsys)  # an integer type into a narrower
    assert code == 0 and "3 values were beyond uint8's range (0 to 255)" in err, err


@pytest.mark.parametrize("dtype, to", [("int16", ".tif"), ("int32", ".img"), ("uint16", ".tif"),
                                       ("int32", ".mat")])
def test_halves_round_away_from_zero_as_gdal_casts_them(tmp_path, capsys, dtype, to):
    """``--dtype`` took halves to the even neighbour (``np.rint``: 0.5 → 0, 2.5 → 2), where
    GDAL (``gdal_translate -ot``, a VRT of another type) takes them away from zero: scaled
    DNs on .5 differed by one from GDAL's conversion."""
    import warnings

    values = np.array([[[-1.5], [-0.5], [0.5], [1.5], [2.5], [3.5], [254.5], [7.49],
                        [-7.51]]], np.float32)
    src = write_envi(make_cube(values, crs="EPSG:32633", transform=GRID), tmp_path / "f.img")
    vrt = (f'<VRTDataset rasterXSize="9" rasterYSize="1"><VRTRasterBand dataType='
           f'"{dtype.capitalize().replace("Uint", "UInt")}" band="1"><SimpleSource>'
           f'<SourceFilename>{src}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>'
           '</VRTRasterBand></VRTDataset>')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(vrt) as ds:
            gdal = ds.read(1)[0]
    out = tmp_path / f"i{to}"
    code, _, err = run_cli(["convert", src, out, "--dtype", dtype], capsys)
    assert code == 0, err
    got = np.asarray(open_cube(out, key="data" if to == ".mat" else None).values)[0, :, 0]
    np.testing.assert_array_equal(got, gdal)
    if dtype != "uint16":
        np.testing.assert_array_equal(got, [-2, -1, 1, 2, 3, 4, 255, 7, -8])


def test_a_trip_through_geotiff_keeps_every_wavelength_digit_and_the_description(
        tmp_path, capsys):
    """ENVI → GeoTIFF → ENVI wrote wavelengths to 9 digits (1003.299988 came back
    1003.29999) and put "written by hsad" for the scene's description."""
    cube = make_cube(np.ones((2, 3, 2), np.float32), crs="EPSG:32633", transform=GRID,
                     wavelength=[1003.299988, 2456.1234567891], fwhm=[5.0000001, 6.25],
                     attrs={"description": "EnMAP subset, Gamsberg"})
    src = write_envi(cube, tmp_path / "a.img")
    assert run_cli(["convert", src, tmp_path / "b.tif"], capsys)[0] == 0
    assert run_cli(["convert", tmp_path / "b.tif", tmp_path / "c.img"], capsys)[0] == 0
    back = open_cube(tmp_path / "c.img")
    np.testing.assert_array_equal(back["wavelength"].values, [1003.299988, 2456.1234567891])
    np.testing.assert_array_equal(back["fwhm"].values, [5.0000001, 6.25])
    assert open_cube(tmp_path / "b.tif").attrs["description"] == "EnMAP subset, Gamsberg"
    assert back.attrs["description"] == "EnMAP subset, Gamsberg"


def test_a_key_for_a_file_of_one_cube_is_refused_not_ignored(tmp_path, capsys):
    """``--key`` names a MAT variable or a product's spectrometers: given with an ENVI file
    or a GeoTIFF it was ignored silently (``hsad evaluate`` refuses its keys there too)."""
    data = np.ones((6, 7, 3), np.float32)
    src = write_envi(make_cube(data, crs="EPSG:32633", transform=GRID), tmp_path / "f.img")
    tif = tmp_path / "f.tif"
    assert run_cli(["convert", src, tif], capsys)[0] == 0
    for args in (["info", src, "--key", "foo"], ["info", tif, "--key", "foo"],
                 ["convert", tif, tmp_path / "k.img", "--key", "foo"]):
        line = one_error(args, capsys)
        assert "key 'foo' (--key) names a variable of a MAT file" in line
    assert not (tmp_path / "k.img").exists()


def test_each_commands_help_names_only_its_own_options(capsys):
    """Shared option texts pointed train and demo to a --memory-limit they lack, and
    convert's window options to an analysis and to rasters it does not have."""
    for command in ("train", "demo"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and "--memory-limit" not in out and "--truth" not in out, command
    code, out, _ = run_cli(["convert", "--help"], capsys)
    assert code == 0 and "Analyse" not in out and "--valid-mask" not in out


def test_one_key_for_several_files_goes_to_those_that_take_one(tmp_path, capsys):
    """A batch of a MAT scene and an ENVI one with ``--key``, and ``hsad evaluate`` of a MAT
    map beside a GeoTIFF one with ``--scores-key``: the key names the MAT file's variable,
    and the ENVI file and the GeoTIFF are read as they are (both failed once --key was
    refused for them); a key that no file takes is refused."""
    import scipy.io

    rng = np.random.default_rng(0)
    cube = rng.normal(100, 5, (12, 14, 6)).astype(np.float32)
    cube[3, 4] += 60
    truth = np.zeros((12, 14), np.uint8)
    truth[3, 4] = 1
    scipy.io.savemat(tmp_path / "a.mat", {"data": cube, "map": truth})
    envi = write_envi(make_cube(cube), tmp_path / "b.img")
    code, out, err = run_cli(["detect", tmp_path / "a.mat", envi, "--key", "data", "-m", "rx",
                              "-o", tmp_path / "{stem}_rx.tif"], capsys)
    assert code == 0 and "2 of 2 scenes done" in out, err
    scipy.io.savemat(tmp_path / "s.mat", {"scores": cube[:, :, 0]})
    code, out, err = run_cli(["evaluate", tmp_path / "s.mat", tmp_path / "b_rx.tif",
                              "--scores-key", "scores", "--truth", tmp_path / "a.mat",
                              "--truth-key", "map"], capsys)
    assert code == 0 and "\nb_rx " in out and "\ns " in out, err
    from hsad.errors import ParameterError
    from hsad.io.maps import read_score_map

    with pytest.raises(ParameterError, match="--key"):  # one map given a key: refused
        read_score_map(tmp_path / "b_rx.tif", key="scores")
    line = one_error(["detect", envi, tmp_path / "a_rx.tif", "--key", "data", "-m", "rx",
                      "-o", tmp_path / "{stem}_again.tif"], capsys)
    assert "none of the files given is one" in line
    # a scene that cannot be read fails alone, as any scene of a batch does
    code, out, err = run_cli(["detect", tmp_path / "a.mat", tmp_path / "gone.mat", envi,
                              "--key", "data", "-m", "rx", "-o", tmp_path / "{stem}_3.tif"],
                             capsys)
    assert code == 2 and "2 of 3 scenes done" in out and "gone.mat" in err


@pytest.mark.parametrize("suffix", [".img", ".tif", ".mat"])
def test_a_conversion_shows_a_bar_when_asked_and_none_when_not(tmp_path, capsys, monkeypatch,
                                                               suffix):
    """`convert` wrote a large cube without any bar: now one over the tiles written (ENVI,
    GeoTIFF) or the band groups compressed (MAT), with --progress; none with --no-progress."""
    from hsad.io import mat_writer

    monkeypatch.setattr(mat_writer, "BLOCK_BYTES", 2 * 40 * 30 * 4)  # 2 bands a group
    src = tmp_path / "src.img"
    write_envi(make_cube(np.random.default_rng(0).normal(size=(40, 30, 6)).astype(np.float32)),
               src)
    out = tmp_path / f"out{suffix}"
    code, _, err = run_cli(["convert", src, out, "--chunks", "16", "--progress"], capsys)
    assert code == 0 and f"writing out{suffix}" in err
    np.testing.assert_array_equal(open_cube(out).values, open_cube(src).values)
    code, _, err = run_cli(["convert", src, out, "--chunks", "16", "--no-progress",
                            "--overwrite"], capsys)
    assert code == 0 and "writing" not in err


def test_a_clip_at_a_64_bit_types_end_is_counted():
    """float(2**63 - 1) is 2**63: a rounded 2**63 cast to int64 (2**64 to uint64) was
    clipped and not counted."""
    from hsad.io.casting import CastTally, cast_block

    for dtype, values, clipped in (("int64", [2.0**63, -(2.0**63), 5.0], 1),
                                   ("uint64", [2.0**64, -1.0, 5.0], 2),
                                   ("int16", [32767.0, -32768.0, 40000.0], 1)):
        tally = CastTally()
        out = cast_block(np.array(values), np.dtype(dtype), None, tally)
        info = np.iinfo(dtype)
        assert out[0] == info.max and tally.clipped == clipped, dtype
        assert out[1] == info.min
