"""Benchmark runner: detectors × labelled scenes → AUC(D,F), AUC(F,τ), SNPR and runtime."""

from __future__ import annotations

import csv
import io
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hsad import datasets, detectors
from hsad.errors import HsadError, ParameterError
from hsad.io import detect_format
from hsad.outputs.metrics import check_truth, evaluate

#: the side, in pixels, of the corner of the first scene each method runs on once, untimed,
#: before its timed runs: what a first run imports and sets up (dask's client lookup
#: imports dask.distributed, 0.1–0.4 s) is then charged to no scene
WARM_UP = 32


@dataclass
class Row:
    """One (scene, method) result; ``method`` may carry a stage suffix (``hadgan:d_spatial``)."""

    scene: str
    method: str
    auc_df: float
    auc_ft: float
    auc_dt: float
    snpr_db: float
    seconds: float


def _metrics_row(scene: str, method: str, scores, gt, seconds: float) -> Row:
    m = evaluate(np.asarray(scores), gt)
    return Row(scene, method, m["auc_df"], m["auc_ft"], m["auc_dt"], m["snpr_db"], seconds)


@dataclass
class Scene:
    """A scene of a benchmark run: its row name and what to load it by (a benchmark name
    or a labelled MAT file)."""

    name: str
    entry: str


def _file_of(entry: str) -> str:
    """The scene file an entry names (a benchmark scene's, or the file itself)."""
    return os.fspath(datasets.path(entry)) if entry in datasets.names(None) else entry


def check_scenes(entries: Iterable[str]) -> list[Scene]:
    """The scenes of a run, each checked before any detector runs: the file is there and
    loads, its ground truth is found and has anomaly and background pixels. A scene given
    twice (by name and by its file, or by two spellings of one path) is kept once. Each
    gets a distinct row name: its benchmark name, or the file's stem, or, where that is
    taken (or is a benchmark scene's name, or reads as a mean row: ``mean.mat``), its path
    as given, then its full path.

    Raises the first problem found (:class:`~hsad.errors.HsadError`), naming the file.
    Each scene is loaded here and again when it runs: reading it twice (a second or so
    for the ten benchmark scenes) rather than holding every scene at once.
    """
    scenes, files, taken = [], set(), set()
    for entry in dict.fromkeys(entries):
        if entry not in datasets.names(None) and Path(entry).is_file() and \
                detect_format(entry, "labelled scene") != "mat":
            raise ParameterError(
                "hsad benchmark takes labelled MAT files (cube and ground truth in one "
                "file) and benchmark names; for a scene with a ground-truth raster run "
                "`hsad detect SCENE -m METHOD -o scores.tif --truth TRUTH`", entry)
        file = os.path.realpath(_file_of(entry))  # a benchmark's: there, or the error says how
        if file in files:
            continue
        files.add(file)
        cube, gt = datasets.load_labelled(entry)
        try:
            check_truth(gt)
        except ParameterError as exc:
            raise ParameterError(exc.problem, _file_of(entry)) from exc
        from hsad.io import printable

        name = cube.attrs["dataset"]
        # a Latin-1 file name: its odd bytes \xfc in the tables (compared so, too)
        for candidate in (name, str(entry), file):
            if printable(candidate) not in taken and not _mean_label(candidate) and (
                    candidate == entry or candidate not in datasets.names(None)):
                name = candidate
                break
        else:
            name = f"{file} [{len(scenes) + 1}]"
        name = printable(name)
        taken.add(name)
        scenes.append(Scene(name, entry))
    if not scenes:
        raise ParameterError("no scene given (--datasets)")
    return scenes


def run(methods: Iterable[str], scenes: Iterable[str], params: dict[str, dict] | None = None,
        stages: bool = False, progress: Callable[[str], None] | None = None,
        failed: list[tuple[str, str]] | None = None) -> list[Row]:
    """Run every method on every scene: benchmark names or labelled MAT files of one's own
    (:func:`hsad.datasets.load_labelled`), checked first (:func:`check_scenes`: names,
    duplicates). ``params`` maps a method to its hyperparameters.

    With ``stages`` set, detectors that expose stages (``score_stages``) add one row per
    stage map, timed with the whole run. Repeated methods and scenes run once. Each method
    first runs once, untimed, on a :data:`WARM_UP` × :data:`WARM_UP` corner of the first
    scene, so that its one-time costs (imports, thread pools) fall on no scene's seconds.

    ``failed``: a list that receives ``(scene, problem)`` for each scene on which a method
    fails with a user error (:class:`~hsad.errors.HsadError`: e.g. a band without data); that
    scene's rows are left out and the run goes on. Without it, the error is raised.
    """
    rows: list[Row] = []
    warmed: set[str] = set()
    params = params or {}
    methods = list(dict.fromkeys(methods))  # each once: a repeated name adds nothing
    if not methods:
        raise ParameterError("no method given (-m)")
    for scene in check_scenes(scenes):
        cube, gt = datasets.load_labelled(scene.entry)
        cube = cube.persist() if hasattr(cube.data, "dask") else cube
        gt = np.asarray(getattr(gt, "values", gt))  # bool, or NaN where unlabelled
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                rows.extend(_scene_rows(scene.name, cube, gt, methods, params, stages,
                                        progress, warmed))
        except HsadError as exc:
            file = _file_of(scene.entry)
            if failed is None:
                raise type(exc)(exc.problem, exc.path or file) from exc
            failed.append((scene.name, exc.problem if exc.path in (None, file) else str(exc)))
            rows = [r for r in rows if r.scene != scene.name]
        finally:
            for w in caught:  # said again, naming the scene they came from
                warnings.warn(f"{scene.name}: {w.message}", w.category, stacklevel=2)
    return rows


def _warm_up(det, cube, stages: bool) -> None:
    """``det`` run once on a corner of ``cube``, its maps, warnings and errors dropped (a
    corner may be too small for a method that runs on the scene: the timed run says so)."""
    corner = cube.isel(y=slice(0, WARM_UP), x=slice(0, WARM_UP))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            det.fit(corner)
            (det.score_stages if stages and hasattr(det, "score_stages") else det.score)(
                corner)
        except Exception:  # a warm-up only: the timed run reports what fails
            pass


def _scene_rows(scene: str, cube, gt, methods, params, stages, progress,
                warmed: set[str] | None = None) -> list[Row]:
    """Every method's rows on one scene (each method in ``warmed`` after its warm-up)."""
    rows = []
    for method in methods:
        if warmed is not None and method not in warmed:
            _warm_up(detectors.get(method, **params.get(method, {})), cube, stages)
            warmed.add(method)
        det = detectors.get(method, **params.get(method, {}))
        t0 = time.perf_counter()
        det.fit(cube)
        if stages and hasattr(det, "score_stages"):
            maps = det.score_stages(cube)
            scores = maps.pop("score")
        else:
            maps, scores = {}, det.score(cube)
        scores = np.asarray(scores.values)
        seconds = time.perf_counter() - t0
        main = _metrics_row(scene, method, scores, gt, seconds)
        rows.append(main)
        for stage, smap in maps.items():
            if getattr(smap, "ndim", 0) == 2 and stage != "residual":
                rows.append(_metrics_row(scene, f"{method}:{stage}", smap.values, gt,
                                         seconds))
        if progress:
            progress(f"{scene:18s} {method:10s} AUC(D,F)={main.auc_df:.4f}  {seconds:7.2f} s")
    return rows


def _pivot(rows: list[Row], field: str) -> tuple[list[str], list[str], dict]:
    scenes = list(dict.fromkeys(r.scene for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    table = {(r.scene, r.method): getattr(r, field) for r in rows}
    return scenes, methods, table


def _cell(text: str) -> str:
    """A name as a Markdown table cell: its ``|`` escaped (a file ``a|b.mat``)."""
    return str(text).replace("|", "\\|")


def _groups(scenes: list[str]) -> dict[str, list[str]]:
    """The scenes of each kind in a run, in order: development and held-out benchmark
    scenes, and files of one's own (``your files``)."""
    known = datasets.names(None)
    out: dict[str, list[str]] = {}
    for s in scenes:
        out.setdefault(datasets.split_of(s) if s in known else "your files", []).append(s)
    return out


#: the label of the mean over every scene of a run (tables and picture)
MEAN_ROW = "mean"


def _mean_label(name: str) -> bool:
    """Whether a scene named ``name`` would read as a mean row (``mean.mat``'s stem)."""
    return name == MEAN_ROW or name.startswith(f"{MEAN_ROW}, ")


def mean_rows(scenes: list[str]) -> list[tuple[str, list[str]]]:
    """``(label, scenes)`` of each mean a run reports: of each kind of scene
    (:func:`_groups`) when a run mixes them, since one mean over development and held-out
    scenes says neither, then over every scene (``mean``)."""
    groups = _groups(scenes)
    return ([(f"mean, {k} ({len(v)})", v) for k, v in groups.items()]
            if len(groups) > 1 else []) + [(MEAN_ROW, scenes)]


def to_markdown(rows: list[Row]) -> str:
    """One table per figure: scenes as rows, methods as columns, with the mean; and the
    mean of each kind of scene (:func:`_groups`) when a run mixes them, since one mean
    over development and held-out scenes says neither."""
    parts = []
    titles = {
        "auc_df": "AUC(D,F) (higher is better)",
        "auc_ft": "AUC(F,τ) (lower is better)",
        "snpr_db": "SNPR in dB (higher is better)",
        "seconds": "Runtime in seconds (fit + score)",
    }
    for field, title in titles.items():
        scenes, methods, table = _pivot(rows, field)
        fmt = "{:.2f}" if field in ("seconds", "snpr_db") else "{:.4f}"
        lines = [f"### {title}", "", "| scene | " + " | ".join(map(_cell, methods)) + " |",
                 "|---|" + "---:|" * len(methods)]
        for s in scenes:
            cells = [fmt.format(table[(s, m)]) if (s, m) in table else "" for m in methods]
            lines.append(f"| {_cell(s)} | " + " | ".join(cells) + " |")
        for label, members in mean_rows(scenes):
            values = [[table[(s, m)] for s in members if (s, m) in table] for m in methods]
            # a method that failed on every scene of a kind has no mean there
            means = [f"**{fmt.format(np.mean(v))}**" if v else "" for v in values]
            lines.append(f"| **{label}** | " + " | ".join(means) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def to_csv(rows: list[Row]) -> str:
    """Long-format CSV, one line per (scene, method), lines ending in ``\n`` as the CSV of
    ``detect --spectra`` (``csv``'s default ``\r\n`` left a carriage return in the last
    column for shell tools)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(Row.__dataclass_fields__),
                            lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    return buf.getvalue()


__all__ = ["check_scenes", "Row", "run", "Scene", "to_csv", "to_markdown"]
