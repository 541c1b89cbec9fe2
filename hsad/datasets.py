"""Benchmark scenes: manifests, search path, checksum-verified loading and download.

Each scene has a manifest ``<name>.json`` in the package ``hsad.data_manifests`` (file,
sha256, keys, shape, anomaly count, source URL, licence): installed as
``hsad/data_manifests/``, from the checkout's ``data_manifests/`` (``package-dir`` in
pyproject.toml). Scene files are looked for in, in order:

1. ``$HSAD_DATA_DIR`` when set, else ``../shared/datasets`` relative to the current
   directory and, in a development checkout only (``pyproject.toml`` beside the package
   folder; an installed wheel has none), relative to the repository root;
2. the user cache ``pooch.os_cache("hsad")``, where :func:`fetch` downloads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pooch
import xarray as xr

from hsad.cube import map_like
from hsad.errors import DatasetError

ENV_VAR = "HSAD_DATA_DIR"
#: The splits of the known scenes: defaults are chosen on ``development`` only; the
#: ``held-out`` scenes are scored after a default is fixed (docs/datasets.md).
SPLITS = ("development", "held-out")
_REPO = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def _manifests() -> dict[str, dict]:
    root = resources.files("hsad.data_manifests")
    out = {}
    for entry in root.iterdir():
        if entry.name.endswith(".json"):
            m = json.loads(entry.read_text(encoding="utf-8"))
            out[m["name"]] = m
    return dict(sorted(out.items()))


def split_of(name: str) -> str:
    """The split scene ``name`` belongs to (:data:`SPLITS`; a manifest without one is a
    development scene)."""
    return _split(manifest(name))


def _split(m: dict) -> str:
    return m.get("split", SPLITS[0])


def names(split: str | None = "development") -> list[str]:
    """Names of the known benchmark scenes of ``split`` (every split's when None), sorted.
    The default, the development scenes, is what ``all`` means everywhere."""
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return [n for n, m in _manifests().items() if split in (None, _split(m))]


def expand(entry: str) -> list[str]:
    """The scene names a name on the command line stands for: ``all`` (the development
    scenes) or a split's name (``held-out``) for its scenes, a scene name for itself."""
    if entry in _manifests():
        return [entry]
    if entry == "all":
        return names()
    return names(entry) if entry in SPLITS else [entry]


def manifest(name: str) -> dict:
    """The manifest of scene ``name`` (a copy); DatasetError if unknown."""
    try:
        return json.loads(json.dumps(_manifests()[name]))
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(names(None))} "
                           f"(groups: all, {', '.join(SPLITS[1:])})") from None


def same_image(name: str) -> list[str]:
    """The scenes that hold the same image as ``name`` (itself included), sorted: a
    manifest's ``same_image_as`` (abu-beach-4 is pavia-center-100, rescaled)."""
    group = {name, *manifest(name).get("same_image_as", [])}
    return sorted(group)


def fold_scenes(name: str, scenes) -> list[str]:
    """``scenes`` without ``name`` and the scenes holding its image: what a leave-one-out
    fold may choose on when ``name`` is left out. Names hsad has no manifest for (a
    researcher's own files) are their own group."""
    group = set(same_image(name)) if name in _manifests() else {name}
    return [s for s in scenes if s not in group]


def image_mean(values: dict[str, float]) -> float:
    """Mean of per-scene ``values`` over distinct images: scenes holding one image
    (:func:`same_image`) are averaged first, so that image counts once."""
    groups: dict[tuple[str, ...], list[float]] = {}
    for name, v in values.items():
        key = tuple(same_image(name)) if name in _manifests() else (name,)
        groups.setdefault(key, []).append(float(v))
    return float(np.mean([np.mean(g) for g in groups.values()]))


def cache_dir() -> Path:
    """The per-user download cache (``pooch.os_cache("hsad")``)."""
    return Path(pooch.os_cache("hsad"))


def search_path() -> list[Path]:
    """Folders searched for scene files, in order (existing or not): ``$HSAD_DATA_DIR`` or
    ``../shared/datasets`` beside the current directory and (a checkout only) beside the
    repository root; then the cache."""
    env = os.environ.get(ENV_VAR)
    if env:
        dirs = [Path(env)]
    else:
        dirs = [Path.cwd().parent / "shared" / "datasets"]
        if (_REPO / "pyproject.toml").is_file():  # a source checkout, not an installed wheel
            dirs.append(_REPO.parent / "shared" / "datasets")
    dirs.append(cache_dir())
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def data_dir() -> Path:
    """The first existing folder of :func:`search_path` (the cache folder if none exists)."""
    return next((d for d in search_path() if d.is_dir()), cache_dir())


def path(name: str) -> Path:
    """Path of the scene file of ``name``; DatasetError if not found on the search path."""
    m = manifest(name)
    for d in search_path():
        candidate = d / m["file"]
        if candidate.is_file():
            return candidate
    where = ", ".join(str(d) for d in search_path())
    raise DatasetError(f"scene file {m['file']} not found in {where}; set {ENV_VAR} or run "
                       f"`hsad datasets fetch {name}` (Python: hsad.datasets.fetch({name!r}))")


def sha256(file: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(name: str, file: str | os.PathLike | None = None) -> Path:
    """Check the scene file's SHA-256 against its manifest; return its path."""
    m = manifest(name)
    p = path(name) if file is None else Path(file)
    got = sha256(p)
    if got != m["sha256"]:
        raise DatasetError(f"sha256 mismatch for dataset {name!r}: expected {m['sha256']}, "
                           f"got {got} (file altered or incomplete)", p)
    return p


def load(name: str, chunks=None, verify_sha256: bool = True) -> tuple[xr.DataArray, xr.DataArray]:
    """Return ``(cube, gt)`` of a benchmark scene after verifying its checksum.

    ``cube`` keeps the file's native dtype (pavia-center-100 is float64); ``gt`` is a
    bool ``(y, x)`` DataArray aligned with the cube (True = anomaly).
    """
    from hsad.io.matlab import load_mat

    m = manifest(name)
    p = verify(name) if verify_sha256 else path(name)
    cube, gt = load_mat(p, key=m["cube_key"], gt_key=m["gt_key"], chunks=chunks)
    cube.attrs.update(dataset=name, sensor=m["sensor"])
    return cube, map_like(cube, np.asarray(gt, dtype=bool), name="gt")


def scene_files(entries) -> list[str]:
    """Benchmark names and labelled scene files as given, ``all`` and a split's name
    replaced by their scenes (:func:`expand`), each folder by the MAT files in it
    (sorted)."""
    out: list[str] = []
    for entry in (name for given in entries for name in expand(given)):
        folder = Path(entry)
        if entry not in _manifests() and folder.is_dir():
            files = sorted(str(f) for f in folder.iterdir() if f.suffix.lower() == ".mat")
            if not files:
                raise DatasetError("no .mat scene in this folder", folder)
            out.extend(files)
        else:
            out.append(entry)
    return out


def load_labelled(scene: str, chunks=None) -> tuple[xr.DataArray, xr.DataArray]:
    """``(cube, gt)`` of a benchmark scene by name (:func:`load`), or of a labelled scene
    file of one's own: a MAT file holding a cube and its ground truth, both found by name
    as :func:`hsad.io.matlab.load_mat` finds them (a truth with NaN pixels as float32, NaN
    unlabelled: the metrics leave them out). ``cube.attrs["dataset"]`` is the name or the
    file's stem."""
    if scene in _manifests():
        return load(scene, chunks)
    p = Path(scene)
    if not p.is_file():
        raise DatasetError(f"unknown scene {scene!r}: neither a benchmark name "
                           f"({', '.join(names(None))}) nor a file")
    from hsad.io.matlab import load_mat

    cube, gt = load_mat(p, chunks=chunks, unlabelled_nan=True)
    if gt is None:
        from hsad.io.mat_variables import truth_off_grid

        raise DatasetError(truth_off_grid(p, cube.shape[:2]) or
                           "no ground truth found beside the cube: a labelled scene needs one "
                           "(variable names: docs/formats.md, MATLAB)", p)
    cube.attrs.update(dataset=p.stem)
    return cube, map_like(cube, gt, name="gt")  # bool, or float32 with NaN unlabelled


def fetch(name: str, force: bool = False) -> Path:
    """Download scene ``name`` into the cache (checking its sha256) unless already present.

    Raises DatasetError when the download fails (no network, moved file, bad checksum).
    """
    m = manifest(name)
    if not force:
        try:
            return verify(name)
        except DatasetError:
            pass
    url = m["source"]["url"]
    _check_cache(cache_dir())
    created = _missing_folders(cache_dir())
    log = pooch.get_logger()
    level = log.level
    log.setLevel("ERROR")  # pooch's "Downloading …" line: a failure is one line, ours
    try:
        got = pooch.retrieve(url, known_hash=f"sha256:{m['sha256']}", fname=m["file"],
                             path=cache_dir(), progressbar=False)
    except BaseException as exc:
        for folder in created:  # deepest first; only if left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if not isinstance(exc, Exception):
            raise
        raise DatasetError(f"download of dataset {name!r} from {url} failed: "
                           f"{_why(exc)}") from exc
    finally:
        log.setLevel(level)
    return Path(got)


def _check_cache(folder: Path) -> None:
    """DatasetError naming the cache ``folder`` when no download could be kept there (a
    file on its path, a folder one cannot write in): it had read as the download's
    failure (``NotADirectoryError``), with nothing downloaded."""
    for place in (folder, *folder.parents):
        if os.path.lexists(place):
            if not place.is_dir():
                why = f"{place} is not a folder"
            elif not os.access(place, os.W_OK | os.X_OK):
                why = f"cannot write in {place}"
            else:
                return
            raise DatasetError(f"the download cache {folder} cannot hold files: {why} (it "
                               "is pooch's cache for hsad: set XDG_CACHE_HOME to move it)")


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its missing parents, deepest first (those a download would create)."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def _why(exc: BaseException) -> str:
    """One line on a failed download: no network, HTTP status, checksum, or the error."""
    try:
        import requests
    except ImportError:  # pragma: no cover - pooch depends on requests
        requests = None
    if requests is not None and isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return "no network connection (cannot reach the server); nothing was written"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


__all__ = ["SPLITS", "data_dir", "expand", "fetch", "fold_scenes", "image_mean", "load",
           "load_labelled", "manifest", "names", "path", "same_image", "scene_files",
           "search_path", "split_of", "verify"]
