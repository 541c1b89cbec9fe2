"""Anomaly regions as polygons in the scene CRS, written as GeoJSON and GeoPackage."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import rasterio.transform
import shapely
from affine import Affine
from pyogrio.raw import read
from rasterio.crs import CRS

from hsad.cube import make_cube, map_like
from hsad.errors import ParameterError
from hsad.outputs.polygons import polygons, regions, write_polygons, write_regions

TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_650_000.0)


def _scene_mask():
    rows, cols = 20, 24
    mask = np.zeros((rows, cols), bool)
    mask[2:5, 3:6] = True  # 9-pixel square
    mask[10, 10] = mask[11, 11] = True  # diagonal pair: one region only with 8-connectivity
    mask[15:17, 20:24] = True  # touches the right edge
    mask[0, 0] = True  # single corner pixel
    scores = np.arange(rows * cols, dtype=np.float64).reshape(rows, cols)
    cube = make_cube(np.zeros((rows, cols, 2), np.float32), transform=TRANSFORM, crs="EPSG:32633")
    return map_like(cube, mask, name="mask"), map_like(cube, scores)


def test_regions_areas_and_scores_in_map_coordinates():
    mask, scores = _scene_mask()
    feats = polygons(mask, scores)
    assert [f["properties"]["id"] for f in feats] == [1, 2, 3, 4]
    px_area = abs(TRANSFORM.determinant)
    m, s = mask.values, scores.values
    bounds = shapely.box(*mask.rio.bounds())
    total_px = 0
    for f in feats:
        p = f["properties"]
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.is_valid and bounds.covers(geom)
        assert p["area_map"] == pytest.approx(p["area_px"] * px_area)
        # UTM: metres, within the projection's scale (0.9996 on the central meridian)
        assert p["area_m2"] == pytest.approx(p["area_map"], rel=2e-3)
        # the region's pixels are those whose centre lies inside the polygon
        rows, cols = np.nonzero(m)
        xs, ys = (np.asarray(v) for v in rasterio.transform.xy(TRANSFORM, rows, cols))
        inside = shapely.contains_xy(geom, xs, ys)
        assert inside.sum() == p["area_px"]
        assert p["peak_score"] == s[rows[inside], cols[inside]].max()
        assert p["mean_score"] == pytest.approx(s[rows[inside], cols[inside]].mean())
        assert (p["centroid_x"], p["centroid_y"]) == pytest.approx((xs[inside].mean(),
                                                                    ys[inside].mean()))
        total_px += p["area_px"]
    assert total_px == m.sum()
    assert sorted(f["properties"]["area_px"] for f in feats) == [1, 2, 8, 9]


def test_connectivity_and_min_pixels():
    mask, _ = _scene_mask()
    assert len(polygons(mask, connectivity=4)) == 5  # the diagonal pair splits
    big = polygons(mask, min_pixels=3)
    assert [f["properties"]["area_px"] for f in big] == [9, 8]
    assert [f["id"] for f in big] == [1, 2]
    assert "peak_score" not in big[0]["properties"]
    with pytest.raises(ParameterError, match="connectivity"):
        polygons(mask, connectivity=6)
    with pytest.raises(ParameterError, match="min_pixels"):
        polygons(mask, min_pixels=0)


def test_plain_array_uses_qgis_pixel_frame_or_given_transform():
    """Without georeference, QGIS draws a raster with pixel size (1, −1): x = column,
    y = −row. Polygons in that frame lie on the raster there."""
    m = np.zeros((5, 5), np.uint8)
    m[1:3, 2] = 1
    (f,) = polygons(m)
    assert shapely.geometry.shape(f["geometry"]).bounds == (2.0, -3.0, 3.0, -1.0)
    (h,) = polygons(make_cube(m[:, :, None]).isel(band=0))  # a DataArray without georef
    assert h["geometry"] == f["geometry"]
    (g,) = polygons(m, transform=TRANSFORM)
    assert g["properties"]["area_map"] == 2 * 900.0


def test_write_read_back_keeps_crs_geometry_and_fields(tmp_path):
    mask, scores = _scene_mask()
    feats = polygons(mask, scores)
    path = write_polygons(feats, tmp_path / "regions.gpkg", crs=mask.rio.crs)
    info = pyogrio.read_info(path)
    assert CRS.from_user_input(info["crs"]) == CRS.from_epsg(32633)
    assert info["features"] == len(feats)
    meta, _, geometry, field_data = read(path)
    fields = list(meta["fields"])
    assert fields == list(feats[0]["properties"])
    areas = shapely.area(shapely.from_wkb(geometry))
    np.testing.assert_allclose(areas, [f["properties"]["area_map"] for f in feats])
    np.testing.assert_array_equal(field_data[fields.index("area_px")],
                                  [f["properties"]["area_px"] for f in feats])
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_geojson_follows_rfc_7946(tmp_path):
    """WGS 84 lon/lat (reprojected by GDAL), counter-clockwise outer rings, no crs member;
    the fields keep the scene CRS's areas and centroids."""
    import json

    from rasterio.warp import transform_geom

    mask, scores = _scene_mask()
    feats = polygons(mask, scores)
    path = write_polygons(feats, tmp_path / "regions.geojson", crs=mask.rio.crs)
    doc = json.loads(path.read_text())
    assert "crs" not in doc and pyogrio.read_info(path)["crs"] == "EPSG:4326"
    for f, g in zip(feats, doc["features"], strict=True):
        assert g["properties"]["area_map"] == pytest.approx(f["properties"]["area_map"])
        written = shapely.geometry.shape(g["geometry"])
        expected = shapely.geometry.shape(transform_geom("EPSG:32633", "EPSG:4326",
                                                         f["geometry"]))
        # RFC 7946's 7 decimals (about 1 cm) move each edge by at most 1e-7 degrees
        assert written.symmetric_difference(expected).area < 1e-7 * expected.length
        for poly in getattr(written, "geoms", [written]):
            assert poly.exterior.is_ccw
        assert 12.0 < written.centroid.x < 16.0 and 40.0 < written.centroid.y < 43.0


def test_geojson_of_a_scene_without_crs_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="no CRS.*RFC 7946.*gpkg"):
        write_polygons(polygons(np.eye(3, dtype=bool)), tmp_path / "r.geojson")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".json", ".gpkg"])
def test_empty_mask_writes_a_valid_empty_layer(tmp_path, suffix):
    feats = polygons(np.zeros((8, 8), bool))
    assert feats == []
    path = write_polygons(feats, tmp_path / f"none{suffix}", crs="EPSG:32633")
    info = pyogrio.read_info(path)
    assert info["features"] == 0
    expected = CRS.from_epsg(4326 if suffix == ".json" else 32633)
    assert CRS.from_user_input(info["crs"]) == expected


def test_an_empty_layer_has_the_fields_of_a_full_one(tmp_path):
    mask, scores = _scene_mask()
    full = write_polygons(polygons(mask, scores), tmp_path / "full.gpkg", crs=mask.rio.crs)
    empty = write_polygons(polygons(mask & False, scores), tmp_path / "empty.gpkg",
                           crs=mask.rio.crs, with_scores=True)
    assert list(pyogrio.read_info(empty)["fields"]) == list(pyogrio.read_info(full)["fields"])


def test_a_failed_write_is_one_output_error_and_leaves_nothing(tmp_path, monkeypatch):
    import pyogrio.raw
    from pyogrio.errors import FeatureError

    from hsad.errors import OutputError

    def fail(*args, **kwargs):
        raise FeatureError("Cannot write feature")

    monkeypatch.setattr(pyogrio.raw, "write", fail)
    mask, scores = _scene_mask()
    with pytest.raises(OutputError, match="cannot write polygons: Cannot write feature"):
        write_polygons(polygons(mask, scores), tmp_path / "r.gpkg", crs=mask.rio.crs)
    assert list(tmp_path.iterdir()) == []
    # a full disk: SQLite's "no such table: gpkg_contents" said nothing of it
    from types import SimpleNamespace

    from hsad.io import atomic

    full = SimpleNamespace(total=2**30, used=2**30 - 40960, free=40960)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: full)
    with pytest.raises(OutputError, match="cannot write polygons: no space left on device"):
        write_polygons(polygons(mask, scores), tmp_path / "r.gpkg", crs=mask.rio.crs)


@pytest.mark.parametrize("proj4", [
    "+proj=tmerc +lon_0=13.1 +k=0.9996 +x_0=500000 +ellps=WGS84 +units=m",
    "+proj=utm +zone=33 +ellps=intl +units=m",  # to_epsg() at 70 % says ED50: it is not
])
def test_a_crs_without_its_own_epsg_code_is_kept_exactly(tmp_path, proj4):
    """The GeoPackage keeps the scene's CRS as WKT; the GeoJSON is reprojected from that
    CRS, not from a lookalike EPSG code (ED50 would move it by about 120 m)."""
    from rasterio.warp import transform_geom

    crs = CRS.from_proj4(proj4)
    feats = polygons(np.eye(3, dtype=bool), transform=TRANSFORM)
    path = write_polygons(feats, tmp_path / "r.gpkg", crs=crs)
    assert CRS.from_user_input(pyogrio.read_info(path)["crs"]) == crs
    path = write_polygons(feats, tmp_path / "r.geojson", crs=crs)
    _, _, wkb, _ = read(path)
    expected = transform_geom(crs, "EPSG:4326", feats[0]["geometry"])
    got = shapely.from_wkb(wkb[0])
    assert got.centroid.distance(shapely.geometry.shape(expected).centroid) < 1e-7


def test_unknown_suffix_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match="unknown polygon format"):
        write_polygons([], tmp_path / "r.shp.zip")


@pytest.mark.parametrize("connectivity", [4, 8])
def test_regions_are_the_polygons_as_arrays_and_valid_on_a_speckled_mask(tmp_path,
                                                                          connectivity):
    """A speckled mask (30 % of pixels; many regions of pixels meeting at corners): every
    region a valid (Multi)Polygon covering exactly its pixels; :func:`regions` and
    :func:`write_regions` (what `hsad detect --polygons` writes, without a GeoJSON dict a
    region) give the same geometries and fields as the feature dicts."""
    rng = np.random.default_rng(1)
    mask = rng.random((120, 100)) < 0.3
    scores = rng.random(mask.shape)
    geoms, props = regions(mask, scores, connectivity=connectivity, transform=TRANSFORM)
    assert shapely.is_valid(geoms).all()
    np.testing.assert_allclose(props["area_map"], props["area_px"] * 900.0)
    assert shapely.union_all(geoms).area == pytest.approx(mask.sum() * 900.0)
    if connectivity == 8:  # pixels meeting at a corner: one region, its parts gathered
        assert (shapely.get_type_id(geoms) == shapely.GeometryType.MULTIPOLYGON).any()
    feats = polygons(mask, scores, connectivity=connectivity, transform=TRANSFORM)
    a = write_regions(geoms, props, tmp_path / "a.gpkg", crs="EPSG:32633", with_scores=True)
    b = write_polygons(feats, tmp_path / "b.gpkg", crs="EPSG:32633", with_scores=True)
    (_, _, ga, fa), (_, _, gb, fb) = read(a), read(b)
    assert shapely.equals(shapely.from_wkb(ga), shapely.from_wkb(gb)).all()
    for x, y in zip(fa, fb, strict=True):
        np.testing.assert_array_equal(x, y)


def test_area_in_square_metres_is_the_ground_area_in_every_crs():
    """``area_m2``: the ground area on the ellipsoid, whatever the CRS's unit and map scale
    (US survey feet; Web Mercator, whose areas grow as 1/cos² of the latitude; degrees);
    NaN in pixels."""
    from pyproj import Geod

    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    feet = make_cube(np.zeros((6, 8, 1), np.float32), crs="EPSG:2230",
                     transform=Affine(100.0, 0, 6_000_000.0, 0, -100.0, 2_000_000.0))
    [f] = polygons(map_like(feet, mask))  # a state plane: map scale within 1e-4 of 1
    assert f["properties"]["area_m2"] == pytest.approx(6 * 100 ** 2 * (1200 / 3937) ** 2,
                                                       rel=5e-4)
    lat = 45.0
    mercator = make_cube(np.zeros((6, 8, 1), np.float32), crs="EPSG:3857",
                         transform=Affine(30.0, 0, 1_000_000.0, 0, -30.0, 5_621_521.0))
    [f] = polygons(map_like(mercator, mask))  # y = 5 621 521 m is 45.0 degrees north
    expected = 6 * 30.0 ** 2 * np.cos(np.radians(lat)) ** 2  # on the sphere; the ellipsoid
    assert f["properties"]["area_m2"] == pytest.approx(expected, rel=5e-3)  # differs by <0.5%
    assert f["properties"]["area_map"] == pytest.approx(6 * 30.0 ** 2)
    # NTF Paris Lambert II: its geographic CRS is in grads from the Paris meridian; against
    # the area in an equal-area projection centred on the region
    from pyproj import Transformer

    paris = make_cube(np.zeros((6, 8, 1), np.float32), crs="EPSG:27572",
                      transform=Affine(100.0, 0, 600_000.0, 0, -100.0, 2_400_000.0))
    [p] = polygons(map_like(paris, mask))
    laea = Transformer.from_crs("EPSG:27572", "+proj=laea +lat_0=46.5 +lon_0=2.35 "
                                "+ellps=clrk80ign", always_xy=True)
    drawn = shapely.transform(shapely.geometry.shape(p["geometry"]),
                              lambda xy: np.column_stack(laea.transform(xy[:, 0], xy[:, 1])))
    assert p["properties"]["area_m2"] == pytest.approx(drawn.area, rel=1e-4)
    [g] = polygons(map_like(mercator, mask), transform=mercator.rio.transform())
    assert g["properties"]["area_m2"] == f["properties"]["area_m2"]  # the map's CRS kept
    step = 0.01
    degrees = make_cube(np.zeros((6, 8, 1), np.float32), crs="EPSG:4326",
                        transform=Affine(step, 0, 10.0, 0, -step, 60.0))
    [f] = polygons(map_like(degrees, mask))
    cells = 0.0
    for r, c in zip(*np.nonzero(mask), strict=True):  # each cell on the ellipsoid
        lon, lat = 10.0 + c * step, 60.0 - r * step
        cells += abs(Geod(ellps="WGS84").polygon_area_perimeter(
            [lon, lon + step, lon + step, lon], [lat, lat, lat - step, lat - step])[0])
    # geodesic edges: the region's long edges are not the cells' short ones (2.5e-8 apart)
    assert f["properties"]["area_m2"] == pytest.approx(cells, rel=1e-6)
    assert 3.6e6 < cells < 3.9e6  # 6 cells of about 0.56 x 1.11 km at 60 degrees north
    [f] = polygons(mask)
    assert np.isnan(f["properties"]["area_m2"])


def test_features_read_back_from_geojson_keep_numeric_fields(tmp_path):
    """GeoJSON stores NaN as null: features read back hold None among numbers, which stay
    numbers; only fields of text (a library's material names) are written as text."""
    import json

    mask = np.zeros((6, 6), bool)
    mask[1, 1] = mask[4, 4] = True
    features = json.loads(json.dumps(polygons(mask)).replace("NaN", "null"))
    features[0]["properties"]["centroid_x"] = None
    features[0]["properties"]["material"] = "bitumen"
    features[1]["properties"]["material"] = ""
    with pytest.warns(UserWarning, match="no CRS"):
        write_polygons(features, tmp_path / "back.gpkg", crs=None)
    fields = read(tmp_path / "back.gpkg")[3]
    names = list(pyogrio.read_info(tmp_path / "back.gpkg")["fields"])
    centroid = fields[names.index("centroid_x")]
    assert centroid.dtype == np.float64 and np.isnan(centroid[0]) and centroid[1] == 4.5
    assert list(fields[names.index("material")]) == ["bitumen", ""]
