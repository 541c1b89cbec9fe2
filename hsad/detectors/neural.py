"""The base of hsad's neural detectors (see docs/adding_a_model.md).

A model declares its hyperparameters as annotated class attributes (dataclass style; the
common ones are declared here once) and provides:

- ``_build(n_bands) -> {name: module}``: its networks;
- ``_stages() -> [Stage]``: its training (hsad.nn.trainer: optimisers, alternating
  updates, frozen players, stages in sequence);
- ``_score(x, noise) -> (N, T)``: its score terms (``score_terms``: the paper's plain
  score first, then extra maps) of a normalised batch; ``score_needs_grad = True`` when
  the score descends a gradient (a latent search), ``noise`` draws keyed by pixel;
- for a :class:`~hsad.detectors.reconstruction.ReconstructionDetector`, ``_reconstruct``.

This class does the rest: band selection, seeded sampling of the training region,
training and the scene checks a saved model needs; its mixins check the hyperparameters
(:mod:`hsad.detectors.neural_params`), normalise the inputs
(:mod:`hsad.detectors.input_scaling`), keep the networks (:mod:`hsad.detectors.network_state`)
and run one tile loop that computes every per-pixel output chunk by chunk
(:mod:`hsad.detectors.neural_tiles`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, ClassVar, Literal, overload

import dask.array as da
import numpy as np
import torch
import xarray as xr

from hsad.cube import good_band_mask, map_like
from hsad.cube.background import background_mask
from hsad.detectors.base import BaseDetector
from hsad.detectors.declared import DeclaredHyperparameters
from hsad.detectors.input_scaling import InputScaling
from hsad.detectors.level_check import sampled_values
from hsad.detectors.network_state import NetworkState
from hsad.detectors.neural_params import NeuralParameters
from hsad.detectors.neural_tiles import NetworkTiles
from hsad.detectors.offset_check import check_sampled_offset, wider_than_float32
from hsad.detectors.scene_checks import MATCH_HINT, check_flag_layout, check_wavelengths
from hsad.engine import materialise
from hsad.engine.data_checks import FILL_ADVICE, FILL_MAGNITUDE, check_partial_nodata, scene_moments
from hsad.errors import DegenerateDataWarning, ModelError, NotFittedError, ParameterError
from hsad.lazy_modules import moved_names
from hsad.nn.noise import PixelNoise
from hsad.nn.normalise import BandScaler
from hsad.nn.sampling import region_mask, sample_pixels
from hsad.nn.trainer import Stage, Trainer, cpu_threads, resolve_device, seeded

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


class NeuralDetector(NeuralParameters, InputScaling, NetworkState, DeclaredHyperparameters,
                     NetworkTiles, BaseDetector):
    """A detector with trained networks; its hyperparameters are declared class attributes.

    ``__init__`` is generated from the declarations (keyword arguments, each defaulting to
    its declared value), so every hyperparameter exists on every instance and
    ``get_params``/``set_params``/``sklearn.base.clone`` follow scikit-learn.
    """

    input: str = "pixel"
    patch: int = 3
    hidden: int = 128
    depth: int = 2
    latent: int | None = None
    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-3
    sample_size: int = 50_000
    normalisation: str = "percentile"
    train_window: list[int] | str | None = None
    output: str | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool | None = None
    early_stopping: int | None = None

    #: The model's own maps, the paper's plain score first.
    score_terms: ClassVar[tuple[str, ...]] = ()
    #: Whether ``_score`` needs autograd at inference.
    score_needs_grad: ClassVar[bool] = False
    #: the residual reuses what the score computed (AnoGAN's G(z*)): score whenever it is taken
    residual_uses_score: ClassVar[bool] = False
    #: shared hyperparameters this model's networks do not use, and why (set: a warning)
    unused_params: ClassVar[dict[str, str]] = {}
    #: hyperparameters that shape the patch front end only (changed with pixel input: a warning)
    patch_only_params: ClassVar[tuple[str, ...]] = ("patch",)
    #: read when scoring (the rest shape the trained networks: fit again after them)
    score_params: ClassVar[frozenset[str] | None] = frozenset(
        {"output", "seed", "device", "progress"})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._declare()

    # ---- model hooks ----------------------------------------------------------------
    def _build(self, n_bands: int) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def _stages(self) -> list[Stage]:
        raise NotImplementedError

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        raise NotImplementedError

    def _checks(self) -> list[tuple[bool, str]]:
        """The model's own ``(condition, message)`` parameter checks."""
        return []

    # ---- fit ------------------------------------------------------------------------
    def fit(self, cube: CubeLike, train_mask=None, background=None) -> Self:
        """Train on a uniform sample (up to ``sample_size``) of ``cube``'s valid pixels inside
        ``train_mask`` ((y, x) bool array or mask file, non-zero = background to learn),
        ``train_window`` (rows/columns ``r0, r1, c0, c1``, half-open) and ``background`` (a
        mask or polygons, :mod:`hsad.cube.background`); default: all."""
        self._validate()
        device = resolve_device(self.device)
        try:
            region = region_mask(cube, mask=train_mask, window=self.train_window)
        except ParameterError as exc:  # the detector named, as its other settings' errors
            raise ParameterError(f"{self.name}: {exc.problem}", exc.path) from None
        area = background_mask(cube, background)
        if area is not None:
            region = area if region is None else region & area
            if not region.any():
                raise ParameterError("the background area and the training region share no "
                                     "pixel", cube.attrs.get("source_path"))
        bands = good_band_mask(cube)
        check_sampled_offset(cube.data, bands, cube.attrs.get("nodata"), self.name,
                             cube.attrs.get("source_path"))
        sample = sample_pixels(cube, int(self.sample_size), seed=int(self.seed), bands=bands,
                               patch=self.patch_size, mask=region, fill_limit=FILL_MAGNITUDE)
        if sample.fill:  # trained on, one such pixel made some networks diverge (cavga)
            fill = sample.fill
            warnings.warn(f"{self.name}: {fill} pixel{'s' * (fill != 1)} beyond "
                          f"±{FILL_MAGNITUDE:g} left out of the training sample (others "
                          f"drawn instead); {FILL_ADVICE}", DegenerateDataWarning, stacklevel=2)
        if len(sample.rows) < 16:
            n = len(sample.rows)
            raise ParameterError(f"{self.name}: only {n} valid pixel{'s' * (n != 1)} to train "
                                 "on (at least 16 needed)", cube.attrs.get("source_path"))
        check_partial_nodata(cube, self.name, bands)
        h = self.patch_size // 2
        centres = sample.values if sample.values.ndim == 2 else sample.values[:, :, h, h]
        if not np.ptp(centres, axis=0).any():  # a sample of identical pixels: is the scene?
            scene_moments(cube, self.name, bands=bands)
        self.scaler_ = BandScaler.fit(centres, self.normalisation)
        self.n_bands_ = int(bands.sum())
        self.band_mask_ = np.asarray(bands, dtype=bool)
        self.wavelength_ = np.asarray(cube["wavelength"].values, dtype=np.float64)[bands]
        self.n_train_ = int(len(sample.rows))
        x = self._prepare(sample.values)
        trainer = Trainer(batch_size=int(self.batch_size), device=device, seed=int(self.seed),
                          progress=self.progress, early_stopping=self.early_stopping,
                          desc=f"{self.name} training")
        with seeded(int(self.seed), device):
            self.networks_ = self._built_on(device)
            for module in self.networks_.values():
                module.train()
            stages = self._stages()
            self._warn_unused(stages)
            self.history_ = trainer.run(stages, x)
        for module in self.networks_.values():
            module.eval()
        self._check_trained()
        self.device_ = device
        return self

    # ---- scene checks (a model applied to another scene) -------------------------------
    def _check_scene(self, cube: xr.DataArray) -> None:
        if not hasattr(self, "networks_"):
            raise NotFittedError(f"{self.name}: not fitted; call fit(cube) or load a model "
                                 "first")
        self._check_fit_params()
        self._validate()
        path = cube.attrs.get("source_path")
        bands = good_band_mask(cube)
        n = int(bands.sum())
        if n != self.n_bands_:
            raise ModelError(
                f"{self.name}: the model expects {self.n_bands_} bands but the scene has {n} "
                f"(after removing bad bands); it was trained on a different sensor or band set"
                f"{MATCH_HINT}",
                path)
        wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
        check_flag_layout(bands, wl, self.band_mask_, self.wavelength_, self.name, path)
        check_wavelengths(wl[bands], self.wavelength_, path)
        values = None
        if wider_than_float32(cube.dtype):  # both checks read one even sample
            values = sampled_values(cube.data, bands, cube.attrs.get("nodata"))
        check_sampled_offset(cube.data, bands, cube.attrs.get("nodata"), self.name, path,
                             values=values)
        self._check_level(cube, bands, values)

    # ---- scoring --------------------------------------------------------------------
    def _maps(self, cube: xr.DataArray, wanted: set[str] | None) -> dict[str, xr.DataArray]:
        """The score-term maps named in ``wanted`` (None: all)."""
        names = [t for t in self.score_terms if wanted is None or t in wanted]
        if not names:
            return {}
        terms = self._per_pixel(cube)
        with cpu_threads(1):  # a torch thread a tile task, on CUDA too (performance.md §4)
            terms = materialise(terms, desc=f"{self.name} network")[0]
        return self._term_maps(cube, terms, names)

    def _ignored(self) -> dict[str, str]:
        """Settings this training ignores, and why: a declared :attr:`unused_params` value,
        and :attr:`patch_only_params` changed from their defaults with pixel input."""
        ignored = {k: why for k, why in self.unused_params.items()
                   if getattr(self, k) is not None}
        if self.input == "pixel":
            ignored.update({k: "it shapes the patch front end; input is 'pixel'"
                            for k in self.patch_only_params
                            if getattr(self, k) != self._declared[k]})
        return ignored

    def _warn_unused(self, stages) -> None:
        """Warn of settings this training ignores (:meth:`_ignored`), and of
        ``early_stopping`` where no stage watches a loss (every epoch runs)."""
        for key, why in self._ignored().items():
            warnings.warn(f"{self.name}: {key} has no effect ({why})", UserWarning,
                          stacklevel=4)
        if self.early_stopping is not None and all(s.monitor is None for s in stages):
            warnings.warn(f"{self.name}: early_stopping has no effect: its training watches "
                          "no loss, so every epoch runs", UserWarning, stacklevel=4)

    def _scene_maps(self, cube: xr.DataArray, wanted) -> dict[str, xr.DataArray]:
        """:meth:`_maps`, a problem of the scene's data named with its file."""
        try:
            return self._maps(cube, wanted)
        except ParameterError as exc:
            if exc.path is not None:
                raise
            raise ParameterError(exc.problem, cube.attrs.get("source_path")) from None

    def _term_maps(self, cube, terms: da.Array, names) -> dict[str, xr.DataArray]:
        attrs = {"method": self.name}
        return {t: map_like(cube, terms[:, :, self.score_terms.index(t)], name=t, attrs=attrs)
                for t in names}

    def score_stages(self, cube: CubeLike) -> dict[str, xr.DataArray]:
        """Every map this model gives, by name, plus ``score`` (the ``output`` map)."""
        self._check_scene(cube)
        self._ensure_device()
        out = self._scene_maps(cube, None)
        out["score"] = out[self.output_].copy()
        out["score"].name = "score"
        self.stages_ = out
        return out

    @overload
    def score(self, cube: CubeLike, stages: Literal[False] = False) -> xr.DataArray: ...

    @overload
    def score(self, cube: CubeLike, stages: Literal[True]) -> dict[str, xr.DataArray]: ...

    @overload
    def score(self, cube: CubeLike, stages: bool) -> xr.DataArray | dict[str, xr.DataArray]: ...

    def score(self, cube: CubeLike, stages: bool = False):
        """Anomaly map (the ``output`` map); ``stages=True`` → :meth:`score_stages`.
        ``stages_`` keeps the maps computed on the way (all fusion stages for D_SS)."""
        if stages:
            return self.score_stages(cube)
        self._check_scene(cube)
        self._ensure_device()
        maps = self._scene_maps(cube, {self.output_})
        out = maps[self.output_].copy()
        out.name = "score"
        self.stages_ = {**maps, "score": out}  # the maps this call computed
        return out


#: names that moved to the modules of this class's mixins (0.3.5), still served here
MOVED = {"INPUT_CLIP": "hsad.detectors.input_scaling"}
__getattr__ = moved_names(__name__, MOVED)
