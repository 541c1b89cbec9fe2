"""An EnMAP product's quality layers (``QL_QUALITY_CLOUD`` … on the scene's grid), as
SNAP's EnMAP reader decodes them: :func:`quality_valid` gives a scene's pixels that none
of the chosen flags (``cloud``, ``cloudshadow``, ``haze``, ``cirrus``, ``snow``, ``water``,
``saturated``) marks, :func:`clear_values` one layer as a mask, and :func:`cover_note`
the metadata's cloud cover in a line. They are not applied on reading
(:mod:`hsad.io.enmap`)."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from hsad.errors import FileFormatError, ParameterError
from hsad.io.enmap import product_part, read_product

#: quality flags: the layer that holds each, and its flagged values (SNAP's coding)
FLAGS = {
    "cloud": ("QL_QUALITY_CLOUD", lambda v: v == 1),
    "cloudshadow": ("QL_QUALITY_CLOUDSHADOW", lambda v: v == 1),
    "haze": ("QL_QUALITY_HAZE", lambda v: v == 1),
    "cirrus": ("QL_QUALITY_CIRRUS", lambda v: (v >= 1) & (v <= 3)),  # thin, medium, thick
    "snow": ("QL_QUALITY_SNOW", lambda v: v == 1),
    "water": ("QL_QUALITY_CLASSES", lambda v: v == 2),  # 1 land, 2 water, 3 background
    "saturated": ("QL_QUALITY_TESTFLAGS", lambda v: (v.astype(np.int64) & 0b110000) != 0),
}


def is_pixel_mask(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as an EnMAP ``QL_PIXELMASK`` (defective pixels per band)."""
    return (product_part(path) or "").startswith("QL_PIXELMASK")


def layer_flag(path: str | os.PathLike) -> str | None:
    """The flag an EnMAP quality-layer file holds (``QL_QUALITY_CLOUD…`` → ``cloud``), None
    for any other file."""
    part = product_part(path) or ""
    return next((flag for flag, (layer, _) in FLAGS.items() if layer == part), None)


def clear_values(path: str | os.PathLike, cube: xr.DataArray | None = None,
                 ) -> tuple[np.ndarray, xr.DataArray]:
    """An EnMAP quality layer as a mask: 0 where its flag is set, 1 elsewhere (its nodata
    pixels flag nothing); and the layer's raster (georeference). ``cube``: the scene it is
    read for, to which it is cut (or refused for its size) before it is read
    (:func:`hsad.cube.placement.cut_for_scene`)."""
    from hsad.cube.placement import cut_for_scene
    from hsad.io.maps import read_single_band

    flag = layer_flag(path)
    if flag is None:
        raise ParameterError("not an EnMAP quality layer", path)
    what = f"EnMAP {flag} layer"
    values, raster = read_single_band(path, what=what, fit=None if cube is None else (
        lambda r: cut_for_scene(r, cube, what, path)))
    known = np.isfinite(values)
    flagged = np.zeros(values.shape, bool)
    flagged[known] = FLAGS[flag][1](values[known])
    return (~flagged).astype(np.float64), raster


def quality_valid(cube: xr.DataArray, flags) -> np.ndarray | None:
    """(y, x) bool map of ``cube``'s pixels that none of ``flags`` marks, from the quality
    layers of the EnMAP product it was read from (cut to its window); None for no flags."""
    from hsad.cube.placement import on_scene_grid

    if not flags:
        return None
    xml = cube.attrs.get("enmap_metadata")
    if cube.attrs.get("source_format") != "enmap" or not xml:
        raise ParameterError("--exclude-quality applies to EnMAP products (read from their "
                             "folder, METADATA.XML or SPECTRAL_IMAGE); give --valid-mask for "
                             "other scenes", cube.attrs.get("source_path"))
    product = read_product(xml)
    valid = np.ones((cube.sizes["y"], cube.sizes["x"]), bool)
    for flag in flags:
        layer = product.layer(FLAGS[flag][0])
        if layer is None:
            raise FileFormatError(f"the EnMAP product has no {FLAGS[flag][0]} layer for "
                                  f"--exclude-quality {flag}", xml)
        values, raster = clear_values(layer, cube)
        valid &= on_scene_grid(values, raster, cube, f"EnMAP {flag} layer", layer) != 0
    return valid


def cover_note(cube: xr.DataArray, threshold: float = 1.0) -> str | None:
    """A line telling how much of an EnMAP scene its metadata flags as cloud or cloud
    shadow, when that is at least ``threshold`` % (None otherwise)."""
    cover = cube.attrs.get("enmap_cover") or {}
    parts = [(flag, cover[flag]) for flag in ("cloud", "cloudshadow")
             if (cover.get(flag) or 0) >= threshold]
    if not parts:
        return None
    said = " and ".join(f"{v:g} % as {'cloud shadow' if f == 'cloudshadow' else f}"
                        for f, v in parts)
    return (f"the EnMAP metadata flags {said} (of the swath); those pixels are analysed: "
            "--exclude-quality cloud,cloudshadow leaves them out, --exclude-quality none "
            "keeps them without this warning")


__all__ = ["FLAGS", "clear_values", "cover_note", "is_pixel_mask", "layer_flag",
           "quality_valid"]
