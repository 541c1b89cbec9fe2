"""Leave-one-scene-out choice of the local detectors' defaults (``lrx``, ``crd``; issue #17).

    .venv/bin/python benchmarks/loo_local_defaults.py [--csv FILE] [--record FILE | --no-record]
        [--methods lrx,crd] [--report-only]

1. AUC(D,F) of every grid setting on every benchmark scene, computed once. The measured
   record the docs cite, ``benchmarks/loo_local_defaults.csv`` (``--record``), is read and
   never written; rows it lacks are computed into ``--csv`` (default
   ``loo_local_defaults.csv`` in the current folder) and read from there on later runs, so
   an interrupted sweep resumes. With the record complete for the grid (as committed), a run
   computes and writes nothing. To extend the record itself, name it: ``--no-record --csv
   benchmarks/loo_local_defaults.csv``; to recompute everything, ``--no-record`` and a new
   ``--csv``.
2. For each scene s: select on the other scenes by the rule below, score s with that
   setting (its *left-out* AUC). The mean and worst of the left-out AUCs predict unseen
   scenes; the setting selected on all scenes (the new default) and its in-sample mean do not.

Selection rule: the highest mean AUC among settings whose worst scene is ≥ ``FLOOR`` (0.6);
the highest mean overall if none qualifies. Nothing is tuned per scene.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from hsad import datasets, detectors
from hsad.outputs.metrics import auc_df

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fail, require_scenes  # noqa: E402

FLOOR = 0.6
WINDOWS = {"lrx": [(3, 9), (5, 15), (7, 21)], "crd": [(3, 9), (5, 15)]}
GRID = {
    "lrx": [dict(inner=i, outer=o, pca=k, ridge=r) for i, o in WINDOWS["lrx"]
            for k in (5, 10, 15, 20, None) for r in (1e-3, 1e-2)],
    "crd": [dict(inner=i, outer=o, pca=k, lam=lam) for i, o in WINDOWS["crd"]
            for k in (10, 20) for lam in (1e-6, 1e-3, 1e-1)],
}
FIELDS = ["method", "setting", "scene", "auc", "seconds", "dimension", "warnings"]
#: the measured record docs/detectors.md cites (read only; see the module docstring)
RECORD = Path(__file__).resolve().with_suffix(".csv")


def key(params: dict) -> str:
    """A setting as a stable text key: ``inner=5 outer=15 pca=10 ridge=0.001``."""
    return " ".join(f"{k}={v}" for k, v in params.items())


def read_rows(path: Path | None) -> list[dict]:
    """The rows of a results CSV (none when ``path`` is None or absent)."""
    if path is None or not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def sweep(path: Path, methods: list[str], rows: list[dict]) -> list[dict]:
    """Compute the (method, setting, scene) AUCs missing from ``rows`` (the record's and
    ``path``'s) into ``path``, appended; return every row. ``path`` is opened only when
    something is missing."""
    done = {(r["method"], r["setting"], r["scene"]) for r in rows}
    todo = {(method, scene): [p for p in GRID[method] if (method, key(p), scene) not in done]
            for method in methods for scene in datasets.names()}
    todo = {k: v for k, v in todo.items() if v}
    if not todo:
        return rows
    require_scenes(sorted({scene for _, scene in todo}))
    print(f"computing {sum(map(len, todo.values()))} AUCs into {path}", file=sys.stderr,
          flush=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as fh:
        out = csv.DictWriter(fh, FIELDS)
        if new:
            out.writeheader()
        for (method, scene), params_left in todo.items():
            cube, gt = datasets.load(scene)
            cube = cube.persist()
            truth = np.asarray(gt.values, bool)
            for params in params_left:
                t0 = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    det = detectors.get(method, **params)
                    scores = det.fit_score(cube).values
                row = dict(method=method, setting=key(params), scene=scene,
                           auc=f"{auc_df(scores, truth):.4f}",
                           seconds=f"{time.perf_counter() - t0:.2f}",
                           dimension=scores_dimension(det, cube),
                           warnings=len(caught))
                out.writerow(row)
                fh.flush()
                rows.append({k: str(v) for k, v in row.items()})
                print(method, scene, row["setting"], row["auc"], row["seconds"], "s",
                      file=sys.stderr, flush=True)
    return rows


def scores_dimension(det, cube) -> int:
    """Spectral dimension the detector worked in."""
    if hasattr(det, "n_components_"):
        return int(det.n_components_)
    return int(det.bands_.sum()) if det.pca is None else int(det.pca)


def select(table: dict[str, dict[str, float]], scenes: list[str]) -> str:
    """The rule: best mean over ``scenes`` among settings whose worst is ≥ FLOOR."""
    stats = {s: (np.mean([v[x] for x in scenes]), min(v[x] for x in scenes))
             for s, v in table.items() if all(x in v for x in scenes)}
    ok = {s: m for s, (m, w) in stats.items() if w >= FLOOR} or {s: m for s, (m, _) in
                                                                 stats.items()}
    return max(sorted(ok), key=lambda s: ok[s])


def loo(rows: list[dict], method: str) -> str:
    """Markdown report of the leave-one-scene-out selection for ``method``."""
    table: dict[str, dict[str, float]] = {}
    secs: dict[str, list[float]] = {}
    for r in rows:
        if r["method"] == method:
            table.setdefault(r["setting"], {})[r["scene"]] = float(r["auc"])
            secs.setdefault(r["setting"], []).append(float(r["seconds"]))
    scenes = sorted({s for v in table.values() for s in v})
    if not table:
        return f"{method}: no results\n"
    final = select(table, scenes)
    lines = [f"### {method}: leave-one-scene-out ({len(scenes)} scenes, {len(table)} settings)",
             "", "| left-out scene | selected on the other scenes | in-sample AUC (final "
             "default) | left-out AUC |", "|---|---|---:|---:|"]
    chosen, left = {}, []
    for s in scenes:
        pick = select(table, datasets.fold_scenes(s, scenes))
        chosen[pick] = chosen.get(pick, 0) + 1
        left.append(table[pick][s])
        lines.append(f"| {s} | `{pick}` | {table[final][s]:.4f} | {table[pick][s]:.4f} |")
    ins = [table[final][s] for s in scenes]
    lines.append(f"| **mean** | | **{np.mean(ins):.4f}** | **{np.mean(left):.4f}** |")
    lines.append(f"| **worst** | | {min(ins):.4f} ({scenes[int(np.argmin(ins))]}) | "
                 f"{min(left):.4f} ({scenes[int(np.argmin(left))]}) |")
    lines += ["", f"Final default (selected on all {len(scenes)} scenes): `{final}`, "
              f"{np.mean(secs[final]):.2f} s per scene on average.",
              "Times chosen across the folds: "
              + ", ".join(f"`{k}` {v}×" for k, v in sorted(chosen.items(), key=lambda t: -t[1])),
              "", "All settings (mean, worst scene, mean seconds):", "",
              "| setting | mean AUC | worst | s/scene |", "|---|---:|---:|---:|"]
    for s in sorted(table, key=lambda s: -np.mean(list(table[s].values()))):
        v = list(table[s].values())
        lines.append(f"| `{s}` | {np.mean(v):.4f} | {min(v):.4f} | {np.mean(secs[s]):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", type=Path, default=RECORD,
                    help="the measured record the docs cite, read and never written "
                    "(default: benchmarks/loo_local_defaults.csv beside this script)")
    ap.add_argument("--no-record", dest="record", action="store_const", const=None,
                    help="leave the record out: every row from --csv, or computed")
    ap.add_argument("--csv", type=Path, default=Path("loo_local_defaults.csv"),
                    help="AUC cache: the rows the record lacks are computed and appended "
                    "here, and read back on later runs (default: loo_local_defaults.csv in "
                    "the current folder; created only when something is computed)")
    ap.add_argument("--methods", default="lrx,crd")
    ap.add_argument("--report-only", action="store_true",
                    help="only report the rows of the record and --csv (nothing computed)")
    args = ap.parse_args()
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in GRID]
    if unknown:
        fail(f"--methods: no grid for {', '.join(unknown)}; choose from {', '.join(GRID)}")
    os.environ.setdefault("HSAD_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared"
                                               / "datasets"))
    record = read_rows(args.record)
    same = args.record is not None and args.csv.resolve() == args.record.resolve()
    cached = [] if same else read_rows(args.csv)
    rows = record + cached
    if not args.report_only:
        rows = sweep(args.csv, methods, rows)
    print(f"rows: {len(record)} from the record ({args.record or 'left out'}), {len(cached)} "
          f"from {args.csv}, {len(rows) - len(record) - len(cached)} computed into it",
          file=sys.stderr, flush=True)
    for method in methods:
        print(loo(rows, method))


if __name__ == "__main__":
    main()
