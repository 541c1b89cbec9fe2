"""ENVI writer: round trips, GDAL reading our files, streaming, atomicity, paths."""

from __future__ import annotations

import os
import warnings

import dask.array as da
import numpy as np
import pytest
import rasterio
import spectral
from affine import Affine
from rasterio.crs import CRS

import hsad.io.envi as envi
from hsad.cube import make_cube
from hsad.errors import ParameterError
from hsad.io.envi import open_envi
from hsad.io.envi_writer import write_envi

DTYPES = ["u1", "i2", "i4", "f4", "f8", "u2", "u4", "i8", "u8"]
UTM_ROTATED = Affine(2.5, 0, 500000, 0, -2.5, 4100000) @ Affine.rotation(-24)
ALBERS_WKT = (
    'PROJCS["unnamed",GEOGCS["Ellipse Based",DATUM["Ellipse Based",SPHEROID["Unnamed",'
    '6378206.4,294.978698213898]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Albers_Conic_Equal_Area"],PARAMETER["latitude_of_center",23],'
    'PARAMETER["longitude_of_center",-96],PARAMETER["standard_parallel_1",29.5],'
    'PARAMETER["standard_parallel_2",45.5],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')


def _values(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 1e3, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def _cube(dtype="i2", shape=(6, 7, 4), transform=UTM_ROTATED, crs="EPSG:32633", chunks=4):
    bands = shape[2]
    data = da.from_array(_values(dtype, shape), chunks=(chunks, chunks, -1))
    return make_cube(data, transform=transform, crs=crs, nodata=99,
                     wavelength=np.linspace(450.5, 900.25, bands), fwhm=np.full(bands, 5.5),
                     good_band=[i % 3 != 1 for i in range(bands)],
                     band_names=[f"band {i}" for i in range(bands)],
                     attrs={"description": "round trip"})


def _gdal_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning for pixel grids
        with rasterio.open(path) as ds:
            return ds.read().transpose(1, 2, 0), ds.crs, ds.transform, ds.nodata


def _same_transform(a, b):
    np.testing.assert_allclose(tuple(a)[:6], tuple(b)[:6], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("byte_order", [0, 1])
@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_round_trip_every_interleave_byte_order_and_dtype(tmp_path, interleave, byte_order,
                                                          dtype):
    cube = _cube(dtype)
    path = write_envi(cube, tmp_path / f"out.{interleave}", interleave=interleave,
                      byte_order=byte_order)
    back = open_envi(path, chunks=3)
    expected = cube.values
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.values, expected)
    # the bytes on disk are the documented layout and byte order
    disk_dtype = np.dtype(dtype).newbyteorder(">" if byte_order else "<")
    raw = np.fromfile(path, dtype=disk_dtype)
    layout = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    np.testing.assert_array_equal(raw, expected.transpose(layout).ravel())
    for coord in ("wavelength", "fwhm", "good_band", "band_name"):
        np.testing.assert_array_equal(back[coord].values, cube[coord].values)
    assert back.attrs["nodata"] == 99.0 and back.attrs["description"] == "round trip"
    assert back.rio.crs == CRS.from_epsg(32633)
    _same_transform(back.rio.transform(), UTM_ROTATED)


@pytest.mark.parametrize("crs,transform", [
    ("EPSG:32611", Affine(30, 0, 353128.75, 0, -30, 3813729.77)),
    ("EPSG:32733", Affine(10, 0, 500000, 0, -10, 9000000) @ Affine.rotation(30)),
    ("EPSG:4326", Affine(0.003432, 0, -44.84032, 0, -0.003432, -22.932584)),
    ("EPSG:26711", Affine(60, 0, 440720, 0, -60, 3751320)),
    ("EPSG:3035", Affine(100, 0, 4321000, 0, -100, 3210000)),
    ("EPSG:2263", Affine(5, 0, 980000, 0, -5, 200000)),
    (ALBERS_WKT, Affine(28.5, 0, -936408.178, 0, -28.5, 2423902.344)),
    ("EPSG:32611", Affine(30, 0, 500000, 0, 30, 4000000)),  # south-up: rotation=180
    (None, Affine.identity()),
], ids=["utm11n", "utm33s-rotated", "wgs84", "nad27-utm", "laea", "ftUS", "albers-ellipse",
        "south-up", "pixel-grid"])
def test_gdal_reads_our_files_with_the_same_crs_transform_and_values(tmp_path, crs, transform):
    cube = _cube("f4", (5, 8, 3), transform=transform, crs=crs)
    path = write_envi(cube, tmp_path / "scene.img", interleave="bil", byte_order=1)
    values, gdal_crs, gdal_transform, nodata = _gdal_read(path)
    np.testing.assert_array_equal(values, cube.values)
    assert nodata == 99.0
    _same_transform(gdal_transform, transform)
    ours = open_envi(path)
    _same_transform(ours.rio.transform(), transform)
    if crs is None:
        assert gdal_crs is None and ours.rio.crs is None
    else:
        assert gdal_crs == CRS.from_user_input(crs) == ours.rio.crs
    # spectral (the reference ENVI reader in Python) agrees on the pixels
    img = spectral.open_image(str(path.with_suffix(".hdr")))
    np.testing.assert_array_equal(np.asarray(img.load(dtype=np.float32)), cube.values)


def test_transform_without_crs_is_written_as_arbitrary_map_info(tmp_path):
    cube = _cube("u1", transform=Affine(2, 0, 100, 0, -2, 50), crs=None)
    path = write_envi(cube, tmp_path / "arb.img")
    assert "map info = {Arbitrary, 1, 1, 100.0, 50.0, 2.0, 2.0, 0, North}" in \
        path.with_suffix(".hdr").read_text()
    _, gdal_crs, gdal_transform, _ = _gdal_read(path)
    back = open_envi(path)
    _same_transform(back.rio.transform(), gdal_transform)
    assert back.rio.crs == gdal_crs and "Arbitrary" in gdal_crs.to_wkt()  # GDAL's local CRS


def test_header_text(tmp_path):
    path = write_envi(_cube("u2"), tmp_path / "h.img", interleave="bip", byte_order=1)
    text = path.with_suffix(".hdr").read_text()
    assert text.startswith("ENVI\n")
    for line in ("samples = 7", "lines   = 6", "bands   = 4", "data type = 12",
                 "interleave = bip", "byte order = 1", "wavelength units = Nanometers",
                 "bbl = {1, 0, 1, 1}", "band names = {band 0, band 1, band 2, band 3}",
                 "data ignore value = 99.0", "coordinate system string = {PROJCS[",
                 "map info = {UTM, 1, 1, 500000.0, 4100000.0, 2.5"):
        assert line in text, line
    # Affine.rotation(-24) turns the grid clockwise: ENVI (and GDAL) call that rotation=24
    info = next(ln for ln in text.splitlines() if ln.startswith("map info"))
    assert ", 33, North, WGS-84, rotation=" in info
    assert float(info.split("rotation=")[1].rstrip("}")) == pytest.approx(24)


def test_free_text_is_made_header_safe(tmp_path):
    cube = make_cube(np.zeros((2, 2, 2), "u1"), band_names=["red, 650 nm", "nir {850 nm}"],
                     attrs={"description": "scene {A}, line 2"})
    back = open_envi(write_envi(cube, tmp_path / "t.img"))
    assert back.attrs["description"] == "scene (A), line 2"
    assert back["band_name"].values.tolist() == ["red; 650 nm", "nir (850 nm)"]
    np.testing.assert_allclose(back["wavelength"].values, [650, 850])  # from the names


def test_output_paths(tmp_path):
    cube = _cube("u1", crs=None, transform=Affine.identity())
    assert write_envi(cube, tmp_path / "a.img") == tmp_path / "a.img"
    assert (tmp_path / "a.hdr").is_file()
    assert write_envi(cube, tmp_path / "b") == tmp_path / "b"
    assert (tmp_path / "b.hdr").is_file()
    assert write_envi(cube, tmp_path / "c.hdr") == tmp_path / "c"
    assert (tmp_path / "c").is_file()
    for name in ("a.img", "b", "c"):
        np.testing.assert_array_equal(open_envi(tmp_path / name).values, cube.values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.hdr", "a.img", "b", "b.hdr", "c",
                                                          "c.hdr"]
    mode = os.stat(tmp_path / "a.img").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_dtype_conversion_and_bad_parameters(tmp_path):
    cube = _cube("f8")
    path = write_envi(cube, tmp_path / "f.img", dtype="float32")
    back = open_envi(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.values, cube.values.astype(np.float32))
    mask = make_cube(np.array([[[True], [False]]]))
    assert open_envi(write_envi(mask, tmp_path / "m.img")).dtype == np.uint8
    with pytest.raises(ParameterError, match="cannot store dtype complex64"):
        write_envi(cube, tmp_path / "x.img", dtype="complex64")
    with pytest.raises(ParameterError, match="interleave"):
        write_envi(cube, tmp_path / "x.img", interleave="bxl")
    with pytest.raises(ParameterError, match="byte_order"):
        write_envi(cube, tmp_path / "x.img", byte_order=2)
    sheared = _cube("u1", transform=Affine(1, 0.5, 0, 0, -1, 0))
    with pytest.raises(ParameterError, match="shear"):
        write_envi(sheared, tmp_path / "x.img")
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".x*"))


def test_writing_streams_chunk_by_chunk(tmp_path, monkeypatch):
    cube = _cube("i2", (20, 30, 5), chunks=8)
    windows = []
    real = envi.EnviWindowWriter.__setitem__
    monkeypatch.setattr(envi.EnviWindowWriter, "__setitem__",
                        lambda self, key, value: windows.append(value.shape)
                        or real(self, key, value))
    path = write_envi(cube, tmp_path / "s.bsq")
    assert len(windows) == 3 * 4 and max(windows) == (8, 8, 5)
    np.testing.assert_array_equal(open_envi(path).values, cube.values)


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    good = _cube("u1", crs=None, transform=Affine.identity())
    path = write_envi(good, tmp_path / "keep.img")
    before = (path.read_bytes(), path.with_suffix(".hdr").read_text())

    def boom(block):
        raise RuntimeError("disk on fire")

    bad = good.copy(data=good.data.map_blocks(boom, dtype=good.dtype))
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_envi(bad, tmp_path / "keep.img")
    assert (path.read_bytes(), path.with_suffix(".hdr").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.hdr", "keep.img"]


def test_scale_factor_and_class_names_survive(tmp_path):
    cube = _cube("i2", crs=None, transform=Affine.identity())
    cube.attrs["reflectance_scale_factor"] = 10000.0
    back = open_envi(write_envi(cube, tmp_path / "r.img"))
    assert back.attrs["reflectance_scale_factor"] == 10000.0
    scaled = open_envi(tmp_path / "r.img", apply_scale=True)
    again = open_envi(write_envi(scaled, tmp_path / "s.img"))
    assert again.attrs["reflectance_scale_factor"] is None and again.dtype == np.float32
    classes = make_cube(np.array([[[0], [1]]], dtype="u1"),
                        attrs={"class_names": ["Unclassified", "Water"]})
    back = open_envi(write_envi(classes, tmp_path / "c.img"))
    assert back.attrs["file_type"] == "ENVI Classification"
    assert back.attrs["class_names"] == ["Unclassified", "Water"]


def test_a_classification_keeps_its_colours(tmp_path):
    """`class lookup` (the classes' colours, which GDAL reads into the colour table and
    QGIS shows) was dropped by a copy of an ENVI Classification file."""
    classes = make_cube(np.array([[[0], [1]]], dtype="u1"),
                        attrs={"class_names": ["Unclassified", "Water"],
                               "class_lookup": [0, 0, 0, 0, 0, 255]})
    path = write_envi(open_envi(write_envi(classes, tmp_path / "c.img")), tmp_path / "d.img")
    assert "class lookup = {0, 0, 0, 0, 0, 255}" in path.with_suffix(".hdr").read_text()
    assert open_envi(path).attrs["class_lookup"] == [0, 0, 0, 0, 0, 255]
    with rasterio.open(path) as src:
        assert src.colormap(1)[1] == (0, 0, 255, 255)
    wrong = path.with_suffix(".hdr").read_text().replace("0, 0, 255}", "0, 255}")
    path.with_suffix(".hdr").write_text(wrong)  # five values for two classes: none
    assert "class_lookup" not in open_envi(path).attrs


def test_a_cast_drops_a_nodata_the_new_type_cannot_hold(tmp_path):
    """`write_envi(cube, path, dtype="uint16")` of an int16 cube with nodata -9999 kept
    `data ignore value = -9999` (no uint16 value) and wrapped its pixels to 55537, data
    to every reader; it casts as the GeoTIFF and MAT writers and `hsad convert` do."""
    values = np.full((2, 3, 2), 100, np.int16)
    values[0, 0] = -9999
    values[1, 2] = -5
    with pytest.warns(UserWarning, match="nodata -9999 is not a value of uint16"):
        path = write_envi(make_cube(values, nodata=-9999), tmp_path / "u.img", dtype="uint16")
    assert "data ignore value" not in path.with_suffix(".hdr").read_text()
    back = open_envi(path)
    assert back.attrs["nodata"] is None and back.dtype == np.uint16
    np.testing.assert_array_equal(back.values[..., 0], [[0, 100, 100], [100, 100, 0]])
    floats = make_cube(np.array([[[1.6, -2.0]]], np.float32))
    np.testing.assert_array_equal(
        open_envi(write_envi(floats, tmp_path / "i.img", dtype="int16")).values, [[[2, -2]]])


def test_a_datum_shift_envi_cannot_hold_is_said(tmp_path):
    """A custom datum's TOWGS84 is lost in ENVI's ESRI WKT: GDAL and hsad read the header's
    CRS back without it, and maps in WGS 84 moved 47 m, in silence (formats.md had said
    it reads back as the same CRS)."""
    wkt = ('PROJCS["custom tm",GEOGCS["custom",DATUM["my_datum",SPHEROID["my_sph",6378000,'
           '297.5],TOWGS84[10,20,30,0,0,0,0]],PRIMEM["Greenwich",0],UNIT["degree",'
           '0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER['
           '"latitude_of_origin",0],PARAMETER["central_meridian",15],PARAMETER["scale_factor",'
           '0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],'
           'UNIT["metre",1]]')
    data = np.zeros((4, 4, 2), np.float32)
    grid = Affine(2, 0, 500000, 0, -2, 5100000)
    with pytest.warns(UserWarning, match=r"datum shift to WGS 84 \(TOWGS84\) has no place"):
        write_envi(make_cube(data, crs=CRS.from_wkt(wkt), transform=grid), tmp_path / "c.img")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # an EPSG datum reads back as itself
        write_envi(make_cube(data, crs="EPSG:23032", transform=grid), tmp_path / "e.img")
    with rasterio.open(tmp_path / "e.img") as src:
        assert src.crs.to_epsg() == 23032
