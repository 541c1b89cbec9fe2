"""``--far`` on a background with nothing in it: the false-alarm rate each detector's rule
achieves where the truth is known (every flagged pixel is a false alarm).

A seeded 200 × 200 × 30 Gaussian scene with correlated bands (no anomaly, no spatial
structure) is scored by each detector; the mask at ``far`` then flags a share of it that
should be ``far``. RX uses its null distribution (χ², or the weighted χ² of a ridge); the
others the robust log-normal fit of their scores (``hsad.engine.thresholds.robust_threshold``),
which is only an approximation to their tails, in either direction.

    .venv/bin/python benchmarks/far_on_gaussian_background.py
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from hsad import detectors
from hsad.cube import make_cube

CASES = [("rx", {}), ("rx", {"ridge": 0.1}), ("rx", {"ridge": 1.0}), ("lrx", {}),
         ("crd", {}), ("local-mean-rx", {}), ("cluster-rx", {}), ("utd", {}), ("aed", {})]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="200x200x30", help="ROWSxCOLSxBANDS")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rows, cols, bands = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(args.seed)
    mix = rng.normal(size=(bands, bands)) * 40 + np.eye(bands) * 10
    x = (np.linspace(1000, 3000, bands) + rng.standard_normal((rows, cols, bands)) @ mix.T)
    cube = make_cube(x.astype(np.float32))
    fars = (0.01, 0.001)
    print(f"Gaussian background {rows} x {cols} x {bands}, seed {args.seed}: flagged share / "
          "far asked (1.00 = as asked)")
    print(f"{'detector':<22}{'rule':<34}" + "".join(f"{f'far {f:g}':>12}" for f in fars))
    warnings.simplefilter("ignore")
    for name, params in CASES:
        det = detectors.get(name, **params)
        scores = det.fit_score(cube)
        ratios, rule = [], ""
        for far in fars:
            mask = det.threshold(scores, far=far)
            rule = mask.attrs["threshold_rule"].split("(")[-1].rstrip(")")
            ratios.append(float(mask.values.mean()) / far)
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        print(f"{label:<22}{rule:<34}" + "".join(f"{r:>12.2f}" for r in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
