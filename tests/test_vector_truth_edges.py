"""Vector masks at their edges (hsad.cube.vector_masks): an EMIT granule's first instrument line,
a target smaller than a pixel on the map's left edge, and the messages for a GeoJSON
whose coordinates are not longitude/latitude, a GeoPackage of attribute tables only and
features with empty geometries."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import box, mapping
from test_emit import (
    COLS,
    GEOTRANSFORM,
    GRID_COLS,
    GRID_ROWS,
    ROWS,
    lookup_tables,
    write_granule,
)

from hsad.cube import make_cube
from hsad.cube.vector_masks import vector_mask
from hsad.errors import ParameterError
from hsad.io import open_cube

#: 10 x 10 pixels of 1 unit, x = column, y = 10 - row
GRID = Affine(1, 0, 0, 0, -1, 10)


def _cube(crs):
    return make_cube(np.zeros((10, 10, 2), np.float32), transform=GRID, crs=crs)


def _gpkg(path, geoms, crs):
    import pyogrio.raw

    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    pyogrio.raw.write(path, wkb, [], [], geometry_type="Polygon", crs=crs, driver="GPKG")
    return path


def _geojson(path, geometries):
    """A GeoJSON without a ``crs`` member (read as EPSG:4326)."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": g} for g in geometries]}))
    return path


def _quietly(call):
    """``call()`` and the messages of the UserWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call()
    return out, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_polygons_on_an_emit_grid_keep_the_pixels_of_the_first_line(tmp_path):
    """A polygon over the whole map grid of a granule takes every pixel a cell of its
    lookup table holds, those of instrument line 0 (0-based) among them."""
    path = tmp_path / "EMIT_L2A_RFL_001_20240101T000000_2400101_001.nc"
    write_granule(path)
    gx, gy = lookup_tables()
    expected = np.zeros((ROWS, COLS), bool)
    held = gx > 0
    expected[gy[held] - 1, gx[held] - 1] = True
    assert expected[0].any()  # the table holds pixels of the first line
    x0, dx, _, y0, _, dy = GEOTRANSFORM
    whole = box(x0, y0 + GRID_ROWS * dy, x0 + GRID_COLS * dx, y0)
    mask = vector_mask(_gpkg(tmp_path / "all.gpkg", [whole], "EPSG:4326"), open_cube(path))
    np.testing.assert_array_equal(mask, expected)
    assert mask[0].sum() == expected[0].sum() > 0


def test_a_sub_pixel_target_on_the_left_edge_is_drawn_beside_another_target(tmp_path):
    """A target smaller than a pixel reaching past the left edge (its nearest centre lies
    on its edge, off the map) is drawn by the pixel it touches, column 0; another target
    at the right edge of the same row does not stand in for it."""
    left = box(-0.5, 6.2, 0.3, 6.8)  # row 3, columns -1 and 0
    right = box(9.2, 6.2, 9.8, 6.8)  # row 3, column 9
    path = _gpkg(tmp_path / "t.gpkg", [left, right], "EPSG:32633")
    mask, said = _quietly(lambda: vector_mask(path, _cube("EPSG:32633"), what="ground truth",
                                              every_shape=True))
    assert sorted(map(tuple, np.argwhere(mask).tolist())) == [(3, 0), (3, 9)]
    assert not any("mark no pixel" in m for m in said), said
    alone = _gpkg(tmp_path / "alone.gpkg", [left], "EPSG:32633")
    assert np.argwhere(vector_mask(alone, _cube("EPSG:32633"), what="ground truth",
                                   every_shape=True)).tolist() == [[3, 0]]


def test_a_geojson_in_metres_on_a_lon_lat_scene_says_how_it_was_read(tmp_path):
    """Coordinates that are no longitude/latitude (a northing of 5000) in a GeoJSON read as
    EPSG:4326, on a scene in EPSG:4326: the error says why nothing was placed."""
    path = _geojson(tmp_path / "p.geojson", [mapping(box(100, 5000, 110, 5010))])
    with pytest.raises(ParameterError) as exc:
        vector_mask(path, _cube("EPSG:4326"), what="ground truth", every_shape=True)
    assert str(exc.value) == (
        f"{path}: the ground truth lies outside the scene (its coordinates are not "
        "longitude/latitude, and a GeoJSON without a 'crs' member is read as EPSG:4326)")
    # longitude/latitude outside the scene: no hint
    near = _geojson(tmp_path / "near.geojson", [mapping(box(100, 50, 110, 60))])
    with pytest.raises(ParameterError) as exc:
        vector_mask(near, _cube("EPSG:4326"), what="ground truth", every_shape=True)
    assert str(exc.value) == f"{near}: the ground truth lies outside the scene"


def test_a_geopackage_of_attribute_tables_only_says_so(tmp_path):
    import pyogrio.raw

    path = tmp_path / "attrs.gpkg"
    pyogrio.raw.write(path, None, [np.array([1, 2])], ["a"], driver="GPKG",
                      geometry_type=None, layer="tab")
    with pytest.raises(ParameterError) as exc:
        vector_mask(path, _cube("EPSG:32633"))
    assert str(exc.value) == (f"{path}: the file holds tables of attributes only, no layer "
                              "of geometries")


def test_features_with_empty_geometry_are_no_features(tmp_path):
    """An empty geometry marks nothing and is not counted among the features that mark no
    pixel; a file of empty geometries only holds no geometry."""
    empty = {"type": "Polygon", "coordinates": []}
    path = _geojson(tmp_path / "e.geojson", [empty, mapping(box(2, 2, 5, 5))])
    for kwargs in ({"what": "ground truth", "every_shape": True}, {}):
        mask, said = _quietly(lambda kw=kwargs: vector_mask(path, _cube("EPSG:4326"), **kw))
        assert mask.sum() == 9 and mask[5:8, 2:5].all()
        assert not any("mark no pixel" in m for m in said), said
    only = _geojson(tmp_path / "only.geojson", [empty])
    for kwargs in ({"what": "ground truth", "every_shape": True}, {}):
        with pytest.raises(ParameterError) as exc:
            vector_mask(only, _cube("EPSG:4326"), **kwargs)
        what = kwargs.get("what", "background area")
        assert str(exc.value) == f"{only}: the {what} holds no geometry"
