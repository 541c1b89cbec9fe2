"""Global RX end to end, ENVI on disk → GeoTIFF: hsad next to SPy (``spectral``).

Writes one BIL int16 ENVI scene (default 2048 x 2048 x 200, 1.7 GB) in a temporary folder,
warms the page cache, then runs each contender in its own subprocess on the same file:

* ``hsad``: ``hsad detect SCENE -m rx -o hsad.tif`` (lazy tiles sized by the memory budget,
  streamed moments, tiled scoring, streamed GeoTIFF);
* ``spy``: ``spectral.rx(spectral.open_image(hdr).load())`` and the map written with
  rasterio (float32 GeoTIFF), the usual way to do it with SPy.

Peak RSS comes from ``getrusage(RUSAGE_CHILDREN)`` of a wrapper process per run
(see bench_out_of_core.py). The two maps are compared (SPy normalises the covariance by
N − 1, hsad by N: a factor (N − 1)/N on the scores, corrected before comparing).

SPy holds the scene as float32 plus two float64 copies: about 20 bytes per pixel and band.
If that exceeds 60 % of the memory available, the SPy run is skipped unless ``--force``.

    .venv/bin/python benchmarks/bench_rx_vs_spy.py
    .venv/bin/python benchmarks/bench_rx_vs_spy.py --size 1024x1024x200
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from _data import fail, parse_size, require_spy
from bench_out_of_core import HEADER, HSAD, PYTHON, generate, measure, row, warm

SPY = r"""
import sys
try:  # if memory runs out, the kernel kills this run, not a neighbour's process
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")
except OSError:
    pass
import numpy as np
import rasterio
import spectral
hdr, out = sys.argv[1], sys.argv[2]
img = spectral.open_image(hdr)
scores = spectral.rx(img.load())
with rasterio.open(out, "w", driver="GTiff", height=scores.shape[0], width=scores.shape[1],
                   count=1, dtype="float32", tiled=True, compress="deflate") as dst:
    dst.write(scores.astype(np.float32), 1)
"""


def available_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def compare(hsad_tif: Path, spy_tif: Path, pixels: int) -> str:
    import warnings

    import rasterio

    with warnings.catch_warnings():  # the scene has no georeference, nor have its maps
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(hsad_tif) as a, rasterio.open(spy_tif) as b:
            ours, theirs = a.read(1).astype(np.float64), b.read(1).astype(np.float64)
    theirs *= pixels / (pixels - 1)  # SPy's covariance is normalised by N − 1
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)
    corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    return (f"hsad's map against SPy's: max relative difference {rel.max():.2e}, "
            f"median {np.median(rel):.2e}, "
            f"correlation {corr:.9f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2048x2048x200", help="ROWSxCOLSxBANDS")
    ap.add_argument("--memory-limit", default=None, help="hsad --memory-limit")
    ap.add_argument("--force", action="store_true", help="run SPy even if memory looks short")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args(argv)
    rows, cols, bands = parse_size(args.size)
    if rows * cols < 2:
        fail(f"--size {args.size}: RX needs at least 2 pixels")
    require_spy()  # before the scene is written: the SPy run needs it (PYTHON is this one)
    if args.dir and not Path(args.dir).is_dir():
        fail(f"--dir {args.dir}: no such folder")
    pixels = rows * cols
    folder = Path(tempfile.mkdtemp(prefix="hsad-spy-", dir=args.dir))
    results: dict = {}
    try:
        print(f"scene {rows}x{cols}x{bands} int16 BIL ({pixels * bands * 2 / 1e9:.2f} GB) in "
              f"{folder}", flush=True)
        hdr, gen = generate(folder, rows, cols, bands)
        if gen["rc"]:
            return 1
        data = folder / "scene.bil"
        hsad_cmd = [*HSAD, "detect", str(hdr), "-m", "rx", "-o", str(folder / "hsad.tif"),
                    "--no-progress"]
        if args.memory_limit:
            hsad_cmd += ["--memory-limit", args.memory_limit]
        warm(data)
        results = {"hsad": measure(hsad_cmd)}
        need, have = pixels * bands * 20, available_bytes()
        if need > 0.6 * have and not args.force:
            print(f"SPy skipped: it needs about {need / 1e9:.1f} GB, {have / 1e9:.1f} GB "
                  f"available (use --force or a smaller --size)")
        else:
            warm(data)
            results["spy"] = measure([PYTHON, "-c", SPY, str(hdr), str(folder / "spy.tif")])
        print(HEADER)
        for name, stats in results.items():
            print(row(name, stats, pixels))
        if "spy" in results and all(s["rc"] == 0 for s in results.values()):
            h, s = results["hsad"], results["spy"]
            print(f"hsad is {s['seconds'] / h['seconds']:.1f}x faster (wall), "
                  f"{s['cpu_s'] / h['cpu_s']:.1f}x less CPU time, peak RSS "
                  f"{h['peak_rss_mb'] / s['peak_rss_mb']:.0%} of SPy's")
            print(compare(folder / "hsad.tif", folder / "spy.tif", pixels))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(s["rc"] == 0 for s in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
