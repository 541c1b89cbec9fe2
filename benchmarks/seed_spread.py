"""How much HADGAN's maps move with the training seed, and whether averaging seeds helps.

For each scene: HADGAN (library defaults) trained with seeds 0–3; AUC(D,F) of each seed's
D_spectral and of its D_SS (λ·N(D_spatial) + (1 − λ)·N(D_spectral) with the default's
λ, ``hsad.fusion.Fusion()``, but D_spectral itself, not its area top-hat as the default
fuses), and of the ensemble (the mean of the four min-max D_spectral maps, fused the same
way). The
spatial map does not depend on the seed. About 2.5 min per scene on 2 cores.

    .venv/bin/python benchmarks/seed_spread.py abu-airport-1 abu-beach-2 sandiego-1 abu-urban-2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from hsad import datasets, detectors
from hsad import fusion as F
from hsad.outputs.metrics import auc_df

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402

SEEDS = (0, 1, 2, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenes", nargs="*", help="default: every shared scene")
    args = ap.parse_args()
    names = require_scenes(args.scenes or None)
    torch.set_num_threads(1)
    print("scene              map          " + "  ".join(f"seed {s}" for s in SEEDS)
          + "  spread  ensemble")
    for name in names:
        cube, gt = datasets.load(name)
        fusion = F.Fusion().resolved()  # the library's default fusion
        specs, spatial = [], None
        for seed in SEEDS:
            det = detectors.get("hadgan", seed=seed, progress=False, device="cpu").fit(cube)
            maps = fusion.stages(det.residual(cube).compute(), det._scene_good_bands(cube))
            specs.append(F.normalise_map(maps["d_spectral"]))
            spatial = F.normalise_map(maps["d_spatial"])  # the same for every seed
        ensemble = np.mean(specs, axis=0)
        lam = fusion.lam
        for label, maps in (("D_spectral", specs + [ensemble]),
                            ("D_SS", [lam * spatial + (1 - lam) * s for s in specs + [ensemble]])):
            aucs = [auc_df(m, gt.values) for m in maps]
            print(f"{name:18s} {label:11s} " + "  ".join(f"{a:.4f}" for a in aucs[:-1])
                  + f"  {max(aucs[:-1]) - min(aucs[:-1]):.4f}  {aucs[-1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
