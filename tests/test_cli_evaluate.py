"""``hsad evaluate``: metrics table/JSON, ROC plots, truth formats and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
from affine import Affine

from hsad.cli.main import main
from hsad.cube import make_cube, map_like
from hsad.io.geotiff_writer import write_geotiff, write_mask
from hsad.outputs.metrics import evaluate
from hsad.synthetic import make_scene


def run_cli(args, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _rx(cube) -> np.ndarray:
    x = cube.values.reshape(-1, cube.shape[2]).astype(np.float64)
    xc = x - x.mean(axis=0)
    precision = np.linalg.pinv(xc.T @ xc / len(xc), hermitian=True)
    return np.einsum("ij,ij->i", xc @ precision, xc).reshape(cube.shape[:2])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    scene = make_scene(rows=48, cols=48, bands=30, seed=4)
    scores = map_like(scene.cube, _rx(scene.cube).astype(np.float32))  # as stored
    write_geotiff(scores, d / "rx.tif")
    write_mask(scene.truth, d / "truth.tif")
    return {"dir": d, "scores": d / "rx.tif", "truth": d / "truth.tif",
            "rx": scores.values, "gt": scene.truth.values, "cube": scene.cube}


def test_table_and_plots(files, tmp_path, capsys):
    roc, roc3d = tmp_path / "roc.png", tmp_path / "roc3d.png"
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", files["truth"],
                              "--plot", roc, "--plot3d", roc3d, "--log-far"], capsys)
    assert code == 0, err
    expected = evaluate(files["rx"], files["gt"])
    for label in ("AUC(D,F)", "AUC(D,tau)", "AUC(F,tau)", "TD", "BS", "TDBS", "OD", "ODP",
                  "SNPR (dB)"):
        assert f"\n{label} " in out
    assert f"{expected.auc_df:.4f}" in out and f"{expected.snpr_db:.4f}" in out
    assert f"{expected.n_anomaly}+{expected.n_background}" in out
    for path in (roc, roc3d):
        assert path.read_bytes().startswith(b"\x89PNG") and "wrote" in out and str(path) in out


def test_json_output_matches_the_library(files, capsys):
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", files["truth"], "--json"],
                             capsys)
    assert code == 0, err
    doc = json.loads(out)
    expected = evaluate(files["rx"], files["gt"]).to_dict()
    for key, value in expected.items():
        assert doc[key] == pytest.approx(value, abs=1e-12), key
    assert doc["scores"] == str(files["scores"]) and doc["plots"] == {}


def test_nodata_in_truth_mask_is_excluded(files, tmp_path, capsys):
    valid = np.ones(files["gt"].shape, bool)
    valid[:, :8] = False
    truth = tmp_path / "partial.tif"
    write_mask(map_like(files["cube"], files["gt"]), truth, valid=valid)
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", truth, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_anomaly"] + doc["n_background"] == valid.sum()
    gt = np.where(valid, files["gt"], np.nan)
    assert doc["auc_df"] == pytest.approx(evaluate(files["rx"], gt).auc_df, abs=1e-12)


def test_mat_and_envi_ground_truth(files, tmp_path, capsys):
    mat = tmp_path / "scene.mat"
    scipy.io.savemat(mat, {"data": files["cube"].values, "map": files["gt"].astype(np.uint8)})
    expected = evaluate(files["rx"], files["gt"]).auc_df
    # the MAT scene has no CRS, so its grid is not compared with the GeoTIFF's
    for extra in ([], ["--truth-key", "map"]):
        code, out, err = run_cli(["evaluate", files["scores"], "--truth", mat, "--json", *extra],
                                 capsys)
        assert code == 0, err
        assert json.loads(out)["auc_df"] == pytest.approx(expected, abs=1e-12)
    code, _, err = run_cli(["evaluate", files["scores"], "--truth", mat, "--truth-key", "nope"],
                           capsys)
    assert code == 2 and err.startswith(f"error: {mat}: ") and "nope" in err

    from hsad.io.envi_writer import write_envi

    envi = tmp_path / "truth.img"
    gt_cube = make_cube(files["gt"].astype(np.uint8)[:, :, None],
                        transform=files["cube"].rio.transform(), crs=files["cube"].rio.crs)
    write_envi(gt_cube, envi)
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", envi, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["auc_df"] == pytest.approx(expected, abs=1e-12)


def test_real_benchmark_scene_matches_published_rx_auc(datasets_dir, tmp_path, capsys):
    manifest = json.loads((datasets_dir / "manifest.json").read_text())
    entry = next(s for s in manifest["scenes"] if s["name"] == "abu-airport-1")
    mat = datasets_dir / entry["file"]
    cube = make_cube(scipy.io.loadmat(mat, variable_names=[entry["cube_key"]])[entry["cube_key"]])
    write_geotiff(map_like(cube, _rx(cube)), tmp_path / "rx.tif")
    code, out, err = run_cli(["evaluate", tmp_path / "rx.tif", "--truth", mat,
                              "--truth-key", entry["gt_key"], "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_anomaly"] == entry["anomaly_pixels"]
    assert doc["auc_df"] == pytest.approx(entry["rx_global_auc"], abs=1e-4)


def _error(args, capsys):
    code, out, err = run_cli(["evaluate", *args], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_errors_are_one_line(files, tmp_path, capsys):
    cube = files["cube"]
    small = tmp_path / "small.tif"
    write_mask(map_like(cube.isel(y=slice(0, 40)), files["gt"][:40]), small)
    err = _error([files["scores"], "--truth", small], capsys)
    assert f"error: {small}: ground truth is 40x48 but the score map" in err

    multiband = tmp_path / "cube.mat"
    scipy.io.savemat(multiband, {"data": cube.values[:, :, :3]})
    assert "must have one band, found 3" in _error([multiband, "--truth", files["truth"]], capsys)

    assert "no such file" in _error([tmp_path / "missing.tif", "--truth", files["truth"]],
                                    capsys)

    empty = tmp_path / "empty.tif"
    write_mask(map_like(cube, np.zeros(files["gt"].shape, bool)), empty)
    assert f"{empty}: the ground truth has no anomaly pixel" in _error(
        [files["scores"], "--truth", empty], capsys)

    shifted = tmp_path / "shifted.tif"
    moved = make_cube(files["gt"][:, :, None].astype(np.uint8), crs=cube.rio.crs,
                      transform=cube.rio.transform() @ Affine.translation(5, 0))
    write_mask(moved.isel(band=0), shifted)
    assert "not on the grid of the score map" in _error([files["scores"], "--truth", shifted],
                                                   capsys)

    assert "--log-far sets the false-alarm axis of --plot, and no --plot is given" in _error(
        [files["scores"], "--truth", files["truth"], "--log-far"], capsys)

    blank = tmp_path / "blank.tif"
    write_geotiff(map_like(cube, np.full(files["gt"].shape, np.nan, np.float32)), blank)
    assert f"{blank}: the score map has no valid" in _error([blank, "--truth", files["truth"]],
                                                            capsys)

    npy = tmp_path / "truth.npy"  # a format hsad does not read, named for what it is meant to be
    np.save(npy, files["gt"])
    assert f"{npy}: not a recognised ground truth (expected" in _error(
        [files["scores"], "--truth", npy], capsys)
    assert "not a recognised score map" in _error([npy, "--truth", files["truth"]], capsys)


def _placed_or_refused(tmp_path, capsys, scores, gt, same: bool) -> None:
    """``evaluate`` of s.tif against t.tif: the library's AUC when on one grid, else the
    grid error."""
    args = [tmp_path / "s.tif", "--truth", tmp_path / "t.tif", "--json"]
    if same:
        code, out, err = run_cli(["evaluate", *args], capsys)
        assert code == 0, err
        assert json.loads(out)["auc_df"] == pytest.approx(evaluate(scores, gt).auc_df)
    else:
        assert "not on the grid of the score map" in _error(args, capsys)


@pytest.mark.parametrize(("pixel", "crs", "shift", "same"), [
    (1e-6, "EPSG:4326", 5.0, False),    # 0.1 m pixels: a 5-pixel shift is 5e-6 degrees
    (30.0, "EPSG:32633", 1e-4 / 30, True),  # 30 m pixels: 0.1 mm is the same grid
    (30.0, "EPSG:32633", 0.01, False),
])
def test_grids_are_compared_in_pixels_not_map_units(tmp_path, capsys, pixel, crs, shift, same):
    rng = np.random.default_rng(2)
    gt = rng.random((40, 50)) < 0.05
    scores = (rng.normal(size=gt.shape) + 2 * gt).astype(np.float32)
    grid = Affine(pixel, 0, 10.0, 0, -pixel, 50.0) if crs == "EPSG:4326" else Affine(
        pixel, 0, 500_000.0, 0, -pixel, 5_100_000.0)
    write_geotiff(make_cube(scores[:, :, None], crs=crs, transform=grid).isel(band=0),
                  tmp_path / "s.tif")
    truth = make_cube(gt[:, :, None].astype(np.uint8), crs=crs,
                      transform=grid @ Affine.translation(shift, 0))
    write_mask(truth.isel(band=0), tmp_path / "t.tif")
    _placed_or_refused(tmp_path, capsys, scores, gt, same)


@pytest.mark.parametrize(("s_crs", "t_crs", "t_grid", "same"), [
    (None, None, Affine(1, 0, 1010, 0, -1, 2000), False),  # 10 pixels east, neither a CRS
    (None, None, Affine(2, 0, 1000, 0, -2, 2000), False),  # pixels twice as large
    ("EPSG:32633", None, Affine(1, 0, 1001, 0, -1, 2000), False),  # truth without its CRS
    ("EPSG:32633", None, Affine(1, 0, 1000, 0, -1, 2000), True),
    (None, None, Affine.identity(), True),  # a truth without georeference: sizes alone
])
def test_a_transform_without_a_crs_still_places_the_map(tmp_path, capsys, s_crs, t_crs,
                                                       t_grid, same):
    rng = np.random.default_rng(3)
    gt = rng.random((40, 50)) < 0.05
    scores = (rng.normal(size=gt.shape) + 2 * gt).astype(np.float32)
    grid = Affine(1, 0, 1000, 0, -1, 2000)
    write_geotiff(make_cube(scores[:, :, None], crs=s_crs, transform=grid).isel(band=0),
                  tmp_path / "s.tif")
    write_mask(make_cube(gt[:, :, None].astype(np.uint8), crs=t_crs,
                         transform=t_grid).isel(band=0), tmp_path / "t.tif")
    _placed_or_refused(tmp_path, capsys, scores, gt, same)


def test_nan_truth_pixels_are_left_out_in_every_format(files, tmp_path, capsys):
    gt = files["gt"].astype(np.float64)
    gt[:10] = np.nan
    scipy.io.savemat(tmp_path / "gt.mat", {"gt": gt})
    write_geotiff(map_like(files["cube"], gt.astype(np.float32)), tmp_path / "gt.tif")
    expected = evaluate(files["rx"], gt).to_dict()
    for truth in ("gt.mat", "gt.tif"):
        code, out, err = run_cli(["evaluate", files["scores"], "--truth", tmp_path / truth,
                                  "--json"], capsys)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["n_background"] + doc["n_anomaly"] == gt.size - 10 * gt.shape[1]
        assert doc["auc_df"] == pytest.approx(expected["auc_df"], abs=1e-12)


def test_missing_truth_option_is_a_usage_error(files, capsys):
    code, _, err = run_cli(["evaluate", files["scores"]], capsys)
    assert code == 2 and "--truth" in err


def test_infinite_scores_are_left_out_with_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(5)
    gt = np.zeros((20, 24), bool)
    gt[5:8, 5:8] = True
    scores = (rng.normal(size=gt.shape) + gt).astype(np.float32)
    scores[5, 5] = np.inf
    write_geotiff(make_cube(scores[:, :, None]).isel(band=0), tmp_path / "s.tif")
    write_mask(make_cube(gt[:, :, None].astype(np.uint8)).isel(band=0), tmp_path / "t.tif")
    code, out, err = run_cli(["evaluate", tmp_path / "s.tif", "--truth", tmp_path / "t.tif",
                              "--json"], capsys)
    assert code == 0, err
    assert err.count("1 pixels score ±inf: left out as nodata") == 1
    assert json.loads(out)["n_anomaly"] == 8
    with pytest.warns(UserWarning, match="1 pixels of the score map score ±inf"):
        assert evaluate(scores, gt).n_anomaly == 8


@pytest.fixture
def second_map(files, tmp_path):
    """A second detector's map of the scene: the RX map with noise, its left columns nodata."""
    rng = np.random.default_rng(9)
    noisy = (files["rx"] + rng.normal(scale=files["rx"].std(), size=files["rx"].shape))
    noisy = noisy.astype(np.float32)
    noisy[:, :3] = np.nan
    path = tmp_path / "noisy.tif"
    write_geotiff(map_like(files["cube"], noisy), path)
    return path, noisy


def test_several_maps_make_one_table_with_each_columns_best_marked(files, second_map, tmp_path,
                                                                   capsys):
    path, noisy = second_map
    roc = tmp_path / "roc.png"
    code, out, err = run_cli(["evaluate", files["scores"], path, "--truth", files["truth"],
                              "--plot", roc], capsys)
    assert code == 0, err
    assert "the maps score different pixels (rx 2304, noisy 2160)" in err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("map "))
    rx_row, noisy_row = lines[header + 1].split(), lines[header + 2].split()
    expected = evaluate(files["rx"], files["gt"]), evaluate(noisy, files["gt"])
    assert rx_row[0] == "rx" and noisy_row[0] == "noisy"
    assert rx_row[1] == f"{expected[0].auc_df:.4f}" + ("*" if expected[0].auc_df >
                                                        expected[1].auc_df else "")
    assert noisy_row[-1] == f"{expected[1].n_anomaly}+{expected[1].n_background}"
    assert out.count("*") >= 9  # a best in every metric column
    assert roc.read_bytes().startswith(b"\x89PNG") and f"wrote roc: {roc}" in out


def test_common_pixels_judge_every_map_on_the_same_pixels(files, second_map, capsys):
    path, noisy = second_map
    code, out, err = run_cli(["evaluate", files["scores"], path, "--truth", files["truth"],
                              "--common-pixels", "--json"], capsys)
    assert code == 0, err
    assert err == ""
    doc = json.loads(out)
    assert doc["common_pixels"] is True and [m["name"] for m in doc["maps"]] == ["rx", "noisy"]
    common = np.where(np.isfinite(noisy), files["rx"], np.nan)
    for entry, scores in zip(doc["maps"], (common, noisy), strict=True):
        expected = evaluate(scores, files["gt"]).to_dict()
        for key, value in expected.items():
            assert entry[key] == pytest.approx(value, abs=1e-12), key
    assert doc["maps"][0]["n_background"] + doc["maps"][0]["n_anomaly"] == np.isfinite(
        noisy).sum()


def test_maps_of_one_name_in_two_folders_are_named_by_their_paths(files, tmp_path, capsys):
    other = tmp_path / "b" / "rx.tif"
    other.parent.mkdir()
    other.write_bytes(files["scores"].read_bytes())
    code, out, err = run_cli(["evaluate", files["scores"], other, "--truth", files["truth"],
                              "--json"], capsys)
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)["maps"]] == [str(files["scores"]), str(other)]


def test_errors_of_several_maps_are_one_line_naming_the_map(files, second_map, tmp_path,
                                                            capsys):
    path, _ = second_map
    small = tmp_path / "small.tif"
    write_geotiff(map_like(files["cube"].isel(y=slice(0, 40)), files["rx"][:40]), small)
    err = _error([files["scores"], small, "--truth", files["truth"]], capsys)
    assert f"error: {small}: covers another part of the scene than {files['scores']} (40x48 " \
        "pixels, grid" in err and "against 48x48 pixels, grid" in err
    assert f"error: {path}: score map given twice" in _error(
        [path, files["scores"], path, "--truth", files["truth"]], capsys)
    assert "--common-pixels compares several score maps" in _error(
        [files["scores"], "--truth", files["truth"], "--common-pixels"], capsys)
    assert not (tmp_path / "roc.png").exists()


def test_map_names_stay_distinct_when_a_stem_is_another_maps_path():
    from hsad.outputs.evaluation import map_names

    assert map_names(["a/rx.tif", "lrx.tif"]) == ["rx", "lrx"]
    assert map_names(["a/rx.tif", "b/rx.tif"]) == ["a/rx.tif", "b/rx.tif"]
    names = map_names(["x", "x.tif", "x.tif.tif"])  # stems x, x, x.tif
    assert len(set(names)) == 3 and names[1:] == ["x.tif [2]", "x.tif [3]"]


def test_plots_stay_when_the_reader_of_the_table_goes_away(files, second_map, tmp_path):
    import subprocess
    import sys

    roc = tmp_path / "roc.png"
    proc = subprocess.Popen([sys.executable, "-m", "hsad.cli.main", "evaluate",
                             str(files["scores"]), str(second_map[0]), "--truth",
                             str(files["truth"]), "--plot", str(roc)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    assert roc.read_bytes().startswith(b"\x89PNG")


def test_maps_of_two_windows_are_refused_even_against_a_truth_without_georeference(
        files, tmp_path, capsys):
    """A MAT truth places nothing: the maps' own grids tell two windows of one scene apart."""
    cube = files["cube"]
    left, right = tmp_path / "left.tif", tmp_path / "right.tif"
    write_geotiff(map_like(cube.isel(y=slice(0, 30), x=slice(0, 30)), files["rx"][:30, :30]),
                  left)
    write_geotiff(map_like(cube.isel(y=slice(10, 40), x=slice(10, 40)),
                           files["rx"][10:40, 10:40]), right)
    truth = tmp_path / "truth.mat"
    scipy.io.savemat(truth, {"map": files["gt"][:30, :30].astype(np.uint8)})
    err = _error([left, right, "--truth", truth], capsys)
    assert f"error: {right}: covers another part of the scene than {left}" in err


def test_the_truth_among_the_maps_is_refused_and_keys_apply_to_mat_files(files, capsys):
    assert f"error: {files['truth']}: the ground truth's own file given as a score map" in \
        _error([files["scores"], files["truth"], "--truth", files["truth"]], capsys)
    assert f"error: {files['truth']}: --truth-key names a variable of a MAT file" in _error(
        [files["scores"], "--truth", files["truth"], "--truth-key", "map"], capsys)
    assert "error: --scores-key names a variable of a MAT file, and no score map is one" in \
        _error([files["scores"], "--truth", files["truth"], "--scores-key", "s"], capsys)


def test_an_infinite_snpr_is_the_best_and_a_constant_map_never_is(files, tmp_path, capsys):
    gt = files["gt"]
    maps = {"perfect": gt.astype(np.float32), "constant": np.ones(gt.shape, np.float32),
            "rx": files["rx"]}
    paths = []
    for name, values in maps.items():
        paths.append(tmp_path / f"{name}.tif")
        write_geotiff(map_like(files["cube"], values), paths[-1])
    code, out, err = run_cli(["evaluate", *paths, "--truth", files["truth"]], capsys)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[3:]}
    assert rows["perfect"].split()[9] == "inf*"  # the SNPR column
    assert "*" not in rows["constant"]


def test_a_truth_whose_nodata_hides_a_class_says_so(files, tmp_path, capsys):
    """A 0/255 mask rasterised with nodata 255 (QGIS's default) hides every anomaly."""
    import rasterio

    path = tmp_path / "mask255.tif"
    with rasterio.open(files["truth"]) as src:
        profile = {**src.profile, "nodata": 255}
        values = np.where(src.read(1) == 1, 255, 0).astype(np.uint8)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    hint = "the ground truth has no anomaly pixel (its nodata value, 255, leaves"
    assert f"error: {path}: {hint}" in _error([files["scores"], "--truth", path], capsys)
    code, _, err = run_cli(["detect", files["scores"], "-m", "rx", "-o",
                            tmp_path / "s.tif", "--truth", path], capsys)
    assert code == 2 and f"error: {path}: {hint}" in err
    assert not (tmp_path / "s.tif").exists()  # refused before detection


def _targets_geojson(path, geoms, crs="EPSG:4326"):
    """A GeoJSON FeatureCollection of ``geoms`` (shapely, in the scene's UTM zone) in ``crs``."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping

    feats = [{"type": "Feature", "properties": {},
              "geometry": mapping(g) if crs == "EPSG:32633" else
              transform_geom("EPSG:32633", crs, mapping(g))} for g in geoms]
    doc = {"type": "FeatureCollection", "features": feats}
    if crs != "EPSG:4326":  # GeoJSON's default; another CRS is named, as GDAL writes it
        urn = f"urn:ogc:def:crs:{crs.replace(':', '::')}"
        doc["crs"] = {"type": "name", "properties": {"name": urn}}
    path.write_text(json.dumps(doc))
    return path


def _pixel_box(row, col, shrink=0.0):
    """The ground footprint of pixel (row, col) of the synthetic scene's 30 m UTM grid."""
    from shapely.geometry import box

    x0, y0 = 500000.0 + 30 * col, 5100000.0 - 30 * (row + 1)
    return box(x0 + shrink, y0 + shrink, x0 + 30 - shrink, y0 + 30 - shrink)


def _off_centre(row, col):
    """A 10 m square inside pixel (row, col) that misses its centre."""
    from shapely.geometry import box

    x0, y0 = 500000.0 + 30 * col, 5100000.0 - 30 * (row + 1)
    return box(x0 + 2, y0 + 2, x0 + 12, y0 + 12)


def test_polygons_and_points_as_ground_truth(files, tmp_path, capsys):
    """Analysts digitise their targets: polygons (in another CRS too) or points give the
    same figures as the raster mask they cover; a target smaller than a pixel still counts."""
    from shapely.geometry import Point

    rows, cols = np.nonzero(files["gt"])
    boxes = _targets_geojson(tmp_path / "targets.geojson",
                             [_pixel_box(r, c) for r, c in zip(rows, cols, strict=True)])
    expected = evaluate(files["rx"], files["gt"])
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", boxes, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["auc_df"] == pytest.approx(expected.auc_df, abs=1e-12)
    # points at the centres of one target, and a 10 m square inside a pixel of another
    # (it covers no pixel centre): exactly those pixels are anomalies
    first = files["gt"].copy() * 0
    first[9:11, 18:20] = 1
    first[31, 40] = 1
    shapes = [Point(500000 + 30 * c + 15, 5100000 - 30 * r - 15) for r in (9, 10)
              for c in (18, 19)] + [_off_centre(31, 40)]
    small = _targets_geojson(tmp_path / "small.geojson", shapes, crs="EPSG:32633")
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", small, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["auc_df"] == pytest.approx(evaluate(files["rx"], first).auc_df, abs=1e-12)
    assert doc["n_anomaly"] == 5


def test_polygon_ground_truth_needs_a_map_to_place_it(files, tmp_path, capsys):
    boxes = _targets_geojson(tmp_path / "t.geojson", [_pixel_box(9, 18)])
    scipy.io.savemat(tmp_path / "s.mat", {"scores": files["rx"]})
    code, _, err = run_cli(["evaluate", tmp_path / "s.mat", "--truth", boxes], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "t.geojson: the ground truth's geometries are in" in err and "no CRS" in err
    code, _, err = run_cli(["evaluate", files["scores"], "--truth", boxes, "--truth-key",
                            "gt"], capsys)
    assert code == 2 and "--truth-key names a variable of a MAT file" in err
    far = _targets_geojson(tmp_path / "far.geojson", [_pixel_box(900, 900)])
    code, _, err = run_cli(["evaluate", files["scores"], "--truth", far], capsys)
    assert code == 2 and "far.geojson: the ground truth lies outside the score map" in err
    assert "longitude/latitude" not in err


def test_projected_coordinates_in_a_geojson_without_crs_are_one_line(files, tmp_path, capsys):
    """A GeoJSON without a ``crs`` member is longitude/latitude: UTM metres in one made
    PROJ fail, once a traceback (ground truth and ``--background`` alike)."""
    path = tmp_path / "utm.geojson"
    feat = {"type": "Feature", "properties": {},
            "geometry": {"type": "Point", "coordinates": [500015.0, 5099985.0]}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    code, _, err = run_cli(["evaluate", files["scores"], "--truth", path], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "utm.geojson: the ground truth's coordinates are not valid in its CRS" in err
    assert "without a 'crs' member" in err
    code, _, err = run_cli(["detect", files["scores"], "-m", "rx", "-o", tmp_path / "o.tif",
                            "--background", path], capsys)
    assert code == 2 and "utm.geojson: the background area's coordinates" in err
    assert not (tmp_path / "o.tif").exists()


def test_detect_prints_the_auc_against_polygons(files, tmp_path, capsys):
    from hsad.io.geotiff_writer import write_geotiff_cube

    scene = write_geotiff_cube(files["cube"], tmp_path / "scene.tif")
    rows, cols = np.nonzero(files["gt"])
    boxes = _targets_geojson(tmp_path / "targets.geojson",
                             [_pixel_box(r, c) for r, c in zip(rows, cols, strict=True)])
    printed = []
    for truth in (files["truth"], boxes):
        code, out, err = run_cli(["detect", scene, "-m", "rx", "-o", tmp_path / "rx.tif",
                                  "--overwrite", "--truth", truth], capsys)
        assert code == 0, err
        printed.append([line for line in out.splitlines() if line.startswith("AUC(D,F)")])
    assert printed[0] == printed[1] and printed[0]


def _shapes_file(path, geoms, crs="EPSG:32633"):
    """A vector file of ``geoms`` (shapely) in ``crs`` (None: no CRS, QGIS's pixel frame)."""
    import pyogrio.raw
    import shapely

    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    pyogrio.raw.write(path, wkb, [], [], geometry_type="Unknown", crs=crs,
                      driver="GPKG" if str(path).endswith(".gpkg") else "ESRI Shapefile")
    return path


def test_each_target_drawn_once_by_the_centre_rule_and_small_parts_kept(files, tmp_path):
    """A feature given twice, or inside a larger one, was taken for one covering no pixel
    centre (its ids overwritten) and burnt by every pixel it touched; a sub-pixel part of a
    multi-part feature was lost; a target cut by a window's edge was burnt as if small."""
    from shapely.geometry import MultiPolygon

    from hsad.cube.vector_masks import vector_mask

    cube = files["cube"]
    # the centres of a 2 x 2 block, and 9 m (0.3 pixel) into the pixels around it
    a = _pixel_box(10, 18).union(_pixel_box(11, 19)).envelope.buffer(9, join_style="mitre")
    tiny = _off_centre(31, 40)  # inside one pixel, no centre
    block = np.zeros(cube.shape[:2], bool)
    block[10:12, 18:20] = True
    for name, geoms in (("once", [a]), ("twice", [a, a]), ("nested", [a, a.buffer(-5)])):
        got = vector_mask(_shapes_file(tmp_path / f"{name}.gpkg", geoms), cube,
                          every_shape=True)
        np.testing.assert_array_equal(got, block, err_msg=name)
    both = block.copy()
    both[31, 40] = True
    multi = vector_mask(_shapes_file(tmp_path / "multi.gpkg", [MultiPolygon([a, tiny])]),
                        cube, every_shape=True)
    np.testing.assert_array_equal(multi, both)
    # a window whose first column is the block's second: its centre there is covered,
    # the sliver of the first column beyond the window is not the window's
    window = cube.isel(x=slice(19, 48))
    cut = vector_mask(tmp_path / "once.gpkg", window, every_shape=True)
    np.testing.assert_array_equal(cut, block[:, 19:48])
    edge = cube.isel(x=slice(20, 48))  # the block wholly outside: nothing, not its edge
    assert not vector_mask(tmp_path / "once.gpkg", edge, every_shape=True,
                           empty_ok=True).any()


def test_a_broken_ring_is_one_line(files, tmp_path, capsys):
    path = tmp_path / "open.geojson"
    ring = [[15.0051, 46.0499], [15.0051, 46.0506], [15.0041, 46.0506], [15.0041, 46.0499]]
    feat = {"type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    code, _, err = run_cli(["evaluate", files["scores"], "--truth", path], capsys)
    assert code == 2 and err.count("error: ") == 1 and "Traceback" not in err  # GDAL warns
    assert "open.geojson: cannot read polygons" in err.splitlines()[-1]


def test_polygons_on_a_window_of_a_scene_without_crs(tmp_path, capsys):
    """Drawn in the whole scene's pixel frame (QGIS's, no CRS), the targets are placed on a
    ``--srcwin`` map by its window tag, as ``hsad detect --truth`` places them."""
    from shapely.geometry import box

    scene = make_scene(rows=40, cols=40, bands=12, seed=2)
    gt = np.zeros((40, 40), np.uint8)
    gt[11:13, 11:13] = 1
    gt[20, 25] = 1
    mat = tmp_path / "s.mat"
    scipy.io.savemat(mat, {"data": scene.cube.values, "map": gt})
    targets = _shapes_file(tmp_path / "t.shp", [box(10.7, -13.3, 13.3, -10.7),
                                                 box(25.2, -20.8, 25.8, -20.2)], crs=None)
    code, out, err = run_cli(["detect", mat, "-m", "rx", "-o", tmp_path / "w.tif",
                              "--srcwin", "5", "5", "30", "30", "--truth", targets], capsys)
    assert code == 0, err
    printed = [line for line in out.splitlines() if line.startswith("AUC(D,F)")][0]
    auc = float(printed.split()[2])
    for truth in (targets, mat):
        code, out, err = run_cli(["evaluate", tmp_path / "w.tif", "--truth", truth, "--json"],
                                 capsys)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["n_anomaly"] == 5 and round(doc["auc_df"], 4) == auc, truth


def test_a_long_sliver_and_a_multipolygon_with_an_empty_part(files, tmp_path):
    """A diagonal sliver across 1100 pixels' box that holds no pixel centre is still a
    target (it was once assumed to hold one); an empty part no longer drops its feature."""
    import rasterio.features
    from affine import Affine
    from shapely import from_wkt
    from shapely.geometry import Polygon, box, mapping

    from hsad.cube.vector_masks import _burn, _without_empty_parts

    grid = Affine(30, 0, 500000, 0, -30, 5100000)
    sliver = Polygon([grid * xy for xy in [(0, .4), (1100, 1100.4), (1100, 1100.6), (0, .6)]])
    assert _burn([mapping(sliver)], (20, 20), grid, every_shape=True).sum() > 0
    multi = from_wkt("MULTIPOLYGON (EMPTY, ((500000 5099900, 500070 5099900, "
                     "500070 5099970, 500000 5099970, 500000 5099900)))")
    assert _burn([mapping(_without_empty_parts(multi))], (20, 20), grid, True).sum() == 4
    nested = from_wkt(f"GEOMETRYCOLLECTION ({multi.wkt})")
    assert _burn([mapping(_without_empty_parts(nested))], (20, 20), grid, True).sum() == 4
    # corners on pixel centres: the pixels GDAL's centre rule burns, not their neighbours
    on_centres = mapping(box(*(grid * (5.5, 6.5)), *(grid * (6.5, 5.5))))
    alone = rasterio.features.rasterize([(on_centres, 1)], out_shape=(20, 20),
                                        transform=grid).sum()
    assert _burn([on_centres], (20, 20), grid, True).sum() == alone > 0


def test_invalid_polygons_outside_the_map_are_one_line(files, tmp_path, capsys):
    """Two features off the map, one a bow-tie (an invalid polygon): telling where they
    lie was GEOS's TopologyException, a traceback."""
    from shapely.geometry import Polygon, box

    bow = Polygon([(600100, 5000000), (600200, 5000100), (600200, 5000000),
                   (600100, 5000100)])
    off = _shapes_file(tmp_path / "off.gpkg", [box(600000, 5000000, 600010, 5000010), bow])
    code, _, err = run_cli(["evaluate", files["scores"], "--truth", off], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "off.gpkg: the ground truth lies outside the score map" in err


def test_targets_partly_outside_the_map_are_counted_in_a_warning(files, tmp_path, capsys):
    """A feature off the map was dropped unsaid: an analyst who digitised N targets got
    fewer and did not know why."""
    from shapely.geometry import box

    targets = _shapes_file(tmp_path / "t.gpkg", [_pixel_box(9, 18), _pixel_box(31, 40),
                                                  box(600000, 5000000, 600010, 5000010)])
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", targets, "--json"],
                             capsys)
    assert code == 0, err
    assert json.loads(out)["n_anomaly"] == 2
    assert "t.gpkg: 1 of 3 features of the ground truth mark no pixel of the score map" in err
    import shutil  # two maps: the targets are drawn on each, the warning said once

    other = shutil.copy(files["scores"], tmp_path / "other.tif")
    code, out, err = run_cli(["evaluate", files["scores"], other, "--truth", targets], capsys)
    assert code == 0 and err.count("mark no pixel") == 1, err
    inside = _shapes_file(tmp_path / "in.gpkg", [_pixel_box(9, 18), _pixel_box(31, 40)])
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", inside], capsys)
    assert code == 0 and "outside" not in err
    # across the left edge, holding a pixel centre only beyond it (not drawn, a target cut
    # by the map); touching the edge from outside; a sub-pixel target inside the first
    # column, between the edge and the centres (drawn): one line, two features not counted
    from shapely.geometry import box as box_

    x0, y0 = 500000.0, 5100000.0
    edge = _shapes_file(tmp_path / "edge.gpkg", [
        _pixel_box(9, 18), box_(x0 - 20, y0 - 110, x0 + 10, y0 - 95),
        box_(x0 - 60, y0 - 200, x0, y0 - 170), box_(x0 + 2, y0 - 298, x0 + 8, y0 - 292)])
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", edge, "--json"],
                             capsys)
    assert code == 0, err
    assert json.loads(out)["n_anomaly"] == 2
    assert err.count("2 of 4 features of the ground truth mark no pixel") == 1


def test_a_table_without_geometry_is_not_a_layer(files, tmp_path, capsys):
    """QGIS saves a layer's style into its GeoPackage as a table, ``layer_styles``: the
    file was refused as holding two layers, and naming the table was a traceback."""
    import pyogrio.raw

    path = _shapes_file(tmp_path / "styled.gpkg", [_pixel_box(9, 18), _pixel_box(31, 40)])
    pyogrio.raw.write(path, None, [np.array(["<qml/>"], dtype=object)], ["styleQML"],
                      layer="layer_styles", driver="GPKG", append=True)
    assert len(pyogrio.list_layers(path)) == 2
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", path, "--json"],
                             capsys)
    assert code == 0, err
    assert json.loads(out)["n_anomaly"] == 2
    code, _, err = run_cli(["evaluate", files["scores"], "--truth",
                            f"{path}|layername=layer_styles"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "styled.gpkg: layer 'layer_styles' holds no geometry" in err


def test_kml_and_flatgeobuf_targets(files, tmp_path, capsys):
    """Targets kept as KML (Google Earth) or FlatGeobuf are read like a GeoPackage's; they
    were refused as an unknown raster format."""
    import pyogrio.raw
    import shapely
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    boxes = [_pixel_box(9, 18), _pixel_box(31, 40)]
    expected = None
    for name, driver, crs in (("t.kml", "KML", "EPSG:4326"), ("t.fgb", "FlatGeobuf",
                                                               "EPSG:32633")):
        geoms = [g if crs == "EPSG:32633" else
                 shape(transform_geom("EPSG:32633", crs, mapping(g))) for g in boxes]
        wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
        pyogrio.raw.write(tmp_path / name, wkb, [], [], geometry_type="Polygon", crs=crs,
                          driver=driver)
        code, out, err = run_cli(["evaluate", files["scores"], "--truth", tmp_path / name,
                                  "--json"], capsys)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["n_anomaly"] == 2
        expected = expected or doc["auc_df"]
        assert doc["auc_df"] == expected


@pytest.mark.parametrize("frame", ["north-up", "rotated and sheared", "south-up"])
def test_the_features_said_to_mark_no_pixel_are_those_that_draw_none(frame):
    """The warning's count against each feature drawn alone: an edge on the last column's
    centre line, or a point on a rotated map's edge (its corners 1e-11 off), were
    miscounted. (A point exactly on a pixel corner of a rotated grid falls on either side
    at rounding level, for GDAL too: those are left out there.)"""
    import warnings

    from affine import Affine
    from shapely.geometry import LineString, Point, Polygon, mapping

    from hsad.cube.vector_masks import _burn, _check_placed

    t = {"north-up": Affine(30, 0, 500000, 0, -30, 4000000),
         "rotated and sheared": Affine.translation(500000, 4000000) @ Affine.rotation(23)
         @ Affine.shear(10, 5) @ Affine.scale(30, -30),
         "south-up": Affine(30, 0, 500000, 0, 30, 4000000)}[frame]
    rng = np.random.default_rng(1)
    shape, feats = (7, 9), []
    for _ in range(400):
        c, r = rng.uniform(-1.5, 10.5), rng.uniform(-1.5, 8.5)
        on = round(c * 2) / 2, round(r * 2) / 2  # on an edge or a centre line
        w, h = rng.uniform(0.05, 1.5, 2)
        feats += [mapping(Point(t @ (c, r))),
                  mapping(Point(t @ (on if frame != "rotated and sheared" else (r, c)))),
                  mapping(Polygon([t @ (on[0], r), t @ (on[0] + w, r),
                                   t @ (on[0] + w, r + h), t @ (on[0], r + h)])),
                  mapping(LineString([t @ (c, r), t @ (c + w - 0.7, r + h - 0.7)]))]
    alone = np.array([_burn([f], shape, t, True).any() for f in feats])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _check_placed(feats, t, shape, _burn(feats, shape, t, True), True, "t.gpkg",
                      "ground truth", "the score map")
    assert len(said) == 1
    assert f"{int((~alone).sum())} of {len(feats)} features" in str(said[0].message)


@pytest.mark.parametrize("dtype, kept", [("float32", np.float32), ("int16", np.float32),
                                         ("int32", np.float64), ("float64", np.float64)])
def test_maps_are_read_in_float32_where_it_holds_them(tmp_path, dtype, kept):
    """`hsad evaluate` reads a score map as float32 where that holds its values exactly
    (half the memory of float64), a ground truth always (1, 0, NaN): the same figures."""
    import rasterio

    from hsad.io.maps import read_single_band, read_truth
    from hsad.outputs.evaluation import evaluate_files

    rng = np.random.default_rng(3)
    truth = np.zeros((30, 40), np.uint8)
    truth[5:8, 10:14] = 1
    truth[0, :] = 255  # nodata of the mask: left out
    scores = (rng.normal(size=truth.shape) * 1000 + 3000 * (truth == 1)).astype(dtype)
    if dtype == "int32":
        scores[2, 2] = 2**24 + 1  # float32 would round it
    profile = dict(driver="GTiff", width=40, height=30, count=1, crs="EPSG:32633",
                   transform=Affine(30, 0, 500000, 0, -30, 4000000))
    with rasterio.open(tmp_path / "s.tif", "w", dtype=dtype, **profile) as f:
        f.write(scores, 1)
    with rasterio.open(tmp_path / "t.tif", "w", dtype="uint8", nodata=255, **profile) as f:
        f.write(truth, 1)
    values, _ = read_single_band(tmp_path / "s.tif", exact32=True)
    assert values.dtype == kept and np.array_equal(values, scores.astype(np.float64))
    gt, _ = read_truth(tmp_path / "t.tif")
    assert gt.dtype == np.float32 and np.isnan(gt[0]).all() and gt[6, 11] == 1
    result, read_scores, _ = evaluate_files(tmp_path / "s.tif", tmp_path / "t.tif")
    assert read_scores.dtype == kept
    assert result == evaluate(scores.astype(np.float64), np.where(truth == 255, np.nan, truth))


def test_a_truth_rasterised_with_nodata_0_is_read_as_the_api_reads_it(files, tmp_path, capsys):
    """QGIS's Rasterize declares nodata 0 on a 0/1 truth: ``evaluate()`` took 0 for the
    background, while ``hsad evaluate`` and ``detect --truth`` left every 0 out and refused
    the truth ("no background pixel")."""
    import rasterio
    import rioxarray

    path = tmp_path / "rasterised.tif"
    with rasterio.open(files["truth"]) as src:
        profile = {**src.profile, "nodata": 0}
        values = (src.read(1) == 1).astype(np.uint8)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    code, out, err = run_cli(["evaluate", files["scores"], "--truth", path, "--json"], capsys)
    assert code == 0, err
    want = evaluate(rioxarray.open_rasterio(files["scores"]), rioxarray.open_rasterio(path))
    assert json.loads(out)["auc_df"] == pytest.approx(want.auc_df, abs=1e-12)
    assert want.auc_df == pytest.approx(evaluate(files["rx"], files["gt"]).auc_df, abs=1e-12)
    code, _, err = run_cli(["detect", files["scores"], "-m", "rx", "-o", tmp_path / "s.tif",
                            "--truth", path], capsys)
    assert code == 0, err


def test_the_truths_own_mat_variable_among_the_maps_is_refused(files, tmp_path, capsys):
    """A truth-only MAT file among ``*.mat`` maps was read as a score map of its own truth:
    AUC 1 and every column's best."""
    truth = tmp_path / "truth.mat"
    scipy.io.savemat(truth, {"map": files["gt"].astype(np.uint8)})
    scores = tmp_path / "scores.mat"
    scipy.io.savemat(scores, {"scores": files["rx"]})
    assert f"error: {truth}: the ground truth's own variable given as a score map" in \
        _error([scores, truth, "--truth", truth], capsys)
    both = tmp_path / "both.mat"  # a MAT file may hold both: its map is still taken
    scipy.io.savemat(both, {"scores": files["rx"], "map": files["gt"].astype(np.uint8)})
    code, _, err = run_cli(["evaluate", both, "--scores-key", "scores", "--truth", both],
                           capsys)
    assert code == 0, err


def test_64_bit_integer_map_files_are_ranked_exactly_and_peaks_kept(tmp_path, capsys):
    """The last round ranked 64-bit integers beyond 2**53 exactly in ``evaluate()`` only:
    ``hsad evaluate`` of the same Int64 GeoTIFF read it through float64 (AUC 0.5, the
    τ-areas 0, in silence), and ``target_report`` gave the shifted peaks (1000 for
    2**60 + 1000)."""
    import rasterio
    from rasterio.transform import from_origin

    from hsad.outputs.targets import target_report

    rng = np.random.default_rng(0)
    truth = np.zeros((32, 32), np.uint8)
    truth[5:8, 5:8] = 1
    scores = np.full((32, 32), 2**60, np.int64) + rng.integers(0, 50, (32, 32))
    scores[truth == 1] = 2**60 + 51  # one above the background's top: float64 ties them
    profile = dict(driver="GTiff", height=32, width=32, count=1, crs="EPSG:32633",
                   transform=from_origin(0, 32, 1, 1))
    with rasterio.open(tmp_path / "s.tif", "w", dtype="int64", **profile) as dst:
        dst.write(scores, 1)
    with rasterio.open(tmp_path / "gt.tif", "w", dtype="uint8", **profile) as dst:
        dst.write(truth, 1)
    code, out, err = run_cli(["evaluate", tmp_path / "s.tif", "--truth", tmp_path / "gt.tif",
                              "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["auc_df"] == 1.0 == evaluate(scores, truth).auc_df
    peak = target_report(scores, truth).targets[0]["peak"]
    assert peak == pytest.approx(2.0**60, rel=1e-12)
