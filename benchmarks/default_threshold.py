"""What the default threshold rule gives on the labelled scenes (docs/outputs.md, thresholds).

The rule (hsad.engine.thresholds.robust_threshold: a robust log-normal fit of the scores, nominal
false-alarm rate 0.001) never sees the ground truth; the truth is used here only to report,
per scene and detector, the share of pixels flagged, the detection rate P_D and the false-
alarm rate P_F achieved. For RX the χ² null threshold at the same nominal rate (``--far``)
is reported beside it.

    .venv/bin/python benchmarks/default_threshold.py -m rx,aed,hadgan
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from hsad import datasets, detectors
from hsad.engine.thresholds import DEFAULT_FAR

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402


def rates(mask: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(share flagged, P_D, P_F) of a boolean mask against the truth."""
    return float(mask.mean()), float(mask[truth].mean()), float(mask[~truth].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--methods", default="rx,aed", help="comma-separated detectors")
    ap.add_argument("--datasets", default="all", help="comma-separated scenes, or all")
    args = ap.parse_args()
    names = require_scenes(None if args.datasets == "all" else args.datasets.split(","))
    methods = args.methods.split(",")
    print(f"nominal false-alarm rate {DEFAULT_FAR:g}; flagged / P_D / P_F per scene\n")
    print("| scene | detector | rule | flagged | P_D | P_F |")
    print("|---|---|---|---|---|---|")
    summary: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for name in names:
        cube, gt = datasets.load(name)
        truth = np.asarray(gt.values, dtype=bool)
        for method in methods:
            det = detectors.get(method)
            if "progress" in det.get_params():
                det.set_params(progress=False)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = det.fit_score(cube)
            rules = [("default", det.threshold(scores))]
            if det.null_threshold(DEFAULT_FAR) is not None:
                rules.append(("χ² (--far)", det.threshold(scores, far=DEFAULT_FAR)))
            for rule, mask in rules:
                r = rates(np.asarray(mask.values, dtype=bool), truth)
                summary.setdefault((method, rule), []).append(r)
                print(f"| {name} | {method} | {rule} | {r[0]:.4f} | {r[1]:.3f} | {r[2]:.4f} |"
                      f"  <!-- {time.perf_counter() - t0:.1f} s -->")
    print("\n| detector | rule | median P_F | worst P_F | mean P_D |")
    print("|---|---|---|---|---|")
    for (method, rule), rows in summary.items():
        arr = np.array(rows)
        print(f"| {method} | {rule} | {np.median(arr[:, 2]):.4f} | {arr[:, 2].max():.4f} | "
              f"{arr[:, 1].mean():.3f} |")


if __name__ == "__main__":
    main()
