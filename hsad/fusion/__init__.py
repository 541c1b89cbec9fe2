"""Spatial–spectral fusion D_SS of a reconstruction residual (HADGAN's detection stage).

Works on the residual of ANY reconstruction model: ``ΔY = |Y − Ŷ|`` as a ``(y, x, band)``
array (numpy or dask), NaN on nodata pixels. Stages (see docs/hadgan.md):

- ``d_spectral``: global RX of ΔY, ``(Δy − μ)ᵀ Σ⁺ (Δy − μ)`` with μ, Σ over valid pixels.
- ``d_spatial``, variant ``paper`` (METHODS.md §1, literally): the ``n_components`` (3)
  residual bands of minimum energy
  ``e_b = Σ_ij ΔY(i,j,b)``; on each, the area attribute difference
  ``|B − O(B)| + |C(B) − B|`` (area opening O / closing C, :mod:`hsad.engine.morphology`); their
  mean, smoothed by a guided filter guided by itself (r = 3, ε = 0.5).
- ``d_spatial``, variant ``aed`` (Kang et al. 2017): the same attribute difference on the
  leading principal components of the standardised cube (or of the residual), each
  guided-filtered with the first component as guide, then summed; variant ``multiscale``
  (the default): the same, averaged over several areas (:data:`LADDER`).
- ``d_ss = λ·N(d_spatial) + (1 − λ)·N(S)``, N = min-max or rank normalisation, S =
  ``d_spectral`` or, with ``spectral_tophat`` (the default variant's), its area top-hat
  averaged over the same areas (:func:`spectral_tophat`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields, replace

import dask.array as da
import numpy as np
from scipy.ndimage import uniform_filter

from hsad.engine.morphology import attribute_response, tophat_response
from hsad.errors import ParameterError
from hsad.lazy_modules import lazy_package

VARIANTS = ("aed", "multiscale", "paper")
#: the areas (pixels) of the multi-scale variant: squares of 3, 5, 7, 11 and 15 pixels; its
#: ``area`` is the largest one used
LADDER = (9, 25, 49, 121, 225)
#: Each variant's own defaults, taken where a :class:`Fusion` field is None.
#: ``multiscale``: chosen out of sample (``benchmarks/choose_fusion.py``,
#: docs/fusion_choice.md: the whole ladder to 225 pixels, λ = 0.4); ``aed``: the sweep's
#: setting (docs/fusion_sweep.md: 4 components, area 36, r = 1, ε = 0.001) except λ, which
#: the sweep chose as 0.6: λ 0.5 is the shared default of the first out-of-sample choice
#: (commit 8aa8ff3, multiscale to 121, λ = 0.5), kept for ``aed`` when λ became a
#: per-variant default (f366488); ``paper``: METHODS.md §1 (3 minimum-energy
#: residual bands, guided filter r = 3, ε = 0.5; area 25, the AED reference code's
#: default; λ is open there: 0.5).
#: the largest number of components, pixels of an area or radius a fusion takes (a C int)
SIZE_MAX = 2**31 - 1
VARIANT_DEFAULTS = {
    "aed": {"lam": 0.5, "n_components": 4, "area": 36, "radius": 1, "eps": 0.001,
            "spectral_tophat": False},
    "multiscale": {"lam": 0.4, "n_components": 4, "area": 225, "radius": 1, "eps": 0.001,
                   "spectral_tophat": True},
    "paper": {"lam": 0.5, "n_components": 3, "area": 25, "radius": 3, "eps": 0.5,
              "spectral_tophat": False},
}
NORMS = ("minmax", "rank")
PC_SOURCES = ("cube", "residual")


def _lazy(data) -> da.Array:
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data),
                                                                 chunks=(512, 512, -1))


def band_energy(residual) -> np.ndarray:
    """Energy ``e_b = Σ_ij ΔY(i, j, b)`` of each band over the valid pixels (float64)."""
    lazy = _lazy(residual)
    return np.asarray(da.nansum(lazy.astype(np.float64), axis=(0, 1)).compute())


def min_energy_bands(residual, n: int = 3) -> np.ndarray:
    """Indices of the ``n`` bands of lowest energy (background best suppressed), ascending."""
    energy = band_energy(residual)
    return np.sort(np.argsort(energy, kind="stable")[:n])


def spectral_rx(residual) -> np.ndarray:
    """D_spectral: global RX (pseudo-inverse covariance) of each residual pixel; NaN off-data.
    Float32 scores from float64 statistics: :func:`hsad.fusion.tiled.spectral_map`, computed."""
    from hsad.fusion.tiled import spectral_map  # tiled builds on this module

    return spectral_map(residual).compute()


def principal_components(data, k: int = 3, standardise: bool = True) -> np.ndarray:
    """First ``k`` principal-component images ``(y, x, k)`` of a cube (NaN off-data).

    ``standardise`` uses the correlation matrix (each band scaled to unit variance):
    :func:`hsad.fusion.tiled.components_map`, computed.
    """
    from hsad.fusion.tiled import components_map

    return components_map(data, k, standardise).compute()


def quantise(band: np.ndarray, levels: int = 256) -> np.ndarray:
    """Min-max scale a band's finite values to integers ``0 … levels−1``.

    Off-data (NaN) pixels take the median level so they create no attribute edges.
    ``levels=0`` keeps float values scaled to [0, 1].
    """
    band = np.asarray(band, dtype=np.float64)
    finite = np.isfinite(band)
    scaled = np.zeros_like(band)
    if finite.any():
        lo, hi = band[finite].min(), band[finite].max()
        scaled = (band - lo) / (hi - lo) if hi > lo else np.zeros_like(band)
        scaled[~finite] = np.median(scaled[finite])
    if not levels:
        return scaled
    dtype = np.uint8 if levels <= 256 else np.uint16
    return np.round(scaled * (levels - 1)).astype(dtype)


def attribute_filter(band: np.ndarray, area: int = 25, levels: int = 256) -> np.ndarray:
    """``|B − O(B)| + |C(B) − B|`` with area opening O and closing C, in [0, 1] units.

    Bright (dark) structures smaller than ``area`` pixels respond; larger ones vanish.
    """
    out = attribute_response(quantise(band, levels), (area,))[0]
    return out.astype(np.float64) / (levels - 1) if levels else out


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int = 5,
                  eps: float = 0.01) -> np.ndarray:
    """Guided filter (He et al. 2010) with box means of size ``2·radius+1``.

    ``a = cov(I, p) / (var(I) + ε)``, ``b = mean(p) − a·mean(I)``,
    ``q = mean(a)·I + mean(b)``. Edges of the guide ``I`` are preserved; ε sets how
    strong an edge must be (in the guide's units squared) to be kept.
    """
    guide = np.asarray(guide, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)

    def box(a):
        return uniform_filter(a, size=2 * radius + 1, mode="reflect")

    mean_i, mean_p = box(guide), box(src)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * src) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def normalise_map(values: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Scale a map's finite values to [0, 1]: ``minmax`` or ``rank`` (average ranks / N)."""
    if method not in NORMS:
        raise ParameterError(f"unknown map normalisation {method!r} (choose from {NORMS})")
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if not finite.any():
        return out
    v = values[finite]
    if method == "rank":
        from scipy.stats import rankdata  # scipy.stats takes 0.5 s to import: only here

        out[finite] = rankdata(v) / v.size
    else:
        span = v.max() - v.min()
        out[finite] = (v - v.min()) / span if span > 0 else 0.0
    return out


def _nan_fill(m: np.ndarray) -> np.ndarray:
    finite = np.isfinite(m)
    return np.where(finite, m, np.median(m[finite]) if finite.any() else 0.0)


def spatial_paper(residual, *, n_components: int = 3, area: int = 25, levels: int = 256,
                  radius: int = 3, eps: float = 0.5) -> np.ndarray:
    """D_spatial as in HADGAN: minimum-energy residual bands, attribute filters, self-guided."""
    idx = min_energy_bands(residual, n_components)
    bands = np.asarray(_lazy(residual)[:, :, idx].compute(), dtype=np.float64)
    off = ~np.isfinite(bands).all(axis=-1)
    f = np.mean([attribute_filter(bands[:, :, i], area, levels) for i in range(len(idx))], axis=0)
    guide = normalise_map(f)
    out = guided_filter(_nan_fill(guide), f, radius, eps)
    out[off] = np.nan
    return out


def area_for_target(target_size_m: float, cube) -> int:
    """The attribute-filter area, in pixels, of a square target ``target_size_m`` metres
    across on the grid of ``cube``: ``ceil((target_size_m / gsd)²)``, gsd the side of a
    pixel (√|det| of the transform). ParameterError when the scene has no projected CRS in
    metres (a MAT file, or longitude/latitude), where a size in metres means nothing."""
    from hsad.cube import transform_of

    if not float(target_size_m) > 0:
        raise ParameterError(f"target_size_m must be > 0 metres, got {target_size_m}")
    crs = cube.rio.crs
    unit = (crs.linear_units or "").lower() if crs is not None and crs.is_projected else ""
    if unit not in ("metre", "meter", "m", "metres", "meters"):
        raise ParameterError("target_size_m needs a scene with a projected CRS in metres "
                             f"(this one has {'no CRS' if crs is None else crs.to_string()}); "
                             "give the area in pixels instead (-p area=...)")
    t = transform_of(cube)
    area = abs(t.a * t.e - t.b * t.d)
    ground = _ground_area(cube, t, crs)
    if np.isfinite(ground) and ground > 0 and abs(area / ground - 1) > GROUND_SCALE_TOLERANCE:
        area = ground  # the map's metres are not the ground's (Web Mercator: 1/cos φ)
    return max(1, int(np.ceil(float(target_size_m) ** 2 / area - 1e-9)))


#: how far (relative) the map's pixel area may lie from its ground area before the ground
#: area is taken: UTM's scale (0.9996–1.001) stays within it, so that 60 m on a 30 m grid
#: stays 4 pixels; Web Mercator's (1/cos² φ of area: 2.3 at 49° N) does not
GROUND_SCALE_TOLERANCE = 0.01


def _ground_area(cube, t, crs) -> float:
    """The ground area in m² of the pixel at the scene's centre, geodesic on the CRS's
    ellipsoid (:func:`hsad.outputs.polygons.square_metres`), or NaN."""
    import shapely

    from hsad.outputs.polygons import square_metres

    row, col = cube.sizes["y"] // 2, cube.sizes["x"] // 2
    corners = [t * (col + dx, row + dy) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]
    return float(square_metres(np.array([shapely.Polygon(corners)]), crs)[0])


def chosen_area(name: str, area, target_size_m, cube=None):
    """The area a detector's parameters ask for: ``area`` (None: the variant's own), or,
    with ``target_size_m``, the target's area on ``cube``'s grid (None before a cube is
    known). Both at once is a ParameterError naming detector ``name``."""
    if target_size_m is None:
        return area
    if not 0 < float(target_size_m) < np.inf:
        raise ParameterError(f"{name}: target_size_m must be a number of metres > 0, got "
                             f"{target_size_m!r}")
    if area is not None:
        raise ParameterError(f"{name}: give area (pixels) or target_size_m (metres), not both")
    return None if cube is None else area_for_target(target_size_m, cube)


def ladder(area: int, model_format: int | None = None) -> tuple[int, ...]:
    """The multi-scale variant's areas: the ladder's steps below ``area``, then ``area``
    itself (at least the smallest step): a target of the size asked is never larger than
    the last filter (targets of 18 × 18 pixels need an area of 324: capped at 225 they
    vanished from the map; 6 × 6 ones, 36, were filtered to 25 only).

    ``model_format``: a model file's format keeps the ladder it was trained with (format
    ≤ 3: the steps up to ``area``, at most 225; format 4: the steps up to ``area``, then an
    area above 225)."""
    area = int(area)
    if model_format is not None and model_format <= 4:
        top = min(area, LADDER[-1]) if model_format <= 3 else area
        steps = tuple(a for a in LADDER if a <= top) or LADDER[:1]
        return steps + ((area,) if model_format == 4 and area > LADDER[-1] else ())
    if area <= LADDER[0]:
        return LADDER[:1]
    return tuple(a for a in LADDER if a < area) + (area,)


def area_tag(fusion: Fusion, from_pixel_size: bool) -> dict[str, int]:
    """The ``hsad_area`` attribute of a fused map: the largest area filtered, when it was
    set from the pixel size (``target_size_m``) or the ladder raised it; else none."""
    largest = max(fusion.areas())
    return {"hsad_area": largest} if from_pixel_size or largest != int(fusion.area) else {}


def warn_below_ladder(fusion: Fusion, name: str) -> None:
    """Warn when a multi-scale fusion asks for an area below the ladder's smallest step,
    which its filters use instead (a target of a pixel or two: the 3 × 3 step)."""
    f = fusion.resolved()
    if f.variant == "multiscale" and int(f.area) < LADDER[0]:
        warnings.warn(f"{name}: area {int(f.area)} pixels is below the multi-scale ladder's "
                      f"smallest step, {LADDER[0]}: the filters use {LADDER[0]} (the map's "
                      "hsad_area tag records it); variant=aed filters at the area itself",
                      UserWarning, stacklevel=3)


def spatial_aed(components: np.ndarray, *, area: int | tuple[int, ...] = 25, levels: int = 256,
                radius: int = 5, eps: float = 0.01) -> np.ndarray:
    """D_spatial AED-style: attribute filters on PC images, guided by the first PC, summed.

    The guided filter is linear in its input for a fixed guide, so the sum of the filtered
    responses is the filter of their sum: one filter, not one per component. Several areas
    (a tuple): each component's responses are averaged over them (for the same reason,
    the same as averaging the single-area maps)."""
    comps = np.asarray(components, dtype=np.float64)
    areas = (area,) if np.isscalar(area) else tuple(area)
    off = ~np.isfinite(comps).all(axis=-1)
    guide = _nan_fill(normalise_map(comps[:, :, 0]))
    total = np.zeros(comps.shape[:2])
    for i in range(comps.shape[-1]):
        total += np.mean([attribute_filter(comps[:, :, i], a, levels) for a in areas], axis=0)
    out = guided_filter(guide, total, radius, eps)
    out[off] = np.nan
    return out


def spectral_tophat(d_spectral: np.ndarray, areas: tuple[int, ...],
                    levels: int = 256) -> np.ndarray:
    """The area top-hat of a D_spectral map: ``Σ_a (q − γ_a(q))`` of the map quantised to
    ``levels`` (``q``, min-max) over ``areas``, in [0, 1] units. Bright blobs smaller than
    an area keep their height; bright structures of more pixels (roads, roofs, fields the
    network rebuilds poorly) vanish. NaN off-data."""
    d = np.asarray(d_spectral, dtype=np.float64)
    return tophat_units(quantise(d, levels), areas, levels, ~np.isfinite(d))


def tophat_units(quantised: np.ndarray, areas: tuple[int, ...], levels: int,
                 off: np.ndarray) -> np.ndarray:
    """``Σ_a (q − γ_a(q))`` of a map quantised to ``levels``, in [0, 1] units (divided by
    the areas' count and the top level); NaN where ``off``."""
    out = tophat_response(quantised, areas).astype(np.float64)
    out /= len(areas) * (levels - 1) if levels else len(areas)
    out[off] = np.nan
    return out


def fuse(d_spatial: np.ndarray, d_spectral: np.ndarray, lam: float,
         norm: str = "minmax") -> np.ndarray:
    """``D_SS = λ·N(d_spatial) + (1 − λ)·N(d_spectral)``."""
    return lam * normalise_map(d_spatial, norm) + (1.0 - lam) * normalise_map(d_spectral, norm)


@dataclass
class Fusion:
    """Every parameter of the fusion stage; :meth:`stages` runs it on a residual.

    ``lam``, ``n_components``, ``area``, ``radius``, ``eps`` and ``spectral_tophat`` left
    None take the variant's own defaults (:data:`VARIANT_DEFAULTS`, see :meth:`resolved`): the
    out-of-sample choice for ``multiscale``, the sweep's for ``aed`` (one setting for all
    scenes, ``benchmarks/sweep_fusion.py``), METHODS.md §1's for ``paper``. ``levels`` and
    ``norm`` are shared by all three.
    """

    variant: str = "multiscale"
    lam: float | None = None
    n_components: int | None = None
    area: int | None = None
    levels: int = 256
    radius: int | None = None
    eps: float | None = None
    norm: str = "minmax"
    pc_source: str = "cube"
    spectral_tophat: bool | None = None
    #: the format of the model file these settings came from, which keeps its ladder
    #: (:func:`ladder`); None: today's
    model_format: int | None = None

    def resolved(self, what: str | None = None) -> Fusion:
        """A validated copy with the variant's defaults in the fields left None; errors
        name ``what`` (the detector) when given."""
        if self.variant not in VARIANTS:
            raise ParameterError(f"{what + ': ' if what else ''}fusion variant must be one "
                                 f"of {VARIANTS}, got {self.variant!r}")
        own = {k: v for k, v in VARIANT_DEFAULTS[self.variant].items()
               if getattr(self, k) is None}
        return replace(self, **own).validate(what)

    def validate(self, what: str | None = None) -> Fusion:
        """``self`` when every field is usable, else a ``ParameterError`` naming the field
        (and ``what``, the detector, when given)."""
        if any(getattr(self, k) is None for k in VARIANT_DEFAULTS["aed"]):
            return self.resolved(what)
        checks = [
            (self.variant in VARIANTS, f"fusion variant must be one of {VARIANTS}"),
            (self.norm in NORMS, f"fusion_norm must be one of {NORMS}, got {self.norm!r}"),
            (self.pc_source in PC_SOURCES, f"pc_source must be one of {PC_SOURCES}"),
            (0.0 <= float(self.lam) <= 1.0, f"lam must lie in [0, 1], got {self.lam}"),
            (int(self.n_components) >= 1, "n_components must be ≥ 1"),
            (int(self.area) >= 1, "area must be ≥ 1 pixel"),
            (int(self.levels) == 0 or 2 <= int(self.levels) <= 65536,
             "levels must be 0 (no quantisation) or 2…65536"),
            (int(self.radius) >= 1, "radius must be ≥ 1"),
            *((int(getattr(self, k)) <= SIZE_MAX,  # 1e308 is whole: numpy cannot hold it
               f"{k} must be at most {SIZE_MAX}, got {getattr(self, k)!r}")
              for k in ("n_components", "area", "radius")),
            (float(self.eps) > 0, "eps must be > 0"),
            (isinstance(self.spectral_tophat, (bool, np.bool_)),
             f"spectral_tophat must be true or false, got {self.spectral_tophat!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(f"{what}: {message}" if what else message)
        return self

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        return asdict(self)

    def areas(self) -> tuple[int, ...]:
        """The areas of the attribute filters: the ladder up to ``area`` (``multiscale``)
        or ``area`` alone."""
        f = self.resolved()
        return (ladder(f.area, f.model_format) if f.variant == "multiscale"
                else (int(f.area),))

    def spectral_term(self, d_spectral: np.ndarray) -> np.ndarray:
        """The map D_SS weights at ``1 − lam``: D_spectral, or its area top-hat
        (:func:`spectral_tophat`, same areas as D_spatial) with ``spectral_tophat``."""
        f = self.resolved()
        return (spectral_tophat(d_spectral, f.areas(), int(f.levels)) if f.spectral_tophat
                else d_spectral)

    def spatial(self, residual, cube=None) -> np.ndarray:
        """D_spatial of the configured variant (``cube`` needed for AED on the cube)."""
        f = self.resolved()
        kw = dict(area=int(f.area), levels=int(f.levels), radius=int(f.radius),
                  eps=float(f.eps))
        if f.variant == "paper":
            return spatial_paper(residual, n_components=int(f.n_components), **kw)
        kw["area"] = f.areas()
        source = residual if f.pc_source == "residual" or cube is None else cube
        if cube is None and f.pc_source == "cube":
            raise ParameterError("fusion variant 'aed' with pc_source='cube' needs the cube")
        return spatial_aed(principal_components(source, int(f.n_components)), **kw)

    def stages(self, residual, cube=None, d_spectral: np.ndarray | None = None) -> dict:
        """``{"d_spectral", "d_spatial", "d_ss"}`` maps (numpy, NaN off-data).

        ``residual`` is ΔY (y, x, B); ``cube`` the (good-band) scene, NaN off-data.
        """
        f = self.resolved()
        d_spec = spectral_rx(residual) if d_spectral is None else d_spectral
        d_spat = f.spatial(residual, cube)
        d_ss = fuse(d_spat, f.spectral_term(d_spec), float(f.lam), f.norm)
        return {"d_spectral": d_spec, "d_spatial": d_spat, "d_ss": d_ss}


#: the package's modules load on first use, and dir() lists them before they do
__getattr__, __dir__ = lazy_package(__name__)


__all__ = [
    "area_for_target", "area_tag", "attribute_filter", "band_energy", "chosen_area", "fuse",
    "Fusion", "guided_filter", "LADDER", "ladder", "min_energy_bands", "normalise_map",
    "NORMS", "PC_SOURCES", "principal_components", "quantise", "spatial_aed",
    "spatial_paper", "spectral_rx", "spectral_tophat", "tophat_units", "VARIANT_DEFAULTS",
    "VARIANTS", "warn_below_ladder"
]
