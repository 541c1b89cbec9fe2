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
    .venv/bin/python benchmarks/untrained_baseline.py --cache docs/untrained_baseline.csv --no-run
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from hsad import datasets, detectors
from hsad.outputs.metrics import auc_df

#: the maps reported for each network (others: its plain score, D_spectral and D_SS)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402

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


def cached(cache: Path) -> dict[tuple[str, str, str, str], float]:
    """(scene, method, map, run) -> AUC of the rows ``cache`` holds (none if it is absent)."""
    done: dict[tuple[str, str, str, str], float] = {}
    if cache.exists():
        with open(cache, newline="") as fh:
            for row in csv.DictReader(fh):
                done[row["scene"], row["method"], row["map"], row["run"]] = float(row["auc"])
    return done


def measure(methods: list[str], names: list[str], cache: Path) -> dict:
    """(scene, method, map, run) -> AUC, read from ``cache`` or computed and appended."""
    done = cached(cache)

    def missing(name: str) -> list[tuple[str, str]]:
        return [(m, r) for m in methods for r in ("trained", "untrained")
                if not any(k[:2] == (name, m) and k[3] == r for k in done)]

    require_scenes([n for n in names if missing(n)])  # before the cache is touched
    new = not cache.exists() or cache.stat().st_size == 0  # a first run killed early
    with open(cache, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["scene", "method", "map", "run", "auc", "seconds"])
            fh.flush()
        for name in names:
            todo = missing(name)
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


#: how docs/benchmarks.md names the maps
LABELS = {"hadgan": "HADGAN", "fanogan": "f-AnoGAN", "score": "plain score",
          "d_spectral": "D_spectral", "d_ss": "D_SS"}


def _pair(trained: float, untrained: float, bold: bool = False) -> str:
    text = f"{trained:.4f} / {untrained:.4f}"
    return f"**{text}**" if bold else text


def scene_table(done: dict, methods: list[str], names: list[str]) -> str:
    """Markdown: per scene, each map trained / untrained; then the means over the scenes
    and over the distinct images (docs/benchmarks.md, "What training adds")."""
    cols = [(m, s) for m in methods for s in MAPS.get(m, ("score", "d_spectral", "d_ss"))]
    lines = ["| scene | " + " | ".join(f"{LABELS.get(m, m)} {LABELS[s]}" for m, s in cols)
             + " |", "|---" * (len(cols) + 1) + "|"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(
            _pair(done[name, m, s, "trained"], done[name, m, s, "untrained"]) for m, s in cols)
            + " |")
    for label, mean, bold in (("**mean**", lambda v: float(np.mean(list(v.values()))), True),
                              ("per distinct image", datasets.image_mean, False)):
        cells = [_pair(mean({n: done[n, m, s, "trained"] for n in names}),
                       mean({n: done[n, m, s, "untrained"] for n in names}), bold)
                 for m, s in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_table(done: dict, methods: list[str], names: list[str]) -> str:
    """Markdown: per model, the mean of each map trained / untrained with the difference
    (bold when training lowers it), and the scenes on which training raised D_SS."""
    lines = ["| model | plain score | D_spectral | D_SS | D_SS raised on |",
             "|---|---|---|---|---|"]
    for m in methods:
        cells = []
        for s in ("score", "d_spectral", "d_ss"):
            if (names[0], m, s, "trained") not in done:
                cells.append("(its map is D_SS)")
                continue
            t = float(np.mean([done[n, m, s, "trained"] for n in names]))
            u = float(np.mean([done[n, m, s, "untrained"] for n in names]))
            diff = f"{abs(t - u):.3f}"
            diff = f"+{diff}" if t >= u else f"**\u2212{diff}**"
            cells.append(f"{_pair(t, u)} ({diff})")
        raised = sum(done[n, m, "d_ss", "trained"] > done[n, m, "d_ss", "untrained"]
                     for n in names)
        lines.append(f"| `{m}` | " + " | ".join(cells) + f" | {raised} of {len(names)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--methods", default="hadgan,fanogan")
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--cache", default="untrained_baseline.csv")
    ap.add_argument("--no-run", action="store_true",
                    help="only print the tables of what the cache holds (no training)")
    args = ap.parse_args()
    methods = args.methods.split(",")
    names = datasets.names() if args.datasets == "all" else args.datasets.split(",")
    if args.no_run:
        done = cached(Path(args.cache))
        missing = [(n, m) for n in names for m in methods
                   if not any(k[:2] == (n, m) for k in done)]
        if missing:
            raise SystemExit(f"error: {args.cache} has no rows for {missing[0][1]} on "
                             f"{missing[0][0]} (and {len(missing) - 1} more)")
    else:
        done = measure(methods, names, Path(args.cache))
    print()
    print(scene_table(done, [m for m in methods if m in MAPS], names))
    print()
    print(model_table(done, methods, names))


if __name__ == "__main__":
    main()
