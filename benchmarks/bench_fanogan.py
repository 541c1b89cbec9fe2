"""f-AnoGAN on the benchmark scenes: plain score and D_SS fusion next to global RX.

For each scene one f-AnoGAN model is trained on the scene itself (default hyperparameters,
no per-scene tuning), then scored twice: the plain score ``A(x)`` and the D_SS fusion of
its residual. Prints AUC(D,F) of global RX (the manifest's ``rx_global_auc``, computed by
the peer implementation of METHODS §4), of plain f-AnoGAN and of f-AnoGAN + D_SS, with
wall and CPU seconds (training and plain scoring; D_SS adds its own time). The load
average is printed too: the CPU is shared, so wall time depends on what else runs.

    .venv/bin/python benchmarks/bench_fanogan.py
    .venv/bin/python benchmarks/bench_fanogan.py --scenes abu-beach-1 -p input=patch
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hsad import datasets, detectors
from hsad.config import parse_params
from hsad.outputs.metrics import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402


def run_scene(name: str, params: dict) -> dict:
    """Train, score and time f-AnoGAN on one scene; returns AUCs and seconds."""
    cube, gt = datasets.load(name)
    cube = cube.persist()
    truth = np.asarray(getattr(gt, "values", gt), dtype=bool)
    det = detectors.get("fanogan", **{"progress": False, **params})
    w0, c0 = time.perf_counter(), time.process_time()
    det.fit(cube)
    plain = det.score(cube).values
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    w1 = time.perf_counter()
    stages = det.score_stages(cube)
    dss_wall = time.perf_counter() - w1
    row = {"scene": name, "rx": datasets.manifest(name)["rx_global_auc"],
           "plain": evaluate(plain, truth)["auc_df"],
           "dss": evaluate(stages["d_ss"].values, truth)["auc_df"],
           "d_spectral": evaluate(stages["d_spectral"].values, truth)["auc_df"],
           "wall": wall, "cpu": cpu, "dss_wall": dss_wall,
           "load": os.getloadavg()[0]}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", nargs="*", default=None, help="default: every known scene")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="f-AnoGAN hyperparameter (repeatable); the defaults otherwise")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = parse_params(args.param)
    names = require_scenes(args.scenes or None)
    print(f"f-AnoGAN {params or 'defaults'}; torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs")
    head = (f"| {'scene':18s} | {'RX':>6s} | {'f-AnoGAN':>8s} | {'+D_SS':>6s} | "
            f"{'D_spec':>6s} | {'wall s':>6s} | {'cpu s':>6s} | {'D_SS s':>6s} | {'load':>4s} |")
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.strip("|").split("|")) + "|")
    rows = []
    for name in names:
        r = run_scene(name, params)
        rows.append(r)
        print(f"| {name:18s} | {r['rx']:6.4f} | {r['plain']:8.4f} | {r['dss']:6.4f} | "
              f"{r['d_spectral']:6.4f} | {r['wall']:6.1f} | {r['cpu']:6.1f} | "
              f"{r['dss_wall']:6.1f} | {r['load']:4.1f} |", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "scene"}
    print(f"| {'**mean**':18s} | {mean['rx']:6.4f} | {mean['plain']:8.4f} | "
          f"{mean['dss']:6.4f} | {mean['d_spectral']:6.4f} | {mean['wall']:6.1f} | "
          f"{mean['cpu']:6.1f} | {mean['dss_wall']:6.1f} | {mean['load']:4.1f} |")
    print(f"max wall (train + plain score): {max(r['wall'] for r in rows):.1f} s")


if __name__ == "__main__":
    main()
