"""Global RX accuracy: hsad (float32 and float64 scoring) and SPy against a float64 reference.

The scene is the benchmarks' synthetic int16 one (``hsad.synthetic.make_scene`` × 10 000 plus
uniform integer noise, as in bench_out_of_core.py). The reference is computed here in float64
with numpy: exact mean, covariance normalised by N, ``np.linalg.inv``. SPy normalises its
covariance by N − 1; its scores are rescaled by N / (N − 1) before comparing.

    .venv/bin/python benchmarks/bench_rx_accuracy.py
    .venv/bin/python benchmarks/bench_rx_accuracy.py --size 1024x1024x200
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def scene(rows: int, cols: int, bands: int, seed: int = 0) -> np.ndarray:
    from hsad import synthetic

    base = synthetic.make_scene(rows=rows, cols=cols, bands=bands, seed=seed).cube.values
    rng = np.random.default_rng(seed)
    noise = rng.integers(-25, 26, base.shape)
    return np.clip(np.rint(base * 10000) + noise, -32768, 32767).astype(np.int16)


def reference(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    centred = flat - flat.mean(0)
    cov = centred.T @ centred / flat.shape[0]
    return np.einsum("ij,ij->i", centred @ np.linalg.inv(cov), centred).reshape(x.shape[:2])


def report(name: str, scores: np.ndarray, ref: np.ndarray, seconds: float) -> None:
    rel = np.abs(scores - ref) / ref
    print(f"{name:<16s} {seconds:8.2f} {np.median(rel):14.2e} {rel.max():12.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="512x512x200", help="ROWSxCOLSxBANDS")
    args = ap.parse_args()
    rows, cols, bands = map(int, args.size.lower().split("x"))
    x = scene(rows, cols, bands)
    ref = reference(x)
    n = rows * cols

    from hsad import detectors
    from hsad.cube import make_cube

    cube = make_cube(x)
    print(f"scene {rows}x{cols}x{bands} int16; relative difference to the float64 reference")
    print(f"{'run':<16s} {'seconds':>8s} {'median':>14s} {'max':>12s}")
    detectors.get("rx").fit_score(make_cube(x[:64, :64]))  # warm-up: imports, thread pools
    for dtype in ("float32", "float64"):
        t0 = time.perf_counter()
        scores = detectors.get("rx", dtype=dtype).fit_score(cube).values
        report(f"hsad {dtype}", scores, ref, time.perf_counter() - t0)
    try:
        import spectral
    except ImportError:
        print("spectral (SPy) is not installed: its rows are skipped")
        return
    spectral.rx(x[:64, :64].astype(np.float32))  # its warm-up too (a first call was slower)
    for dtype in (np.float32, np.float64):
        t0 = time.perf_counter()
        scores = spectral.rx(x.astype(dtype)) * (n / (n - 1))
        report(f"spy {dtype.__name__}", scores, ref, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
