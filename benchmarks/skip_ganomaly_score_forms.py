"""Skip-GANomaly's two score forms on the same trained networks: the paper's norms (Eq. 5,
the default) and the authors' code's means of squares (``-p score_form=code``).

Per scene: one fit (defaults, ``--seed``), then the plain score and its two terms in each
form; AUC(D,F) against the ground truth.

    .venv/bin/python benchmarks/skip_ganomaly_score_forms.py
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from hsad import datasets, detectors
from hsad.outputs.metrics import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402

TERMS = ("anomaly", "r_con", "l_lat")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", default=None, help="comma-separated (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    names = require_scenes(args.scenes.split(",") if args.scenes else None)
    print(f"{'scene':<18}" + "".join(f"{f'{t} {form}':>16}" for form in ("paper", "code")
                                     for t in TERMS))
    table = []
    for name in names:
        cube, truth = datasets.load(name)
        det = detectors.get("skip-ganomaly", seed=args.seed, progress=False).fit(cube)
        row = []
        for form in ("paper", "code"):
            det.set_params(score_form=form)
            stages = det.score_stages(cube)
            row += [evaluate(stages[t], truth)["auc_df"] for t in TERMS]
        table.append(row)
        print(f"{name:<18}" + "".join(f"{v:>16.4f}" for v in row), flush=True)
    print(f"{'mean':<18}" + "".join(f"{v:>16.4f}" for v in np.mean(table, axis=0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
