"""Reconstruction detectors: a network rebuilds background spectra and the residual
``ΔY = |Y − Ŷ|`` feeds the spatial–spectral fusion D_SS (hsad.fusion, METHODS.md §1).

A subclass of :class:`ReconstructionDetector` adds ``_reconstruct(x) -> x̂`` (normalised
units; ``x`` spectra ``(N, B)`` or patches ``(N, B, k, k)``, ``x̂`` the centre spectra
``(N, B)``) to the hooks of :class:`~hsad.detectors.neural.NeuralDetector`. Its maps are
its score terms (if any), ``residual`` (y, x, band) and ``d_spectral``, ``d_spatial``,
``d_ss``; one setting, ``output``, picks the score, and ``fusion`` is the spatial variant.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import torch
import xarray as xr

from hsad.cube import good_band_mask, map_like, valid_mask
from hsad.detectors.neural import NeuralDetector
from hsad.engine import materialise
from hsad.engine.scheduler import parse_memory
from hsad.errors import ParameterError
from hsad.fusion import Fusion, area_for_target
from hsad.fusion.tiled import fusion_stages, spectral_map
from hsad.nn.trainer import cpu_threads

#: The maps of the fusion stage (``score_stages``; ``output`` may name one).
FUSED = ("d_spectral", "d_spatial", "d_ss")
#: Keep the residual in memory (instead of recomputing it per pass) below this size.
RESIDUAL_MEMORY = 1 << 30


class ReconstructionDetector(NeuralDetector):
    """A neural detector whose residual is fused into D_SS.

    ``fusion`` is the spatial variant (``multiscale``, ``aed`` or ``paper``);
    ``n_components``, ``area``, ``radius`` and ``eps`` left None take that variant's own
    defaults (hsad.fusion).
    """

    fusion: str = "multiscale"
    lam: float = 0.5
    n_components: int | None = None
    area: int | None = None
    levels: int = 256
    radius: int | None = None
    eps: float | None = None
    fusion_norm: str = "minmax"
    pc_source: str = "cube"
    target_size_m: float | None = None

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
        area = self.area
        if self.target_size_m is not None:
            if self.area is not None:
                raise ParameterError(f"{self.name}: give area (pixels) or target_size_m "
                                     f"(metres), not both")
            if cube is not None:
                area = area_for_target(self.target_size_m, cube)
        return Fusion(variant=self.fusion, lam=self.lam, n_components=self.n_components,
                      area=area, levels=self.levels, radius=self.radius, eps=self.eps,
                      norm=self.fusion_norm, pc_source=self.pc_source).resolved()

    def set_fusion(self, mode: str) -> ReconstructionDetector:
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
        super()._validate()
        self.fusion_()

    def fit(self, cube: xr.DataArray, *args, **kwargs) -> ReconstructionDetector:
        """As :meth:`NeuralDetector.fit`; a ``target_size_m`` the scene cannot express in
        pixels (no projected CRS in metres) is refused before any training."""
        if self.target_size_m is not None:
            self.fusion_(cube)
        return super().fit(cube, *args, **kwargs)

    # ---- the residual and the fusion stage --------------------------------------------
    def residual(self, cube: xr.DataArray) -> da.Array:
        """Lazy ΔY ``(y, x, B)`` float32, normalised units, chunked like ``cube``; NaN off-data."""
        self._check_scene(cube)
        self._ensure_device()
        return self._per_pixel(cube, residual=True)[:, :, :self.n_bands_]

    def _scene_good_bands(self, cube: xr.DataArray) -> da.Array:
        """The cube's good bands as float32, NaN on nodata pixels (for AED's PCs)."""
        data = cube.data[:, :, good_band_mask(cube)].astype(np.float32)
        return da.where(valid_mask(cube).data[:, :, None], data, np.nan)

    def _maps(self, cube: xr.DataArray, wanted: set[str] | None) -> dict[str, xr.DataArray]:
        fused = [m for m in FUSED if wanted is None or m in wanted]
        if not fused:
            return super()._maps(cube, wanted)
        names = [t for t in self.score_terms if wanted is None or t in wanted]
        tiles = self._per_pixel(cube, residual=True)
        b = self.n_bands_
        with cpu_threads(1 if self.device_.type == "cpu" else None):
            if tiles.nbytes <= min(RESIDUAL_MEMORY, parse_memory(None) // 2):
                tiles = tiles.persist()
            residual = tiles[:, :, :b]
            if fused == ["d_spectral"]:
                maps = {"d_spectral": materialise(spectral_map(residual))[0]}
            else:  # tiled, streamed statistics, halo filters (hsad.engine)
                maps = fusion_stages(self.fusion_(cube), residual,
                                     self._scene_good_bands(cube))
            terms = materialise(tiles[:, :, b:])[0] if names else None
        attrs = {"method": self.name}
        if self.target_size_m is not None and fused != ["d_spectral"]:
            attrs["hsad_area"] = int(self.fusion_(cube).area)  # from the pixel size
        out = {k: map_like(cube, v.astype(np.float32), name=k, attrs=attrs)
               for k, v in maps.items()}
        if names:
            out.update(self._term_maps(cube, terms, names))
        band = cube["band"].values[good_band_mask(cube)]
        out["residual"] = xr.DataArray(
            residual, dims=("y", "x", "band"), name="residual",
            coords={"y": cube["y"], "x": cube["x"], "band": band,
                    "wavelength": ("band", self.wavelength_)})
        return out
