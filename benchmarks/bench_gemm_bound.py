"""Global RX against its limit: two float32 GEMM passes over the pixels.

RX needs, per pixel of B bands, one rank-B update of the scatter matrix (``XᵀX``: 2B² flops)
and one product with the whitening matrix (``X W``: 2B·r flops, r ≤ B). Measured here:

1. float32 GEMM throughput (numpy ``matmul``, this machine's BLAS) at the sizes RX uses:
   ``XᵀX`` and ``X W`` for a tile of ``--pixels`` pixels, plus torch's for reference;
2. the pixel rate those two passes allow: ``rate = 1 / (2B²/R_cov + 2B²/R_score)``, with
   R the measured rates, and a second bound using the best rate measured for both;
3. hsad's global RX (streamed moments in float64, then scoring in float32) on an in-memory
   float32 cube, whole pipeline (fit + score), with dask's threaded scheduler, with and
   without :func:`hsad.engine.tile_threads` (one BLAS thread per tile task);

Rounds alternate the GEMM and RX measurements and keep the best of each, so that on a
shared machine both are taken at its quietest moments.

and prints RX's throughput as a fraction of each bound, and of the bound of hsad's own
design (float64 statistics: the float64 ``XᵀX`` rate for the first pass).

    .venv/bin/python benchmarks/bench_gemm_bound.py
    .venv/bin/python benchmarks/bench_gemm_bound.py --size 512x512x200 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def best_time(func, repeat: int) -> float:
    func()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_rates(pixels: int, bands: int, repeat: int) -> dict[str, float]:
    """GFLOP/s of the two RX products in float32 (numpy) and, for reference, torch."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.random((pixels, bands), dtype=np.float32)
    w = rng.random((bands, bands), dtype=np.float32)
    x64 = x.astype(np.float64)
    flops = 2.0 * pixels * bands * bands
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    return {
        "numpy XᵀX": flops / best_time(lambda: x.T @ x, repeat) / 1e9,
        "numpy X W": flops / best_time(lambda: x @ w, repeat) / 1e9,
        "numpy XᵀX float64": flops / best_time(lambda: x64.T @ x64, repeat) / 1e9,
        "torch XᵀX": flops / best_time(lambda: tx.T @ tx, repeat) / 1e9,
        "torch X W": flops / best_time(lambda: tx @ tw, repeat) / 1e9,
    }


def make_cube_in_memory(shape: tuple[int, int, int]):
    """A float32 cube with correlated bands, in memory, tiled by :func:`chunks_for`
    (its chunks views of the array, as ``make_cube(numpy)`` makes them)."""
    from hsad import engine
    from hsad.cube import make_cube, wrap_numpy

    rows, cols, bands = shape
    rng = np.random.default_rng(1)
    mixing = rng.random((bands, bands), dtype=np.float32)
    values = np.empty(shape, dtype=np.float32)
    for r in range(0, rows, 256):  # correlated bands, as in real spectra
        noise = rng.standard_normal((min(256, rows - r), cols, bands), dtype=np.float32)
        values[r:r + 256] = noise @ mixing + 100.0
    chunks = engine.chunks_for(shape, np.float32, "1GB")
    return make_cube(wrap_numpy(values, chunks=chunks + (-1,)))


def rx_seconds(cube, threads: bool) -> float:
    """Seconds of hsad's global RX fit + score (into memory) of ``cube``."""
    from hsad import detectors, engine

    def run():
        det = detectors.get("rx").fit(cube)
        det.score(cube).data.compute()

    if threads:
        with engine.tile_threads():
            return best_time(run, 1)
    return best_time(run, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1024x1024x200", help="RX cube ROWSxCOLSxBANDS")
    ap.add_argument("--pixels", type=int, default=65536, help="GEMM tile pixels")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    shape = tuple(int(v) for v in args.size.lower().split("x"))
    bands = shape[2]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; RX cube "
          f"{'x'.join(map(str, shape))} float32 in memory; GEMM tiles {args.pixels} x {bands}")
    cube = make_cube_in_memory(shape)
    pixels = shape[0] * shape[1]
    # rounds alternate GEMM and RX measurements, keeping the best of each: on a shared
    # machine both then see the quietest moments
    rates: dict[str, float] = {}
    best_rx = {False: np.inf, True: np.inf}
    for _ in range(args.repeat):
        for name, rate in gemm_rates(args.pixels, bands, 2).items():
            rates[name] = max(rates.get(name, 0.0), rate)
        for threads in (False, True):
            best_rx[threads] = min(best_rx[threads], rx_seconds(cube, threads))
    for name, rate in rates.items():
        print(f"  {name:<20s} {rate:8.1f} GFLOP/s")
    per_pixel = 2.0 * bands * bands
    seconds_per_pixel = per_pixel / (rates["numpy XᵀX"] * 1e9) + per_pixel / (
        rates["numpy X W"] * 1e9)
    bound_measured = 1 / seconds_per_pixel / 1e6
    best = max(rates["numpy X W"], rates["numpy XᵀX"])
    bound_best = best * 1e9 / (2 * per_pixel) / 1e6
    # hsad's statistics are float64 (a float32 scatter matrix moves RX scores of real scenes
    # by up to 36 %: docs/performance.md, benchmark 6), so its own bound is the float64 XᵀX
    # followed by the float32 product
    bound_f64 = 1 / (per_pixel / (rates["numpy XᵀX float64"] * 1e9)
                     + per_pixel / (rates["numpy X W"] * 1e9)) / 1e6
    print(f"bound, numpy's two float32 GEMMs as measured: {bound_measured:8.2f} Mpixel/s")
    print(f"bound, two passes at numpy's best float32 rate ({best:.1f} GFLOP/s): "
          f"{bound_best:8.2f} Mpixel/s")
    print(f"bound, float64 XᵀX then float32 X W as measured: {bound_f64:8.2f} Mpixel/s")
    print(f"{'RX fit + score':<30s} {'Mpixel/s':>9s} {'seconds':>8s} {'of bound':>9s} "
          f"{'of best-rate bound':>19s} {'of float64 bound':>17s}")
    for label, threads in (("threaded scheduler", False), ("+ one BLAS thread per tile", True)):
        rate = pixels / best_rx[threads] / 1e6
        print(f"{label:<30s} {rate:9.2f} {best_rx[threads]:8.2f} {rate / bound_measured:9.0%} "
              f"{rate / bound_best:19.0%} {rate / bound_f64:17.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
