"""GeoTIFF cubes and maps: a lazy windowed reader and tiled, compressed (COG) writers.

Per-band spectral metadata follows GDAL's convention (as written by the EnMAP-Box and
GDAL's ENVI driver): band tags ``wavelength``, ``fwhm``, ``bbl`` and ``wavelength_units``
in the default domain. The reader also understands the ``IMAGERY`` domain
(``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``) and ``{...}`` lists in the dataset ``ENVI`` domain.
Wavelengths come out in nanometres.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.enums import Interleaving
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window
from rioxarray.exceptions import MissingSpatialDimensionError

from hsad.cube import DEFAULT_CHUNK, make_cube
from hsad.engine.scheduler import THREADED
from hsad.errors import (
    FileFormatError,
    GeoreferenceError,
    OutputError,
    ParameterError,
    TruncatedFileError,
    UnsupportedError,
)
from hsad.io.atomic import atomic_path, remove_temp, temp_file

#: Tile edge of written GeoTIFFs and COGs (pixels); smaller images get smaller tiles.
BLOCK = 256
COG_BLOCK = 512

_INTERLEAVE = {"band": "bsq", "pixel": "bip", "line": "bil"}
_LENGTH_UNITS_NM = {
    "nanometers": 1.0, "nanometer": 1.0, "nanometres": 1.0, "nanometre": 1.0, "nm": 1.0,
    "micrometers": 1e3, "micrometer": 1e3, "micrometres": 1e3, "micrometre": 1e3,
    "microns": 1e3, "micron": 1e3, "um": 1e3, "µm": 1e3,
    "millimeters": 1e6, "millimeter": 1e6, "mm": 1e6,
}


# ---------------------------------------------------------------- reading


@contextlib.contextmanager
def quiet_gdal():
    """Silence rasterio's warning for files on a plain pixel grid (common for cubes).

    ``catch_warnings`` is not thread safe: at worst, concurrent chunk reads leave this one
    ``ignore`` filter installed.
    """
    _filter_undecodable_gdal_messages()
    _IN_GDAL.depth = getattr(_IN_GDAL, "depth", 0) + 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            yield
    finally:
        _IN_GDAL.depth -= 1


#: Per thread: ``depth > 0`` while inside :func:`quiet_gdal` (calling GDAL through rasterio);
#: ``undecodable``: GDAL messages about this file that rasterio could not decode.
_IN_GDAL = threading.local()


def _undecodable_gdal_message(exc) -> bool:
    return isinstance(exc, UnicodeDecodeError) and getattr(_IN_GDAL, "depth", 0) > 0


def _filter_undecodable_gdal_messages() -> None:
    """Install (once) filters for rasterio's GDAL message callback failing to decode.

    A GDAL message quoting damaged, non-UTF-8 metadata makes rasterio's callback raise
    ``UnicodeDecodeError``, which Python can only print (through ``sys.excepthook`` and
    ``sys.unraisablehook``) as a traceback on stderr. While hsad calls GDAL, the filters
    record it instead (:func:`_damage_check` turns it into a FileFormatError); anything else
    goes to the previous hooks.
    """
    if not getattr(sys.unraisablehook, "_hsad_gdal_filter", False):
        previous_unraisable = sys.unraisablehook

        def unraisable(info):
            if _undecodable_gdal_message(info.exc_value) and "rasterio" in str(info.object):
                if not getattr(_IN_GDAL, "undecodable", None):  # keep the first only
                    _IN_GDAL.undecodable = [info.exc_value]
                return
            previous_unraisable(info)

        unraisable._hsad_gdal_filter = True
        sys.unraisablehook = unraisable
    if not getattr(sys.excepthook, "_hsad_gdal_filter", False):
        previous_except = sys.excepthook

        def excepthook(kind, value, tb):
            if tb is None and _undecodable_gdal_message(value):
                return  # the same message, printed first by Cython; recorded above
            previous_except(kind, value, tb)

        excepthook._hsad_gdal_filter = True
        sys.excepthook = excepthook


def tile_chunks(chunks, rows: int, cols: int) -> tuple[int, int, int]:
    """Normalise a ``chunks`` argument (None, int, (cy, cx) or {"y":, "x":}) to dask chunks.

    All bands stay in one chunk; sizes are capped to the image.
    """
    if chunks is None:
        cy = cx = DEFAULT_CHUNK
    elif isinstance(chunks, (int, np.integer)):
        cy = cx = int(chunks)
    elif isinstance(chunks, dict):
        cy, cx = int(chunks.get("y", DEFAULT_CHUNK)), int(chunks.get("x", DEFAULT_CHUNK))
    elif isinstance(chunks, (tuple, list)) and len(chunks) in (2, 3):
        cy, cx = int(chunks[0]), int(chunks[1])
    else:
        raise ParameterError(f"chunks must be an int, (y, x) or {{'y':, 'x':}}, got {chunks!r}")
    if cy <= 0 or cx <= 0:
        raise ParameterError(f"chunk sizes must be positive, got {(cy, cx)}")
    return max(1, min(cy, rows)), max(1, min(cx, cols)), -1


def _bounding(index, n: int):
    """(start, stop, residual index relative to start) for an int or slice along one axis."""
    if isinstance(index, (int, np.integer)):
        i = int(index) + (n if index < 0 else 0)
        return i, i + 1, 0
    span = range(*index.indices(n))
    if len(span) == 0:
        return 0, 0, slice(0, 0)
    lo, hi = min(span), max(span) + 1
    stop = span[-1] - lo - 1 if span.step < 0 else hi - lo
    return lo, hi, slice(span[0] - lo, None if stop < 0 else stop, span.step)


class WindowReader:
    """Array-like view of a raster file for ``dask.array.from_array``.

    Each ``__getitem__`` opens the file, reads the window (all requested bands) and
    closes it: it holds only the path, so it is thread safe and pickles for
    ``dask.distributed``.
    """

    ndim = 3

    def __init__(self, path: str, shape: tuple[int, int, int], dtype):
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        bounds = [_bounding(k, n) for k, n in zip(key, self.shape, strict=True)]
        (r0, r1, _), (c0, c1, _), (b0, b1, _) = bounds
        if r1 <= r0 or c1 <= c0 or b1 <= b0:
            data = np.empty((r1 - r0, c1 - c0, b1 - b0), dtype=self.dtype)
        else:
            data = self._read(r0, r1, c0, c1, b0, b1)
        for axis in (2, 1, 0):  # last first: an int index drops its axis
            data = data[(slice(None),) * axis + (bounds[axis][2],)]
        return data

    def _read(self, r0, r1, c0, c1, b0, b1) -> np.ndarray:
        """The (rows, cols, bands) block ``[r0:r1, c0:c1, b0:b1]``."""
        window = Window(c0, r0, c1 - c0, r1 - r0)
        try:
            with quiet_gdal(), rasterio.open(self.path) as src:
                return np.moveaxis(src.read(list(range(b0 + 1, b1 + 1)), window=window), 0, -1)
        except RasterioError as exc:
            raise TruncatedFileError(f"cannot read rows {r0}-{r1}, cols {c0}-{c1}: {exc}",
                                     self.path) from exc


def _parse_list(text: str) -> list[str]:
    return [t.strip() for t in text.strip().strip("{}").split(",") if t.strip()]


def _to_float(values) -> np.ndarray:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(np.nan)
    return np.asarray(out, dtype=np.float64)


def nm_scale(units: str | None, values: np.ndarray) -> float | None:
    """Factor turning ``values`` in ``units`` into nanometres.

    Missing or "Unknown" units are guessed from magnitude (all below 100: micrometres);
    non-length units (index, wavenumber, GHz) give None: wavelengths unknown.
    """
    u = (units or "").strip().lower()
    if u in _LENGTH_UNITS_NM:
        return _LENGTH_UNITS_NM[u]
    if u in ("", "unknown"):
        finite = values[np.isfinite(values)]
        return 1e3 if finite.size and finite.max() < 100 else 1.0
    return None


def _band_tags(src, count: int) -> list[dict]:
    return [{k.lower(): v for k, v in src.tags(b).items()} for b in range(1, count + 1)]


def _spectral_metadata(src) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(wavelength nm, fwhm nm, bbl) from GDAL metadata; None where absent."""
    n = src.count
    tags = _band_tags(src, n)
    ds_tags = {k.lower(): v for k, v in src.tags().items()}
    envi = {k.lower(): v for k, v in src.tags(ns="ENVI").items()}

    def per_band(key):
        if all(key in t for t in tags):
            return [t[key] for t in tags]
        for source in (envi, ds_tags):
            if key in source and len(_parse_list(source[key])) == n:
                return _parse_list(source[key])
        return None

    wl, fwhm, bbl = per_band("wavelength"), per_band("fwhm"), per_band("bbl")
    units = (tags[0].get("wavelength_units") if tags else None) or envi.get(
        "wavelength_units") or ds_tags.get("wavelength_units")
    scale = None
    if wl is not None:
        wl = _to_float(wl)
        scale = nm_scale(units, wl)
    if wl is None or scale is None:
        imagery = [src.tags(b, ns="IMAGERY") for b in range(1, n + 1)]
        if all("CENTRAL_WAVELENGTH_UM" in t for t in imagery):
            wl = _to_float(t["CENTRAL_WAVELENGTH_UM"] for t in imagery)
            scale = 1e3
            if fwhm is None and all("FWHM_UM" in t for t in imagery):
                fwhm = [t["FWHM_UM"] for t in imagery]
    wavelength = None if wl is None or scale is None else wl * scale
    fwhm_nm = None if fwhm is None or scale is None else _to_float(fwhm) * scale
    good = None if bbl is None else _to_float(bbl) != 0
    return wavelength, fwhm_nm, good


def _check_last_block(src, path: str) -> None:
    """Read the file's last block so that a truncated GeoTIFF fails at open, not later."""
    h, w = src.block_shapes[-1]
    i, j = (src.height - 1) // h, (src.width - 1) // w
    try:
        src.read(src.count, window=src.block_window(src.count, i, j))
    except RasterioError as exc:
        raise TruncatedFileError(f"GeoTIFF data is truncated or corrupt: {exc}", path) from exc


#: libtiff warns about these tags when the file cannot say where its pixels are; GDAL then
#: reads the blocks it cannot locate as nodata, silently.
_BLOCK_TAGS = ("StripOffsets", "StripByteCounts", "TileOffsets", "TileByteCounts")


class _ThreadRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread, self.messages = threading.get_ident(), []

    def emit(self, record):
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def _damage_check(path: str):
    """FileFormatError for a GeoTIFF that GDAL opens although it is damaged: metadata that
    is not UTF-8 text, or block offset/size tags that libtiff had to ignore (GDAL would
    read the blocks it cannot locate as nodata)."""
    handler = _ThreadRecords()
    logger = logging.getLogger("rasterio")
    logger.addHandler(handler)
    _IN_GDAL.undecodable = []
    try:
        yield
    except UnicodeDecodeError as exc:  # rasterio decoding a damaged tag or description
        raise FileFormatError(f"GeoTIFF metadata is damaged (not UTF-8 text: {exc})",
                              path) from None
    finally:
        logger.removeHandler(handler)
    if _IN_GDAL.undecodable:
        raise FileFormatError("GeoTIFF metadata is damaged (GDAL reported text that is not "
                              f"UTF-8: {_IN_GDAL.undecodable[0]})", path)
    for message in handler.messages:
        if any(tag in message for tag in _BLOCK_TAGS):
            raise FileFormatError(f"GeoTIFF is corrupt: {message}", path)


def open_geotiff(path: str | os.PathLike, chunks=None) -> xr.DataArray:
    """Open a multi-band GeoTIFF as a lazy ``(y, x, band)`` cube.

    Each dask chunk reads its own ``(y, x)`` window with all bands. CRS, transform and
    nodata come from the file; wavelength/fwhm (nm) and bbl from its GDAL metadata.
    """
    p = os.fspath(path)
    if not Path(p).is_file():
        raise FileFormatError("no such file", p)
    try:
        with _damage_check(p), quiet_gdal(), rasterio.open(p) as src:
            if src.count == 0:
                raise FileFormatError("GeoTIFF has no bands", p)
            _check_last_block(src, p)
            shape = (src.height, src.width, src.count)
            if len(set(src.dtypes)) > 1:
                raise FileFormatError(f"bands have different types {sorted(set(src.dtypes))}", p)
            if "complex" in src.dtypes[0]:
                raise UnsupportedError(f"complex data ({src.dtypes[0]}) is not supported; "
                                       "hsad reads real-valued cubes only", p)
            dtype = np.dtype(src.dtypes[0])
            crs, transform, nodata = src.crs, src.transform, src.nodatavals[0]
            wavelength, fwhm, good = _spectral_metadata(src)
            names = list(src.descriptions) if any(src.descriptions) else None
            interleave = _INTERLEAVE.get(getattr(src.interleaving, "value", "").lower(), "bsq")
            attrs = {"interleave": interleave, "driver": src.driver,
                     "compression": getattr(src.compression, "value", None),
                     "block_shape": tuple(src.block_shapes[0])}
    except RasterioError as exc:
        raise FileFormatError(f"not a readable GeoTIFF: {exc}", p) from exc
    tiles = tile_chunks(chunks, shape[0], shape[1])
    reader = WindowReader(p, shape, dtype)
    st = os.stat(p)
    data = da.from_array(
        reader, chunks=tiles, asarray=False, fancy=False, meta=np.empty((0, 0, 0), dtype),
        name="geotiff-" + tokenize(p, st.st_mtime_ns, st.st_size, tiles),
    )
    if names is not None:
        names = [n or f"band {i + 1}" for i, n in enumerate(names)]
    return make_cube(data, transform=transform, crs=crs, nodata=nodata, wavelength=wavelength,
                     fwhm=fwhm, good_band=good, band_names=names, source_format="geotiff",
                     source_path=p, attrs=attrs)


# ---------------------------------------------------------------- writing


class _WindowWriter:
    """``dask.array.store`` target writing each block into an open rasterio dataset.

    Writes are serialised by a lock; after :meth:`close` they are dropped, so a task still
    running when another one failed never touches a closed dataset.
    """

    def __init__(self, dst):
        self.dst = dst
        self.lock = threading.Lock()
        self.closed = False

    def __setitem__(self, key, block: np.ndarray) -> None:
        ys, xs = key[0], key[1]
        window = Window(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
        with self.lock:
            if self.closed:
                return
            if block.ndim == 2:
                self.dst.write(block, 1, window=window)
            else:
                bands = list(range(key[2].start + 1, key[2].stop + 1))
                self.dst.write(np.moveaxis(block, -1, 0), bands, window=window)

    def close(self) -> None:
        with self.lock:
            self.closed = True


def _tile(n: int, limit: int) -> int:
    """Tile edge for an image edge of ``n`` pixels: ``limit``, or less (a multiple of 16)."""
    return min(limit, 16 * -(-n // 16))


def _aligned(arr: da.Array, blocks: tuple[int, int]) -> da.Array:
    """Rechunk along y and x to multiples of the tile size so windows cover whole tiles."""
    new = []
    for axis, block in enumerate(blocks):
        sizes = arr.chunks[axis]
        if all(s % block == 0 for s in sizes[:-1]):
            new.append(sizes)
        else:
            new.append(-(-max(sizes) // block) * block)
    return arr.rechunk(tuple(new) + (-1,) * (arr.ndim - 2))


def cast_block(block: np.ndarray, out_dtype: np.dtype, nodata: float | None) -> np.ndarray:
    """Cast to ``out_dtype``: NaN -> nodata; float -> int rounds and clips to the type's range."""
    dtype = np.dtype(out_dtype)
    if block.dtype == dtype and (nodata is None or np.isnan(nodata) or dtype.kind not in "fc"):
        return block
    out = block
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if block.dtype.kind == "f":
            bad = ~np.isfinite(block)
            out = np.clip(np.rint(np.where(bad, 0, block)), info.min, info.max)
            if nodata is not None and bad.any():
                out[bad] = nodata
        else:
            out = np.clip(block, info.min, info.max)
    elif block.dtype.kind == "f" and nodata is not None and not np.isnan(nodata):
        out = np.where(np.isnan(block), nodata, block)
    return out.astype(dtype, copy=False)


def cast_cube(cube: xr.DataArray, dtype) -> xr.DataArray:
    """The cube cast lazily to ``dtype`` with :func:`cast_block` (NaN -> nodata, round, clip)."""
    out_dtype = np.dtype(dtype)
    if out_dtype == cube.dtype:
        return cube
    nodata = cube.attrs.get("nodata")
    if nodata is not None and out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        nodata = nodata if np.isfinite(nodata) and info.min <= nodata <= info.max else None
    data = cube.data.map_blocks(cast_block, out_dtype=out_dtype, nodata=nodata, dtype=out_dtype,
                                meta=np.empty((0,) * cube.ndim, out_dtype))
    out = cube.copy(data=data)
    out.attrs["nodata"] = nodata
    return out


def _georef_of(obj) -> tuple:
    """``(crs, transform)`` to write for ``obj``.

    An array without a georeference (numpy, or no CRS, transform nor x/y coordinates) gets
    none: the identity pixel grid. One that has a georeference which cannot be read (a
    corrupt ``GeoTransform`` or CRS, non-numeric or non-finite coordinates, a singular
    transform) raises :class:`GeoreferenceError` instead of being written unplaced.
    """
    if not isinstance(obj, xr.DataArray):
        return None, Affine.identity()
    path = obj.attrs.get("source_path")
    try:
        crs, transform = obj.rio.crs, obj.rio.transform()
    except MissingSpatialDimensionError:  # no spatial dims at all: no georeference
        return None, Affine.identity()
    except Exception as exc:  # noqa: BLE001  rioxarray/rasterio raise many types
        raise GeoreferenceError(f"cannot read the georeference of the data to write "
                                f"({type(exc).__name__}: {exc})", path) from exc
    values = tuple(transform)[:6]
    if not all(math.isfinite(v) for v in values) or transform.determinant == 0:
        raise GeoreferenceError(f"the georeference of the data to write is not a valid "
                                f"transform: {values}", path)
    return crs, transform


def _as_dask(values) -> da.Array:
    data = values.data if isinstance(values, xr.DataArray) else values
    if isinstance(data, da.Array):
        return data
    return da.from_array(np.asarray(data), chunks=(DEFAULT_CHUNK, DEFAULT_CHUNK)
                         + (-1,) * (np.ndim(data) - 2))


def _profile(rows, cols, count, dtype, crs, transform, nodata, interleave="band") -> dict:
    """GTiff creation profile; a pixel grid without CRS is written without a geotransform."""
    georef = {} if crs is None and transform == Affine.identity() else {
        "crs": crs, "transform": transform}
    return {
        "driver": "GTiff", "height": rows, "width": cols, "count": count, "dtype": dtype.name,
        **georef, "nodata": nodata, "tiled": True,
        "blockxsize": _tile(cols, BLOCK), "blockysize": _tile(rows, BLOCK),
        "compress": "deflate", "zlevel": 6,
        "predictor": 3 if dtype.kind == "f" else 2, "interleave": interleave,
        "bigtiff": "IF_SAFER", "num_threads": _compression_threads(),
    }


def _compression_threads() -> str:
    """GDAL's ``NUM_THREADS``: tiles are compressed on every core dask uses, while this
    thread writes (same file content, in less time)."""
    from dask.system import CPU_COUNT

    return str(int(CPU_COUNT))


def _stream(arr: da.Array, path: Path, profile: dict, band_tags=None, tags=None,
            descriptions=None) -> None:
    """Write a (y, x) or (y, x, band) dask array block by block into a tiled GTiff."""
    with quiet_gdal(), rasterio.open(path, "w", **profile) as dst:
        if tags:
            dst.update_tags(**tags)
        for i, bt in enumerate(band_tags or [], start=1):
            dst.update_tags(i, **bt)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
        writer = _WindowWriter(dst)
        try:
            with dask.config.set(scheduler=THREADED):
                blocks = (profile["blockysize"], profile["blockxsize"])
                da.store(_aligned(arr, blocks), writer, lock=False)
        finally:
            writer.close()


def verify_written(path: str | os.PathLike, target: str | os.PathLike | None = None) -> None:
    """Check that every tile of a just-written GeoTIFF lies within the file, and read the
    last one. GDAL reports a write that fails when the file is closed (disk full) only on
    stderr, leaving a truncated file: this turns that into an OutputError naming
    ``target`` (default ``path``)."""
    size = os.path.getsize(path)
    problem = None
    try:
        with quiet_gdal(), rasterio.open(path) as src:
            h, w = src.block_shapes[0]
            ny, nx = -(-src.height // h), -(-src.width // w)
            bands = range(1, src.count + 1) if src.interleaving != Interleaving.pixel else [1]
            for b in bands:
                for i in range(ny):
                    for j in range(nx):
                        off = src.get_tag_item(f"BLOCK_OFFSET_{j}_{i}", "TIFF", bidx=b)
                        n = src.get_tag_item(f"BLOCK_SIZE_{j}_{i}", "TIFF", bidx=b)
                        if not off or not n or int(off) + int(n) > size:
                            problem = f"tile {i},{j} of band {b} is missing"
                            break
                    if problem:
                        break
                if problem:
                    break
            if problem is None:
                _check_last_block(src, os.fspath(path))
    except (RasterioError, TruncatedFileError) as exc:
        problem = str(exc)
    if problem:
        raise OutputError(f"cannot write: the file came out incomplete ({problem}; disk "
                          f"full?); nothing was written", target or path)


def _write(arr, path, profile, cog, resampling, **meta) -> Path:
    target = Path(path)
    with atomic_path(target) as tmp:
        if not cog:
            _stream(arr, tmp, profile, **meta)
            verify_written(tmp, target)
        else:
            name = str(temp_file(target, ".gtiff"))
            try:
                _stream(arr, Path(name), profile, **meta)
                with quiet_gdal():
                    rasterio.shutil.copy(
                        name, tmp, driver="COG", compress="DEFLATE", predictor="YES",
                        # the COG driver needs blocks of at least 128
                        blocksize=max(128, _tile(max(arr.shape[:2]), COG_BLOCK)),
                        overview_resampling=resampling, bigtiff="IF_SAFER",
                        num_threads=_compression_threads(),
                    )
                verify_written(tmp, target)
            finally:
                remove_temp(name)
    return target


def _map_and_georef(map_, like):
    if isinstance(map_, xr.DataArray) and set(map_.dims) == {"y", "x"}:
        map_ = map_.transpose("y", "x")
    if np.ndim(map_) != 2:
        raise ParameterError(f"a map must be 2-D (y, x), got shape {np.shape(map_)}")
    if like is not None and tuple(np.shape(map_)) != tuple(like.shape[:2]):
        raise ParameterError(f"map shape {np.shape(map_)} does not match like's "
                             f"{tuple(like.shape[:2])}")
    crs, transform = _georef_of(like if like is not None else map_)
    return map_, crs, transform


def write_geotiff(map_, path: str | os.PathLike, like: xr.DataArray | None = None,
                  cog: bool = False, nodata: float | None = None, tags: dict | None = None,
                  description: str | None = None) -> Path:
    """Write a ``(y, x)`` map as a float32, tiled, deflate-compressed GeoTIFF; return its path.

    CRS and transform come from ``like`` when given, else from ``map_.rio``. ``nodata``
    defaults to NaN (NaN pixels are written as ``nodata`` otherwise). Dask-backed maps
    are written block by block. ``cog=True`` writes a Cloud-Optimized GeoTIFF with
    overviews (average resampling). The map's ``hsad_*`` attrs (e.g. an automatic
    dimension reduction) and ``tags`` (provenance, :mod:`hsad.outputs.provenance`) become
    dataset tags; ``description`` is the band's description.
    """
    map_, crs, transform = _map_and_georef(map_, like)
    nodata = np.nan if nodata is None else float(nodata)
    dtype = np.dtype("float32")
    arr = _as_dask(map_).map_blocks(cast_block, out_dtype=dtype, nodata=nodata, dtype=dtype,
                                    meta=np.empty((0, 0), dtype))
    profile = _profile(arr.shape[0], arr.shape[1], 1, dtype, crs, transform, nodata)
    tags = {**{k: str(v) for k, v in getattr(map_, "attrs", {}).items()
               if k.startswith("hsad_")}, **(tags or {})}
    return _write(arr, path, profile, cog, "AVERAGE", tags=tags,
                  descriptions=[description] if description else None)


def write_mask(mask, path: str | os.PathLike, like: xr.DataArray | None = None,
               valid=None, cog: bool = False, tags: dict | None = None,
               description: str | None = None) -> Path:
    """Write a boolean ``(y, x)`` mask as uint8: 1 = True (anomaly), 0 = False, 255 = nodata.

    Pixels where ``valid`` is False, or where a float mask is NaN, get 255. ``tags`` become
    dataset tags, ``description`` the band's description.
    """
    mask, crs, transform = _map_and_georef(mask, like)
    arr = _as_dask(mask)
    if arr.dtype.kind == "f":
        out = da.where(da.isnan(arr), 255, arr != 0)
    else:
        out = (arr != 0).astype(np.uint8)
    if valid is not None:
        out = da.where(_as_dask(valid).rechunk(out.chunks), out, 255)
    out = out.astype(np.uint8)
    profile = _profile(out.shape[0], out.shape[1], 1, np.dtype(np.uint8), crs, transform, 255)
    return _write(out, path, profile, cog, "NEAREST", tags=tags,
                  descriptions=[description] if description else None)


def _spectral_tags(cube: xr.DataArray) -> tuple[list[dict], list[str]]:
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    fwhm = np.asarray(cube["fwhm"].values, dtype=np.float64)
    good = np.asarray(cube["good_band"].values, dtype=bool)
    names = cube["band_name"].values if "band_name" in cube.coords else None
    tags, descriptions = [], []
    for b in range(cube.shape[2]):
        t = {"bbl": str(int(good[b]))}
        if np.isfinite(wl[b]):
            t.update(wavelength=f"{wl[b]:.6g}", wavelength_units="Nanometers")
        if np.isfinite(fwhm[b]):
            t["fwhm"] = f"{fwhm[b]:.6g}"
        tags.append(t)
        if names is not None:
            descriptions.append(str(names[b]))
        else:
            descriptions.append(f"band {b + 1}" + (f" ({wl[b]:.6g} Nanometers)"
                                                   if np.isfinite(wl[b]) else ""))
    return tags, descriptions


def write_geotiff_cube(cube: xr.DataArray, path: str | os.PathLike, *, dtype=None,
                       nodata: float | None = None, interleave: str = "band",
                       cog: bool = False) -> Path:
    """Write a ``(y, x, band)`` cube as a tiled, compressed multi-band GeoTIFF.

    Keeps CRS, transform, nodata (the cube's unless given), and per-band ``wavelength``
    (nm), ``fwhm`` and ``bbl`` as GDAL band metadata, which :func:`open_geotiff` reads
    back. ``interleave`` is ``"band"`` or ``"pixel"``; ``dtype`` casts (float to int
    rounds and clips).
    """
    if interleave not in ("band", "pixel"):
        raise ParameterError(f"GeoTIFF interleave must be 'band' or 'pixel', got {interleave!r}")
    if dtype is not None:
        cube = cast_cube(cube, dtype)
    out_dtype = cube.dtype
    nodata = cube.attrs.get("nodata") if nodata is None else float(nodata)
    if nodata is not None and out_dtype.kind in "iu" and not np.isfinite(nodata):
        nodata = None
    crs, transform = _georef_of(cube)
    arr = _as_dask(cube.transpose("y", "x", "band")).map_blocks(
        cast_block, out_dtype=out_dtype, nodata=nodata, dtype=out_dtype,
        meta=np.empty((0, 0, 0), out_dtype))
    band_tags, descriptions = _spectral_tags(cube)
    profile = _profile(arr.shape[0], arr.shape[1], arr.shape[2], out_dtype, crs, transform,
                       nodata, interleave)
    return _write(arr, path, profile, cog, "AVERAGE", band_tags=band_tags,
                  tags={"wavelength_units": "Nanometers"}, descriptions=descriptions)


__all__ = ["cast_block", "open_geotiff", "quiet_gdal", "write_geotiff", "write_geotiff_cube",
           "write_mask"]
