"""Local dual-window RX: ``spectral.rx(data, window=(inner, outer))`` next to hsad's ``lrx``.

For each ABU scene of the shared benchmark set (names starting ``abu-`` in the manifest),
times spectral's windowed RX and hsad's ``get("lrx", inner=, outer=)`` on the same array,
in the same process, and prints wall and CPU seconds, the speedup and both AUC(D,F)
(``sklearn.metrics.roc_auc_score``). A spectral failure is printed with its exception.
hsad is also run with ``pca=K`` (default 10), the configuration the docs recommend.
spectral needs 30-80 s or more per scene: ``--scenes`` limits the run.

    .venv/bin/python benchmarks/bench_lrx.py
    .venv/bin/python benchmarks/bench_lrx.py --scenes abu-beach-2 --pca 0
    .venv/bin/python benchmarks/bench_lrx.py --scenes abu-beach-2 --pca 0 --inner 5 \
        --outer 29 --repeat 3
    .venv/bin/python benchmarks/bench_lrx.py --skip-spectral --skip-full --pca 20 --ridge 1e-3

hsad's all-band LRX factors one (B+2)×(B+2) bordered second moment per pixel; the batched
Cholesky of that many matrices (``np.linalg.cholesky`` on stacks of ``ring_rx.cholesky_group``,
one thread per tile as hsad runs it, both cores busy) is its arithmetic bound. Each
scene's line "cholesky bound" times exactly that work on random SPD matrices of the same
size, and hsad's line gives the fraction of it that it reaches (bound seconds / hsad
seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_spy, shared_manifest  # noqa: E402


def timed(fn, *args, repeat: int = 1, **kwargs):
    """``(fn(*args, **kwargs) or its exception, wall s, CPU s)``, the run with the least
    wall time of ``repeat``."""
    best = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:  # a contender's failure is a result to report
            out = exc
        run = (out, time.perf_counter() - w0, time.process_time() - c0)
        best = run if best is None or run[1] < best[1] else best
        if isinstance(out, Exception):
            break
    return best


def hsad_lrx(x: np.ndarray, inner: int, outer: int, ridge: float, pca: int | None = None):
    from hsad import detectors
    from hsad.cube import make_cube

    det = detectors.get("lrx", inner=inner, outer=outer, pca=pca, ridge=ridge)
    return det.fit_score(make_cube(x)).values


def cholesky_bound(pixels: int, bands: int, batch: int | None = None) -> float:
    """Wall seconds of ``pixels`` Cholesky factorisations of (B+2)×(B+2) SPD matrices,
    stacked ``batch`` (default ``ring_rx.cholesky_group(B)``) at a time, one BLAS thread per
    worker, as many workers as CPUs."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from hsad.engine.ring_rx import cholesky_group

    batch = batch or cholesky_group(bands)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(batch, bands + 2, 2 * bands + 4))
    stack = a @ a.transpose(0, 2, 1)
    workers = os.cpu_count() or 1
    rounds = -(-pixels // batch)

    def run(n: int) -> None:
        for _ in range(n):
            np.linalg.cholesky(stack)

    with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(run, [rounds // workers + (i < rounds % workers) for i in range(workers)]))
        return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", default=None, help="comma-separated names (default: all abu-*)")
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--outer", type=int, default=15)
    ap.add_argument("--pca", type=int, default=10, help="also run hsad with pca=K (0: skip)")
    ap.add_argument("--ridge", type=float, default=0.0, help="hsad's ridge (default 0)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="best of this many runs of each contender (SPy's take minutes)")
    ap.add_argument("--skip-spectral", action="store_true")
    ap.add_argument("--skip-full", action="store_true", help="skip hsad on all bands")
    default_dir = os.environ.get("HSAD_DATA_DIR") or str(REPO.parent / "shared" / "datasets")
    ap.add_argument("--data", default=default_dir, help="folder with manifest.json")
    args = ap.parse_args(argv)
    wanted = args.scenes.split(",") if args.scenes else None
    scenes = shared_manifest(args.data, wanted, "set HSAD_DATA_DIR or --data",
                             keep=lambda name: name.startswith("abu-"))
    if not args.skip_spectral:
        require_spy()

    import scipy.io
    from sklearn.metrics import roc_auc_score

    from hsad import detectors

    detectors.available()  # import every detector module now, not inside the timing
    # likewise dask's first compute, which looks for a dask.distributed client and so
    # imports distributed when it is installed (0.4 s, once per process)
    import dask.array as da

    da.zeros(1).sum().compute()
    data_dir = Path(args.data)
    window = (args.inner, args.outer)
    print(f"windows (inner, outer) = {window}; cpus: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.1f}; best of {args.repeat}")
    head = f"{'scene':<15}{'size':>13}  {'contender':<22}{'wall s':>8}{'CPU s':>8}{'AUC':>8}"
    print(head + f"{'speedup':>10}")
    for scene in scenes:
        mat = scipy.io.loadmat(data_dir / scene["file"])
        x, gt = mat[scene["cube_key"]], mat[scene["gt_key"]].ravel() > 0
        size = "x".join(str(v) for v in x.shape)
        runs = []
        if not args.skip_spectral:
            import spectral

            runs.append(("spectral.rx", timed(spectral.rx, x, window=window,
                                              repeat=args.repeat)))
        if not args.skip_full:
            runs.append(("hsad lrx", timed(hsad_lrx, x, args.inner, args.outer, args.ridge,
                                           repeat=args.repeat)))
        if args.pca:
            run = timed(hsad_lrx, x, args.inner, args.outer, args.ridge, args.pca,
                        repeat=args.repeat)
            runs.append((f"hsad lrx pca={args.pca}", run))
        ref = runs[0][1] if runs and runs[0][0] == "spectral.rx" else None
        bound = cholesky_bound(x.shape[0] * x.shape[1], x.shape[2]) if not args.skip_full \
            else None
        for label, (out, wall, cpu) in runs:
            line = f"{scene['name']:<15}{size:>13}  {label:<22}"
            if isinstance(out, Exception):
                print(line + f"FAILED after {wall:.1f} s: {type(out).__name__}: {out}")
                continue
            auc = roc_auc_score(gt, np.nan_to_num(np.asarray(out, float).ravel(), nan=0.0))
            speed = ""
            if ref is not None and not isinstance(ref[0], Exception) and label != "spectral.rx":
                speed = f"{ref[1] / wall:>9.1f}x"
            share = f"  {bound / wall:.0%} of the Cholesky bound" \
                if bound and label == "hsad lrx" else ""
            print(line + f"{wall:>8.2f}{cpu:>8.2f}{auc:>8.4f}{speed:>10}{share}", flush=True)
        if bound:
            print(f"{scene['name']:<15}{size:>13}  {'cholesky bound':<22}{bound:>8.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
