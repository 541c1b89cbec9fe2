"""What one ``hsad detect`` of a scene will do, before it does it: its detector (made once
per setting, :func:`detector_of`), its method and parameters from the command line and the
config (:func:`asked`), and every file it writes (:func:`planned`)."""

from __future__ import annotations

import copy
import math

from hsad.cli.outputs import check_name, path_key
from hsad.config import load_config, parse_params


def detector_of(options: dict):
    """The detector of a detection's ``options`` (method, config, parameters, model), made
    once per distinct setting: checked before any work, and asked what stage maps it
    writes."""
    from hsad import pipeline

    key = repr([options.get(k) for k in ("method", "config_path", "params", "model")])
    if key not in DETECTORS:
        cfg = config_of(options.get("config_path"))
        method, merged, named = asked(options.get("method"), options.get("params"), cfg,
                                      options.get("config_path"))
        DETECTORS[key] = pipeline.make_detector(method, merged, model=options.get("model"),
                                                named=named, load=model_of)
    return DETECTORS[key]


#: the options that choose the data a map is made of (as ``hsad detect`` names them), in
#: the ``hsad_selection`` tag: a batch resumed on another window or band set had kept the
#: first run's maps in silence
SELECTION = {"key": "--key", "srcwin": "--srcwin", "projwin": "--projwin",
             "projwin_crs": "--projwin-srs", "band_indices": "--bands",
             "wavelengths": "--wavelengths", "exclude_wavelengths": "--exclude-wavelengths",
             "wavelength_file": "--wavelength-file", "drop_bad_bands": "--drop-bad-bands",
             "exclude_quality": "--exclude-quality", "apply_scale": "--apply-scale",
             "nodata": "--nodata", "valid_mask": "--valid-mask", "background": "--background"}
_SELECTION_FILES = ("wavelength_file", "valid_mask", "background")


def selection_tag(options: dict) -> str:
    """The ``hsad_selection`` tag of a detection's ``options``: those of :data:`SELECTION`
    given, as JSON (files by their absolute paths)."""
    import json
    from pathlib import Path

    from hsad.io import printable

    given = {}
    for key in SELECTION:
        value = options.get(key)
        if value is None or value is False or value == ():
            continue
        given[key] = (printable(Path(value).resolve()) if key in _SELECTION_FILES
                      else [_finite(v) for v in value] if isinstance(value, tuple)
                      else _finite(value))
    return json.dumps(given, sort_keys=True, default=str, allow_nan=False)


def _finite(value):
    """``value``, a float that is not finite as its text (``--nodata nan``: strict JSON, and
    equal to itself when compared)."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


_SELECTION_FLAGS = ("drop_bad_bands", "apply_scale")


def _said(key: str, value) -> str:
    if key in _SELECTION_FLAGS:
        return "on" if value else "off"
    return "none" if value is None else " ".join(map(str, value)) if isinstance(
        value, list) else str(value)


def _selected_otherwise(tag: str, options: dict) -> str | None:
    """How the data selection of the ``hsad_selection`` tag differs from ``options``'
    (None also for a tag that is not the JSON object hsad writes)."""
    import json

    try:
        saved = json.loads(tag)
    except ValueError:
        return None
    if not isinstance(saved, dict):
        return None
    now = json.loads(selection_tag(options))
    for key, flag in SELECTION.items():
        if saved.get(key) != now.get(key):
            return f"{flag} {_said(key, saved.get(key))}, now {_said(key, now.get(key))}"
    return None


def made_otherwise(options: dict) -> str | None:
    """How the map ``options["output"]`` an earlier run wrote was made otherwise than this
    detection would make it (its method, its model, a parameter this run sets or the data
    chosen, :data:`SELECTION`, read from the map's ``hsad_*`` tags), else None (also for a
    map without them): a batch resumed with other settings had skipped every scene,
    leaving maps of two settings in silence; --seed and --fusion too. The threshold rule
    is not compared."""
    import json
    from pathlib import Path

    from hsad.io import printable
    from hsad.outputs.provenance import read_provenance

    try:
        tags = read_provenance(options["output"])
        saved = json.loads(tags.get("hsad_params") or "{}")
    except Exception:  # noqa: BLE001  (no map hsad can read: its own check says so)
        return None
    if "hsad_method" not in tags or not isinstance(saved, dict):
        return None
    det = detector_of(options)
    if tags["hsad_method"] != det.name:
        return f"method {tags['hsad_method']}, now {det.name}"
    model = options.get("model")
    now_model = None if model is None else printable(Path(model).resolve())
    if tags.get("hsad_model") != now_model:  # another model, or one only now or before
        return f"model {tags.get('hsad_model') or 'none'}, now {now_model or 'none'}"
    if "hsad_selection" in tags:  # maps made before 0.3.12 have none
        other = _selected_otherwise(tags["hsad_selection"], options)
        if other is not None:
            return other
    _, merged, _ = asked(options.get("method"), options.get("params"),
                         config_of(options.get("config_path")), options.get("config_path"))
    now = det.get_params()
    for key in merged:
        if key in saved and key in now and json.dumps(saved[key], default=str) != json.dumps(
                now[key], default=str):
            return f"{key}={saved[key]}, now {now[key]}"
    for key, option, value in _run_settings(det, options, merged):
        if key in saved and json.dumps(saved[key], default=str) != json.dumps(
                value, default=str):
            return f"{option} ({key}={saved[key]}), now {value}"
    return None


def changed_since(scene, options: dict) -> str | None:
    """Which input of a finished scene (its files, its model) was modified after its map
    was made (the map's ``hsad_created`` tag), else None: a resumed batch kept the map of
    data rewritten since in silence. Said, not refused: a copy without its times (``cp``
    without ``-p``) looks modified too."""
    from datetime import datetime
    from pathlib import Path

    from hsad.io.input_guard import input_files
    from hsad.outputs.provenance import read_provenance

    try:
        made = datetime.fromisoformat(read_provenance(options["output"])["hsad_created"])
    except Exception:  # noqa: BLE001  (no date: a map hsad did not write, or damaged)
        return None
    files = input_files(scene)  # an ENVI header's data file, an EnMAP product's files
    if options.get("model") is not None:
        files.append(Path(options["model"]))
    for path in files:
        try:
            modified = path.stat().st_mtime
        except OSError:
            continue
        if modified > made.timestamp() + 1.0:  # the tag holds whole seconds
            when = datetime.fromtimestamp(modified, made.tzinfo).isoformat(timespec="seconds")
            return f"{path} was modified at {when}, after its map was made ({made.isoformat()})"
    return None


def _run_settings(det, options: dict, merged: dict) -> list[tuple[str, str, object]]:
    """``(parameter, option, value)`` that --seed and --fusion give the detector of this
    run (as ``hsad detect`` sets them), to compare with a map's: a batch resumed with
    another seed or fusion had kept the first run's maps in silence."""
    out = []
    seed = options.get("seed")
    scored = det.score_params
    if seed is not None and "seed" in det.get_params() and "seed" not in merged and (
            options.get("model") is None or scored is None or "seed" in scored):
        out.append(("seed", "--seed", seed))
    if options.get("fusion") is not None and callable(getattr(det, "set_fusion", None)):
        fused = copy.deepcopy(det)
        fused.set_fusion(options["fusion"])
        params = fused.get_params()
        out += [(key, "--fusion", params[key]) for key in ("output", "fusion")]
    return out


def _read_once(kind: str, path, read):
    """A copy of what ``read(path)`` gave the first time this command asked (:data:`READ`):
    a batch reads each file once, so that one written over while it runs reaches none of
    its later scenes (they had taken the new settings, or model, in silence)."""
    key = (kind, path_key(path))
    if key not in READ:
        READ[key] = read(path)
    return copy.deepcopy(READ[key])


def config_of(path) -> dict:
    """The config file ``path`` as the command first read it (``{}`` for None)."""
    return {} if path is None else _read_once("config", path, load_config)


def library_of(path):
    """The spectral library ``path`` as the command first read it."""
    from hsad.outputs.library_match import read_library

    return _read_once("library", path, read_library)


def model_of(path):
    """The model file ``path`` as the command first loaded it: every scene of a batch is
    scored by the same model."""
    from hsad.io.model_archive import load_model

    return _read_once("model", path, load_model)


def asked(method, params, cfg: dict, config_path) -> tuple[str | None, dict, dict]:
    """A detection's method and parameters, the command line's over its config's, and how
    errors name where each came from (:func:`hsad.pipeline.make_detector`; ``named[key]``
    for each parameter, :func:`hsad.pipeline.apply_fusion`)."""
    given = parse_params(params or ())
    configured = cfg.get("params") or {}
    merged = {**configured, **given}
    in_config = f"`params` from the config {config_path}"
    other = cfg.get("method") if method and cfg.get("method") not in (None, method) else None
    named = {"method": f"-m {method}, over the config's {other}" if other else
             "-m" if method or not cfg.get("method") else
             f"`method` from the config {config_path}",
             "params": " and ".join([*(["--param"] if given else []),
                                     *([in_config] if configured else [])]) or "--param",
             **{key: f"-p {key}={value}" if key in given else
                f"`{key}: {value}` in the config {config_path}" for key, value in merged.items()}}
    return method or cfg.get("method"), merged, named


#: the detectors :func:`detector_of` made in this command, by setting (a batch asks once
#: per scene); emptied when a command starts (a model file may change between commands)
DETECTORS: dict = {}
#: the config, model and library files this command read (:func:`config_of`,
#: :func:`model_of`, :func:`library_of`), by path; emptied when a command starts
READ: dict = {}


def planned(options: dict) -> list[tuple[str, str | None, str]]:
    """The ``(option, path, kind)`` of every file a detection with ``options`` writes
    (the stage maps: ``options["stage_names"]``, else those of its detector)."""
    from hsad import pipeline

    stages_dir, spectra_path = options["stages_dir"], options["spectra_path"]
    names = () if not stages_dir else options["stage_names"] if "stage_names" in options \
        else pipeline.stage_names(detector_of(options))
    rasters = [("-o", options["output"]), ("--mask", options["mask_path"])] + [
        ("--save-stages", pipeline.stage_path(stages_dir, name)) for name in names]
    return ([(option, path, "raster") for option, path in rasters]
            + [(option, style, "file") for option, path in rasters
               for style in pipeline.style_files([path])]
            + [("--polygons", options["polygons_path"], "polygons"),
               ("--png", options["png_path"], "png"),
               ("--spectra-png", options["spectra_png"], "png"),
               ("--stages-png", options["stages_png"], "png")]
            + [("--spectra", path, "spectra" if i == 0 else "file")
               for i, path in enumerate(spectra_paths(spectra_path))])


def spectra_paths(spectra_path) -> list:
    """The files ``--spectra`` writes, its name checked as given first (a trailing ``/``
    is gone once it is a path)."""
    from hsad.outputs.spectra import spectra_files

    if spectra_path is None:
        return []
    check_name("--spectra", spectra_path)
    return spectra_files(spectra_path)


__all__ = ["DETECTORS", "READ", "asked", "config_of", "detector_of", "library_of",
           "made_otherwise", "model_of", "planned", "selection_tag", "spectra_paths"]
