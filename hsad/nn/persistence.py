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

Format policy: ``format_version`` is an integer bumped whenever a change would make an older
hsad misread a model. This hsad reads the versions in :data:`READABLE` (only 1 so far); a
newer version asks to upgrade hsad, a model without one (or an unknown older one) asks to
retrain it with ``hsad train``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load as st_load_bytes
from safetensors.numpy import save as st_save_bytes

from hsad import __version__
from hsad.errors import HsadError, ModelError
from hsad.io.atomic import atomic_path
from hsad.nn.normalise import METHODS as NORM_METHODS
from hsad.nn.normalise import BandScaler
from hsad.nn.trainer import History, resolve_device

FORMAT = "hsad-model"
FORMAT_VERSION = 1
#: format versions this hsad reads
READABLE = (1,)
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
#: largest member sizes read (uncompressed bytes): checked before anything is read
MAX_BYTES = {CONFIG: 64 * 2**20, WEIGHTS: 4 * 2**30}
_RETRAIN = f"retrain it with `hsad train` (this is hsad {__version__})"


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


def _check_size(name: str, size: int, path: Path) -> None:
    if size > MAX_BYTES[name]:
        raise ModelError(f"{name} would be {size} bytes, more than the {MAX_BYTES[name]} an "
                         "hsad model may hold (damaged or not an hsad model)", path)


def _read_folder(path: Path) -> tuple[bytes, bytes]:
    missing = [m for m in (CONFIG, WEIGHTS) if not (path / m).is_file()]
    if missing:
        raise ModelError(f"model folder lacks {', '.join(missing)}", path)
    for name in (CONFIG, WEIGHTS):
        _check_size(name, (path / name).stat().st_size, path)
    return (path / CONFIG).read_bytes(), (path / WEIGHTS).read_bytes()


def _read_zip(path: Path) -> tuple[bytes, bytes]:
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        missing = [m for m in (CONFIG, WEIGHTS) if m not in infos]
        if missing:
            raise ModelError(f"model archive lacks {', '.join(missing)} (an hsad model holds "
                             "config.json and model.safetensors, as written by `hsad train`)",
                             path)
        extra = sorted(set(infos) - {CONFIG, WEIGHTS})
        if extra:
            raise ModelError(f"model archive holds unexpected members ({', '.join(extra[:3])})"
                             ": not written by hsad", path)
        for name in (CONFIG, WEIGHTS):  # declared sizes cap what zipfile will inflate
            _check_size(name, infos[name].file_size, path)
        return zf.read(infos[CONFIG]), zf.read(infos[WEIGHTS])


def _read_members(path: Path) -> tuple[bytes, bytes]:
    if not path.exists():
        raise ModelError("no such model file", path)
    if path.is_dir():
        return _read_folder(path)
    if not zipfile.is_zipfile(path):
        raise ModelError("not an hsad model (expected a zip with config.json and "
                         "model.safetensors, as written by `hsad train`)", path)
    try:
        return _read_zip(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            ValueError, OSError) as exc:
        raise ModelError(f"damaged model archive ({exc})", path) from None


def _kind(value, default) -> bool:
    """Whether a saved hyperparameter ``value`` has the JSON type of its ``default``."""
    if default is None:
        return True  # optional parameters: the detector's own validation decides
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    return isinstance(value, type(default))


def _check_version(config: dict, path: Path) -> None:
    version = config.get("format_version")
    writer = config.get("hsad_version")
    by = f" (written by hsad {writer})" if isinstance(writer, str) else ""
    if version is None:
        raise ModelError(f"model has no format_version{by}: it predates the model format; "
                         + _RETRAIN, path)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelError(f"format_version must be an integer, got {version!r}", path)
    if version > FORMAT_VERSION:
        raise ModelError(f"model format {version}{by} is newer than this hsad ({__version__}) "
                         f"reads (≤ {FORMAT_VERSION}): upgrade hsad", path)
    if version not in READABLE:
        raise ModelError(f"model format {version}{by} is no longer read; " + _RETRAIN, path)
    if not isinstance(writer, str):
        raise ModelError(f"{CONFIG} lacks the hsad version that wrote it", path)


_FIELDS = {"method": str, "params": dict, "n_bands": int, "good_band": list,
           "wavelength": list, "normalisation": dict, "networks": list}


def check_config(config, path: Path) -> dict:
    """Validate a model description (types and mutual consistency); returns it."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{CONFIG} is not an hsad model description", path)
    _check_version(config, path)
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
    if len(wl) != n or not all(v is None or (isinstance(v, (int, float))
                                             and not isinstance(v, bool)) for v in wl):
        raise ModelError(f"{CONFIG}: wavelength must hold n_bands ({n}) numbers or nulls", path)
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
    for key, value in tensors.items():
        if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype,
                                                                              np.integer):
            raise ModelError(f"{WEIGHTS}: {key} has unsupported dtype {value.dtype}", path)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise ModelError(f"{WEIGHTS}: {key} holds non-finite values", path)
    if not (tensors["norm.scale"] > 0).all():
        raise ModelError(f"{WEIGHTS}: norm.scale must be > 0", path)


def read_model(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Config dict and weight arrays of a model file or folder (validated)."""
    path = Path(path)
    raw_config, raw_weights = _read_members(path)
    try:
        config = json.loads(raw_config.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, a 5000-digit integer
        raise ModelError(f"{CONFIG} is not valid JSON ({' '.join(str(exc).split())})",
                         path) from None
    check_config(config, path)
    try:
        tensors = st_load_bytes(raw_weights)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"{WEIGHTS} is unreadable ({exc})", path) from None
    _check_tensors(tensors, config["n_bands"], path)
    return config, tensors


def _set_params(det, saved: dict, path: Path) -> None:
    """Saved hyperparameters onto ``det`` (renamed from an earlier hsad's where the
    detector knows how): unknown names or wrong types are errors."""
    try:
        saved = det.upgrade_params(saved)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{CONFIG}: parameters of an earlier hsad that cannot be read "
                         f"({exc!r}); " + _RETRAIN, path) from None
    defaults = det.param_defaults()
    unknown = sorted(set(saved) - set(defaults))
    if unknown:
        raise ModelError(f"the model sets {det.name} parameters this hsad does not know "
                         f"({', '.join(unknown)}); it was written by another hsad version: "
                         + _RETRAIN, path)
    wrong = [k for k, v in saved.items() if not _kind(v, defaults[k])]
    if wrong:
        raise ModelError(f"{CONFIG}: parameter {wrong[0]!r} has the wrong type "
                         f"({type(saved[wrong[0]]).__name__})", path)
    try:
        det.set_params(**saved)
        if hasattr(det, "_validate"):
            det._validate()
    except (HsadError, TypeError, ValueError) as exc:
        raise ModelError(f"invalid saved parameters ({exc})", path) from None


def _check_shapes(networks: dict, tensors: dict[str, np.ndarray]) -> None:
    """The networks' tensors and ``tensors`` have the same names and shapes."""
    wanted = {f"{name}.{k}": tuple(v.shape) for name, module in networks.items()
              for k, v in module.state_dict().items()}
    missing = sorted(set(wanted) - set(tensors))
    extra = sorted(set(tensors) - set(wanted) - {"norm.centre", "norm.scale"})
    if missing or extra:
        raise ValueError(f"missing tensors {missing[:3]}" if missing
                         else f"unexpected tensors {extra[:3]}")
    for key, shape in wanted.items():
        if tensors[key].shape != shape:
            raise ValueError(f"{key} has shape {tensors[key].shape}, the configuration "
                             f"needs {shape}")


def _load_weights(networks: dict, tensors: dict[str, np.ndarray]) -> None:
    """Copy ``tensors`` into the networks; names and shapes must match exactly."""
    _check_shapes(networks, tensors)
    for name, module in networks.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: torch.from_numpy(np.array(v))
                                for k, v in tensors.items() if k.startswith(prefix)})


def load_detector(path: str | os.PathLike, device: str | None = None):
    """A fitted detector from a model saved by :func:`save_detector` / ``hsad train``.

    ``device`` overrides the saved ``device`` parameter (``auto``, ``cpu`` or ``cuda``).
    """
    from hsad import detectors

    path = Path(path)
    config, tensors = read_model(path)
    method = config["method"]
    try:  # imports the detector's own module only
        det = detectors.get(method)
    except HsadError:
        det = None
    if not callable(getattr(det, "_build", None)):
        loadable = [k for k, cls in detectors.available().items() if hasattr(cls, "_build")]
        raise ModelError(f"the model needs method {method!r}, which this hsad cannot load "
                         f"(model methods: {', '.join(loadable)})", path)
    _set_params(det, config["params"], path)
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
        with torch.device("meta"):  # shapes first: a hostile config allocates nothing
            skeleton = det._build(det.n_bands_)
        _check_shapes(skeleton, tensors)
        networks = det._build(det.n_bands_)
        if sorted(networks) != sorted(config["networks"]):
            raise ValueError(f"networks {sorted(config['networks'])} saved, "
                             f"{sorted(networks)} expected")
        _load_weights(networks, tensors)
        for module in networks.values():
            module.to(det.device_).eval()
        history = History.from_dict(config["history"]) if config.get("history") else None
    except (HsadError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        problem = " ".join(str(exc).split())  # one line, whatever the library wrote
        raise ModelError(f"weights do not match the {method} configuration ({problem})",
                         path) from None
    det.networks_ = networks
    n_train = config.get("n_train", 0)
    det.n_train_ = n_train if isinstance(n_train, int) else 0
    if history is not None:
        det.history_ = history
    det.model_path_ = str(path)
    return det
