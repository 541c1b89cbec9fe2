"""A seeded synthetic hyperspectral scene with implanted sub-pixel targets (the demo scene).

Model (reflectance, 400–2500 nm, per pixel):
``x = (1 − f) · g · v · Σ_k a_k·e_k + f · t + n``

- ``e_k``: smooth background endmembers (vegetation, soil, dry grass, water); ``a_k``
  their abundances: softmax of Gaussian-filtered white noise (smooth fields summing to 1,
  patches of about ``patch`` pixels);
- ``v = 1 + variability · Σ_j φ_j(y, x)·ψ_j(λ)``: multiplicative spectral variability
  (smooth random fields times smooth random spectral shapes);
- ``g``: smooth illumination/topography factor, 1 ± 8 %;
- a road (a 2-pixel-wide asphalt line, 85 % cover): rare background that global RX
  flags too, which leaves room for better detectors;
- ``t``, ``f``: a target material (paint, metal roof, plastic) at fraction ``f`` in
  small clusters of 1–9 pixels; ``f = 0`` elsewhere;
- ``n``: band-correlated noise, AR(1) along the bands with correlation ``noise_rho``.

Water-vapour bands (1340–1460 nm, 1790–1960 nm) carry little signal and are marked
``good_band = False``. Georeferenced in UTM 33N (EPSG:32633), 30 m pixels.

The 2-D fields are made for the whole scene; the spectra are made lazily per
256×256 tile (dask), with the noise seeded by ``(seed, tile)``, so large scenes never
sit in memory at once and the same seed gives the same scene.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from scipy import ndimage

from hsad.cube import make_cube, map_like
from hsad.errors import ParameterError

#: Water-vapour absorption windows (nm) flagged as bad bands.
ABSORPTION_WINDOWS = ((1340.0, 1460.0), (1790.0, 1960.0))
#: Tile size (pixels) of the lazily generated cube.
TILE = 256


@dataclass
class Scene:
    """A synthetic cube, its ground truth and the implanted targets."""

    cube: xr.DataArray
    #: (y, x) bool map aligned with the cube: True on every pixel holding a target
    truth: xr.DataArray
    #: one dict per target cluster: id, material, fraction, row, col, pixels
    targets: list[dict] = field(default_factory=list)


def _bump(wl, centre, width, height=1.0):
    return height * np.exp(-0.5 * ((wl - centre) / width) ** 2)


def _sigmoid(wl, centre, width):
    return 1.0 / (1.0 + np.exp(-(wl - centre) / width))


def _water_absorption(wl):
    """Multiplicative atmospheric-like dips at 940, 1130, 1400 and 1900 nm."""
    dips = (_bump(wl, 940, 20, 0.25) + _bump(wl, 1130, 25, 0.3) + _bump(wl, 1400, 40, 0.9)
            + _bump(wl, 1900, 50, 0.95))
    return np.clip(1.0 - dips, 0.03, 1.0)


def background_endmembers(wl: np.ndarray) -> dict[str, np.ndarray]:
    """Smooth reflectance spectra resembling vegetation, soil, dry grass and water."""
    veg = (0.04 + _bump(wl, 550, 30, 0.06) + 0.42 * _sigmoid(wl, 715, 18)
           - 0.20 * _sigmoid(wl, 1300, 60) - 0.12 * _sigmoid(wl, 1850, 60)
           - _bump(wl, 1450, 60, 0.05) - _bump(wl, 1950, 70, 0.05))
    soil = (0.08 + 0.25 * _sigmoid(wl, 700, 250) - 0.07 * _sigmoid(wl, 2000, 150)
            - _bump(wl, 2200, 30, 0.03))
    grass = (0.08 + 0.22 * _sigmoid(wl, 650, 120) + _bump(wl, 1650, 250, 0.08)
             - _bump(wl, 2100, 40, 0.05) - _bump(wl, 2300, 40, 0.04))
    water = 0.02 + _bump(wl, 480, 80, 0.05) + 0.01 * np.exp(-(wl - 400) / 400)
    return {k: v * _water_absorption(wl) for k, v in
            {"vegetation": veg, "soil": soil, "dry_grass": grass, "water": water}.items()}


def target_materials(wl: np.ndarray) -> dict[str, np.ndarray]:
    """Man-made-like spectra: blue and red paint, metal roof, plastic sheet, and asphalt."""
    blue = (0.05 + _bump(wl, 460, 40, 0.25) + 0.25 * _sigmoid(wl, 850, 40)
            - _bump(wl, 2300, 60, 0.05))
    red = 0.04 + 0.35 * _sigmoid(wl, 610, 15) - _bump(wl, 1700, 60, 0.05)
    roof = 0.22 + 0.04 * np.sin(wl / 180.0) - _bump(wl, 880, 60, 0.06)
    plastic = (0.5 - _bump(wl, 1210, 20, 0.12) - _bump(wl, 1730, 25, 0.2)
               - _bump(wl, 2310, 30, 0.25))
    road = 0.07 + 0.06 * (wl - 400) / 2100
    return {k: v * _water_absorption(wl) for k, v in
            {"blue_paint": blue, "red_paint": red, "metal_roof": roof, "plastic": plastic,
             "asphalt": road}.items()}


def _smooth_field(rng, shape, sigma, count=1) -> np.ndarray:
    """``count`` Gaussian-filtered white-noise fields (float32), unit standard deviation."""
    f = rng.standard_normal((count, *shape), dtype=np.float32)
    f = ndimage.gaussian_filter(f, sigma=(0, sigma, sigma), mode="wrap")
    return f / f.std(axis=(1, 2), keepdims=True)


_SHAPES = [  # target footprints: offsets from the cluster's corner, 1..9 pixels
    [(0, 0)],
    [(0, 0), (0, 1)],
    [(0, 0), (1, 0), (1, 1)],
    [(0, 0), (0, 1), (1, 0), (1, 1)],
    [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)],
    [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)],
    [(r, c) for r in range(3) for c in range(3)],
]


def _free(occupied: np.ndarray, footprint: np.ndarray, r0: int, c0: int) -> bool:
    """Whether ``footprint`` at ``(r0, c0)`` keeps 2 pixels from everything occupied."""
    rr, cc = footprint[:, 0] + r0, footprint[:, 1] + c0
    return not occupied[rr.min() - 2:rr.max() + 3, cc.min() - 2:cc.max() + 3].any()


def _place_targets(rng, shape, n_targets, fraction, names, occupied, required=True):
    """Fraction and material-index maps, truth and the target list; beyond the first
    target, a count not ``required`` stops where the scene has no room left."""
    rows, cols = shape
    frac = np.zeros(shape, np.float32)
    material = np.full(shape, -1, np.int8)
    targets = []
    for i in range(n_targets):
        footprint = np.array(_SHAPES[rng.integers(len(_SHAPES))])
        for _ in range(500):
            r0, c0 = rng.integers(3, rows - 6), rng.integers(3, cols - 6)
            if _free(occupied, footprint, r0, c0):
                break
        else:  # a crowded scene: every place, in a seeded order, before giving up
            width = max(cols - 9, 0)
            order = rng.permutation(max(rows - 9, 0) * width)
            place = next(((3 + k // width, 3 + k % width) for k in order
                          if _free(occupied, footprint, 3 + k // width, 3 + k % width)), None)
            if place is None and targets and not required:
                break
            if place is None:
                raise ParameterError(f"no room for {n_targets} targets in a {rows}x{cols} "
                                     "scene (give fewer, n_targets, or a larger scene)")
            r0, c0 = place
        rr, cc = footprint[:, 0] + r0, footprint[:, 1] + c0
        occupied[rr, cc] = True
        f = float(rng.uniform(*fraction))
        frac[rr, cc] = f
        material[rr, cc] = i % len(names)
        targets.append({"id": i + 1, "material": names[i % len(names)], "fraction": round(f, 4),
                        "row": int(rr.mean().round()), "col": int(cc.mean().round()),
                        "pixels": len(rr)})
    return frac, material, targets


def _tile(seed, tile_index, abund, var_field, illum, road, frac, material, ems, var_shape,
          mats, asphalt, noise_factor) -> np.ndarray:
    """Spectra of one tile (float32, rows × cols × bands); noise = white · noise_factorᵀ."""
    h, w = illum.shape
    x = abund.reshape(len(abund), -1).T @ ems  # (pixels, bands)
    x *= 1.0 + var_field.reshape(len(var_field), -1).T @ var_shape
    x *= illum.reshape(-1, 1)
    road = road.reshape(-1)
    x[road] = 0.15 * x[road] + 0.85 * asphalt
    sel = frac.reshape(-1) > 0
    f = frac.reshape(-1)[sel][:, None]
    x[sel] = (1.0 - f) * x[sel] + f * mats[material.reshape(-1)[sel]]
    rng = np.random.default_rng([seed, *tile_index])
    x += rng.standard_normal(x.shape, dtype=np.float32) @ noise_factor.T
    return x.reshape(h, w, -1)


def _check_arguments(*, fraction, origin, texture, variability, patch, pixel_size,
                     **counts) -> None:
    """ParameterError for an argument of :func:`make_scene` no scene is made of (a
    ``texture`` of inf made every pixel NaN; ``n_targets=-1`` no target, in silence)."""
    for name, value in counts.items():
        if value is None and name == "n_targets":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0 \
                or (value > 2**32 - 1 and name != "seed"):  # NumPy takes any seed ≥ 0
            bound = "≥ 0" if name == "seed" else "from 0 to 2**32 - 1"
            raise ParameterError(f"{name} must be a whole number {bound}, got {value!r}")
    for name, pair in (("fraction", fraction), ("origin", origin)):
        values = np.asarray(pair, dtype=object).ravel() if not isinstance(pair, str) else ()
        if not (len(values) == 2 and np.ndim(pair) == 1 and all(
                isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                and np.isfinite(v) for v in values)):
            raise ParameterError(f"{name} must be a pair of finite numbers, got {pair!r}")
    for name, value, least in (("texture", texture, 0.0), ("variability", variability, 0.0),
                               ("patch", patch, 0.0), ("pixel_size", pixel_size, None)):
        if not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or (
                value < least if least is not None else value <= 0):
            bound = f"≥ {least:g}" if least is not None else "> 0"
            raise ParameterError(f"{name} must be a finite number {bound}, got {value!r}")


def make_scene(
    rows: int = 128,
    cols: int = 128,
    bands: int = 150,
    n_targets: int | None = None,
    fraction: tuple[float, float] = (0.1, 0.6),
    noise: float = 0.007,
    noise_rho: float = 0.8,
    texture: float = 2.0,
    variability: float = 0.05,
    patch: float = 8.0,
    road: bool = True,
    seed: int = 0,
    pixel_size: float = 30.0,
    origin: tuple[float, float] = (500_000.0, 5_100_000.0),
    crs: str = "EPSG:32633",
) -> Scene:
    """Generate the scene: a lazy float32 reflectance cube, a bool truth map, the targets.

    ``n_targets`` clusters of 1–9 pixels (default: 20 per 128×128 pixels, at least 3, fewer
    where a small scene has no room for them; a count given must fit)
    at a fraction drawn uniformly in ``fraction``; ``noise`` is the noise standard
    deviation (reflectance), ``noise_rho`` its correlation between neighbouring bands,
    ``texture`` the sharpness of the abundance fields (inverse softmax temperature),
    ``variability`` the relative amplitude of the spectral variability, ``patch`` the
    land-cover smoothness (Gaussian sigma, pixels). Same seed, same scene.
    """
    _check_arguments(rows=rows, cols=cols, bands=bands, n_targets=n_targets, seed=seed,
                     fraction=fraction, origin=origin, texture=texture,
                     variability=variability, patch=patch, pixel_size=pixel_size)
    if rows < 16 or cols < 16 or bands < 3:
        raise ParameterError(f"scene too small: {rows}x{cols}x{bands} (need ≥ 16x16x3)")
    lo, hi = fraction
    if not 0 < lo <= hi <= 1:
        raise ParameterError(f"target fractions must satisfy 0 < low ≤ high ≤ 1, got {fraction}")
    if not 0 <= noise_rho < 1:
        raise ParameterError(f"noise_rho must be in [0, 1), got {noise_rho}")
    if not 0 <= noise < np.inf:  # inf made every pixel NaN
        raise ParameterError(f"noise must be a finite standard deviation ≥ 0, got {noise}")
    asked = n_targets is not None  # the default: as many of its count as fit, one at least
    if n_targets is None:
        n_targets = max(3, round(20 * rows * cols / 128**2))
    rng = np.random.default_rng(seed)
    wl = np.linspace(400.0, 2500.0, bands)
    shape = (rows, cols)

    ems = np.stack(list(background_endmembers(wl).values())).astype(np.float32)  # (K, B)
    logits = texture * _smooth_field(rng, shape, sigma=patch, count=ems.shape[0])
    logits[3] -= 1.5  # water is the rarest cover
    abund = np.exp(logits - logits.max(axis=0))
    abund /= abund.sum(axis=0)
    var_shape = ndimage.gaussian_filter1d(rng.standard_normal((2, bands)), bands / 12, axis=1)
    var_shape = (variability * var_shape / np.abs(var_shape).max(axis=1, keepdims=True))
    var_field = _smooth_field(rng, shape, sigma=3.0, count=2)
    illum = 1.0 + 0.08 * _smooth_field(rng, shape, sigma=2 * patch)[0]

    materials = target_materials(wl)
    if road:  # a straight 2-pixel-wide road crossing the scene
        yy, xx = np.ogrid[0:rows, 0:cols]
        angle = rng.uniform(0.2, 0.5) * np.pi
        d = (xx - cols / 2) * np.sin(angle) - (yy - rows / 2) * np.cos(angle) - rows / 5
        on_road = np.abs(d) < 1.0
    else:
        on_road = np.zeros(shape, bool)
    names = [m for m in materials if m != "asphalt"]
    occupied = ndimage.binary_dilation(on_road, iterations=2)
    frac, material, targets = _place_targets(rng, shape, n_targets, fraction, names, occupied,
                                              required=asked)
    mats = np.stack([materials[m] for m in names]).astype(np.float32)

    # AR(1) noise along the bands: covariance noise²·ρ^|i−j|, via its Cholesky factor
    lag = np.abs(np.subtract.outer(np.arange(bands), np.arange(bands)))
    noise_factor = (noise * np.linalg.cholesky(noise_rho**lag)).astype(np.float32)
    tiles = []
    for i, r0 in enumerate(range(0, rows, TILE)):
        row = []
        for j, c0 in enumerate(range(0, cols, TILE)):
            ys, xs = slice(r0, r0 + TILE), slice(c0, c0 + TILE)
            h, w = min(TILE, rows - r0), min(TILE, cols - c0)
            task = dask.delayed(_tile, pure=False)(
                seed, (i, j), abund[:, ys, xs], var_field[:, ys, xs].astype(np.float32),
                illum[ys, xs].astype(np.float32), on_road[ys, xs], frac[ys, xs],
                material[ys, xs], ems, var_shape.astype(np.float32), mats,
                materials["asphalt"].astype(np.float32), noise_factor)
            row.append([da.from_delayed(task, shape=(h, w, bands), dtype=np.float32)])
        tiles.append(row)
    data = da.block(tiles)

    good = np.ones(bands, bool)
    for a, b in ABSORPTION_WINDOWS:
        good &= ~((wl >= a) & (wl <= b))
    step = wl[1] - wl[0]
    transform = Affine(pixel_size, 0.0, origin[0], 0.0, -pixel_size, origin[1])
    cube = make_cube(data, transform=transform, crs=crs, wavelength=wl,
                     fwhm=np.full(bands, 1.1 * step), good_band=good, source_format="synthetic",
                     attrs={"description": f"hsad synthetic scene (seed {seed})"})
    return Scene(cube, map_like(cube, frac > 0, name="truth"), targets)


def write_scene(
    scene: Scene, directory: str | os.PathLike, interleave: str = "bil", name: str = "scene"
) -> dict[str, Path]:
    """Write the cube as ENVI (``<name>.img`` + ``.hdr``) and the truth as a GeoTIFF mask.

    The mask is uint8 (1 = target, 0 = background). Returns
    ``{"cube": <name>.img, "truth": <name>_truth.tif}``.
    """
    from hsad.io.envi_writer import write_envi
    from hsad.io.geotiff_writer import write_mask

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cube_path = directory / f"{name}.img"
    truth_path = directory / f"{name}_truth.tif"
    write_envi(scene.cube, cube_path, interleave=interleave)
    write_mask(scene.truth, truth_path)
    return {"cube": cube_path, "truth": truth_path}
