"""Georeferencing of ENVI headers: read by GDAL itself, written the way GDAL writes it.

Reading asks GDAL's ENVI driver (through rasterio) for the geotransform and CRS of a
header: the header's ``map info``, ``projection info`` and ``coordinate system string``
are put in a one-pixel stub header in GDAL's in-memory file system (``/vsimem/``) beside a
2-byte data file, and the stub is opened. The answer is therefore GDAL's own
(``ENVIDataset::ProcessMapinfo``: UTM, State Plane, Geographic Lat/Lon, ``projection
info`` codes, datums, ``units=``, ``rotation=``, EPSG matching), also for files GDAL
will not open itself (spectral libraries, data files under 2 bytes, a header named
differently from GDAL's lookup). hsad adds only its errors: a non-finite transform, or a
``projection info`` GDAL cannot build a CRS from (GDAL then drops the CRS), is a
:class:`HeaderError`; a singular one (a pixel size of 0, which GDAL reports but cannot
invert) is a :class:`GeoreferenceError`; GDAL's unknown-datum notice becomes a
``UserWarning``.

Writing (:func:`header_georef`) mirrors GDAL's ``WriteProjectionInfo``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import uuid
import warnings
from dataclasses import replace
from pathlib import Path

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from hsad.cube import refuse_singular
from hsad.errors import FileFormatError, HeaderError, ParameterError
from hsad.io.envi_gdal_view import MAX_LINE, pam_bytes, why_unread
from hsad.io.sensor_georef import SensorGeoref

#: EPSG geographic CRS -> ENVI datum name written in ``map info`` (GDAL's writer).
_EPSG_DATUM = {4326: "WGS-84", 4322: "WGS-72", 4269: "North America 1983",
               4267: "North America 1927", 4230: "European 1950",
               4277: "Ordnance Survey of Great Britain '36", 4291: "SAD-69/Brazil",
               4283: "Geocentric Datum of Australia 1994",
               4275: "Nouvelle Triangulation Francaise IGN"}

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


def _fmt(value: float) -> str:
    value = float(value)
    return repr(0.0 if value == 0 else value)


# --------------------------------------------------------------------------- reading

#: Header keys GDAL's ENVI driver takes the geotransform and CRS from (hsad's and GDAL's
#: spelling).
_GEOREF_KEYS = ("map info", "projection info", "coordinate system string")
#: Keys GDAL's ENVI driver takes ground control points and RPCs from.
_SENSOR_KEYS = ("geo points", "rpc info")
_GDAL_KEYS = tuple(key.replace(" ", "_") for key in _GEOREF_KEYS + _SENSOR_KEYS)
#: The rest of the stub header GDAL opens: a 1 x 1 x 1 byte image.
_STUB = ("ENVI\nsamples = 1\nlines = 1\nbands = 1\nheader offset = 0\n"
         "file type = ENVI Standard\ndata type = 1\ninterleave = bsq\nbyte order = 0\n")
_UNKNOWN_DATUM = re.compile(r"Unrecognized datum '(.*)', defaulting to WGS84")

_gdal_notes = threading.local()


class _TakeGdalNotes(logging.Filter):
    """Takes GDAL's messages (rasterio logs them) from a thread reading a stub header."""

    def filter(self, record: logging.LogRecord) -> bool:
        notes = getattr(_gdal_notes, "notes", None)
        if notes is None:
            return True
        notes.append(record.getMessage())
        return False


logging.getLogger("rasterio._env").addFilter(_TakeGdalNotes())


def _fields_for_gdal(raw: dict, gdal: dict | None, keys=_GEOREF_KEYS) -> dict[str, str]:
    """The georeferencing fields (``keys``) to give GDAL: as GDAL read them from the file
    when known (``gdal``), else rebuilt from hsad's parse (values in braces, on one line)."""
    if gdal is not None:
        return {key: gdal[key] for key in (k.replace(" ", "_") for k in keys) if key in gdal}
    return {key.replace(" ", "_"): "{" + " ".join(raw[key].splitlines()) + "}"
            for key in keys if key in raw}


def _short_lines(value: str, width: int = 1000) -> str:
    """``value`` as one line when GDAL reads it so, else over lines broken after commas,
    each under ``width`` characters: GDAL stops reading a header at a line of
    :data:`MAX_LINE` characters, and joins a braced value's lines without a separator
    (hundreds of geo points, joined by GDAL into one value, read back the same)."""
    if len(value) < MAX_LINE - 100 or not value.startswith("{"):  # "key = " prefix
        return value  # an unbraced value is one line to GDAL, however long
    lines, line = [], ""
    for piece in re.findall(r"[^,]*,|[^,]+$", value):
        if line and len(line) + len(piece) >= width:
            lines.append(line)
            line = ""
        line += piece
    return "\n".join([*lines, line])


def _gdal_georef(fields: dict, path, quotes: bool = False, sensor_grid: Affine | None = None):
    """GDAL's ``(transform, crs)`` for the georeferencing ``fields``, its notes, and whether
    GDAL found them georeferenced. ``quotes``: a '"' in the map info becomes a "'" (a
    retry when GDAL's CRS does not convert). ``sensor_grid``: return GDAL's GCPs and RPCs
    instead (a :class:`SensorGeoref` for pixels of that grid, or None)."""
    lines = [_STUB]
    for key, value in fields.items():
        if key == "map_info" and quotes:
            value = value.replace('"', "'")
        lines.append(f"{key} = {_short_lines(value)}\n")
    folder = f"hsad-georef-{uuid.uuid4().hex}"
    _gdal_notes.notes = notes = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NotGeoreferencedWarning)
            with MemoryFile("".join(lines).encode("utf-8"), dirname=folder, filename="h.hdr"), \
                    MemoryFile(b"\0\0", dirname=folder, filename="h") as data, \
                    data.open() as ds:
                if sensor_grid is not None:
                    return SensorGeoref.from_dataset(ds, sensor_grid)
                transform, crs = ds.transform, ds.crs
        georeferenced = True
        for note in caught:
            if issubclass(note.category, NotGeoreferencedWarning):
                georeferenced = False
            else:  # not ours to swallow
                warnings.warn(note.message, note.category, stacklevel=2)
        return transform, crs, notes, georeferenced
    except CRSError:
        if not quotes and '"' in fields.get("map_info", ""):
            return _gdal_georef(fields, path, quotes=True)
        raise HeaderError("GDAL cannot read the georeferencing (its coordinate system does "
                          "not convert)", path) from None
    except RasterioError as exc:
        raise HeaderError(f"GDAL cannot read the georeferencing ({exc})", path) from None
    finally:
        _gdal_notes.notes = None


def georef_from_header(raw: dict, path=None, gdal: dict | None = None,
                       text: str | None = None) -> tuple[Affine | None, CRS | None]:
    """``(transform, crs)`` from a parsed header (``None, None`` when GDAL finds no
    georeferencing in it). ``gdal``: the fields as GDAL reads them from the file
    (:func:`hsad.io.envi_gdal_view.gdal_fields`); without them they are rebuilt from
    ``raw``. ``text``: the header's, to say why GDAL does not read a ``map info``.

    Both are GDAL's for the file (see the module docstring).
    """
    fields = _fields_for_gdal(raw, gdal)
    if "map_info" not in fields:
        if "map info" in raw:
            why = why_unread(text, "map info") if text is not None else \
                "a line over 10,000 characters, or a '{' left open, before it"
            warnings.warn(f"{path}: GDAL does not read this header's 'map info' ({why}); "
                          "neither does hsad, so the scene is not georeferenced, as in GDAL "
                          "and QGIS", UserWarning, stacklevel=2)
        return None, None
    transform, crs, notes, georeferenced = _gdal_georef(fields, path)
    for note in notes:
        m = _UNKNOWN_DATUM.search(note)
        if m:
            warnings.warn(f"{path}: unrecognised ENVI datum '{m.group(1)}', using WGS 84 "
                          "(as GDAL does)", UserWarning, stacklevel=2)
    shown = " ".join(fields["map_info"].split())[:120]
    if not georeferenced:  # too few fields, no braces: GDAL does not take it
        return None, None
    if not all(map(math.isfinite, tuple(transform)[:6])):
        raise HeaderError(f"'map info' gives a transform that is not finite: {shown}", path)
    refuse_singular(transform, path, "the transform of 'map info'")
    if crs is None and "projection_info" in fields:  # GDAL could not build it: drops the CRS
        raise HeaderError(f"unreadable coordinate system in 'map info'/'projection info': "
                          f"GDAL builds no CRS from {shown}", path)
    return transform, crs


def sensor_georef_from_header(raw: dict, path=None, gdal: dict | None = None,
                              grid: Affine | None = None,
                              data_path=None) -> SensorGeoref | None:
    """GDAL's ground control points (``geo points``) and RPCs (``rpc info``) of a parsed
    header, for pixels of ``grid`` (the file's transform; default the identity); None for
    neither. GDAL reads neither beside a ``map info`` (nor does hsad). ENVI's geo points are
    latitude and longitude, to which GDAL gives no CRS: hsad gives the header's WGS 84
    (GCPs from a sidecar keep the CRS GDAL reads there, or none).

    With ``data_path``, GDAL opens the file itself where it can (and takes this header for
    it): a file GDAL wrote keeps four geo points in its header and the whole list, with
    its CRS, in its ``.aux.xml`` sidecar, which GDAL reads first. Else the header's fields
    go to GDAL's ENVI driver in a stub header, as for ``map info``."""
    in_header = bool(_fields_for_gdal(raw, gdal, _SENSOR_KEYS))
    sidecar = data_path is not None and Path(f"{data_path}.aux.xml").is_file()
    if not (in_header or sidecar):
        return None
    grid = grid or Affine.identity()
    held, from_sidecar = _UNREAD, False
    if data_path is not None:
        held = _from_the_file(data_path, path, grid)
        from_sidecar = held is not _UNREAD and sidecar and _sidecar_has_gcps(data_path)
    if held is _UNREAD:
        if not in_header:
            return None
        fields = _fields_for_gdal(raw, gdal, _GEOREF_KEYS + _SENSOR_KEYS)
        try:
            held = _gdal_georef(fields, path, sensor_grid=grid)
        except (HeaderError, RasterioError):
            warnings.warn(f"{path}: GDAL cannot read its 'geo points'/'rpc info'; the maps "
                          "will not carry them", UserWarning, stacklevel=2)
            return None
    if held is not None and held.gcps and held.gcp_crs is None and not from_sidecar:
        held = replace(held, gcp_crs=CRS.from_epsg(4326).to_wkt())  # the header's lat/lon
    return held


_UNREAD = object()


def _sidecar_has_gcps(data_path) -> bool:
    """Whether the ``.aux.xml`` sidecar holds a GCP list (GDAL takes it before the
    header's geo points, with its own CRS or none)."""
    return b"<GCPList" in (pam_bytes(data_path) or b"")


def _from_the_file(data_path, header_path, grid: Affine):
    """GDAL's GCPs and RPCs of the ENVI file itself (sidecar included), or ``_UNREAD`` when
    GDAL does not open it with ``header_path`` as its header. A name GDAL cannot be given
    (not UTF-8) is left to the header's own fields (read through a stub, as for ``map
    info``), unless its ``.aux.xml`` sidecar holds GCPs: those only GDAL reads, and the
    file is refused (FileFormatError) rather than read without them."""
    from hsad.io import gdal_name_problem

    if (problem := gdal_name_problem(data_path)) is not None:
        if _sidecar_has_gcps(data_path):
            raise FileFormatError(f"{problem.removesuffix('; rename it')}, and the ground "
                                  "control points of its .aux.xml are read by GDAL; rename "
                                  "it", data_path)
        return _UNREAD
    try:
        with rasterio.Env(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(data_path) as ds:
                files = {os.path.realpath(f) for f in ds.files}
                if ds.driver != "ENVI" or os.path.realpath(header_path) not in files:
                    return _UNREAD
                return SensorGeoref.from_dataset(ds, grid)
    except (RasterioError, OSError):
        return _UNREAD


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
    transform with shear or mirroring, or turned by 180°, which ENVI cannot store.
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
        if abs(abs(rot) - 180.0) <= 1e-5:  # GDAL reads rotation=180 as south-up (mirrored)
            raise ParameterError(
                f"the transform {tuple(transform)[:6]} turns the grid by 180°; ENVI map info "
                "cannot store that (GDAL reads rotation=180 as a south-up grid, the scene "
                "mirrored left to right): write a GeoTIFF")
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
