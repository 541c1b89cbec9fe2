"""D_spectral with a float32 triangular product (the default) against float64: scores, AUC
and time (docs/performance.md, benchmark 10).

For each shared scene (``--scenes``): HADGAN at the library defaults (``--seed``, 0) is
trained, and RX of its residual is scored with the float64 statistics' triangular factor in
float64 and in float32; printed: the residual covariance's condition number, the largest
score difference relative to the mean score, and AUC(D,F) of D_spectral and of D_SS both
ways. D_SS is the library's default fusion as the model configures it
(``det.fusion_(cube)``: its D_spatial, λ, normalisation and spectral top-hat), computed in
memory with :meth:`hsad.fusion.Fusion.spatial` and ``spectral_term``; its float32 column is
what ``det.score_stages(cube)["d_ss"]`` gives (to float rounding). Last (unless
``--no-timing``), the time of the triangular product alone on 1 M pixels × 200 bands, one
thread (a 0.8 GB array).

    .venv/bin/python benchmarks/spectral_float32.py
    .venv/bin/python benchmarks/spectral_float32.py --scenes abu-beach-2 --no-timing
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hsad import datasets, detectors
from hsad import fusion as F
from hsad.detectors.rx import rx_block, triangular_factor
from hsad.engine.covariance import whitening
from hsad.engine.windows import single_threaded_linalg
from hsad.fusion.tiled import finite_moments
from hsad.outputs.metrics import auc_df

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402


def scores(residual: np.ndarray, dtype) -> np.ndarray:
    mean, cov = finite_moments(residual)
    tri = np.asfortranarray(triangular_factor(whitening(cov)[0]), dtype=dtype)
    return rx_block(residual, mean, tri).astype(np.float64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", nargs="*", help="default: every shared scene")
    ap.add_argument("--seed", type=int, default=0, help="HADGAN's training seed (default 0)")
    ap.add_argument("--no-timing", dest="timing", action="store_false",
                    help="skip the triangular product's timing on 1 M pixels x 200 bands")
    args = ap.parse_args(argv)
    names = require_scenes(args.scenes)
    torch.set_num_threads(1)
    print("scene              condition  max|Δ|/mean  D_spectral f64  f32      D_SS f64  f32")
    for name in names:
        cube, gt = datasets.load(name)
        det = detectors.get("hadgan", seed=args.seed, progress=False, device="cpu").fit(cube)
        fusion = det.fusion_(cube)  # the library's default fusion, as the model runs it
        residual = det.residual(cube).compute()
        spatial = fusion.spatial(residual, det._scene_good_bands(cube))
        d64, d32 = scores(residual, np.float64), scores(residual, np.float32)
        cond = np.linalg.cond(finite_moments(residual)[1])
        fused = [F.fuse(spatial, fusion.spectral_term(d), float(fusion.lam), fusion.norm)
                 for d in (d64, d32)]
        print(f"{name:18s} {cond:9.1e}  {np.max(np.abs(d32 - d64)) / d64.mean():11.1e}  "
              f"{auc_df(d64, gt.values):14.4f}  {auc_df(d32, gt.values):.4f}   "
              f"{auc_df(fused[0], gt.values):.4f}    {auc_df(fused[1], gt.values):.4f}",
              flush=True)
    if not args.timing:
        return 0
    rng = np.random.default_rng(0)
    block = np.abs(rng.normal(size=(512, 2048, 200))).astype(np.float32)
    sample = block.reshape(-1, 200)[:100_000]
    tri = triangular_factor(whitening(np.cov(sample, rowvar=False))[0])
    with single_threaded_linalg():
        for dtype in (np.float64, np.float32) * 2:
            t = time.perf_counter()
            rx_block(block, sample.mean(axis=0), np.asfortranarray(tri, dtype=dtype))
            print(f"triangular product, {np.dtype(dtype).name}, 1 M pixels x 200 bands, one "
                  f"thread: {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
