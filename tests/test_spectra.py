"""The spectra of the detections (hsad.outputs.spectra): each region's peak and mean
spectrum and the background's, checked pixel by pixel against the regions as the polygons
number them, and written as CSV and as an ENVI spectral library that SPy reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio.transform
from affine import Affine
from cli_helpers import one_error, run_cli
from pyproj import Transformer
from scipy import ndimage
from test_emit import apply_glt, lookup_tables, write_granule

from hsad import detectors
from hsad.cube import make_cube
from hsad.io import open_cube
from hsad.io.envi_writer import write_envi
from hsad.outputs.polygons import label_regions, regions
from hsad.outputs.spectra import region_spectra, write_spectra

TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_200_000.0)
ROWS, COLS, BANDS = 20, 24, 6


def scene(dtype=np.float32, nodata=None, chunks=None):
    """A georeferenced cube (UTM 33N), its score map and a mask with four regions: a
    single pixel, a 3 x 3 block, a diagonal pair (one 8-connected region) and a corner
    pixel; one pixel without data outside them."""
    rng = np.random.default_rng(3)
    values = (rng.random((ROWS, COLS, BANDS)) * 1000).astype(dtype)
    cube = make_cube(values, transform=TRANSFORM, crs="EPSG:32633", nodata=nodata,
                     wavelength=np.linspace(450, 950, BANDS))
    if chunks:
        cube = cube.chunk({"y": chunks[0], "x": chunks[1]})
    template = detectors.get("rx").fit(cube).score(cube).compute()
    s = rng.random((ROWS, COLS)).astype(np.float32)
    mask = np.zeros((ROWS, COLS), bool)
    mask[2, 3] = True
    mask[5:8, 10:13] = True
    mask[12, 4] = mask[13, 5] = True
    mask[0, 23] = True
    s[mask] += 5
    s[15, 15] = np.nan  # no data there
    return cube, template.copy(data=s), template.copy(data=mask), values


def by_hand(values, scores, mask):
    """Each region's pixels, peak and mean, the polygons' numbering (raster order)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    out = []
    for i in range(1, n + 1):
        rows, cols = np.nonzero(labels == i)
        best = np.argmax(scores[rows, cols])
        out.append({"pixels": rows.size, "row": rows[best], "col": cols[best],
                    "peak": values[rows[best], cols[best]],
                    "mean": np.nanmean(values[rows, cols].astype(np.float64), axis=0)})
    return out


def test_each_region_has_its_peak_and_mean_spectrum_and_the_polygons_id():
    cube, scores, mask, values = scene()
    values = values.astype(np.float64)
    values[6, 11, 2] = np.nan  # one missing value inside the block: left out of that band
    values[18, 20, 1] = np.nan  # and one in the background
    cube = make_cube(values.astype(np.float32), transform=TRANSFORM, crs="EPSG:32633",
                     wavelength=np.linspace(450, 950, BANDS))
    ds = region_spectra(cube, mask, scores)
    expected = by_hand(values, scores.values, mask.values)
    geoms, props = regions(mask, scores=scores)
    assert ds.sizes["region"] == len(expected) == len(geoms) == 4
    np.testing.assert_array_equal(ds["id"].values, props["id"])
    np.testing.assert_array_equal(ds["area_px"].values, props["area_px"])
    np.testing.assert_array_equal(ds["peak_score"].values, props["peak_score"])
    to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    for i, region in enumerate(expected):
        assert ds["pixels"].values[i] == region["pixels"]
        assert (ds["peak_row"].values[i], ds["peak_col"].values[i]) == (region["row"],
                                                                       region["col"])
        np.testing.assert_array_equal(ds["peak_spectrum"].values[i],
                                      region["peak"].astype(np.float32))
        np.testing.assert_allclose(ds["mean_spectrum"].values[i], region["mean"], rtol=1e-6)
        x, y = rasterio.transform.xy(TRANSFORM, region["row"], region["col"])
        assert (ds["peak_x"].values[i], ds["peak_y"].values[i]) == (x, y)
        lon, lat = to_wgs84.transform(x, y)
        assert ds["peak_lon"].values[i] == pytest.approx(lon, abs=1e-9)
        assert ds["peak_lat"].values[i] == pytest.approx(lat, abs=1e-9)
    block = int(np.flatnonzero(ds["area_px"].values == 9)[0])  # the 3 x 3 block
    assert ds["mean_spectrum"].values[block, 2] == pytest.approx(
        np.nanmean(values[5:8, 10:13, 2]), rel=1e-6)
    background = np.isfinite(scores.values) & ~mask.values
    np.testing.assert_allclose(ds["background_mean"].values,
                               np.nanmean(values[background], axis=0), rtol=1e-6)
    np.testing.assert_allclose(ds["background_std"].values,
                               np.nanstd(values[background], axis=0), rtol=1e-5)
    assert ds.attrs["background_pixels"] == background.sum()
    np.testing.assert_array_equal(ds["wavelength"].values, np.linspace(450, 950, BANDS))
    plain = region_spectra(cube, mask.values, scores.values)  # arrays: on the cube's grid
    for name in ("peak_x", "peak_y", "peak_lon", "mean_spectrum", "background_std"):
        np.testing.assert_array_equal(plain[name].values, ds[name].values)


def test_batches_over_small_chunks_give_the_same_spectra():
    cube, scores, mask, _ = scene()
    whole = region_spectra(cube, mask, scores)
    chunked, _, _, _ = scene(chunks=(7, 5))
    assert len(chunked.data.chunks[0]) > 1
    for batch in (1, 3, 1000):
        part = region_spectra(chunked, mask, scores, batch=batch)
        for name in ("peak_spectrum", "mean_spectrum", "background_mean", "background_std",
                     "peak_row", "peak_col", "pixels"):
            np.testing.assert_allclose(part[name].values, whole[name].values, rtol=1e-12)


def test_integer_nodata_values_are_missing_not_numbers():
    cube, scores, mask, values = scene(dtype=np.int16)
    values[5, 10, 1] = -9999  # inside the block
    values[2, 3, 4] = -9999  # the single-pixel region (id 2): its peak
    cube = make_cube(values, transform=TRANSFORM, crs="EPSG:32633", nodata=-9999)
    ds = region_spectra(cube, mask, scores)
    single = ds.sel(region=(ds["peak_row"] == 2) & (ds["peak_col"] == 3))
    assert np.isnan(single["peak_spectrum"].values[0, 4])
    assert np.isnan(single["mean_spectrum"].values[0, 4])
    assert np.isfinite(single["peak_spectrum"].values[0, :4]).all()
    block = values[5:8, 10:13, 1].astype(np.float64).ravel()
    mean = ds["mean_spectrum"].values[ds["area_px"].values == 9][0, 1]
    assert mean == pytest.approx(block[block != -9999].mean(), rel=1e-6)


def test_no_regions_gives_the_background_alone(tmp_path):
    cube, scores, mask, _ = scene()
    ds = region_spectra(cube, mask.copy(data=np.zeros_like(mask.values)), scores)
    assert ds.sizes["region"] == 0 and np.isfinite(ds["background_mean"].values).all()
    table = pd.read_csv(write_spectra(ds, tmp_path / "none.csv"))
    assert list(table["spectrum"]) == ["background_mean", "background_std", "good_band"]
    skipped = region_spectra(cube, mask, scores, background=False)
    assert np.isnan(skipped["background_mean"].values).all()


def test_mismatched_maps_are_refused():
    cube, scores, mask, _ = scene()
    with pytest.raises(Exception, match="shape"):
        region_spectra(cube, mask[:5], scores)


def test_csv_and_envi_library_hold_the_same_spectra(tmp_path):
    import spectral.io.envi as envi

    cube, scores, mask, _ = scene()
    ds = region_spectra(cube, mask, scores)
    table = pd.read_csv(write_spectra(ds, tmp_path / "found.csv"))
    assert list(table.columns[:12]) == ["id", "spectrum", "area_px", "pixels", "peak_score",
                                        "peak_row", "peak_col", "peak_x", "peak_y",
                                        "peak_lon", "peak_lat", "crs"]
    assert list(table.columns[12:]) == [f"{w:.6g}" for w in np.linspace(450, 950, BANDS)]
    assert list(table["spectrum"][:3]) == ["background_mean", "background_std", "good_band"]
    peaks = table[table["spectrum"] == "peak"]
    np.testing.assert_array_equal(peaks["id"], ds["id"].values)
    assert set(peaks["crs"]) == {"EPSG:32633"}
    np.testing.assert_allclose(peaks.iloc[:, 12:].to_numpy(), ds["peak_spectrum"].values,
                               rtol=1e-6)
    np.testing.assert_array_equal(peaks["peak_x"], ds["peak_x"].values)  # exact coordinates
    np.testing.assert_allclose(table[table["spectrum"] == "mean"].iloc[:, 12:].to_numpy(),
                               ds["mean_spectrum"].values, rtol=1e-6)
    np.testing.assert_allclose(table.iloc[0, 12:].to_numpy(float), ds["background_mean"],
                               rtol=1e-6)
    write_spectra(ds, tmp_path / "found.sli")
    library = envi.open(str(tmp_path / "found.hdr"), str(tmp_path / "found.sli"))
    assert library.names[:4] == ["background mean", "background std", "region 1 peak",
                                 "region 1 mean"]
    np.testing.assert_array_equal(library.spectra[2::2], ds["peak_spectrum"].values)
    np.testing.assert_array_equal(library.spectra[3::2], ds["mean_spectrum"].values)
    np.testing.assert_allclose(library.bands.centers, np.linspace(450, 950, BANDS))
    with pytest.raises(Exception, match="unknown spectra format"):
        write_spectra(ds, tmp_path / "found.txt")


def test_an_emit_granule_takes_each_region_s_instrument_pixels_once(tmp_path):
    path = tmp_path / "EMIT_L2A_RFL_001_20240101T000000_2400101_001.nc"
    values = write_granule(path)
    cube = open_cube(path)
    det = detectors.get("rx").fit(cube)
    scores = det.score(cube).compute()
    mask = det.threshold(scores, contamination=0.08)
    ds = region_spectra(cube, mask, scores)
    gx, gy = lookup_tables()
    lab = label_regions(mask)  # on the grid, as the polygons are traced
    assert lab.labels.shape == gx.shape and ds.sizes["region"] == lab.n > 1
    placed = apply_glt(scores.values, gx, gy, np.nan)
    for i in range(lab.n):
        cells = np.nonzero(lab.labels == i + 1)
        pixels = sorted(set(zip(gy[cells] - 1, gx[cells] - 1, strict=True)))
        assert ds["pixels"].values[i] == len(pixels) <= ds["area_px"].values[i]
        rows, cols = np.array(pixels).T
        np.testing.assert_allclose(ds["mean_spectrum"].values[i],
                                   values[rows, cols].astype(np.float64).mean(axis=0),
                                   rtol=1e-6)
        best = np.argmax(placed[cells])
        source = (gy[cells][best] - 1, gx[cells][best] - 1)
        assert (ds["peak_row"].values[i], ds["peak_col"].values[i]) == source
        np.testing.assert_array_equal(ds["peak_spectrum"].values[i], values[source])
        cell = (cells[0][best], cells[1][best])
        assert ds["peak_x"].values[i] == pytest.approx(-120.0 + 0.0005 * (cell[1] + 0.5))
        assert ds["peak_y"].values[i] == pytest.approx(35.0 - 0.0005 * (cell[0] + 0.5))
        assert ds["peak_lon"].values[i] == pytest.approx(ds["peak_x"].values[i])


def test_detect_writes_the_spectra_with_the_polygons_ids(tmp_path, capsys):
    import pyogrio

    cube, *_ = scene()
    write_envi(cube, tmp_path / "scene.img")
    out = tmp_path / "out"
    code, text, err = run_cli(["detect", tmp_path / "scene.img", "-m", "rx", "-o",
                               out / "rx.tif", "--contamination", "0.01", "--polygons",
                               out / "found.gpkg", "--spectra", out / "found.csv"], capsys)
    assert code == 0, err
    assert f"wrote spectra: {out / 'found.csv'}" in text
    table = pd.read_csv(out / "found.csv")
    fields = pyogrio.raw.read(out / "found.gpkg")[3]
    names = pyogrio.read_info(out / "found.gpkg")["fields"].tolist()
    polygon_ids = fields[names.index("id")]
    assert len(polygon_ids) > 0
    np.testing.assert_array_equal(table.loc[table["spectrum"] == "peak", "id"], polygon_ids)
    np.testing.assert_array_equal(table.loc[table["spectrum"] == "peak", "area_px"],
                                  fields[names.index("area_px")])
    code, _, err = run_cli(["detect", tmp_path / "scene.img", "-m", "rx", "-o",
                            out / "rx2.tif", "--spectra", out / "found.sli"], capsys)
    assert code == 0, err
    assert (out / "found.hdr").is_file() and (out / "found.sli").is_file()
    line = one_error(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out / "rx3.tif",
                      "--spectra", out / "found.txt"], capsys)
    assert "found.txt" in line and ".sli" in line
    line = one_error(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out / "rx3.tif",
                      "--spectra", out / "found.csv"], capsys)
    assert "found.csv" in line and "exists" in line
    assert not (out / "rx3.tif").exists()
    # the library's header may not be the scene's own
    line = one_error(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out / "rx3.tif",
                      "--spectra", tmp_path / "scene.sli", "--overwrite"], capsys)
    assert "scene.hdr" in line


def test_a_scene_placed_by_gcps_gets_its_peaks_on_the_ground(tmp_path):
    from test_sensor_georef import GRID, _scene

    cube = open_cube(_scene(tmp_path / "gcps.tif", rpcs=False))
    assert cube.rio.crs is None  # placed by its GCPs alone
    det = detectors.get("rx").fit(cube)
    scores = det.score(cube).compute()
    ds = region_spectra(cube, det.threshold(scores, contamination=10 / scores.size), scores)
    assert ds.sizes["region"] >= 2
    rows, cols = ds["peak_row"].values, ds["peak_col"].values
    x, y = GRID @ (cols + 0.5, rows + 0.5)
    np.testing.assert_allclose(ds["peak_x"].values, x, atol=1e-6)
    np.testing.assert_allclose(ds["peak_y"].values, y, atol=1e-6)
    assert "UTM zone 33N" in ds.attrs["crs"] and np.isfinite(ds["peak_lon"].values).all()


def test_spectra_are_in_the_file_s_units_and_band_names_never_take_a_field_s_name(tmp_path):
    cube, scores, mask, values = scene(dtype=np.int16)
    scaled = cube.assign_coords(band_scale=("band", np.full(BANDS, 1e-4)),
                                band_offset=("band", np.full(BANDS, 0.01)))
    ds = region_spectra(scaled, mask, scores)
    raw = region_spectra(cube, mask, scores)
    np.testing.assert_allclose(ds["peak_spectrum"].values,
                               raw["peak_spectrum"].values * 1e-4 + 0.01, rtol=1e-6)
    np.testing.assert_allclose(ds["background_std"].values,
                               raw["background_std"].values * 1e-4, rtol=1e-6)
    envi = cube.copy()
    envi.attrs.update(reflectance_scale_factor=10000.0, scale_applied=False)
    np.testing.assert_allclose(region_spectra(envi, mask, scores)["mean_spectrum"].values,
                               raw["mean_spectrum"].values / 1e4, rtol=1e-6)
    # both a gain and offset and a reflectance scale factor: (DN * gain + offset) / factor,
    # whether the reader divided the values by the factor or not
    both = scaled.copy()
    both.attrs.update(reflectance_scale_factor=10000.0, scale_applied=False)
    applied = (scaled.astype(np.float32) / np.float32(1e4)).copy()
    applied.attrs.update(reflectance_scale_factor=10000.0, scale_applied=True)
    expected = (raw["mean_spectrum"].values * 1e-4 + 0.01) / 1e4
    for variant in (both, applied):
        np.testing.assert_allclose(region_spectra(variant, mask, scores)[
            "mean_spectrum"].values, expected, rtol=1e-5)
    named = make_cube(values, transform=TRANSFORM, crs="EPSG:32633",
                      band_names=["id", "b", "c", "d", "e", "f"])
    table = pd.read_csv(write_spectra(region_spectra(named, mask, scores), tmp_path / "n.csv"))
    assert list(table.columns[12:]) == [f"band_{i + 1}" for i in range(BANDS)]


def test_band_columns_are_named_by_the_file_s_band_numbers(tmp_path):
    """`--bands 2:5` of a scene without wavelengths or band names: the columns were
    band_1 … band_3 though they hold the file's bands 3 … 5 (and `--rgb-bands` in the same
    run counts by file position); they are named by the file's band numbers."""
    _, scores, mask, values = scene()
    subset = make_cube(values, transform=TRANSFORM, crs="EPSG:32633").isel(band=slice(2, 5))
    table = pd.read_csv(write_spectra(region_spectra(subset, mask, scores),
                                      tmp_path / "s.csv"))
    assert list(table.columns[12:]) == ["band_3", "band_4", "band_5"]


def test_a_library_never_replaces_a_cube_s_header(tmp_path):
    cube, scores, mask, _ = scene()
    write_envi(cube, tmp_path / "scene.img")
    before = (tmp_path / "scene.hdr").read_text()
    ds = region_spectra(open_cube(tmp_path / "scene.img"), mask.values, scores.values)
    with pytest.raises(Exception, match="scene.hdr"):
        write_spectra(ds, tmp_path / "scene.sli")
    assert (tmp_path / "scene.hdr").read_text() == before
    assert not (tmp_path / "scene.sli").exists()


def test_a_converted_scene_keeps_the_spectra_s_units(tmp_path, capsys):
    """(DN · gain + offset) / reflectance scale factor, read as stored or with the factor
    applied, and after `hsad convert` to GeoTIFF or a write of the applied cube."""
    cube, scores, mask, _ = scene(dtype=np.int16)
    cube = cube.assign_coords(band_scale=("band", np.full(BANDS, 0.5)),
                              band_offset=("band", np.full(BANDS, 100.0)))
    cube.attrs.update(reflectance_scale_factor=10000.0)
    write_envi(cube, tmp_path / "scene.img")
    expected = region_spectra(cube, mask.values, scores.values)["mean_spectrum"].values
    raw = region_spectra(cube.drop_vars(["band_scale", "band_offset"]).assign_attrs(
        reflectance_scale_factor=None), mask.values, scores.values)["mean_spectrum"].values
    np.testing.assert_allclose(expected, (raw * 0.5 + 100) / 1e4, rtol=1e-6)
    code, _, err = run_cli(["convert", tmp_path / "scene.img", tmp_path / "scene.tif"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["convert", tmp_path / "scene.img", tmp_path / "scene.mat"], capsys)
    assert code == 0 and "reflectance scale factor" in err  # MAT keeps none: said
    write_envi(open_cube(tmp_path / "scene.img", apply_scale=True), tmp_path / "applied.img")
    for path, kwargs in ((tmp_path / "scene.img", {}), (tmp_path / "scene.img",
                                                        {"apply_scale": True}),
                         (tmp_path / "scene.tif", {}), (tmp_path / "applied.img", {})):
        got = region_spectra(open_cube(path, **kwargs), mask.values, scores.values)
        np.testing.assert_allclose(got["mean_spectrum"].values, expected, rtol=1e-5,
                                   err_msg=f"{path.name} {kwargs}")


def test_many_detections_written_in_pieces_the_same(tmp_path, monkeypatch):
    """A table of many detections is gathered, scaled and written in pieces (it held
    several float64 copies of itself, 1.8 GB for 160,000 regions of 100 bands): the means
    where a value goes missing only in a later batch, and the files, are those of one
    piece."""
    from hsad.outputs import spectra

    cube, scores, mask, values = scene()
    values = values.copy()
    values[6, 11, 2] = np.nan  # in the 3 x 3 block, read in a late batch
    cube = cube.copy(data=values)
    whole = region_spectra(cube, mask, scores, batch=10_000)
    pieces = region_spectra(cube, mask, scores, batch=1)
    for name in ("peak_spectrum", "mean_spectrum"):
        np.testing.assert_allclose(pieces[name].values, whole[name].values, rtol=1e-6)
    for region, expected in enumerate(by_hand(values, scores.values, mask.values)):
        np.testing.assert_allclose(whole["mean_spectrum"].values[region], expected["mean"],
                                   rtol=1e-6)
    written = {}
    for block in (10_000, 1):
        monkeypatch.setattr(spectra, "WRITE_BLOCK", block)
        for suffix in ("csv", "sli"):
            path = write_spectra(whole, tmp_path / f"b{block}.{suffix}")
            written.setdefault(suffix, []).append(path.read_bytes())
    assert written["csv"][0] == written["csv"][1]
    assert written["sli"][0] == written["sli"][1]
    assert written["csv"][0].count(b"\n") == 4 + 2 * whole.sizes["region"]
