"""Spatial subsets (``--srcwin``, ``--projwin``, ``--projwin-srs``; :mod:`hsad.cube.subset`): cut
as gdal_translate cuts them, with GDAL's window transform, reading only the window, and
with the rasters made for the whole scene (valid mask, truth, background) cut the same way."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import rasterio.windows
import xarray as xr
from affine import Affine
from cli_helpers import one_error, run_cli
from rasterio.warp import transform as warp_transform

from hsad import detectors
from hsad.cube import make_cube, transform_of
from hsad.cube.subset import projwin_window, spatial_subset, srcwin_window
from hsad.errors import ParameterError
from hsad.io import open_cube
from hsad.io.envi_writer import write_envi
from hsad.io.geotiff_writer import write_geotiff, write_mask
from hsad.io.mat_writer import write_mat

GRID = Affine(30, 0, 500_000, 0, -30, 5_100_000)
ROTATED = Affine.translation(500_000, 5_100_000) @ Affine.rotation(12.0) @ Affine.scale(30, -30)


def _values(rows=48, cols=40, bands=12, seed=5):
    rng = np.random.default_rng(seed)
    values = rng.normal(100.0, 5.0, (rows, cols, bands)).astype(np.float32)
    values[30, 25] += 80.0  # one anomaly inside the windows below
    truth = np.zeros((rows, cols), dtype=np.uint8)
    truth[30, 25] = 1
    return values, truth


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 48 × 40 × 12 ENVI scene on a 30 m UTM grid, and its truth GeoTIFF."""
    values, truth = _values()
    folder = tmp_path_factory.mktemp("subset")
    path = write_envi(make_cube(values, transform=GRID, crs="EPSG:32633"),
                      folder / "scene.img", interleave="bil")
    truth_path = write_geotiff(make_cube(truth[:, :, None].astype(np.float32), transform=GRID,
                                         crs="EPSG:32633").isel(band=0), folder / "truth.tif")
    return path, truth_path, values, truth


def _scores(path):
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs, src.tags()


def _rx(values):
    return detectors.get("rx").fit_score(make_cube(values)).values


def test_srcwin_scores_the_window_alone_on_gdals_window_transform(scene, tmp_path, capsys):
    path, _, values, _ = scene
    code, out, _ = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "s.tif",
                            "--srcwin", 10, 20, 25, 18], capsys)
    assert code == 0 and "rows 20:38, columns 10:35 of 48x40" in out
    scores, transform, crs, tags = _scores(tmp_path / "s.tif")
    # the statistics are the window's own: RX of the cropped array, not of the scene
    np.testing.assert_allclose(scores, _rx(values[20:38, 10:35]), rtol=1e-5)
    assert not np.allclose(scores, _rx(values)[20:38, 10:35], rtol=1e-3)
    assert transform == rasterio.windows.transform(rasterio.windows.Window(10, 20, 25, 18), GRID)
    assert crs == "EPSG:32633" and tags["hsad_window"] == "10 20 25 18"
    assert tags["hsad_window_of"] == "40 48"
    code, out, _ = run_cli(["info", tmp_path / "s.tif"], capsys)
    assert "window:     10 20 25 18" in out


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_a_detection_reads_only_the_window(tmp_path, capsys, monkeypatch, interleave):
    """Tiles, the statistics and the scene-level sample read the window's pixels only: RX
    reads each at most four times here (moments, scores, and two samples that take a small
    window whole). (Slicing the whole file's dask array instead
    made every sample read the window's whole tile: 130x a 256² window of a 2048² file.)"""
    from hsad.io import envi

    rng = np.random.default_rng(0)
    values = rng.normal(100.0, 5.0, (192, 160, 6)).astype(np.float32)
    path = write_envi(make_cube(values, transform=GRID, crs="EPSG:32633"),
                      tmp_path / "big.img", interleave=interleave)
    read = []
    original = envi.EnviPixels.read_window

    def counting(self, *args):
        out = original(self, *args)
        read.append(out.size // out.shape[-1])
        return out

    monkeypatch.setattr(envi.EnviPixels, "read_window", counting)
    for srcwin, tiles in (((70, 60, 40, 32), []), ((10, 0, 120, 192), ["--chunks", 32])):
        read.clear()
        code, _, _ = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "s.tif",
                              "--overwrite", "--srcwin", *srcwin, *tiles], capsys)
        window = srcwin[2] * srcwin[3]
        assert code == 0 and window <= sum(read) <= 4 * window, (srcwin, sum(read))


def test_open_cube_opens_a_window(scene):
    cube = open_cube(scene[0], srcwin=(10, 20, 25, 18), chunks={"y": 7, "x": 9})
    np.testing.assert_array_equal(cube.values, scene[2][20:38, 10:35])
    assert transform_of(cube) == GRID @ Affine.translation(10, 20)
    assert cube.attrs["hsad_window"] == (20, 10, 48, 40) and cube.data.chunks[0][0] == 7
    from hsad.engine import open_tiled

    tiled = open_tiled(scene[0], chunks={"y": 16, "x": 16}, subset={"srcwin": (5, 20, 30, 20)})
    np.testing.assert_array_equal(tiled.values, scene[2][20:40, 5:35])


def test_projwin_rounds_as_gdal_translate(scene):
    cube = open_cube(scene[0])

    def window(ulx, uly, lrx, lry):
        w = projwin_window(cube, (ulx, uly, lrx, lry))
        return w.col_off, w.row_off, w.width, w.height

    x, y = 500_000 + 10 * 30, 5_100_000 - 20 * 30
    assert window(x, y, x + 25 * 30, y - 18 * 30) == (10, 20, 25, 18)
    # offsets: floor(v + 0.001); sizes: floor(v + 0.5) (gdal_translate_lib.cpp)
    assert window(x - 0.02, y, x + 25 * 30, y - 18 * 30)[0] == 10  # 9.99933 → 10
    assert window(x - 0.04, y, x + 25 * 30, y - 18 * 30)[0] == 9  # 9.99867 → 9
    assert window(x + 29, y, x + 25 * 30, y - 18 * 30)[0] == 10
    assert window(x, y, x + 24.5 * 30, y - 18 * 30)[2] == 25  # 24.5 → 25
    assert window(x, y, x + 24.49 * 30, y - 18 * 30)[2] == 24
    assert window(x, y + 0.02, x + 25 * 30, y - 18 * 30)[1] == 20


def test_projwin_in_another_crs_transforms_its_two_corners(scene, tmp_path, capsys):
    path = scene[0]
    ul = (500_000 + 10 * 30, 5_100_000 - 20 * 30)
    lr = (500_000 + 35 * 30, 5_100_000 - 38 * 30)
    (lon0, lon1), (lat0, lat1) = warp_transform("EPSG:32633", "EPSG:4326", [ul[0], lr[0]],
                                                [ul[1], lr[1]])
    cube = open_cube(path)
    w = projwin_window(cube, (lon0, lat0, lon1, lat1), "EPSG:4326")
    (x0, x1), (y0, y1) = warp_transform("EPSG:4326", "EPSG:32633", [lon0, lon1], [lat0, lat1])
    assert (w.col_off, w.row_off) == (math.floor((x0 - 500_000) / 30 + 0.001),
                                      math.floor((y0 - 5_100_000) / -30 + 0.001))
    assert (w.width, w.height) == (25, 18)
    code, _, _ = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "p.tif", "--projwin",
                          lon0, lat0, lon1, lat1, "--projwin-srs", "EPSG:4326"], capsys)
    assert code == 0 and _scores(tmp_path / "p.tif")[0].shape == (18, 25)


def test_a_window_beyond_the_scene_is_cut_with_a_warning(scene, tmp_path, capsys):
    path, _, values, _ = scene
    with pytest.warns(UserWarning, match=r"reaches beyond the 40 x 48 pixel scene: cut to "
                                         r"-srcwin 30 40 10 8"):
        window = srcwin_window((30, 40, 50, 50), (48, 40))
    assert (window.col_off, window.row_off, window.width, window.height) == (30, 40, 10, 8)
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "c.tif",
                            "--srcwin", -5, -5, 20, 20], capsys)
    assert code == 0 and "cut to -srcwin 0 0 15 15" in err
    scores, transform, _, _ = _scores(tmp_path / "c.tif")
    assert scores.shape == (15, 15) and transform == GRID


@pytest.mark.parametrize("args, expected", [
    (["--srcwin", 100, 0, 5, 5], "--srcwin 100 0 5 5 lies outside the 40 x 48 pixel scene"),
    (["--srcwin", 0, 0, 0, 5], "the width and height must be positive"),
    (["--srcwin", 1, 1, 5, 5, "--projwin", 0, 1, 1, 0], "exclude each other"),
    (["--projwin-srs", "EPSG:4326"], "--projwin-srs applies to --projwin only"),
    (["--projwin", 500_300, 5_099_400, 500_900, 5_098_900, "--projwin-srs", "EPSG:99999"],
     "is not a CRS"),
    (["--projwin", 500_900, 5_099_400, 500_300, 5_098_900], "has no width or height"),
    (["--projwin", 0, 1000, 1000, 0], "lies outside the 40 x 48 pixel scene"),
    (["--srcwin", 1.5, 0, 5, 5], "Invalid value for '--srcwin'"),
], ids=["outside", "empty", "both", "srs alone", "bad crs", "corners swapped", "projwin outside",
        "fraction"])
def test_bad_windows_are_one_line_errors(scene, tmp_path, capsys, args, expected):
    line = one_error(["detect", scene[0], "-m", "rx", "-o", tmp_path / "e.tif", *args], capsys)
    assert expected in line
    assert not (tmp_path / "e.tif").exists()


@pytest.mark.parametrize("command", ["detect", "convert"])
def test_an_unknown_projwin_srs_is_one_line_even_at_the_file_descriptor(scene, tmp_path, capfd,
                                                                       command):
    """GDAL printed its own "ERROR 1: PROJ: … crs not found" line before hsad's."""
    out = ["-m", "rx", "-o", tmp_path / "e.tif"] if command == "detect" else [tmp_path / "e.img"]
    line = one_error([command, scene[0], *out, "--projwin", 500_300, 5_099_400, 500_900,
                      5_098_900, "--projwin-srs", "EPSG:99999"], capfd)
    assert "is not a CRS" in line


def test_corners_proj_cannot_transform_and_overflowing_windows_are_one_line_errors(
        scene, tmp_path, capsys):
    assert "do not transform from EPSG:4326" in one_error(
        ["detect", scene[0], "-m", "rx", "-o", tmp_path / "e.tif", "--projwin", 15, 95, 15.01,
         94, "--projwin-srs", "EPSG:4326"], capsys)
    assert "beyond any pixel of the scene's grid" in one_error(
        ["detect", scene[0], "-m", "rx", "-o", tmp_path / "e.tif", "--projwin", -1e308, 1e308,
         1e308, -1e308], capsys)


def test_a_window_of_a_scene_without_georeference_has_none(tmp_path, capsys):
    """As gdal_translate -srcwin writes no geotransform for such a file: the window's maps
    lie where QGIS draws a raster without one (they had a made-up south-up transform)."""
    values, truth = _values()
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat, gt=truth)
    run_cli(["detect", mat, "-m", "rx", "-o", tmp_path / "m.tif", "--srcwin", 20, 25, 10, 10],
            capsys)
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.crs is None and src.transform.is_identity
    run_cli(["convert", mat, tmp_path / "cut.img", "--srcwin", 20, 25, 10, 10], capsys)
    assert "map info" not in (tmp_path / "cut.hdr").read_text()
    cut = spatial_subset(make_cube(values), srcwin=(20, 25, 10, 10))
    assert transform_of(cut).is_identity and cut.attrs["hsad_window"] == (25, 20, 48, 40)
    # an ENVI file without map info, opened by its window
    plain = write_envi(make_cube(values), tmp_path / "plain.img")
    assert "map info" not in plain.with_suffix(".hdr").read_text()
    cube = open_cube(plain, srcwin=(20, 25, 10, 10))
    assert transform_of(cube).is_identity
    np.testing.assert_array_equal(cube.values, values[25:35, 20:30])


def test_background_polygons_over_a_whole_unreferenced_scene_fit_its_window(tmp_path, capsys):
    """Polygons drawn in QGIS over a MAT scene (x = column, y = -row of the whole scene)
    keep their pixels when only a window is analysed."""
    import pyogrio.raw
    import shapely
    from shapely.geometry import box

    values, _ = _values()
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat)
    area = tmp_path / "area.gpkg"  # rows 25:35, columns 20:30 of the whole scene, no CRS
    pyogrio.raw.write(area, np.array([shapely.to_wkb(box(20, -35, 30, -25))], dtype=object),
                      [], [], geometry_type="Polygon", crs=None, driver="GPKG")
    from hsad.cube.background import background_mask

    cube = spatial_subset(open_cube(mat), srcwin=(15, 20, 20, 20))
    mask = background_mask(cube, area)
    expected = np.zeros((20, 20), bool)
    expected[5:15, 5:15] = True
    np.testing.assert_array_equal(mask, expected)


def test_projwin_needs_a_north_up_georeferenced_scene(tmp_path, capsys):
    values, _ = _values()
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat)
    assert "needs a georeferenced scene" in one_error(
        ["detect", mat, "-m", "rx", "-o", tmp_path / "m.tif", "--projwin", 0, 0, 10, -10], capsys)
    rotated = write_envi(make_cube(values, transform=ROTATED, crs="EPSG:32633"),
                         tmp_path / "rotated.img")
    assert "rotated or sheared grid is not supported" in one_error(
        ["detect", rotated, "-m", "rx", "-o", tmp_path / "r.tif", "--projwin", 500_000,
         5_100_000, 500_300, 5_099_700], capsys)


def test_srcwin_on_a_rotated_grid_keeps_gdals_window_transform(tmp_path, capsys):
    values, _ = _values()
    rotated = write_envi(make_cube(values, transform=ROTATED, crs="EPSG:32633"),
                         tmp_path / "rotated.img")
    code, _, _ = run_cli(["detect", rotated, "-m", "rx", "-o", tmp_path / "r.tif",
                          "--srcwin", 7, 9, 20, 15], capsys)
    assert code == 0
    transform = _scores(tmp_path / "r.tif")[1]
    expected = rasterio.windows.transform(rasterio.windows.Window(7, 9, 20, 15), ROTATED)
    assert transform.almost_equals(expected, precision=1e-6)


def test_rasters_of_the_whole_scene_are_cut_to_the_window(scene, tmp_path, capsys):
    path, truth_path, values, truth = scene
    valid = np.ones(truth.shape, dtype=np.float32)
    valid[25:28, :] = 0  # three rows left out, inside the window
    valid_path = write_geotiff(make_cube(valid[:, :, None], transform=GRID,
                                         crs="EPSG:32633").isel(band=0), tmp_path / "valid.tif")
    code, out, _ = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "v.tif",
                            "--srcwin", 10, 20, 25, 18, "--valid-mask", valid_path,
                            "--truth", truth_path], capsys)
    assert code == 0 and "AUC(D,F) = 1.0000" in out
    scores = _scores(tmp_path / "v.tif")[0]
    assert np.isnan(scores[5:8]).all() and np.isfinite(np.delete(scores, [5, 6, 7], 0)).all()
    kept = values[20:38, 10:35].copy()
    kept[5:8] = np.nan
    np.testing.assert_allclose(scores, _rx(kept), rtol=1e-5)
    # a MAT truth of the whole scene (no georeference): cut by the window's offsets
    mat = tmp_path / "truth.mat"
    write_mat(make_cube(values), mat, gt=truth)
    code, out, _ = run_cli(["detect", mat, "-m", "rx", "-o", tmp_path / "m.tif", "--srcwin",
                            10, 20, 25, 18, "--truth", mat], capsys)
    assert code == 0 and "AUC(D,F) = 1.0000" in out


def test_a_raster_off_the_scenes_grid_is_still_refused(scene, tmp_path, capsys):
    path, _, _, truth = scene
    shifted = GRID @ Affine.translation(0.5, 0)  # half a pixel east
    off = write_geotiff(make_cube(truth[:, :, None].astype(np.float32), transform=shifted,
                                  crs="EPSG:32633").isel(band=0), tmp_path / "off.tif")
    assert "valid mask is not on the scene's grid" in one_error(
        ["detect", path, "-m", "rx", "-o", tmp_path / "o.tif", "--srcwin", 10, 20, 25, 18,
         "--valid-mask", off], capsys)


def test_evaluate_cuts_a_larger_truth_to_the_map(scene, tmp_path, capsys):
    path, truth_path, values, truth = scene
    run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "s.tif", "--srcwin", 10, 20, 25, 18],
            capsys)
    code, out, _ = run_cli(["evaluate", tmp_path / "s.tif", "--truth", truth_path], capsys)
    assert code == 0 and "11+" not in out and "1+449" in out  # 25 × 18 = 450 pixels
    # a map cut by another tool (the window converted first): placed by its grid alone
    run_cli(["convert", path, tmp_path / "cut.tif", "--srcwin", 10, 20, 25, 18], capsys)
    run_cli(["detect", tmp_path / "cut.tif", "-m", "rx", "-o", tmp_path / "c.tif"], capsys)
    code, out, _ = run_cli(["evaluate", tmp_path / "c.tif", "--truth", truth_path], capsys)
    assert code == 0 and "1+449" in out
    # a MAT truth: placed by the map's hsad_window tag
    mat = tmp_path / "truth.mat"
    write_mat(make_cube(values), mat, gt=truth)
    code, out, _ = run_cli(["evaluate", tmp_path / "s.tif", "--truth", mat], capsys)
    assert code == 0 and "1+449" in out
    # ... of the scene's size only: a truth of another scene is refused, not cut
    other = tmp_path / "other.mat"
    write_mat(make_cube(np.zeros((60, 50, 2), np.float32)), other,
              gt=np.pad(truth, ((0, 12), (0, 10))))
    assert "ground truth is 60x50 but the score map" in one_error(
        ["evaluate", tmp_path / "s.tif", "--truth", other], capsys)


def test_convert_cuts_the_cube_and_a_mat_truth(scene, tmp_path, capsys):
    path, _, values, truth = scene
    for name in ("cut.img", "cut.tif"):
        code, _, _ = run_cli(["convert", path, tmp_path / name, "--srcwin", 10, 20, 25, 18],
                             capsys)
        assert code == 0
        cut = open_cube(tmp_path / name)
        np.testing.assert_array_equal(cut.values, values[20:38, 10:35])
        assert transform_of(cut) == GRID @ Affine.translation(10, 20)
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat, gt=truth)
    run_cli(["convert", mat, tmp_path / "cut.mat", "--srcwin", 20, 25, 10, 10], capsys)
    from hsad.io.matlab import load_mat

    cube, gt = load_mat(tmp_path / "cut.mat")
    np.testing.assert_array_equal(cube.values, values[25:35, 20:30])
    np.testing.assert_array_equal(gt, truth[25:35, 20:30])


def test_a_window_converted_to_geotiff_keeps_its_place_in_the_scene(scene, tmp_path, capsys):
    """A window of a scene without georeference (a MAT file) written as GeoTIFF by
    `convert --srcwin` carries its place as the maps of `detect --srcwin` do: detecting on
    it places the whole scene's truth, its map is evaluated against it, and a window of it
    is a window of the scene; the same figures as detecting the window directly."""
    _, _, values, truth = scene
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat, gt=truth)
    run_cli(["convert", mat, tmp_path / "cut.tif", "--srcwin", 10, 20, 25, 18], capsys)
    assert open_cube(tmp_path / "cut.tif").attrs["hsad_window"] == (20, 10, 48, 40)
    code, cut_out, err = run_cli(["detect", tmp_path / "cut.tif", "-m", "rx", "-o",
                                  tmp_path / "c.tif", "--truth", mat], capsys)
    assert code == 0, err
    code, direct_out, err = run_cli(["detect", mat, "-m", "rx", "-o", tmp_path / "d.tif",
                                     "--srcwin", 10, 20, 25, 18, "--truth", mat], capsys)
    assert code == 0, err
    auc = [line for line in direct_out.splitlines() if line.startswith("AUC")]
    assert auc and auc == [line for line in cut_out.splitlines() if line.startswith("AUC")]
    np.testing.assert_array_equal(_scores(tmp_path / "c.tif")[0], _scores(tmp_path / "d.tif")[0])
    assert _scores(tmp_path / "c.tif")[3]["hsad_window"] == "10 20 25 18"
    code, out, _ = run_cli(["evaluate", tmp_path / "c.tif", "--truth", mat], capsys)
    assert code == 0 and "1+449" in out
    run_cli(["convert", tmp_path / "cut.tif", tmp_path / "inner.tif", "--srcwin", 5, 6, 8, 9],
            capsys)
    assert open_cube(tmp_path / "inner.tif").attrs["hsad_window"] == (26, 15, 48, 40)
    assert open_cube(tmp_path / "cut.tif", srcwin=(5, 6, 8, 9)).attrs["hsad_window"] == (
        26, 15, 48, 40)


def test_polygons_for_a_converted_window_are_in_its_own_frame(scene, tmp_path, capsys):
    """QGIS draws a converted window (no georeference) from its own origin, and `detect`
    writes its polygons there: polygons given back for it, or for its maps, are read in that
    frame; those for a window cut in the run (`--srcwin`) in the whole scene's."""
    _, _, values, truth = scene
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat, gt=truth)
    run_cli(["convert", mat, tmp_path / "w.tif", "--srcwin", 10, 20, 25, 18], capsys)
    code, _, err = run_cli(["detect", tmp_path / "w.tif", "-m", "rx", "-o", tmp_path / "c.tif",
                            "--mask", tmp_path / "m.tif", "--polygons", tmp_path / "p.gpkg",
                            "--contamination", "0.02"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "m.tif") as src:
        flagged = int((src.read(1) == 1).sum())
    code, out, err = run_cli(["detect", tmp_path / "w.tif", "-m", "rx", "-o",
                              tmp_path / "d.tif", "--truth", tmp_path / "p.gpkg"], capsys)
    assert code == 0 and "AUC(D,F) = 1.0000" in out, out + err  # its own detections
    code, out, _ = run_cli(["evaluate", tmp_path / "c.tif", "--truth", tmp_path / "p.gpkg"],
                           capsys)
    assert code == 0 and f"{flagged}+{18 * 25 - flagged}" in out
    # a window of the converted window: still the converted window's frame
    code, out, err = run_cli(["detect", tmp_path / "w.tif", "-m", "rx", "-o",
                              tmp_path / "e.tif", "--srcwin", 2, 3, 20, 12, "--truth",
                              tmp_path / "m.tif"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "m.tif") as src:
        inner = int((src.read(1)[3:15, 2:22] == 1).sum())
    code, out, _ = run_cli(["evaluate", tmp_path / "e.tif", "--truth", tmp_path / "p.gpkg"],
                           capsys)
    assert code == 0 and f"{inner}+{240 - inner}" in out


def test_polygons_of_a_window_say_when_they_cannot_be_given_back(scene, tmp_path, capsys):
    """A window cut by `--srcwin` from a scene without georeference writes its polygons in
    its own frame, and polygons for it are read in the frame of the file it was cut from: a
    warning says so (none for a window at the origin); a raster on the grid of the
    converted file a window was cut from is taken by `evaluate` as by `detect`."""
    _, _, values, truth = scene
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat, gt=truth)
    code, _, err = run_cli(["detect", mat, "-m", "rx", "-o", tmp_path / "a.tif", "--srcwin",
                            10, 20, 25, 18, "--polygons", tmp_path / "a.gpkg"], capsys)
    assert code == 0 and "20 rows and 10 columns away: give the mask back instead" in err
    code, _, err = run_cli(["detect", mat, "-m", "rx", "-o", tmp_path / "b.tif", "--srcwin",
                            0, 0, 25, 18, "--polygons", tmp_path / "b.gpkg"], capsys)
    assert code == 0 and "give the mask back" not in err
    run_cli(["convert", mat, tmp_path / "w.tif", "--srcwin", 10, 20, 25, 18], capsys)
    run_cli(["detect", tmp_path / "w.tif", "-m", "rx", "-o", tmp_path / "wm.tif", "--mask",
             tmp_path / "wmask.tif", "--contamination", "0.05"], capsys)
    code, _, err = run_cli(["detect", tmp_path / "w.tif", "-m", "rx", "-o", tmp_path / "c.tif",
                            "--srcwin", 2, 3, 20, 12, "--polygons", tmp_path / "c.gpkg"],
                           capsys)
    assert code == 0 and "frame of the file the window was cut from, 3 rows and 2" in err
    with rasterio.open(tmp_path / "wmask.tif") as src:
        inner = int((src.read(1)[3:15, 2:22] == 1).sum())
    code, out, err = run_cli(["evaluate", tmp_path / "c.tif", "--truth",
                              tmp_path / "wmask.tif"], capsys)
    assert code == 0 and f"{inner}+{240 - inner}" in out, err
    # several maps: an error about the truth names the map it concerns
    import pyogrio.raw
    import shapely
    from shapely.geometry import box

    far = tmp_path / "far.gpkg"  # whole-scene frame: rows 2-4, columns 2-4 (outside a.tif)
    pyogrio.raw.write(far, np.array([shapely.to_wkb(box(2, -4, 4, -2))], dtype=object), [],
                      [], geometry_type="Polygon", driver="GPKG")
    code, _, err = run_cli(["evaluate", tmp_path / "b.tif", tmp_path / "a.tif", "--truth",
                            far], capsys)
    assert code == 2 and f"(score map {tmp_path / 'a.tif'})" in err, err
    # a georeferenced window: placed by its grid, no frame written
    path = scene[0]
    run_cli(["convert", path, tmp_path / "g.tif", "--srcwin", 10, 20, 25, 18], capsys)
    with rasterio.open(tmp_path / "g.tif") as src:
        assert "hsad_window" in src.tags() and "hsad_frame" not in src.tags()


def test_malformed_window_tags_are_not_used(scene, tmp_path, capsys):
    """Window tags in other digits, or a frame that does not hold the window, are not used
    (no traceback): the file is read as a scene of its own."""
    _, _, values, truth = scene
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat, gt=truth)
    run_cli(["convert", mat, tmp_path / "w.tif", "--srcwin", 10, 20, 25, 18], capsys)
    for name, frame in (("sup.tif", "\u00b2 0 25 18"), ("small.tif", "0 0 10 10")):
        with rasterio.open(tmp_path / "w.tif") as src:
            profile, tags, data = src.profile, src.tags(), src.read()
        with rasterio.open(tmp_path / name, "w", **profile) as dst:
            dst.write(data)
            dst.update_tags(**{**tags, "hsad_frame": frame})
        assert "hsad_window" not in open_cube(tmp_path / name).attrs
        code, out, _ = run_cli(["info", tmp_path / name], capsys)
        assert code == 0 and "the window tags are not used" in out
        code, _, err = run_cli(["detect", tmp_path / name, "-m", "rx", "-o",
                                tmp_path / f"o_{name}", "--truth", mat], capsys)
        assert code == 2 and "not the scene's grid" in err and "Traceback" not in err
    run_cli(["detect", tmp_path / "w.tif", "-m", "rx", "-o", tmp_path / "m.tif"], capsys)
    assert run_cli(["evaluate", tmp_path / "m.tif", "--truth", mat], capsys)[0] == 0
    with rasterio.open(tmp_path / "m.tif") as src:  # its map, the frame made stale
        profile, tags, data = src.profile, src.tags(), src.read()
    with rasterio.open(tmp_path / "ms.tif", "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**{**tags, "hsad_frame": "0 0 10 10"})
    code, _, err = run_cli(["evaluate", tmp_path / "ms.tif", "--truth", mat], capsys)
    assert code == 2 and "ground truth is 48x40" in err  # not placed by its tags


def test_window_tags_that_do_not_describe_the_file_are_not_used(scene, tmp_path, capsys):
    """Tags copied by another tool onto a file of another window are not trusted: a
    georeferenced file is placed by its grid alone, and a file of another size is not a
    window of the scene (`info` says the tags are stale)."""
    path, truth_path, values, truth = scene
    run_cli(["convert", path, tmp_path / "w.tif", "--srcwin", 10, 20, 25, 18], capsys)
    with rasterio.open(tmp_path / "w.tif") as src:  # shifted as a padded gdal_translate
        profile, tags = src.profile, src.tags()
        data = src.read(window=rasterio.windows.Window(-5, -3, 25, 18), boundless=True)
        profile["transform"] = src.transform * Affine.translation(-5, -3)
    with rasterio.open(tmp_path / "p.tif", "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    assert "hsad_window" not in open_cube(tmp_path / "p.tif").attrs
    code, out, err = run_cli(["detect", tmp_path / "p.tif", "-m", "rx", "-o",
                              tmp_path / "s.tif", "--truth", truth_path], capsys)
    assert code == 0, err  # the truth cut by the grids: rows 17:35, columns 5:30
    assert "1+449" in run_cli(["evaluate", tmp_path / "s.tif", "--truth", truth_path],
                              capsys)[1]
    with rasterio.open(tmp_path / "w.tif") as src:  # cut again, tags copied
        profile, tags = src.profile, src.tags()
        data = src.read(window=rasterio.windows.Window(0, 0, 10, 10))
        profile.update(width=10, height=10)
    with rasterio.open(tmp_path / "k.tif", "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    assert "hsad_window" not in open_cube(tmp_path / "k.tif").attrs
    code, out, _ = run_cli(["info", tmp_path / "k.tif"], capsys)
    assert code == 0 and "(stale: this file is 10 x 10 pixels" in out


def test_spatial_subset_in_python_nests_windows(scene):
    cube = open_cube(scene[0])
    outer = spatial_subset(cube, srcwin=(5, 6, 30, 30))
    inner = spatial_subset(outer, srcwin=(2, 3, 10, 10))
    assert inner.attrs["hsad_window"] == (9, 7, 48, 40)
    assert transform_of(inner) == GRID @ Affine.translation(7, 9)
    np.testing.assert_array_equal(inner.values, scene[2][9:19, 7:17])
    assert spatial_subset(cube) is cube
    with pytest.raises(ParameterError, match="four numbers"):
        spatial_subset(cube, srcwin=(1, 2, 3))


def test_a_window_view_indexes_as_numpy_does_on_the_window(scene):
    from hsad.cube.subset import Window
    from hsad.io.window import WindowView

    base = np.arange(10 * 12 * 2).reshape(10, 12, 2)
    view, window = WindowView(base, 2, 3, 6, 5), base[2:8, 3:8]
    for key in [(slice(None), slice(None)), (slice(1, 5, 2), slice(None, None, -1)),
                (-1, slice(2, 4)), ([0, 5, -1], slice(None)), (slice(None), [4, 0]),
                (np.array([True, False] * 3), 1), (Ellipsis, 0), (slice(7, 9),)]:
        np.testing.assert_array_equal(view[key], window[key])
    for key in [([0, 6], slice(None)), (slice(None), [5]), (6,), (np.ones(7, bool),)]:
        with pytest.raises(IndexError):
            view[key]  # never pixels from outside the window
    with pytest.raises(ParameterError, match="is not inside the 40 x 48 pixel scene"):
        open_cube(scene[0], window=Window(35, 40, 10, 8))  # columns 35:45 of 40


def test_train_fits_on_the_window_and_cuts_a_whole_scene_mask(scene, tmp_path, capsys):
    """`hsad train --srcwin` fits the model on the window alone, as `detect` analyses it: RX
    statistics equal those of the cropped array; a training mask of the whole scene is cut
    to the window, and --train-window counts in the window's rows and columns."""
    from hsad.io.model_archive import load_model

    path, _, values, _ = scene
    code, out, _ = run_cli(["train", path, "-m", "rx", "-o", tmp_path / "w.hsad",
                            "--srcwin", 10, 20, 25, 18], capsys)
    assert code == 0, out
    window = values[20:38, 10:35].reshape(-1, 12).astype(np.float64)
    model = load_model(tmp_path / "w.hsad")
    np.testing.assert_allclose(model.mean_, window.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(model.cov_, np.cov(window.T, bias=True), rtol=1e-7, atol=1e-9)
    mask = np.zeros(values.shape[:2], dtype=np.float32)
    mask[20:30, 10:35] = 1  # the window's first 10 rows
    mask_path = write_geotiff(make_cube(mask[:, :, None], transform=GRID,
                                        crs="EPSG:32633").isel(band=0), tmp_path / "m.tif")
    for option, value in (("--train-mask", mask_path), ("--train-window", "0,10,0,25")):
        code, out, _ = run_cli(["train", path, "-m", "rx", "-o", tmp_path / "t.hsad",
                                "--overwrite", "--srcwin", 10, 20, 25, 18, option, value],
                               capsys)
        assert code == 0, out
        part = values[20:30, 10:35].reshape(-1, 12).astype(np.float64)
        np.testing.assert_allclose(load_model(tmp_path / "t.hsad").mean_, part.mean(axis=0),
                                   rtol=1e-9, err_msg=option)


def test_a_fractional_srcwin_is_refused_and_one_starting_at_the_edge_lies_outside():
    """srcwin 10.5 is refused (not truncated); one starting at the last edge lies outside."""
    with pytest.raises(ParameterError, match="--srcwin takes whole pixel numbers, got 10.5"):
        srcwin_window((10.5, 20, 25, 18), (48, 40))
    for srcwin in ((40, 0, 5, 5), (0, 48, 5, 5)):
        with pytest.raises(ParameterError, match=f"--srcwin {' '.join(map(str, srcwin))} "
                                                 "lies outside the 40 x 48 pixel scene"):
            srcwin_window(srcwin, (48, 40))


def test_a_larger_raster_is_placed_by_its_grid_inside_its_rows_and_crs():
    """A larger truth is cut by the grids (lon/lat too), not past its rows or across CRSs."""
    from hsad.cube.placement import offsets_in, on_scene_grid

    a = 8.983152841195215e-05  # 10 m in degrees
    lonlat = Affine(a, 0, 12.345, 0, -a, 45.0)
    big = make_cube(np.zeros((10, 10, 1)), transform=lonlat, crs="EPSG:4326").isel(band=0)
    small = make_cube(np.zeros((4, 4, 1)), transform=lonlat @ Affine.translation(1, 2),
                      crs="EPSG:4326").isel(band=0)
    values = np.arange(100.0).reshape(10, 10)
    np.testing.assert_array_equal(on_scene_grid(values, big, small, "ground truth"),
                                  values[2:6, 1:5])
    large = make_cube(np.zeros((48, 40, 1)), transform=GRID, crs="EPSG:32633").isel(band=0)
    low = make_cube(np.zeros((18, 25, 1)), transform=GRID @ Affine.translation(10, 40),
                    crs="EPSG:32633").isel(band=0)
    assert offsets_in(low, large) is None
    with pytest.raises(ParameterError, match="ground truth is 48x40 but the scene is 18x25"):
        on_scene_grid(np.zeros((48, 40)), large, low, "ground truth")
    inside = make_cube(np.zeros((18, 25, 1)), transform=GRID @ Affine.translation(10, 20),
                       crs="EPSG:32633").isel(band=0)
    assert offsets_in(inside, large) == (20, 10)
    assert offsets_in(inside, large.rio.write_crs("EPSG:32634")) is None


def test_a_background_mask_off_the_grid_hints_at_polygons():
    """A background mask on another CRS hints at polygons; a ground truth does not."""
    from hsad.cube.placement import on_scene_grid

    cube = make_cube(np.zeros((6, 5, 1)), transform=GRID, crs="EPSG:32633").isel(band=0)
    other = cube.rio.write_crs("EPSG:32634")
    with pytest.raises(ParameterError, match=r"background mask is not on the scene's grid "
                                             r"\(another CRS or transform\); give polygons"):
        on_scene_grid(np.zeros((6, 5)), other, cube, "background mask")
    with pytest.raises(ParameterError, match=r"transform\)$"):
        on_scene_grid(np.zeros((6, 5)), other, cube, "ground truth")


def _whole_scene_mask(tmp_path, shape, georeferenced: bool):
    """A 0/1 GeoTIFF of ``shape`` in a pattern that repeats only every 7 × 11 pixels: a cut
    of it taken at the wrong place differs from the right one."""
    rows, cols = np.indices(shape)
    pattern = (rows * cols % 7 == 0) | (cols % 11 == 3)
    cube = make_cube(pattern[:, :, None].astype(np.float32),
                     transform=GRID if georeferenced else None,
                     crs="EPSG:32633" if georeferenced else None)
    return pattern, write_geotiff(cube.isel(band=0), tmp_path / f"mask_{georeferenced}.tif")


@pytest.mark.parametrize("georeferenced", [False, True])
def test_a_slice_taken_in_python_after_a_cut_moves_its_window(tmp_path, georeferenced):
    """A raster of the whole scene and the map's window tags follow a slice taken of a cut
    (of ``spatial_subset``'s and of a reader's window), as does a window cut of the slice:
    the raster was cut at the first cut's offsets, silently. A flip or a step after the cut
    is refused, never placed."""
    from hsad.cube.background import background_mask
    from hsad.cube.subset import current_window
    from hsad.io.window import window_tags

    values, _ = _values()
    pattern, raster = _whole_scene_mask(tmp_path, values.shape[:2], georeferenced)
    grid = GRID if georeferenced else None
    crs = "EPSG:32633" if georeferenced else None
    scene = write_envi(make_cube(values, transform=grid, crs=crs), tmp_path / "s.img")
    cuts = {"spatial_subset": spatial_subset(make_cube(values, transform=grid, crs=crs),
                                             srcwin=(5, 7, 30, 25)),
            "reader": open_cube(scene, srcwin=(5, 7, 30, 25))}
    for how, cut in cuts.items():
        sliced = cut.isel(y=slice(3, 15), x=slice(4, 20))  # rows 10:22, columns 9:25
        assert current_window(sliced) == (10, 9, 48, 40), how
        np.testing.assert_array_equal(background_mask(sliced, raster), pattern[10:22, 9:25])
        assert window_tags(sliced)["hsad_window"] == "9 10 16 12"
        nested = spatial_subset(sliced, srcwin=(1, 2, 5, 5))  # rows 12:17, columns 10:15
        assert current_window(nested) == (12, 10, 48, 40), how
        np.testing.assert_array_equal(background_mask(nested, raster), pattern[12:17, 10:15])
        for bad in (cut.isel(x=slice(None, None, -1)), cut.isel(y=slice(0, None, 2))):
            assert current_window(bad) is None, how
            assert "hsad_window" not in window_tags(bad)
            if not georeferenced:  # a georeferenced raster is placed by its grid instead
                with pytest.raises(ParameterError, match="flipped, strided, regridded"):
                    background_mask(bad, raster)


def test_polygons_of_a_slice_of_an_unreferenced_window_are_read_back_in_its_frame(tmp_path):
    """A slice taken in Python of a window of a MAT scene has the slice's own transform
    (coordinates kept by xarray): its maps and polygons lie there, and polygons written
    for it are read back there (a review found them refused as "outside the scene" when
    read in the whole scene's frame)."""
    from hsad.cube.background import background_mask
    from hsad.outputs.polygons import polygons, write_polygons

    values, _ = _values()
    mat = tmp_path / "scene.mat"
    write_mat(make_cube(values), mat)
    sliced = spatial_subset(open_cube(mat), srcwin=(5, 7, 30, 25)).isel(y=slice(3, 15),
                                                                       x=slice(4, 20))
    mask = np.zeros((12, 16), bool)
    mask[2:5, 3:9] = True
    mask[9, 12] = True
    features = polygons(sliced.isel(band=0, drop=True).copy(data=mask))
    written = write_polygons(features, tmp_path / "slice.gpkg")
    np.testing.assert_array_equal(background_mask(sliced, written), mask)


def test_a_map_written_in_python_carries_its_windows_tags_not_its_attributes(tmp_path):
    """``write_geotiff`` of a slice of a window writes the window as ``hsad detect`` tags it
    (moved by the slice), not the attributes as Python holds them."""
    from hsad.io.geotiff_writer import write_geotiff
    from hsad.io.window import window_from_tags

    values, _ = _values()
    cut = spatial_subset(make_cube(values, transform=GRID, crs="EPSG:32633"),
                         srcwin=(5, 7, 30, 25)).isel(y=slice(3, 15), x=slice(4, 20))
    path = write_geotiff(cut.isel(band=0).astype("float32"), tmp_path / "m.tif")
    with rasterio.open(path) as src:
        tags = src.tags()
    assert "hsad_window_grid" not in tags
    assert tags["hsad_window"] == "9 10 16 12" and tags["hsad_window_of"] == "40 48"
    assert window_from_tags(tags, (12, 16)) == (10, 9, 48, 40)


def test_a_window_is_moved_only_by_coordinates_on_its_grid(tmp_path):
    """Reviews found a cut without x/y coordinates placed at the scene's origin
    (rioxarray's stale transform), and coordinates on another grid (reprojected, flipped,
    relabelled) placed at offsets they no longer meant. Only coordinates on the grid the
    window was cut on, float32 ones too, move it; any other is refused, never guessed."""
    from hsad.cube.background import background_mask
    from hsad.cube.subset import current_window

    values, _ = _values()
    pattern, raster = _whole_scene_mask(tmp_path, values.shape[:2], georeferenced=False)
    odd = Affine(4.9, 0, 312_345.67, 0, -4.9, 4_123_456.78)  # float32 rounds it by 0.03 px
    for grid in (GRID, odd):
        cut = spatial_subset(make_cube(values, transform=grid, crs="EPSG:32633"),
                             srcwin=(5, 7, 30, 25))
        single = cut.assign_coords(x=cut.x.astype("f4"), y=cut.y.astype("f4"))
        assert current_window(single) == (7, 5, 48, 40)
        np.testing.assert_array_equal(background_mask(single, raster), pattern[7:32, 5:35])
        step = grid.a
        assert current_window(cut.assign_coords(x=cut.x + step)) == (7, 6, 48, 40)
        for cube in (cut.drop_vars(["x", "y"]),
                     xr.DataArray(cut.values, dims=cut.dims, attrs=cut.attrs),
                     cut.assign_coords(x=np.arange(30) + 0.5, y=np.arange(25) + 0.5),
                     cut.assign_coords(x=cut.x / 1000, y=cut.y / 1000),
                     cut.assign_coords(x=cut.x + step / 2)):
            assert current_window(cube) is None
            with pytest.raises(ParameterError, match="no longer lie on the grid it was cut on"):
                background_mask(cube, raster)
    moved = cut.transpose("band", "y", "x").rio.reproject("EPSG:32633", resolution=45)
    assert current_window(moved.transpose("y", "x", "band")) is None


def test_window_tags_read_by_rioxarray_are_written_back_as_read(tmp_path):
    """``rioxarray.open_rasterio`` of a map of a window holds its tags as text in
    ``attrs``: they are not hsad's window (a traceback before) and are written back as
    they were."""
    import rioxarray

    from hsad.cube.background import background_mask
    from hsad.cube.subset import current_window
    from hsad.io.geotiff_writer import write_geotiff

    values, _ = _values()
    cut = spatial_subset(make_cube(values), srcwin=(5, 7, 30, 25))
    first = write_geotiff(cut.isel(band=0), tmp_path / "map.tif")
    read = rioxarray.open_rasterio(first).squeeze("band", drop=True)
    assert read.attrs["hsad_window"] == "5 7 30 25" and current_window(read) is None
    again = write_geotiff(read, tmp_path / "again.tif")
    with rasterio.open(first) as a, rasterio.open(again) as b:
        assert {k: v for k, v in a.tags().items() if k.startswith("hsad_window")} == \
            {k: v for k, v in b.tags().items() if k.startswith("hsad_window")}
    _, raster = _whole_scene_mask(tmp_path, (25, 30), georeferenced=False)
    cube = read.expand_dims(band=[1]).transpose("y", "x", "band")
    assert background_mask(cube, raster).shape == (25, 30)


def test_a_map_written_like_a_cube_takes_that_cubes_window(tmp_path):
    from hsad.io.geotiff_writer import write_geotiff

    values, _ = _values()
    sliced = spatial_subset(make_cube(values), srcwin=(5, 7, 30, 25)).isel(
        y=slice(3, 15), x=slice(4, 20))
    bare = xr.DataArray(np.ones((12, 16), np.float32), dims=("y", "x"))
    path = write_geotiff(bare, tmp_path / "m.tif", like=sliced)
    with rasterio.open(path) as src:
        assert src.tags()["hsad_window"] == "9 10 16 12"


def test_a_cut_of_a_flipped_window_records_no_window():
    """Its scene is unknown: it recorded the flipped window as the whole scene (a review:
    "cut from a 20x15 scene" for a 40 × 30 file)."""
    values, _ = _values()
    cut = spatial_subset(make_cube(values), srcwin=(5, 7, 30, 25))
    again = spatial_subset(cut.isel(x=slice(None, None, -1)), srcwin=(2, 3, 10, 10))
    assert "hsad_window" not in again.attrs and "hsad_window_grid" not in again.attrs


def test_text_frames_read_by_rioxarray_are_not_taken_for_hsads(tmp_path):
    """A converted window of a scene without georeference, read by rioxarray, holds its
    ``hsad_frame`` tag as text: a cut of it and the polygons' frame gave a TypeError."""
    import pyogrio.raw
    import rioxarray
    import shapely
    from shapely.geometry import box

    from hsad.cube import as_cube
    from hsad.cube.background import background_mask
    from hsad.io.geotiff_writer import write_geotiff_cube
    from hsad.io.window import window_tags

    values, _ = _values()
    window = spatial_subset(make_cube(values), srcwin=(5, 7, 30, 25))
    path = write_geotiff_cube(window, tmp_path / "cut.tif")
    read = as_cube(rioxarray.open_rasterio(path))
    assert isinstance(read.attrs["hsad_frame"], str)
    cut = spatial_subset(read, srcwin=(1, 1, 10, 8))
    assert "hsad_frame" not in cut.attrs and window_tags(cut)["hsad_window"] == "1 1 10 8"
    area = tmp_path / "area.gpkg"  # rows 2:4, columns 3:6 of the cut, in QGIS's frame
    pyogrio.raw.write(area, np.array([shapely.to_wkb(box(4, -5, 7, -3))], dtype=object),
                      [], [], geometry_type="Polygon", crs=None, driver="GPKG")
    expected = np.zeros((8, 10), bool)
    expected[2:4, 3:6] = True
    np.testing.assert_array_equal(background_mask(cut, area), expected)


def test_a_detectors_map_of_a_window_carries_its_record_to_the_file(tmp_path):
    """A detector's map (and its mask) of a cut kept no record of the window: written
    without ``like=``, its file had no window tags, and ``evaluate_files`` refused the whole
    scene's truth for it (a 60 × 50 map against 100 × 100) where the same map written with
    ``like=cut`` was evaluated. The map now carries the cut's record, as its stages do."""
    from hsad.outputs.evaluation import evaluate_files

    values, truth = _values()
    scene = write_mat(make_cube(values), tmp_path / "s.mat", gt=truth)  # no georeference
    cut = open_cube(scene, srcwin=(5, 7, 30, 25))
    det = detectors.get("rx")
    scores = det.fit_score(cut)
    plain = write_geotiff(scores, tmp_path / "plain.tif")
    like = write_geotiff(scores, tmp_path / "like.tif", like=cut)
    with rasterio.open(plain) as a, rasterio.open(like) as b:
        assert a.tags()["hsad_window"] == "5 7 30 25" and a.tags() == b.tags()
    assert evaluate_files(plain, scene)[0].auc_df == evaluate_files(like, scene)[0].auc_df == 1.0
    mask = det.threshold(scores)
    assert mask.attrs["hsad_window"] == scores.attrs["hsad_window"]
    with rasterio.open(write_mask(mask, tmp_path / "mask.tif")) as m:
        assert m.tags()["hsad_window"] == "5 7 30 25"  # a mask file as a map file
