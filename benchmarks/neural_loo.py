"""Leave-one-scene-out D_SS of every neural detector, beside its in-sample figure.

The fusion default was chosen by ``benchmarks/choose_fusion.py`` on HADGAN's maps; its
leave-one-out table (docs/fusion_choice.md, written by that script) gives, for each left-out
scene, the setting chosen on the other nine. A model's leave-one-out D_SS is its D_SS on
each scene under that scene's fold setting: where the fold chose the default, the in-sample
figure of the model's benchmark CSV (``hsad benchmark --stages``) is the left-out one; the
other scenes are rerun here at the fold's setting (same seed and defaults, so the same
network). The models' own hyperparameters were not chosen by AUC.

    .venv/bin/python benchmarks/neural_loo.py docs/benchmarks_hadgan.csv docs/benchmarks_*.csv
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from hsad import datasets, detectors
from hsad.outputs.metrics import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fail, require_file, require_scenes  # noqa: E402

CHOICE = Path(__file__).resolve().parents[1] / "docs" / "fusion_choice.md"
ROW = re.compile(r"^\| ([\w-]+) \| (\w+) area=(\d+) λ=([\d.]+)( tophat)? \| [\d.]+ \| "
                 r"[\d.]+ \|$")


def fold_settings(path: Path = CHOICE) -> dict[str, dict]:
    """Left-out scene -> the fusion parameters chosen on the other scenes."""
    out = {}
    require_file(path, "the fusion choice's leave-one-out table", "run "
                 "benchmarks/choose_fusion.py, which writes it")
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line.strip())
        if m:
            out[m[1]] = {"fusion": m[2], "area": int(m[3]), "lam": float(m[4]),
                         "spectral_tophat": bool(m[5])}
    if not out:
        fail(f"no leave-one-out table found in {path}")
    return out


def in_sample(path: str) -> tuple[str, dict[str, float]]:
    """(model, scene -> D_SS AUC(D,F)) from a benchmark CSV."""
    with open(require_file(path, "benchmark CSV", "give hsad benchmark's --csv output"),
              newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("method", "").endswith(":d_ss")]
    if not rows:
        fail(f"{path}: no ':d_ss' rows (run hsad benchmark with --stages)")
    return rows[0]["method"].split(":")[0], {r["scene"]: float(r["auc_df"]) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+")
    args = ap.parse_args()
    folds = fold_settings()
    models = []  # (model, in-sample D_SS by scene, the scenes to rerun)
    for path in args.csv:
        model, fused = in_sample(path)
        f = detectors.get(model).fusion_()
        default = {"fusion": f.variant, "area": f.area, "lam": f.lam,
                   "spectral_tophat": f.spectral_tophat}
        models.append((model, fused, [s for s, setting in folds.items()
                                      if s in fused and setting != default]))
    require_scenes(sorted({s for *_, todo in models for s in todo}))
    print("| model | D_SS in-sample | D_SS leave-one-out | scenes rerun | per distinct image: "
          "in-sample, left out |")
    print("|---|---|---|---|---|")
    for model, fused, todo in models:
        left_out, rerun = dict(fused), []
        for scene in todo:
            setting = folds[scene]
            cube, gt = datasets.load(scene)
            det = detectors.get(model, output="d_ss", progress=False, **setting)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = det.fit_score(cube)
            left_out[scene] = float(evaluate(np.asarray(scores.values), gt.values)["auc_df"])
            rerun.append(f"{scene} ({left_out[scene]:.4f} vs {fused[scene]:.4f})")
        scenes = sorted(fused)
        print(f"| {model} | {np.mean([fused[s] for s in scenes]):.4f} | "
              f"{np.mean([left_out[s] for s in scenes]):.4f} | {', '.join(rerun) or '-'} | "
              f"{datasets.image_mean(fused):.4f}, {datasets.image_mean(left_out):.4f} |",
              flush=True)


if __name__ == "__main__":
    main()
