"""Several scenes as one cube to fit a detector on: :func:`training_mosaic`.

A campaign's flight lines, or several acquisitions of one sensor, give one model when their
pixels are learnt together (``hsad train a.hdr b.hdr -o campaign.hsad``). The scenes are
laid side by side, left to right, in one lazy cube (or one below the other, where that
pads less): smaller scenes padded with no data, and the scenes kept apart by ``gap``
columns (rows) of no data, so that no window or patch (a detector's spatial context) holds
pixels of two scenes. Pixels without data (a scene's
nodata value, NaN, its valid mask) are NaN in the mosaic, so a detector samples and counts
the valid pixels of every scene as it would one scene's: each scene weighs by its number of
valid pixels.

The scenes must hold the same bands: as many, at the same wavelengths (within
:data:`~hsad.detectors.scene_checks.WAVELENGTH_REFUSE_NM`, warned beyond
:data:`~hsad.detectors.scene_checks.WAVELENGTH_WARN_NM`), stored with the same gains (a band's
value means the same in every scene). A band bad in one scene is bad in the mosaic. The
mosaic has no georeference: it is something to learn from, not a map.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr
from dask.base import tokenize

from hsad.cube import (
    DEFAULT_CHUNK,
    as_cube,
    good_band_mask,
    make_cube,
    missing_values,
    physical_scaling,
)
from hsad.detectors.scene_checks import WAVELENGTH_REFUSE_NM, WAVELENGTH_WARN_NM, wavelength_shift
from hsad.errors import ParameterError
from hsad.io.window import ComputedView, array_over, computed_window

#: pixels of each scene looked at for data (64 windows of 8 × 8, evenly spread)
EMPTY_SAMPLE = 4096
#: hyperparameters that set a detector's spatial context, in pixels (a window's edge)
CONTEXT_PARAMS = ("kernel", "outer", "window")


def context_of(detector) -> int:
    """The widest window or patch ``detector`` looks through (1 for a pixel detector; a
    network's ``patch_size``): a gap this wide keeps every window inside one scene."""
    params = detector.get_params() if hasattr(detector, "get_params") else {}
    sizes = [params.get(k) for k in CONTEXT_PARAMS] + [getattr(detector, "patch_size", 1)]
    return max([1, *(int(v) for v in sizes if isinstance(v, (int, np.integer)))])


def _name(cube: xr.DataArray, i: int) -> str:
    return str(cube.attrs.get("source_path") or f"scene {i + 1}")


def _check_bands(cubes: list[xr.DataArray]) -> np.ndarray:
    """The mosaic's good bands; ParameterError where a scene's bands are not the first's."""
    first, name = cubes[0], _name(cubes[0], 0)
    n = first.sizes["band"]
    wavelengths = np.asarray(first["wavelength"].values, np.float64)
    scaling = physical_scaling(first)
    good = good_band_mask(first).copy()
    for i, cube in enumerate(cubes[1:], 1):
        other = _name(cube, i)
        if cube.sizes["band"] != n:
            raise ParameterError(f"{cube.sizes['band']} bands, where {name} has {n}: select "
                                 "the same bands in every scene (--wavelengths, --bands)", other)
        theirs = np.asarray(cube["wavelength"].values, np.float64)
        if np.isfinite(theirs).any() != np.isfinite(wavelengths).any():
            has, lacks = (other, name) if np.isfinite(theirs).any() else (name, other)
            raise ParameterError(f"{has} has wavelengths and {lacks} none: the bands cannot be "
                                 "matched (give both the same with --wavelength-file)", other)
        shift = wavelength_shift(theirs, wavelengths)
        if shift > WAVELENGTH_REFUSE_NM:
            raise ParameterError(f"wavelengths differ from {name}'s by up to {shift:.1f} nm "
                                 f"(> {WAVELENGTH_REFUSE_NM:g} nm): another band set", other)
        if shift > WAVELENGTH_WARN_NM:
            warnings.warn(f"{other}: wavelengths differ from {name}'s by up to {shift:.1f} nm",
                          UserWarning, stacklevel=3)
        if not _same_scaling(physical_scaling(cube), scaling, n):
            raise ParameterError(f"values stored with other gains or offsets than {name}'s: "
                                 "a band's numbers would mean different things (convert the "
                                 "scenes to one scale first)", other)
        good &= good_band_mask(cube)
    if not good.any():
        raise ParameterError("no band is good in every scene (each scene's bad-band list "
                             "leaves out a different part)", name)
    return good


def _same_scaling(a, b, n: int) -> bool:
    identity = (np.ones(n), np.zeros(n))
    a, b = a or identity, b or identity
    return all(np.allclose(x, y, rtol=1e-6, atol=0) for x, y in zip(a, b, strict=True))


def _good_samples(cubes, good: np.ndarray) -> list[np.ndarray]:
    """An even sample of each scene's good bands (:func:`hsad.engine.sampling.even_sample`,
    no pass over the scene), which the checks below share."""
    from hsad.engine.sampling import even_sample

    return [even_sample(cube.data, EMPTY_SAMPLE)[:, np.flatnonzero(good)] for cube in cubes]


def _warn_empty(cubes, regions, samples: list[np.ndarray]) -> None:
    """Warn of a scene that adds no pixel: its region empty, or no valid pixel in its
    even sample."""
    for i, (cube, region, sample) in enumerate(zip(cubes, regions, samples, strict=True)):
        if region is not None and not np.asarray(region).any():
            why = "its training area holds none of its pixels"
        else:
            if not (~missing_values(sample, cube.attrs.get("nodata")).any(axis=-1)).any():
                why = "no pixel of a sample of it holds data in every good band"
            else:
                continue
        warnings.warn(f"{_name(cube, i)}: adds nothing to the training: {why}", UserWarning,
                      stacklevel=3)


def _warn_scales(cubes, samples: list[np.ndarray]) -> None:
    """Warn of a scene whose values lie on another scale than the first scene's (its
    median band's level :data:`~hsad.detectors.level_check.LEVEL_RATIO` times larger or
    smaller: reflectance × 10000 beside reflectance), from the even sample of each: pooled,
    the model describes neither scene."""
    from hsad.detectors.level_check import LEVEL_RATIO

    levels = []
    for cube, sample in zip(cubes, samples, strict=True):
        sample = np.where(missing_values(sample, cube.attrs.get("nodata")), np.nan,
                          np.abs(np.asarray(sample, dtype=np.float64)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN band: no level
            levels.append(np.nanmedian(sample, axis=0))
    for i in range(1, len(cubes)):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float(np.nanmedian(levels[i] / levels[0]))
        if np.isfinite(ratio) and ratio > 0 and max(ratio, 1 / ratio) > LEVEL_RATIO:
            warnings.warn(f"{_name(cubes[i], i)}: its values lie about {ratio:.3g}× those of "
                          f"{_name(cubes[0], 0)} in the median band: another unit or scale "
                          "factor (reflectance × 10000); a model of both describes neither: "
                          "convert them to one unit first", UserWarning, stacklevel=3)


class _MosaicView(ComputedView):
    """The scenes' values placed in one ``(y, x, band)`` frame, NaN elsewhere and on their
    pixels without data in a ``good`` band. Each read computes the windows of the scenes it
    covers alone, so a sample of the mosaic reads only its pixels, as one scene's would
    (a dask operation on the scenes would read whole chunks for any slice)."""

    def __init__(self, parts, shape, dtype, good: np.ndarray):
        self.parts = parts  # (dask array, nodata, row offset, column offset) per scene
        self.shape, self.dtype, self.good = tuple(shape), np.dtype(dtype), np.flatnonzero(good)

    def _raws(self) -> list:
        return [raw for raw, *_ in self.parts]

    def _window(self, rows, cols, bands):
        spans = [range(*k.indices(n)) for k, n in zip((rows, cols), self.shape[:2], strict=True)]
        out = np.full((len(spans[0]), len(spans[1]), bands.size), np.nan, self.dtype)
        if not (spans[0] and spans[1]):
            return out
        need = np.union1d(bands, self.good)  # a pixel's validity needs every good band
        for raw, nodata, r0, c0 in self.parts:
            at = [np.asarray(span) - offset for span, offset in zip(spans, (r0, c0),
                                                                      strict=True)]
            inside = [(a >= 0) & (a < n) for a, n in zip(at, raw.shape[:2], strict=True)]
            if not (inside[0].any() and inside[1].any()):
                continue
            ys, xs = (a[i] for a, i in zip(at, inside, strict=True))
            values = computed_window(raw, slice(ys.min(), ys.max() + 1),
                                     slice(xs.min(), xs.max() + 1),
                                     need)[np.ix_(ys - ys.min(), xs - xs.min())]
            part = values[..., np.searchsorted(need, bands)].astype(self.dtype)
            part[missing_values(values[..., np.searchsorted(need, self.good)],
                                nodata).any(axis=-1)] = np.nan
            out[np.ix_(np.flatnonzero(inside[0]), np.flatnonzero(inside[1]))] = part
        return out


def training_mosaic(cubes: Sequence, regions: Sequence | None = None, gap: int = 1
                    ) -> tuple[xr.DataArray, np.ndarray | None]:
    """``cubes`` side by side (or one below the other) in one lazy cube, and ``regions``
    (one ``(y, x)`` bool map or None per cube: the pixels to learn from, None = all) as one
    map of the mosaic (None when every region is None).

    ``gap``: columns (rows) of no data between two scenes (:func:`context_of` a detector). Float32
    unless a scene needs float64 (float64, or 32-bit integers). One cube is returned as it
    is. ParameterError where the scenes' bands differ (module docstring).
    """
    cubes = [as_cube(c) for c in cubes]
    regions = [None] * len(cubes) if regions is None else list(regions)
    if not cubes or len(regions) != len(cubes):
        raise ParameterError(f"{len(cubes)} scenes and {len(regions)} regions: one region "
                             "(or None) per scene")
    if len(cubes) == 1:
        return cubes[0], None if regions[0] is None else np.asarray(regions[0], dtype=bool)
    good = _check_bands(cubes)
    samples = _good_samples(cubes, good)
    _warn_empty(cubes, regions, samples)
    _warn_scales(cubes, samples)
    wide = any(c.dtype == np.float64 or (c.dtype.kind in "iu" and c.dtype.itemsize >= 4)
               for c in cubes)
    dtype = np.dtype(np.float64 if wide else np.float32)
    shapes = [(c.sizes["y"], c.sizes["x"]) for c in cubes]
    # side by side, or one below the other where that pads less (long flight lines: side)
    axis = 0 if (sum(h for h, _ in shapes) * max(w for _, w in shapes)
                 < max(h for h, _ in shapes) * sum(w for _, w in shapes)) else 1
    across = 1 - axis
    extent = max(shape[across] for shape in shapes)
    n_bands = cubes[0].sizes["band"]
    gap = max(int(gap), 1)
    parts, maps, at = [], [], 0
    for i, (cube, shape) in enumerate(zip(cubes, shapes, strict=True)):
        offset = [0, 0]
        offset[axis] = at
        parts.append((cube.data, cube.attrs.get("nodata"), *offset))
        at += shape[axis] + gap
        region = np.ones(shape, bool) if regions[i] is None else np.asarray(regions[i], bool)
        if region.shape != shape:
            raise ParameterError(f"region shape {region.shape} does not match the scene's "
                                 f"{shape}", _name(cube, i))
        padding = [(0, 0), (0, 0)]
        padding[across] = (0, extent - shape[across])
        padding[axis] = (0, gap if i < len(cubes) - 1 else 0)
        maps.append(np.pad(region, padding))
    size = [extent, extent, n_bands]
    size[axis] = at - gap
    view = _MosaicView(parts, size, dtype, good)
    data = array_over(view, (DEFAULT_CHUNK, DEFAULT_CHUNK, -1),
                      "mosaic-" + tokenize(parts, size, dtype, good))
    first = cubes[0]
    band_names = first["band_name"].values if "band_name" in first.coords else None
    mosaic = make_cube(data, wavelength=first["wavelength"].values, fwhm=first["fwhm"].values,
                       good_band=good, band_names=band_names, source_format="mosaic",
                       source_path=" + ".join(_name(c, i) for i, c in enumerate(cubes)),
                       attrs={"scenes": [_name(c, i) for i, c in enumerate(cubes)]})
    for coord in ("band_scale", "band_offset"):
        if coord in first.coords:
            mosaic = mosaic.assign_coords({coord: ("band", first[coord].values)})
    if "band" in first.coords:  # the files' band numbers (a model records them), not 1 … B
        mosaic = mosaic.assign_coords(band=first["band"].values)
    for key in ("reflectance_scale_factor", "scale_applied", "units"):
        if key in first.attrs:
            mosaic.attrs[key] = first.attrs[key]
    region = None if all(r is None for r in regions) else np.concatenate(maps, axis=axis)
    return mosaic, region


__all__ = ["context_of", "CONTEXT_PARAMS", "EMPTY_SAMPLE", "training_mosaic"]
