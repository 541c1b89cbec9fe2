"""Ground control points and RPCs: the georeference of a scene still in sensor geometry.

A scene that is not orthorectified (Hyperion L1R, a level-1 scene exported to GeoTIFF, an
ENVI file with ``geo points`` or ``rpc info``) has no affine transform: GDAL gives it
ground control points (GCPs) or rational polynomial coefficients (RPCs) instead, and
``gdalwarp`` (or QGIS's warp) uses them to place it on a map. hsad reads both as GDAL does
(:attr:`rasterio.DatasetReader.gcps`, ``.rpcs``), keeps them in the cube's attrs
(:data:`ATTR`) and writes them into every map of the scene, so that the anomaly map is
orthorectified the same way as the scene.

They are kept in the pixel frame of the file they were read from (``grid``: that file's
transform), and a window or slice of the cube maps them onto its own pixels through its
transform (:func:`hsad.cube.transform_of`): a GCP's pixel and line, or an RPC's
``LINE_OFF``/``SAMP_OFF`` and ``LINE_SCALE``/``SAMP_SCALE``. RPC coordinates put pixel
centres on whole numbers, GDAL's grid puts them on halves (GDAL adds 0.5); both are
handled here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.rpc import RPC
from rasterio.warp import transform as warp_transform

#: the cube attr (and map attr) holding a :class:`SensorGeoref`
ATTR = "sensor_georef"


@dataclass(frozen=True)
class SensorGeoref:
    """GCPs (``(row, col, x, y, z)`` in GDAL's pixel frame, their CRS as WKT) and RPCs
    (GDAL's RPC metadata) of the raster whose transform is ``grid``."""

    gcps: tuple[tuple[float, float, float, float, float], ...] = ()
    gcp_crs: str | None = None
    rpcs: tuple[tuple[str, str], ...] | None = None
    grid: tuple[float, ...] = tuple(Affine.identity())[:6]

    def __bool__(self) -> bool:
        return bool(self.gcps) or self.rpcs is not None

    @classmethod
    def from_dataset(cls, ds, grid: Affine) -> SensorGeoref | None:
        """What a rasterio dataset holds (None for neither), for pixels of ``grid``."""
        points, crs = ds.gcps
        rpc = ds.rpcs
        wkt = crs.to_wkt() if crs is not None and points else None
        out = cls(gcps=tuple((p.row, p.col, p.x, p.y, p.z or 0.0) for p in points),
                  gcp_crs=wkt,
                  rpcs=tuple(sorted(rpc.to_gdal().items())) if rpc is not None else None,
                  grid=tuple(grid)[:6])
        return out or None

    def on_grid(self, transform: Affine) -> SensorGeoref | None:
        """The same georeference for a raster of ``transform`` (a window or slice of the
        grid); None when it is not an axis-aligned window of it with positive steps."""
        rel = ~Affine(*self.grid) @ transform  # the raster's pixel frame -> the grid's
        if rel.b or rel.d or rel.a <= 0 or rel.e <= 0:
            return None
        if rel.almost_equals(Affine.identity(), precision=1e-12):
            return self
        back = ~rel
        gcps = tuple((*_swap(back @ (col, row)), x, y, z) for row, col, x, y, z in self.gcps)
        rpcs = None
        if self.rpcs is not None:
            fields = dict(self.rpcs)
            for axis, scale, shift in (("LINE", rel.e, rel.f), ("SAMP", rel.a, rel.c)):
                off = float(fields[f"{axis}_OFF"])
                fields[f"{axis}_OFF"] = repr((off + 0.5 - shift) / scale - 0.5)
                fields[f"{axis}_SCALE"] = repr(float(fields[f"{axis}_SCALE"]) / scale)
            rpcs = tuple(sorted(fields.items()))
        return replace(self, gcps=gcps, rpcs=rpcs, grid=tuple(transform)[:6])

    def windowed(self, window, transform: Affine) -> SensorGeoref | None:
        """The same georeference for ``window`` (an :class:`hsad.cube.subset.Window`) of its grid,
        read as a raster of ``transform`` (the identity for a file without an affine
        georeference, as ``gdal_translate -srcwin`` writes it)."""
        if window is None:
            return self
        part = self.on_grid(Affine(*self.grid) @ Affine.translation(window.col_off,
                                                                     window.row_off))
        return None if part is None else replace(part, grid=tuple(transform)[:6])

    def ground_control_points(self) -> tuple[list[GroundControlPoint], CRS | None]:
        """The GCPs as rasterio writes them (``dataset.gcps = ...``)."""
        points = [GroundControlPoint(row=r, col=c, x=x, y=y, z=z, id=str(i + 1))
                  for i, (r, c, x, y, z) in enumerate(self.gcps)]
        return points, CRS.from_wkt(self.gcp_crs) if self.gcp_crs else None

    def rpc(self) -> RPC | None:
        """The RPCs as rasterio writes them (``dataset.rpcs = ...``)."""
        return RPC.from_gdal(dict(self.rpcs)) if self.rpcs is not None else None

    def write_to(self, dst) -> None:
        """Set the GCPs and RPCs of a rasterio dataset open for writing."""
        if self.gcps:
            points, crs = self.ground_control_points()
            dst.gcps = (points, crs if crs is not None else CRS())  # CRS(): GDAL reads none
        if self.rpcs is not None:
            dst.rpcs = self.rpc()


#: ``rpc info``'s order in an ENVI header (GDAL's ``ENVIDataset::WriteRpcInfo``): ten
#: offsets and scales, four lists of 20 coefficients, then ENVI's tile offsets and flag
_ENVI_RPC_ORDER = ("LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF", "LINE_SCALE",
                   "SAMP_SCALE", "LAT_SCALE", "LONG_SCALE", "HEIGHT_SCALE", "LINE_NUM_COEFF",
                   "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")


def envi_header_fields(held: SensorGeoref | None, where=None) -> dict[str, str]:
    """``geo points`` and ``rpc info`` header values for ``held``, as GDAL reads them back.

    ENVI's geo points are 1-based pixel, line, latitude and longitude: GCPs in another CRS
    are converted to WGS 84; GCPs without a CRS, or in a local one, cannot be, and are left
    out with a warning naming ``where``."""
    if not held:
        return {}
    out = {}
    if held.gcps:
        points, crs = held.ground_control_points()
        lon, lat = [p.x for p in points], [p.y for p in points]
        if crs is None or not (crs.is_geographic or crs.is_projected):
            warnings.warn(f"{where or 'the cube'}: its ground control points are in "
                          f"{'no CRS' if crs is None else 'a local CRS'}; ENVI's 'geo points' "
                          "hold latitude and longitude, so they are not written",
                          UserWarning, stacklevel=3)
        else:
            if crs != CRS.from_epsg(4326):
                lon, lat = warp_transform(crs, CRS.from_epsg(4326), lon, lat)
            rows = [", ".join(repr(float(v)) for v in (p.col + 1.0, p.row + 1.0, la, lo))
                    for p, la, lo in zip(points, lat, lon, strict=True)]
            out["geo points"] = _braced(rows)
    if held.rpcs is not None:
        fields = dict(held.rpcs)
        values = [v for key in _ENVI_RPC_ORDER for v in fields[key].split()] + ["0", "0", "1"]
        out["rpc info"] = _braced([", ".join(values[i:i + 4]) for i in range(0, len(values), 4)])
    return out


def _braced(rows: list[str]) -> str:
    """A braced list over lines, as GDAL writes one: GDAL stops reading a header at a line
    of 10,000 characters, which a few hundred GCPs on one line would reach."""
    return "{\n " + ",\n ".join(rows) + "}"


def _transformer(held: SensorGeoref | None, warn: bool = False):
    """``(make, crs)``: a maker of GDAL's transformer placing ``held``'s raster as
    ``gdalwarp`` does (its GCP polynomial, else its RPC transformer at height 0, inverted to
    1e-6 pixel), and the CRS of its ground coordinates; None without GCPs in a CRS or RPCs,
    or when GDAL cannot build one of them (two GCPs; ``warn``: say so)."""
    from rasterio.transform import GCPTransformer, RPCTransformer

    if not held:
        return None
    points, crs = held.ground_control_points()
    if points and crs is not None:
        make = lambda: GCPTransformer(points)  # noqa: E731
    elif held.rpcs is not None:
        rpc, crs = held.rpc(), CRS.from_epsg(4326)
        # GDAL inverts the RPCs to 0.1 pixel by default; a vertex is placed to 1e-6
        make = lambda: RPCTransformer(rpc, RPC_PIXEL_ERROR_THRESHOLD=1e-6)  # noqa: E731
    else:
        return None
    try:
        with rasterio.Env(), make():  # in an Env, GDAL's message is the exception's alone
            pass
    except Exception as exc:  # noqa: BLE001  GDAL's CPLE_* errors have no public base class
        if warn:
            what = f"its {len(held.gcps)} ground control points" if held.gcps else "its RPCs"
            warnings.warn(f"GDAL cannot place the scene by {what} ({exc}): the polygons stay "
                          "in pixel coordinates", UserWarning, stacklevel=4)
        return None
    return make, crs


def ground_mapping(held: SensorGeoref | None, warn: bool = False):
    """``(to_ground, crs)``: a function taking an ``(n, 2)`` array of pixel-frame points
    (x = column, y = row, from the top-left corner) to ground coordinates in ``crs``, as
    ``gdalwarp`` places the raster (:func:`_transformer`); None where it has none."""
    found = _transformer(held, warn)
    if found is None:
        return None
    make, crs = found

    def to_ground(points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return np.empty((0, 2))
        with make() as transformer:
            xs, ys = transformer.xy(points[:, 1], points[:, 0], offset="ul")
        return np.column_stack([np.asarray(xs, float), np.asarray(ys, float)])

    return to_ground, crs


def pixel_mapping(held: SensorGeoref | None):
    """``(to_pixels, crs)``: the inverse of :func:`ground_mapping`, ground coordinates in
    ``crs`` (an ``(n, 2)`` array) to pixel-frame points (x = column, y = row, from the
    top-left corner, fractional); None where the raster has no such placement."""
    found = _transformer(held)
    if found is None:
        return None
    make, crs = found

    def to_pixels(points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return np.empty((0, 2))
        with make() as transformer:
            rows, cols = transformer.rowcol(points[:, 0], points[:, 1], op=np.positive)
        return np.column_stack([np.asarray(cols, float), np.asarray(rows, float)])

    return to_pixels, crs


def _swap(colrow) -> tuple[float, float]:
    col, row = colrow
    return float(row), float(col)


def sensor_georef_of(obj, transform: Affine) -> SensorGeoref | None:
    """The GCPs and RPCs to write for ``obj`` (a cube or map, or anything else), whose
    transform is ``transform``; None when it holds none."""
    held = getattr(obj, "attrs", {}).get(ATTR)
    if not isinstance(held, SensorGeoref) or not held:
        return None
    return held.on_grid(transform)


__all__ = ["ATTR", "SensorGeoref", "envi_header_fields", "ground_mapping", "pixel_mapping",
           "sensor_georef_of"]
