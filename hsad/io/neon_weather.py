"""NEON's weather quality indicator: the cloud cover each pixel was flown under.

NEON's flight crews record the cloud cover of each flight line, and the reflectance files
carry it per pixel in ``<SITE>/Reflectance/Metadata/Ancillary_Imagery/
Weather_Quality_Indicator``, coded as NEON's tutorials describe:

- bidirectional files (DP1.30006.002, DP3.30006.002): one band, 1 (under 10 % cloud
  cover), 2 (10–50 %), 3 (over 50 %);
- directional files (.001): three bands in NEON's stop-light colours, green (0, 255, 0),
  yellow (255, 255, 0) and red (255, 0, 0) for the same classes.

0, black and the layer's ``Data_Ignore_Value`` give no class (the pixel is flagged by
nothing); any other value is a FileFormatError, never a guess. NEON advises analysing the
clear-sky pixels only: ``--exclude-quality partlycloudy,mostlycloudy``
(:mod:`hsad.io.quality`).
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import xarray as xr

from hsad.errors import FileFormatError
from hsad.io.hdf5_file import H5_ERRORS, number_attr

LAYER = "Reflectance/Metadata/Ancillary_Imagery/Weather_Quality_Indicator"
#: flag → the class it leaves out
FLAGS = {"partlycloudy": 2, "mostlycloudy": 3}
#: class → the cloud cover it stands for
CLASSES = {1: "less than 10 %", 2: "10–50 %", 3: "more than 50 %"}
_COLOURS = {(0, 255, 0): 1, (255, 255, 0): 2, (255, 0, 0): 3, (0, 0, 0): 0}


def _from_codes(values: np.ndarray, ignore: float | None, path: str) -> np.ndarray:
    """Classes of a one-band layer coded 1, 2, 3 (0 and ``ignore``: none)."""
    values = np.asarray(values, np.float64)
    none = ~np.isfinite(values) | (values == 0)
    if ignore is not None:
        none |= values == ignore
    odd = ~none & ~np.isin(values, (1, 2, 3))
    if odd.any():
        raise FileFormatError(f"its Weather_Quality_Indicator holds {values[odd][0]:g}, not "
                              "one of NEON's classes 1, 2, 3", path)
    return np.where(none, 0, values).astype(np.int8)


def _from_colours(values: np.ndarray, ignore: float | None, path: str) -> np.ndarray:
    """Classes of a three-band layer in NEON's stop-light colours (black, ``ignore``: none)."""
    values = np.asarray(values, np.float64)
    classes = np.full(values.shape[:2], -1, np.int8)
    for colour, code in _COLOURS.items():
        classes[(values == colour).all(axis=-1)] = code
    none = ~np.isfinite(values).all(axis=-1)
    if ignore is not None:
        none |= (values == ignore).any(axis=-1)
    classes[none] = 0
    if (classes < 0).any():
        colour = tuple(int(v) for v in values[classes < 0][0])
        raise FileFormatError(f"its Weather_Quality_Indicator holds the colour {colour}, not "
                              "one of NEON's green, yellow, red", path)
    return classes


def weather_classes(path: str | os.PathLike, site: str, shape: tuple[int, int]
                    ) -> np.ndarray | None:
    """The (rows, cols) int8 classes (1, 2, 3; 0 for none) of a NEON file whose cube is
    ``shape``; None when the file has no weather quality indicator."""
    p = os.fspath(path)
    try:
        with h5py.File(p, "r") as f:
            var = f.get(f"{site}/{LAYER}")
            if not isinstance(var, h5py.Dataset):
                return None
            ignore = number_attr(var.attrs, "Data_Ignore_Value", p, "Weather_Quality_Indicator")
            if var.dtype.kind not in "iuf" or var.ndim not in (2, 3):
                raise FileFormatError(f"its Weather_Quality_Indicator is not a numeric raster "
                                      f"({var.dtype}, {var.ndim} dimensions)", p)
            values = var[()]
    except FileFormatError:
        raise
    except H5_ERRORS as exc:
        raise FileFormatError(f"its Weather_Quality_Indicator is not readable "
                              f"({type(exc).__name__}: {exc})", p) from exc
    rows, cols = shape
    if values.shape == (rows, cols):
        return _from_codes(values, ignore, p)
    if values.shape == (rows, cols, 3):
        return _from_colours(values, ignore, p)
    if values.shape == (3, rows, cols):
        return _from_colours(np.moveaxis(values, 0, -1), ignore, p)
    raise FileFormatError(f"its Weather_Quality_Indicator is {'x'.join(map(str, values.shape))}"
                          f", not the cube's {rows}x{cols} pixels (with 1 or 3 bands)", p)


def scene_classes(cube: xr.DataArray) -> np.ndarray | None:
    """:func:`weather_classes` of the NEON file ``cube`` was read from, on ``cube``'s pixels
    (cut to its window, :func:`hsad.subset.on_scene_grid`); None without the layer."""
    from hsad.subset import WINDOW_ATTR, on_scene_grid

    path = cube.attrs.get("source_path")
    window = cube.attrs.get(WINDOW_ATTR)
    shape = tuple(window[2:]) if window is not None else (cube.sizes["y"], cube.sizes["x"])
    classes = weather_classes(path, cube.attrs.get("site", ""), shape)
    if classes is None:
        return None
    return on_scene_grid(classes, None, cube, "NEON's weather quality indicator", path)


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
    return ~np.isin(classes, [FLAGS[f] for f in flags])


def cover(cube: xr.DataArray) -> dict[str, float] | None:
    """Percentages of ``cube``'s classed pixels flown under each cloud cover: ``clear``,
    ``partlycloudy``, ``mostlycloudy``; None without the layer or a classed pixel."""
    classes = scene_classes(cube)
    if classes is None or not (classes > 0).any():
        return None
    counts = np.bincount(classes[classes > 0].ravel(), minlength=4)[1:]
    share = 100.0 * counts / counts.sum()
    return {"clear": float(share[0]), "partlycloudy": float(share[1]),
            "mostlycloudy": float(share[2])}


def cover_note(cube: xr.DataArray, threshold: float = 1.0) -> str | None:
    """A line telling how much of a NEON scene was flown under 10 % cloud cover or more,
    when that is at least ``threshold`` % of it (None otherwise); a layer that cannot be
    read is said too."""
    try:
        shares = cover(cube) or {}
    except FileFormatError as exc:
        return (f"{exc.problem}: the cloud cover its pixels were flown under is not known "
                "(--exclude-quality none keeps this file without this warning)")
    parts = [(CLASSES[FLAGS[flag]], shares[flag]) for flag in FLAGS if shares.get(flag)]
    if sum(v for _, v in parts) < threshold:
        return None
    said = " and ".join(f"{v:.3g} %{' of the scene was flown' if i == 0 else ''} under {what}"
                        for i, (what, v) in enumerate(parts))
    return (f"NEON's weather quality indicator: {said} cloud cover; those pixels are "
            "analysed: --exclude-quality partlycloudy,mostlycloudy leaves them out (NEON "
            "advises clear-sky pixels), --exclude-quality none keeps them without this warning")


__all__ = ["CLASSES", "FLAGS", "LAYER", "cover", "cover_note", "quality_valid",
           "scene_classes", "weather_classes"]
