"""GeoTIFF writers: single-band maps, masks and multi-band cubes as tiled, compressed
GeoTIFFs or Cloud-Optimized GeoTIFFs, streamed block by block and renamed into place.

Per-band spectral metadata is written as GDAL band tags (``wavelength`` in nanometres,
``fwhm``, ``bbl``), which :func:`hsad.io.geotiff.open_geotiff` reads back.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import replace
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from rasterio.enums import Interleaving
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rioxarray.exceptions import MissingSpatialDimensionError

from hsad.cube import DEFAULT_CHUNK, physical_scaling, transform_of
from hsad.cube.grid import rows_first
from hsad.engine.scheduler import THREADED
from hsad.errors import GeoreferenceError, OutputError, ParameterError, TruncatedFileError
from hsad.io.atomic import atomic_path, remove_temp, signals_held, temp_file
from hsad.io.casting import CastTally, cast_block, cast_cube
from hsad.io.gdal_checks import check_last_block, nodata_read_back, quiet_gdal
from hsad.io.glt import glt_of, map_values, place
from hsad.io.input_guard import refuse_input_files
from hsad.io.sensor_georef import SensorGeoref, sensor_georef_of
from hsad.io.window import WINDOW_ATTRS, window_tags

#: Tile edge of written GeoTIFFs and COGs (pixels); smaller images get smaller tiles.
BLOCK = 256
COG_BLOCK = 512


class _WindowWriter:
    """``dask.array.store`` target writing each block into an open rasterio dataset.

    Writes are serialised by a lock; after :meth:`close` they are dropped, so a task still
    running when another one failed (or Ctrl-C stopped the store) never touches a closed
    dataset.
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
        """Drop later writes, once the write under way ended; a second Ctrl-C or SIGTERM
        (``timeout`` signals the process and its group) acts after that, not while it
        waits: the dataset, closed next, had been closed under the write (a segfault)."""
        with signals_held(), self.lock:
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
        crs, transform = obj.rio.crs, transform_of(obj)
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


def _sensor_of(obj, crs, transform) -> SensorGeoref | None:
    """The ground control points and RPCs to write for ``obj`` (:mod:`hsad.io.sensor_georef`):
    its RPCs, and its GCPs where it has no CRS (a GeoTIFF holds GCPs or a geotransform)."""
    held = sensor_georef_of(obj, transform)
    if held is not None and crs is not None and held.gcps:
        held = replace(held, gcps=()) or None
    return held


def _as_dask(values) -> da.Array:
    data = values.data if isinstance(values, xr.DataArray) else values
    if isinstance(data, da.Array):
        return data
    return da.from_array(np.asarray(data), chunks=(DEFAULT_CHUNK, DEFAULT_CHUNK)
                         + (-1,) * (np.ndim(data) - 2))


def _profile(rows, cols, count, dtype, crs, transform, nodata, interleave="band",
             sensor=None) -> dict:
    """GTiff creation profile; a pixel grid without CRS is written without a geotransform,
    and so is one placed by GCPs or RPCs (``sensor``, :func:`_sensor_of`): a pixel offset
    beside them would be taken for a map by tools that read the geotransform first.
    Bands are grey (``PHOTOMETRIC=MINISBLACK``): GDAL's default for 3 or 4 byte bands, RGB,
    made a 4th band an alpha band, which readers take for a mask."""
    unplaced = crs is None and (transform == Affine.identity() or bool(sensor))
    georef = {} if unplaced else {"crs": crs, "transform": transform}
    return {
        "driver": "GTiff", "height": rows, "width": cols, "count": count, "dtype": dtype.name,
        **georef, "nodata": nodata, "tiled": True, "photometric": "MINISBLACK",
        "blockxsize": _tile(cols, BLOCK), "blockysize": _tile(rows, BLOCK),
        "compress": "deflate", "zlevel": 6,
        "predictor": 3 if dtype.kind == "f" else 2, "interleave": interleave,
        "bigtiff": "IF_SAFER", "num_threads": _compression_threads(),
    }


def _compression_threads() -> str:
    """GDAL's ``NUM_THREADS``: tiles are compressed on every core dask uses, while this
    thread writes (same file content, in less time)."""
    from hsad.engine.scheduler import cpu_count

    return str(cpu_count())


def _stream(arr: da.Array, path: Path, profile: dict, band_tags=None, tags=None,
            descriptions=None, scaling=None, sensor=None) -> None:
    """Write a (y, x) or (y, x, band) dask array block by block into a tiled GTiff
    (``scaling``: per-band ``(scales, offsets)``, GDAL's band scale and offset;
    ``sensor``: GCPs and RPCs)."""
    with quiet_gdal(), rasterio.open(path, "w", **profile) as dst:
        if sensor is not None:
            sensor.write_to(dst)
        if scaling is not None:
            dst.scales, dst.offsets = scaling
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
    problem = incomplete(path)
    if problem:
        raise OutputError(f"cannot write: the file came out incomplete ({problem}; disk "
                          f"full?); nothing was written", target or path)


def incomplete(path: str | os.PathLike) -> str | None:
    """What is missing from the GeoTIFF ``path`` (a tile beyond its end, a last tile that
    cannot be read, no GeoTIFF at all), or None when it is whole."""
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
                check_last_block(src, os.fspath(path))
    except (RasterioError, TruncatedFileError) as exc:
        problem = str(exc)
    return problem


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
    map_ = rows_first(map_)
    if np.ndim(map_) != 2:
        raise ParameterError(f"a map must be 2-D (y, x), got shape {np.shape(map_)}")
    kind = getattr(map_, "dtype", None)
    kind = np.dtype(kind if kind is not None else np.asarray(map_).dtype)
    if kind.kind not in "biuf":
        raise ParameterError(f"a map holds real numbers, got {kind} (a complex map's "
                             "imaginary part would be lost)")
    if like is not None and tuple(np.shape(map_)) != tuple(like.shape[:2]):
        raise ParameterError(f"map shape {np.shape(map_)} does not match like's "
                             f"{tuple(like.shape[:2])}")
    source = like if like is not None else map_
    glt = glt_of(source)
    if glt is not None:  # a scene in instrument geometry: the map goes on its GLT's grid
        map_ = source = place(glt, map_)
    crs, transform = _georef_of(source)
    return map_, crs, transform, _sensor_of(source, crs, transform)


def _check_options(path, like=None, nodata=None, tags=None, description=None) -> None:
    """ParameterError naming the writer's option of the wrong type (``nodata="x"``,
    ``description=5``, ``like="abc"``), before anything is read or written."""
    if like is not None and not isinstance(like, xr.DataArray):
        raise ParameterError(f"like= takes a map or cube (a DataArray) whose grid to write "
                             f"on, got {type(like).__name__}", path)
    if nodata is not None and (isinstance(nodata, (bool, np.bool_)) or not isinstance(
            nodata, (int, float, np.integer, np.floating))):
        raise ParameterError(f"nodata= takes a number, got {nodata!r}", path)
    if tags is not None and not isinstance(tags, dict):
        raise ParameterError(f"tags= takes a dict of names and values, got "
                             f"{type(tags).__name__}", path)
    if description is not None and not isinstance(description, str):
        raise ParameterError(f"description= takes a string, got {description!r}", path)


def write_geotiff(map_, path: str | os.PathLike, like: xr.DataArray | None = None,
                  cog: bool = False, nodata: float | None = None, tags: dict | None = None,
                  description: str | None = None) -> Path:
    """Write a ``(y, x)`` map as a float32, tiled, deflate-compressed GeoTIFF; return its path.

    CRS and transform come from ``like`` when given, else from ``map_.rio``. ``nodata``
    defaults to NaN (NaN pixels are written as ``nodata`` otherwise). Dask-backed maps
    are written block by block. ``cog=True`` writes a Cloud-Optimized GeoTIFF with
    overviews (average resampling). The map's ``hsad_*`` attrs (e.g. an automatic
    dimension reduction; a window of a scene as :func:`hsad.io.window.window_tags` writes
    it) and ``tags`` (provenance, :mod:`hsad.outputs.provenance`) become dataset tags;
    ``description`` is the band's description.
    """
    _check_options(path, like=like, nodata=nodata, tags=tags, description=description)
    refuse_input_files([path], map_, like)
    map_, crs, transform, sensor = _map_and_georef(map_, like)
    nodata = np.nan if nodata is None else float(nodata)
    dtype = np.dtype("float32")
    arr = _as_dask(map_).map_blocks(cast_block, out_dtype=dtype, nodata=nodata, dtype=dtype,
                                    meta=np.empty((0, 0), dtype))
    profile = _profile(arr.shape[0], arr.shape[1], 1, dtype, crs, transform, nodata,
                       sensor=sensor)
    source = like if like is not None else map_  # the grid's cube: its window too
    window = window_tags(source) if isinstance(source, xr.DataArray) else {}
    tags = {**{k: str(v) for k, v in getattr(map_, "attrs", {}).items()
               if k.startswith("hsad_") and (k not in WINDOW_ATTRS or isinstance(v, str))},
            **window, **(tags or {})}
    return _write(arr, path, profile, cog, "AVERAGE", tags=tags,
                  descriptions=[description] if description else None, sensor=sensor)


def write_mask(mask, path: str | os.PathLike, like: xr.DataArray | None = None,
               valid=None, cog: bool = False, tags: dict | None = None,
               description: str | None = None) -> Path:
    """Write a boolean ``(y, x)`` mask as uint8: 1 = True (anomaly), 0 = False, 255 = nodata.

    Pixels where ``valid`` is False, or where a float mask is NaN, get 255. ``tags`` become
    dataset tags (after the window of a scene that ``like``, or the mask, is: as
    :func:`write_geotiff` records it), ``description`` the band's description.
    """
    _check_options(path, like=like, tags=tags, description=description)
    refuse_input_files([path], mask, like, valid)
    source = like if like is not None else mask  # the grid's cube: its window too
    glt = glt_of(source)
    if valid is not None and glt is not None:  # no pixel: not valid
        valid = glt.orthorectify(map_values(valid), 0)
    mask, crs, transform, sensor = _map_and_georef(mask, like)
    arr = _as_dask(mask)
    if arr.dtype.kind == "f":
        out = da.where(da.isnan(arr), 255, arr != 0)
    else:
        out = (arr != 0).astype(np.uint8)
    if valid is not None:
        out = da.where(_as_dask(valid).rechunk(out.chunks), out, 255)
    out = out.astype(np.uint8)
    profile = _profile(out.shape[0], out.shape[1], 1, np.dtype(np.uint8), crs, transform, 255,
                       sensor=sensor)
    tags = {**(window_tags(source) if isinstance(source, xr.DataArray) else {}), **(tags or {})}
    return _write(out, path, profile, cog, "NEAREST", tags=tags,
                  descriptions=[description] if description else None, sensor=sensor)


def _spectral_tags(cube: xr.DataArray) -> tuple[list[dict], list[str]]:
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    fwhm = np.asarray(cube["fwhm"].values, dtype=np.float64)
    good = np.asarray(cube["good_band"].values, dtype=bool)
    names = cube["band_name"].values if "band_name" in cube.coords else None
    tags, descriptions = [], []
    # a band of unknown wavelength says so ("nan"), so the list stays one value a band
    some_wl, some_fwhm = np.isfinite(wl).any(), np.isfinite(fwhm).any()
    for b in range(cube.shape[2]):
        t = {"bbl": str(int(good[b]))}
        if some_wl:
            t.update(wavelength=repr(float(wl[b])), wavelength_units="Nanometers")
        if some_fwhm:  # every digit the cube holds (9 lost 1003.299988's last)
            t["fwhm"] = repr(float(fwhm[b]))
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

    Keeps CRS, transform, nodata (the cube's unless given), per-band ``wavelength``
    (nm, ``nan`` where unknown), ``fwhm`` and ``bbl`` as GDAL band metadata, which
    :func:`open_geotiff` reads back, and band scale and offset (:func:`output_scaling`).
    ``interleave`` is ``"band"`` or ``"pixel"``; ``dtype`` casts (float to int rounds and
    clips).
    """
    if interleave not in ("band", "pixel"):
        raise ParameterError(f"GeoTIFF interleave must be 'band' or 'pixel', got {interleave!r}")
    _check_options(path, nodata=nodata)
    refuse_input_files([path], cube)
    tally = CastTally()
    if dtype is not None:
        cube = cast_cube(cube, dtype, tally)
    out_dtype = cube.dtype
    nodata = cube.attrs.get("nodata") if nodata is None else float(nodata)
    if nodata is not None and out_dtype.kind in "iu" and not np.isfinite(nodata):
        nodata = None
    if nodata is not None and out_dtype.kind in "iu" and out_dtype.itemsize == 8:
        back = nodata_read_back(out_dtype, nodata)
        if back != nodata:
            raise ParameterError(
                f"nodata {int(nodata) if float(nodata).is_integer() else nodata} of "
                f"{out_dtype} does not survive a GeoTIFF's nodata tag "
                f"(GDAL reads it back as {back:g}: its pixels would count as data, and "
                f"pixels of {back:g} as none); write ENVI (.img), or another --dtype", path)
    crs, transform = _georef_of(cube)
    sensor = _sensor_of(cube, crs, transform)
    arr = _as_dask(cube.transpose("y", "x", "band")).map_blocks(
        cast_block, out_dtype=out_dtype, nodata=nodata, dtype=out_dtype,
        meta=np.empty((0, 0, 0), out_dtype))
    band_tags, descriptions = _spectral_tags(cube)
    profile = _profile(arr.shape[0], arr.shape[1], arr.shape[2], out_dtype, crs, transform,
                       nodata, interleave, sensor=sensor)
    written = _write(arr, path, profile, cog, "AVERAGE", band_tags=band_tags,
                     tags={"wavelength_units": "Nanometers",
                           **window_tags(cube, own_frame=True), **_description_tag(cube)},
                     descriptions=descriptions,
                     scaling=output_scaling(cube), sensor=sensor)
    tally.warn(written, out_dtype)
    return written


def _description_tag(cube: xr.DataArray) -> dict:
    """The cube's description (an ENVI header's, a GeoTIFF's ``TIFFTAG_IMAGEDESCRIPTION``)
    as the GeoTIFF's own, where it has one."""
    text = cube.attrs.get("description")
    return {"TIFFTAG_IMAGEDESCRIPTION": str(text)} if text else {}


def output_scaling(cube: xr.DataArray) -> tuple[list[float], list[float]] | None:
    """Per-band ``(scales, offsets)`` to write as GDAL's band scale and offset: the values'
    physical units (:func:`hsad.cube.physical_scaling`: the cube's own band scales and
    offsets and an ENVI ``reflectance scale factor`` F together, (DN · gain + offset) / F);
    None for neither."""
    scaling = physical_scaling(cube)
    if scaling is None:
        return None
    return [float(v) for v in scaling[0]], [float(v) for v in scaling[1]]


__all__ = ["cast_block", "cast_cube", "output_scaling", "verify_written", "write_geotiff",
           "write_geotiff_cube", "write_mask"]
