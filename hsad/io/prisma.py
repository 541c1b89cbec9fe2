"""ASI PRISMA products (HDF-EOS5 ``.he5``): L1 and L2B radiance, L2C and L2D reflectance.

The hyperspectral cubes lie in the ``HDFEOS/SWATHS/PRS_<level>_HCO`` swath as
``Data Fields/VNIR_Cube`` and ``SWIR_Cube``, each ``(rows, bands, columns)`` of uint16 DN
with the bands in *descending* wavelength and unused slots at 0 nm (root attributes
``List_Cw_Vnir``, ``List_Fwhm_Vnir``, ``List_Cw_Vnir_Flags`` and the same for Swir). hsad
reads them lazily as one ``(y, x, band)`` float32 cube in physical units, bands ascending:

- L1: radiance = DN / ``ScaleFactor_<Arm>`` − ``Offset_<Arm>`` (W m⁻² sr⁻¹ µm⁻¹);
- L2B radiance, L2C and L2D reflectance: ``L2Scale<Arm>Min`` + DN · (Max − Min) / 65535;
- a pixel whose DN are 0 in every band of both spectrometers holds no data (NaN): the
  frame around an L2D scene;
- by default both spectrometers, the VNIR's bands inside the SWIR's range left out (the
  SWIR's are kept where they overlap, as prismaread does); ``key="vnir"`` or ``"swir"``
  reads one of them whole.

Georeference: an L2D product is on a map grid (``Epsg_Code``; ``Product_ULcorner_easting``
and ``_northing`` are the *centre* of the top-left pixel, the pixel size follows from the
lower-right one). L1, L2B and L2C are in the instrument's geometry: their per-pixel
latitude and longitude become ground control points in WGS 84
(:mod:`hsad.io.sensor_georef`), which place every map written from the scene as
``gdalwarp`` and QGIS place it.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.errors import CRSError

from hsad.cube import make_cube
from hsad.errors import FileFormatError
from hsad.io.geotiff import tile_chunks
from hsad.io.hdf5_file import H5_ERRORS, Hdf5Reader, chunk_blocks, file_stamp, text
from hsad.io.sensor_georef import ATTR as SENSOR_ATTR
from hsad.io.sensor_georef import SensorGeoref
from hsad.io.window import array_over, check_window, window_attrs, window_transform

SWATHS = "HDFEOS/SWATHS"
_SWATH = re.compile(r"^PRS_(L\w+?)_HCO$")
#: the spectrometers, as the attributes name them, and their cubes
ARMS = {"Vnir": "VNIR_Cube", "Swir": "SWIR_Cube"}
#: ``key`` values: the spectrometers each reads
KEYS = {"full": ("Vnir", "Swir"), "vnir": ("Vnir",), "swir": ("Swir",),
        "vnir_cube": ("Vnir",), "swir_cube": ("Swir",)}
#: the cube's units by processing level
UNITS = {"1": "W m-2 sr-1 um-1 (radiance)", "2B": "W m-2 sr-1 um-1 (radiance)",
         "2C": "reflectance (0-1)", "2D": "reflectance (0-1)"}
#: at most this many ground control points along each axis of an L1/L2B/L2C scene
GCP_LINES = 21
#: PRISMA's hyperspectral pixel (m)
PIXEL = 30.0
#: how far an L2D grid's centre may lie from the product's stated centre: a wrong zone or
#: datum is hundreds of km off; terrain and an off-nadir view may move the centre of an
#: orthorectified scene by a kilometre or more
CENTRE_TOLERANCE_M = 5000.0


def _swath(f: h5py.File) -> str | None:
    """The name of the file's hyperspectral swath (``PRS_L2D_HCO``), None without one."""
    group = f.get(SWATHS)
    if not isinstance(group, h5py.Group):
        return None
    for name in group:
        fields = group[name].get("Data Fields") if _SWATH.match(name) else None
        if isinstance(fields, h5py.Group) and any(c in fields for c in ARMS.values()):
            return name
    return None


def is_prisma(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file holding a PRISMA hyperspectral swath."""
    try:
        with h5py.File(path, "r") as f:
            return _swath(f) is not None
    except H5_ERRORS:
        return False


def why_not_prisma(path: str | os.PathLike) -> str | None:
    """Why an HDF5 file meant as a PRISMA product (named ``PRS_…``, or holding a ``PRS_``
    swath) cannot be read; None otherwise."""
    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            swaths = f.get(SWATHS)
            names = list(swaths) if isinstance(swaths, h5py.Group) else []
    except H5_ERRORS:
        return None
    if not (p.name.upper().startswith("PRS_") or any(n.startswith("PRS_") for n in names)):
        return None
    return (f"a PRISMA product without a hyperspectral cube (no VNIR_Cube or SWIR_Cube in a "
            f"PRS_<level>_HCO swath; it holds: {', '.join(names) or 'no swath'})")


@dataclass(frozen=True)
class Arm:
    """One spectrometer's bands as the cube reads them: the ``dataset``'s disk bands
    ``lo:hi`` are read, and ``order`` picks the cube's bands among them (ascending
    wavelength); ``gain`` and ``offset`` take DN to physical units."""

    dataset: str
    lo: int
    hi: int
    order: np.ndarray
    wavelength: np.ndarray
    fwhm: np.ndarray | None
    good: np.ndarray
    gain: np.ndarray
    offset: np.ndarray

    def disk_bands(self, first: int, stop: int):
        """The positions among the disk bands ``lo:hi`` of the cube's bands ``first:stop``
        of this arm: a slice when they are evenly spaced (a view, not a copy)."""
        picked = self.order[first:stop]
        steps = np.diff(picked)
        if picked.size == 1 or (steps.size and np.all(steps == steps[0]) and steps[0] != 0):
            step = int(steps[0]) if steps.size else 1
            end = int(picked[-1]) + step
            return slice(int(picked[0]), end if end >= 0 else None, step)
        return picked


def _attr(f: h5py.File, name: str, path, size: int | None = None) -> np.ndarray:
    """Root attribute ``name`` as float64 (``size`` values), FileFormatError when absent."""
    if name not in f.attrs:
        raise FileFormatError(f"a PRISMA product without its {name} attribute", path)
    values = np.asarray(f.attrs[name], dtype=np.float64).reshape(-1)
    if size is not None and values.size != size:
        raise FileFormatError(f"the PRISMA attribute {name} has {values.size} values for "
                              f"{size} bands", path)
    return values


def _scaling(f: h5py.File, level: str, arm: str, path) -> tuple[float, float]:
    """(gain, offset) taking ``arm``'s DN to radiance or reflectance at ``level``."""
    if level.startswith("1"):
        factor = float(_attr(f, f"ScaleFactor_{arm}", path)[0])
        offset = float(_attr(f, f"Offset_{arm}", path)[0]) if f"Offset_{arm}" in f.attrs else 0
        if not (np.isfinite(factor) and factor > 0):
            raise FileFormatError(f"the PRISMA attribute ScaleFactor_{arm} is {factor:g}, not "
                                  "a positive number", path)
        return 1 / factor, -offset
    low, high = (float(_attr(f, f"L2Scale{arm}{end}", path)[0]) for end in ("Min", "Max"))
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise FileFormatError(f"the PRISMA attributes L2Scale{arm}Min/Max ({low:g}, {high:g}) "
                              "are no range", path)
    return (high - low) / 65535, low


def _arm(f: h5py.File, swath: str, level: str, arm: str, path,
         below: float | None = None) -> Arm:
    """Spectrometer ``arm``'s bands with a wavelength (below ``below`` nm when given)."""
    dataset = f"{SWATHS}/{swath}/Data Fields/{ARMS[arm]}"
    var = f[dataset]
    if var.ndim != 3 or var.dtype.kind not in "iu":
        raise FileFormatError(f"{ARMS[arm]} is {var.dtype} of {var.ndim} dimensions, not "
                              "PRISMA's (rows, bands, columns) integer DN", path)
    slots = int(var.shape[1])
    wl = _attr(f, f"List_Cw_{arm}", path, slots)
    fwhm = _attr(f, f"List_Fwhm_{arm}", path, slots) if f"List_Fwhm_{arm}" in f.attrs else None
    flags = (_attr(f, f"List_Cw_{arm}_Flags", path, slots) if f"List_Cw_{arm}_Flags" in f.attrs
             else np.ones(slots))
    keep = np.flatnonzero(np.isfinite(wl) & (wl > 0) & (wl < (np.inf if below is None
                                                               else below)))
    if keep.size == 0:
        raise FileFormatError(f"{ARMS[arm]} has no band with a wavelength (List_Cw_{arm})",
                              path)
    keep = keep[np.argsort(wl[keep], kind="stable")]
    lo, hi = int(keep.min()), int(keep.max()) + 1
    gain, offset = _scaling(f, level, arm, path)
    n = keep.size
    return Arm(dataset, lo, hi, keep - lo, wl[keep], None if fwhm is None else fwhm[keep],
               flags[keep] != 0, np.full(n, gain, np.float32), np.full(n, offset, np.float32))


def _arms(f: h5py.File, swath: str, level: str, key: str | None, path) -> tuple[str, list]:
    """(the key, the spectrometers the cube reads); in the full cube the VNIR's bands in
    the SWIR's range are left out."""
    name = "full" if key is None else str(key).lower()
    if name not in KEYS:
        raise FileFormatError(f"no cube {key!r} in the PRISMA product (--key: full, vnir or "
                              "swir)", path)
    fields = f[f"{SWATHS}/{swath}/Data Fields"]
    present = [a for a in KEYS[name] if ARMS[a] in fields]
    if not present:
        raise FileFormatError(f"the PRISMA product has no {ARMS[KEYS[name][0]]}", path)
    if present == ["Vnir", "Swir"]:
        swir = _arm(f, swath, level, "Swir", path)
        return name, [_arm(f, swath, level, "Vnir", path, below=float(swir.wavelength.min())),
                      swir]
    return name, [_arm(f, swath, level, a, path) for a in present]


def _level(f: h5py.File, swath: str, path) -> str:
    """The processing level (``1``, ``2B``, ``2C``, ``2D``) named by the swath holding the
    cube; a ``Processing_Level`` attribute that names another is warned of."""
    level = _SWATH.match(swath).group(1).upper().lstrip("L")
    if "Processing_Level" in f.attrs:
        said = text(f.attrs["Processing_Level"]).strip().upper().lstrip("L")
        if said != level:
            warnings.warn(f"{path}: Processing_Level says {said or 'nothing'!r} but the cube "
                          f"lies in the {swath} swath: read as level {level}", UserWarning,
                          stacklevel=3)
    return level


def _map_grid(f: h5py.File, rows: int, cols: int, path) -> tuple[Affine, CRS] | None:
    """An L2D product's transform and CRS, from the centres of its corner pixels; None
    (with a warning) when its attributes do not give one."""
    names = ("Epsg_Code", "Product_ULcorner_easting", "Product_ULcorner_northing",
             "Product_LRcorner_easting", "Product_LRcorner_northing")
    try:
        epsg, ulx, uly, lrx, lry = (float(_attr(f, n, path)[0]) for n in names)
        crs = CRS.from_epsg(int(epsg))
    except (FileFormatError, CRSError, ValueError, OverflowError) as exc:
        warnings.warn(f"{path}: the L2D product's map grid cannot be read ({exc}); its maps "
                      "are in pixels", UserWarning, stacklevel=3)
        return None
    xres = (lrx - ulx) / (cols - 1) if cols > 1 else PIXEL
    yres = (uly - lry) / (rows - 1) if rows > 1 else PIXEL
    if not (np.isfinite([xres, yres]).all() and xres > 0 and yres > 0):
        problem = f"the corners ({ulx:g}, {uly:g}) and ({lrx:g}, {lry:g}) give no grid"
    elif crs.is_geographic:
        problem = f"EPSG:{int(epsg)} is in degrees, the corners ({ulx:g}, {uly:g}) are not"
    elif max(abs(xres / PIXEL - 1), abs(yres / PIXEL - 1)) > 0.005:
        problem = (f"the corners ({ulx:g}, {uly:g}) and ({lrx:g}, {lry:g}) make pixels of "
                   f"{xres:.4g} x {yres:.4g} m, not PRISMA's {PIXEL:g} m")
    else:
        problem = _off_centre(f, crs, (ulx + lrx) / 2, (uly + lry) / 2)
    if problem is not None:
        warnings.warn(f"{path}: the L2D product's map grid is not consistent ({problem}); its "
                      "maps are in pixels", UserWarning, stacklevel=3)
        return None
    return Affine(xres, 0, ulx - xres / 2, 0, -yres, uly + yres / 2), crs


def _off_centre(f: h5py.File, crs: CRS, x: float, y: float) -> str | None:
    """Why the grid's centre (``x``, ``y`` in ``crs``) is not at the product's
    ``Product_center_lat``/``_long`` (farther than :data:`CENTRE_TOLERANCE_M`); None when it
    is there, or the product does not say."""
    from rasterio.warp import transform as warp_transform

    if not all(n in f.attrs for n in ("Product_center_lat", "Product_center_long")):
        return None
    lat, lon = (float(np.asarray(f.attrs[n], np.float64).reshape(-1)[0])
                for n in ("Product_center_lat", "Product_center_long"))
    (gx,), (gy,) = warp_transform(crs, "EPSG:4326", [x], [y])
    metres = _apart_m(gy, gx, lat, lon)
    if np.isfinite(metres) and metres <= CENTRE_TOLERANCE_M:
        return None
    return (f"its centre lies at {gy:.5f}, {gx:.5f}, {metres / 1000:.1f} km from the "
            f"product's centre {lat:.5f}, {lon:.5f}")


def _apart_m(lat, lon, lat2, lon2):
    """How far apart (m) points a few km apart at most are: degrees of latitude and of
    longitude (scaled by the cosine of the latitude) at 111.32 km, the longitude difference
    taken across the antimeridian where that is shorter."""
    east = (np.asarray(lon) - lon2 + 180) % 360 - 180
    return 111_320 * np.hypot(np.asarray(lat) - lat2, east * np.cos(np.radians(lat2)))


def _axis_points(n: int, most: int) -> np.ndarray:
    """Up to ``most`` evenly spread positions along an axis of ``n`` pixels, both ends
    included."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))


def _geolocation(f: h5py.File, swath: str, arms: list, rows: int, cols: int, path
                 ) -> SensorGeoref | None:
    """Ground control points in WGS 84 from the per-pixel latitude and longitude of an
    L1, L2B or L2C product (the VNIR's, or the SWIR's for a SWIR cube); None, with a
    warning, without them."""
    group = f.get(f"{SWATHS}/{swath}/Geolocation Fields")
    own = "_SWIR" if arms[0].dataset.endswith(ARMS["Swir"]) else "_VNIR"
    pairs = [(f"Latitude{s}", f"Longitude{s}") for s in (own, "", "_VNIR", "_SWIR")]
    found = next((p for p in pairs if isinstance(group, h5py.Group)
                  and all(isinstance(group.get(n), h5py.Dataset) for n in p)), None)
    if found is None:
        warnings.warn(f"{path}: the PRISMA product has no Latitude/Longitude geolocation "
                      "fields; its maps are in pixels", UserWarning, stacklevel=3)
        return None
    lat, lon = (group[n] for n in found)
    if lat.shape != (rows, cols) or lon.shape != (rows, cols):
        warnings.warn(f"{path}: the PRISMA geolocation fields are {lat.shape}, not the cube's "
                      f"{(rows, cols)}; its maps are in pixels", UserWarning, stacklevel=3)
        return None
    la, lo = (np.asarray(v[()], np.float64) for v in (lat, lon))
    ok = (np.isfinite(la) & np.isfinite(lo) & (np.abs(la) <= 90) & (np.abs(lo) <= 180)
          & ((la != 0) | (lo != 0)))
    if ok.any() and np.ptp(lo[ok]) > 180:  # across the antimeridian: one side of it
        lo = np.where(lo < 0, lo + 360, lo)
    r, c = _axis_points(rows, GCP_LINES), _axis_points(cols, GCP_LINES)
    at = np.ix_(r, c)
    rr, cc = np.meshgrid(r, c, indexing="ij")
    if ok[at].sum() < 3:
        warnings.warn(f"{path}: the PRISMA geolocation fields hold fewer than 3 positions; "
                      "its maps are in pixels", UserWarning, stacklevel=3)
        return None
    gcps = tuple((float(a) + 0.5, float(b) + 0.5, float(x), float(y), 0.0)
                 for a, b, x, y in zip(rr[ok[at]], cc[ok[at]], lo[at][ok[at]], la[at][ok[at]],
                                       strict=True))
    held = SensorGeoref(gcps=gcps, gcp_crs=CRS.from_epsg(4326).to_wkt())
    return held if _fits(held, la, lo, ok, path) else None


def _fits(held: SensorGeoref, lat, lon, ok, path) -> bool:
    """Whether GDAL can place the scene by ``held``'s points (False, with a warning, when
    its polynomial cannot be fitted: a product of one or two rows or columns); warn when
    that polynomial misses the geolocation, at the points and halfway between them, by
    more than a pixel (terrain, or a swath too curved for it): maps placed by them are off
    by as much."""
    from hsad.io.sensor_georef import ground_mapping

    mapping = ground_mapping(held)
    if mapping is None:
        warnings.warn(f"{path}: GDAL cannot fit its polynomial through the product's "
                      f"{len(held.gcps)} ground control points (a product of one or two rows "
                      "or columns); its maps are in pixels", UserWarning, stacklevel=4)
        return False
    rows, cols = lat.shape
    r, c = _axis_points(rows, 2 * GCP_LINES - 1), _axis_points(cols, 2 * GCP_LINES - 1)
    rr, cc = (v[ok[np.ix_(r, c)]] for v in np.meshgrid(r, c, indexing="ij"))
    placed = mapping[0](np.column_stack([cc + 0.5, rr + 0.5]))
    worst = float(_apart_m(placed[:, 1], placed[:, 0], lat[rr, cc], lon[rr, cc]).max())
    if worst > PIXEL:
        warnings.warn(f"{path}: GDAL's polynomial through the product's {len(held.gcps)} "
                      f"ground control points misses its geolocation by up to {worst:.0f} m "
                      f"({worst / PIXEL:.1f} pixels of {PIXEL:g} m): maps placed by them are "
                      "off by as much (an L2D product is on a map grid)", UserWarning,
                      stacklevel=4)
    return True


class _PrismaReader(Hdf5Reader):
    """Windows of a PRISMA cube: the spectrometers' DN read ``(rows, bands, columns)``,
    their bands put in ascending wavelength and taken to physical units (float32), NaN
    where a pixel's DN are 0 in every band of every spectrometer read."""

    what = "product"

    def __init__(self, path: str, arms: list, shape, stamp: tuple, blocks=None):
        super().__init__(path, arms[0].dataset, shape, np.float32, stamp, blocks)
        self.arms = arms

    def _pieces(self, b0, b1):
        """``(arm, first, stop, at)`` for each spectrometer of the cube: its bands
        ``first:stop`` (none when ``first == stop``) go to ``at:`` of the window of the
        cube's bands ``b0:b1``."""
        start = 0
        for arm in self.arms:
            first, stop = max(b0 - start, 0), min(b1 - start, arm.order.size)
            yield arm, first, max(first, stop), start + first - b0
            start += arm.order.size

    def _stored(self, r0, r1, c0, c1, b0, b1):
        """Every spectrometer's DN of the window (all are needed to tell no data)."""
        return [self._slab(arm.dataset, np.s_[r0:r1, arm.lo:arm.hi, c0:c1])
                for arm in self.arms]

    def _arrange(self, stored, r0, r1, c0, c1, b0, b1) -> np.ndarray:
        out = np.empty((r1 - r0, c1 - c0, b1 - b0), np.float32)
        empty = np.logical_and.reduce([~raw.any(axis=1) for raw in stored])  # DN 0 in all
        for raw, (arm, first, stop, at) in zip(stored, self._pieces(b0, b1), strict=True):
            if first == stop:
                continue
            picked, part = arm.disk_bands(first, stop), slice(at, at + stop - first)
            gain, offset = arm.gain[first:stop], arm.offset[first:stop]
            for row in range(raw.shape[0]):  # a (bands, cols) plane at a time: in cache
                np.multiply(raw[row, picked, :].T, gain, out=out[row, :, part],
                            casting="unsafe")
            out[:, :, part] += offset
        out[empty] = np.nan
        return out


def open_prisma(path: str | os.PathLike, chunks=None, key: str | None = None,
                window=None) -> xr.DataArray:
    """A PRISMA product's hyperspectral cube, lazily (module docstring); ``key``: ``full``
    (default), ``vnir`` or ``swir``; ``window`` (an :class:`hsad.cube.subset.Window`) reads only
    that window."""
    p = os.fspath(path)
    try:  # the layout and the stamp from one open file (nothing can come between them)
        with open(p, "rb") as handle, h5py.File(handle, "r") as f:
            stamp = file_stamp(handle)
            swath = _swath(f)
            if swath is None:
                raise FileFormatError(why_not_prisma(p) or "not a PRISMA product", p)
            level = _level(f, swath, p)
            name, arms = _arms(f, swath, level, key, p)
            shapes = {(f[a.dataset].shape[0], f[a.dataset].shape[2]) for a in arms}
            if len(shapes) > 1:
                raise FileFormatError(f"the PRISMA VNIR and SWIR cubes differ in size "
                                      f"({sorted(shapes)})", p)
            rows, cols = shapes.pop()
            blocks = chunk_blocks([f[a.dataset] for a in arms], 0, 2)
            grid = _map_grid(f, rows, cols, p) if level == "2D" else None
            sensor = None if level == "2D" else _geolocation(f, swath, arms, rows, cols, p)
            started = text(f.attrs["Product_StartTime"]) if "Product_StartTime" in f.attrs \
                else None
    except H5_ERRORS as exc:
        raise FileFormatError(f"not a readable PRISMA product ({type(exc).__name__}: {exc})",
                              p) from exc
    bands = sum(a.order.size for a in arms)
    transform, crs = grid if grid is not None else (Affine.identity(), None)
    attrs = {"prisma_key": name, "prisma_level": level, "product": Path(p).stem,
             "units": UNITS.get(level, "radiance" if level.startswith("1") else "unknown")}
    if started:
        attrs["acquisition_start"] = started
    reader = _PrismaReader(p, arms, (rows, cols, bands), stamp, blocks)
    tiled = reader.blocks  # None where the cube is unpacked (hsad.io.hdf5_planes)
    if window is not None:
        check_window(window, (rows, cols), p)
        reader = reader.windowed(window)
        transform = window_transform(transform, crs, window)
        sensor = sensor and sensor.windowed(window, transform)
        attrs.update(window_attrs(window, (rows, cols)))
    if sensor:
        attrs[SENSOR_ATTR] = sensor
    if tiled:  # tiles of whole chunks (hsad.engine.block_tiles.plan_tiles)
        attrs["block_shape"] = tiled
    tiles = tile_chunks(chunks, reader.shape[0], reader.shape[1])
    data = array_over(reader, tiles, "prisma-" + tokenize(p, name, stamp, tiles, window))
    cat = (lambda field: np.concatenate([getattr(a, field) for a in arms]))  # noqa: E731
    fwhm = None if any(a.fwhm is None for a in arms) else cat("fwhm")
    return make_cube(data, transform=transform, crs=crs, nodata=np.nan,
                     wavelength=cat("wavelength"),
                     fwhm=fwhm, good_band=cat("good"), source_format="prisma", source_path=p,
                     attrs=attrs)


__all__ = ["ARMS", "KEYS", "is_prisma", "open_prisma", "why_not_prisma"]
