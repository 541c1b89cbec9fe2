"""The background area a user chooses: polygons or a raster mask → a (y, x) mask of the scene.

Detectors that estimate background statistics (``rx``, ``utd``, ``rxd-utd``,
``local-mean-rx``, ``cluster-rx``, and the neural detectors' training sample) take
``fit(cube, background=…)``; :func:`background_mask` turns any accepted form into a bool
map of the scene grid:

- a vector file (``.gpkg``, ``.geojson``, ``.json``, ``.shp``): its polygons, in any CRS,
  reprojected to the scene's CRS and rasterised onto its grid (a pixel is in when its
  centre is, ``rasterio.features.rasterize``). A file of several layers (a GeoPackage)
  needs one named as QGIS writes it, ``areas.gpkg|layername=water``;
- a raster mask file (GeoTIFF, ENVI, MAT) on the scene's grid (same size and, when both
  have one, the same transform): its non-zero pixels;
- a (y, x) bool array or DataArray;
- shapely geometries or GeoJSON-like mappings, in the scene's CRS unless ``crs`` says.

An empty area, one outside the scene or a mask on another grid is a one-line
:class:`~hsad.errors.ParameterError`. Local detectors (``lrx``, ``crd``) take each pixel's
background from its own ring: :func:`fit_detector` refuses a background area for them.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping

import numpy as np
import xarray as xr

from hsad.cube.nodata_values import hidden_class_note
from hsad.cube.vector_masks import (  # noqa: F401  (vector files: kept importable from here)
    LAYER,
    VECTOR_SUFFIXES,
    _rasterise,
    is_vector,
    split_layer,
    vector_mask,
)
from hsad.errors import ParameterError
from hsad.io import check_input


def raster_mask(path: str | os.PathLike, cube: xr.DataArray,
                what: str = "background mask") -> np.ndarray:
    """(y, x) bool map of a one-band raster on ``cube``'s grid (GeoTIFF, ENVI, MAT), or on
    the whole grid of the scene ``cube`` was cut from (:mod:`hsad.cube.subset`): True where
    non-zero; its nodata pixels are False. An EMIT L2A MASK granule gives its clear pixels
    (:func:`hsad.io.emit.clear_pixels`), an EnMAP quality layer (``…-QL_QUALITY_CLOUD.TIF``)
    the pixels it does not flag (:func:`hsad.io.enmap_quality.clear_values`). Another size, CRS or
    transform is a ParameterError."""
    from hsad.cube.placement import cut_for_scene, on_scene_grid
    from hsad.cube.vector_masks import is_vector
    from hsad.io import detect_format
    from hsad.io.enmap_quality import clear_values, is_pixel_mask, layer_flag
    from hsad.io.maps import read_single_band

    if is_vector(path):  # a background area or a truth may be polygons; this one may not
        raise ParameterError(f"is a vector file; a {what} is a raster on the scene's grid "
                             "(GeoTIFF, ENVI or MAT): burn the polygons into one "
                             "(gdal_rasterize, QGIS's Rasterize)", path)
    if is_pixel_mask(path):
        raise ParameterError(f"is EnMAP's defective-pixel mask (one band per spectral band), "
                             f"not a {what}; --exclude-quality applies the product's quality "
                             "layers", path)
    if layer_flag(path) is not None:  # an EnMAP quality layer: the pixels it does not flag
        values, raster = clear_values(path, cube)
    elif detect_format(path, what) == "emit":  # an EMIT L2A MASK granule: its clear pixels
        from hsad.cube.subset import current_window, recorded_frame
        from hsad.io.emit import clear_pixels

        window, frame = current_window(cube), recorded_frame(cube.attrs)
        shapes = [(cube.sizes["y"], cube.sizes["x"])] + [tuple(w[2:]) for w in (window, frame)
                                                        if w is not None]
        values, raster = clear_pixels(path, cube.attrs.get("source_path"), shapes), None
    else:
        values, raster = read_single_band(  # cut to the scene before it is read
            path, what=what, fit=lambda r: cut_for_scene(r, cube, what, path))
    mask = np.nan_to_num(on_scene_grid(values, raster, cube, what, path)) != 0
    nodata = None if raster is None else raster.attrs.get("nodata")
    note = hidden_class_note(nodata, int(np.isnan(values).sum()), zero_marks=False)
    if note and not mask.any():
        raise ParameterError(f"the {what} marks no pixel: {note} (is the marked class "
                             "written with it, as QGIS's Rasterize writes the burn value when "
                             "it is also the nodata value?)", path)
    return mask


def array_mask(values, cube: xr.DataArray, what: str = "background mask") -> np.ndarray:
    """(y, x) bool map of a mask given as an array (numpy, or a DataArray's values) on
    ``cube``'s grid: True where non-zero; zero and NaN are False. Another shape, or values
    that are not numbers, is a ParameterError."""
    mask = np.asarray(getattr(values, "values", values))
    shape, path = tuple(cube.shape[:2]), cube.attrs.get("source_path")
    if mask.shape != shape:
        raise ParameterError(f"{what} shape {mask.shape} does not match the scene's {shape}",
                             path)
    try:
        return np.nan_to_num(mask.astype(np.float64)) != 0
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must hold numbers, got {mask.dtype}", path) from None


def background_mask(cube: xr.DataArray, background, crs=None,
                    empty_ok: bool = False) -> np.ndarray | None:
    """(y, x) bool map of the background area ``background`` on ``cube``'s grid (None: all).

    ``crs``: the CRS of geometries given as objects (default: the scene's). An area holding
    no pixel of the scene is a ParameterError, unless ``empty_ok`` (one scene of several).
    """
    if background is None:
        return None
    path = None
    if isinstance(background, (str, os.PathLike)):
        path, layer = split_layer(background)
        check_input(path, "background area")
        if is_vector(background):
            mask = vector_mask(background, cube, empty_ok=empty_ok)
        elif layer is not None:
            raise ParameterError("a layer name applies to vector files only", path)
        else:
            mask = raster_mask(path, cube)
    elif isinstance(background, (np.ndarray, xr.DataArray)):
        mask = array_mask(background, cube)
    else:
        mask = _rasterise(_geometries(background), crs, cube, None, empty_ok)
    if not mask.any() and not empty_ok:
        raise ParameterError("the background area holds no pixel", path)
    return mask


def _geometry(g):
    """A shapely geometry or a GeoJSON-like mapping as it is; an object with
    ``__geo_interface__`` (pygeoif's, arcpy's) as its mapping; anything else None."""
    if hasattr(g, "geom_type") or isinstance(g, Mapping):  # fiona's features are mappings
        return g
    return g.__geo_interface__ if hasattr(g, "__geo_interface__") else None


def _geometries(background) -> list:
    """One geometry, or a sequence of them (:func:`_geometry`), as a list; anything else a
    ParameterError."""
    kinds = ("a vector or raster file, a (y, x) mask array, or shapely geometries or "
             "GeoJSON-like mappings")
    if (one := _geometry(background)) is not None:
        return [one]
    if isinstance(background, (bytes, int, float, bool)) or not hasattr(background, "__iter__"):
        raise ParameterError(f"background must be {kinds}, got {type(background).__name__}")
    items = list(background)  # a generator too, read once
    geoms = [_geometry(g) for g in items]
    odd = [g for g, kept in zip(items, geoms, strict=True) if kept is None]
    if odd:
        raise ParameterError(f"background must be {kinds}, got a sequence holding "
                             f"{type(odd[0]).__name__}")
    return geoms


def fit_detector(detector, cube: xr.DataArray, background=None):
    """``detector.fit(cube, background=…)``; a detector without a background (lrx, crd:
    local by definition) refuses one with a ParameterError."""
    if background is None:
        return detector.fit(cube)
    if "background" not in inspect.signature(detector.fit).parameters:
        ours = type(detector).__module__.startswith("hsad.")  # lrx, crd, aed: local
        why = ("the method takes each pixel's background from its own window" if ours
               else f"{type(detector).__name__}.fit takes no background")
        raise ParameterError(f"{detector.name}: a background area does not apply: {why}")
    return detector.fit(cube, background=background)


__all__ = ["array_mask", "background_mask", "fit_detector", "raster_mask"]
