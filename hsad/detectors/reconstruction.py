"""Reconstruction detectors: a network rebuilds background spectra and the residual
``ΔY = |Y − Ŷ|`` feeds the spatial–spectral fusion D_SS (hsad.fusion, METHODS.md §1).

A subclass of :class:`ReconstructionDetector` adds ``_reconstruct(x) -> x̂`` (normalised
units; ``x`` spectra ``(N, B)`` or patches ``(N, B, k, k)``, ``x̂`` the centre spectra
``(N, B)``) to the hooks of :class:`~hsad.detectors.neural.NeuralDetector`. Its maps are
its score terms (if any), ``residual`` (y, x, band) and ``d_spectral``, ``d_spatial``,
``d_ss``; one setting, ``output``, picks the score, and ``fusion`` is the spatial variant.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar

import dask.array as da
import numpy as np
import torch
import xarray as xr

from hsad.cube import (
    block_valid,
    can_miss,
    float32_or_nan,
    good_band_mask,
    good_bands_of,
    map_like,
)
from hsad.detectors.neural import NeuralDetector
from hsad.detectors.residual_statistics import SampledStatistics
from hsad.engine import materialise
from hsad.engine.scheduler import parse_memory
from hsad.engine.windows import project
from hsad.errors import ParameterError
from hsad.fusion import LADDER, Fusion, area_tag, chosen_area, warn_below_ladder
from hsad.fusion.filter_tiles import check_filter_budget
from hsad.fusion.tiled import (
    fusion_stages,
    pc_basis,
    spectral_factors,
    spectral_map,
    spectral_scores,
)
from hsad.lazy_modules import moved_names
from hsad.nn.trainer import cpu_threads

#: The maps of the fusion stage (``score_stages``; ``output`` may name one).
FUSED = ("d_spectral", "d_spatial", "d_ss")
#: a scene of at most this many values (64 MB of float32) has its valid pixels counted
#: before a fit, to refuse what D_spectral would refuse after the training
SMALL_SCENE_VALUES = 2**24
#: Keep the residual in memory (instead of recomputing it per pass) below this size.
RESIDUAL_MEMORY = 1 << 30
#: The multi-scale ladder's largest area that a format-1 model file left unset meant.
FORMAT1_MULTISCALE_AREA = 121

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


class ReconstructionDetector(SampledStatistics, NeuralDetector):
    """A neural detector whose residual is fused into D_SS.

    ``fusion`` is the spatial variant (``multiscale``, ``aed`` or ``paper``); ``lam``,
    ``n_components``, ``area``, ``radius``, ``eps`` and ``spectral_tophat`` left None take
    that variant's own defaults (hsad.fusion).
    """

    fusion: str = "multiscale"
    lam: float | None = None
    n_components: int | None = None
    area: int | None = None
    levels: int = 256
    radius: int | None = None
    eps: float | None = None
    fusion_norm: str = "minmax"
    pc_source: str = "cube"
    spectral_tophat: bool | None = None
    target_size_m: float | None = None
    stats_sample: int = 262144

    #: read when scoring: the output map and the whole fusion stage
    score_params: ClassVar[frozenset[str] | None] = NeuralDetector.score_params | {
        "fusion", "lam", "n_components", "area", "levels", "radius", "eps", "fusion_norm",
        "pc_source", "spectral_tophat", "target_size_m", "stats_sample"}

    @classmethod
    def upgrade_params(cls, saved: dict, format_version: int) -> dict:
        """Keep the map an older model file was trained to give. A format-1 model (before
        2026-12-02) that left the multi-scale ladder's largest area unset used the ladder
        to 121 pixels (format 2: to 225); its ``lam`` was always stored. Models before
        format 3 fused D_spectral itself, not its area top-hat (``spectral_tophat``). Before
        format 4 a multi-scale ``area`` above 225 filtered up to 225 only."""
        saved = super().upgrade_params(saved, format_version)
        if (format_version < 2 and saved.get("fusion", "multiscale") == "multiscale"
                and saved.get("area") is None and saved.get("target_size_m") is None):
            saved = {**saved, "area": FORMAT1_MULTISCALE_AREA}
        if format_version < 3 and saved.get("spectral_tophat") is None:
            saved = {**saved, "spectral_tophat": False}
        area = saved.get("area")
        if (format_version < 4 and saved.get("fusion", "multiscale") == "multiscale"
                and area is not None and int(area) > LADDER[-1]):
            saved = {**saved, "area": LADDER[-1]}  # the ladder stopped at its top step
        return saved

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _centre(self, out: torch.Tensor) -> torch.Tensor:
        """The centre spectrum of rebuilt patches ``(N, B, k, k)``; spectra pass through."""
        if out.dim() == 4:
            h = out.shape[-1] // 2
            out = out[:, :, h, h]
        return out

    @property
    def outputs(self) -> tuple[str, ...]:
        return (*self.score_terms, *FUSED)

    def fusion_(self, cube: xr.DataArray | None = None) -> Fusion:
        """The :class:`~hsad.fusion.Fusion` these parameters configure (variant defaults
        filled in); with ``target_size_m``, the area comes from ``cube``'s pixel size."""
        area = chosen_area(self.name, self.area, self.target_size_m, cube)
        return Fusion(variant=self.fusion, lam=self.lam, n_components=self.n_components,
                      area=area, levels=self.levels, radius=self.radius, eps=self.eps,
                      norm=self.fusion_norm, pc_source=self.pc_source,
                      spectral_tophat=self.spectral_tophat,
                      model_format=getattr(self, "model_format_", None)).resolved(self.name)

    def set_fusion(self, mode: str) -> Self:
        """The CLI's ``--fusion``: ``"dss"`` scores with D_SS (its spatial variant the
        model's ``fusion`` parameter), a variant name (``"multiscale"``, ``"aed"``,
        ``"paper"``) scores with D_SS and sets ``fusion`` to it, ``"none"`` scores with the
        plain score (the first score term; D_spectral, RX of the residual, for a model
        without). So ``--fusion paper`` and ``-p fusion=paper -p output=d_ss`` agree."""
        from hsad.fusion import VARIANTS

        if mode not in ("none", "dss", *VARIANTS):
            raise ParameterError(f"{self.name}: --fusion must be none, dss or a spatial "
                                 f"variant ({', '.join(VARIANTS)}), got {mode!r}")
        if mode in VARIANTS:
            self.set_params(fusion=mode)
        return self.set_params(output=self.outputs[0] if mode == "none" else "d_ss")

    def _validate(self) -> None:
        if self.fusion in ("none", "dss"):
            raise ParameterError(f"{self.name}: fusion is the spatial variant ('multiscale', "
                                 f"'aed' or 'paper'); to score with D_SS or not use "
                                 f"output=d_ss or output={self.outputs[0]} (CLI: --fusion "
                                 f"dss|none)")
        self._check_stats_sample()
        super()._validate()
        self.fusion_()

    def fit(self, cube: CubeLike, train_mask=None, background=None) -> Self:
        """As :meth:`NeuralDetector.fit`; a ``target_size_m`` the scene cannot express in
        pixels (no projected CRS in metres) is refused before any training."""
        self._validate()  # the parameters first: their errors name them
        if self.target_size_m is not None:
            self.fusion_(cube)
        if self.output_ != "d_spectral" and self.output_ in FUSED:  # before any training
            check_filter_budget(self.fusion_(cube), cube.shape[:2])
        return super().fit(cube, train_mask=train_mask, background=background)

    def check_scorable(self, cube: xr.DataArray) -> None:
        """ParameterError, before any training, when a fit on ``cube`` could not then score
        it: D_spectral (RX of the residual, in every fused output) needs more pixels than
        good bands + 1, which would otherwise be found once the network had trained."""
        if self.output_ not in FUSED:
            return
        pixels = int(cube.sizes["y"] * cube.sizes["x"])
        bands = int(np.count_nonzero(good_band_mask(cube)))
        which = ""
        if pixels > bands + 1 and pixels * bands <= SMALL_SCENE_VALUES and can_miss(
                cube.dtype, cube.attrs.get("nodata")):  # a small scene: its valid ones
            from hsad.cube import valid_mask

            pixels, which = int(np.count_nonzero(valid_mask(cube).values)), " valid"
        if pixels <= bands + 1:
            from hsad.engine.covariance import BANDS_ADVICE

            raise ParameterError(
                f"{self.name}: D_spectral needs more valid pixels than bands + 1, and the "
                f"scene has {pixels}{which} for {bands} bands: they would determine the "
                f"residual's covariance exactly; {BANDS_ADVICE}",
                cube.attrs.get("source_path"))

    # ---- the residual and the fusion stage --------------------------------------------
    def residual(self, cube: CubeLike) -> da.Array:
        """Lazy ΔY ``(y, x, B)`` float32, normalised units, chunked like ``cube``; NaN off-data."""
        self._check_scene(cube)
        self._ensure_device()
        return self._per_pixel(cube, residual=True, terms=False)[:, :, :self.n_bands_]

    def _scene_good_bands(self, cube: xr.DataArray) -> da.Array:
        """The cube's good bands as float32, NaN on nodata pixels (for AED's PCs)."""
        return _masked_good_bands(cube.data, good_band_mask(cube), cube.attrs.get("nodata"))

    def _maps(self, cube: xr.DataArray, wanted: set[str] | None) -> dict[str, xr.DataArray]:
        fused = [m for m in FUSED if wanted is None or m in wanted]
        if not fused:
            return super()._maps(cube, wanted)
        names = [t for t in self.score_terms if wanted is None or t in wanted]
        b = self.n_bands_
        fusion = None if fused == ["d_spectral"] else self.fusion_(cube).resolved()
        if fusion is not None:  # before the network's pass over the scene
            check_filter_budget(fusion, cube.shape[:2])
            warn_below_ladder(fusion, self.name)
        with cpu_threads(1):  # a torch thread a tile task, on CUDA too (performance.md §4)
            statistics = self.fusion_statistics(cube)
            components, also = None, None
            if (statistics is not None and fusion is not None and fusion.variant != "paper"
                    and fusion.pc_source == "cube"):
                # the PCs from the network's read of each window: one read of the cube
                mean, basis = pc_basis(*statistics.source, int(fusion.n_components))
                also = (basis.shape[1], partial(_window_components, nodata=cube.attrs.get(
                    "nodata"), mean=mean, basis=basis))
            # with sampled statistics, D_spectral is scored batch by batch: the sweep then
            # never holds a window's residual (49 MB of new pages per 30 × 2048 strip)
            per_batch = statistics is not None and not names and (
                fusion is None or (fusion.variant != "paper" and fusion.pc_source == "cube"))
            reduce = None
            if per_batch:
                res_mean, res_tri = spectral_factors(statistics.residual)
                reduce = (1, partial(spectral_scores, mean=res_mean, tri=res_tri))
            tiles = self._per_pixel(cube, residual=True, terms=bool(names), also=also,
                                    reduce=reduce)
            if also:
                tiles, components = tiles
            if statistics is None and tiles.nbytes <= min(RESIDUAL_MEMORY,
                                                          parse_memory(None) // 2):
                tiles = tiles.persist()
            if per_batch:  # the residual stays lazy: computed only if a caller asks for it
                d_spec, residual = tiles[:, :, 0], self._per_pixel(cube, residual=True,
                                                                   terms=False)
            else:
                d_spec, residual = None, tiles[:, :, :b]
            keep = {"terms": tiles[:, :, b:]} if names else {}
            if fused == ["d_spectral"]:  # one sweep: D_spectral and the score terms
                lazy = (spectral_map(residual, statistics and statistics.residual)
                        if d_spec is None else d_spec)
                maps = dict(zip(["d_spectral", *keep], materialise(
                    lazy, *keep.values(), desc=f"{self.name} network"), strict=True))
            else:  # tiled, streamed statistics, halo filters (hsad.engine)
                maps = fusion_stages(fusion, residual, self._scene_good_bands(cube),
                                     d_spectral=d_spec, statistics=statistics, keep=keep,
                                     components=components)
            terms = maps.pop("terms", None)
        area = area_tag(fusion, self.target_size_m is not None) if fusion is not None else {}
        out = {k: map_like(cube, v.astype(np.float32), name=k, attrs={
                   "method": self.name,  # D_spectral is filtered by no area
                   **(area if k != "d_spectral" else {})})
               for k, v in maps.items()}
        if names:
            out.update(self._term_maps(cube, terms, names))
        band = cube["band"].values[good_band_mask(cube)]
        coords = {"y": cube["y"], "x": cube["x"], "band": band,
                  "wavelength": ("band", self.wavelength_)}
        if "spatial_ref" in cube.coords:  # the georeference, as every map carries it
            coords["spatial_ref"] = cube["spatial_ref"]
        out["residual"] = xr.DataArray(residual, dims=("y", "x", "band"), name="residual",
                                       coords=coords,
                                       attrs={"source_path": cube.attrs.get("source_path")})
        return out


def _masked_good_bands(data: da.Array, good: np.ndarray, nodata) -> da.Array:
    """``data``'s good bands as float32, NaN on the pixels that hold no data, in one
    blockwise step (a separate mask would read every chunk a second time)."""
    data = good_bands_of(data, good).rechunk({2: -1})
    return data.map_blocks(float32_or_nan, nodata, dtype=np.float32,
                           meta=np.empty((0, 0, 0), np.float32))


def _window_components(block: np.ndarray, *, nodata, mean, basis) -> np.ndarray:
    """The principal-component images of a window's pixels (good bands), as
    :func:`hsad.fusion.tiled.components_map` gives them for :meth:`_scene_good_bands`.
    Projected from the block's own values (cast piece by piece: no float32 copy of the
    window), then NaN where a pixel holds no data."""
    comps = project(block, mean, basis)
    comps[~block_valid(block, nodata)] = np.nan
    return comps


#: names that moved to the modules of this class's mixins (0.3.5), still served here
MOVED = {"MIN_PIXELS_PER_BAND": "hsad.detectors.residual_statistics",
         "SAMPLE_ROWS_AT_ONCE": "hsad.detectors.residual_statistics"}
__getattr__ = moved_names(__name__, MOVED)
