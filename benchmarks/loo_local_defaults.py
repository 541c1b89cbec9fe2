"""Leave-one-scene-out choice of the local detectors' defaults (``lrx``, ``crd``; issue #17).

    .venv/bin/python benchmarks/loo_local_defaults.py [--csv FILE] [--methods lrx,crd]
        [--report-only]

1. AUC(D,F) of every grid setting on every benchmark scene, computed once and cached in
   ``--csv`` (rows already there are not recomputed, so an interrupted sweep resumes).
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

FLOOR = 0.6
WINDOWS = {"lrx": [(3, 9), (5, 15), (7, 21)], "crd": [(3, 9), (5, 15)]}
GRID = {
    "lrx": [dict(inner=i, outer=o, pca=k, ridge=r) for i, o in WINDOWS["lrx"]
            for k in (5, 10, 15, 20, None) for r in (1e-3, 1e-2)],
    "crd": [dict(inner=i, outer=o, pca=k, lam=lam) for i, o in WINDOWS["crd"]
            for k in (10, 20) for lam in (1e-6, 1e-3, 1e-1)],
}
FIELDS = ["method", "setting", "scene", "auc", "seconds", "dimension", "warnings"]


def key(params: dict) -> str:
    """A setting as a stable text key: ``inner=5 outer=15 pca=10 ridge=0.001``."""
    return " ".join(f"{k}={v}" for k, v in params.items())


def sweep(path: Path, methods: list[str]) -> list[dict]:
    """Compute the missing (method, setting, scene) AUCs into ``path``; return every row."""
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    done = {(r["method"], r["setting"], r["scene"]) for r in rows}
    new = not path.exists()
    with path.open("a", newline="") as fh:
        out = csv.DictWriter(fh, FIELDS)
        if new:
            out.writeheader()
        for method in methods:
            for scene in datasets.names():
                todo = [p for p in GRID[method] if (method, key(p), scene) not in done]
                if not todo:
                    continue
                cube, gt = datasets.load(scene)
                cube = cube.persist()
                truth = np.asarray(gt.values, bool)
                for params in todo:
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=Path(__file__).with_suffix(".csv"),
                    help="AUC cache (default: beside this script; delete it to recompute)")
    ap.add_argument("--methods", default="lrx,crd")
    ap.add_argument("--report-only", action="store_true", help="only report the cached rows")
    args = ap.parse_args()
    methods = args.methods.split(",")
    os.environ.setdefault("HSAD_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared"
                                               / "datasets"))
    rows = list(csv.DictReader(args.csv.open())) if args.report_only else sweep(args.csv,
                                                                                methods)
    for method in methods:
        print(loo(rows, method))


if __name__ == "__main__":
    main()
