"""Saving and loading fitted neural detectors, without pickle.

A model file (``.hsad``) is a zip archive holding exactly two members:

- ``config.json``: format version, hsad version, method name, hyperparameters, band count,
  bad-band mask, wavelengths (nm, null when unknown), normalisation method, training
  history and provenance;
- ``model.safetensors``: every network's weights (``<network>.<parameter>``) and the
  normalisation statistics (``norm.centre``, ``norm.scale``).

A directory holding the same two files loads too. Weights are read with safetensors only:
no pickle, no ``torch.load``, so loading a model never executes anything it holds. Every
field is checked before use (types, shapes, sizes); anything wrong is a :class:`ModelError`.

The archive itself (members, sizes, format versions) is :mod:`hsad.io.model_archive`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hsad.errors import HsadError, ModelError, NotFittedError
from hsad.io.model_archive import (  # noqa: F401  (CONFIG, WEIGHTS, MAX_BYTES: re-exported)
    CONFIG,
    FORMAT_VERSION,
    MAX_BYTES,
    WEIGHTS,
    fitted_scene_entries,
    header,
    json_list,
    load_model,
    model_wavelengths,
    read_archive,
    restore_fitted_scene,
    set_saved_params,
    write_archive,
)
from hsad.nn.normalise import METHODS as NORM_METHODS
from hsad.nn.normalise import BandScaler
from hsad.nn.trainer import History, networks_to_load, resolve_device

if TYPE_CHECKING:
    from hsad.detectors.base import BaseDetector


def detector_config(det) -> dict:
    """The JSON-serialisable description of a fitted detector."""
    return header(det) | {
        "kind": "networks",
        "n_bands": int(det.n_bands_),
        "good_band": [bool(b) for b in det.band_mask_],
        "wavelength": json_list(det.wavelength_),
        "normalisation": {"method": det.scaler_.method},
        "networks": sorted(det.networks_),
        "n_train": int(getattr(det, "n_train_", 0)),
        "history": det.history_.to_dict() if hasattr(det, "history_") else None,
    } | fitted_scene_entries(det)


def detector_tensors(det) -> dict[str, np.ndarray]:
    """Weights of every network, plus the normalisation statistics, as numpy arrays."""
    tensors = dict(det.scaler_.tensors())
    for name, module in det.networks_.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous().numpy()
    return tensors


def save_detector(det, path: str | os.PathLike) -> Path:
    """Write a fitted neural detector to ``path`` (zip: config.json + model.safetensors);
    a statistics detector (RX, cluster RX ...) goes to :mod:`hsad.detectors.state`."""
    if getattr(det, "model_state", None):
        from hsad.detectors.state import save_statistics

        return save_statistics(det, path)
    if not hasattr(det, "networks_"):
        raise NotFittedError(f"{det.name}: not fitted, nothing to save", path)
    det._check_fit_params()  # a value set since fit would be saved as the fit's
    return write_archive(path, detector_config(det), detector_tensors(det))


#: normalisation statistics beyond this (or scales below its inverse) are no data's
VALUE_LIMIT = 1e30
#: network weights beyond this are no trained network's (they overflow float32 outputs)
WEIGHT_LIMIT = 1e6

_FIELDS = {"method": str, "params": dict, "n_bands": int, "good_band": list,
           "wavelength": list, "normalisation": dict, "networks": list}


def check_config(config, path: Path) -> dict:
    """Validate a neural model's description (types and mutual consistency); returns it.
    The format and version are :func:`~hsad.io.model_archive.read_archive`'s checks."""
    for key, kind in _FIELDS.items():
        if key not in config:
            raise ModelError(f"{CONFIG} lacks {key!r}", path)
        value = config[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelError(f"{CONFIG}: {key!r} must be a JSON {kind.__name__}, "
                             f"got {type(value).__name__}", path)
    n = config["n_bands"]
    good, wl = config["good_band"], config["wavelength"]
    if not all(isinstance(b, bool) for b in good) or sum(good) != n or n < 1:
        raise ModelError(f"{CONFIG}: good_band must be booleans with n_bands ({n}) true", path)
    model_wavelengths(wl, n, path)
    if config["normalisation"].get("method") not in NORM_METHODS:
        raise ModelError(f"{CONFIG}: unknown normalisation "
                         f"{config['normalisation'].get('method')!r}", path)
    if not all(isinstance(k, str) for k in config["networks"]):
        raise ModelError(f"{CONFIG}: networks must be names", path)
    history = config.get("history")
    if history is not None and not isinstance(history, dict):
        raise ModelError(f"{CONFIG}: history must be an object or null", path)
    return config


def _check_tensors(tensors: dict[str, np.ndarray], n_bands: int, path: Path) -> None:
    for key in ("norm.centre", "norm.scale"):
        if key not in tensors:
            raise ModelError(f"{WEIGHTS} lacks {key}", path)
        if tensors[key].shape != (n_bands,):
            raise ModelError(f"{WEIGHTS}: {key} has shape {tensors[key].shape}, but the model "
                             f"has {n_bands} bands", path)
    centre, scale = (np.asarray(tensors[k], dtype=np.float64) for k in ("norm.centre",
                                                                        "norm.scale"))
    if not (scale > 0).all():
        raise ModelError(f"{WEIGHTS}: norm.scale must be > 0", path)
    if not (np.abs(centre) <= VALUE_LIMIT).all() or not (
            (scale >= 1 / VALUE_LIMIT) & (scale <= VALUE_LIMIT)).all():
        raise ModelError(f"{WEIGHTS}: the normalisation is out of range (centre beyond "
                         f"±{VALUE_LIMIT:g} or scale outside {1 / VALUE_LIMIT:g}…"
                         f"{VALUE_LIMIT:g}): not a trained model", path)


def read_model(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Config dict and weight arrays of a neural model file or folder (validated)."""
    path = Path(path)
    config, tensors = read_archive(path)
    _check_neural(config, tensors, path)
    return config, tensors


def _check_neural(config: dict, tensors: dict[str, np.ndarray], path: Path) -> None:
    if config.get("kind", "networks") != "networks":
        raise ModelError(f"a {config.get('kind')!r} model, not a neural one", path)
    check_config(config, path)
    _check_tensors(tensors, config["n_bands"], path)


def _check_shapes(networks: dict, tensors: dict[str, np.ndarray]) -> None:
    """The networks' tensors and ``tensors`` have the same names, shapes and dtypes, and
    their floating values lie within ± :data:`WEIGHT_LIMIT`."""
    wanted = {f"{name}.{k}": tuple(v.shape) for name, module in networks.items()
              for k, v in module.state_dict().items()}
    dtypes = {f"{name}.{k}": str(v.dtype).removeprefix("torch.")
              for name, module in networks.items() for k, v in module.state_dict().items()}
    missing = sorted(set(wanted) - set(tensors))
    extra = sorted(set(tensors) - set(wanted) - {"norm.centre", "norm.scale"})
    if missing or extra:
        raise ValueError(f"missing tensors {missing[:3]}" if missing
                         else f"unexpected tensors {extra[:3]}")
    for key, shape in wanted.items():
        if tensors[key].shape != shape:
            raise ValueError(f"{key} has shape {tensors[key].shape}, the configuration "
                             f"needs {shape}")
        if str(tensors[key].dtype) != dtypes[key]:
            raise ValueError(f"{key} is {tensors[key].dtype}, the networks hold "
                             f"{dtypes[key]}")
        if tensors[key].dtype.kind == "f" and tensors[key].size and not (
                np.abs(tensors[key]) <= WEIGHT_LIMIT).all():
            raise ValueError(f"{key} holds values beyond ±{WEIGHT_LIMIT:g}: not a trained "
                             "network")


def _load_weights(networks: dict, tensors: dict[str, np.ndarray]) -> None:
    """Copy ``tensors`` into the networks; names and shapes must match exactly."""
    _check_shapes(networks, tensors)
    for name, module in networks.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: torch.from_numpy(np.array(v))
                                for k, v in tensors.items() if k.startswith(prefix)})


def load_detector(path: str | os.PathLike, device: str | None = None) -> BaseDetector:
    """A fitted detector from a model saved by ``hsad train`` (any kind; see
    :func:`hsad.io.model_archive.load_model`).

    ``device`` overrides the saved ``device`` parameter (``auto``, ``cpu`` or ``cuda``).
    """
    return load_model(path, device)


def load_networks(config: dict, tensors: dict[str, np.ndarray], path: Path,
                  device: str | None = None):
    """The neural detector a model's ``config`` and ``tensors`` describe (checked here)."""
    from hsad import detectors

    _check_neural(config, tensors, path)
    method = config["method"]
    try:  # imports the detector's own module only
        det = detectors.get(method)
    except HsadError:
        det = None
    if not callable(getattr(det, "_build", None)):
        from hsad.io.model_archive import plugin_hint

        loadable = [k for k, cls in detectors.available().items() if hasattr(cls, "_build")]
        raise ModelError(f"the model needs method {method!r}, which this hsad cannot load"
                         + (plugin_hint(config) or f" (model methods: {', '.join(loadable)})"),
                         path)
    set_saved_params(det, config, path)
    if device is not None:
        det.set_params(device=device)
    elif str(det.device).startswith("cuda") and not torch.cuda.is_available():
        det.set_params(device="auto")  # trained on a GPU, applied on a CPU-only machine
    try:
        det.scaler_ = BandScaler.from_tensors(config["normalisation"]["method"], tensors)
        det.n_bands_ = int(config["n_bands"])
        det.band_mask_ = np.asarray(config["good_band"], dtype=bool)
        det.wavelength_ = model_wavelengths(config["wavelength"], det.n_bands_, path)
        det.device_ = resolve_device(det.device)
        with torch.device("meta"):  # shapes first: a hostile config allocates nothing
            skeleton = det._build(det.n_bands_)
        _check_shapes(skeleton, tensors)
        networks = networks_to_load(lambda: det._build(det.n_bands_), skeleton)
        if sorted(networks) != sorted(config["networks"]):
            raise ValueError(f"networks {sorted(config['networks'])} saved, "
                             f"{sorted(networks)} expected")
        _load_weights(networks, tensors)
        for module in networks.values():
            module.to(det.device_).eval()
        history = History.from_dict(config["history"]) if config.get("history") else None
    except (AttributeError, HsadError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        problem = " ".join(str(exc).split())  # one line, whatever the library wrote
        raise ModelError(f"weights do not match the {method} configuration ({problem})",
                         path) from None
    det.networks_ = networks
    restore_fitted_scene(det, config, path)
    n_train = config.get("n_train", 0)
    det.n_train_ = n_train if isinstance(n_train, int) else 0
    if history is not None:
        det.history_ = history
    det.model_path_ = str(path)
    return det


__all__ = [
    "check_config", "detector_config", "detector_tensors", "load_detector", "load_networks",
    "read_model", "save_detector", "VALUE_LIMIT", "WEIGHT_LIMIT"
]
