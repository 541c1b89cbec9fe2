"""Base class of reconstruction detectors: a network learns to rebuild background spectra,
and the residual ``ΔY = |Y − Ŷ|`` goes through the spatial–spectral fusion (hsad.fusion).

A subclass provides ``_build(n_bands) -> {name: module}``, ``_train(x, trainer) -> History``
and ``_reconstruct(x) -> x̂`` (normalised units; ``x`` is ``(N, B)`` spectra or
``(N, B, k, k)`` patches, ``x̂`` spectra ``(N, B)``). This class handles band selection,
sampling, normalisation, seeding, batched chunk-wise inference, nodata, the fusion stages
and the scene checks a saved model needs.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from hsad.cube import good_band_mask, map_like, valid_mask
from hsad.detectors.base import BaseDetector
from hsad.engine import (
    call_model,
    fusion_stages,
    infer_batches,
    materialise,
    model_node,
    spectral_map,
)
from hsad.errors import ModelError, ParameterError
from hsad.fusion import Fusion
from hsad.nn.normalise import BandScaler
from hsad.nn.sampling import read_window, sample_pixels, window_inputs
from hsad.nn.trainer import History, Trainer, cpu_threads, resolve_device, seeded
from hsad.scheduler import parse_memory

#: Stages a reconstruction detector can return (``score_stages`` / ``stages_``).
STAGES = ("residual", "d_spectral", "d_spatial", "d_ss")
#: Keep the residual in memory (instead of recomputing it per pass) below this size.
RESIDUAL_MEMORY = 1 << 30
#: Wavelength mismatch (nm) above which applying a model warns, and above which it refuses.
WAVELENGTH_WARN_NM = 2.0
WAVELENGTH_REFUSE_NM = 20.0
#: Pixels per inference batch.
INFER_BATCH = 8192


class ReconstructionDetector(BaseDetector):
    """Scores a scene by fusing spatial and spectral detectors on its reconstruction residual.

    Expected hyperparameters (declared in the subclass ``__init__``): ``input``, ``patch``,
    ``epochs``, ``batch_size``, ``lr``, ``sample_size``, ``normalisation``, ``seed``,
    ``device``, ``progress``, ``early_stopping``, ``output`` and the :class:`Fusion` fields
    (``fusion`` is the variant; ``fusion_norm`` the map normalisation).
    """

    # ---- subclass hooks -------------------------------------------------------------
    def _build(self, n_bands: int) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def _train(self, x: torch.Tensor, trainer: Trainer) -> History:
        raise NotImplementedError

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---- parameters -----------------------------------------------------------------
    def fusion_(self) -> Fusion:
        """The :class:`~hsad.fusion.Fusion` configured by this detector's parameters."""
        return Fusion(variant=self.fusion, lam=self.lam, n_components=self.n_components,
                      area=self.area, levels=self.levels, radius=self.radius, eps=self.eps,
                      norm=self.fusion_norm, pc_source=self.pc_source)

    def set_fusion(self, mode: str) -> ReconstructionDetector:
        """``"dss"``: score with the fused D_SS map; ``"none"``: with the plain residual
        score (here RX of the residual, D_spectral). The CLI's ``--fusion``."""
        if mode not in ("none", "dss"):
            raise ParameterError(f"{self.name}: fusion mode must be 'none' or 'dss', "
                                 f"got {mode!r}")
        return self.set_params(output="d_ss" if mode == "dss" else "d_spectral")

    @property
    def patch_size(self) -> int:
        return 1 if self.input == "pixel" else int(self.patch)

    def _validate(self) -> None:
        if self.input not in ("pixel", "patch"):
            raise ParameterError(f"{self.name}: input must be 'pixel' or 'patch'")
        if self.input == "patch" and int(self.patch) not in (3, 5, 7):
            raise ParameterError(f"{self.name}: patch must be 3, 5 or 7, got {self.patch}")
        if self.output not in STAGES[1:]:
            raise ParameterError(f"{self.name}: output must be one of {STAGES[1:]}")
        for key in ("epochs", "batch_size", "sample_size"):
            if int(getattr(self, key)) < 1:
                raise ParameterError(f"{self.name}: {key} must be ≥ 1")
        if not float(self.lr) > 0:
            raise ParameterError(f"{self.name}: lr must be > 0")
        self.fusion_().validate()

    def _trainer(self) -> Trainer:
        return Trainer(epochs=int(self.epochs), batch_size=int(self.batch_size),
                       device=self.device, seed=int(self.seed), progress=bool(self.progress),
                       early_stopping=self.early_stopping, monitor="loss_r",
                       desc=f"{self.name} training")

    # ---- fit ------------------------------------------------------------------------
    def _prepare(self, values: np.ndarray) -> torch.Tensor:
        """Normalise raw spectra/patches (bands on axis 1) → float32 tensor, NaN → 0."""
        x = np.asarray(values, dtype=np.float32)
        if x.ndim == 4:  # (N, B, k, k): normalise along axis 1
            x = np.moveaxis(self.scaler_.transform(np.moveaxis(x, 1, -1)), -1, 1)
        else:
            x = self.scaler_.transform(x)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        return torch.from_numpy(np.ascontiguousarray(x))

    def fit(self, cube: xr.DataArray, train_mask=None) -> ReconstructionDetector:
        """Train on a uniform sample (all valid pixels up to ``sample_size``) of ``cube``,
        restricted to the True pixels of ``train_mask`` ((y, x) bool) when given."""
        self._validate()
        device = resolve_device(self.device)
        bands = good_band_mask(cube)
        sample = sample_pixels(cube, int(self.sample_size), seed=int(self.seed), bands=bands,
                               patch=self.patch_size, mask=train_mask)
        if len(sample.rows) < 16:
            n = len(sample.rows)
            raise ParameterError(f"{self.name}: only {n} valid pixel{'s' * (n != 1)} to train "
                                 "on (at least 16 needed)", cube.attrs.get("source_path"))
        h = self.patch_size // 2
        centres = sample.values if sample.values.ndim == 2 else sample.values[:, :, h, h]
        self.scaler_ = BandScaler.fit(centres, self.normalisation)
        self.n_bands_ = int(bands.sum())
        self.band_mask_ = np.asarray(bands, dtype=bool)
        wl = np.asarray(cube["wavelength"].values, dtype=np.float64)[bands]
        self.wavelength_ = wl
        self.n_train_ = int(len(sample.rows))
        x = self._prepare(sample.values)
        with seeded(int(self.seed), device):
            self.networks_ = {k: m.to(device) for k, m in self._build(self.n_bands_).items()}
            self.history_ = self._train(x, self._trainer())
        for module in self.networks_.values():
            module.eval()
        self.device_ = device
        return self

    # ---- scene checks (a model applied to another scene) -------------------------------
    def _check_scene(self, cube: xr.DataArray) -> None:
        if not hasattr(self, "networks_"):
            raise ModelError(f"{self.name}: not fitted; call fit(cube) or load a model first")
        path = cube.attrs.get("source_path")
        bands = good_band_mask(cube)
        n = int(bands.sum())
        if n != self.n_bands_:
            raise ModelError(
                f"the model expects {self.n_bands_} bands but the scene has {n} "
                f"(after removing bad bands); it was trained on a different sensor or band set",
                path)
        wl = np.asarray(cube["wavelength"].values, dtype=np.float64)[bands]
        both = np.isfinite(wl) & np.isfinite(self.wavelength_)
        if both.any():
            diff = float(np.abs(wl[both] - self.wavelength_[both]).max())
            if diff > WAVELENGTH_REFUSE_NM:
                raise ModelError(f"scene wavelengths differ from the model's by up to "
                                 f"{diff:.1f} nm (> {WAVELENGTH_REFUSE_NM} nm): a different "
                                 f"band set", path)
            if diff > WAVELENGTH_WARN_NM:
                warnings.warn(f"{path or 'scene'}: wavelengths differ from the model's by up "
                              f"to {diff:.1f} nm", UserWarning, stacklevel=3)

    # ---- inference ------------------------------------------------------------------
    @torch.no_grad()
    def _residual_block(self, block: np.ndarray, pads, nodata) -> np.ndarray:
        """|Y − Ŷ| (normalised units) of one window; ``block`` includes the halo."""
        inputs, centre, ok, (rows, cols) = window_inputs(block, pads, nodata, self.patch_size)
        out = np.full(centre.shape, np.nan, dtype=np.float32)
        if not ok.any():
            return out.reshape(rows, cols, -1)
        target = self.scaler_.transform(centre[ok])
        recon = infer_batches(self._reconstruct, inputs, prepare=self._prepare,
                              batch=INFER_BATCH, device=self.device_)
        out[ok] = np.abs(target - recon)
        return out.reshape(rows, cols, -1)

    def residual(self, cube: xr.DataArray) -> da.Array:
        """Lazy ΔY ``(y, x, B)`` float32, normalised units, chunked like ``cube``; NaN off-data."""
        self._check_scene(cube)
        data = cube.data[:, :, good_band_mask(cube)]
        nodata = cube.attrs.get("nodata")
        halo = self.patch_size // 2
        ybounds = np.concatenate([[0], np.cumsum(data.chunks[0])])
        xbounds = np.concatenate([[0], np.cumsum(data.chunks[1])])
        rows = []
        model = model_node(self)  # one graph key: sent to each dask worker once
        for y0, y1 in zip(ybounds[:-1], ybounds[1:], strict=True):
            row = []
            for x0, x1 in zip(xbounds[:-1], xbounds[1:], strict=True):
                lazy, pads = read_window(data, int(y0), int(y1), int(x0), int(x1), halo)
                task = dask.delayed(call_model)(model, "_residual_block", lazy, pads, nodata)
                row.append([da.from_delayed(task, shape=(y1 - y0, x1 - x0, self.n_bands_),
                                            dtype=np.float32)])  # [[[…]]]: join y, x, band
            rows.append(row)
        return da.block(rows)

    def _scene_good_bands(self, cube: xr.DataArray) -> da.Array:
        """The cube's good bands as float32, NaN on nodata pixels (for AED's PCs)."""
        data = cube.data[:, :, good_band_mask(cube)].astype(np.float32)
        return da.where(valid_mask(cube).data[:, :, None], data, np.nan)

    def _ensure_device(self) -> None:
        """Follow a ``device`` changed after fitting/loading (e.g. ``hsad detect --device``)."""
        device = resolve_device(self.device)
        if device != self.device_:
            for module in self.networks_.values():
                module.to(device)
            self.device_ = device

    def score_stages(self, cube: xr.DataArray) -> dict[str, xr.DataArray]:
        """All stages as aligned DataArrays: ``residual`` (y, x, band), ``d_spectral``,
        ``d_spatial``, ``d_ss`` (y, x), and ``score`` (the ``output`` stage)."""
        self._check_scene(cube)
        self._ensure_device()
        residual = self.residual(cube)
        fusion = self.fusion_()
        with cpu_threads(1 if self.device_.type == "cpu" else None):
            if residual.nbytes <= min(RESIDUAL_MEMORY, parse_memory(None) // 2):
                residual = residual.persist()
            if self.output == "d_spectral":
                maps = {"d_spectral": materialise(spectral_map(residual))[0]}
            else:  # tiled, streamed statistics, halo filters (hsad.engine)
                maps = fusion_stages(fusion, residual, self._scene_good_bands(cube))
        attrs = {"method": self.name}
        out = {k: map_like(cube, v.astype(np.float32), name=k, attrs=attrs)
               for k, v in maps.items()}
        band = cube["band"].values[good_band_mask(cube)]
        out["residual"] = xr.DataArray(
            residual, dims=("y", "x", "band"), name="residual",
            coords={"y": cube["y"], "x": cube["x"], "band": band,
                    "wavelength": ("band", self.wavelength_)})
        out["score"] = out[self.output].copy()
        out["score"].name = "score"
        self.stages_ = out
        return out

    def score(self, cube: xr.DataArray, stages: bool = False):
        """Anomaly map (the ``output`` stage, default D_SS); ``stages=True`` → dict of stages."""
        result = self.score_stages(cube)
        return result if stages else result["score"]
