"""Geometries in longitude/latitude across the antimeridian: made whole again where a file
split them at ±180° (as RFC 7946 GeoJSON must, and hsad writes it), and moved by 360° to
the side of it that a scene in longitude/latitude lies on (179.995°E–180.005°E, say)."""

from __future__ import annotations

import numpy as np


def is_geographic(crs) -> bool:
    """Whether ``crs`` (anything rasterio reads) is a longitude/latitude CRS."""
    from rasterio.crs import CRS

    try:
        return bool(CRS.from_user_input(crs).is_geographic)
    except Exception:  # noqa: BLE001 - a CRS rasterio cannot read is placed as it is
        return False


def _east_of_west(xy: np.ndarray) -> np.ndarray:
    """Coordinates with the western hemisphere's longitudes moved by +360°."""
    out = np.array(xy, dtype=np.float64)
    out[:, 0] = np.where(out[:, 0] < 0, out[:, 0] + 360.0, out[:, 0])
    return out


def _split_at_180(geom) -> bool:
    """Whether ``geom`` is a multi-part geometry split at ±180° (RFC 7946): parts reaching
    180° and parts reaching −180°, each on its own side (a box from −180° to 180°, or an
    area from −170° to 20°, is one geometry, and is no split one)."""
    import shapely

    if not hasattr(geom, "geoms") or len(geom.geoms) < 2:
        return False
    bounds = shapely.bounds(shapely.get_parts(geom))
    east = (bounds[:, 0] >= 0) & (bounds[:, 2] == 180.0)
    west = (bounds[:, 2] <= 0) & (bounds[:, 0] == -180.0)
    return bool(east.any() and west.any())


def joined(geoms: list) -> list:
    """Each shapely geometry split at ±180° (:func:`_split_at_180`) made continuous across
    180°, its polygons united: the seam a split left is no edge (a sliver of it covers no
    pixel centre, and would be drawn as a target of its own)."""
    import shapely

    out = []
    for geom in geoms:
        if not _split_at_180(geom):
            out.append(geom)
            continue
        geom = shapely.transform(geom, _east_of_west)
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            geom = shapely.union_all(shapely.get_parts(geom))
        out.append(geom)
    return out


def beyond_180(transform, rows: int, cols: int) -> bool:
    """Whether a lon/lat grid reaches beyond ±180° (179.995°E–180.005°E, say), where
    geometries wrapped to −180..180 lie a turn away from its pixels."""
    xs = [(transform @ corner)[0] for corner in ((0, 0), (cols, 0), (0, rows), (cols, rows))]
    return min(xs) < -180.0 or max(xs) > 180.0


def near_longitude(geoms: list, centre: float) -> list:
    """Each shapely geometry moved by a multiple of 360° to lie nearest longitude
    ``centre`` (a scene's)."""
    import shapely

    out = []
    for geom in geoms:
        x0, _, x1, _ = geom.bounds
        turns = round((centre - (x0 + x1) / 2) / 360.0)
        out.append(shapely.affinity.translate(geom, xoff=360.0 * turns) if turns else geom)
    return out
