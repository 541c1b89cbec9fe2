"""GeoTIFF reader (conformance with GDAL on the corpus, laziness, metadata) and writers."""

from __future__ import annotations

import json
import pickle

import dask.array as da
import numpy as np
import pytest
import rasterio
from affine import Affine

import hsad
from hsad.cube import make_cube, map_like, valid_mask
from hsad.errors import FileFormatError, ParameterError, TruncatedFileError
from hsad.io import geotiff_writer
from hsad.io.geotiff import open_geotiff
from hsad.io.geotiff_writer import write_geotiff, write_geotiff_cube, write_mask

AVIRIS = "isofit/ang20160910t185702_2rdn_img"
ENMAP = "enmapbox/enmap_potsdam_tile_96_96.tif"


def gtiff_entries(corpus_dir):
    entries = json.loads((corpus_dir / "corpus.json").read_text())["files"]
    return [e for e in entries if e["format"] == "GTiff"]


def test_corpus_geotiffs_match_gdal_record(corpus_dir):
    entries = gtiff_entries(corpus_dir)
    assert entries, "corpus has no GeoTIFF entries"
    for entry in entries:
        path, rec = corpus_dir / entry["file"], entry["gdal"]
        cube = open_geotiff(path, chunks=12)
        assert cube.shape == (rec["rows"], rec["cols"], rec["bands"])
        assert str(cube.dtype) == rec["dtype"]
        assert cube.rio.crs.to_epsg() == rec["epsg"]
        assert np.allclose(list(cube.rio.transform())[:6], rec["transform"])
        assert cube.attrs["nodata"] == rec["nodata"]
        with rasterio.open(path) as src:
            expected = np.moveaxis(src.read(), 0, -1)
        np.testing.assert_array_equal(cube.values, expected)
        wl = cube["wavelength"].values
        # increasing within each spectrometer (EnMAP's VNIR and SWIR ranges overlap once)
        assert np.sum(np.diff(wl) <= 0) <= 1
        assert 400 <= wl.min() and wl.max() <= 2500
        assert np.isfinite(cube["fwhm"].values).all()
        assert cube.attrs["source_format"] == "geotiff"


def test_bad_bands_come_from_bbl_tags(corpus_dir):
    cube = open_geotiff(corpus_dir / ENMAP)
    with rasterio.open(corpus_dir / ENMAP) as src:
        bbl = np.array([float(src.tags(b)["bbl"]) for b in range(1, src.count + 1)]) != 0
    assert not bbl.all()
    np.testing.assert_array_equal(cube["good_band"].values, bbl)


def test_reader_is_lazy_windowed_and_pickleable(corpus_dir):
    cube = open_geotiff(corpus_dir / ENMAP, chunks=(10, 12))
    assert cube.data.chunks == ((10, 10, 10, 2), (12, 12, 8), (224,))
    with rasterio.open(corpus_dir / ENMAP) as src:
        full = np.moveaxis(src.read(), 0, -1)
    clone = pickle.loads(pickle.dumps(cube.data))
    np.testing.assert_array_equal(clone.compute(scheduler="threads"), full)
    np.testing.assert_array_equal(cube[3:29:4, ::-3, 7].values, full[3:29:4, ::-3, 7])
    np.testing.assert_array_equal(cube.isel(y=5).values, full[5])


def test_selections_are_read_as_windows(corpus_dir, monkeypatch):
    """dask hands the reader the rows, columns and bands a selection needs (band lists and
    masks included), so a small window reads that window, not its whole tile."""
    from hsad.io import geotiff

    cube = open_geotiff(corpus_dir / ENMAP, chunks=(16, 16))
    with rasterio.open(corpus_dir / ENMAP) as src:
        full = np.moveaxis(src.read(), 0, -1)
    read = []
    original = geotiff.WindowReader._read
    monkeypatch.setattr(geotiff.WindowReader, "_read", lambda self, r0, r1, c0, c1, b0, b1: (
        read.append((r1 - r0) * (c1 - c0) * (b1 - b0)) or original(self, r0, r1, c0, c1, b0, b1)))
    bands = np.zeros(224, bool)
    bands[[3, 10, 200]] = True
    for key in [(slice(2, 6), slice(3, 9), [0, 5, 7]), (slice(20, 24), slice(1, 5), bands),
                (slice(4, 8), slice(4, 8), slice(None)), (5, slice(None, None, -3), [-1, 2])]:
        read.clear()
        np.testing.assert_array_equal(cube.data[key].compute(), full[key[:2]][..., key[2]])
        if key[1].step is None:  # dask reads whole tiles for a reversed stride
            assert sum(read) <= len(range(32)[key[0]]) * 32 * 224, (key, read)
    read.clear()
    cube.data[4:8, 4:8].compute()
    assert read == [4 * 4 * 224]


def _write_raw_tif(path, data, nodata=None, band_tags=None, ds_tags=None, envi=None,
                   imagery=None):
    rows, cols, bands = data.shape
    with rasterio.open(path, "w", driver="GTiff", height=rows, width=cols, count=bands,
                       dtype=data.dtype.name, nodata=nodata, crs="EPSG:32633",
                       transform=Affine(2, 0, 500000, 0, -2, 5800000), interleave="pixel") as dst:
        dst.write(np.moveaxis(data, -1, 0))
        if ds_tags:
            dst.update_tags(**ds_tags)
        if envi:
            dst.update_tags(ns="ENVI", **envi)
        for b in range(bands):
            if band_tags:
                dst.update_tags(b + 1, **band_tags[b])
            if imagery:
                dst.update_tags(b + 1, ns="IMAGERY", **imagery[b])


WL_UM = [0.45, 0.55, 0.65]


def test_a_wavelength_tagged_on_some_bands_yields_to_a_complete_source(tmp_path):
    """docs/formats.md: the first source with a value for every band. A wavelength tag on
    band 1 alone hid the IMAGERY domain's complete list (450, NaN, NaN); alone, it still
    gives what it knows (files an earlier hsad wrote)."""
    data = np.ones((2, 2, 3), np.float32)
    imagery = [{"CENTRAL_WAVELENGTH_UM": str(w), "FWHM_UM": "0.01"} for w in WL_UM]
    one = [{"wavelength": "450", "wavelength_units": "Nanometers"}, {}, {}]
    _write_raw_tif(tmp_path / "both.tif", data, band_tags=one, imagery=imagery)
    cube = open_geotiff(tmp_path / "both.tif")
    np.testing.assert_allclose(cube["wavelength"].values, [450, 550, 650])
    np.testing.assert_allclose(cube["fwhm"].values, 10)
    _write_raw_tif(tmp_path / "some.tif", data, band_tags=one)
    np.testing.assert_array_equal(open_geotiff(tmp_path / "some.tif")["wavelength"].values,
                                  [450, np.nan, np.nan])
    # the tags' fwhm keeps the tags' unit when the wavelengths come from IMAGERY (µm): it
    # was scaled by 1000 (10 nm read as 10 000)
    tagged = [{"fwhm": "10", "wavelength_units": "Nanometers"}] * 3
    _write_raw_tif(tmp_path / "fwhm.tif", data, band_tags=tagged, imagery=imagery)
    np.testing.assert_allclose(open_geotiff(tmp_path / "fwhm.tif")["fwhm"].values, 10)
    unitless = [{"fwhm": "10"}] * 3  # a unit nowhere: IMAGERY's own FWHM_UM
    _write_raw_tif(tmp_path / "bare.tif", data, band_tags=unitless, imagery=imagery)
    np.testing.assert_allclose(open_geotiff(tmp_path / "bare.tif")["fwhm"].values, 10)


@pytest.mark.parametrize("style", ["band_tags", "envi_domain", "imagery_domain"])
def test_wavelengths_in_micrometres_become_nm(tmp_path, style):
    data = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)
    kwargs = {
        "band_tags": {"band_tags": [{"wavelength": str(w), "fwhm": "0.01", "bbl": str(int(b != 1)),
                                     "wavelength_units": "Micrometers"}
                                    for b, w in enumerate(WL_UM)]},
        "envi_domain": {"envi": {"wavelength": "{0.45, 0.55, 0.65}", "fwhm": "{0.01,0.01,0.01}",
                                 "bbl": "{1, 0, 1}", "wavelength_units": "Micrometers"}},
        "imagery_domain": {"imagery": [{"CENTRAL_WAVELENGTH_UM": str(w), "FWHM_UM": "0.01"}
                                       for w in WL_UM]},
    }[style]
    path = tmp_path / "spectral.tif"
    _write_raw_tif(path, data, **kwargs)
    cube = open_geotiff(path)
    np.testing.assert_allclose(cube["wavelength"].values, [450, 550, 650])
    np.testing.assert_allclose(cube["fwhm"].values, 10)
    expected_good = [True, True, True] if style == "imagery_domain" else [True, False, True]
    np.testing.assert_array_equal(cube["good_band"].values, expected_good)
    assert cube.attrs["interleave"] == "bip"
    np.testing.assert_array_equal(cube.values, data)


def test_no_spectral_metadata_gives_nan_wavelengths(tmp_path):
    path = tmp_path / "plain.tif"
    _write_raw_tif(path, np.ones((3, 3, 2), np.float32))
    cube = open_geotiff(path)
    assert np.isnan(cube["wavelength"].values).all()
    assert cube["good_band"].values.all()


def test_nodata_pixels_are_masked(tmp_path):
    data = np.full((6, 7, 3), 100, dtype=np.int16)
    data[2, 3, :] = -9999
    data[5, 0, 1] = -9999
    path = tmp_path / "nodata.tif"
    _write_raw_tif(path, data, nodata=-9999)
    cube = open_geotiff(path)
    assert cube.attrs["nodata"] == -9999
    mask = valid_mask(cube).values
    assert not mask[2, 3] and not mask[5, 0]
    assert mask.sum() == 6 * 7 - 2


def test_truncated_geotiff_fails_at_open(corpus_dir, tmp_path):
    raw = (corpus_dir / ENMAP).read_bytes()
    bad = tmp_path / "cut.tif"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(TruncatedFileError) as exc:
        open_geotiff(bad)
    assert str(bad) in str(exc.value)
    # GDAL's own reason, not rasterio's pointer to an exception the user never sees
    assert "previous exception" not in str(exc.value)


def test_non_tiff_is_a_file_format_error(tmp_path):
    bad = tmp_path / "fake.tif"
    bad.write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(FileFormatError, match="not a readable GeoTIFF"):
        open_geotiff(bad)


@pytest.fixture(scope="module")
def aviris(corpus_dir):
    return hsad.open_cube(corpus_dir / AVIRIS, chunks=8)


@pytest.mark.parametrize("epsg", [2056, 21781])
def test_an_oblique_mercator_crs_is_read_and_written_without_a_false_warning(tmp_path, epsg):
    """A Swiss (Hotine oblique Mercator) scene printed pyproj's "angle from rectified to
    skew grid parameter lost in conversion to CF" at every read and write, though GDAL
    reads the CRS back unchanged: a false alarm of a damaged output."""
    import warnings

    path = tmp_path / "ch.tif"
    profile = dict(driver="GTiff", width=3, height=2, count=2, dtype="uint8",
                   crs=f"EPSG:{epsg}", transform=Affine(10, 0, 2600000, 0, -10, 1200000))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((2, 2, 3), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cube = hsad.open_cube(path)
        out = write_geotiff_cube(cube, tmp_path / "copy.tif")
    with rasterio.open(out) as src, rasterio.open(path) as ref:
        assert src.crs == ref.crs


def test_map_round_trip_keeps_crs_and_transform(aviris, tmp_path):
    scores = aviris.isel(band=slice(10, 60)).mean("band").astype(np.float32)
    scores = scores.where(valid_mask(aviris))
    as_map = map_like(aviris, scores.data, name="score")
    out = hsad.write_geotiff(as_map, tmp_path / "score.tif")
    out_np = write_geotiff(np.asarray(as_map.values), tmp_path / "score_np.tif", like=aviris)
    for path in (out, out_np):
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 32611 == aviris.rio.crs.to_epsg()
            assert src.transform == aviris.rio.transform()
            assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
            assert src.block_shapes[0] == (32, 32)  # 25 x 30 pixels: one 32 x 32 tile
            structure = src.tags(ns="IMAGE_STRUCTURE")
            assert structure["COMPRESSION"] == "DEFLATE" and structure["PREDICTOR"] == "3"
            np.testing.assert_array_equal(src.read(1), as_map.values)
        back = open_geotiff(path)
        np.testing.assert_allclose(back["x"].values, aviris["x"].values)
        np.testing.assert_allclose(back["y"].values, aviris["y"].values)


def test_dask_map_is_streamed_block_by_block(tmp_path, monkeypatch):
    rows, cols = 700, 600
    values = da.random.default_rng(1).random((rows, cols), chunks=(200, 300)).astype(np.float32)
    cube = make_cube(values[:, :, None], crs="EPSG:32633",
                     transform=Affine(30, 0, 366015, 0, -30, 5809965))
    windows = []
    original = geotiff_writer._WindowWriter.__setitem__

    def record(self, key, block):
        windows.append(block.shape)
        original(self, key, block)

    monkeypatch.setattr(geotiff_writer._WindowWriter, "__setitem__", record)
    out = write_geotiff(map_like(cube, values), tmp_path / "big.tif")
    assert len(windows) > 1
    assert max(h * w for h, w in windows) < rows * cols
    assert sum(h * w for h, w in windows) == rows * cols
    with rasterio.open(out) as src:
        assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
        np.testing.assert_array_equal(src.read(1), values.compute())


def test_cog_is_valid_with_overviews(tmp_path):
    values = da.random.default_rng(2).random((1100, 900), chunks=512).astype(np.float32)
    transform = Affine(15, 0, 353000, 0, -15, 3813000)
    cube = make_cube(values[:, :, None], crs="EPSG:32611", transform=transform)
    out = write_geotiff(map_like(cube, values), tmp_path / "score_cog.tif", cog=True)
    with rasterio.open(out) as src:
        assert src.driver == "GTiff"
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["tiled"]
        assert src.overviews(1) == [2, 4]
        assert src.crs.to_epsg() == 32611 and src.transform == transform
        np.testing.assert_array_equal(src.read(1), values.compute())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score_cog.tif"]


def _exploding_map(shape, chunks):
    def boom(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 1):
            raise RuntimeError("detector failed mid-way")
        return block

    return da.zeros(shape, chunks=chunks, dtype=np.float32).map_blocks(boom, dtype=np.float32)


@pytest.mark.parametrize("cog", [False, True])
def test_failed_write_leaves_nothing_behind(tmp_path, cog):
    target = tmp_path / "score.tif"
    with pytest.raises(RuntimeError, match="mid-way"):
        write_geotiff(_exploding_map((600, 600), 256), target, cog=cog)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        write_geotiff(_exploding_map((600, 600), 256), target, cog=cog)
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["score.tif"]


def test_map_shape_must_match_like(aviris, tmp_path):
    with pytest.raises(ParameterError, match="does not match"):
        write_geotiff(np.zeros((3, 4), np.float32), tmp_path / "x.tif", like=aviris)
    assert list(tmp_path.iterdir()) == []


def test_cube_round_trip_keeps_wavelengths_bbl_and_georef(corpus_dir, tmp_path):
    cube = open_geotiff(corpus_dir / ENMAP, chunks=16)
    out = write_geotiff_cube(cube, tmp_path / "cube.tif")
    back = open_geotiff(out)
    np.testing.assert_array_equal(back.values, cube.values)
    for coord in ("wavelength", "fwhm", "good_band"):
        np.testing.assert_allclose(back[coord].values, cube[coord].values, rtol=1e-6)
    assert back.rio.crs == cube.rio.crs and back.rio.transform() == cube.rio.transform()
    assert back.attrs["nodata"] == cube.attrs["nodata"] and back.attrs["block_shape"] == (32, 32)


def test_cube_cog_with_pixel_interleave_and_int_cast(corpus_dir, tmp_path):
    cube = open_geotiff(corpus_dir / ENMAP)
    out = write_geotiff_cube(cube, tmp_path / "cube_cog.tif", cog=True, dtype="int16",
                             interleave="pixel")
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    back = open_geotiff(out)
    assert back.dtype == np.int16 and back.attrs["interleave"] == "bip"
    expected = np.clip(np.rint(cube.values), -32768, 32767)
    np.testing.assert_array_equal(back.values, expected)
    np.testing.assert_allclose(back["wavelength"].values, cube["wavelength"].values)


def test_write_mask_codes_true_false_and_nodata(aviris, tmp_path):
    rows, cols = aviris.shape[:2]
    mask = np.zeros((rows, cols), bool)
    mask[3:6, 4:9] = True
    valid = np.ones((rows, cols), bool)
    valid[0, :] = False
    out = write_mask(map_like(aviris, mask), tmp_path / "mask.tif", valid=valid)
    with rasterio.open(out) as src:
        got = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 255
        assert src.crs.to_epsg() == 32611
    assert (got[0] == 255).all()
    assert (got[3:6, 4:9] == 1).all() and got[1:].sum() == 15


def test_small_windows_of_a_tiled_geotiff_share_one_open_file_in_a_session(tmp_path,
                                                                         monkeypatch):
    """Each window opened the file anew, so GDAL decoded a whole compressed tile for every
    8 × 8 window of the scene checks (RX 5.1 s on a tiled GeoTIFF, 0.9 s on the same ENVI).
    Inside a session the file stays open (a file replaced or rewritten is read anew);
    outside one, and after it, no file is kept open (no stale handle in a forked child, no
    deleted scene held, no blocks kept in GDAL's cache)."""
    import os

    from hsad.io import kept_open
    from hsad.io.geotiff import WindowReader

    path = tmp_path / "scene.tif"

    def write(value, size=64):
        tmp = tmp_path / "new.tif"
        with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=2,
                           dtype="float32", tiled=True, blockxsize=32, blockysize=32,
                           compress="deflate") as dst:
            dst.write(np.full((2, size, size), value, np.float32))
        os.replace(tmp, path)  # as hsad and GDAL tools write: a new file renamed into place

    def held() -> int:
        fds = f"/proc/{os.getpid()}/fd"
        return sum(os.path.realpath(os.path.join(fds, f)).startswith(str(path))
                   for f in os.listdir(fds)) if os.path.isdir(fds) else 0

    write(1.0)
    opened = []
    real = rasterio.open
    monkeypatch.setattr(rasterio, "open",
                        lambda *a, **k: opened.append(str(a[0])) or real(*a, **k))
    reader = WindowReader(str(path), (64, 64, 2), np.float32)
    corners = [(y, x) for y in range(0, 64, 16) for x in range(0, 64, 16)]
    assert all((reader[y:y + 8, x:x + 8] == 1).all() for y, x in corners)
    assert opened.count(str(path)) == len(corners) and held() == 0  # no session: one each
    opened.clear()
    with kept_open.session():
        assert all((reader[y:y + 8, x:x + 8] == 1).all() for y, x in corners)
        assert opened.count(str(path)) == 1
        write(2.0)
        assert (reader[:8, :8] == 2).all() and opened.count(str(path)) == 2
        with real(path, "r+") as dst:  # rewritten in place: same inode and size
            dst.write(np.full((2, 64, 64), 3.0, np.float32))
        os.utime(path, ns=(10**9, 10**9))  # (a time of its own, whatever the clock's grain)
        assert (reader[8:16, :8] == 3).all() and opened.count(str(path)) == 3
        kept_open._forget_in_child()  # what a forked child does first
        assert (reader[:8, :8] == 3).all() and opened.count(str(path)) == 4
    assert held() == 0


def test_a_session_leaves_at_most_its_share_of_blocks_in_gdals_cache(tmp_path, monkeypatch):
    """Kept open for a whole scene's sample, a file left every block it decoded in GDAL's
    cache (a 256 MB GeoTIFF's detect peaked at 1.13 GB, 0.45 GB before): beyond
    CACHE_BYTES of decoded blocks the file is opened anew, which drops them."""
    from hsad.io import kept_open
    from hsad.io.geotiff import WindowReader

    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=128, height=128, count=2,
                       dtype="float32", tiled=True, blockxsize=32, blockysize=32) as dst:
        dst.write(np.ones((2, 128, 128), np.float32))
    tile = 32 * 32 * 4 * 2  # one block of both bands (pixel interleaved)
    monkeypatch.setattr(kept_open, "CACHE_BYTES", 3 * tile)
    opened = []
    real = rasterio.open
    monkeypatch.setattr(rasterio, "open",
                        lambda *a, **k: opened.append(str(a[0])) or real(*a, **k))
    reader = WindowReader(str(path), (128, 128, 2), np.float32)
    with kept_open.session():
        for x in range(0, 128, 32):  # four blocks of one row, twice
            reader[:8, x:x + 8]
            reader[8:16, x:x + 8]
    assert opened.count(str(path)) == 2  # three blocks, then anew for the fourth


def test_quiet_gdal_leaves_the_warning_filters_as_it_found_them_across_threads():
    """Threads entering and leaving out of order (as dask's chunk reads do) leave no
    filter behind and drop none; inside, rasterio's NotGeoreferencedWarning is silent,
    in every thread; a filter the user installed stays."""
    import threading
    import time
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    from hsad.io.gdal_checks import quiet_gdal

    def silent() -> bool:
        with warnings.catch_warnings(record=True) as said:
            warnings.warn("no geotransform", NotGeoreferencedWarning, stacklevel=1)
        return not said

    def enter_and_leave(pause: float, seen: list) -> None:
        with quiet_gdal():
            time.sleep(pause)
            seen.append(("ignore", None, NotGeoreferencedWarning, None, 0) in warnings.filters)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        before = list(warnings.filters)
        for _ in range(20):
            seen: list = []
            threads = [threading.Thread(target=enter_and_leave, args=(p, seen))
                       for p in (0.003, 0.0, 0.006, 0.001)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert all(seen) and len(seen) == 4
            assert warnings.filters == before
        with quiet_gdal():
            assert silent()
        assert not silent()
        # a block of the main thread restores, while a thread is inside, a list without
        # the filter: a thread entering after it is silent still
        inside, leave, said = threading.Event(), threading.Event(), []

        def hold() -> None:
            with quiet_gdal():
                inside.set()
                leave.wait(5)

        with warnings.catch_warnings():
            holder = threading.Thread(target=hold)
            holder.start()
            inside.wait(5)
        later = threading.Thread(target=lambda: said.append(_silent_in_quiet_gdal()))
        later.start()
        later.join()
        leave.set()
        holder.join()
        assert said == [True]
        assert warnings.filters == before
        warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
        mine = list(warnings.filters)
        with quiet_gdal():
            pass
        assert warnings.filters == mine


def _silent_in_quiet_gdal() -> bool:
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    from hsad.io.gdal_checks import quiet_gdal

    with quiet_gdal(), warnings.catch_warnings(record=True) as said:
        warnings.warn("no geotransform", NotGeoreferencedWarning, stacklevel=1)
    return not said
