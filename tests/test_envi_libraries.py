"""Which ENVI parts delegate to the field's libraries, and why the others stay hsad's own.

Georeferencing is read by GDAL itself (a one-pixel stub header in ``/vsimem/``); these
tests pin what that adds: GDAL's answer also for files GDAL will not open, GDAL's
messages kept out of the user's logs, safe use from threads. The header parser and the
georeferencing writer stay hsad's: the last tests show the cases where SPy's parser and
GDAL's writer are wrong (``benchmarks/compare_envi_with_libraries.py`` counts them over
the corpus and the fuzz model; docs/formats.md, "Which parts are hsad's own, and why").
If one of those starts failing, the library was fixed: reconsider delegating.
"""

from __future__ import annotations

import logging
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
from affine import Affine

from hsad.cube import make_cube
from hsad.errors import HeaderError, ParameterError
from hsad.io.envi import open_envi
from hsad.io.envi_georef import georef_from_header
from hsad.io.envi_header import parse_header, parse_header_text
from hsad.io.envi_writer import write_envi

_BASE = ("ENVI\nsamples = 3\nlines = 2\nbands = 1\nheader offset = 0\n"
         "file type = {kind}\ndata type = 1\ninterleave = bsq\nbyte order = 0\n")
_UTM = "map info = {UTM, 1, 1, 440720, 3751320, 60, 60, 11, North, WGS-84}\n"


def _gdal(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.transform, ds.crs


def test_georeferencing_of_a_file_gdal_refuses_is_gdals_own_answer(tmp_path):
    """GDAL will not open a spectral library; the stub still gives GDAL's reading."""
    (tmp_path / "lib.hdr").write_text(_BASE.format(kind="ENVI Spectral Library") + _UTM)
    (tmp_path / "lib.sli").write_bytes(bytes(6))
    (tmp_path / "img.hdr").write_text(_BASE.format(kind="ENVI Standard") + _UTM)
    (tmp_path / "img.img").write_bytes(bytes(6))
    with pytest.raises(rasterio.errors.RasterioIOError):
        _gdal(tmp_path / "lib.sli")
    transform, crs = georef_from_header(parse_header(tmp_path / "lib.hdr").raw)
    assert (transform, crs) == _gdal(tmp_path / "img.img")
    assert crs.to_epsg() == 32611


def test_gdal_messages_stay_out_of_the_logs_and_the_datum_notice_is_a_warning(caplog):
    raw = parse_header_text(_BASE.format(kind="ENVI Standard") +
                            "map info = {UTM, 1, 1, 5e5, 4e6, 10, 10, 15, North, Foo}\n"
                            "coordinate system string = {garbage}\n")
    with caplog.at_level(logging.DEBUG, logger="rasterio._env"), \
            pytest.warns(UserWarning, match="unrecognised ENVI datum 'Foo'"):
        transform, crs = georef_from_header(raw, "x.hdr")
    assert crs.to_epsg() == 32615 and transform == Affine(10, 0, 5e5, 0, -10, 4e6)
    assert not [r for r in caplog.records if "datum" in r.getMessage()
                or "garbage" in r.getMessage()]


def test_a_coordinate_system_gdal_cannot_build_is_a_header_error():
    raw = parse_header_text(_BASE.format(kind="ENVI Standard") +
                            "map info = {x, 1, 1, 0, 0, 1, 1}\n"
                            "projection info = {3, 1e999, 1, 0, 0, 0, 0, 1, WGS-84}\n")
    with pytest.raises(HeaderError, match="GDAL builds no CRS"):
        georef_from_header(raw, "x.hdr")


def test_georeferencing_from_many_threads():
    texts = [_UTM, "map info = {Geographic Lat/Lon, 1, 1, -44.8, -22.9, 0.001, 0.001}\n",
             "map info = {Arbitrary, 1, 1, 10, 20, 2, 2}\n"]
    raws = [parse_header_text(_BASE.format(kind="ENVI Standard") + t) for t in texts]
    expected = [georef_from_header(r) for r in raws]
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda i: georef_from_header(raws[i % 3]), range(60)))
    assert all(g == expected[i % 3] for i, g in enumerate(got))


# ------------------------------------------------ why the header parser stays hsad's own

_GOOD = "samples = 3\nlines = 2\nbands = 1\ndata type = 4\nbyte order = 0\n"


@pytest.mark.parametrize("text", [
    "\ufeffENVI\n" + _GOOD,                                      # UTF-8 byte order mark
    "envi\n" + _GOOD,                                            # first line in lower case
    "ENVI\n" + _GOOD.replace("samples = 3", "samples = { 3 }"),  # a braced scalar
    "ENVI\n" + _GOOD.replace("samples = 3", "samples = +3.0"),   # an integral float
    "ENVI\n" + _GOOD.replace("byte order = 0\n", ""),            # byte order left out
    "ENVI\n" + _GOOD.replace("byte order", "Byte  Order").replace("0\n", "1\n"),
], ids=["bom", "lower-case-envi", "braced-scalar", "float-size", "no-byte-order",
        "spaced-key"])
def test_headers_spy_misreads_and_hsad_reads(tmp_path, text):
    """hsad's reading of headers SPy 0.25 misreads (benchmarks/compare_envi_with_libraries.py
    shows SPy's answers; they are not asserted here, so a fixed SPy cannot fail the suite)."""
    path = tmp_path / "h.hdr"
    path.write_bytes(text.encode("utf-8"))
    hdr = parse_header(path)
    want = (3, 2, 1, 4, 1 if "Byte  Order" in text else 0)
    assert (hdr.samples, hdr.lines, hdr.bands, hdr.data_type, hdr.byte_order) == want


# ------------------------------------------- why the georeferencing writer stays hsad's own


def test_a_sheared_grid_is_refused_and_a_rotated_one_round_trips(tmp_path):
    """GDAL 3.10's ENVI writer stores a sheared grid silently as another (rotated) grid
    (benchmarks/compare_envi_with_libraries.py); hsad's writer refuses it."""
    sheared = Affine(1, 0.5, 0, 0, -1, 0)
    cube = make_cube(np.zeros((2, 3, 1), "u1"), transform=sheared, crs="EPSG:32611")
    with pytest.raises(ParameterError, match="shear"):
        write_envi(cube, tmp_path / "h.img")
    cube.attrs["source_path"] = "in.tif"  # the input is named: `hsad convert in.tif out.img`
    with pytest.raises(ParameterError, match="shear") as err:
        write_envi(cube, tmp_path / "h.img")
    assert str(err.value).startswith("in.tif: ")
    rotated = Affine(2.5, 0, 500000, 0, -2.5, 4100000) @ Affine.rotation(-24)
    cube = make_cube(np.zeros((2, 3, 1), "u1"), transform=rotated, crs="EPSG:32633")
    path = write_envi(cube, tmp_path / "r.img")
    assert np.allclose(tuple(_gdal(path)[0])[:6], tuple(rotated)[:6], rtol=1e-12)
    assert np.allclose(tuple(open_envi(path).rio.transform())[:6], tuple(rotated)[:6],
                       rtol=1e-12)


@pytest.mark.parametrize("angle", [180, -180])
def test_a_grid_turned_by_180_degrees_is_refused_and_south_up_round_trips(tmp_path, angle):
    """`rotation=180` is GDAL's south-up grid (a = +xsize, e = +ysize): a grid truly turned
    by 180° (a = −xsize) was written with it and read back mirrored left to right, by GDAL
    and hsad alike. It is refused; south-up and 179.9° round-trip."""
    turned = Affine(30, 0, 500000, 0, -30, 4000000) @ Affine.rotation(angle)
    cube = make_cube(np.zeros((2, 3, 1), "u1"), transform=turned, crs="EPSG:32613")
    with pytest.raises(ParameterError, match="turns the grid by 180°.*write a GeoTIFF"):
        write_envi(cube, tmp_path / "t.img")
    assert not list(tmp_path.iterdir())
    for name, grid in (("s", Affine(30, 0, 500000, 0, 30, 4000000)),
                       ("r", Affine(30, 0, 500000, 0, -30, 4000000) @ Affine.rotation(179.9))):
        cube = make_cube(np.zeros((2, 3, 1), "u1"), transform=grid, crs="EPSG:32613")
        path = write_envi(cube, tmp_path / f"{name}.img")
        assert np.allclose(tuple(_gdal(path)[0])[:6], tuple(grid)[:6], rtol=1e-9, atol=1e-6)
