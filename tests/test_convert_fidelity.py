"""`hsad convert` keeps what GDAL would keep: nodata a new type cannot hold, a file's own
mask, band scale and offset, partly unknown wavelengths, and the header readers take
(found by a differential review against GDAL; docs/reliability.md, sixth round)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error, run_cli

from hsad.io import open_cube

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
    assert code == 0 and "uint16 has no NaN: pixels without data become 0" in err


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
    assert open_cube(tmp_path / "a.img").attrs["band_scales"] == [1e-4, 2e-4]
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
    with rasterio.open(tmp_path / "i.tif") as dst:
        assert dst.nodata is None


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
