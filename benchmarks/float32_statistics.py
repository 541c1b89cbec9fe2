"""Why RX's statistics stay float64: RX with a float32 covariance on the real scenes.

A float32 covariance (a SYRK at twice the float64 rate) would make global RX's fit about
twice as fast. This script measures what it costs on the benchmark scenes: the scatter
matrix is accumulated in float32 over pieces of ``--piece`` pixels (centred on a
reference, merged in float64: the best a float32 SYRK can do), the whitening and scores are
then computed in float64 as usual, and the scores are compared with the all-float64 ones.
The condition number printed is that of the band-equilibrated covariance (what RX inverts).

    .venv/bin/python benchmarks/float32_statistics.py
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from hsad import datasets
from hsad.cube import good_band_mask
from hsad.engine.covariance import whitening
from hsad.outputs.metrics import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402


def covariance(x: np.ndarray, dtype, piece: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the rows of ``x``, scatter accumulated in ``dtype``."""
    ref = x[:piece].mean(axis=0)
    centred = (x - ref).astype(dtype)
    scatter = np.zeros((x.shape[1],) * 2)
    for lo in range(0, len(centred), piece):
        p = centred[lo:lo + piece]
        scatter += (p.T @ p).astype(np.float64)
    shift = centred.astype(np.float64).mean(axis=0)
    return ref + shift, scatter / len(x) - np.outer(shift, shift)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--piece", type=int, default=4096, help="pixels per float32 product")
    args = ap.parse_args(argv)
    names = require_scenes()
    warnings.simplefilter("ignore")
    print(f"{'scene':<18}{'bands':>6}{'condition':>11}{'max |Δ|/mean':>14}"
          f"{'AUC float64':>13}{'AUC float32':>13}")
    for name in names:
        cube, truth = datasets.load(name)
        values = np.asarray(cube.values[:, :, good_band_mask(cube)], dtype=np.float64)
        x = values.reshape(-1, values.shape[-1])
        scores, cond = {}, None
        for dtype in (np.float64, np.float32):
            mean, cov = covariance(x, dtype, args.piece)
            white, lam = whitening(cov)
            z = (x - mean) @ white
            scores[dtype] = np.einsum("ij,ij->i", z, z)
            cond = cond or lam[0] / lam[-1]
        exact, rough = scores[np.float64], scores[np.float32]
        auc = [evaluate(s.reshape(values.shape[:2]), truth)["auc_df"] for s in (exact, rough)]
        print(f"{name:<18}{x.shape[1]:>6}{cond:>11.1e}"
              f"{np.abs(rough - exact).max() / exact.mean():>14.2e}{auc[0]:>13.4f}{auc[1]:>13.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
