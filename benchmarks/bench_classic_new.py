"""UTD, RXD-UTD, local-mean RX and cluster RX: default choice by leave-one-scene-out, and speed.

    python benchmarks/bench_classic_new.py loso             # real scenes (HSAD_DATA_DIR)
    python benchmarks/bench_classic_new.py speed --size 1024 --bands 200

``loso``: AUC(D,F) of each candidate setting on every shared scene; a setting is chosen on
the other scenes (highest mean AUC) and scored on the one left out; in-sample (chosen on all
scenes) and left-out figures are printed side by side.

``speed``: fit + score time of each new detector beside global RX on a generated int16
``--size``² scene (a lazy dask cube: one 512² tile repeated and cut to the size, in chunks
of at most 512²), and SPy where SPy has the same detector (SPy's ``rx`` is global RX; SPy
has no UTD, local-mean or cluster RX).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fail, shared_manifest  # noqa: E402

CANDIDATES = {
    "local-mean-rx": [{"kernel": k} for k in (3, 5, 7, 9, 11, 15, 21, 31)],
    "cluster-rx": [{"n_clusters": k, "covariance": c} for c in ("pooled", "shrunk", "cluster")
                   for k in (2, 3, 5, 8)],
}


def _scenes(folder: Path, manifest: list[dict]):
    import scipy.io

    from hsad.cube import make_cube

    for scene in manifest:
        mat = scipy.io.loadmat(folder / scene["file"])
        yield scene["name"], make_cube(mat[scene["cube_key"]]), mat[scene["gt_key"]]


def loso(methods) -> None:
    from hsad import datasets, detectors
    from hsad.outputs.metrics import evaluate

    unknown = [m for m in methods if m not in CANDIDATES]
    if unknown:
        fail(f"loso: no candidate grid for {', '.join(unknown)}; choose from "
             f"{', '.join(CANDIDATES)}")
    folder = Path(os.environ.get("HSAD_DATA_DIR", Path(__file__).resolve().parents[2]
                                 / "shared" / "datasets"))
    scenes = list(_scenes(folder, shared_manifest(folder)))
    names = [s[0] for s in scenes]
    for method in methods:
        grid = CANDIDATES[method]
        auc = np.zeros((len(grid), len(scenes)))
        for i, params in enumerate(grid):
            for j, (_, cube, gt) in enumerate(scenes):
                scores = detectors.get(method, **params).fit_score(cube).values
                auc[i, j] = evaluate(scores, gt)["auc_df"]
            print(method, params, " ".join(f"{a:.4f}" for a in auc[i]),
                  f"mean {auc[i].mean():.4f} min {auc[i].min():.4f}", flush=True)
        best = int(np.argmax(auc.mean(axis=1)))
        left = []
        for j in range(len(scenes)):
            kept = [i for i, n in enumerate(names) if n in datasets.fold_scenes(names[j],
                                                                                names)]
            others = auc[:, kept].mean(axis=1)
            pick = int(np.argmax(others))
            left.append((grid[pick], auc[pick, j]))
        print(f"\n{method}: in-sample choice {grid[best]}")
        print("| scene | in-sample AUC | left-out choice | left-out AUC |")
        for j, name in enumerate(names):
            print(f"| {name} | {auc[best, j]:.4f} | {left[j][0]} | {left[j][1]:.4f} |")
        print(f"| **mean** | **{auc[best].mean():.4f}** | | "
              f"**{np.mean([a for _, a in left]):.4f}** |\n", flush=True)


def speed(size: int, bands: int, repeat: int, spy: bool = True) -> None:
    import dask.array as da

    from hsad import detectors
    from hsad.cube import make_cube

    if min(size, bands, repeat) < 1:
        fail(f"speed: --size, --bands and --repeat must be at least 1 (got {size}, {bands}, "
             f"{repeat})")
    rng = np.random.default_rng(0)
    mix = (rng.normal(size=(bands, bands)) * 20).astype(np.float32)
    base = rng.normal(size=(512, 512, bands)).astype(np.float32) @ mix + 2000
    tile = np.clip(base, -32768, 32767).astype(np.int16)
    n = -(-size // 512)  # tiles per side, the last one cut to the size asked
    data = da.concatenate([da.concatenate([da.from_array(tile, chunks=(512, 512, bands))] * n,
                                          axis=1)] * n, axis=0)[:size, :size]
    cube = make_cube(data)
    rows, cols = data.shape[:2]
    print(f"scene {rows}x{cols}x{bands} int16 (a 512² tile repeated, chunks of at most "
          f"512²), {os.cpu_count()} CPUs")
    times = {}
    for name in ("rx", "utd", "rxd-utd", "local-mean-rx", "cluster-rx"):
        best = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            detectors.get(name).fit_score(cube).compute()
            best = min(best, time.perf_counter() - t0)
        times[name] = best
        print(f"{name:14s} {best:8.2f} s   {best / times['rx']:.2f}x rx", flush=True)
    try:
        import spectral
    except ImportError:
        spy = False
    if not spy:
        return
    x = np.asarray(data.compute())
    t0 = time.perf_counter()
    spectral.rx(x)
    spy = time.perf_counter() - t0
    print(f"{'SPy rx':14s} {spy:8.2f} s   {spy / times['rx']:.2f}x hsad rx (global RX only)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    lp = sub.add_parser("loso")
    lp.add_argument("methods", nargs="*", default=list(CANDIDATES))
    sp = sub.add_parser("speed")
    sp.add_argument("--size", type=int, default=1024)
    sp.add_argument("--bands", type=int, default=200)
    sp.add_argument("--repeat", type=int, default=1)
    sp.add_argument("--no-spy", dest="spy", action="store_false")
    args = ap.parse_args()
    if args.mode == "loso":
        loso(args.methods)
    else:
        speed(args.size, args.bands, args.repeat, args.spy)


if __name__ == "__main__":
    main()
