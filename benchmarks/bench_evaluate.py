"""``hsad evaluate`` of a large score map beside scikit-learn's ``roc_auc_score``, same
files, same run: wall time and peak resident memory of each, in a child process.

Writes a seeded N x N float32 score GeoTIFF (a corner of nodata) and a uint8 ground-truth
GeoTIFF flagging about 0.2 % of the pixels, then runs

- ``hsad evaluate``: every metric of docs/evaluation.md (add ``--targets`` with
  ``--targets``, and the ROC and 3D ROC plots on a log P_F axis with ``--plot``);
- ``rasterio + sklearn``: both files read with rasterio, the valid pixels gathered and
  ``sklearn.metrics.roc_auc_score`` (AUC(D,F) alone), as an analyst would write it.

The two AUC(D,F) are compared. The previous code can be timed alike with ``PYTHONPATH``
pointing at a checkout of it (docs/performance.md, "Tiles sized by a memory budget").

    .venv/bin/python benchmarks/bench_evaluate.py                 # 8192 x 8192
    .venv/bin/python benchmarks/bench_evaluate.py --size 4096 --targets
    .venv/bin/python benchmarks/bench_evaluate.py --plot
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fail  # noqa: E402

SKLEARN_WAY = r"""
import sys, json, numpy as np, rasterio
from sklearn.metrics import roc_auc_score
with rasterio.open(sys.argv[1]) as f:
    s = f.read(1)
with rasterio.open(sys.argv[2]) as f:
    t = f.read(1)
valid = np.isfinite(s)
print(json.dumps({"auc_df": roc_auc_score(t[valid] != 0, s[valid])}))
"""


def make_maps(folder: Path, n: int) -> tuple[Path, Path]:
    """A seeded float32 score map (a 50 x 50 corner of nodata) and its uint8 truth."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    truth = (rng.random((n, n)) < 0.002).astype(np.uint8)
    scores = rng.normal(size=(n, n)).astype(np.float32) + 2 * truth
    scores[:50, :50] = np.nan
    profile = dict(driver="GTiff", width=n, height=n, count=1, crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 30, 30), tiled=True,
                   blockxsize=512, blockysize=512)
    paths = folder / "scores.tif", folder / "truth.tif"
    with rasterio.open(paths[0], "w", dtype="float32", nodata=np.nan, **profile) as f:
        f.write(scores, 1)
    with rasterio.open(paths[1], "w", dtype="uint8", **profile) as f:
        f.write(truth, 1)
    return paths


def run(args: list[str]) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (GB) and the JSON printed by a child process."""
    t0 = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        fail(f"failed: {' '.join(args)}")
    return wall, usage.ru_maxrss / 1024 ** 2, json.loads(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8192, help="rows = columns of the maps")
    ap.add_argument("--targets", action="store_true", help="hsad evaluate --targets too")
    ap.add_argument("--plot", action="store_true",
                    help="hsad evaluate --plot --plot3d --log-far too")
    args = ap.parse_args(argv)
    if not 64 <= args.size <= 65536:
        fail(f"--size {args.size}: give 64 to 65536 pixels a side")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        scores, truth = make_maps(Path(tmp), args.size)
        print(f"maps {args.size} x {args.size} (float32 scores, uint8 truth); "
              f"cpus: {os.cpu_count()}")
        extra = [*(["--targets"] if args.targets else []),
                 *(["--plot", f"{tmp}/roc.png", "--plot3d", f"{tmp}/roc3d.png", "--log-far"]
                   if args.plot else [])]
        hsad = [sys.executable, "-m", "hsad", "evaluate", str(scores), "--truth", str(truth),
                "--json", *extra]
        named = "hsad evaluate" + (" --targets" if args.targets else "") + (
            " --plot" if args.plot else "")
        results = [(named, run(hsad)),
                   ("rasterio + sklearn roc_auc_score",
                    run([sys.executable, "-c", SKLEARN_WAY, str(scores), str(truth)]))]
    print(f"{'contender':34s} {'wall s':>8s} {'peak RSS GB':>12s} {'AUC(D,F)':>10s}")
    for name, (wall, peak, doc) in results:
        print(f"{name:34s} {wall:8.1f} {peak:12.2f} {doc['auc_df']:10.6f}")
    a, b = (doc["auc_df"] for _, (_, _, doc) in results)
    print(f"AUC(D,F) difference: {abs(a - b):.1e}; hsad bytes a pixel: "
          f"{results[0][1][1] * 1024 ** 3 / args.size ** 2:.0f} (the interpreter included)")


if __name__ == "__main__":
    main()
