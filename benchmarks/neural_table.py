"""The neural detectors' table of docs/benchmarks.md from ``hsad benchmark --stages`` CSVs.

Per model: mean AUC(D,F) of its plain score, D_spectral and D_SS over the scenes, the
worst scene of D_SS and its margin over global RX (the manifest's ``rx_global_auc``),
scenes where D_SS ≥ RX, mean AUC(F,τ) of D_SS, and seconds per scene (fit + every map).

    .venv/bin/python benchmarks/neural_table.py docs/benchmarks_hadgan.csv docs/benchmarks_*.csv
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

import numpy as np

from hsad import datasets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+")
    args = ap.parse_args()
    print("| model | plain score | D_spectral | D_SS | D_SS ≥ RX on | worst D_SS − RX | "
          "AUC(F,τ) D_SS | s / scene |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.csv:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        by = defaultdict(dict)
        for r in rows:
            by[r["method"]][r["scene"]] = r
        plain = next(m for m in by if ":" not in m)
        dss = by[f"{plain}:d_ss"]
        rx = {s: float(datasets.manifest(s)["rx_global_auc"]) for s in dss}
        margins = {s: float(r["auc_df"]) - rx[s] for s, r in dss.items()}
        worst = min(margins, key=margins.get)

        def mean(method, key="auc_df", by=by):
            return np.mean([float(r[key]) for r in by[method].values()])

        print(f"| `{plain}` | {mean(plain):.4f} | {mean(f'{plain}:d_spectral'):.4f} | "
              f"**{mean(f'{plain}:d_ss'):.4f}** | {sum(v >= 0 for v in margins.values())} of "
              f"{len(margins)} | {margins[worst]:+.4f} ({worst}) | "
              f"{mean(f'{plain}:d_ss', 'auc_ft'):.4f} | {mean(plain, 'seconds'):.0f} |")


if __name__ == "__main__":
    main()
