"""The cube model: a lazy ``xarray.DataArray`` with dims ``(y, x, band)``.

A cube carries its georeferencing (``cube.rio.crs``, ``cube.rio.transform()``),
``nodata``, per-band ``wavelength`` (nm), ``fwhm`` (nm) and ``good_band``
coordinates, and ``source_format``/``source_path`` attributes, so that readers,
detectors and writers pass them along without anyone doing it by hand.

Maps (scores, masks, stages) are ``(y, x)`` DataArrays with the same
coordinates and georeferencing, made by :func:`map_like`. The grid helpers
(:mod:`~hsad.cube.grid`) and the nodata values (:mod:`~hsad.cube.nodata_values`) are
importable from here too.

The package's other modules, loaded on first use, work on a cube before any detector sees
it: the bands (:mod:`~hsad.cube.bands`), the pixels that hold data
(:mod:`~hsad.cube.nodata`), windows (:mod:`~hsad.cube.subset`), several scenes as one
(:mod:`~hsad.cube.mosaic`), background areas (:mod:`~hsad.cube.background`) and vector files
drawn on its grid (:mod:`~hsad.cube.vector_masks`); :mod:`~hsad.cube.array_types` names the
types for annotations.
"""

from __future__ import annotations

import itertools
import uuid
import warnings
import weakref
from collections.abc import Sequence

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from hsad.cube.array_types import CubeLike  # the annotations only: costs nothing at run time
from hsad.cube.grid import (
    GRID_TOLERANCE,
    PIXEL_INDEX,
    QGIS_PIXEL_FRAME,
    check_transform,
    crs_of,
    georef,
    georeferenced,
    refuse_singular,
    same_grid,
    same_place,
    transform_of,
    vector_frame,
    with_crs,
)
from hsad.cube.nodata_values import (
    NEAR_FLT_MAX,
    block_valid,
    can_miss,
    excluded_fill,
    float32_or_nan,
    missing_values,
    nodata_for,
    nodata_hits,
    one_nodata,
)
from hsad.errors import ParameterError
from hsad.lazy_modules import lazy_package

DIMS = ("y", "x", "band")

#: Default chunk size, in pixels along y and x. All bands stay in one chunk.
DEFAULT_CHUNK = 512


def wrap_numpy(array: np.ndarray, chunks=(DEFAULT_CHUNK, DEFAULT_CHUNK, -1)) -> da.Array:
    """A dask array over ``array``'s chunks as views: no copy and no hashing.

    ``dask.array.from_array`` copies a numpy input whole before slicing it (1–2 s and
    the memory twice over for a 1024 × 1024 × 200 float32 cube); like ``xarray``, the cube
    shares memory with the array it wraps instead.
    """
    chunks = da.core.normalize_chunks(chunks[:array.ndim], array.shape, dtype=array.dtype)
    name = f"array-{uuid.uuid4().hex}"
    keys = itertools.product([name], *(range(len(c)) for c in chunks))
    graph = {key: array[slc] for key, slc in zip(keys, da.core.slices_from_chunks(chunks),
                                                 strict=True)}
    return keep_source(da.Array(graph, name, chunks, dtype=array.dtype,
                                meta=np.empty((0,) * array.ndim, array.dtype)), array)


#: what dask arrays were made over (:func:`source_of`), by ``id`` of the graph layer that
#: computes each from it: ``(weak reference to the layer, source)``, dropped with the layer
_SOURCES: dict[int, tuple] = {}


def _layer(data):
    """The graph layer that computes the dask array ``data`` (None for other graphs)."""
    layers = getattr(getattr(data, "dask", None), "layers", None)
    return layers.get(data.name) if layers is not None else None


def keep_source(data: da.Array, source) -> da.Array:
    """Remember that ``data`` (a dask array) is ``source`` (a numpy array, or a reader
    sliced like one) chunk by chunk, unchanged, for as long as its graph layer lives;
    returns ``data``. ``source`` is held until then, so it must not refer to ``data``
    itself (the layer would then never be freed)."""
    layer = _layer(data)
    if layer is not None:
        key = id(layer)
        _SOURCES[key] = (weakref.ref(layer), source)
        weakref.finalize(layer, _SOURCES.pop, key, None)
    return data


def source_of(data):
    """The array ``data`` (a dask array from :func:`keep_source`, unsliced, or one that
    ``dask.array.from_array`` made: :func:`hsad.io.graph_sources.graph_source`) was made
    over, else None. A window of it is read by slicing it, without a dask graph: many small
    windows (an even sample of a scene) cost 1 ms each through dask, microseconds so. A
    copy of ``data`` (pickled, persisted) has a graph of its own: its source, if any, is
    what that graph holds, not the array it was copied from (which may hold other values
    now)."""
    layer = _layer(data) if isinstance(data, da.Array) else None
    if layer is None:
        return None
    entry = _SOURCES.get(id(layer))
    if entry is None or entry[0]() is not layer:
        from hsad.io.graph_sources import graph_source

        return graph_source(data)  # dask's from_array over an array: that array
    held = entry[1]
    if tuple(held.shape) != data.shape or held.dtype != data.dtype:
        return None
    return held


def wraps_numpy(data) -> bool:
    """Whether ``data`` is :func:`wrap_numpy`'s dask array over a numpy array in memory
    (a :func:`make_cube` of a numpy array), unsliced: its values are that array's now."""
    layer = _layer(data) if isinstance(data, da.Array) else None
    entry = None if layer is None else _SOURCES.get(id(layer))
    return (entry is not None and entry[0]() is layer and type(entry[1]) is np.ndarray
            and entry[1].shape == data.shape)


#: the attributes of a cube cut from a scene: its window (row and column offsets, the
#: scene's rows and columns) and its grid when cut (six affine coefficients), by which a
#: slice taken of it later moves the window (:func:`hsad.cube.subset.current_window`)
WINDOW_ATTR = "hsad_window"
WINDOW_GRID_ATTR = "hsad_window_grid"


def _pixel_centre_coords(transform: Affine, rows: int, cols: int):
    """x and y coordinates of pixel centres; pixel indices + 0.5 for rotated grids (marked
    with :data:`PIXEL_INDEX`, so that :func:`transform_of` can place a slice)."""
    if transform.b == 0 and transform.d == 0:
        x = transform.c + transform.a * (np.arange(cols) + 0.5)
        y = transform.f + transform.e * (np.arange(rows) + 0.5)
        return y, x
    # rotated: coords cannot express it; the GeoTransform attribute does
    return (xr.Variable("y", np.arange(rows) + 0.5, attrs=PIXEL_INDEX),
            xr.Variable("x", np.arange(cols) + 0.5, attrs=PIXEL_INDEX))


def _band_coord(values, n: int, name: str, dtype, path=None) -> np.ndarray:
    """One value per band (``name``: the keyword given, in the ParameterError for another
    count), or the fill (NaN; True for flags) where ``values`` is None."""
    if values is None:
        fill = True if dtype is bool else np.nan
        return np.full(n, fill, dtype=dtype)
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.size != n:
        raise ParameterError(f"{name} has {arr.size} values but the cube has {n} bands", path)
    return arr


def index_wavelength(cube: xr.DataArray) -> xr.DataArray:
    """Index ``wavelength`` when it is known and ascending, so that
    ``cube.sel(wavelength=slice(400, 2400))`` works; otherwise use hsad.select_bands."""
    wavelength = cube["wavelength"].values
    if np.isfinite(wavelength).all() and (np.diff(wavelength) > 0).all():
        return cube.set_xindex("wavelength")
    return cube


def unmasked(array):
    """A numpy masked array as a float array with NaN where values are masked (they hold no
    data; integers widen to float32, or float64 beyond 16 bits); anything else as it is."""
    if isinstance(array, np.ma.MaskedArray):
        return array.astype(np.result_type(array.dtype, np.float32)).filled(np.nan)
    return array


def _placed(wavelength, bands: int, source_path):
    """``wavelength`` unless it places no band (all one value: a placeholder, with a
    warning; all NaN), as every reader's cube takes it (:func:`hsad.io.wavelength_units.
    placeholder_wavelengths`). A list of another length than ``bands`` is left to
    :func:`_band_coord` to refuse (``[0, 0, 0]`` for 8 bands had been taken as 8 unknown)."""
    if wavelength is None or np.size(wavelength) != bands:
        return wavelength
    from hsad.io.wavelength_units import placeholder_wavelengths

    try:
        values = np.asarray(wavelength, dtype=np.float64)
    except (TypeError, ValueError):
        return wavelength  # _band_coord names what is wrong
    return placeholder_wavelengths(values.ravel(), source_path or "cube") \
        if values.ndim == 1 else wavelength


def make_cube(
    data,
    *,
    transform: Affine | None = None,
    crs: CRS | str | None = None,
    nodata: float | None = None,
    wavelength: Sequence[float] | np.ndarray | None = None,
    fwhm: Sequence[float] | np.ndarray | None = None,
    good_band: Sequence[bool] | np.ndarray | None = None,
    band_names: Sequence[str] | np.ndarray | None = None,
    source_format: str | None = None,
    source_path: str | None = None,
    attrs: dict | None = None,
    name: str = "cube",
) -> xr.DataArray:
    """Wrap a (rows, cols, bands) array (numpy or dask) as a georeferenced cube.

    ``wavelength`` and ``fwhm`` are in nanometres; ascending wavelengths are indexed, so
    ``cube.sel(wavelength=slice(400, 2400))`` selects bands. ``transform`` defaults to the
    identity pixel grid (as GDAL reports for files without map info); a singular or
    non-finite one is a :class:`GeoreferenceError` naming ``source_path``. A numpy masked
    array's masked values become NaN (:func:`unmasked`).
    """
    if not isinstance(data, da.Array):
        data = wrap_numpy(np.asarray(unmasked(data)))
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise ParameterError(f"a cube needs 3 dimensions (y, x, band), got shape {data.shape}")
    rows, cols, bands = data.shape
    transform = Affine.identity() if transform is None else transform
    if not isinstance(transform, Affine):  # six bare numbers: rasterio's or GDAL's order?
        raise ParameterError(f"transform must be an affine.Affine (Affine(a, b, c, d, e, f), "
                             f"or Affine.from_gdal(*geotransform)), got {transform!r}")
    check_transform(transform, source_path)
    y, x = _pixel_centre_coords(transform, rows, cols)
    coords = {
        "y": y,
        "x": x,
        "band": np.arange(1, bands + 1),
        "wavelength": ("band", _band_coord(_placed(wavelength, bands, source_path), bands,
                                           "wavelength", np.float64, source_path)),
        "fwhm": ("band", _band_coord(fwhm, bands, "fwhm", np.float64, source_path)),
        "good_band": ("band", _band_coord(good_band, bands, "good_band", bool, source_path)),
    }
    if band_names is not None:
        coords["band_name"] = ("band", _band_coord(band_names, bands, "band_names", object,
                                                   source_path))
    cube = index_wavelength(xr.DataArray(data, dims=DIMS, coords=coords, name=name))
    cube.attrs.update(attrs or {})
    if WINDOW_ATTR in cube.attrs and WINDOW_GRID_ATTR not in cube.attrs:  # a reader's window
        cube.attrs[WINDOW_GRID_ATTR] = tuple(transform)[:6]
    cube.attrs["nodata"] = nodata_for(data.dtype, nodata)
    if nodata is not None and cube.attrs["nodata"] is None:
        warnings.warn(f"{source_path or 'cube'}: nodata {float(nodata):g} cannot occur in "
                      f"{data.dtype} data; ignored (as GDAL does)", UserWarning, stacklevel=2)
    cube.attrs["source_format"] = source_format
    cube.attrs["source_path"] = source_path
    if crs is not None:
        cube = with_crs(cube, crs)
    cube = cube.rio.write_transform(transform)
    return cube


def with_band_scaling(cube: xr.DataArray, scales, offsets) -> xr.DataArray:
    """``cube`` with GDAL's per-band scale and offset (value = DN · scale + offset) as the
    band coordinates ``band_scale`` and ``band_offset``, which follow every band selection
    and reordering; unchanged when both are the identity. Recorded, not applied: the
    detectors read the stored values."""
    scales, offsets = (np.asarray(v, dtype=np.float64) for v in (scales, offsets))
    if np.all(scales == 1) and np.all(offsets == 0):
        return cube
    return cube.assign_coords(band_scale=("band", scales), band_offset=("band", offsets))


def band_scaling(cube: xr.DataArray) -> tuple[list[float], list[float]] | None:
    """``(scales, offsets)`` of :func:`with_band_scaling`, None when the cube has neither
    (one alone, e.g. after xarray dropped the other where two cubes disagreed, pairs with
    the identity)."""
    have = [name in cube.coords for name in ("band_scale", "band_offset")]
    if not any(have):
        return None
    bands = cube.sizes["band"]
    scales, offsets = (
        [float(v) for v in cube[name].values] if present else [float(identity)] * bands
        for name, present, identity in (("band_scale", have[0], 1), ("band_offset", have[1], 0)))
    return scales, offsets


def physical_scaling(cube: xr.DataArray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-band ``(gain, offset)`` taking the cube's values to the file's physical units:
    its band scales and offsets (:func:`band_scaling`; GeoTIFF scale/offset, ENVI ``data
    gain values``), the result divided by ENVI's ``reflectance scale factor`` F, so
    (DN · gain + offset) / F; a reader that applied F divided the values already. None
    when the cube has neither."""
    own = band_scaling(cube)
    factor = cube.attrs.get("reflectance_scale_factor")
    if own is None and not (factor and not cube.attrs.get("scale_applied")):
        return None
    bands = cube.sizes["band"]
    gain, offset = (np.ones(bands), np.zeros(bands)) if own is None else \
        (np.asarray(own[0], np.float64), np.asarray(own[1], np.float64))
    if factor:
        gain = gain if cube.attrs.get("scale_applied") else gain / float(factor)
        offset = offset / float(factor)
    return gain, offset


def valid_mask(cube: CubeLike) -> xr.DataArray:
    """Lazy ``(y, x)`` boolean map: True where the pixel holds data.

    A pixel is invalid when any good band equals ``nodata`` or is not finite.
    """
    cube = as_cube(cube)
    data, nodata = good_bands_of(cube.data, good_band_mask(cube)), cube.attrs.get("nodata")
    if can_miss(data.dtype, nodata):
        ok = ~missing_values(data, nodata).any(axis=-1)
    else:  # an integer cube without nodata: every pixel holds data
        ok = da.ones(data.shape[:2], chunks=data.chunks[:2], dtype=bool)
    return xr.DataArray(ok, dims=("y", "x"), coords=_map_coords(cube), name="valid")


def _check_not_empty(shape: tuple[int, ...]) -> None:
    """ParameterError for a cube without a row, a column or a band."""
    if 0 in shape:
        raise ParameterError(f"a cube needs at least one row, column and band, got shape "
                             f"{tuple(shape)} (rows, cols, bands)")


def _spy_file(obj) -> bool:
    """Whether ``obj`` is a file SPy opened (``spectral.open_image``: a ``SpyFile``)."""
    return any(c.__name__ == "SpyFile" and c.__module__.startswith("spectral.")
               for c in type(obj).__mro__) and isinstance(getattr(obj, "filename", None), str)


def _from_spy(spy) -> xr.DataArray:
    """A file SPy opened, as :func:`hsad.open_cube` reads its data file; one hsad cannot
    find its header for (a data file named apart, ``envi.open(hdr, image)``) through SPy's
    own memory map, with the header's wavelengths and bad-band list as SPy read them."""
    from hsad.errors import FileFormatError, HsadError
    from hsad.io import open_cube
    from hsad.io.wavelength_units import wavelength_scale

    try:
        return open_cube(spy.filename)
    except HsadError:
        meta = getattr(spy, "metadata", {}) or {}
        try:
            data = spy.open_memmap(interleave="bip")
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"SPy's file cannot be read: {exc}", spy.filename) from None
        bands = data.shape[2]
        wl = _numbers(meta.get("wavelength"), bands)
        scale = wavelength_scale(meta.get("wavelength units"), wl) if wl is not None else None
        bbl = _numbers(meta.get("bbl"), bands)
        ignore = _numbers([meta.get("data ignore value")], 1)
        return make_cube(da.from_array(data, chunks=(DEFAULT_CHUNK, DEFAULT_CHUNK, -1)),
                         wavelength=wl * scale if scale else None,
                         good_band=None if bbl is None or np.isnan(bbl).any() else bbl > 0,
                         nodata=None if ignore is None else float(ignore[0]),
                         source_path=spy.filename)


def _numbers(values, n: int) -> np.ndarray | None:
    """``n`` numbers of a header field as SPy gives it (NaN where one is no number), or
    None for a field absent or of another length."""
    if values is None or len(values) != n or all(v is None for v in values):
        return None
    out = np.full(n, np.nan)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            pass
    return out


def _transposed(obj: xr.DataArray) -> xr.DataArray:
    """``obj`` with the dims :data:`DIMS`; a dask array keeps the array it was made over
    (:func:`source_of`), its axes reordered, so that small windows are read from it."""
    cube = obj.transpose(*DIMS)
    held = source_of(obj.data) if obj.chunks is not None else None
    if held is not None:  # kept on the graph layer: a reader may hold its own dask array
        from hsad.io.graph_sources import PermutedSource, remember

        remember(cube.data, PermutedSource(held, [obj.dims.index(d) for d in DIMS]))
    return cube


def as_cube(obj) -> xr.DataArray:
    """``obj`` as a cube the detectors take: a lazy ``(y, x, band)`` DataArray with hsad's
    band coordinates. Numpy and dask arrays ``(rows, cols, bands)`` become one
    (:func:`make_cube`); a DataArray with dims ``y``, ``x``, ``band`` in any order (as
    ``rioxarray.open_rasterio`` gives them), loaded into memory or not, is transposed,
    wrapped in dask and given the coordinates it lacks (all bands good, wavelengths unknown).
    A numpy masked array's masked values become NaN (no data). A file SPy opened
    (``spectral.open_image``) is read as :func:`hsad.open_cube` reads its data file
    (wavelengths, bad bands, georeference and all). A proper cube is returned as it is."""
    if _spy_file(obj):  # SPy's spectral.open_image(...): the file it reads, as hsad reads it
        return _from_spy(obj)
    obj = unmasked(obj)
    if isinstance(obj, xr.Dataset):
        raise ParameterError(f"a cube is one DataArray, got a Dataset of {list(obj.data_vars)}: "
                             "take its cube variable (dataset['name'])")
    if not isinstance(obj, xr.DataArray):
        try:
            data = obj if isinstance(obj, da.Array) else np.asarray(obj)
        except ValueError as exc:  # a ragged list
            raise ParameterError(f"a cube is a real-valued (rows, cols, bands) array: {exc}") \
                from None
        if data.ndim != 3 or data.dtype.kind not in "biuf":
            raise ParameterError(f"a cube is a real-valued (rows, cols, bands) array, got shape "
                                 f"{data.shape} {data.dtype} (open files with hsad.open_cube)")
        _check_not_empty(data.shape)
        return make_cube(data)
    if set(obj.dims) != set(DIMS) or obj.dtype.kind not in "biuf":
        raise ParameterError(f"a cube is a real-valued DataArray with the dims {DIMS}, got "
                             f"{obj.dims} {obj.dtype} (open files with hsad.open_cube, or "
                             "build one with hsad.make_cube)")
    _check_not_empty(tuple(obj.sizes[d] for d in DIMS))
    if obj.chunks is None and not getattr(obj.variable, "_in_memory", True):
        # a file behind it (rioxarray.open_rasterio without chunks=): read tile by tile,
        # chunked before it is transposed (a transposed file view is read whole: 20×)
        obj = obj.chunk({"y": DEFAULT_CHUNK, "x": DEFAULT_CHUNK, "band": -1})
    cube = obj if obj.dims == DIMS else _transposed(obj)
    if cube.chunks is None:
        cube = cube.copy(data=wrap_numpy(np.asarray(cube.data)))
    bands = cube.sizes["band"]
    missing = {name: ("band", _band_coord(None, bands, name, kind))
               for name, kind in (("wavelength", np.float64), ("fwhm", np.float64),
                                  ("good_band", bool)) if name not in cube.coords}
    if missing:
        cube = cube.assign_coords(missing)
    if "x" not in cube.coords and "y" not in cube.coords:
        # pixel centres, as a numpy array's (a DataArray without coordinates had 0, 1, 2 …
        # and a map half a pixel off); rioxarray gives a rotated grid no coordinates:
        # hsad's (pixel indices + 0.5) keep a slice's place on it (transform_of)
        y, x = _pixel_centre_coords(cube.rio.transform(), cube.sizes["y"], cube.sizes["x"])
        cube = cube.assign_coords(y=y, x=x)
    elif "x" not in cube.coords or "y" not in cube.coords:
        # one axis given: the other's pixel centres as without either, from a transform
        # written with rioxarray, else pixel indices + 0.5 (rioxarray takes 0, 1, 2 … for
        # the missing coordinates: the map was half a pixel off along it)
        axis = "x" if "x" not in cube.coords else "y"
        written = "spatial_ref" in cube.coords and cube["spatial_ref"].attrs.get("GeoTransform")
        if written:
            y, x = _pixel_centre_coords(cube.rio.transform(), cube.sizes["y"],
                                        cube.sizes["x"])
            cube = cube.assign_coords({axis: x if axis == "x" else y})
        else:
            cube = cube.assign_coords({axis: np.arange(cube.sizes[axis]) + 0.5})
    if "nodata" not in cube.attrs:
        cube = cube.copy(deep=False)
        cube.attrs["nodata"] = nodata_for(cube.dtype, cube.rio.nodata)
    return cube


def good_band_mask(cube: xr.DataArray) -> np.ndarray:
    """Boolean vector of the bands to use (all, if the bbl marks none good)."""
    good = np.asarray(cube["good_band"].values, dtype=bool)
    return good if good.any() else np.ones_like(good)


def good_bands_of(data, good: np.ndarray):
    """``data[:, :, good]``, or ``data`` itself when every band is good.

    Cut windows out of a lazy cube *before* this: dask reads only a window sliced off the
    file, but once a boolean band index stands between the two it reads whole chunks (a
    row of a 512-row chunk: 0.9 s instead of 0.006 s)."""
    return data if good.all() else data[:, :, good]


def _map_coords(cube: xr.DataArray) -> dict:
    keep = {"y": cube["y"], "x": cube["x"]}
    if "spatial_ref" in cube.coords:
        keep["spatial_ref"] = cube["spatial_ref"]
    return keep


def band_numbers(obj) -> np.ndarray | None:
    """The file's band numbers of a cube or a dataset of its bands (the ``band``
    coordinate, 1-based: 101 … 160 for ``--bands 100:160``), or None where it holds none."""
    if not isinstance(obj, (xr.DataArray, xr.Dataset)) or "band" not in obj.coords:
        return None
    numbers = np.asarray(obj["band"].values)
    if numbers.dtype.kind not in "iu" or numbers.ndim != 1 or not (numbers >= 1).all():
        return None
    return numbers.astype(np.int64)


class MapShapeError(ParameterError):
    """A detector's map of another shape than its cube's (:func:`map_like`): the detector
    calling it names itself in the message (``hsad.detectors.cube_methods``)."""


def map_like(cube: xr.DataArray, values, name: str = "score", attrs: dict | None = None):
    """Wrap a ``(y, x)`` array as a map aligned with ``cube`` (same coords and georef, and the
    record of the window of a scene that ``cube`` is: its maps' files carry it)."""
    rows, cols = cube.shape[:2]
    if np.shape(values) != (rows, cols):
        raise MapShapeError(f"map shape {np.shape(values)} does not match the cube's "
                            f"{(rows, cols)}", cube.attrs.get("source_path"))
    out = xr.DataArray(values, dims=("y", "x"), coords=_map_coords(cube), name=name)
    out.attrs.update(attrs or {})
    out.attrs["source_path"] = cube.attrs.get("source_path")
    if "scenes" in cube.attrs:  # a training mosaic's: the writers never replace them
        out.attrs["scenes"] = cube.attrs["scenes"]
    from hsad.io.window import WINDOW_ATTRS

    for placement in ("sensor_georef", "glt", *WINDOW_ATTRS):  # GCPs and RPCs
        if placement in cube.attrs:  # (hsad.io.sensor_georef), an EMIT lookup table
            out.attrs[placement] = cube.attrs[placement]  # (hsad.io.glt), a window's record
    return out


#: the package's modules load on first use, and dir() lists them before they do
__getattr__, __dir__ = lazy_package(__name__)


__all__ = [
    "as_cube", "band_numbers", "band_scaling", "block_valid", "can_miss", "check_transform",
    "crs_of", "DEFAULT_CHUNK", "DIMS", "excluded_fill", "float32_or_nan", "georef", "georeferenced",
    "good_band_mask", "good_bands_of", "GRID_TOLERANCE", "index_wavelength", "make_cube",
    "map_like", "missing_values", "NEAR_FLT_MAX", "nodata_for", "nodata_hits", "one_nodata",
    "physical_scaling", "PIXEL_INDEX", "QGIS_PIXEL_FRAME", "refuse_singular", "same_grid",
    "same_place", "transform_of", "unmasked", "valid_mask", "vector_frame",
    "MapShapeError", "WINDOW_ATTR", "WINDOW_GRID_ATTR", "with_band_scaling", "wrap_numpy",
    "wraps_numpy", "keep_source", "source_of"
]
