"""Ground truths and background areas across the antimeridian (hsad.cube.antimeridian):
hsad's own RFC 7946 GeoJSON of a scene that spans 180°, split at ±180° and wrapped to
-180..180, read back on that scene in longitude/latitude and in UTM zone 60."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from affine import Affine

from hsad.cube import make_cube
from hsad.cube.vector_masks import vector_mask
from hsad.outputs.polygons import polygons, write_polygons

#: 40 x 100 pixels of 1e-4 degrees from 179.995°E: column 50 starts at 180°
LON_LAT = Affine(1e-4, 0, 179.995, 0, -1e-4, -10.0)
#: UTM 60S: 10 m pixels at 10°S, the 180° meridian (x = 828 929 m) near column 50
UTM_60S = Affine(10, 0, 828_430, 0, -10, 8_893_300)


def _mask() -> np.ndarray:
    mask = np.zeros((40, 100), bool)
    mask[10:13, 48:53] = True  # across the 180° meridian on the lon/lat grid
    mask[20:22, 60:62] = True  # east of it (west longitudes once wrapped)
    mask[30, 5] = True  # west of it
    mask[25:27, 47:50] = True  # on the UTM grid, cut 1.3 m before its east edge
    return mask


@pytest.mark.parametrize("transform, crs", [(LON_LAT, "EPSG:4326"), (UTM_60S, "EPSG:32760")])
@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_hsads_own_polygons_read_back_across_180_degrees(transform, crs, suffix, tmp_path):
    """Its GeoJSON (wrapped to -180..180 and split at ±180°) lost 98 of 150 pixels on the
    lon/lat scene, said to lie outside it, and marked 2 pixels too many on the UTM one
    (the split's sliver drawn as a target smaller than a pixel)."""
    mask = _mask()
    cube = make_cube(np.zeros((40, 100, 2), np.float32), transform=transform, crs=crs)
    grid = xr.DataArray(mask, dims=("y", "x"), coords={"y": cube.y, "x": cube.x})
    grid = grid.rio.write_crs(crs).rio.write_transform(transform)
    path = write_polygons(polygons(grid), tmp_path / f"truth{suffix}", crs=crs)
    drawn = vector_mask(path, cube, "ground truth", every_shape=True)
    assert np.array_equal(drawn, mask)


@pytest.mark.parametrize("bounds", [(-180, -90, 180, 90), (-170, 30, 20, 60)])
def test_wide_areas_are_no_split_geometries(tmp_path, bounds):
    """A box over the world, or an area from -170° to 20°, is one geometry: joined as if
    split at ±180° it fell outside a scene at 10°E."""
    import json

    from shapely.geometry import box, mapping

    cube = make_cube(np.zeros((40, 50, 2), np.float32), crs="EPSG:4326",
                     transform=Affine(0.01, 0, 10, 0, -0.01, 45))
    (tmp_path / "w.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(*bounds))}]}))
    assert vector_mask(tmp_path / "w.geojson", cube).all()
