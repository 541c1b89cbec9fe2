"""Benchmark runner: detectors × labelled scenes → AUC(D,F), AUC(F,τ), SNPR and runtime."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

from hsad import datasets, detectors
from hsad.outputs.metrics import evaluate


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


def run(methods: Iterable[str], scenes: Iterable[str], params: dict[str, dict] | None = None,
        stages: bool = False, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Run every method on every scene: benchmark names or labelled MAT files of one's own
    (:func:`hsad.datasets.load_labelled`). ``params`` maps a method to its hyperparameters.

    With ``stages`` set, detectors that expose stages (``score_stages``) add one row per
    stage map, timed with the whole run. Repeated methods and scenes run once. A scene file
    of one's own is named by its stem, or by its path when that stem is a benchmark
    scene's name (only scenes given by name are checked against their manifest).
    """
    rows: list[Row] = []
    params = params or {}
    methods = list(dict.fromkeys(methods))  # each once: a repeated name adds nothing
    seen: set[str] = set()
    for entry in dict.fromkeys(scenes):
        cube, gt = datasets.load_labelled(entry)
        scene = cube.attrs["dataset"]
        if scene in seen or (scene in datasets.names() and entry != scene):
            scene = str(entry)  # two files of one name, or a file named like a benchmark
        seen.add(scene)
        cube = cube.persist() if hasattr(cube.data, "dask") else cube
        gt = np.asarray(getattr(gt, "values", gt))  # bool, or NaN where unlabelled
        for method in methods:
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


def to_markdown(rows: list[Row]) -> str:
    """One table per figure: scenes as rows, methods as columns, with the mean."""
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
        lines = [f"### {title}", "", "| scene | " + " | ".join(methods) + " |",
                 "|---|" + "---:|" * len(methods)]
        for s in scenes:
            cells = [fmt.format(table[(s, m)]) if (s, m) in table else "" for m in methods]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        means = [fmt.format(np.mean([table[(s, m)] for s in scenes if (s, m) in table]))
                 for m in methods]
        lines.append("| **mean** | " + " | ".join(f"**{c}**" for c in means) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def to_csv(rows: list[Row]) -> str:
    """Long-format CSV, one line per (scene, method)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(Row.__dataclass_fields__))
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    return buf.getvalue()
