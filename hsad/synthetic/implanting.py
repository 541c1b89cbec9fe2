"""Targets implanted into a real background: size, abundance and count under control.

Ten labelled scenes show few target sizes. :func:`implant` places square targets of one size
class into a real cube (away from its labelled anomalies and from each other) by linear
mixing, ``x ← (1 − a)·x + a·t``:

- ``subpixel``: one pixel at abundance ``a`` drawn from ``abundance`` (default 0.1–1);
- ``1x1``, ``3x3``, ``7x7``, ``15x15`` (the standard classes, :data:`SIZES`), or any other
  square ``"NxN"``: full squares at ``a = 1``.

Target spectra come from elsewhere: the labelled objects of other scenes
(:func:`object_spectra`), a spectral library or any ``(n, B)`` array, put on the scene's
bands by wavelength (:func:`resample_spectra`). Each implanted spectrum is its material's
shape scaled to the scene's mean brightness times a factor drawn from ``brightness``, so
scenes in DN, radiance or reflectance all get targets that differ in shape, not only in
level. Seeded: the same arguments give the same scene.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage

from hsad.cube import as_cube, good_band_mask, valid_mask
from hsad.cube.array_types import CubeLike  # the annotations only: costs nothing at run time
from hsad.errors import ParameterError
from hsad.io.wavelength_units import wavelength_scale

#: the standard size classes and their square edge in pixels
SIZES = {"subpixel": 1, "1x1": 1, "3x3": 3, "7x7": 7, "15x15": 15}
#: random placements tried before "no room" (one placement, target by target, can leave no
#: room for the last targets where another would: four 7x7 in 20x20 jammed 64 times in 100)
PLACEMENT_TRIES = 20


def target_edge(size: str) -> int:
    """The square edge in pixels of size class ``size``: one of :data:`SIZES`, or ``"NxN"``
    for any N ≥ 1."""
    if size in SIZES:
        return SIZES[size]
    match = re.fullmatch(r"(\d+)x(\d+)", str(size))
    if match is None or match[1] != match[2] or int(match[1]) < 1:
        raise ParameterError(f"size must be one of {', '.join(SIZES)} or a square NxN "
                             f"(e.g. 11x11), got {size!r}")
    return int(match[1])


@dataclass
class Implanted:
    """A cube with implanted targets and its ground truth."""

    cube: xr.DataArray
    #: (y, x) implanted pixels
    implanted: np.ndarray
    #: (y, x) ground truth: implanted pixels or labelled anomalies (``exclude``); float32
    #: with NaN on the pixels ``exclude`` left unlabelled, when it had any (else bool)
    truth: np.ndarray
    #: one dict per target: row, col (top-left), edge, abundance, material, brightness
    targets: list[dict] = field(default_factory=list)


def object_spectra(cube: xr.DataArray, truth, min_pixels: int = 1) -> np.ndarray:
    """Mean spectrum of each connected labelled object of ``truth`` (8-connected), ``(n, B)``;
    NaN in ``truth`` is unlabelled, not an object."""
    labelled = np.nan_to_num(np.asarray(truth, dtype=np.float64)) != 0
    labels, n = ndimage.label(labelled, structure=np.ones((3, 3)))
    if n == 0:
        return np.empty((0, cube.sizes["band"]))
    x = np.asarray(cube.transpose("y", "x", "band").values, dtype=np.float64)
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)[1:]
    sums = np.stack([np.bincount(flat, weights=x[..., b].ravel(), minlength=n + 1)[1:]
                     for b in range(x.shape[2])], axis=1)
    keep = counts >= min_pixels
    return sums[keep] / counts[keep, None]


def resample_spectra(spectra: np.ndarray, from_wl, to_wl) -> np.ndarray:
    """Spectra sampled at ``from_wl`` put on ``to_wl`` by linear interpolation (clamped at the
    ends). Wavelengths below 100 are taken as micrometres, as the readers take them, so a
    library in µm goes onto a cube's nm bands; ranges that do not overlap at all are refused.
    Unknown wavelengths (NaN) on either side: matched by relative band position."""
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    src = np.asarray(from_wl, dtype=np.float64)
    dst = np.asarray(to_wl, dtype=np.float64)
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        src = np.linspace(0.0, 1.0, spectra.shape[1])
        dst = np.linspace(0.0, 1.0, dst.size)
    else:
        src, dst = (w * wavelength_scale(None, w) for w in (src, dst))
        if dst.max() < src.min() or dst.min() > src.max():
            raise ParameterError(
                f"the spectra's wavelengths ({src.min():g}–{src.max():g} nm) and the bands' "
                f"({dst.min():g}–{dst.max():g} nm) do not overlap: nothing to resample")
    order = np.argsort(src)
    return np.stack([np.interp(dst, src[order], s[order]) for s in spectra])


def _free_corners(occupied: np.ndarray, edge: int, margin: int,
                  blocked: np.ndarray | None = None) -> np.ndarray:
    """(y, x) bool map of top-left corners whose ``edge``-square, grown by ``margin``, meets
    no occupied pixel, covers no ``blocked`` pixel (nodata) and lies inside the scene
    (window sums of an integral image)."""
    rows, cols = occupied.shape
    if edge > rows or edge > cols:
        return np.zeros((rows, cols), bool)
    margin = min(int(margin), max(rows, cols))  # beyond the scene: the same, in its size
    grown = ndimage.binary_dilation(occupied, np.ones((2 * margin + 1,) * 2)) if margin else \
        occupied
    if blocked is not None:
        grown = grown | blocked
    ii = np.pad(grown.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    e = edge
    window = ii[e:, e:] - ii[:-e, e:] - ii[e:, :-e] + ii[:-e, :-e]
    free = np.zeros((rows, cols), bool)
    free[:rows - e + 1, :cols - e + 1] = window == 0
    return free


def _neighbour_differences(x: np.ndarray, occupied: np.ndarray, edge: int,
                           rng: np.random.Generator, good: np.ndarray) -> np.ndarray:
    """``(edge, edge, G)`` differences ``(x_p − x_q)/√2``, in the ``good`` bands, of random
    horizontally adjacent pixel pairs (p, q) that hold data and are neither labelled nor
    implanted: the scene's noise and texture, centred. ``occupied`` includes the nodata
    pixels."""
    ok = ~occupied
    pairs = np.flatnonzero((ok[:, :-1] & ok[:, 1:]).ravel())
    if pairs.size == 0:
        raise ParameterError("texture needs two adjacent background pixels")
    rows, cols = np.divmod(rng.choice(pairs, edge * edge), x.shape[1] - 1)
    diff = (x[rows, cols][:, good] - x[rows, cols + 1][:, good]) / np.sqrt(2.0)
    return diff.reshape(edge, edge, -1).astype(np.float32)


def _pair(key: str, value) -> tuple[float, float]:
    """``value`` as a (low, high) pair of floats, or a ParameterError naming ``key``."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ParameterError(f"{key} must be a (low, high) pair of numbers, got {value!r}"
                             ) from None
    return lo, hi


def _check_ranges(abundance, brightness, count, margin, seed) -> None:
    """ParameterError unless the ranges and counts are what :func:`implant` can use."""
    lo, hi = _pair("abundance", abundance)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ParameterError(f"abundance must be a range within [0, 1] (linear mixing "
                             f"fractions), got {tuple(abundance)}")
    lo, hi = _pair("brightness", brightness)
    if not 0.0 < lo <= hi < np.inf:
        raise ParameterError(f"brightness must be a positive range, got {tuple(brightness)}")
    for key, v in (("count", count), ("margin", margin), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ParameterError(f"{key} must be an integer ≥ 0, got {v!r}")


def implant(cube: CubeLike, spectra, size: str = "3x3", count: int = 10,
            abundance: tuple[float, float] = (0.1, 1.0), exclude=None, margin: int = 2,
            brightness: tuple[float, float] = (0.8, 1.25), seed: int = 0,
            texture: bool = False) -> Implanted:
    """Implant ``count`` targets of size class ``size`` (:data:`SIZES`, or any square
    ``"NxN"``: :func:`target_edge`) into ``cube``.

    ``cube``: a cube, or a ``(rows, cols, bands)`` array (:func:`hsad.cube.as_cube`);
    ``spectra``: ``(n, B)`` target spectra on the cube's bands (each target draws one);
    ``exclude``: (y, x) labelled anomalies (non-zero), kept ``margin`` pixels away from and
    added to the truth; NaN in it marks pixels unlabelled (as
    :func:`hsad.datasets.load_labelled` gives a truth with holes): no target covers them,
    and the truth is then float32 with NaN there, which the metrics leave out;
    ``abundance``: the range of sub-pixel abundances; ``brightness``: the range of the
    target's mean level relative to the scene's; ``texture``: each target pixel also gets
    the scene's own pixel-to-pixel variation, ``(x_p − x_q)/√2`` of a random pair of
    horizontally adjacent background pixels, so that a large target is not a perfectly
    tight cluster (without it, every pixel of a target is one spectrum). Texture is not
    clipped: where a band's target level is below the scene's variation, target values go
    negative (1–2 % of them for 3x3 to 15x15 targets in abu-urban-1, down to −1141 DN; the
    scene's own minimum is −50), as noise on a dark band does.

    Targets cover only pixels that hold data (:func:`hsad.cube.valid_mask`: neither NaN nor
    the cube's nodata), and the scene's mean level is that of those pixels in the good
    bands; the bad bands (``good_band`` False: fill values, water vapour) are left as they
    were, and a spectrum's level is its mean over the good bands. The cube comes
    back as float32 (lazy if it was lazy), its nodata pixels unchanged. Raises
    ParameterError for parameters out of range (abundances within [0, 1], brightness > 0,
    ``count``, ``margin`` and ``seed`` non-negative integers, ``exclude`` of the scene's
    shape) and when the scene has no room for the targets in any of
    :data:`PLACEMENT_TRIES` random placements (the first is the seed's own; the others
    are tried only when it jams).
    """
    edge = target_edge(size)
    lazy = isinstance(getattr(cube, "data", cube), da.Array)
    cube = as_cube(cube)
    rows, cols, bands = cube.shape
    _check_ranges(abundance, brightness, count, margin, seed)
    if exclude is not None and np.shape(exclude) != (rows, cols):
        raise ParameterError(f"exclude must be a ({rows}, {cols}) map like the scene, got "
                             f"shape {np.shape(exclude)}")
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    good = good_band_mask(cube)
    if spectra.shape[1] != bands or len(spectra) == 0 or \
            not np.isfinite(spectra[:, good]).all():
        raise ParameterError(f"spectra must be (n, {bands}), finite in the good bands; got "
                             f"{spectra.shape}")
    means = spectra[:, good].mean(axis=1)
    if (means <= 0).any():
        raise ParameterError("target spectra must have a positive mean level (over the good "
                             "bands)")
    rng = np.random.default_rng(seed)
    texture_rng = np.random.default_rng([seed, 1])  # its own stream: same placement either way
    labels = None if exclude is None else np.asarray(exclude, dtype=np.float64)
    unlabelled = np.zeros((rows, cols), bool) if labels is None else np.isnan(labels)
    labelled = np.nan_to_num(labels) != 0 if labels is not None else unlabelled.copy()
    nodata = ~np.asarray(valid_mask(cube).values, dtype=bool)
    original = np.array(cube.values, dtype=np.float32)
    if nodata.all():
        raise ParameterError("the scene has no valid pixel to implant into")
    level = float(original[~nodata][:, good].mean(dtype=np.float64))
    most = 0
    for attempt in range(PLACEMENT_TRIES):  # a random placement can jam: place anew
        x, implanted, targets = original.copy(), np.zeros((rows, cols), bool), []
        occupied = labelled | unlabelled  # no target on an unlabelled pixel either
        for _ in range(int(count)):
            free = np.flatnonzero(_free_corners(occupied, edge, margin, nodata))
            if free.size == 0:
                break
            r, c = divmod(int(rng.choice(free)), cols)
            material = int(rng.integers(len(spectra)))
            gain = float(rng.uniform(*brightness))
            a = float(rng.uniform(*abundance)) if size == "subpixel" else 1.0
            t = (spectra[material, good] / means[material] * level * gain).astype(np.float32)
            if texture:
                t = t + _neighbour_differences(x, occupied | nodata, edge, texture_rng, good)
            window = (slice(r, r + edge), slice(c, c + edge))
            x[(*window, good)] = (1.0 - a) * x[(*window, good)] + a * t
            implanted[window] = True
            occupied[window] = True
            targets.append({"row": r, "col": c, "edge": edge, "abundance": a,
                            "material": material, "brightness": gain})
        if len(targets) == count:
            break
        most = max(most, len(targets))
        rng = np.random.default_rng([seed, 2, attempt])
        texture_rng = np.random.default_rng([seed, 1, attempt])
    else:
        advice = "use fewer or smaller targets" if most else "use smaller targets"
        raise ParameterError(f"no room for {count} {size} targets in a {rows}x{cols} scene "
                             f"(at most {most} placed in {PLACEMENT_TRIES} random "
                             f"placements; targets cover only pixels with data, "
                             f"{margin} pixels apart); {advice}")
    if lazy:  # lazy in, lazy out (the detectors stream it)
        x = da.from_array(x, chunks=cube.data.chunks)
    out = cube.copy(data=x)
    out.attrs = {**cube.attrs, "hsad_implanted": f"{len(targets)} {size} targets, seed {seed}"}
    truth = implanted | labelled
    if unlabelled.any():  # NaN where a pixel is unlabelled, as the metrics read it
        truth = np.where(unlabelled & ~implanted, np.nan, truth).astype(np.float32)
    return Implanted(cube=out, implanted=implanted, truth=truth, targets=targets)
