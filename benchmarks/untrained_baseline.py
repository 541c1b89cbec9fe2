"""What training adds: each network's maps, trained, beside the same networks untrained.

For every shared scene and network (default: HADGAN and f-AnoGAN, at their defaults,
seed 0) the detector is fitted twice: as ``fit`` trains it, and with every optimiser step
disabled. Untrained, the networks' weights keep their seeded initial values; what no
optimiser sets still follows the data (batch-norm running statistics, VAE's running
decoder variance, ALAD's spectral-norm vectors; HADGAN's and f-AnoGAN's tensors all stay
as initialised). Both runs take the same epochs, so the normalisation, the sample and the
spatial map are the same; the residual's RX statistics are those of each run's residual.
AUC(D,F) of each map is printed side by side, with the mean over the scenes and over the
distinct images (abu-beach-4 and pavia-center-100 are one image, averaged first). What a
map keeps without training comes from the detector's fixed parts: the normalised spectra,
the RX of whatever residual the untrained networks leave, the spatial map of the cube's
principal components.

Results are cached in ``--cache`` (one row per scene, method, map and run), so an
interrupted run resumes.

    .venv/bin/python benchmarks/untrained_baseline.py --cache /tmp/untrained.csv
    .venv/bin/python benchmarks/untrained_baseline.py -m ae,vae --datasets abu-beach-1
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from hsad import datasets, detectors
from hsad.outputs.metrics import auc_df

#: the maps reported for each network (others: its plain score, D_spectral and D_SS)
MAPS = {"hadgan": ("d_spectral", "d_ss"), "fanogan": ("score", "d_spectral", "d_ss")}


@contextlib.contextmanager
def no_optimiser_steps():
    """Within the block, optimisers compute their gradients but never change a weight."""
    saved = {cls: cls.step for cls in (torch.optim.Adam, torch.optim.RMSprop)}
    try:
        for cls in saved:
            cls.step = lambda self, closure=None: None
        yield
    finally:
        for cls, step in saved.items():
            cls.step = step


def run(method: str, cube, truth: np.ndarray, trained: bool) -> dict[str, float]:
    """AUC(D,F) of each reported map of ``method`` fitted on ``cube`` (seed 0)."""
    det = detectors.get(method, progress=False, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.nullcontext() if trained else no_optimiser_steps():
            det.fit(cube)
        stages = det.score_stages(cube)
    return {m: auc_df(np.asarray(stages[m].values, np.float64), truth)
            for m in MAPS.get(method, ("score", "d_spectral", "d_ss"))}


def measure(methods: list[str], names: list[str], cache: Path) -> dict:
    """(scene, method, map, run) -> AUC, read from ``cache`` or computed and appended."""
    done: dict[tuple[str, str, str, str], float] = {}
    if cache.exists():
        with open(cache, newline="") as fh:
            for row in csv.DictReader(fh):
                done[row["scene"], row["method"], row["map"], row["run"]] = float(row["auc"])
    new = not cache.exists() or cache.stat().st_size == 0  # a first run killed early
    with open(cache, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["scene", "method", "map", "run", "auc", "seconds"])
            fh.flush()
        for name in names:
            todo = [(m, r) for m in methods for r in ("trained", "untrained")
                    if not any(k[:2] == (name, m) and k[3] == r for k in done)]
            if not todo:
                continue
            cube, gt = datasets.load(name)
            cube = cube.load()
            truth = np.asarray(gt.values, dtype=bool)
            for method, run_name in todo:
                t0 = time.perf_counter()
                aucs = run(method, cube, truth, trained=run_name == "trained")
                seconds = time.perf_counter() - t0
                for m, auc in aucs.items():
                    done[name, method, m, run_name] = auc
                    writer.writerow([name, method, m, run_name, f"{auc:.6f}", f"{seconds:.1f}"])
                fh.flush()
                shown = " ".join(f"{m} {a:.4f}" for m, a in aucs.items())
                print(f"{name} {method} {run_name}: {shown} ({seconds:.0f} s)", flush=True)
    return done


def table(done: dict, methods: list[str], names: list[str]) -> str:
    """Markdown: per scene, each map trained / untrained; then the means."""
    cols = [(m, s) for m in methods for s in MAPS.get(m, ("score", "d_spectral", "d_ss"))]
    head = "| scene | " + " | ".join(f"{m} {s}: trained / untrained" for m, s in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]

    def cell(values_t, values_u):
        return f"{values_t:.4f} / {values_u:.4f}"

    for name in names:
        lines.append(f"| {name} | " + " | ".join(
            cell(done[name, m, s, "trained"], done[name, m, s, "untrained"]) for m, s in cols)
            + " |")
    for label, mean in (("mean", lambda v: float(np.mean(list(v.values())))),
                        ("mean per distinct image", datasets.image_mean)):
        row = []
        for m, s in cols:
            t = mean({n: done[n, m, s, "trained"] for n in names})
            u = mean({n: done[n, m, s, "untrained"] for n in names})
            row.append(cell(t, u))
        lines.append(f"| **{label}** | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--methods", default="hadgan,fanogan")
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--cache", default="untrained_baseline.csv")
    args = ap.parse_args()
    methods = args.methods.split(",")
    names = datasets.names() if args.datasets == "all" else args.datasets.split(",")
    done = measure(methods, names, Path(args.cache))
    print()
    print(table(done, methods, names))


if __name__ == "__main__":
    main()
