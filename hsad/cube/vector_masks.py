"""Vector files as masks of a scene: the polygons, points or lines of a layer (a GeoPackage,
GeoJSON, Shapefile, KML, GML or FlatGeobuf file; ``file|layername=x`` as QGIS writes it),
in any CRS, reprojected to the scene's CRS and drawn on its grid (an EMIT granule: on its
lookup table's grid).

A pixel is in when its centre is (GDAL's rule, ``rasterio.features.rasterize``); a ground
truth's target smaller than a pixel, holding no pixel centre, is drawn by the pixels it
touches, so that none is lost (``every_shape``). Used for background areas
(:mod:`hsad.cube.background`) and ground truths (:func:`hsad.io.maps.read_truth`).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine

from hsad.cube import QGIS_PIXEL_FRAME, transform_of, vector_frame
from hsad.cube.antimeridian import beyond_180, is_geographic, joined, near_longitude
from hsad.cube.subset import current_window, recorded_frame
from hsad.errors import FileFormatError, ParameterError
from hsad.io import check_input, check_regular
from hsad.io.glt import glt_of

#: Suffixes read as polygons (GeoPackage, GeoJSON, Shapefile, KML/KMZ, GML, FlatGeobuf,
#: MapInfo TAB); anything else is read as a raster mask.
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".kml", ".kmz", ".gml", ".fgb",
                   ".tab")


#: how a layer of a vector file is named, as in QGIS: ``areas.gpkg|layername=water``
LAYER = "|layername="
#: a layer by its index in the file, as QGIS also writes it: ``areas.kml|layerid=0``
LAYER_ID = "|layerid="
#: the ``|key=value`` options of a QGIS data source after the file's path
_QGIS_OPTIONS = re.compile(r"(\|[A-Za-z]+=[^|]*)+$")


def split_layer(background: str | os.PathLike) -> tuple[Path, str | int | None]:
    """``(file, layer or None)`` of a background argument: a layer's name
    (``|layername=x``) or index (``|layerid=0``), as QGIS writes a data source. Options
    that filter features (``|subset=…``) are refused, since reading every feature instead
    would draw a different mask."""
    text = os.fspath(background)
    found = _QGIS_OPTIONS.search(text)
    if found is None:
        return Path(text), None
    path, layer = Path(text[:found.start()]), None
    for option in found.group(0).split("|")[1:]:
        key, value = option.split("=", 1)
        if key.lower() == "layername":
            layer = value
        elif key.lower() == "layerid" and value.strip().isdigit():
            layer = int(value)
        elif key.lower() == "layerid":
            raise ParameterError(f"'|layerid={value}' is no layer index (0, 1, …)", path)
        elif key.lower() not in _HARMLESS:
            raise ParameterError(f"'|{key}=' of a QGIS data source is not read: export the "
                                 f"features it selects to a file of their own, or name the "
                                 f"layer alone ('{path}{LAYER}…')", path)
    return path, layer


#: QGIS data-source options that change nothing hsad reads (the geometry type is drawn
#: as it comes; every feature of the layer is read)
_HARMLESS = ("geometrytype", "uniquegeometrytype")


def _read_vector(path: Path, layer: str | int | None = None):
    """``(geometries, crs or None)`` of a vector file's layer (its only one by default; a
    name, or an index among the file's tables)."""
    import pyogrio
    import pyogrio.raw
    import shapely

    try:
        listing = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises its own DataSourceError and friends
        raise FileFormatError(f"cannot read polygons: {str(exc).splitlines()[0]}",
                              path) from None
    if isinstance(layer, int):  # QGIS's |layerid=: the index among all the file's tables
        if layer >= len(listing):
            raise ParameterError(f"no layer {layer} (the file holds {len(listing)}, from 0)",
                                 path)
        layer = str(listing[layer, 0])
    # tables without geometry (QGIS keeps its styles in one, ``layer_styles``) are no layer
    layers = [str(name) for name, kind in listing if kind is not None]
    if layer is not None and layer not in layers and layer in map(str, listing[:, 0]):
        raise ParameterError(f"layer {layer!r} holds no geometry (a table of attributes)",
                             path)
    if not layers and len(listing):
        raise ParameterError("the file holds tables of attributes only, no layer of "
                             "geometries", path)
    if layer is None and len(layers) > 1:
        raise ParameterError(f"the file holds {len(layers)} layers ({', '.join(layers[:5])}); "
                             f"name one: '{path}{LAYER}{layers[0]}'", path)
    if layer is not None and layer not in layers:
        raise ParameterError(f"no layer {layer!r} (layers: {', '.join(layers[:5])})", path)
    if layer is None and layers:
        layer = layers[0]  # not the file's first table, which may hold no geometry
    try:
        meta, _, wkb, _ = pyogrio.raw.read(path, layer=layer, columns=[])
    except Exception as exc:  # pyogrio raises its own DataSourceError and friends
        raise FileFormatError(f"cannot read polygons: {str(exc).splitlines()[0]}",
                              path) from None
    try:
        geoms = [] if wkb is None else [_without_empty_parts(g) for g in shapely.from_wkb(wkb)
                                        if g is not None and not g.is_empty]
    except shapely.errors.GEOSException as exc:  # an unclosed ring, a ring of 3 points
        raise FileFormatError(f"cannot read polygons: {str(exc).splitlines()[0]}",
                              path) from None
    return geoms, meta.get("crs")


def _without_empty_parts(geom):
    """``geom`` without its empty parts, at any depth (GDAL skips a whole feature that has
    one)."""
    if not hasattr(geom, "geoms"):
        return geom
    parts = [_without_empty_parts(part) for part in geom.geoms]
    return type(geom)([part for part in parts if not part.is_empty])


def is_vector(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` (a path, perhaps with ``|layername=``) names a vector file."""
    return split_layer(spec)[0].suffix.lower() in VECTOR_SUFFIXES


def vector_mask(spec: str | os.PathLike, cube: xr.DataArray, what: str = "background area",
                empty_ok: bool = False, every_shape: bool = False,
                region: str = "the scene") -> np.ndarray:
    """(y, x) bool map of the geometries of a vector file's layer (``file|layername=x``) on
    ``cube``'s grid: the pixels whose centre they cover (GDAL's rule); with
    ``every_shape``, a shape that covers no pixel centre (a target smaller than a pixel)
    marks the pixels it touches, so none is lost. Errors name the file, ``what`` and
    ``region`` (what ``cube`` is to the user: the scene, a score map)."""
    path, layer = split_layer(spec)
    check_input(path, what)
    if path.suffix.lower() == ".shp":  # its attributes, index and CRS are read too
        for side in (".shx", ".dbf", ".prj", ".cpg"):
            for suffix in (side, side.upper()):
                check_regular(path.with_suffix(suffix))
    return _rasterise(*_read_vector(path, layer), cube, path, empty_ok, what, every_shape,
                      region)


def _burn(shapes, shape: tuple[int, int], transform: Affine, every_shape: bool) -> np.ndarray:
    """The pixels of a ``shape`` grid whose centre the ``shapes`` cover; with
    ``every_shape``, also those touched by a polygon (or a part of one) that covers no
    pixel centre of the grid extended without end (a target smaller than a pixel, not
    one cut by the map's edge)."""
    import rasterio.features

    mask = rasterio.features.rasterize(((s, 1) for s in shapes), out_shape=shape,
                                       transform=transform, fill=0, dtype="uint8") > 0
    if every_shape:
        small = _centreless(_polygon_parts(shapes), transform, mask)
        if small:
            mask |= rasterio.features.rasterize(((p, 1) for p in small), out_shape=shape,
                                                transform=transform, fill=0, dtype="uint8",
                                                all_touched=True) > 0
    return mask


#: a polygon whose bounding box holds up to this many pixel centres has them tested one by
#: one; up to :data:`CENTRES_RASTERISED`, it is rasterised on its box instead; beyond that
#: it is taken to cover one (a sliver across more than 25 million pixels)
CENTRES_TESTED = 1_000_000
CENTRES_RASTERISED = 25_000_000


def _polygon_parts(shapes) -> np.ndarray:
    """The polygons of ``shapes`` (GeoJSON-like), multi-part ones and collections split."""
    import shapely

    parts, waiting = [], [shapely.geometry.shape(s) for s in shapes]
    while waiting:
        geom = waiting.pop()
        if geom.geom_type == "Polygon" and not geom.is_empty:
            parts.append(geom)
        elif hasattr(geom, "geoms"):  # a multi-part geometry or a collection
            waiting.extend(geom.geoms)
    return np.asarray(parts, dtype=object)


def _centreless(polygons: np.ndarray, transform: Affine, burnt: np.ndarray) -> list:
    """The ``polygons`` (map coordinates) that hold no pixel centre of ``transform``'s grid
    taken without bounds: first, all at once, the centre of the pixel each one's inner
    point lies in; then, for the few that miss it, every centre in its box. A centre on a
    polygon's edge is held where the centre rule burnt it (``burnt``), as GDAL decides."""
    import shapely

    if not polygons.size:
        return []
    inverse = ~transform
    matrix = np.array([[inverse.a, inverse.b], [inverse.d, inverse.e]])
    offset = np.array([inverse.c, inverse.f])
    in_pixels = shapely.transform(polygons, lambda xy: xy @ matrix.T + offset)
    near = np.floor(shapely.get_coordinates(shapely.point_on_surface(in_pixels))) + 0.5
    held = _held(in_pixels, near[:, 0], near[:, 1], burnt)
    missed, polygons = in_pixels[~held], polygons[~held]
    # boxes of at most 2 x 2 centres (most of what is left: targets under a pixel), all
    # at once; any other one by one
    x0, y0, x1, y1 = shapely.bounds(missed).T
    c0, r0 = np.ceil(x0 - 0.5), np.ceil(y0 - 0.5)
    cols, rows = np.floor(x1 - 0.5) - c0 + 1, np.floor(y1 - 0.5) - r0 + 1
    tiny = (cols <= 2) & (rows <= 2)
    hit = np.zeros(missed.size, bool)
    for dc, dr in ((0, 0), (1, 0), (0, 1), (1, 1)):
        hit |= tiny & (dc < cols) & (dr < rows) & _held(missed, c0 + dc + 0.5,
                                                         r0 + dr + 0.5, burnt)
    return [p for p, px, small, h in zip(polygons, missed, tiny, hit, strict=True)
            if not h and (small or not _holds_a_centre(px, burnt))]


def _held(in_pixels, xs, ys, burnt: np.ndarray) -> np.ndarray:
    """Whether each polygon (pixel coordinates; one, or one per centre) holds the centre
    ``(xs, ys)``: strictly inside, or on its edge where the centre rule burnt that pixel
    of the grid (``burnt``; an edge centre off the grid is not held)."""
    import shapely

    inside = np.atleast_1d(shapely.contains_xy(in_pixels, xs, ys))
    edge = ~inside & np.atleast_1d(shapely.intersects_xy(in_pixels, xs, ys))
    if edge.any():
        col = np.broadcast_to(np.floor(np.atleast_1d(xs)), edge.shape).astype(int)
        row = np.broadcast_to(np.floor(np.atleast_1d(ys)), edge.shape).astype(int)
        at = edge & (col >= 0) & (row >= 0) & (col < burnt.shape[1]) & (row < burnt.shape[0])
        inside = inside.copy()
        inside[at] = burnt[row[at], col[at]]
    return inside


def _holds_a_centre(in_pixels, burnt: np.ndarray) -> bool:
    """Whether a polygon in pixel coordinates (column, row) holds a pixel centre."""
    import rasterio.features

    x0, y0, x1, y1 = in_pixels.bounds
    c0, r0 = np.ceil(x0 - 0.5), np.ceil(y0 - 0.5)
    cols, rows = int(np.floor(x1 - 0.5) - c0) + 1, int(np.floor(y1 - 0.5) - r0) + 1
    if cols <= 0 or rows <= 0:
        return False
    if cols * rows <= CENTRES_TESTED:
        xs, ys = np.meshgrid(np.arange(cols) + c0 + 0.5, np.arange(rows) + r0 + 0.5)
        return bool(_held(in_pixels, xs.ravel(), ys.ravel(), burnt).any())
    if cols * rows <= CENTRES_RASTERISED:  # GDAL's centre rule on the box's own grid
        return bool(rasterio.features.rasterize(
            [(in_pixels, 1)], out_shape=(rows, cols), fill=0, dtype="uint8",
            transform=Affine.translation(c0, r0)).any())
    return True


def _reprojected(shapes, src_crs, dst_crs, path, what: str) -> list:
    """``shapes`` (GeoJSON-like) from ``src_crs`` into ``dst_crs``; coordinates PROJ cannot
    take (projected metres in a file read as longitude/latitude) are a ParameterError."""
    from rasterio._err import CPLE_BaseError  # PROJ's errors, as GDAL reports them
    from rasterio.errors import RasterioError
    from rasterio.warp import transform_geom

    try:
        return [transform_geom(src_crs, dst_crs, s) for s in shapes]
    except (CPLE_BaseError, RasterioError, ValueError) as exc:
        hint = (" (a GeoJSON without a 'crs' member is read as longitude/latitude, EPSG:4326)"
                if str(path).lower().endswith((".geojson", ".json")) else "")
        raise ParameterError(f"the {what}'s coordinates are not valid in its CRS, "
                             f"{src_crs}: {str(exc).splitlines()[0]}{hint}", path) from None


def _not_lon_lat(geoms, src_crs, path) -> str:
    """A hint when a GeoJSON read as longitude/latitude holds coordinates that are not."""
    import shapely

    if not str(path).lower().endswith((".geojson", ".json")) or src_crs is None:
        return ""
    from rasterio.crs import CRS

    if CRS.from_user_input(src_crs) != CRS.from_epsg(4326):
        return ""
    x0, y0, x1, y1 = shapely.total_bounds([shapely.geometry.shape(g) for g in geoms])
    if max(abs(x0), abs(x1)) <= 180 and max(abs(y0), abs(y1)) <= 90:
        return ""
    return (" (its coordinates are not longitude/latitude, and a GeoJSON without a 'crs' "
            "member is read as EPSG:4326)")


def _rasterise(geoms, src_crs, cube: xr.DataArray, path, empty_ok: bool = False,
               what: str = "background area", every_shape: bool = False,
               region: str = "the scene") -> np.ndarray:
    import shapely

    if not geoms:
        raise ParameterError(f"the {what} holds no geometry", path)
    scene_crs = cube.rio.crs
    if src_crs is not None and is_geographic(src_crs):  # RFC 7946's split at ±180° undone
        geoms = joined([g if hasattr(g, "geom_type") else shapely.geometry.shape(g)
                        for g in geoms])
    shapes = [shapely.geometry.mapping(g) if hasattr(g, "geom_type") else dict(g)
              for g in geoms]
    glt = glt_of(cube)
    if glt is not None and src_crs is not None:  # an EMIT granule: polygons in a CRS are
        # drawn on its lookup table's grid (without one, in its pixels, as below)
        return _rasterise_on_lookup(shapes, src_crs, glt, cube.shape[:2], path, empty_ok,
                                    what, every_shape)
    rows, cols = cube.sizes["y"], cube.sizes["x"]
    if src_crs is not None and scene_crs is None:
        in_pixels = _on_sensor_pixels(shapes, src_crs, cube, path, what)
        if in_pixels is None:
            raise ParameterError(f"the {what}'s geometries are in {src_crs} but {region} has "
                                 "no CRS to place them in; give a raster mask on its grid",
                                 path)
        if not in_pixels:
            if empty_ok:
                return np.zeros((rows, cols), bool)
            raise ParameterError(f"the {what} lies outside {region}", path)
        if len(in_pixels) < len(shapes):
            warnings.warn(f"{path}: {len(shapes) - len(in_pixels)} of {len(shapes)} features "
                          f"of the {what} mark no pixel of {region} (they lie outside it) "
                          "and are not counted", UserWarning, stacklevel=3)
        mask = _burn(in_pixels, (rows, cols), Affine.identity(), every_shape)
        if (not mask.any() and not empty_ok) or every_shape:
            _check_placed(in_pixels, Affine.identity(), (rows, cols), mask, empty_ok, path,
                          what, region, "")
        return mask
    if src_crs is not None and str(src_crs) != str(scene_crs):
        shapes = _reprojected(shapes, src_crs, scene_crs, path, what)
    transform = vector_frame(transform_of(cube), scene_crs)
    if src_crs is not None and is_geographic(scene_crs) and beyond_180(transform, rows, cols):
        centre = (transform @ (cols / 2, rows / 2))[0]  # the scene's side of ±180°
        shapes = [shapely.geometry.mapping(g) for g in
                  near_longitude([shapely.geometry.shape(s) for s in shapes], centre)]
    if transform == QGIS_PIXEL_FRAME and (window := current_window(cube)) is not None:
        # a window of a scene without georeference: the polygons were drawn in the frame
        # QGIS draws the file read in (the whole scene's for a window cut from it, a
        # converted window's own: hsad.io.window.FRAME_ATTR)
        r0, c0 = window[:2]
        f0, g0 = (recorded_frame(cube.attrs) or (0, 0))[:2]
        transform = QGIS_PIXEL_FRAME @ Affine.translation(c0 - g0, r0 - f0)
    mask = _burn(shapes, (rows, cols), transform, every_shape)
    if (not mask.any() and not empty_ok) or every_shape:
        _check_placed(shapes, transform, (rows, cols), mask, empty_ok, path, what, region,
                      _not_lon_lat(geoms, src_crs, path) if not mask.any() else "")
    return mask


#: pixels: how far around the frame, and inside the hull of the pixel centres, a feature
#: is taken to lie near the edge (and drawn alone to tell whether it marks a pixel)
EDGE_HAIR = 0.01
#: the features near the edge drawn alone, at most (0.4 ms each); any more are taken to mark
#: a pixel
EDGE_DRAWN = 5000


def _check_placed(shapes, transform: Affine, shape: tuple[int, int], mask: np.ndarray,
                  empty_ok: bool, path, what: str, region: str, hint: str = "") -> None:
    """ParameterError when nothing of ``shapes`` was drawn (``mask`` empty, unless
    ``empty_ok``): they lie outside ``region``, or cover no pixel centre of it; a warning
    when some of the features marked no pixel of it (outside it, or holding pixel centres
    only beyond its edge), so that they are not left out unsaid."""
    import shapely

    features = np.asarray([shapely.geometry.shape(s) for s in shapes], dtype=object)
    # a hair (1/100 of a pixel) around the frame and inside the centres' hull: corners a
    # rotated transform places 1e-11 off, and edges on a centre line, are decided below
    inside = _intersect(features, _hull(transform, shape, -EDGE_HAIR))
    if not mask.any() and not empty_ok:
        where = f"lies outside {region}" if not inside.any() else \
            f"covers no pixel centre of {region}"
        raise ParameterError(f"the {what} {where}{hint}", path)
    # a feature reaching between the map's pixel centres marks a pixel; one reaching only
    # its edge's half pixels is drawn alone, on its own window, to tell (GDAL's rules)
    near_edge = np.flatnonzero(inside & ~_intersect(features,
                                                    _hull(transform, shape, 0.5 + EDGE_HAIR)))
    for i in near_edge[:EDGE_DRAWN]:
        inside[i] = _marks_a_pixel(shapes[i], features[i], transform, shape)
    if not inside.all():
        warnings.warn(f"{path}: {int((~inside).sum())} of {inside.size} features of the "
                      f"{what} mark no pixel of {region} (they lie outside it) and are not "
                      "counted", UserWarning, stacklevel=2)


def _hull(transform: Affine, shape: tuple[int, int], inset: float):
    """The map's frame taken ``inset`` pixels inwards (0: the frame, negative: around it,
    0.5: the hull of its pixel centres), in map coordinates."""
    import shapely

    rows, cols = shape
    lo, hi_c, hi_r = inset, cols - inset, rows - inset
    corners = [transform @ (lo, lo), transform @ (hi_c, hi_r), transform @ (lo, hi_r),
               transform @ (hi_c, lo)]
    return shapely.convex_hull(shapely.MultiPoint(corners))


def _intersect(features: np.ndarray, area) -> np.ndarray:
    """Whether each feature meets ``area``; an invalid polygon (a bow-tie), on which GEOS
    may raise a TopologyException, is made valid first."""
    import shapely

    try:
        return np.asarray(shapely.intersects(features, area), dtype=bool)
    except shapely.errors.GEOSException:
        return np.asarray(shapely.intersects(shapely.make_valid(features), area), dtype=bool)


def _marks_a_pixel(shape_json, feature, transform: Affine, shape: tuple[int, int]) -> bool:
    """Whether a feature near the map's edge marks a pixel, drawn alone by the ground
    truth's rules on the window of the map its box covers."""
    inverse = ~transform
    x0, y0, x1, y1 = feature.bounds
    cols, rows = zip(*(inverse @ xy for xy in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))),
                     strict=True)
    c0, r0 = max(int(np.floor(min(cols))) - 1, 0), max(int(np.floor(min(rows))) - 1, 0)
    c1 = min(int(np.ceil(max(cols))) + 1, shape[1])
    r1 = min(int(np.ceil(max(rows))) + 1, shape[0])
    if c1 <= c0 or r1 <= r0:
        return False
    window = transform @ Affine.translation(c0, r0)
    return bool(_burn([shape_json], (r1 - r0, c1 - c0), window, every_shape=True).any())


def _on_sensor_pixels(shapes, src_crs, cube: xr.DataArray, path, what: str):
    """``shapes`` (GeoJSON-like, in ``src_crs``) in the pixel frame of a scene in sensor
    geometry (x = column, y = row), placed by its ground control points or RPCs as
    ``gdalwarp`` places the scene (:func:`hsad.io.sensor_georef.pixel_mapping`, each vertex
    of the geometries densified to a tenth of their extent). Only their parts on the scene's
    ground footprint (its frame placed on the ground, two pixels wider) are mapped: an
    inverse polynomial folds far points back into the frame (a target 45 km away marked 12
    pixels). None when the scene has no such placement; [] when nothing lies on it."""
    import shapely
    from rasterio.crs import CRS

    from hsad.io.sensor_georef import ground_mapping, pixel_mapping, sensor_georef_of

    held = sensor_georef_of(cube, transform_of(cube))
    found = pixel_mapping(held)
    if found is None:
        return None
    to_pixels, crs = found
    if CRS.from_user_input(src_crs) != crs:
        shapes = _reprojected(shapes, src_crs, crs, path, what)
    rows, cols = cube.sizes["y"], cube.sizes["x"]
    frame = shapely.segmentize(shapely.box(-2, -2, cols + 2, rows + 2), max(rows, cols) / 64)
    footprint = shapely.make_valid(shapely.transform(frame, ground_mapping(held)[0]))
    geoms = np.array([shapely.make_valid(shapely.geometry.shape(s)).intersection(footprint)
                      for s in shapes], dtype=object)  # a bow-tie had raised GEOS's error
    geoms = geoms[~shapely.is_empty(geoms)]
    if not geoms.size:
        return []
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    step = max(x1 - x0, y1 - y0) / 10
    if step > 0:  # the mapping bends straight edges: follow it between the vertices
        geoms = shapely.segmentize(geoms, step)
    placed = shapely.set_coordinates(geoms.copy(), to_pixels(shapely.get_coordinates(geoms)))
    return [shapely.geometry.mapping(g) for g in placed]


def _rasterise_on_lookup(shapes, src_crs, glt, shape, path, empty_ok=False,
                         what: str = "background area", every_shape: bool = False
                         ) -> np.ndarray:
    """The pixels of an EMIT granule (``shape``: rows, cols) whose map-grid cells the
    ``shapes`` (in ``src_crs``) cover."""
    from rasterio.crs import CRS

    grid_crs = CRS.from_user_input(glt.crs)
    if CRS.from_user_input(src_crs) != grid_crs:
        shapes = _reprojected(shapes, src_crs, grid_crs, path, what)
    cells = _burn(shapes, glt.shape, Affine(*glt.transform), every_shape)
    hit = cells & (glt.rows >= 0)
    mask = np.zeros(shape, bool)
    mask[glt.rows[hit], glt.cols[hit]] = True
    if not mask.any() and not empty_ok:
        raise ParameterError(f"the {what} covers no pixel of the granule (no cell of its "
                             "map grid that a pixel falls in)", path)
    return mask


__all__ = [
    "CENTRES_RASTERISED", "CENTRES_TESTED", "EDGE_DRAWN", "EDGE_HAIR", "is_vector", "LAYER",
    "LAYER_ID", "split_layer", "vector_mask", "VECTOR_SUFFIXES"
]
