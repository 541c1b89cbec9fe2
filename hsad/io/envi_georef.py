"""Georeferencing of ENVI headers, read and written the way GDAL's ENVI driver does.

Reading follows ``ENVIDataset::ProcessMapinfo`` (GDAL ``frmts/raw/envidataset.cpp``):

* ``map info = {name, xref, yref, easting, northing, xsize, ysize, ...}``; the reference
  pixel is 1-based (``1, 1`` is the upper-left corner of the first pixel, ``1.5, 1.5``
  its centre); ``rotation=deg`` (counter-clockwise) and ``units=`` may follow.
* The CRS comes from ``coordinate system string`` (ESRI or OGC WKT) when it parses,
  else from the map info name (UTM zone/hemisphere/datum, State Plane, Geographic
  Lat/Lon) or from ``projection info`` codes (3 TM, 4 LCC, 5/6 Hotine, 7 stereographic,
  9 Albers, 10 polyconic, 11 LAEA, 12 azimuthal equidistant, 31 polar stereographic),
  else a local CRS named after the map info. Like GDAL, the result is replaced by the
  matching EPSG CRS when the match is certain (confidence >= 90).

CRSs are built as OGC WKT1 text and parsed by rasterio, never as PROJ strings.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from functools import lru_cache
from pathlib import Path

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError

from hsad.errors import HeaderError, ParameterError
from hsad.io.envi_header import split_list

_METRE = 'UNIT["metre",1,AUTHORITY["EPSG","9001"]]'
_EN_AXES = 'AXIS["Easting",EAST],AXIS["Northing",NORTH]'

#: ENVI datum / ellipsoid names -> EPSG geographic CRS (GDAL ``SetENVIDatum``).
_DATUM_EPSG = {
    "wgs-84": 4326,
    "wgs-72": 4322,
    "north america 1983": 4269,
    "north america 1927": 4267,
    "ordnance survey of great britain '36": 4277,
    "sad-69/brazil": 4291,
    "geocentric datum of australia 1994": 4283,
    "australian geodetic 1984": 4203,
    "nouvelle triangulation francaise ign": 4275,
    "grs 80": 4269,
    "airy": 4001,
    "australian national": 4003,
    "bessel 1841": 4004,
    "clark 1866": 4008,
}
#: EPSG geographic CRS -> ENVI datum name written in ``map info`` (GDAL's writer).
_EPSG_DATUM = {4326: "WGS-84", 4322: "WGS-72", 4269: "North America 1983",
               4267: "North America 1927", 4230: "European 1950",
               4277: "Ordnance Survey of Great Britain '36", 4291: "SAD-69/Brazil",
               4283: "Geocentric Datum of Australia 1994",
               4275: "Nouvelle Triangulation Francaise IGN"}

#: ``units=`` values -> (WKT unit name, metres per unit) (GDAL's list).
_LINEAR_UNITS = {"feet": ("foot", 0.3048), "meters": ("metre", 1.0),
                 "km": ("Kilometer", 1000.0), "yards": ("Yard", 0.9144),
                 "miles": ("Mile", 1609.344), "nautical miles": ("Nautical Mile", 1852.0)}

#: ``projection info`` code -> (minimum item count, WKT1 projection, [(parameter, index)]).
#: An index that is a float is a constant. Parameters are in the order GDAL exports them
#: (PROJ's identification of a CRS against EPSG depends on it).
_PROJECTIONS = {
    3: (9, "Transverse_Mercator", [("latitude_of_origin", 3), ("central_meridian", 4),
                                   ("scale_factor", 7), ("false_easting", 5),
                                   ("false_northing", 6)]),
    4: (9, "Lambert_Conformal_Conic_2SP", [("latitude_of_origin", 3), ("central_meridian", 4),
                                           ("standard_parallel_1", 7),
                                           ("standard_parallel_2", 8),
                                           ("false_easting", 5), ("false_northing", 6)]),
    5: (11, "Hotine_Oblique_Mercator_Two_Point_Natural_Origin", [
        ("latitude_of_center", 3), ("latitude_of_point_1", 4), ("longitude_of_point_1", 5),
        ("latitude_of_point_2", 6), ("longitude_of_point_2", 7), ("scale_factor", 10),
        ("false_easting", 8), ("false_northing", 9)]),
    6: (9, "Hotine_Oblique_Mercator", [("latitude_of_center", 3), ("longitude_of_center", 4),
                                       ("azimuth", 5), ("rectified_grid_angle", 0.0),
                                       ("scale_factor", 8), ("false_easting", 6),
                                       ("false_northing", 7)]),
    7: (9, "Stereographic", [("latitude_of_origin", 3), ("central_meridian", 4),
                             ("scale_factor", 7), ("false_easting", 5),
                             ("false_northing", 6)]),
    9: (9, "Albers_Conic_Equal_Area", [("latitude_of_center", 3), ("longitude_of_center", 4),
                                       ("standard_parallel_1", 7), ("standard_parallel_2", 8),
                                       ("false_easting", 5), ("false_northing", 6)]),
    10: (7, "Polyconic", [("latitude_of_origin", 3), ("central_meridian", 4),
                          ("false_easting", 5), ("false_northing", 6)]),
    11: (7, "Lambert_Azimuthal_Equal_Area", [("latitude_of_center", 3),
                                             ("longitude_of_center", 4),
                                             ("false_easting", 5), ("false_northing", 6)]),
    12: (7, "Azimuthal_Equidistant", [("latitude_of_center", 3), ("longitude_of_center", 4),
                                      ("false_easting", 5), ("false_northing", 6)]),
    31: (7, "Polar_Stereographic", [("latitude_of_origin", 3), ("central_meridian", 4),
                                    ("scale_factor", 1.0), ("false_easting", 5),
                                    ("false_northing", 6)]),
}
#: WKT1 projection -> ENVI map info name (used when writing).
_ENVI_PROJECTION_NAMES = {
    "Transverse_Mercator": "Transverse Mercator",
    "Lambert_Conformal_Conic_2SP": "Lambert Conformal Conic",
    "Albers_Conic_Equal_Area": "Albers Conical Equal Area",
    "Polyconic": "Polyconic",
    "Lambert_Azimuthal_Equal_Area": "Lambert Azimuthal Equal Area",
    "Azimuthal_Equidistant": "Azimuthal Equadistant",
    "Polar_Stereographic": "Polar Stereographic",
    "Stereographic": "Stereographic (ellipsoid)",
    "Oblique_Stereographic": "Stereographic (ellipsoid)",
    "Hotine_Oblique_Mercator": "Hotine Oblique Mercator B",
}

_NUMBER = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?)")


def _atof(text: str) -> float:
    """C ``atof``: the leading number of ``text`` (a decimal comma is accepted), else 0."""
    m = _NUMBER.match(text.replace(",", ".") if text.count(",") == 1 else text)
    return float(m.group(1).replace("d", "e").replace("D", "e")) if m else 0.0


def _atoi(text: str) -> int:
    m = re.match(r"\s*([-+]?\d+)", text)
    return int(m.group(1)) if m else 0


def _fmt(value: float) -> str:
    value = float(value)
    return repr(0.0 if value == 0 else value)


# --------------------------------------------------------------------------- WKT helpers


def _strip_axes(wkt: str) -> str:
    return re.sub(r',AXIS\["[^"]*",[A-Z]+\]', "", wkt)


def _geogcs_wkt(epsg: int) -> str:
    return _strip_axes(CRS.from_epsg(epsg).to_wkt())


def _ellipse_geogcs(a: float, b: float) -> str:
    inv_f = a / (a - b) if abs(a - b) >= 0.1 else 0.0
    return (f'GEOGCS["Ellipse Based",DATUM["Ellipse Based",SPHEROID["Unnamed",{_fmt(a)},'
            f'{_fmt(inv_f)}]],PRIMEM["Greenwich",0],'
            'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]]]')


def _envi_datum_epsg(name: str, path=None) -> int:
    """EPSG code of an ENVI datum or ellipsoid name (unknown names give WGS 84, warned)."""
    low = name.strip().lower()
    if low in _DATUM_EPSG:
        return _DATUM_EPSG[low]
    if "NAD27" in name or "NAD-27" in name:
        return 4267
    if low.startswith("european 1950"):
        return 4230
    warnings.warn(f"{path}: unrecognised ENVI datum '{name}', using WGS 84 (as GDAL does)",
                  UserWarning, stacklevel=4)
    return 4326


def _projcs(geogcs: str, projection: str, params: list[tuple[str, float]],
            name: str = "unnamed") -> str:
    axes = _EN_AXES
    if projection == "Polar_Stereographic":  # GDAL SetPS: variant B unless k != 1 or at a pole
        lat0, k = params[0][1], params[2][1]
        if k == 1.0 and abs(abs(lat0) - 90.0) > 1e-8:
            params = [p for p in params if p[0] != "scale_factor"]
        towards = "NORTH" if lat0 < 0 else "SOUTH"
        axes = f'AXIS["Easting",{towards}],AXIS["Northing",{towards}]'
    body = ",".join(f'PARAMETER["{k}",{_fmt(v)}]' for k, v in params)
    return (f'PROJCS["{name}",{geogcs},PROJECTION["{projection}"],{body},'
            f"{_METRE},{axes}]")


def _top_level_split(wkt: str) -> tuple[str, list[str]]:
    """Split ``KEY[a,b,...]`` into ``KEY`` and its top-level items."""
    head, body = wkt.split("[", 1)
    body = body[: body.rfind("]")]
    items, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(body):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "[":
            depth += 1
        elif not quoted and ch == "]":
            depth -= 1
        elif not quoted and ch == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    return head.strip(), [s.strip() for s in items]


def _set_linear_units(crs: CRS, unit: str, factor: float) -> CRS:
    """GDAL ``SetLinearUnitsAndUpdateParameters``: new unit, false easting/northing converted."""
    if not (crs.is_projected or crs.to_wkt().startswith("LOCAL_CS")):
        return crs
    old = crs.linear_units_factor[1] if crs.is_projected else 1.0
    if math.isclose(old, factor, rel_tol=0, abs_tol=1e-12):
        return crs
    head, items = _top_level_split(crs.to_wkt())
    out = []
    for item in items:
        m = re.match(r'PARAMETER\["(false_easting|false_northing)",(.*)\]$', item)
        if m:
            item = f'PARAMETER["{m.group(1)}",{_fmt(float(m.group(2)) * old / factor)}]'
        elif item.startswith("UNIT["):
            item = f'UNIT["{unit}",{_fmt(factor)}]'
        elif item.startswith("AUTHORITY["):
            continue
        out.append(item)
    return CRS.from_wkt(f"{head}[{','.join(out)}]")


def _set_angular_radians(crs: CRS) -> CRS:
    head, items = _top_level_split(crs.to_wkt())
    out = [('UNIT["radian",1]' if it.startswith("UNIT[") else it) for it in items
           if not it.startswith("AUTHORITY[")]
    return CRS.from_wkt(f"{head}[{','.join(out)}]")


@lru_cache(maxsize=1)
def _state_plane_table() -> dict[int, int]:
    """GDAL's ``stateplane.csv`` (shipped in rasterio's gdal_data): zone id -> EPSG."""
    from rasterio.env import GDALDataFinder

    folder = GDALDataFinder().search()
    table: dict[int, int] = {}
    if folder and (Path(folder) / "stateplane.csv").is_file():
        with open(Path(folder) / "stateplane.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("EPSG_PCS_CODE", "").strip().isdigit():
                    table[int(row["ID"])] = int(row["EPSG_PCS_CODE"])
    return table


def _best_match(crs: CRS) -> CRS:
    """GDAL ``FindBestMatch``: the EPSG CRS when identification is certain (>= 90)."""
    if crs.to_wkt().startswith("LOCAL_CS"):
        return crs
    try:
        code = crs.to_epsg(confidence_threshold=90)
    except CRSError:
        code = None
    return CRS.from_epsg(code) if code else crs


# --------------------------------------------------------------------------- reading


def _crs_from_css(raw: dict) -> CRS | None:
    css = raw.get("coordinate system string", "").replace("{", "").replace("}", "").strip()
    if not css:
        return None
    try:
        with rasterio.Env():  # routes GDAL's parse messages to logging instead of stderr
            return CRS.from_wkt(css)
    except CRSError:
        return None


def _crs_from_projection_info(pi: list[str], path) -> tuple[CRS | None, bool]:
    code = _atoi(pi[0]) if pi else 0
    if code not in _PROJECTIONS or len(pi) < _PROJECTIONS[code][0]:
        return None, False
    _, projection, spec = _PROJECTIONS[code]
    params = [(k, idx if isinstance(idx, float) else _atof(pi[idx])) for k, idx in spec]
    i_datum = len(pi) - 1
    if "=" in pi[i_datum]:
        i_datum -= 1
    i_datum -= 1
    datum = pi[i_datum]
    if re.search(r"[A-Za-z]", datum):
        geogcs = _geogcs_wkt(_envi_datum_epsg(datum, path))
    else:
        geogcs = _ellipse_geogcs(_atof(pi[1]), _atof(pi[2]))
    return CRS.from_wkt(_projcs(geogcs, projection, params)), True


def _crs_from_map_info(fields: list[str], raw: dict, path) -> CRS | None:
    name, n = fields[0], len(fields)
    low = name.lower()
    if low.startswith("utm") and n >= 9:
        zone, north = _atoi(fields[7]), fields[8].strip().lower() != "south"
        epsg = _envi_datum_epsg(fields[9], path) if n >= 10 and "=" not in fields[9] else 4267
        params = [("latitude_of_origin", 0.0), ("central_meridian", zone * 6.0 - 183.0),
                  ("scale_factor", 0.9996), ("false_easting", 500000.0),
                  ("false_northing", 0.0 if north else 10000000.0)]
        return CRS.from_wkt(_projcs(_geogcs_wkt(epsg), "Transverse_Mercator", params))
    if low.startswith("state plane (nad 27)") and n > 7:
        return _state_plane(_atoi(fields[7]) + 10000)
    if low.startswith("state plane (nad 83)") and n > 7:
        return _state_plane(_atoi(fields[7]))
    if low.startswith("geographic lat") and n > 7:
        return CRS.from_epsg(_envi_datum_epsg(fields[7], path) if "=" not in fields[7] else 4326)
    if "projection info" in raw:
        crs, _ = _crs_from_projection_info(split_list(raw["projection info"]), path)
        return crs
    return None


def _state_plane(zone_id: int) -> CRS | None:
    code = _state_plane_table().get(zone_id)
    return CRS.from_epsg(code) if code else None


def _header_crs(fields: list[str], raw: dict, units: str | None, path) -> CRS:
    """The CRS of a header's georeferencing (see :func:`georef_from_header`)."""
    crs = _crs_from_css(raw) or _crs_from_map_info(fields, raw, path)
    if crs is None:
        name = fields[0].replace('"', "'")
        crs = CRS.from_wkt(f'LOCAL_CS["{name}",{_METRE},{_EN_AXES}]')
    if units is not None:
        lin = _LINEAR_UNITS.get(units.lower())
        if lin is not None:
            crs = _set_linear_units(crs, *lin)
        if crs.is_geographic and units.lower() == "radians":
            crs = _set_angular_radians(crs)
    return _best_match(crs)


def georef_from_header(raw: dict, path=None) -> tuple[Affine | None, CRS | None]:
    """``(transform, crs)`` from a parsed header (``None, None`` without a usable map info).

    The transform equals GDAL's geotransform for the file, the CRS GDAL's spatial
    reference (see the module docstring).
    """
    if "map info" not in raw:
        return None, None
    fields = split_list(raw["map info"])
    if len(fields) < 7:
        return None, None
    units, rot, upside_down = None, 0.0, False
    for f in fields:
        if f.startswith("units="):
            units = f[len("units="):].strip()
        elif f.startswith("rotation="):
            deg = _atof(f[len("rotation="):])
            upside_down = abs(deg) == 180.0
            rot = -math.radians(deg)
    xref, yref, east, north, xs, ys = (_atof(f) for f in fields[1:7])
    if not all(map(math.isfinite, (rot, xref, yref, east, north, xs, ys))):
        shown = raw["map info"].replace("\n", " ")[:120]
        raise HeaderError(f"'map info' holds a number that is not finite: {{{shown}}}", path)
    gt = [east - (xref - 1) * xs, math.cos(rot) * xs, -math.sin(rot) * xs,
          north + (yref - 1) * ys, -math.sin(rot) * ys, -math.cos(rot) * ys]
    if upside_down:
        gt[1], gt[2], gt[4], gt[5] = xs, 0.0, 0.0, ys
    try:
        crs = _header_crs(fields, raw, units, path)
    except CRSError as exc:
        raise HeaderError(f"unreadable coordinate system in 'map info'/'projection info' "
                          f"({exc})", path) from None
    if crs.is_geographic and units is not None and units.lower() != "radians":
        factor = {"minutes": 60.0, "seconds": 3600.0}.get(units.lower(), 1.0)
        gt = [v / factor for v in gt]
    if not all(map(math.isfinite, gt)):
        raise HeaderError("'map info' gives a transform that is not finite", path)
    return Affine(gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]), crs


# --------------------------------------------------------------------------- writing


def _wkt_params(wkt: str) -> dict[str, float]:
    return {k.lower(): float(v) for k, v in re.findall(r'PARAMETER\["([^"]+)",([^\]]+)\]', wkt)}


def _geog_epsg(crs: CRS) -> int | None:
    wkt = crs.to_wkt()
    start = wkt.find("GEOGCS[")
    if start < 0:
        return None
    depth = 0
    for end in range(start + 6, len(wkt)):
        depth += {"[": 1, "]": -1}.get(wkt[end], 0)
        if depth == 0:
            break
    try:
        return CRS.from_wkt(wkt[start : end + 1]).to_epsg()
    except CRSError:
        return None


def _utm_zone(crs: CRS) -> tuple[int, bool] | None:
    wkt = crs.to_wkt()
    if '"Transverse_Mercator"' not in wkt:
        return None
    p = _wkt_params(wkt)
    unit = crs.linear_units_factor[1]
    fe, fn = p.get("false_easting", 0) * unit, p.get("false_northing", 0) * unit
    zone = (p.get("central_meridian", 0.0) + 183.0) / 6.0
    if (p.get("latitude_of_origin", 1) != 0 or p.get("scale_factor") != 0.9996
            or fe != 500000.0 or fn not in (0.0, 10000000.0) or not zone.is_integer()
            or not 1 <= zone <= 60):
        return None
    return int(zone), fn == 0.0


def header_georef(crs: CRS | None, transform: Affine) -> dict[str, str]:
    """``map info`` (+ ``rotation=``) and ``coordinate system string`` header values.

    Mirrors GDAL's ``WriteProjectionInfo`` so that GDAL, and :func:`georef_from_header`,
    read back the same CRS and transform. Raises :class:`ParameterError` for a
    transform with shear or mirroring, which ENVI cannot store.
    """
    a, b, c, d, e, f = (transform.a, transform.b, transform.c, transform.d, transform.e,
                        transform.f)
    default = (a, b, c, d, e, f) == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    xs, ys = math.hypot(a, b), math.hypot(d, e)
    rotation = ""
    if a > 0 and b == 0 and d == 0 and e > 0:
        rotation = ", rotation=180"
    elif not default:
        rot1 = -math.degrees(math.atan2(-b, a))
        rot2 = -math.degrees(math.atan2(-d, -e))
        if abs(rot1 - rot2) > 1e-5:
            raise ParameterError(
                f"the transform {tuple(transform)[:6]} has shear or mirroring; ENVI map info "
                "can only store a rotation")
        rot = (rot1 + rot2) / 2.0
        if abs(rot) > 1e-5:
            rotation = f", rotation={_fmt(rot)}"
    location = f"1, 1, {_fmt(c)}, {_fmt(f)}, {_fmt(xs)}, {_fmt(ys)}"

    is_local = crs is None or crs.to_wkt().startswith(("LOCAL_CS", "ENGCRS", "ENGINEERING"))
    if is_local:
        return {"map info": f"{{Arbitrary, {location}, 0, North{rotation}}}"} if not default \
            else {}
    geog = _geog_epsg(crs)
    datum = f", {_EPSG_DATUM[geog]}" if geog in _EPSG_DATUM else ""
    units = ""
    if crs.is_projected and crs.linear_units_factor[1] == 0.3048:
        units = ", units=Feet"
    utm = _utm_zone(crs) if crs.is_projected else None
    if utm is not None:
        hemisphere = "North" if utm[1] else "South"
        info = f"{{UTM, {location}, {utm[0]}, {hemisphere}{datum}{units}{rotation}}}"
    elif crs.is_geographic:
        info = f"{{Geographic Lat/Lon, {location}{datum}{rotation}}}"
    else:
        m = re.search(r'PROJECTION\["([^"]+)"\]', crs.to_wkt())
        proj = m.group(1) if m else "Unknown"
        name = _ENVI_PROJECTION_NAMES.get(proj, proj.replace("_", " "))
        info = f"{{{name}, {location}{datum}{units}{rotation}}}"
    out = {"map info": info}
    try:
        css = crs.to_wkt(version="WKT1_ESRI")
    except CRSError:
        css = crs.to_wkt()
    if css:
        out["coordinate system string"] = "{" + css + "}"
    return out
