"""What sampled fusion statistics cost in AUC: ``stats_sample`` against exact statistics.

On scenes larger than ``stats_sample`` pixels (default 262 144), a reconstruction
detector takes the residual's and the components' statistics from a stratified sample of
rows, so that the network runs once over the scene. The benchmark scenes are far smaller
(about 10 000 pixels), so by default they use exact statistics. This script forces samples
of a few thousand pixels on them (``--samples``, e.g. a quarter and half of a 100 × 100
scene's rows) and compares AUC(D,F) of D_spectral, D_spatial and D_SS with the exact
statistics, model by model (one fit per scene, seed 0, defaults). This is a harsh test: the
default sample holds over 1 000 pixels per band, these hold 10–30.

    .venv/bin/python benchmarks/stats_sample_effect.py
    .venv/bin/python benchmarks/stats_sample_effect.py -m fanogan --samples 5000
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

STAGES = ("d_spectral", "d_spatial", "d_ss")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--method", default="hadgan")
    ap.add_argument("--samples", default="2500,5000", help="sample sizes, pixels")
    ap.add_argument("--scenes", default=None, help="comma-separated (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.samples.split(",")]
    names = require_scenes(args.scenes.split(",") if args.scenes else None)
    warnings.simplefilter("ignore")
    diffs = {n: {s: [] for s in STAGES} for n in sizes}
    print(f"{args.method}: AUC(D,F) with exact statistics, and its change with sampled ones")
    print(f"{'scene':<18}{'exact d_ss':>11}" + "".join(
        f"{f'Δ {s} @{n}':>20}" for n in sizes for s in STAGES))
    for name in names:
        cube, truth = datasets.load(name)
        det = detectors.get(args.method, seed=args.seed).fit(cube)
        aucs = {}
        for n in [0, *sizes]:
            det.set_params(stats_sample=n)
            sampled = n and det.fusion_statistics(cube) is not None
            maps = det.score_stages(cube)
            aucs[n] = {s: evaluate(maps[s], truth)["auc_df"] for s in STAGES}
            aucs[n]["sampled"] = sampled
        cells = []
        for n in sizes:
            for s in STAGES:
                d = aucs[n][s] - aucs[0][s]
                if aucs[n]["sampled"]:
                    diffs[n][s].append(d)
                cells.append(f"{d:+.4f}" if aucs[n]["sampled"] else "exact")
        print(f"{name:<18}{aucs[0]['d_ss']:>11.4f}" + "".join(f"{c:>20}" for c in cells),
              flush=True)
    for n in sizes:
        for s in STAGES:
            d = np.asarray(diffs[n][s])
            if d.size:
                print(f"sample {n} px, {s}: mean Δ {d.mean():+.4f}, mean |Δ| "
                      f"{np.abs(d).mean():.4f}, worst {d.min():+.4f} ({d.size} scenes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
