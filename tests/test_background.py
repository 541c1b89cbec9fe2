"""The user-chosen background area: masks, polygons in another CRS, raster masks, the
detectors whose statistics it restricts, and its refusals (API and CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

from hsad import detectors
from hsad.cube import make_cube
from hsad.cube.background import background_mask, fit_detector
from hsad.errors import HsadError, ParameterError
from hsad.nn.normalise import BandScaler

TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 5_100_000.0)
CRS = "EPSG:32633"
ROWS, COLS, BANDS = 20, 24, 5
LEFT = np.zeros((ROWS, COLS), bool)
LEFT[:, :COLS // 2] = True
STATISTICAL = ["rx", "utd", "rxd-utd", "local-mean-rx", "cluster-rx"]


def _halves(seed=0) -> np.ndarray:
    """Left half: N(100, A); right half: N(130, B), another mean and covariance."""
    rng = np.random.default_rng(seed)
    x = np.empty((ROWS, COLS, BANDS))
    for side, (mu, s) in enumerate(((100.0, 1.0), (130.0, 4.0))):
        cols = slice(0, COLS // 2) if side == 0 else slice(COLS // 2, COLS)
        mix = rng.normal(size=(BANDS, BANDS)) * 0.3 + np.eye(BANDS) * s
        x[:, cols] = rng.normal(size=(ROWS, COLS // 2, BANDS)) @ mix + mu
    return x.astype(np.float32)


def _cube(x=None):
    return make_cube(_halves() if x is None else x, transform=TRANSFORM, crs=CRS)


def _left_polygon():
    """The left half's outline in map coordinates (pixel edges, so centres are clear)."""
    x0, y0 = TRANSFORM @ (0, 0)
    x1, y1 = TRANSFORM @ (COLS // 2, ROWS)
    return box(x0, y1, x1, y0)


def _geojson_4326(path, geom):
    feats = [{"type": "Feature", "properties": {},
              "geometry": transform_geom(CRS, "EPSG:4326", mapping(geom))}]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _mask_tif(path, mask, transform=TRANSFORM):
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0],
                       count=1, dtype="uint8", crs=CRS, transform=transform) as dst:
        dst.write(mask.astype(np.uint8), 1)
    return path


def test_every_form_gives_the_same_mask(tmp_path):
    import pyogrio.raw
    import shapely

    cube = _cube()
    np.testing.assert_array_equal(background_mask(cube, LEFT), LEFT)
    np.testing.assert_array_equal(background_mask(cube, [_left_polygon()]), LEFT)
    # polygons in geographic coordinates, reprojected to the scene's UTM grid
    np.testing.assert_array_equal(
        background_mask(cube, _geojson_4326(tmp_path / "left.geojson", _left_polygon())), LEFT)
    gpkg = tmp_path / "left.gpkg"
    pyogrio.raw.write(gpkg, np.array([shapely.to_wkb(_left_polygon())], dtype=object), [],
                      [], geometry_type="Polygon", crs=CRS, driver="GPKG")
    np.testing.assert_array_equal(background_mask(cube, gpkg), LEFT)
    np.testing.assert_array_equal(background_mask(cube, _mask_tif(tmp_path / "m.tif", LEFT)),
                                  LEFT)
    assert background_mask(cube, None) is None


def _write_polygons(path, geom, **kwargs):
    import pyogrio.raw
    import shapely

    pyogrio.raw.write(path, np.array([shapely.to_wkb(geom)], dtype=object), [], [],
                      geometry_type="Polygon", crs=CRS, **kwargs)
    return path


def test_shapefiles_and_one_layer_of_a_geopackage(tmp_path):
    cube = _cube()
    shp = _write_polygons(tmp_path / "left.shp", _left_polygon(), driver="ESRI Shapefile")
    np.testing.assert_array_equal(background_mask(cube, shp), LEFT)
    gpkg = _write_polygons(tmp_path / "areas.gpkg", box(0, 0, 10, 10), layer="far",
                           driver="GPKG")
    _write_polygons(gpkg, _left_polygon(), layer="left", driver="GPKG", append=True)
    np.testing.assert_array_equal(background_mask(cube, f"{gpkg}|layername=left"), LEFT)
    with pytest.raises(ParameterError, match=r"holds 2 layers \(far, left\); name one: "
                                             r"'.*areas.gpkg\|layername=far'"):
        background_mask(cube, gpkg)
    with pytest.raises(ParameterError, match=r"no layer 'water' \(layers: far, left\)"):
        background_mask(cube, f"{gpkg}|layername=water")


def test_a_layer_named_by_its_index_as_qgis_writes_it(tmp_path):
    # QGIS's layer source for a file of several layers may read 'areas.gpkg|layerid=1'
    cube = _cube()
    gpkg = _write_polygons(tmp_path / "areas.gpkg", box(0, 0, 10, 10), layer="far",
                           driver="GPKG")
    _write_polygons(gpkg, _left_polygon(), layer="left", driver="GPKG", append=True)
    np.testing.assert_array_equal(background_mask(cube, f"{gpkg}|layerid=1"), LEFT)
    np.testing.assert_array_equal(
        background_mask(cube, f"{gpkg}|layerid=1|geometrytype=Polygon"), LEFT)
    with pytest.raises(ParameterError, match=r"no layer 5 \(the file holds 2, from 0\)"):
        background_mask(cube, f"{gpkg}|layerid=5")
    # a filter of features is not silently read as the whole layer
    with pytest.raises(ParameterError, match=r"'\|subset=' of a QGIS data source is not read"):
        background_mask(cube, f'{gpkg}|layername=left|subset="id" = 3')


@pytest.mark.parametrize("name", STATISTICAL)
def test_the_area_restricts_the_statistics(name):
    # the left half alone, as its own cube, gives the statistics a left-half background gives
    x = _halves()
    det = detectors.get(name, dtype="float64").fit(_cube(x), background=LEFT)
    alone = detectors.get(name, dtype="float64").fit(make_cube(x[:, :COLS // 2]))
    scene = detectors.get(name, dtype="float64").fit(_cube(x))
    left = x[:, :COLS // 2].reshape(-1, BANDS).astype(np.float64)
    np.testing.assert_allclose(det.mean_, left.mean(0), rtol=1e-12)
    assert not np.allclose(scene.mean_, left.mean(0), rtol=1e-3)
    if name == "cluster-rx":
        np.testing.assert_allclose(np.sort(det.centres_, axis=0),
                                   np.sort(alone.centres_, axis=0), rtol=1e-9)
    else:
        np.testing.assert_allclose(det.cov_, np.cov(left.T, bias=True), rtol=1e-9,
                                   atol=1e-12)
    # and the whole scene is scored with them: equal to the left-only model applied to it
    np.testing.assert_allclose(det.score(_cube(x)).values, alone.score(_cube(x)).values,
                               rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", ["rx", "utd", "local-mean-rx"])
def test_an_area_over_no_data_says_so_not_that_bands_are_gappy(name):
    """A background over the scene's nodata pixels was refused with "no pixel holds data in
    every good band (each lacks some band: choose fewer bands …)", though every band held
    data elsewhere: advice that sent the user to the bands."""
    x = _halves()
    x[:, : COLS // 2] = np.nan  # the left half holds no data; the right half does
    with pytest.raises(ParameterError, match="the background area holds no valid pixel: "
                       "every pixel in it is nodata, excluded"):
        detectors.get(name).fit(_cube(x), background=LEFT)
    with pytest.raises(ParameterError, match="no pixel holds data in every good band"):
        gappy = _halves()  # no pixel whole anywhere: the bands are the trouble, as before
        gappy[::2, :, 0] = np.nan
        gappy[1::2, :, 1] = np.nan
        detectors.get(name).fit(_cube(gappy), background=LEFT)


def test_a_mask_whose_nodata_value_is_its_marked_class_says_so(tmp_path):
    """A 0/255 mask whose nodata is 255 (QGIS's Rasterize with the burn value as nodata):
    --background said "holds no pixel", --valid-mask "excludes every pixel", and
    --train-mask "the training region holds no pixel", naming the scene, not the mask."""
    from hsad.cube.background import raster_mask
    from hsad.nn.sampling import region_mask

    path = _mask_tif(tmp_path / "m.tif", LEFT * 255)
    with rasterio.open(path, "r+") as dst:
        dst.nodata = 255
    for what in ("background mask", "valid mask"):
        with pytest.raises(ParameterError, match=f"the {what} marks no pixel: its nodata "
                           f"value, 255, leaves {LEFT.sum()} pixels out") as caught:
            raster_mask(path, _cube(), what=what)
        assert caught.value.path == str(path) or str(caught.value).startswith(str(path))
    with pytest.raises(ParameterError, match="the training mask marks no pixel: its nodata "
                       "value, 255") as caught:
        region_mask(_cube(), mask=path)
    assert str(path) in str(caught.value)


def test_neural_training_sample_comes_from_the_area():
    params = dict(hidden=8, depth=1, epochs=1, batch_size=64, sample_size=10_000,
                  progress=False, device="cpu")
    upper = np.triu(np.ones((ROWS, COLS), bool))
    for area, kwargs in ((LEFT, {}), (LEFT & upper, {"train_mask": upper})):
        det = detectors.get("ae", **params).fit(_cube(), background=LEFT, **kwargs)
        assert det.n_train_ == area.sum()
        # the very pixels of the area (the halves differ in mean and spread): the scaler the
        # network learnt is the one of the area's own pixels
        own = BandScaler.fit(_halves()[area], det.scaler_.method)
        np.testing.assert_allclose(det.scaler_.centre, own.centre, rtol=1e-5)
        np.testing.assert_allclose(det.scaler_.scale, own.scale, rtol=1e-5)


def test_bad_areas_are_one_line_errors(tmp_path):
    cube = _cube()
    far = box(0, 0, 10, 10)  # metres from the UTM origin: nowhere near the scene
    cases = [
        (np.zeros((ROWS, COLS), bool), "holds no pixel"),
        (np.ones((3, 3), bool), "does not match the scene"),
        ([far], "lies outside the scene"),
        (_geojson_4326(tmp_path / "far.geojson", far), "lies outside the scene"),
        (_mask_tif(tmp_path / "small.tif", np.ones((5, 5), bool)), "not the scene's grid"),
        (_mask_tif(tmp_path / "moved.tif", LEFT, TRANSFORM @ Affine.translation(3, 0)),
         "not on the scene's grid"),
        (tmp_path / "missing.gpkg", "not found"),
    ]
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    cases.append((empty, "holds no geometry"))
    for area, message in cases:
        with pytest.raises(HsadError, match=message) as err:
            detectors.get("rx").fit(cube, background=area)
        assert "\n" not in str(err.value)


def test_a_mask_array_is_its_nonzero_pixels_nan_and_zero_left_out():
    """Background, training and label masks given as arrays read alike: a float mask with
    NaN outside the area once trained a network on the NaN pixels too."""
    from hsad.cube.background import array_mask
    from hsad.nn.sampling import region_mask

    cube = _cube()
    values = np.where(LEFT, 1.0, np.nan)
    values[0, -1] = 0.0
    assert np.array_equal(array_mask(values, cube), LEFT)
    assert np.array_equal(region_mask(cube, mask=values), LEFT)
    assert np.array_equal(background_mask(cube, values), LEFT)
    with pytest.raises(ParameterError, match="training mask must hold numbers"):
        region_mask(cube, mask=np.full((ROWS, COLS), "a"))


@pytest.mark.parametrize("name", ["lrx", "crd"])
def test_local_detectors_refuse_a_background(name):
    with pytest.raises(ParameterError, match="does not apply"):
        fit_detector(detectors.get(name), _cube(), LEFT)


def _cli(args, capsys):
    from hsad.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code, capsys.readouterr()


def test_cli_background_equals_the_api_and_is_an_input(tmp_path, capsys):
    from hsad import open_cube
    from hsad.io.envi_writer import write_envi

    scene = tmp_path / "scene.img"
    write_envi(_cube(), scene)
    area = _geojson_4326(tmp_path / "left.geojson", _left_polygon())
    code, out = _cli(["detect", scene, "-m", "rxd-utd", "--background", area, "--no-progress",
                      "-o", tmp_path / "s.tif"], capsys)
    assert code == 0, out.err
    with rasterio.open(tmp_path / "s.tif") as src:
        got = src.read(1)
    ref = detectors.get("rxd-utd").fit(open_cube(scene), background=LEFT).score(
        open_cube(scene)).values
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    mask = _mask_tif(tmp_path / "left.tif", LEFT)
    code, out = _cli(["detect", scene, "-m", "rx", "--background", mask, "--overwrite",
                      "-o", mask], capsys)
    assert code == 2 and "input" in out.err and out.err.count("\n") == 1
    code, out = _cli(["detect", scene, "-m", "lrx", "--background", mask, "-o",
                      tmp_path / "l.tif"], capsys)
    assert code == 2 and out.err.startswith("error: ") and "does not apply" in out.err
    code, out = _cli(["detect", scene, "-m", "rx", "--background",
                      _geojson_4326(tmp_path / "far.geojson", box(0, 0, 10, 10)), "-o",
                      tmp_path / "f.tif"], capsys)
    assert code == 2 and out.err == f"error: {tmp_path / 'far.geojson'}: the background " \
                                    "area lies outside the scene\n"


def test_cli_train_samples_the_background_area(tmp_path, capsys):
    from hsad.io.envi_writer import write_envi

    scene = tmp_path / "scene.img"
    write_envi(_cube(), scene)
    area = _mask_tif(tmp_path / "left.tif", LEFT)
    code, out = _cli(["train", scene, "-m", "ae", "-p", "hidden=8", "-p", "depth=1",
                      "-p", "sample_size=10000", "--epochs", 1, "--device", "cpu", "--no-progress",
                      "--background", area, "-o", tmp_path / "m.hsad"], capsys)
    assert code == 0, out.err
    assert f"trained on {LEFT.sum()} pixels" in out.out
    # the very pixels of the area: the saved model's scaler is the one of the left half
    from hsad.nn.persistence import load_detector

    det = load_detector(tmp_path / "m.hsad")
    own = BandScaler.fit(_halves()[LEFT], det.scaler_.method)
    np.testing.assert_allclose(det.scaler_.centre, own.centre, rtol=1e-5)
    np.testing.assert_allclose(det.scaler_.scale, own.scale, rtol=1e-5)


def test_polygons_over_a_scene_without_georeference_use_qgis_pixel_frame(tmp_path):
    """Drawn in QGIS over a raster without geotransform, a box over rows 2–3 and columns 3–5
    has y from −4 to −2; hsad's own polygons of such a scene come back to the same pixels."""
    from hsad.cube import map_like
    from hsad.outputs.polygons import polygons, write_polygons

    cube = make_cube(np.zeros((10, 12, 3), np.float32))
    expected = np.zeros((10, 12), bool)
    expected[2:4, 3:6] = True
    assert np.array_equal(background_mask(cube, box(3, -4, 6, -2)), expected)
    with pytest.warns(UserWarning, match="y = −row"):
        path = write_polygons(polygons(map_like(cube, expected)), tmp_path / "area.gpkg")
    assert np.array_equal(background_mask(cube, str(path)), expected)
