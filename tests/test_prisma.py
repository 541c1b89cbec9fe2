"""PRISMA products (HDF-EOS5 .he5): the cube read as the public readers (EnMAP-Box,
prismaread, SNAP) read it, in physical units with ascending bands, placed on the L2D map
grid or by the L1/L2B/L2C geolocation, and every bad product a one-line error
(hsad.io.prisma; docs/formats.md, "PRISMA products")."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error, run_cli
from prisma_products import EPSG, SWIR_WL, UL_CENTRE, VNIR_WL, ground_xy, swath, write_prisma
from pyproj import Transformer
from rasterio.crs import CRS
from reader_helpers import count_reads

from hsad.cli.main import main
from hsad.errors import FileFormatError, TruncatedFileError, UnsupportedError
from hsad.io import detect_format, open_cube
from hsad.io.sensor_georef import ground_mapping

L2D = "PRS_L2D_STD_20210724101530_20210724101534_0001.he5"
L1 = "PRS_L1_STD_OFFL_20210724101530_20210724101534_0001.he5"


def expected(vnir, swir, gain, offset, keep_vnir=None):
    """The cube the readers make of the stored DN: each spectrometer's bands with a
    wavelength in ascending order (the VNIR's below ``keep_vnir`` nm), DN · gain + offset,
    NaN where a pixel's DN are 0 in every band of a spectrometer."""
    parts, wls = [], []
    for dn, wl, below in ((vnir, VNIR_WL, keep_vnir), (swir, SWIR_WL, None)):
        wl32 = wl.astype(np.float32).astype(np.float64)
        keep = np.flatnonzero((wl32 > 0) & (wl32 < (np.inf if below is None else below)))
        keep = keep[np.argsort(wl32[keep])]
        values = dn[:, keep, :].transpose(0, 2, 1).astype(np.float64) * gain + offset
        values[~dn.any(axis=1)] = np.nan
        parts.append(values)
        wls.append(wl32[keep])
    return np.concatenate(parts, axis=2), np.concatenate(wls)


def test_l2d_reads_as_the_public_readers_do(tmp_path):
    path = tmp_path / L2D
    vnir, swir = write_prisma(path, scale=(0.05, 0.9))
    assert detect_format(path) == "prisma"
    cube = open_cube(path, chunks=8)
    first_swir = float(np.float32(SWIR_WL[SWIR_WL > 0].min()))
    want, wl = expected(vnir, swir, (0.9 - 0.05) / 65535, 0.05, keep_vnir=first_swir)
    assert cube.dtype == np.float32 and cube.shape == want.shape == (24, 20, 230)
    np.testing.assert_allclose(cube.values, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cube["wavelength"].values, wl)
    assert np.all(np.diff(wl) > 0) and wl[58] < first_swir <= wl[59]
    np.testing.assert_allclose(cube["fwhm"].values, [12.0] * 59 + [10.0] * 171)
    assert cube["good_band"].values.all()
    # the frame of zero DN holds no data; every other pixel does
    assert np.isnan(cube.values[:2]).all() and np.isnan(cube.values[:, :2]).all()
    assert not np.isnan(cube.values[2:, 2:]).any()
    # corner attributes are pixel centres: the grid starts half a pixel up and left
    assert cube.rio.transform() == Affine(30, 0, UL_CENTRE[0] - 15, 0, -30, UL_CENTRE[1] + 15)
    assert cube.rio.crs == CRS.from_epsg(EPSG)
    assert cube.attrs["prisma_level"] == "2D" and cube.attrs["units"].startswith("reflectance")


def test_the_dn_are_gdals(tmp_path):
    """GDAL's HDF5 driver reads the stored cube (its bands are the rows): the cube's values
    are those DN, scaled, in the readers' band order."""
    path = tmp_path / L2D
    write_prisma(path)
    cube = open_cube(path, key="vnir").values
    name = f'HDF5:"{path}"://{swath("2D")}/Data_Fields/VNIR_Cube'.replace(" ", "_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(name) as src:
            dn = src.read()  # (rows, disk bands, cols)
    order = np.argsort(np.where(VNIR_WL > 0, VNIR_WL, np.inf))[:63]
    want = dn[:, order, :].transpose(0, 2, 1) / 65535
    np.testing.assert_allclose(cube[2:, 2:], want[2:, 2:], rtol=1e-6)


def _plain_and_packed(tmp_path):
    """An L2D product stored in one piece, and a copy of it chunked and compressed."""
    plain, packed = tmp_path / L2D, tmp_path / ("Z" + L2D)
    write_prisma(plain)
    with h5py.File(plain, "r") as src, h5py.File(packed, "w") as dst:
        for name, value in src.attrs.items():
            dst.attrs[name] = value
        for name in ("VNIR_Cube", "SWIR_Cube"):
            where = f"{swath('2D')}/Data Fields/{name}"
            dst.create_dataset(where, data=src[where][()], chunks=(5, 7, 3), compression="gzip")
    return plain, packed


def test_stored_in_one_piece_chunked_or_compressed_the_values_are_the_same(tmp_path):
    """A cube stored contiguously is read from the file's mapped pages, a chunked or
    compressed one through h5py: the same values either way, and the mapped pages are
    never handed out (the cube's arrays are its own)."""
    plain, packed = _plain_and_packed(tmp_path)
    with h5py.File(plain, "r") as f:
        assert f[f"{swath('2D')}/Data Fields/SWIR_Cube"].chunks is None  # stored in one piece
    a, b = open_cube(plain, chunks=7).data, open_cube(packed, chunks=7).data
    np.testing.assert_array_equal(a.compute(), b.compute())
    block = a.blocks[1, 1].compute()
    assert block.flags.owndata or not isinstance(block.base, np.memmap)


def test_a_damaged_chunk_is_named_in_the_spectrometer_that_holds_it(tmp_path, capsys):
    """A damaged chunk of SWIR_Cube was reported as 'VNIR_Cube' (the reader's first
    dataset), even for a window of VNIR bands: the user checked the wrong cube."""
    plain, packed = _plain_and_packed(tmp_path)
    with h5py.File(packed, "r") as f:
        info = f[f"{swath('2D')}/Data Fields/SWIR_Cube"].id.get_chunk_info(0)
    with open(packed, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(b"\xff" * 64)
    line = one_error(["detect", packed, "-m", "rx", "-o", tmp_path / "x.tif"], capsys)
    assert "SWIR_Cube" in line and "VNIR_Cube" not in line


def test_a_map_that_cannot_be_made_falls_back_to_h5py(tmp_path, monkeypatch):
    """No address space or descriptor left for the map (ENOMEM, EMFILE): h5py reads."""
    import hsad.io.hdf5_file as hdf5_file

    path = tmp_path / L2D
    write_prisma(path)
    want = open_cube(path).values

    def no_map(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(hdf5_file.np, "memmap", no_map)
    np.testing.assert_array_equal(open_cube(path).values, want)


@pytest.mark.parametrize("key, bands, low, high", [
    ("vnir", 63, 402.4, 972.6), ("VNIR_Cube", 63, 402.4, 972.6), ("swir", 171, 942.96, 2496.9),
    ("full", 230, 402.4, 2496.9)])
def test_keys_choose_the_spectrometers(tmp_path, key, bands, low, high):
    path = tmp_path / L2D
    write_prisma(path)
    cube = open_cube(path, key=key)
    wl = cube["wavelength"].values
    assert cube.sizes["band"] == bands and np.all(np.diff(wl) > 0)
    np.testing.assert_allclose([wl[0], wl[-1]], [low, high], rtol=1e-6)


def test_l1_radiance_and_its_ground_control_points(tmp_path):
    path = tmp_path / L1
    vnir, swir = write_prisma(path, level="1", factor=100.0, offset=0.5)
    cube = open_cube(path)
    want, _ = expected(vnir, swir, 1 / 100, -0.5, keep_vnir=float(np.float32(942.96)))
    np.testing.assert_allclose(cube.values, want, rtol=1e-6, atol=1e-5)
    assert cube.rio.crs is None and cube.attrs["units"].startswith("W m-2 sr-1 um-1")
    held = cube.attrs["sensor_georef"]
    assert len(held.gcps) == 21 * 20  # at most 21 lines of points each way, ends included
    # GDAL's polynomial through them places every pixel centre where the geolocation does
    to_ground, crs = ground_mapping(held)
    assert crs == CRS.from_epsg(4326)
    r, c = np.mgrid[0:24, 0:20]
    placed = to_ground(np.column_stack([c.ravel() + 0.5, r.ravel() + 0.5]))
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(*ground_xy(24, 20))
    metres = 111_320 * np.hypot(placed[:, 1] - lat.ravel(),
                                (placed[:, 0] - lon.ravel()) * np.cos(np.radians(lat.ravel())))
    assert metres.max() < 1.0


def test_a_detection_lands_where_it_lies_on_the_l2d_grid(tmp_path, capsys):
    path = tmp_path / L2D
    write_prisma(path)
    with h5py.File(path, "r+") as f:  # one pixel of another material, at row 11, column 6
        for name in ("VNIR_Cube", "SWIR_Cube"):
            var = f[f"{swath('2D')}/Data Fields/{name}"]
            block = var[11, :, 6]
            var[11, :, 6] = np.where(block > 0, 3000 + 50 * np.arange(block.size), 0)
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", out], capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        scores = src.read(1)
        assert src.crs == CRS.from_epsg(EPSG)
        assert src.transform == Affine(30, 0, UL_CENTRE[0] - 15, 0, -30, UL_CENTRE[1] + 15)
        x, y = src.xy(*np.unravel_index(np.nanargmax(scores), scores.shape))
    assert (x, y) == (UL_CENTRE[0] + 6 * 30, UL_CENTRE[1] - 11 * 30)
    assert np.isnan(scores[:2]).all() and np.isfinite(scores[2:, 2:]).all()
    code, text, _ = run_cli(["info", path], capsys)
    assert code == 0 and "PRISMA HDF-EOS5 L2D (full cube, reflectance" in text


def test_an_l1_map_carries_the_ground_control_points(tmp_path, capsys):
    path = tmp_path / L1
    write_prisma(path, level="1")
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", out], capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        points, crs = src.gcps
    assert len(points) == 420 and crs == CRS.from_epsg(4326)
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(*ground_xy(24, 20))
    first = min(points, key=lambda p: (p.row, p.col))
    assert (first.row, first.col) == (0.5, 0.5)
    np.testing.assert_allclose([first.x, first.y], [lon[0, 0], lat[0, 0]], rtol=0, atol=1e-5)


def test_a_window_reads_its_own_pixels_and_place(tmp_path, monkeypatch):
    import hsad.io.prisma as prisma

    path = tmp_path / L2D
    write_prisma(path)
    whole = open_cube(path).values
    reads = count_reads(monkeypatch, prisma._PrismaReader)
    part = open_cube(path, srcwin=(3, 4, 10, 12))
    np.testing.assert_array_equal(part.values, whole[4:16, 3:13])
    assert sum(reads) == 120
    assert part.rio.transform() == Affine(30, 0, UL_CENTRE[0] - 15 + 90, 0, -30,
                                          UL_CENTRE[1] + 15 - 120)
    l1 = tmp_path / L1
    write_prisma(l1, level="1")
    to_whole = ground_mapping(open_cube(l1).attrs["sensor_georef"])[0]
    to_part = ground_mapping(open_cube(l1, srcwin=(3, 4, 10, 12)).attrs["sensor_georef"])[0]
    np.testing.assert_allclose(to_part(np.array([[0.5, 0.5]])),
                               to_whole(np.array([[3.5, 4.5]])), atol=1e-9)


def test_a_geolocation_the_polynomial_cannot_follow_is_named(tmp_path):
    """Terrain-like 200 m jitter in the geolocation: GDAL's polynomial misses the points,
    and the warning gives by how much."""
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(*ground_xy(24, 20))
    jitter = np.random.default_rng(3).normal(0, 200 / 111_320, lat.shape)
    path = tmp_path / L1
    write_prisma(path, level="1", lonlat=(lon, lat + jitter))
    with pytest.warns(UserWarning, match=r"misses its geolocation by up to \d+ m"):
        open_cube(path)
    path2 = tmp_path / ("2" + L1)
    write_prisma(path2, level="1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_cube(path2)


def test_points_halfway_between_the_control_points_are_checked_too(tmp_path):
    """A 300 m bump between the grid lines of the control points (terrain where no point
    lies) is named, though the polynomial passes through the points themselves."""
    rows, cols = 81, 81  # control points every 4 pixels; rows 2, 6, 10 ... lie between
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(
        *ground_xy(rows, cols))
    lat = lat.copy()
    lat[2::4, 2::4] += 300 / 111_320
    path = tmp_path / L1
    write_prisma(path, level="1", rows=rows, cols=cols, lonlat=(lon, lat))
    with pytest.warns(UserWarning, match=r"misses its geolocation by up to 3\d\d m"):
        open_cube(path)


def test_one_line_of_pixels_is_placed_by_nothing_with_a_warning(tmp_path):
    path = tmp_path / L1
    write_prisma(path, level="1", rows=1, cols=20, frame=0)
    with pytest.warns(UserWarning, match="a product of one or two rows"):
        cube = open_cube(path)
    assert "sensor_georef" not in cube.attrs
    path2 = tmp_path / ("2" + L1)
    write_prisma(path2, level="1", rows=2, cols=20, frame=0)
    with pytest.warns(UserWarning, match="a product of one or two rows"):
        open_cube(path2)


def test_a_swath_across_the_antimeridian_keeps_one_side(tmp_path, capsys):
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(*ground_xy(24, 20))
    lon = lon - lon.mean() + 180  # straddles 180 degrees: -179.99 next to 179.99
    lon = np.where(lon > 180, lon - 360, lon)
    path = tmp_path / L1
    write_prisma(path, level="1", lonlat=(lon, lat))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        held = open_cube(path).attrs["sensor_georef"]
    xs = np.array([p[2] for p in held.gcps])
    assert xs.min() > 179 and xs.max() < 181
    # the attributes other data are joined on keep [-180, 180): a detection's centroid and
    # peak longitude are the geolocation's
    with h5py.File(path, "r+") as f:
        for name in ("VNIR_Cube", "SWIR_Cube"):
            var = f[f"{swath('1')}/Data Fields/{name}"]
            block = var[12, :, 15]
            var[12, :, 15] = np.where(block > 0, 3000 + 50 * np.arange(block.size), 0)
    code, _, err = run_cli(["detect", path, "-m", "rx", "--threshold", "100", "-o",
                            tmp_path / "rx.tif", "--polygons", tmp_path / "found.gpkg",
                            "--spectra", tmp_path / "found.csv"], capsys)
    assert code == 0, err
    import csv

    import pyogrio.raw
    import shapely

    meta, _, _, fields = pyogrio.raw.read(tmp_path / "found.gpkg")
    centroid_x = fields[list(meta["fields"]).index("centroid_x")]
    with open(tmp_path / "found.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["id"] not in ("0", "")]
    peak = max((r for r in rows if r["peak_score"]), key=lambda r: float(r["peak_score"]))
    assert (int(peak["peak_row"]), int(peak["peak_col"])) == (12, 15)
    # the longitude is the geolocation's; the coordinates of the polygons (their vertices,
    # centroids and the peak's x) continue past 180 as the control points do
    assert abs(float(peak["peak_lon"]) - lon[12, 15]) < 1e-4
    assert abs(float(peak["peak_x"]) - (lon[12, 15] % 360)) < 1e-4
    geoms = shapely.from_wkb(pyogrio.raw.read(tmp_path / "found.gpkg")[2])
    assert np.allclose(centroid_x, shapely.get_x(shapely.centroid(geoms)))


def test_no_data_is_a_pixel_without_any_dn(tmp_path):
    """The frame (DN 0 in every band of both spectrometers) is NaN; a pixel whose SWIR DN
    are all 0 (reflectance clipped at 0 over dark water) keeps its values, as EnMAP-Box
    reads it, and so does one whose DN are 0 in some bands."""
    path = tmp_path / L2D
    vnir, swir = write_prisma(path)
    with h5py.File(path, "r+") as f:
        fields = f[f"{swath('2D')}/Data Fields"]
        block = fields["SWIR_Cube"][()]
        block[10:14, :, 10:14] = 0
        block[5, 40:60, 5] = 0
        fields["SWIR_Cube"][...] = block
    cube = open_cube(path)
    values = cube.values
    assert np.isnan(values[:2]).all() and np.isnan(values[:, :2]).all()
    assert np.isfinite(values[2:, 2:]).all()
    np.testing.assert_array_equal(values[10:14, 10:14, 59:], 0)
    assert np.isnan(cube.attrs["nodata"])
    out = tmp_path / "cube.tif"
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(path), str(out)])
    assert exc.value.code == 0
    with rasterio.open(out) as src:
        assert np.isnan(src.nodata)


@pytest.mark.parametrize("change, message", [
    ({"Product_LRcorner_northing": UL_CENTRE[1] - 45 * 23}, "pixels of 30 x 45 m"),
    ({"Epsg_Code": np.int32(4326)}, "EPSG:4326 is in degrees"),
    ({"Product_center_lat": 46.0, "Product_center_long": 13.73}, "km from the product's"),
], ids=["45-m-rows", "degrees", "elsewhere"])
def test_an_inconsistent_l2d_grid_is_named_and_not_used(tmp_path, change, message):
    path = tmp_path / L2D
    write_prisma(path)
    with h5py.File(path, "r+") as f:
        f.attrs.update(change)
    with pytest.warns(UserWarning, match=message):
        cube = open_cube(path)
    assert cube.rio.crs is None


def test_a_grid_at_the_antimeridian_is_checked_across_it(tmp_path):
    """Grid centre at -179.9998, stated centre at 179.9998: 30 m apart, not 28,000 km."""
    x, y = Transformer.from_crs(4326, 32660, always_xy=True).transform(-179.9998, 45.0)
    path = tmp_path / L2D
    write_prisma(path)
    with h5py.File(path, "r+") as f:
        f.attrs.update({"Epsg_Code": np.int32(32660),
                        "Product_ULcorner_easting": x - 30 * 9.5,
                        "Product_ULcorner_northing": y + 30 * 11.5,
                        "Product_LRcorner_easting": x + 30 * 9.5,
                        "Product_LRcorner_northing": y - 30 * 11.5,
                        "Product_center_lat": 45.0, "Product_center_long": 179.9998})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_cube(path).rio.crs == CRS.from_epsg(32660)


def test_the_stated_centre_of_a_right_grid_raises_nothing(tmp_path):
    path = tmp_path / L2D
    write_prisma(path)
    centre = (UL_CENTRE[0] + 30 * 9.5, UL_CENTRE[1] - 30 * 11.5)
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(*centre)
    with h5py.File(path, "r+") as f:
        f.attrs.update({"Product_center_lat": lat, "Product_center_long": lon})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_cube(path).rio.crs == CRS.from_epsg(EPSG)


@pytest.mark.parametrize("said", [b"", b"L2C", b"2"])
def test_the_swath_names_the_level(tmp_path, said):
    path = tmp_path / L2D
    write_prisma(path)
    with h5py.File(path, "r+") as f:
        f.attrs["Processing_Level"] = np.bytes_(said)
    with pytest.warns(UserWarning, match="read as level 2D"):
        cube = open_cube(path)
    assert cube.attrs["prisma_level"] == "2D" and cube.rio.crs == CRS.from_epsg(EPSG)


def test_an_l2d_without_its_grid_is_read_in_pixels_with_a_warning(tmp_path):
    path = tmp_path / L2D
    write_prisma(path, skip_attrs=("Epsg_Code",))
    with pytest.warns(UserWarning, match="map grid cannot be read.*Epsg_Code"):
        cube = open_cube(path)
    assert cube.rio.crs is None and cube.rio.transform() == Affine.identity()


@pytest.mark.parametrize("damage, message", [
    ("no-scale", "without its L2ScaleSwirMin attribute"),
    ("short-list", "List_Cw_Vnir has 10 values for 66 bands"),
    ("float-cube", "not PRISMA's \\(rows, bands, columns\\) integer DN"),
    ("pan-only", "a PRISMA product without a hyperspectral cube"),
    ("bad-key", "no cube 'pan' in the PRISMA product"),
], ids=lambda v: v if "-" in v else None)
def test_bad_products_are_one_line_errors(tmp_path, capsys, damage, message):
    path = tmp_path / L2D
    write_prisma(path, skip_attrs=("L2ScaleSwirMin",) if damage == "no-scale" else ())
    with h5py.File(path, "r+") as f:
        fields = f[f"{swath('2D')}/Data Fields"]
        if damage == "short-list":
            f.attrs["List_Cw_Vnir"] = np.arange(10, dtype=np.float32)
        elif damage == "float-cube":
            data = fields["SWIR_Cube"][()].astype(np.float32)
            del fields["SWIR_Cube"]
            fields.create_dataset("SWIR_Cube", data=data)
        elif damage == "pan-only":
            del f[swath("2D")]
    args = ["info", path] + (["--key", "pan"] if damage == "bad-key" else [])
    line = one_error(args, capsys)
    assert path.name in line and len(line) < 400
    assert __import__("re").search(message, line), line
    with pytest.raises(FileFormatError, match=message):
        open_cube(path, key="pan" if damage == "bad-key" else None)


def test_a_product_with_a_user_block_is_recognised(tmp_path):
    """HDF5 finds its signature after a user block (512, 1024 … bytes); so does hsad."""
    plain, blocked = tmp_path / L2D, tmp_path / ("U" + L2D)
    write_prisma(plain)
    with h5py.File(plain, "r") as src, h5py.File(blocked, "w", userblock_size=1024) as dst:
        for name, value in src.attrs.items():
            dst.attrs[name] = value
        for name in ("VNIR_Cube", "SWIR_Cube"):
            where = f"{swath('2D')}/Data Fields/{name}"
            dst.create_dataset(where, data=src[where][()])
    assert detect_format(blocked) == "prisma"
    np.testing.assert_array_equal(open_cube(blocked).values, open_cube(plain).values)


def test_other_hdf5_files_are_refused_with_what_to_do(tmp_path):
    path = tmp_path / "MOD09.A2021.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("HDFEOS/GRIDS/g/Data Fields/sur_refl", data=np.zeros((4, 3, 5)))
    with pytest.raises(UnsupportedError, match="not an EMIT granule, a PRISMA product or a NEON"
                                               ".*gdal_translate"):
        open_cube(path)


def test_a_product_rewritten_after_opening_is_an_error(tmp_path):
    path = tmp_path / L2D
    write_prisma(path)
    cube = open_cube(path)
    write_prisma(path, seed=1, rows=24, cols=20)
    with pytest.raises(TruncatedFileError, match="the product changed on disk"):
        cube.values  # noqa: B018
    assert np.isfinite(open_cube(path).values[2:, 2:]).all()
