"""Local detectors with their defaults: wall and CPU seconds of ``fit_score`` on a generated scene.

Times ``lrx`` (``pca=5``, windows (7, 21)) and ``crd`` (``pca=20``, (5, 15)) with their
defaults on a seeded float32 scene (six endmembers mixed at random plus noise), and CRD
on all bands on its top-left quarter. Best of ``--repeat`` runs each, in one process;
imports and dask's first ``compute`` happen before timing. To compare two versions of
hsad, run the script with each on ``PYTHONPATH`` in turn, from a folder outside the
checkout, and save each run's maps with ``--save`` to compare them.

    .venv/bin/python benchmarks/bench_local_detectors.py
    .venv/bin/python benchmarks/bench_local_detectors.py --size 600x600x120 --repeat 3
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from bench_rx import timed  # best of n runs: (result, wall s, CPU s)


def make_scene(rows: int, cols: int, bands: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 (rows, cols, bands) cube: six random endmembers mixed, plus noise."""
    rng = np.random.default_rng(seed)
    mixed = rng.normal(size=(rows, cols, 6)) @ rng.normal(size=(6, bands))
    return (mixed + 0.1 * rng.normal(size=(rows, cols, bands))).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="200x200x120", help="ROWSxCOLSxBANDS")
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    ap.add_argument("--save", default=None, help="save the maps to this .npz file")
    args = ap.parse_args(argv)
    rows, cols, bands = (int(v) for v in args.size.lower().split("x"))

    import dask.array as da

    from hsad import detectors
    from hsad.cube import make_cube

    detectors.available()  # imports, and dask's first compute, outside the timing
    da.zeros(1).sum().compute()
    x = make_scene(rows, cols, bands)
    cases = [
        ("lrx (defaults)", "lrx", {}, x),
        ("crd (defaults)", "crd", {}, x),
        ("crd pca=None", "crd", {"pca": None}, x[: rows // 2, : cols // 2]),
    ]
    print(f"scene {rows}x{cols}x{bands} float32; best of {args.repeat}")
    print(f"{'detector':<18}{'size':>14}{'wall s':>9}{'CPU s':>9}")
    maps = {}
    for label, name, params, data in cases:
        cube = make_cube(data)
        out, wall, cpu = timed(
            lambda name=name, params=params, cube=cube:
            np.asarray(detectors.get(name, **params).fit_score(cube).values), args.repeat)
        maps[label] = out
        size = "x".join(str(v) for v in data.shape)
        print(f"{label:<18}{size:>14}{wall:>9.2f}{cpu:>9.2f}", flush=True)
    if args.save:
        np.savez(args.save, **{k.replace(" ", "_"): v for k, v in maps.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
