"""Saving and loading fitted neural detectors, without pickle.

A model file (``.hsad``) is a zip archive holding two members:

- ``config.json``: format version, hsad version, method name, hyperparameters, band count,
  bad-band mask, wavelengths (nm, null when unknown), normalisation method, training
  history and provenance;
- ``model.safetensors``: every network's weights (``<network>.<parameter>``) and the
  normalisation statistics (``norm.centre``, ``norm.scale``).

A directory holding the same two files loads too. Weights are read with safetensors only:
no pickle, no ``torch.load``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load as st_load_bytes
from safetensors.numpy import save as st_save_bytes

from hsad import __version__
from hsad.errors import ModelError
from hsad.io.atomic import atomic_path
from hsad.nn.normalise import BandScaler
from hsad.nn.trainer import History, resolve_device

FORMAT = "hsad-model"
FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"


def _json_list(values: np.ndarray) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float)]


def detector_config(det) -> dict:
    """The JSON-serialisable description of a fitted detector."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hsad_version": __version__,
        "method": det.name,
        "params": det.get_params(),
        "n_bands": int(det.n_bands_),
        "good_band": [bool(b) for b in det.band_mask_],
        "wavelength": _json_list(det.wavelength_),
        "normalisation": {"method": det.scaler_.method},
        "networks": sorted(det.networks_),
        "n_train": int(getattr(det, "n_train_", 0)),
        "history": det.history_.to_dict() if hasattr(det, "history_") else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def detector_tensors(det) -> dict[str, np.ndarray]:
    """Weights of every network, plus the normalisation statistics, as numpy arrays."""
    tensors = dict(det.scaler_.tensors())
    for name, module in det.networks_.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous().numpy()
    return tensors


def save_detector(det, path: str | os.PathLike) -> Path:
    """Write a fitted neural detector to ``path`` (zip: config.json + model.safetensors)."""
    if not hasattr(det, "networks_"):
        raise ModelError(f"{det.name}: not fitted, nothing to save", path)
    config = json.dumps(detector_config(det), indent=1)
    weights = st_save_bytes(detector_tensors(det), metadata={"format": FORMAT})
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(CONFIG, config)
        zf.writestr(WEIGHTS, weights)
    return Path(path)


def _read_members(path: Path) -> tuple[bytes, bytes]:
    if not path.exists():
        raise ModelError("no such model file", path)
    if path.is_dir():
        missing = [m for m in (CONFIG, WEIGHTS) if not (path / m).is_file()]
        if missing:
            raise ModelError(f"model folder lacks {', '.join(missing)}", path)
        return (path / CONFIG).read_bytes(), (path / WEIGHTS).read_bytes()
    if not zipfile.is_zipfile(path):
        raise ModelError("not an hsad model (expected a zip with config.json and "
                         "model.safetensors, as written by `hsad train`)", path)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        missing = [m for m in (CONFIG, WEIGHTS) if m not in names]
        if missing:
            raise ModelError(f"model archive lacks {', '.join(missing)}", path)
        return zf.read(CONFIG), zf.read(WEIGHTS)


def read_model(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Config dict and weight arrays of a model file or folder (validated)."""
    path = Path(path)
    raw_config, raw_weights = _read_members(path)
    try:
        config = json.loads(raw_config.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{CONFIG} is not valid JSON ({exc})", path) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{CONFIG} is not an hsad model description", path)
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f"model format {config['format_version']} is newer than this hsad "
                         f"({__version__}) understands; upgrade hsad", path)
    for key in ("method", "params", "n_bands", "good_band", "wavelength", "normalisation"):
        if key not in config:
            raise ModelError(f"{CONFIG} lacks {key!r}", path)
    try:
        tensors = st_load_bytes(raw_weights)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"{WEIGHTS} is unreadable ({exc})", path) from None
    return config, tensors


def load_detector(path: str | os.PathLike, device: str | None = None):
    """A fitted detector from a model saved by :func:`save_detector` / ``hsad train``.

    ``device`` overrides the saved ``device`` parameter (``auto``, ``cpu`` or ``cuda``).
    """
    from hsad import detectors

    path = Path(path)
    config, tensors = read_model(path)
    method = config["method"]
    registry = detectors.available()
    if method not in registry:
        raise ModelError(f"the model needs method {method!r}, unknown to this hsad", path)
    det = registry[method]()
    params = {k: v for k, v in config["params"].items() if k in det.get_params()}
    det.set_params(**params)
    if device is not None:
        det.set_params(device=device)
    elif str(det.device).startswith("cuda") and not torch.cuda.is_available():
        det.set_params(device="auto")  # trained on a GPU, applied on a CPU-only machine
    try:
        det.scaler_ = BandScaler.from_tensors(config["normalisation"]["method"], tensors)
        det.n_bands_ = int(config["n_bands"])
        det.band_mask_ = np.asarray(config["good_band"], dtype=bool)
        det.wavelength_ = np.array([np.nan if v is None else v for v in config["wavelength"]],
                                   dtype=np.float64)
        det.device_ = resolve_device(det.device)
        networks = det._build(det.n_bands_)
        for name, module in networks.items():
            prefix = f"{name}."
            state = {k[len(prefix):]: torch.from_numpy(np.array(v))
                     for k, v in tensors.items() if k.startswith(prefix)}
            module.load_state_dict(state, strict=True)
            module.to(det.device_).eval()
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ModelError(f"weights do not match the {method} configuration ({exc})",
                         path) from None
    det.networks_ = networks
    det.n_train_ = int(config.get("n_train", 0))
    if config.get("history"):
        det.history_ = History.from_dict(config["history"])
    det.model_path_ = str(path)
    return det
