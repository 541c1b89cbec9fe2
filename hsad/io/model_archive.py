"""The hsad model file, whatever the model: a zip (``.hsad``) or a folder holding
``config.json`` (format version, hsad version, method, hyperparameters, bands) and
``model.safetensors`` (arrays). Read without pickle or ``torch.load``: loading a model never
executes anything it holds, and every member is size-checked before it is read.

Neural detectors (:mod:`hsad.nn.persistence`) store network weights; detectors that fit
statistics (:mod:`hsad.detectors.state`: RX, UTD, cluster RX ...) store those. This module
needs no torch.

Format policy: ``format_version`` is an integer bumped whenever a change would make an older
hsad misread a model. This hsad reads the versions in :data:`READABLE`; a newer version asks
to upgrade hsad, a model without one (or an unknown older one) asks to retrain it with
``hsad train``. Format 2 (2026-12-02): a reconstruction model's fusion ``lam`` may be None
(the variant's own default); a format-1 model's parameters are read with the meanings they
had (``upgrade_params``: the multi-scale ladder it left unset went up to 121 pixels).
Format 4 (2026-12-04): a multi-scale ``area`` above 225 pixels is the ladder's last step;
before, it meant the ladder to 225, which an older model keeps. Format 5 (2026-12-04,
later): any multi-scale area off the ladder is its last step (36 pixels: 9, 25, 36); before,
it was rounded down to a step below it (9, 25). A loaded model keeps its format's ladder,
also where its area comes from ``target_size_m`` (``model_format_``,
:func:`hsad.fusion.ladder`). Format 6 (2026-12-04, seventh session): ``ladder_format``, the
format whose ladder a model uses, written when a model loaded from an older file is saved
again without a new fit (before, it was saved with today's ladder).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import load as st_load_bytes
from safetensors.numpy import save as st_save_bytes

from hsad import __version__
from hsad.errors import HsadError, ModelError, ParameterError
from hsad.io import check_regular
from hsad.io.atomic import atomic_path, refuse_unexpanded_home

if TYPE_CHECKING:
    from hsad.detectors.base import BaseDetector

FORMAT = "hsad-model"
FORMAT_VERSION = 6
#: format versions this hsad reads
READABLE = (1, 2, 3, 4, 5, 6)
#: config.json's format whose multi-scale ladder a model keeps (:func:`hsad.fusion.ladder`)
LADDER_FORMAT = "ladder_format"
#: the ``seed`` a model was fitted with (its ``params`` hold the one set since, for scoring)
TRAINING_SEED = "training_seed"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
#: largest member sizes read (uncompressed bytes): checked before anything is read
MAX_BYTES = {CONFIG: 64 * 2**20, WEIGHTS: 4 * 2**30}
_RETRAIN = f"retrain it with `hsad train` (this is hsad {__version__})"


def json_list(values: np.ndarray) -> list:
    """Floats for JSON, non-finite values as null."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float)]


#: config.json's per-band medians of the scene the model was fitted on, the second
#: reference of :mod:`hsad.detectors.level_check` (optional: earlier files lack it)
SCENE_LEVEL = "fitted_scene_level"


def scene_level_entry(det) -> dict:
    """``{SCENE_LEVEL: [...]}`` for a detector that noted its fitted scene's level, else {}."""
    level = getattr(det, "_fitted_scene_level", None)
    return {} if level is None else {SCENE_LEVEL: json_list(level)}


def restore_scene_level(det, config: dict, path: Path) -> None:
    """The fitted scene's per-band medians from ``config`` onto ``det`` (after its level
    statistics are restored): one number or null per band of its training level."""
    values = config.get(SCENE_LEVEL)
    if values is None:
        return
    level = det._training_level()
    if level is None:
        raise ModelError(f"{CONFIG}: {SCENE_LEVEL} given for a {det.name} model, which keeps "
                         "no level", path)
    size = len(level[0])
    if not isinstance(values, list) or len(values) != size or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                          and abs(v) <= 1.7e308) for v in values):  # finite, a float
        raise ModelError(f"{CONFIG}: {SCENE_LEVEL} must hold {size} finite numbers or nulls",
                         path)
    det._fitted_scene_level = np.array([np.nan if v is None else v for v in values], float)


#: config.json's band numbers (1-based, in the file) of the scene the model was fitted on:
#: where neither the model nor a scene records wavelengths, the bands are taken by
#: position, and these say whether they are the same (optional: earlier files lack it)
BAND_NUMBERS = "fitted_band_numbers"


def fitted_scene_entries(det) -> dict:
    """The optional ``config.json`` entries of the scene ``det`` was fitted on: its level
    (:data:`SCENE_LEVEL`) and its band numbers (:data:`BAND_NUMBERS`)."""
    numbers = getattr(det, "_fitted_band_numbers", None)
    return scene_level_entry(det) | (
        {} if numbers is None else {BAND_NUMBERS: [int(v) for v in numbers]})


def restore_fitted_scene(det, config: dict, path: Path) -> None:
    """:func:`fitted_scene_entries` from ``config`` onto ``det`` (after its statistics or
    networks are restored)."""
    restore_scene_level(det, config, path)
    numbers = config.get(BAND_NUMBERS)
    if numbers is None:
        return
    if not isinstance(numbers, list) or not numbers or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**31
            for v in numbers):
        raise ModelError(f"{CONFIG}: {BAND_NUMBERS} must be a list of band numbers ≥ 1",
                         path)
    flags = next((f for f in (getattr(det, "band_mask_", None), getattr(det, "bands_", None))
                  if f is not None), None)  # a flag per band of the scene fitted on
    if flags is not None and len(numbers) != np.size(flags):
        raise ModelError(f"{CONFIG}: {BAND_NUMBERS} holds {len(numbers)} band numbers, but "
                         f"the model was fitted on a scene of {np.size(flags)} bands", path)
    det._fitted_band_numbers = np.array(numbers, dtype=np.int64)


def saved_params(det) -> dict:
    """``det``'s hyperparameters in the JSON types their annotations read back
    (:func:`hsad.detectors.param_types.as_saved`)."""
    from hsad.detectors.param_types import as_saved

    kinds = det._param_kinds()
    return {k: as_saved(v, kinds.get(k)) for k, v in det.get_params().items()}


def header(det) -> dict:
    """The fields every model's ``config.json`` starts with, for fitted detector ``det``.
    A model loaded from an older file and not fitted since keeps its format's multi-scale
    ladder (``ladder_format``); the seed it was fitted with is ``training_seed``."""
    from hsad.detectors import qualified_name
    from hsad.outputs.provenance import code_digest

    kept = getattr(det, "model_format_", None) if hasattr(det, "fusion_") else None
    seed = getattr(det, "training_seed_", None)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hsad_version": __version__,
        "hsad_code": code_digest(),  # which code, where the version alone cannot tell
        "method": det.name,
        "class": qualified_name(type(det)),
        "params": saved_params(det),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    } | ({TRAINING_SEED: seed} if seed is not None else {}) \
        | ({LADDER_FORMAT: int(kept)} if kept is not None and kept < FORMAT_VERSION else {})


def _training_seed(config: dict, path: Path) -> int | None:
    """The seed a model was trained with (files before it was recorded: None)."""
    from hsad.detectors.param_types import SEED_MAX

    seed = config.get(TRAINING_SEED)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed <= SEED_MAX):
        raise ModelError(f"{CONFIG}: {TRAINING_SEED} must be an integer in 0…{SEED_MAX}, "
                         f"got {seed!r}", path)
    return seed


#: format-3 files written in this span (UTC) came from the development builds of
#: 2026-12-04, 18:33-18:49 (commits 57d20d5..5229469), which already gave a multi-scale
#: ``area`` above 225 format 4's meaning (the ladder's last step) but still wrote format 3;
#: the builds after them wrote format 4, so a later format-3 file is an older build's
MISLABELLED_FORMAT_3 = (_dt.datetime(2026, 12, 4, 18, 33, 5, tzinfo=_dt.timezone.utc),
                        _dt.datetime(2026, 12, 5, 0, 0, 0, tzinfo=_dt.timezone.utc))


def effective_format(config: dict, path: Path | None = None) -> int:
    """The format whose meanings a checked ``config``'s parameters have: its
    ``format_version``, except a format-3 file written within :data:`MISLABELLED_FORMAT_3`
    (from the first of those builds to the end of that day, when they were current) whose
    multi-scale area (or ``target_size_m``) may reach above 225 pixels: read as format 4,
    as those builds meant it, with a warning."""
    version = config["format_version"]
    params = config.get("params") or {}
    area = params.get("area")
    reaches_above = (isinstance(area, (int, float)) and not isinstance(area, bool)
                     and area > 225) or params.get("target_size_m") is not None
    if version != 3 or LADDER_FORMAT in config or not reaches_above \
            or params.get("fusion", "multiscale") != "multiscale":
        return version
    try:
        created = _dt.datetime.fromisoformat(str(config.get("created")))
    except ValueError:
        return version
    if created.tzinfo is None or not (MISLABELLED_FORMAT_3[0] <= created
                                      < MISLABELLED_FORMAT_3[1]):
        return version
    warnings.warn(f"{path or 'model'}: a format-3 model written on {config.get('created')}, "
                  "when the builds of that day already gave a multi-scale area above 225 "
                  "pixels format 4's meaning: read as format 4 (the ladder's last step is its "
                  "area); retrain it (`hsad train`) if it came from an earlier hsad",
                  UserWarning, stacklevel=3)
    return 4


def _ladder_format(config: dict, version: int, path: Path) -> int:
    """The format whose ladder a checked ``config`` keeps: its ``ladder_format``, or
    ``version``, the format of its parameters' meanings (:func:`effective_format`)."""
    kept = config.get(LADDER_FORMAT, version)
    if isinstance(kept, bool) or not isinstance(kept, int) or kept not in READABLE \
            or kept > version:
        raise ModelError(f"{CONFIG}: {LADDER_FORMAT} must be a format number from "
                         f"{READABLE[0]} to {version}, got {kept!r}", path)
    return kept


def write_archive(path: str | os.PathLike, config: dict, tensors: dict[str, np.ndarray]) -> Path:
    """Write ``config`` and ``tensors`` as a model zip at ``path`` (atomically)."""
    raw_config = json.dumps(config, indent=1)
    weights = st_save_bytes(tensors, metadata={"format": FORMAT})
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(CONFIG, raw_config)
        zf.writestr(WEIGHTS, weights)
    return Path(path)


def _check_size(name: str, size: int, path: Path) -> None:
    if size > MAX_BYTES[name]:
        raise ModelError(f"{name} would be {size} bytes, more than the {MAX_BYTES[name]} an "
                         "hsad model may hold (damaged or not an hsad model)", path)


def _read_folder(path: Path, member: str) -> bytes:
    missing = [m for m in (CONFIG, WEIGHTS) if not (path / m).is_file()]
    if missing:
        raise ModelError(f"model folder lacks {', '.join(missing)}", path)
    _check_size(member, (path / member).stat().st_size, path)
    return (path / member).read_bytes()


def _read_zip(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        listed = [i.filename for i in zf.infolist()]
        if len(set(listed)) < len(listed):  # which copy a tool shows is not which one runs
            twice = sorted({n for n in listed if listed.count(n) > 1})
            raise ModelError(f"model archive holds {', '.join(twice[:3])} more than once: "
                             "not written by hsad", path)
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
        return zf.read(infos[member])


def _read_member(path: Path, member: str) -> bytes:
    """One member of a model file (a zip, or a folder), its size checked before it is read:
    the weights are read only once the config has been checked (a 2 MB file of an empty
    config and 2 GB of zeros was inflated, 4 GB, before its config was refused)."""
    if not path.exists():
        raise ModelError("no such model file", path)
    check_regular(path)
    if path.is_dir():
        return _read_folder(path, member)
    if not zipfile.is_zipfile(path):
        raise ModelError("not an hsad model (expected a zip with config.json and "
                         "model.safetensors, as written by `hsad train`)", path)
    try:
        return _read_zip(path, member)
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


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an hsad model file: a ZIP holding config.json and
    model.safetensors (its content unchecked: :func:`read_archive` checks it)."""
    try:
        check_regular(path)  # a named pipe: opening it would wait for a writer
    except HsadError:
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return {CONFIG, WEIGHTS} <= set(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _once_each(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are each given once: ``"epochs": 2, "epochs": 50`` had
    loaded as 50 beside a history of 2 epochs (json's last one wins)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} is given twice in one object")
        seen.add(key)
    return dict(pairs)


#: descriptive entries of ``config.json`` (each optional) and what each must be
DESCRIPTIVE = {"hsad_version": str, "hsad_code": str, "created": str, "n_train": int}


def _check_descriptive(config: dict, path: Path) -> None:
    """ModelError unless each :data:`DESCRIPTIVE` entry present is of its kind (a count of
    pixels a whole number ≥ 0): ``n_train`` of Infinity had been shown as "inf pixels"."""
    for key, kind in DESCRIPTIVE.items():
        value = config.get(key)
        if value is None:
            continue
        whole = kind is int and isinstance(value, int) and not isinstance(value, bool)
        if kind is int and not (whole and 0 <= value <= 2**63 - 1):
            raise ModelError(f"{CONFIG}: {key!r} must be a whole number in 0…2⁶³ − 1, got "
                             f"{str(value)[:40]}", path)
        if kind is str and not isinstance(value, str):
            raise ModelError(f"{CONFIG}: {key!r} must be a JSON string, got "
                             f"{type(value).__name__}", path)


def model_wavelengths(values, n_bands: int, path: Path) -> np.ndarray:
    """A model's ``wavelength`` entry as floats (NaN for null): ModelError unless it holds
    ``n_bands`` finite numbers or nulls (``Infinity`` had loaded; any finite value a
    scene's cube could carry, 0 included, is kept: hsad saves them as they were)."""
    if not isinstance(values, list) or len(values) != n_bands or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                          and math.isfinite(v)) for v in values):
        raise ModelError(f"{CONFIG}: wavelength must hold {n_bands} finite numbers or "
                         "nulls", path)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def read_archive(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """``config.json`` (an hsad model description of a readable version) and the arrays
    of ``model.safetensors`` (integer or finite floating values), unvalidated otherwise."""
    path = Path(path)
    raw_config = _read_member(path, CONFIG)
    try:
        config = json.loads(raw_config.decode("utf-8"), object_pairs_hook=_once_each)
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, a 5000-digit integer
        raise ModelError(f"{CONFIG} is not valid JSON ({' '.join(str(exc).split())})",
                         path) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{CONFIG} is not an hsad model description", path)
    _check_version(config, path)
    _check_descriptive(config, path)
    for key, kind in (("method", str), ("params", dict)):
        if not isinstance(config.get(key), kind):
            raise ModelError(f"{CONFIG} lacks {key!r}" if key not in config else
                             f"{CONFIG}: {key!r} must be a JSON {kind.__name__}, "
                             f"got {type(config[key]).__name__}", path)
    raw_weights = _read_member(path, WEIGHTS)  # inflated only for a config that holds
    try:
        tensors = st_load_bytes(raw_weights)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"{WEIGHTS} is unreadable ({exc})", path) from None
    for key, value in tensors.items():
        if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype,
                                                                              np.integer):
            raise ModelError(f"{WEIGHTS}: {key} has unsupported dtype {value.dtype}", path)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise ModelError(f"{WEIGHTS}: {key} holds non-finite values", path)
    return config, tensors


def plugin_hint(config: dict) -> str:
    """What to do when a model's method cannot be loaded and a plugin's class saved it
    (``config["class"]`` outside hsad): ``""`` otherwise."""
    saved = config.get("class")
    if not isinstance(saved, str) or not saved or saved.startswith("hsad."):
        return ""
    return (f"; it was saved by {saved}, which this session has not registered: install "
            "the plugin that provides it, or import the class and register it "
            "(hsad.detectors.register)")


def _check_class(det, config: dict, path: Path) -> None:
    """A model saved by a plugin's detector loads into that class only: another plugin
    that took its method's name would read its weights and parameters as its own. hsad's
    own detectors may move between modules (their files say ``hsad.``), keeping their
    class's name: a file whose method names another class was edited."""
    from hsad.detectors import qualified_name

    saved, now = config.get("class"), qualified_name(type(det))
    if saved is None or saved == now:
        return
    if str(saved).startswith("hsad.") and now.startswith("hsad."):
        if str(saved).rsplit(".", 1)[-1] == type(det).__qualname__:
            return  # moved between modules
        raise ModelError(f"the model was saved by {saved}, but its method {config['method']!r} "
                         f"is {now}: the file was edited or mislabelled", path)
    raise ModelError(f"the model was saved by {saved}, and method {config['method']!r} is "
                     f"now {now}: install the plugin that saved it", path)


def save_model(det, path: str | os.PathLike) -> Path:
    """Write any fitted detector that a model file can hold (neural or statistics)."""
    from hsad.detectors.base import BaseDetector
    from hsad.detectors.state import savable, save_statistics

    if not isinstance(det, BaseDetector):
        raise ParameterError(f"save_model takes a fitted detector (hsad.detectors.get(...)"
                             f".fit(cube)), got {type(det).__name__}", path)
    if savable(det):
        return save_statistics(det, path)
    if callable(getattr(det, "_build", None)):
        from hsad.nn.persistence import save_detector

        return save_detector(det, path)
    raise ModelError(f"{det.name} has no model to save: it fits nothing that applies to "
                     "another scene (local detectors estimate per window)", path)


def load_model(path: str | os.PathLike, device: str | None = None) -> BaseDetector:
    """A fitted detector from any hsad model file (neural or statistics).

    ``device`` (neural models) overrides the saved ``device`` parameter.
    """
    refuse_unexpanded_home(path, ModelError)
    config, tensors = read_archive(path)
    if config.get("kind") == "statistics":
        from hsad.detectors.state import restore_statistics

        det = restore_statistics(config, tensors, Path(path))
    else:
        from hsad.nn.persistence import load_networks

        det = load_networks(config, tensors, Path(path), device)
    det._fitted_params = det._fit_params()  # what it was fitted with (checked at score)
    return det


def set_saved_params(det, config: dict, path: Path) -> None:
    """The hyperparameters of a model's (checked) ``config`` onto ``det``, upgraded from its
    format version where the detector knows how: unknown names or wrong types are errors."""
    _check_class(det, config, path)
    version = effective_format(config, path)
    det.model_format_ = _ladder_format(config, version, path)  # its ladder (hsad.fusion.ladder)
    det.training_seed_ = _training_seed(config, path)
    try:
        saved = det.upgrade_params(config["params"], version)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{CONFIG}: parameters of an earlier hsad that cannot be read "
                         f"({exc!r}); " + _RETRAIN, path) from None
    defaults = det.param_defaults()
    unknown = sorted(set(saved) - set(defaults))
    if unknown:
        raise ModelError(f"the model sets {det.name} parameters this hsad does not know "
                         f"({', '.join(unknown)}); it was written by another hsad version: "
                         + _RETRAIN, path)
    from hsad.detectors.param_types import as_saved, fits

    kinds = det._param_kinds()  # the annotation where there is one (None for int | None)
    wrong = [k for k, v in saved.items()
             if not (fits(v, kinds[k]) if k in kinds else _kind(v, defaults[k]))]
    if saved.get("progress") is True:  # True meant "on a terminal" before it meant always
        saved = {**saved, "progress": None}
    saved = {k: as_saved(v, kinds.get(k)) for k, v in saved.items()}  # 1e19 → an int, bounded
    if wrong:
        raise ModelError(f"{CONFIG}: parameter {wrong[0]!r} has the wrong type "
                         f"({type(saved[wrong[0]]).__name__})", path)
    try:
        det.set_params(**saved)
        det.check_params()  # every detector's own bounds (a NaN ridge, a radius of 1e19)
    except (HsadError, TypeError, ValueError) as exc:
        raise ModelError(f"invalid saved parameters ({exc})", path) from None


__all__ = [
    "CONFIG", "DESCRIPTIVE", "effective_format", "FORMAT", "FORMAT_VERSION", "header",
    "is_model_file", "json_list", "MISLABELLED_FORMAT_3",
    "LADDER_FORMAT", "load_model", "MAX_BYTES", "model_wavelengths", "read_archive",
    "READABLE",
    "restore_scene_level", "save_model", "saved_params", "SCENE_LEVEL", "scene_level_entry",
    "set_saved_params", "TRAINING_SEED", "WEIGHTS", "write_archive"
]
