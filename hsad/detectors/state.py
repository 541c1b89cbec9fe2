"""Model files of detectors that fit statistics (RX, UTD, RXD-UTD, local-mean RX, cluster RX).

A detector declares the fitted attributes that define it in ``model_state``, each with its
shape in named dimensions: ``"B"`` the bands of the scene's layout, ``"G"`` its good bands,
any other name bound by the first array that has it (``"k"`` clusters, ``"r"`` the rank);
``()`` marks a scalar. Saving writes the arrays to ``model.safetensors`` as ``state.<name>``
and the scalars, the hyperparameters and the wavelengths to ``config.json``
(``"kind": "statistics"``); loading checks every name, shape and type against the
declaration, and the values (finite floats, means and whitening within ±1e15; counts,
``…counts_`` and scalars ``n_…``, integers ≥ 0), before the detector derives the rest of its state
(``_derive``). The same zip format as neural models (:mod:`hsad.io.model_archive`), and no
torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hsad.errors import HsadError, ModelError, NotFittedError
from hsad.io.model_archive import (
    CONFIG,
    WEIGHTS,
    fitted_scene_entries,
    header,
    json_list,
    model_wavelengths,
    restore_fitted_scene,
    set_saved_params,
    write_archive,
)

KIND = "statistics"
PREFIX = "state."


def savable(det) -> bool:
    """Whether ``det`` is a statistics detector a model file can hold."""
    return bool(getattr(det, "model_state", None))


def save_statistics(det, path: str | os.PathLike) -> Path:
    """Write a fitted statistics detector to ``path`` (zip: config.json + model.safetensors)."""
    missing = [k for k in det.model_state if not hasattr(det, k)]
    if len(missing) == len(det.model_state):
        raise NotFittedError(f"{det.name}: not fitted, nothing to save", path)
    if missing:  # a plugin's model_state naming what its fit does not set
        raise ModelError(f"{det.name}: model_state names {', '.join(missing)}, which fit did "
                         "not set: nothing saved", path)
    det._check_fit_params()  # a value set since fit would be saved as the fit's
    arrays, scalars = {}, {}
    for key, dims in det.model_state.items():
        value = getattr(det, key)
        if dims:
            value = np.asarray(value)
            arrays[PREFIX + key] = np.ascontiguousarray(
                value.astype(np.uint8) if value.dtype == bool else value)
        else:
            scalars[key] = value.item() if isinstance(value, np.generic) else value
    wavelength = getattr(det, "wavelength_", np.full(det.bands_.size, np.nan))
    config = header(det) | {
        "kind": KIND, "state": scalars, "wavelength": json_list(wavelength)
    } | fitted_scene_entries(det)
    try:  # as loading will check it: a file that cannot load is not written
        _check_state(det, json.loads(json.dumps(config, default=str)), arrays, Path(path))
    except ModelError as exc:
        raise ModelError(f"{det.name}: its fitted state does not match its model_state, so "
                         f"the file could not be loaded: {exc.problem}; nothing saved",
                         path) from None
    return write_archive(path, config, arrays)


def _bind(dims: tuple[str, ...], shape: tuple[int, ...], sizes: dict[str, int]) -> str | None:
    """Check ``shape`` against named ``dims``, binding new names in ``sizes``; the problem
    or None."""
    if len(dims) != len(shape):
        return f"has {len(shape)} dimensions, {len(dims)} expected"
    for dim, n in zip(dims, shape, strict=True):
        if sizes.setdefault(dim, n) != n:
            return f"has {dim} = {n}, {sizes[dim]} elsewhere"
    return None


#: the largest magnitude of a mean or a whitening entry: beyond it the float32 scores
#: overflow (a whitening entry of 1e15 is a band whose standard deviation is 1e-15); the
#: covariance and its eigenvalues, in squared units, are only checked finite (data of a
#: standard deviation of 1e8, photon counts, have a covariance of 1e16)
MAX_STATISTIC = 1e15
#: state arrays in squared units of the data
SQUARED = ("cov_", "eigenvalues_")


def _value_problem(key: str, value: np.ndarray) -> str | None:
    """What is wrong with the values of state array ``key``, or None: a count array
    (``…counts_``) holds integers ≥ 0, the others finite float32 or float64, within
    :data:`MAX_STATISTIC` unless in squared units (:data:`SQUARED`)."""
    if key == "bands_":
        return None
    if key.endswith("counts_"):
        ok = value.dtype.kind in "iu" and bool((value >= 0).all())
        return None if ok else f"must hold counts (integers ≥ 0), found {value.dtype}"
    if value.dtype not in (np.float32, np.float64):
        return f"must be float32 or float64, found {value.dtype}"
    if not np.isfinite(value).all():
        return "holds non-finite values"
    if key not in SQUARED and value.size and np.abs(value).max() > MAX_STATISTIC:
        return f"holds values beyond ±{MAX_STATISTIC:g}: not fitted statistics"
    return None


def _check_state(det, config: dict, tensors: dict[str, np.ndarray], path: Path) -> dict:
    """The declared state from ``config`` and ``tensors``, every name, shape and type
    checked; raises ModelError."""
    scalars = config.get("state")
    if not isinstance(scalars, dict):
        raise ModelError(f"{CONFIG}: 'state' must be an object", path)
    declared = det.model_state
    names = {PREFIX + k for k, dims in declared.items() if dims}
    if set(tensors) != names:
        odd = sorted(set(tensors) ^ names)
        raise ModelError(f"{WEIGHTS} does not hold the {det.name} statistics "
                         f"({', '.join(odd[:3])} missing or unexpected)", path)
    bands = tensors.get(PREFIX + "bands_")
    if bands is None or bands.ndim != 1 or not np.isin(bands, (0, 1)).all() or not bands.any():
        raise ModelError(f"{WEIGHTS}: state.bands_ must be a 0/1 band mask", path)
    sizes = {"B": bands.size, "G": int(bands.sum())}
    state = {}
    for key, dims in declared.items():
        if not dims:
            value = scalars.get(key)
            if not isinstance(value, (int, float, bool)):
                raise ModelError(f"{CONFIG}: state {key!r} must be a number or a boolean",
                                 path)
            if key.startswith("n_") and (isinstance(value, bool) or not isinstance(value, int)
                                         or value < 0):
                raise ModelError(f"{CONFIG}: state {key!r} must be a count (an integer ≥ 0), "
                                 f"got {value!r}", path)
            state[key] = value
            continue
        value = tensors[PREFIX + key]
        problem = _bind(dims, value.shape, sizes) or _value_problem(key, value)
        if problem:
            raise ModelError(f"{WEIGHTS}: state.{key} {problem}", path)
        state[key] = value.astype(bool) if key == "bands_" else value
    state["wavelength_"] = model_wavelengths(config.get("wavelength"), sizes["B"], path)
    return state


def restore_statistics(config: dict, tensors: dict[str, np.ndarray], path: Path):
    """The fitted detector a statistics model describes (checked here)."""
    from hsad import detectors

    method = config["method"]
    try:
        det = detectors.get(method)
    except HsadError:
        det = None
    if not savable(det):
        from hsad.io.model_archive import plugin_hint

        raise ModelError(f"the model needs method {method!r}, which this hsad cannot load as "
                         f"statistics{plugin_hint(config)}", path)
    set_saved_params(det, config, path)
    for key, value in _check_state(det, config, tensors, path).items():
        setattr(det, key, value)
    try:
        det._derive()
    except (HsadError, ValueError, np.linalg.LinAlgError) as exc:
        raise ModelError(f"statistics do not match the {method} configuration ({exc})",
                         path) from None
    restore_fitted_scene(det, config, path)
    det.model_path_ = str(path)
    return det
