"""NEON's weather quality indicator: the cloud cover each pixel was flown under.

NEON's flight crews record the cloud cover of each flight line, and the reflectance files
carry it per pixel in ``<SITE>/Reflectance/Metadata/Ancillary_Imagery/
Weather_Quality_Indicator``, coded as NEON's tutorials describe:

- bidirectional files (DP1.30006.002, DP3.30006.002): one band, 1 (under 10 % cloud
  cover), 2 (10–50 %), 3 (over 50 %);
- directional files (.001): three bands in NEON's stop-light colours, green (0, 255, 0),
  yellow (255, 255, 0) and red (255, 0, 0) for the same classes.

0, black, NaN and the layer's ``Data_Ignore_Value`` (in all three bands of a colour layer)
give no class (the pixel is flagged by nothing); any other value or colour is a
FileFormatError, never a guess. The layer is placed on a cube by the file's grid, as the
cube was read (:func:`scene_classes`). NEON advises analysing the
clear-sky pixels only: ``--exclude-quality partlycloudy,mostlycloudy``
(:mod:`hsad.io.quality`).
"""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import xarray as xr
from affine import Affine

from hsad.errors import FileFormatError, HsadError, ParameterError
from hsad.io.hdf5_file import H5_ERRORS, number_attr

LAYER = "Reflectance/Metadata/Ancillary_Imagery/Weather_Quality_Indicator"
#: flag → the class it leaves out
FLAGS = {"partlycloudy": 2, "mostlycloudy": 3}
#: class → the cloud cover it stands for
CLASSES = {1: "less than 10 %", 2: "10–50 %", 3: "more than 50 %"}
_COLOURS = {(0, 255, 0): 1, (255, 255, 0): 2, (255, 0, 0): 3, (0, 0, 0): 0}
#: what is said of a layer that gives no class to any pixel of the scene
NO_CLASS = "NEON's weather quality indicator gives none of the scene's pixels a class"


def _from_codes(values: np.ndarray, ignore: float | None, path: str) -> np.ndarray:
    """Classes of a one-band layer coded 1, 2, 3 (0 and ``ignore``: none)."""
    values = np.asarray(values, np.float64)
    none = np.isnan(values) | (values == 0)  # (an infinity is no class of NEON's)
    if ignore is not None:
        none |= values == ignore
    odd = ~none & ~np.isin(values, (1, 2, 3))
    if odd.any():
        raise FileFormatError(f"its Weather_Quality_Indicator holds {values[odd][0]:g}, not "
                              "one of NEON's classes 1, 2, 3", path)
    return np.where(none, 0, values).astype(np.int8)


def _from_colours(values: np.ndarray, ignore: float | None, path: str) -> np.ndarray:
    """Classes of a three-band layer in NEON's stop-light colours (black, NaN, ``ignore`` in
    every band: none)."""
    values = np.asarray(values, np.float64)
    classes = np.full(values.shape[:2], -1, np.int8)
    for colour, code in _COLOURS.items():
        classes[(values == colour).all(axis=-1)] = code
    none = np.isnan(values).all(axis=-1)
    if ignore is not None:  # all three bands (each colour holds a 0 and a 255)
        none |= (values == ignore).all(axis=-1)
    classes[none] = 0
    if (classes < 0).any():
        colour = ", ".join(f"{v:g}" for v in values[classes < 0][0])
        raise FileFormatError(f"its Weather_Quality_Indicator holds the colour ({colour}), "
                              "not one of NEON's green, yellow, red", path)
    return classes


def weather_classes(path: str | os.PathLike, site: str, shape: tuple[int, int]
                    ) -> np.ndarray | None:
    """The (rows, cols) int8 classes (1, 2, 3; 0 for none) of a NEON file whose cube is
    ``shape``; None when the file has no weather quality indicator."""
    p = os.fspath(path)
    rows, cols = shape
    layouts = {(rows, cols): "codes", (rows, cols, 3): "colours", (3, rows, cols): "planes"}
    try:
        with h5py.File(p, "r") as f:
            if f"{site}/{LAYER}" not in f:
                return None
            var = f[f"{site}/{LAYER}"]
            if not isinstance(var, h5py.Dataset) or var.dtype.kind not in "iuf":
                kind = f"{var.dtype}" if isinstance(var, h5py.Dataset) else "a group"
                raise FileFormatError(f"its Weather_Quality_Indicator is not a numeric raster "
                                      f"({kind})", p)
            layout = layouts.get(tuple(var.shape))  # checked before anything is read
            if layout is None:
                raise FileFormatError(
                    f"its Weather_Quality_Indicator is {'x'.join(map(str, var.shape))}, not "
                    f"the cube's {rows}x{cols} pixels (with 1 or 3 bands)", p)
            ignore = number_attr(var.attrs, "Data_Ignore_Value", p, "Weather_Quality_Indicator")
            values = var[()]
    except FileFormatError:
        raise
    except H5_ERRORS as exc:
        raise FileFormatError(f"its Weather_Quality_Indicator is not readable "
                              f"({type(exc).__name__}: {exc})", p) from exc
    if layout == "codes":
        return _from_codes(values, ignore, p)
    if layout == "planes":
        values = np.moveaxis(values, 0, -1)
    return _from_colours(values, ignore, p)


def _on_pixel_grid(cube: xr.DataArray) -> bool:
    """Whether ``cube``, of a file without a grid, lies on the file's pixels as read or as
    hsad cut it (the identity grid, as gdal_translate gives such a window), or is a
    slice of such a cut, or a cut of such a slice (:func:`hsad.cube.subset.current_window`):
    not flipped or strided, nor cut after a flip."""
    from hsad.cube import WINDOW_GRID_ATTR, transform_of
    from hsad.cube.subset import current_window

    if transform_of(cube) == Affine.identity():
        return True
    cut = cube.attrs.get(WINDOW_GRID_ATTR)
    try:  # cut on the pixel grid or on a slice of it (a whole-pixel shift)
        grid = Affine(*cut[:6])
    except (TypeError, ValueError):
        return False
    return (grid.a, grid.b, grid.d, grid.e) == (1.0, 0.0, 0.0, 1.0) and \
        current_window(cube) is not None


def scene_classes(cube: xr.DataArray) -> np.ndarray | None:
    """:func:`weather_classes` of the NEON file ``cube`` was read from, on ``cube``'s pixels:
    placed by the file's grid as the cube is (a window, a slice of it), or by the window
    hsad cut where the file has no grid, moved by a slice taken since
    (:func:`hsad.cube.placement.on_scene_grid`, :func:`hsad.cube.subset.current_window`; a cube on
    neither is a ParameterError); None without the layer."""
    from hsad.cube import georeferenced, transform_of
    from hsad.cube.placement import on_scene_grid
    from hsad.io.neon import open_neon

    what = "NEON's weather quality indicator"
    path = cube.attrs.get("source_path")
    if not path:
        raise ParameterError(f"the cube names no NEON file (source_path) to read {what} "
                             "from")
    with warnings.catch_warnings():  # said when the scene was opened
        warnings.simplefilter("ignore")
        whole = open_neon(path)[:, :, 0]  # the file's grid (nothing of it read)
    if not georeferenced(transform_of(whole), whole.rio.crs) and not _on_pixel_grid(cube):
        raise ParameterError(f"{what} cannot be placed on the scene: a NEON file without a "
                             "grid (Map_Info), sliced or flipped after it was opened; cut it "
                             "with --srcwin or hsad.cube.subset.spatial_subset instead", path)
    classes = weather_classes(path, whole.attrs["site"], (whole.sizes["y"], whole.sizes["x"]))
    if classes is None:
        return None
    return on_scene_grid(classes, whole, cube, what, path)


def quality_valid(cube: xr.DataArray, flags) -> np.ndarray | None:
    """(y, x) bool map of ``cube``'s pixels that none of ``flags`` (:data:`FLAGS`) marks;
    None for no flags. A file without the layer is a FileFormatError."""
    if not flags:
        return None
    classes = scene_classes(cube)
    if classes is None:
        raise FileFormatError(f"the NEON file has no {LAYER.rsplit('/', 1)[1]} for "
                              f"--exclude-quality {','.join(flags)}",
                              cube.attrs.get("source_path"))
    if not (classes > 0).any():
        warnings.warn(f"{cube.attrs.get('source_path')}: {NO_CLASS}; --exclude-quality "
                      f"{','.join(flags)} leaves out nothing", UserWarning, stacklevel=3)
    return ~np.isin(classes, [FLAGS[f] for f in flags])



def shares(classes: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float] | None:
    """Percentages of the classed pixels (of those ``valid`` keeps) in each class: ``clear``,
    ``partlycloudy``, ``mostlycloudy``; None where none is classed."""
    kept = classes if valid is None else classes[valid]
    kept = kept[kept > 0]
    if not kept.size:
        return None
    counts = np.bincount(kept.ravel(), minlength=4)[1:]
    share = 100.0 * counts / counts.sum()
    return {"clear": float(share[0]), "partlycloudy": float(share[1]),
            "mostlycloudy": float(share[2])}


def cover_note(cube: xr.DataArray, valid: np.ndarray | None = None,
               threshold: float = 1.0) -> str | None:
    """A line telling how much of a NEON scene (its pixels ``valid`` keeps, and the layer
    classes) was flown under 10 % cloud cover or more, when that is at least ``threshold``
    % (None otherwise, and without the layer); a layer that cannot be read is said too."""
    try:
        classes = scene_classes(cube)
    except HsadError as exc:
        return (f"{exc.problem}: the cloud cover its pixels were flown under is not known "
                "(--exclude-quality none keeps this file without this warning)")
    found = None if classes is None else shares(classes, valid)
    parts = [(CLASSES[FLAGS[flag]], found[flag]) for flag in FLAGS if found and found[flag]]
    if sum(v for _, v in parts) < threshold:
        return None
    said = " and ".join(f"{v:.3g} %{' were flown' if i == 0 else ''} under {what}"
                        for i, (what, v) in enumerate(parts))
    return (f"NEON's weather quality indicator: of the scene's pixels it classes, {said} "
            "cloud cover; those pixels are analysed: --exclude-quality "
            "partlycloudy,mostlycloudy leaves them out (NEON advises clear-sky pixels), "
            "--exclude-quality none keeps them without this warning")


__all__ = ["CLASSES", "FLAGS", "LAYER", "NO_CLASS", "cover_note", "quality_valid",
           "scene_classes", "shares", "weather_classes"]
