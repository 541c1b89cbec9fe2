"""Connected anomaly regions as polygons in the scene CRS, and their GeoJSON/GPKG export.

Regions are the connected components of a mask (``scipy.ndimage.label``, 4- or
8-connectivity), traced by ``rasterio.features.shapes`` through the map's affine
transform, so vertices are map coordinates. A region's 4-connected parts are traced and
gathered, so two pixels touching only at a corner (one 8-connected region) form a valid
MultiPolygon of the same area. A map placed by ground control points or RPCs only
(:mod:`hsad.io.sensor_georef`) is traced in pixels, and every vertex is then placed as
``gdalwarp`` places the raster (:func:`vector_crs` gives their CRS). A map of an EMIT
granule is traced on its lookup table's map grid (:mod:`hsad.io.glt`). A map without
georeference is traced in the frame QGIS draws such rasters in
(:func:`hsad.cube.vector_frame`: x = column, y = −row), so the polygons lie on the raster
there.

GeoJSON is written as RFC 7946 requires: WGS 84 longitude/latitude (GDAL reprojects from
the scene CRS), counter-clockwise outer rings, no ``crs`` member.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from hsad.cube import transform_of, vector_frame
from hsad.errors import OutputError, ParameterError
from hsad.io.atomic import atomic_path, disk_full
from hsad.io.glt import glt_of, orthorectify_map, place
from hsad.io.sensor_georef import ground_mapping, sensor_georef_of

#: Output drivers by file suffix.
DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}

_BASE_FIELDS = ("id", "area_px", "area_map", "area_m2", "centroid_x", "centroid_y")
_SCORE_FIELDS = ("peak_score", "mean_score")


def _as_array(a) -> np.ndarray:
    a = getattr(a, "data", a) if not isinstance(a, np.ndarray) else a
    return np.asarray(a.compute() if hasattr(a, "compute") else a)


def _ground(obj, own: Affine | None = None, warn: bool = False):
    """``(to_ground, crs)`` of a map or cube without a CRS of its own that GCPs or RPCs
    place (:func:`hsad.io.sensor_georef.ground_mapping`), else None. ``own``: its
    transform, when already known."""
    if obj.rio.crs is not None:
        return None
    own = transform_of(obj) if own is None else own
    return ground_mapping(sensor_georef_of(obj, own), warn=warn)


def _georef(mask, transform: Affine | None):
    """``(affine, to_ground)``: the transform regions are traced through, and for a map
    placed by GCPs or RPCs only, the mapping of the traced pixel frame to the ground."""
    if transform is not None:
        if not isinstance(transform, Affine):  # six bare numbers: rasterio's or GDAL's order?
            raise ParameterError(f"transform must be an affine.Affine (Affine(a, b, c, d, e, "
                                 f"f), or Affine.from_gdal(*geotransform)), got {transform!r}")
        return transform, None
    if getattr(mask, "rio", None) is None:
        return vector_frame(Affine.identity(), None), None
    own = transform_of(mask)
    ground = _ground(mask, own, warn=True)
    if ground is not None:
        return Affine.identity(), ground[0]
    return vector_frame(own, mask.rio.crs), None


def vector_crs(obj):
    """The CRS polygons of the map or cube ``obj`` are in: its own, else that of the GCPs or
    RPCs placing it (:mod:`hsad.io.sensor_georef`) or of its GLT's grid (:mod:`hsad.io.glt`),
    else None (pixel coordinates)."""
    if getattr(obj, "rio", None) is None:
        return None
    glt = glt_of(obj)
    if glt is not None:  # an EMIT scene: its lookup table's map grid
        return CRS.from_user_input(glt.crs)
    ground = _ground(obj)
    return obj.rio.crs if ground is None else ground[1]


def polygons(
    mask,
    scores=None,
    min_pixels: int = 1,
    connectivity: int = 8,
    transform: Affine | None = None,
) -> list[dict]:
    """GeoJSON features, one per connected region of ``mask`` with ≥ ``min_pixels`` pixels.

    ``mask``: a (y, x) bool map (DataArray with georef, or ndarray; nonzero finite values
    count as True). ``transform`` overrides the map's own; without georeference (plain
    arrays too) the vertices are x = column, y = −row, as QGIS draws such a raster.
    Each feature's properties: ``id`` (1.., raster order), ``area_px`` (pixels),
    ``area_map`` (map units², shapely area), ``area_m2`` (ground area in m², geodesic on the
    CRS's ellipsoid; NaN without a CRS), ``centroid_x``/``centroid_y`` (map coords)
    and, when ``scores`` is given, ``peak_score``/``mean_score`` over the region's finite
    scores (NaN if none). :func:`regions` gives the same as shapely geometries and arrays.
    """
    geoms, props = regions(mask, scores, min_pixels, connectivity, transform)
    keys = list(props)
    return [
        {
            "type": "Feature",
            "id": int(i + 1),
            "geometry": shapely.geometry.mapping(geoms[i]),
            "properties": {k: props[k][i].item() for k in keys},
        }
        for i in range(geoms.size)
    ]


def regions(
    mask,
    scores=None,
    min_pixels: int = 1,
    connectivity: int = 8,
    transform: Affine | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`polygons` as an array of shapely (Multi)Polygons and a dict of property
    arrays (one value a region each): what :func:`write_regions` writes, without a
    GeoJSON dict a region (a mask of 140,000 regions: 8 s less, and a fraction of the
    memory)."""
    lab = label_regions(mask, min_pixels, connectivity, transform)
    props = {k: np.empty(0, np.int64 if k in ("id", "area_px") else np.float64)
             for k in _BASE_FIELDS + (_SCORE_FIELDS if scores is not None else ())}
    if lab.n == 0:
        return np.empty(0, dtype=object), props
    geoms = _region_geometries(lab.labels, lab.n, lab.affine)
    if lab.to_ground is not None:  # GCPs or RPCs: every vertex placed as gdalwarp places it
        geoms = shapely.transform(geoms, lab.to_ground)
    centroids = shapely.centroid(geoms)
    props = {
        "id": np.arange(1, lab.n + 1),
        "area_px": lab.area_px,
        "area_map": shapely.area(geoms),
        "area_m2": square_metres(geoms, lab.crs),
        "centroid_x": shapely.get_x(centroids),
        "centroid_y": shapely.get_y(centroids),
    }
    if scores is not None:
        props.update(_region_scores(lab.on_frame(scores), lab.labels, lab.n))
    return geoms, props


@dataclass(frozen=True, eq=False)
class Labelled:
    """The connected regions of a mask, numbered as :func:`regions` numbers them, on the
    frame they are traced in: ``labels`` (0 outside, 1 … n), ``area_px`` (cells a region),
    ``affine`` (the frame's pixels to its vertices' coordinates), ``to_ground`` (GCPs or
    RPCs: those coordinates to the ground; else None), ``crs`` (the vertices' CRS, None
    for pixel coordinates) and ``glt`` (an EMIT map's lookup table, whose grid is the
    frame; else None, and the frame is the mask's own raster)."""

    labels: np.ndarray
    area_px: np.ndarray
    affine: Affine
    to_ground: object
    crs: object
    glt: object

    @property
    def n(self) -> int:
        """The number of regions."""
        return int(self.area_px.size)

    def on_frame(self, map_) -> np.ndarray:
        """A map of the mask's raster (scores) on this frame, in memory."""
        return _as_array(map_ if self.glt is None else place(self.glt, map_))


#: regions a polygon file or a spectra table holds at most by default (about 1.4 KB of
#: memory a region while traced): a mask of more is noise, not targets
MAX_REGIONS = 100_000


def check_region_count(count: int, max_regions: int | None, path=None) -> None:
    """ParameterError when a mask's ``count`` regions exceed ``max_regions`` (None: no
    limit), before any is traced (a dotted mask of 2000² pixels gave 1 M regions: a 400 MB
    GeoJSON and 1.8 GB of memory under ``--memory-limit 256MB``)."""
    if max_regions is not None and count > int(max_regions):
        raise ParameterError(
            f"the mask holds {count} regions, more than --max-regions {int(max_regions)}: a "
            "mask this fragmented flags noise, not targets; raise the threshold (--far, "
            "--contamination, --threshold) or --max-regions", path)


def _labelled(m: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label`` of a (y, x) mask array (non-zero, finite = in a region)."""
    if m.dtype != bool:
        m = np.isfinite(m) & (m != 0)
    structure = np.ones((3, 3), bool) if connectivity == 8 else None
    return ndimage.label(m, structure=structure)


def count_regions(mask, connectivity: int = 8) -> int:
    """The connected regions of a ``(y, x)`` mask (one labelling pass, nothing traced)."""
    return int(_labelled(_as_array(mask), connectivity)[1])


def label_regions(mask, min_pixels: int = 1, connectivity: int = 8,
                  transform: Affine | None = None) -> Labelled:
    """The regions of ``mask`` with ≥ ``min_pixels`` pixels (:func:`polygons` gives the
    arguments' meaning), as :class:`Labelled`: what :func:`regions` traces and
    :func:`hsad.outputs.spectra.region_spectra` reads the spectra of."""
    if connectivity not in (4, 8):
        raise ParameterError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if int(min_pixels) < 1:
        raise ParameterError(f"min_pixels must be at least 1, got {min_pixels!r}")
    glt = glt_of(mask) if transform is None else None
    if glt is not None:  # an EMIT scene: traced on its lookup table's map grid
        mask = orthorectify_map(mask)
    affine, to_ground = _georef(mask, transform)
    crs = vector_crs(mask) if transform is None else \
        getattr(getattr(mask, "rio", None), "crs", None)
    m = _as_array(mask)
    if m.ndim != 2:
        raise ParameterError(f"a mask must be a 2-D (y, x) map, got shape {m.shape}")
    labels, n = _labelled(m, connectivity)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.flatnonzero(counts >= int(min_pixels))
    keep = keep[keep > 0]
    renumber = np.zeros(n + 1, np.int32)
    renumber[keep] = np.arange(1, keep.size + 1)
    return Labelled(renumber[labels], counts[keep], affine, to_ground, crs, glt)


#: the longest edge whose ground area is taken as a geodesic's: longer edges (of regions
#: tens of km wide) are cut first, so that a region's area is that of the map's drawing
AREA_EDGE_M = 1000.0


def square_metres(geoms: np.ndarray, crs) -> np.ndarray:
    """The regions' ground areas in m², geodesic on the CRS's ellipsoid (``pyproj.Geod``).
    Vertices go to longitude and latitude in degrees from Greenwich on that ellipsoid
    first, so that no map scale (Web Mercator doubles areas at 45°), angular unit (grads)
    or prime meridian (Paris) enters; edges longer than :data:`AREA_EDGE_M` are cut. NaN
    for pixel coordinates or a local CRS."""
    if crs is None or not (crs.is_geographic or crs.is_projected):
        return np.full(len(geoms), np.nan)
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer

    proj = ProjCRS.from_wkt(crs.to_wkt())
    geod = proj.get_geod()
    if geod is None:
        return np.full(len(geoms), np.nan)
    if crs.is_projected:
        step = AREA_EDGE_M / crs.linear_units_factor[1]  # in map units
    else:  # in the CRS's angle (a degree of latitude is about 111.32 km)
        step = AREA_EDGE_M / 111_320.0 * (np.pi / 180) / crs.units_factor[1]
    if crs.is_projected or crs.units_factor[0] != "degree" or \
            proj.prime_meridian.longitude != 0:
        degrees = ProjCRS.from_dict({"proj": "longlat", "a": geod.a, "b": geod.b,
                                     "no_defs": True})
        to_lonlat = Transformer.from_crs(proj, degrees, always_xy=True)
        geoms = shapely.transform(
            shapely.segmentize(geoms, step),
            lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
    else:
        geoms = shapely.segmentize(geoms, step)
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in geoms])


def _region_geometries(labels: np.ndarray, n: int, affine: Affine) -> np.ndarray:
    """One valid (Multi)Polygon per region ``1 … n`` of ``labels``: its 4-connected parts
    traced (valid rings; an 8-connected trace of pixels touching at a corner gives a ring
    touching itself, which ``make_valid`` took 0.7 ms a region to mend), then gathered, so
    that parts meeting at a corner form a MultiPolygon of the same pixels."""
    parts, owner = [], []
    for geom, value in rasterio.features.shapes(labels, mask=labels > 0, connectivity=4,
                                                transform=affine):
        parts.append(shapely.geometry.shape(geom))
        owner.append(int(value) - 1)
    parts, owner = np.array(parts, dtype=object), np.asarray(owner)
    geoms = np.empty(n, dtype=object)
    counts = np.bincount(owner, minlength=n)
    single = counts[owner] == 1
    geoms[owner[single]] = parts[single]
    if (~single).any():
        order = np.argsort(owner[~single], kind="stable")
        ids, index = np.unique(owner[~single][order], return_inverse=True)
        geoms[ids] = shapely.multipolygons(parts[~single][order], indices=index)
    broken = ~shapely.is_valid(geoms)  # none expected: a last guard, mended in one call
    if broken.any():
        geoms[broken] = shapely.make_valid(geoms[broken])
    return geoms


def _region_scores(s: np.ndarray, labels: np.ndarray, n: int) -> dict:
    if s.shape != labels.shape:
        raise ParameterError(f"score map shape {s.shape} does not match the mask's {labels.shape}")
    s = s.astype(np.float64, copy=False)
    finite = np.isfinite(s)
    lab = labels[finite & (labels > 0)]
    vals = s[finite & (labels > 0)]
    count = np.bincount(lab, minlength=n + 1)[1:]
    total = np.bincount(lab, weights=vals, minlength=n + 1)[1:]
    peak = np.full(n + 1, -np.inf)
    np.maximum.at(peak, lab, vals)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    peak = np.where(count > 0, peak[1:], np.nan)
    return {"peak_score": peak, "mean_score": mean}


def polygon_target(path: str | os.PathLike, crs=None) -> tuple[str, str | None]:
    """``(driver, crs WKT)`` for writing polygons to ``path`` from a scene in ``crs``;
    ParameterError for an unknown extension, or a GeoJSON output of a scene without CRS
    (RFC 7946 coordinates are WGS 84: pixel coordinates would be read as degrees) or in a
    local CRS (``LOCAL_CS``, which GDAL cannot reproject; it failed at the write). Cheap:
    the CLI calls it before any work."""
    path = Path(path)
    driver = DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise ParameterError(
            f"unknown polygon format {path.suffix!r} (use {', '.join(DRIVERS)})", path
        )
    crs = None if crs is None else CRS.from_user_input(crs)
    if driver == "GeoJSON" and crs is None:
        raise ParameterError("the scene has no CRS, and GeoJSON coordinates are WGS 84 "
                             "longitude/latitude (RFC 7946): write .gpkg", path)
    if driver == "GeoJSON" and not (crs.is_geographic or crs.is_projected):
        raise ParameterError(f"the polygons' CRS (the scene's, or its ground control "
                             f"points': {crs.to_wkt()[:60]}…) is a local one, which no "
                             "transformation takes to the WGS 84 longitude/latitude of GeoJSON "
                             "(RFC 7946): write .gpkg", path)
    return driver, None if crs is None else crs.to_wkt()


def write_polygons(
    features: list[dict], path: str | os.PathLike, crs=None, layer: str | None = None,
    with_scores: bool = False,
) -> Path:
    """Write features from :func:`polygons` as GeoJSON (``.geojson``/``.json``) or ``.gpkg``
    (:func:`write_regions`, which takes :func:`regions` as they are)."""
    geoms = np.array([shapely.geometry.shape(f["geometry"]) for f in features], dtype=object)
    fields = list(features[0]["properties"]) if features else []
    props = {k: np.array([f["properties"][k] for f in features]) for k in fields}
    return write_regions(geoms, props, path, crs, layer, with_scores)


def _is_text(values: np.ndarray) -> bool:
    """A field of text (a library's material names), not numbers (an object array of
    numbers and None, as GeoJSON's null reads back, stays numeric)."""
    return values.dtype.kind in "US" or (
        values.dtype.kind == "O" and any(isinstance(v, str) for v in values))


def _field(values, name: str, some: bool) -> np.ndarray:
    """A property array as the layer stores it: text as text, ``id`` and ``area_px`` as
    integers, the rest as floats (None is NaN); empty for a layer without regions."""
    values = np.asarray(values)
    if _is_text(values):
        return values.astype(object) if some else np.array([], dtype=object)
    dtype = np.int64 if name in ("id", "area_px") else np.float64
    return np.asarray(values, dtype=dtype) if some else np.array([], dtype=dtype)


def write_regions(
    geoms: np.ndarray, props: dict[str, np.ndarray], path: str | os.PathLike, crs=None,
    layer: str | None = None, with_scores: bool = False,
) -> Path:
    """Write :func:`regions` as GeoJSON (``.geojson``/``.json``) or ``.gpkg``.

    ``crs``: the scene's (a rasterio CRS, WKT, ``"EPSG:…"`` or None). A GeoPackage stores it
    as WKT, exactly; without one the vertices are pixel coordinates, and one warning says
    so. GeoJSON follows RFC 7946: GDAL reprojects the vertices to WGS 84 lon/lat (the
    ``area_map`` and centroid fields stay in the scene CRS); a scene without CRS is
    refused. Written to a temporary file renamed into place; no regions gives a valid
    empty layer with the same fields (the score fields too with ``with_scores``; GeoJSON
    keeps no field list when empty). A failed write is an :class:`OutputError` and leaves
    nothing. Returns the path written.
    """
    path = Path(path)
    driver, crs_text = polygon_target(path, crs)
    some = len(geoms) > 0
    empty_fields = list(_BASE_FIELDS) + (list(_SCORE_FIELDS) if with_scores else [])
    fields = list(props) if some else empty_fields + [k for k in props if k not in empty_fields]
    multi = some and bool(
        np.any(shapely.get_type_id(geoms) == shapely.GeometryType.MULTIPOLYGON)
    )
    field_data = [_field(props.get(k, ()), k, some) for k in fields]
    from pyogrio.raw import write

    if crs_text is None:
        warnings.warn(f"{path}: the scene has no CRS, so the polygons are in pixel "
                      f"coordinates as QGIS draws such a raster (x = column, y = −row, from "
                      f"the top-left corner)", stacklevel=2)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the temporary name ends in .part; the driver is explicit, so GDAL's hint is moot
        warnings.filterwarnings("ignore", "The filename extension should be")
        warnings.filterwarnings("ignore", "'crs' was not provided")  # said above, once
        tmp.unlink()  # OGR creates the file itself (and would try to open an empty one)
        try:
            write(
                str(tmp),
                geometry=shapely.to_wkb(geoms) if some else np.array([], dtype=object),
                field_data=field_data,
                fields=fields,
                layer=layer or path.stem,
                driver=driver,
                geometry_type="MultiPolygon" if multi else "Polygon",
                crs=crs_text,
                layer_options={"RFC7946": "YES"} if driver == "GeoJSON" else None,
            )
        except Exception as exc:  # pyogrio's own errors: a full disk, a failed write
            if not type(exc).__module__.startswith("pyogrio"):
                raise
            reason = disk_full(path) or (str(exc).strip().splitlines()[0] if str(exc).strip()
                                         else type(exc).__name__)
            raise OutputError(f"cannot write polygons: {reason}; nothing was written",
                              path) from exc
    return path


__all__ = [
    "AREA_EDGE_M", "DRIVERS", "label_regions", "Labelled", "polygon_target", "polygons",
    "regions", "vector_crs", "write_polygons", "write_regions"
]
