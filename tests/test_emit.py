"""EMIT granules (netCDF-4): the cube read in instrument geometry as GDAL reads it, and every
map and converted cube placed on the granule's map grid through its lookup table, cell by
cell as NASA's ``emit_tools.apply_glt`` places them (hsad.io.emit, hsad.io.glt;
docs/formats.md, "EMIT granules")."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error, run_cli
from rasterio.crs import CRS
from reader_helpers import count_reads

from hsad.io import detect_format, open_cube
from hsad.io.glt import glt_of, orthorectify_cube, orthorectify_map

ROWS, COLS, BANDS = 40, 30, 12
GRID_ROWS, GRID_COLS = 52, 47
GEOTRANSFORM = (-120.0, 0.0005, 0.0, 35.0, 0.0, -0.0005)
WGS84 = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
         'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]')


def lookup_tables(rows=ROWS, cols=COLS):
    """1-based ``glt_x``, ``glt_y`` of a swath turned about 30 degrees to the grid, with
    cells left empty (0) outside it and some pixels taken twice, as in real granules."""
    yy, xx = np.mgrid[0:GRID_ROWS, 0:GRID_COLS]
    src_r = np.floor(0.62 * yy + 0.45 * xx - 9).astype(int)
    src_c = np.floor(0.58 * xx - 0.33 * yy + 9).astype(int)
    inside = (src_r >= 0) & (src_r < rows) & (src_c >= 0) & (src_c < cols)
    gx = np.where(inside, src_c + 1, 0).astype(np.int32)
    gy = np.where(inside, src_r + 1, 0).astype(np.int32)
    return gx, gy


def write_granule(path, values=None, *, variable="reflectance", good=None, tables=None,
                  geotransform=GEOTRANSFORM, wl_units="nm"):
    """An EMIT-layout granule, with netCDF-4 dimension scales as the real files have."""
    rng = np.random.default_rng(0)
    values = rng.random((ROWS, COLS, BANDS)).astype(np.float32) if values is None else values
    rows, cols, bands = values.shape
    gx, gy = lookup_tables(rows, cols) if tables is None else tables
    with h5py.File(path, "w") as f:
        for name, n in (("downtrack", rows), ("crosstrack", cols), ("bands", bands)):
            f.create_dataset(name, data=np.arange(n, dtype=np.float32)).make_scale(name)
        var = f.create_dataset(variable, data=values, fillvalue=np.float32(-9999))
        var.attrs["_FillValue"] = np.float32(-9999)
        for i, name in enumerate(("downtrack", "crosstrack", "bands")):
            var.dims[i].attach_scale(f[name])
        f.attrs["geotransform"] = np.asarray(geotransform, dtype=np.float64)
        f.attrs["spatial_ref"] = WGS84
        group = f.create_group("sensor_band_parameters")
        wl = group.create_dataset("wavelengths", data=np.linspace(0.4, 2.4, bands) * (
            1000 if wl_units == "nm" else 1))
        wl.attrs["units"] = wl_units
        group.create_dataset("fwhm", data=np.full(bands, 8.5 if wl_units == "nm" else 0.0085))
        good = np.ones(bands, np.uint8) if good is None else np.asarray(good, np.uint8)
        group.create_dataset("good_wavelengths", data=good)
        loc = f.create_group("location")
        loc.create_dataset("glt_x", data=gx)
        loc.create_dataset("glt_y", data=gy)
        loc.create_dataset("lat", data=np.zeros((rows, cols)))
    return values


def apply_glt(values, gx, gy, fill):
    """The lookup as NASA's emit_tools writes it: ``out[valid] = data[gy - 1, gx - 1]``."""
    out = np.full(gx.shape + values.shape[2:], fill, dtype=np.result_type(values, np.float32))
    valid = (gx != 0) & (gy != 0)
    out[valid] = values[gy[valid] - 1, gx[valid] - 1]
    return out


@pytest.fixture()
def granule(tmp_path):
    path = tmp_path / "EMIT_L2A_RFL_001_20240101T000000_2400101_001.nc"
    values = write_granule(path, good=[1] * 5 + [0] * 2 + [1] * 5)
    values[3, 4] = -9999  # a fill pixel, as at a granule's edges
    with h5py.File(path, "r+") as f:
        f["reflectance"][3, 4] = -9999
    return path, values


def test_the_cube_reads_as_gdal_reads_the_granule(granule):
    path, values = granule
    assert detect_format(path) == "emit"
    cube = open_cube(path, chunks=16)
    assert cube.shape == (ROWS, COLS, BANDS) and cube.dtype == np.float32
    # GDAL's netCDF driver, rows as stored (by default it shows them bottom-up)
    with rasterio.Env(GDAL_NETCDF_BOTTOMUP="NO"), warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(f'NETCDF:"{path}":reflectance') as src:
            gdal = np.moveaxis(src.read(), 0, -1)
            assert src.nodata == cube.attrs["nodata"] == -9999
    np.testing.assert_array_equal(cube.values, gdal)
    np.testing.assert_allclose(cube["wavelength"].values, np.linspace(400, 2400, BANDS))
    np.testing.assert_allclose(cube["fwhm"].values, 8.5)
    assert cube["good_band"].values.tolist() == [True] * 5 + [False] * 2 + [True] * 5
    assert cube.rio.crs is None  # instrument geometry: placed by the lookup table only
    glt = glt_of(cube)
    assert glt.shape == (GRID_ROWS, GRID_COLS) and CRS.from_wkt(glt.crs) == CRS.from_epsg(4326)
    assert Affine(*glt.transform) == Affine.from_gdal(*GEOTRANSFORM)


def test_micrometre_wavelengths_are_read_in_nanometres(tmp_path):
    path = tmp_path / "g.nc"
    write_granule(path, wl_units="micrometers")
    cube = open_cube(path)
    np.testing.assert_allclose(cube["wavelength"].values, np.linspace(400, 2400, BANDS))
    np.testing.assert_allclose(cube["fwhm"].values, 8.5)


def test_detect_writes_every_map_on_the_granule_grid(granule, tmp_path, capsys):
    path, values = granule
    out = tmp_path / "out"
    code, text, err = run_cli(["detect", path, "-m", "rx", "-o", out / "rx.tif", "--mask",
                               out / "mask.tif", "--polygons", out / "regions.gpkg",
                               "--contamination", "0.05"], capsys)
    assert code == 0, err
    cube = open_cube(path)
    from hsad import detectors

    scores = detectors.get("rx").fit(cube).score(cube).values  # in instrument geometry
    gx, gy = lookup_tables()
    with rasterio.open(out / "rx.tif") as src:
        assert src.crs == CRS.from_epsg(4326)
        assert src.transform == Affine.from_gdal(*GEOTRANSFORM)
        written = src.read(1)
    np.testing.assert_allclose(written, apply_glt(scores, gx, gy, np.nan), rtol=1e-6,
                               equal_nan=True)
    with rasterio.open(out / "mask.tif") as src:
        mask = src.read(1)
        assert src.transform == Affine.from_gdal(*GEOTRANSFORM)
    assert (mask == 255).sum() == (gx == 0).sum() + (written[gx > 0] != written[gx > 0]).sum()
    threshold = np.nanquantile(scores[np.isfinite(scores)], 0.95)
    flagged = apply_glt((scores > threshold).astype(np.float32), gx, gy, np.nan)
    assert (mask == 1).sum() == (flagged == 1).sum() > 0
    # the polygons cover exactly the flagged cells of the grid, in its CRS
    import pyogrio
    import shapely

    info = pyogrio.read_info(out / "regions.gpkg")
    assert CRS.from_user_input(info["crs"]) == CRS.from_epsg(4326)
    geoms = shapely.from_wkb(pyogrio.raw.read(out / "regions.gpkg")[2])
    cell = GEOTRANSFORM[1] * -GEOTRANSFORM[5]
    assert shapely.area(geoms).sum() == pytest.approx((mask == 1).sum() * cell, rel=1e-9)


def test_convert_writes_the_orthorectified_cube(granule, tmp_path, capsys):
    path, values = granule
    gx, gy = lookup_tables()
    expected = apply_glt(values, gx, gy, -9999)
    for name in ("cube.tif", "cube.img"):
        code, _, err = run_cli(["convert", path, tmp_path / name, "--interleave", "bil"
                                if name.endswith(".img") else "bip"], capsys)
        assert code == 0, err
        with rasterio.open(tmp_path / name) as src:
            assert src.crs == CRS.from_epsg(4326) and src.nodata == -9999
            assert src.transform.almost_equals(Affine.from_gdal(*GEOTRANSFORM), 1e-12)
            np.testing.assert_array_equal(np.moveaxis(src.read(), 0, -1), expected)
        back = open_cube(tmp_path / name)
        np.testing.assert_allclose(back["wavelength"].values, np.linspace(400, 2400, BANDS))
        assert back["good_band"].values.sum() == BANDS - 2


def test_a_window_keeps_the_cells_placing_its_pixels(granule, tmp_path):
    path, _ = granule
    ids = np.arange(ROWS * COLS, dtype=np.float32).reshape(ROWS, COLS, 1)
    write_granule(tmp_path / "ids.nc", np.repeat(ids, 2, axis=2))
    whole = open_cube(tmp_path / "ids.nc")
    full_map = orthorectify_map(whole[:, :, 0])
    from hsad.cube.subset import spatial_subset

    for part in (open_cube(tmp_path / "ids.nc", srcwin=(5, 7, 20, 25)),
                 whole[7:32, 5:25], spatial_subset(whole, srcwin=(5, 7, 20, 25))):
        placed = orthorectify_map(part[:, :, 0])
        # each cell lies where the whole granule's cell of the same ground position lies
        offset = ~Affine(*glt_of(whole).transform) @ (placed.rio.transform() @ (0, 0))
        r0, c0 = round(offset[1]), round(offset[0])
        same = full_map.values[r0:r0 + placed.shape[0], c0:c0 + placed.shape[1]]
        got = placed.values
        ids_in = np.isin(same, ids[7:32, 5:25].ravel())
        np.testing.assert_array_equal(got[ids_in], same[ids_in])
        assert np.isnan(got[~ids_in]).all()
        assert ids_in.any(axis=1).all() and ids_in.any(axis=0).all()  # cropped to its cells
    assert glt_of(whole[::2, ::2]) is None  # a strided slice has no lookup table
    gx, gy = lookup_tables()
    assert not ((gy == 1) & (gx <= 3)).any()  # pixels 0-2 of row 0: no cell places them
    with pytest.warns(UserWarning, match="places no pixel of -srcwin 0 0 3 1"):
        lost = open_cube(tmp_path / "ids.nc", srcwin=(0, 0, 3, 1))
    assert glt_of(lost) is None


def test_orthorectify_cube_is_lazy_and_matches_the_lookup(granule):
    path, values = granule
    cube = open_cube(path, chunks=8)
    placed = orthorectify_cube(cube, tile=16)
    assert hasattr(placed.data, "dask") and placed.rio.crs == CRS.from_epsg(4326)
    gx, gy = lookup_tables()
    np.testing.assert_array_equal(placed.values, apply_glt(values, gx, gy, -9999))
    assert orthorectify_cube(placed) is placed  # already on a map grid


def test_bad_granules_are_one_line_errors(tmp_path, capsys):
    gx, gy = lookup_tables()
    whole = tmp_path / "EMIT_L2A_RFL_001_20240101T000000_2400101_001.nc"
    write_granule(whole)
    data = whole.read_bytes()
    cut = tmp_path / "EMIT_cut.nc"
    cut.write_bytes(data[:len(data) // 2])  # a download stopped half way
    assert "cannot be opened as HDF5: truncated or damaged" in one_error(["info", cut], capsys)
    for name in ("location/glt_y", "location"):
        lacking = tmp_path / f"EMIT_{name.replace('/', '_')}.nc"
        write_granule(lacking)
        with h5py.File(lacking, "r+") as f:
            del f[name]
        line = one_error(["info", lacking], capsys)
        assert "an EMIT granule without" in line and "location/glt_y" in line, line
    for tables, message in (((gx * 0, gy * 0), "places no pixel"),
                            ((gx + 0.5, gy.astype(float)), "float64 values, not pixel indices")):
        path = tmp_path / "tables.nc"
        write_granule(path, tables=tables)
        assert message in one_error(["info", path], capsys)
    path = tmp_path / "crs.nc"
    write_granule(path)
    with h5py.File(path, "r+") as f:
        f.attrs["spatial_ref"] = "garbage"
    assert "spatial_ref is not a CRS" in one_error(["detect", path, "-m", "rx", "-o",
                                                    tmp_path / "x.tif"], capsys)
    classic = tmp_path / "classic.nc"
    classic.write_bytes(b"CDF\x01" + bytes(60))
    assert "netCDF-3 (classic)" in one_error(["info", classic], capsys)
    path = tmp_path / "outside.nc"
    write_granule(path, tables=(gx * 3, gy))
    line = one_error(["info", path], capsys)
    assert "outside.nc" in line and "points outside" in line
    path = tmp_path / "flat.nc"
    write_granule(path, geotransform=(0, 0, 0, 0, 0, 0))
    assert "valid geotransform" in one_error(["info", path], capsys)
    path = tmp_path / "g.nc"
    write_granule(path)
    assert "no cube variable 'radiance'" in one_error(["info", path, "--key", "radiance"],
                                                       capsys)
    plain = tmp_path / "other.he5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("cube", data=np.zeros((4, 4, 4)))
    assert "HDF5 file" in one_error(["info", plain], capsys)


def test_info_names_the_grid(granule, capsys):
    path, _ = granule
    code, text, err = run_cli(["info", path], capsys)
    assert code == 0, err
    assert "EMIT netCDF (cube 'reflectance')" in text
    assert f"onto a {GRID_ROWS} x {GRID_COLS} grid in EPSG:4326" in text


def test_projwin_takes_the_pixels_of_its_grid_cells(granule, capsys, tmp_path):
    path, _ = granule
    gx, gy = lookup_tables()
    # grid cells rows 10..29, columns 12..31 (a corner nudged inside each cell, as GDAL rounds)
    ulx, uly = GEOTRANSFORM[0] + 12.2 * GEOTRANSFORM[1], GEOTRANSFORM[3] + 10.2 * GEOTRANSFORM[5]
    lrx, lry = GEOTRANSFORM[0] + 32 * GEOTRANSFORM[1], GEOTRANSFORM[3] + 30 * GEOTRANSFORM[5]
    cells_x, cells_y = gx[10:30, 12:32], gy[10:30, 12:32]
    taken = cells_x > 0
    r0, r1 = cells_y[taken].min() - 1, cells_y[taken].max()
    c0, c1 = cells_x[taken].min() - 1, cells_x[taken].max()
    cube = open_cube(path, projwin=(ulx, uly, lrx, lry))
    assert cube.attrs["hsad_window"][:2] == (r0, c0) and cube.shape[:2] == (r1 - r0, c1 - c0)
    # the window's pixels outside the asked cells are no data; the maps cover those cells
    placed = np.zeros(cube.shape[:2], bool)
    placed[cells_y[taken] - 1 - r0, cells_x[taken] - 1 - c0] = True
    assert not placed.all()
    np.testing.assert_array_equal(np.isfinite(cube.values).all(axis=-1), placed)
    glt = glt_of(cube)
    rows_kept = np.flatnonzero(taken.any(axis=1))
    cols_kept = np.flatnonzero(taken.any(axis=0))
    assert glt.shape == (rows_kept[-1] - rows_kept[0] + 1, cols_kept[-1] - cols_kept[0] + 1)
    assert Affine(*glt.transform) == Affine.from_gdal(*GEOTRANSFORM) @ Affine.translation(
        12 + cols_kept[0], 10 + rows_kept[0])
    # the same corners in UTM 11N
    from rasterio.warp import transform

    xs, ys = transform("EPSG:4326", "EPSG:32611", [ulx, lrx], [uly, lry])
    code, text, err = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "w.tif", "--projwin",
                               xs[0], ys[0], xs[1], ys[1], "--projwin-srs", "EPSG:32611"],
                              capsys)
    assert code == 0, err
    assert f"rows {r0}:{r1}, columns {c0}:{c1} of {ROWS}x{COLS}" in text
    empty = (GEOTRANSFORM[0] + 0.2 * GEOTRANSFORM[1], GEOTRANSFORM[3] + 0.2 * GEOTRANSFORM[5],
             GEOTRANSFORM[0] + 2 * GEOTRANSFORM[1], GEOTRANSFORM[3] + 2 * GEOTRANSFORM[5])
    assert gx[:2, :2].max() == 0
    line = one_error(["detect", path, "-m", "rx", "-o", tmp_path / "e.tif", "--projwin",
                      *empty], capsys)
    assert "holds no pixel of the granule" in line


MASK_BANDS = ["Cloud flag", "Cirrus flag", "Water flag", "Spacecraft Flag", "Dilated Cloud Flag",
              "AOD550", "H2O (g cm-2)", "Aggregate Flag"]


def write_mask_granule(path, flags):
    """An EMIT L2A MASK granule whose ``mask`` holds ``flags`` (rows, cols, 8)."""
    rows, cols = flags.shape[:2]
    gx, gy = lookup_tables(rows, cols)
    with h5py.File(path, "w") as f:
        var = f.create_dataset("mask", data=flags.astype(np.float32))
        var.attrs["_FillValue"] = np.float32(-9999)
        f.create_dataset("band_mask", data=np.zeros((rows, cols, 36), np.uint8))
        f.attrs["geotransform"] = np.asarray(GEOTRANSFORM)
        f.attrs["spatial_ref"] = WGS84
        f.create_group("sensor_band_parameters").create_dataset(
            "mask_bands", data=np.array(MASK_BANDS, dtype=object), dtype=h5py.string_dtype())
        loc = f.create_group("location")
        loc.create_dataset("glt_x", data=gx)
        loc.create_dataset("glt_y", data=gy)


def test_an_emit_mask_granule_is_a_valid_mask_of_its_clear_pixels(granule, tmp_path, capsys):
    path, values = granule
    flags = np.zeros((ROWS, COLS, 8), np.float32)
    flags[..., 5] = 0.12  # AOD, a data band: no flag
    flags[..., 6] = 1.8  # water vapour, a data band
    flags[5:15, 10:20, 0] = 1  # a cloud
    flags[20:25, 0:6, 2] = 1  # water
    flags[30, 7, 3] = 1  # the spacecraft
    flags[35, 25, :] = -9999  # fill
    mask_path = tmp_path / "EMIT_L2A_MASK_001_20240101T000000_2400101_001.nc"
    write_mask_granule(mask_path, flags)
    clear = (flags[..., [0, 1, 2, 3, 4, 7]] == 0).all(axis=-1)
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", out, "--valid-mask", mask_path],
                           capsys)
    assert code == 0, err
    from hsad import detectors
    from hsad.cube.nodata import apply_valid_mask

    cube = apply_valid_mask(open_cube(path), clear)
    expected = detectors.get("rx").fit(cube).score(cube).values
    assert np.isnan(expected[~clear]).all() and np.isfinite(expected[clear & (
        values[..., 0] != -9999)]).all()
    gx, gy = lookup_tables()
    with rasterio.open(out) as src:
        np.testing.assert_allclose(src.read(1), apply_glt(expected, gx, gy, np.nan),
                                   rtol=1e-6, equal_nan=True)
    # another granule's mask is refused by its name
    other = tmp_path / "EMIT_L2A_MASK_001_20240102T000000_2400201_001.nc"
    write_mask_granule(other, flags)
    line = one_error(["detect", path, "-m", "rx", "-o", tmp_path / "o.tif", "--valid-mask",
                      other], capsys)
    assert "is the mask of granule 20240102T000000_2400201_001" in line
    # a reflectance granule has no mask
    line = one_error(["detect", path, "-m", "rx", "-o", tmp_path / "p.tif", "--valid-mask",
                      path], capsys)
    assert "without a 'mask' variable" in line


def test_a_statistics_sample_reads_its_windows_only(tmp_path, monkeypatch):
    """dask fuses a slice into the reader's read (from_array without fancy=False): a sample
    of 8 x 8 windows reads 8 x 8 windows, not the 96 x 90 tile each lies in (16 s against
    3.4 s for RX on a 320 x 310 x 285 granule)."""
    import hsad.io.emit as emit
    from hsad.engine.sampling import SAMPLE_WINDOW, even_sample

    path = tmp_path / "big.nc"
    values = write_granule(path, np.random.default_rng(1).random((96, 90, 500)).astype(
        np.float32))  # larger than ONE_PASS_BYTES, which is read whole
    reads = count_reads(monkeypatch, emit._EmitReader)
    sample = even_sample(open_cube(path, chunks=96).data, 4 * SAMPLE_WINDOW ** 2)
    assert max(reads) <= SAMPLE_WINDOW ** 2 and sum(reads) == len(sample) < values.size
    assert np.isin(sample[:, 0], values[..., 0]).all()


def test_background_polygons_in_map_coordinates_take_the_pixels_of_their_cells(granule,
                                                                               tmp_path):
    """A lon/lat (or UTM) polygon drawn over the granule's map chooses the pixels whose
    cells it covers; statistics then come from those pixels only."""
    import shapely
    from rasterio.warp import transform_geom

    from hsad.cube.background import background_mask

    path, _ = granule
    cube = open_cube(path)
    gx, gy = lookup_tables()
    # cells rows 20..34, columns 15..29 of the grid, as a lon/lat box
    box = shapely.box(GEOTRANSFORM[0] + 15 * GEOTRANSFORM[1], GEOTRANSFORM[3] + 35 *
                      GEOTRANSFORM[5], GEOTRANSFORM[0] + 30 * GEOTRANSFORM[1],
                      GEOTRANSFORM[3] + 20 * GEOTRANSFORM[5])
    expected = np.zeros((ROWS, COLS), bool)
    cells = (gx[20:35, 15:30], gy[20:35, 15:30])
    hit = cells[0] > 0
    expected[cells[1][hit] - 1, cells[0][hit] - 1] = True
    np.testing.assert_array_equal(background_mask(cube, box, crs="EPSG:4326"), expected)
    utm = shapely.geometry.shape(transform_geom("EPSG:4326", "EPSG:32611",
                                                shapely.geometry.mapping(box)))
    # the same box in UTM, shrunk by a tenth of a cell: its edges are no longer straight in
    # degrees, so cells cut in half would count on one side or the other
    inner = shapely.box(*box.buffer(-GEOTRANSFORM[1] / 10).bounds)
    in_utm = background_mask(cube, utm, crs="EPSG:32611")
    assert (in_utm != expected).sum() <= 0.05 * expected.sum()
    assert not background_mask(cube, inner, crs="EPSG:4326")[~expected].any()
    far = shapely.box(0, 0, 1, 1)
    with pytest.raises(Exception, match="covers no pixel of the granule"):
        background_mask(cube, far, crs="EPSG:4326")
    # without a CRS, polygons are in the granule's pixels, as QGIS draws the quicklook's
    # frame (x = column, y = -row)
    pixels = background_mask(cube, shapely.box(3, -12, 9, -2))
    assert pixels.sum() == 60 and pixels[2:12, 3:9].all()


def test_a_granule_read_can_be_replaced_and_is_then_read_anew(tmp_path):
    """The reader holds the granule open (its chunk cache), but through a file object:
    HDF5 locks nothing and shares no open file, so the granule can be rewritten in the
    same process or another while a cube of it lives, and a new cube reads the new file;
    the live cube's next read is an error, however the file was changed."""
    import subprocess
    import sys

    path = tmp_path / "g.nc"
    write_granule(path)
    old = open_cube(path, chunks=16)
    assert float(old[:4, :4].mean()) < 1  # read: the handle is open now
    script = ("import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); "
              "f['reflectance'][0, 0, 0] = 5; f.close()")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr  # no HDF5 lock held by this process
    write_granule(path, np.full((ROWS, COLS, BANDS), 7.0, np.float32))  # truncates it
    assert float(open_cube(path).mean()) == 7.0
    # the live cube's file was rewritten in place: its bytes lie elsewhere now
    from hsad.errors import TruncatedFileError

    with pytest.raises(TruncatedFileError, match="changed on disk after it was opened"):
        old[4:8, 4:8].compute()
    # the same size, its modification time put back (cp -p, rsync --inplace -t)
    import os

    kept = open_cube(path, chunks=16)
    assert float(kept[:4, :4].mean()) == 7.0
    before = os.stat(path)
    with h5py.File(path, "r+") as f:
        f["reflectance"][0, 0, 0] = 9.0
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    with pytest.raises(TruncatedFileError, match="modified, or its status changed"):
        kept[8:12, 8:12].compute()
    # replaced by a rename: the live cube fails, a new one reads the new file
    kept = open_cube(path, chunks=16)
    assert float(kept[:4, 4:8].mean()) == 7.0
    write_granule(tmp_path / "new.nc", np.full((ROWS, COLS, BANDS), 3.0, np.float32))
    (tmp_path / "new.nc").replace(path)
    with pytest.raises(TruncatedFileError, match="changed on disk"):
        kept[8:12, 8:12].compute()
    assert float(open_cube(path).mean()) == 3.0


@pytest.mark.parametrize("fill", [np.array([], np.float32), np.array([1, 2], np.float32)])
def test_a_fill_value_that_is_not_one_number_is_one_line(tmp_path, capsys, fill):
    """An empty or paired _FillValue was an IndexError, or its first value taken."""
    path = tmp_path / "EMIT_L2A_RFL_001_20240101T000000_2400101_001.nc"
    write_granule(path)
    with h5py.File(path, "r+") as f:
        f["reflectance"].attrs["_FillValue"] = fill
    line = one_error(["info", path], capsys)
    assert "reflectance attribute _FillValue is not one number" in line and path.name in line


def test_a_raster_drawn_on_the_granule_map_grid_is_taken_back_to_its_pixels(granule,
                                                                          tmp_path, capsys):
    """A truth GeoTIFF on the grid hsad writes the granule's maps on (digitised over them
    in QGIS) was refused as "not the scene's grid"; `hsad evaluate` took it."""
    from hsad.cube.placement import on_scene_grid
    from hsad.io.maps import read_truth

    path, _ = granule
    gx, gy = lookup_tables()
    cells = np.zeros((GRID_ROWS + 6, GRID_COLS + 4), np.uint8)  # a larger area of the grid
    cells[3 + 20:3 + 25, 2 + 15:2 + 20] = 1
    truth = tmp_path / "truth.tif"
    with rasterio.open(truth, "w", driver="GTiff", width=cells.shape[1], height=cells.shape[0],
                       count=1, dtype="uint8", crs="EPSG:4326",
                       transform=Affine.from_gdal(*GEOTRANSFORM) @ Affine.translation(-2, -3)
                       ) as dst:
        dst.write(cells, 1)
    expected = np.full((ROWS, COLS), np.nan)
    placed = gx > 0
    expected[gy[placed] - 1, gx[placed] - 1] = 0
    block = np.zeros_like(placed)
    block[20:25, 15:20] = True
    expected[gy[block & placed] - 1, gx[block & placed] - 1] = 1
    cube = open_cube(path)
    values, raster = read_truth(truth, grid=cube)
    np.testing.assert_array_equal(on_scene_grid(values, raster, cube, "ground truth", truth),
                                  expected)
    code, out, err = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "rx.tif",
                              "--truth", truth], capsys)
    assert code == 0, err
    assert "AUC(D,F) = " in out
    window = open_cube(path).isel(y=slice(10, 40), x=slice(5, 30))  # a window's own table
    values, raster = read_truth(truth, grid=window)
    np.testing.assert_array_equal(on_scene_grid(values, raster, window, "truth", truth),
                                  expected[10:40, 5:30])
    # a raster of part of the grid (clipped in QGIS): the pixels it does not reach are NaN
    part = tmp_path / "part.tif"
    with rasterio.open(part, "w", driver="GTiff", width=30, height=30, count=1,
                       dtype="uint8", crs="EPSG:4326",
                       transform=Affine.from_gdal(*GEOTRANSFORM) @ Affine.translation(10, 10)
                       ) as dst:
        dst.write(cells[3 + 10:3 + 40, 2 + 10:2 + 40], 1)
    values, raster = read_truth(part, grid=cube)
    got = on_scene_grid(values, raster, cube, "ground truth", part)
    reached = np.zeros_like(placed)
    reached[10:40, 10:40] = True
    inside = np.zeros((ROWS, COLS), bool)
    inside[gy[reached & placed] - 1, gx[reached & placed] - 1] = True
    np.testing.assert_array_equal(got[inside], expected[inside])
    assert np.isnan(got[~inside]).all()
    # a mask takes a pixel's smallest cell: one any of whose cells is left out is left out
    # (a cloud's edge), where a truth takes the largest
    from hsad.cube.background import raster_mask

    clear = 1 - cells  # the block is cloud: 0
    mask_path = tmp_path / "clear.tif"
    with rasterio.open(mask_path, "w", driver="GTiff", width=cells.shape[1],
                       height=cells.shape[0], count=1, dtype="uint8", crs="EPSG:4326",
                       transform=Affine.from_gdal(*GEOTRANSFORM) @ Affine.translation(-2, -3)
                       ) as dst:
        dst.write(clear, 1)
    want = np.zeros((ROWS, COLS), bool)
    want[gy[placed] - 1, gx[placed] - 1] = True
    want[gy[block & placed] - 1, gx[block & placed] - 1] = False
    got = raster_mask(mask_path, cube, what="valid mask")
    np.testing.assert_array_equal(got, want)
    outside = np.zeros((ROWS, COLS), bool)
    outside[gy[~block & placed] - 1, gx[~block & placed] - 1] = True
    edge = outside & ~want & (expected == 1)  # placed by clear and by cloudy cells
    assert edge.any()  # where the largest cell would have kept them
    other = tmp_path / "other.tif"  # half a cell off the grid: refused, saying why
    with rasterio.open(other, "w", driver="GTiff", width=GRID_COLS, height=GRID_ROWS, count=1,
                       dtype="uint8", crs="EPSG:4326", transform=Affine.from_gdal(
                           *GEOTRANSFORM) @ Affine.translation(0.5, 0)) as dst:
        dst.write(cells[3:-3, 2:-2], 1)
    assert "must lie on their grid" in one_error(["detect", path, "-m", "rx", "-o",
                                                  tmp_path / "x.tif", "--truth", other], capsys)
