"""Out of core: global RX and HADGAN scoring of a scene far larger than the memory budget.

Generates a BIL int16 ENVI scene (default 4096 x 4096 x 200, ~6.7 GB) chunk by chunk in a
temporary folder (deleted afterwards unless ``--keep``), then runs, each in its own
subprocess:

* ``rx``: ``hsad detect SCENE -m rx -o rx.tif --memory-limit LIMIT``;
* ``hadgan train``: ``hsad train SCENE -m hadgan`` on a sample of the scene (``--sample``
  pixels, drawn chunk by chunk without loading the scene);
* ``hadgan``: ``hsad detect SCENE --model MODEL -o hadgan.tif --memory-limit LIMIT``
  (residual inference in batches, tiled spatial-spectral fusion, streamed GeoTIFF).

Each run is started by a small wrapper process that reports
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of the run (the largest single process's
peak RSS) and, sampled every 0.1 s with psutil, the peak of the summed RSS of the run and
every process it starts (the area-filter workers): "all procs". The
table gives wall time, Mpixel/s, peak RSS and CPU seconds (user + system; more telling
than wall time on a machine shared with others).

    .venv/bin/python benchmarks/bench_out_of_core.py                       # full size
    .venv/bin/python benchmarks/bench_out_of_core.py --size 1024x1024x200 --memory-limit 1GB
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PYTHON = sys.executable
HSAD = [PYTHON, "-m", "hsad.cli.main"]

#: Runs the command in argv[1:], then prints its wall time, peak RSS and CPU time.
WRAPPER = r"""
import json, resource, subprocess, sys, threading, time
try:
    import psutil  # with dask.distributed (the dev extra)
except ImportError:
    psutil = None
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:])
peak_tree = float("nan") if psutil is None else 0

def sample():  # the run and every process it starts (filter workers), summed
    global peak_tree
    if psutil is None:
        return
    try:
        root = psutil.Process(proc.pid)
    except psutil.Error:  # the run has already ended
        return
    while proc.poll() is None:
        try:
            total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            continue
        peak_tree = max(peak_tree, total)
        time.sleep(0.1)

threading.Thread(target=sample, daemon=True).start()
rc = proc.wait()
seconds = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print("MEASURE " + json.dumps({"rc": rc, "seconds": seconds, "peak_rss_mb": use.ru_maxrss / 1024,
                               "peak_tree_rss_mb": peak_tree / 2**20,
                               "cpu_s": use.ru_utime + use.ru_stime}))
"""

#: Writes the scene: a 512 x 512 synthetic base, rolled and re-noised for each tile. All
#: bands are marked good, so every contender (SPy too) uses the same bands.
GENERATOR = r"""
import sys
import dask.array as da
import numpy as np
from hsad import synthetic
from hsad.cube import make_cube
from hsad.io.envi_writer import write_envi

path, rows, cols, bands, seed = sys.argv[1], *map(int, sys.argv[2:6])
tile = 512
base_scene = synthetic.make_scene(rows=min(tile, rows), cols=min(tile, cols), bands=bands,
                                  seed=seed)
base = np.clip(np.rint(base_scene.cube.values * 10000), -32768, 32767).astype(np.int16)

def block(template, block_info=None):
    (r0, r1), (c0, c1), _ = block_info[None]["array-location"]
    rng = np.random.default_rng([seed, r0, c0])
    shifted = np.roll(base, tuple(rng.integers(0, 64, 2)), axis=(0, 1))[: r1 - r0, : c1 - c0]
    noise = rng.integers(-25, 26, size=shifted.shape, dtype=np.int16)
    return shifted + noise

template = da.empty((rows, cols, bands), chunks=(tile, tile, bands), dtype=np.int16)
data = template.map_blocks(block, dtype=np.int16)
ref = base_scene.cube
cube = make_cube(data, transform=ref.rio.transform(), crs=ref.rio.crs,
                 wavelength=ref["wavelength"].values, fwhm=ref["fwhm"].values,
                 good_band=np.ones(bands, bool), source_format="synthetic")
write_envi(cube, path, interleave="bil")
"""


def parse_size(text: str) -> tuple[int, int, int]:
    rows, cols, bands = (int(v) for v in text.lower().split("x"))
    return rows, cols, bands


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` under the wrapper; return rc, seconds, peak_rss_mb, cpu_s, output."""
    proc = subprocess.run([PYTHON, "-c", WRAPPER, *cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    lines = proc.stdout.splitlines()
    stats = json.loads(next(line for line in reversed(lines) if line.startswith("MEASURE "))[8:])
    stats["output"] = "\n".join(line for line in lines if not line.startswith("MEASURE "))
    stats["stderr"] = proc.stderr[-3000:]
    if stats["rc"] != 0:
        print(f"FAILED ({stats['rc']}): {' '.join(cmd)}\n{stats['stderr']}", file=sys.stderr)
    return stats


def generate(folder: Path, rows: int, cols: int, bands: int, seed: int = 0) -> tuple[Path, dict]:
    """Write the BIL int16 scene; returns the header path and the generation figures."""
    data = folder / "scene.bil"
    stats = measure([PYTHON, "-c", GENERATOR, str(data), str(rows), str(cols), str(bands),
                     str(seed)])
    return folder / "scene.hdr", stats


def warm(path: Path) -> None:
    """Read a file once so every contender starts with it in the page cache (if it fits)."""
    with open(path, "rb") as fh:
        while fh.read(64 << 20):
            pass


def row(name: str, stats: dict, pixels: int) -> str:
    mpx = pixels / stats["seconds"] / 1e6 if stats["rc"] == 0 else float("nan")
    tree = stats.get("peak_tree_rss_mb", float("nan"))
    return (f"{name:<22s} {stats['seconds']:9.1f} {mpx:10.2f} {stats['peak_rss_mb']:12.0f} "
            f"{tree:14.0f} "
            f"{stats['cpu_s']:9.1f}  {'ok' if stats['rc'] == 0 else 'FAILED'}")


HEADER = (f"{'run':<22s} {'wall s':>9s} {'Mpixel/s':>10s} {'peak RSS MB':>12s} "
          f"{'all procs MB':>14s} {'CPU s':>9s}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="4096x4096x200", help="ROWSxCOLSxBANDS")
    ap.add_argument("--memory-limit", default="1GB", help="hsad --memory-limit")
    ap.add_argument("--sample", type=int, default=50_000, help="HADGAN training pixels")
    ap.add_argument("--epochs", type=int, default=5, help="HADGAN training epochs")
    ap.add_argument("--skip-hadgan", action="store_true")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the scene and outputs")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    rows, cols, bands = parse_size(args.size)
    pixels = rows * cols
    folder = Path(tempfile.mkdtemp(prefix="hsad-ooc-", dir=args.dir))
    results = {}
    try:
        print(f"scene {rows}x{cols}x{bands} int16 BIL ({pixels * bands * 2 / 1e9:.2f} GB), "
              f"--memory-limit {args.memory_limit}, {os.cpu_count()} CPUs, in {folder}",
              flush=True)
        hdr, results["generate"] = generate(folder, rows, cols, bands)
        warm(folder / "scene.bil")
        common = ["--memory-limit", args.memory_limit, "--no-progress"]
        results["rx"] = measure([*HSAD, "detect", str(hdr), "-m", "rx", "-o",
                                 str(folder / "rx.tif"), *common])
        print(results["rx"]["output"], flush=True)
        if not args.skip_hadgan:
            model = folder / "hadgan.hsad"
            results["hadgan train"] = measure(
                [*HSAD, "train", str(hdr), "-m", "hadgan", "-o", str(model), "--quiet",
                 "--epochs", str(args.epochs), "-p", f"sample_size={args.sample}",
                 "--device", "cpu"])
            print(results["hadgan train"]["output"], flush=True)
            results["hadgan"] = measure([*HSAD, "detect", str(hdr), "--model", str(model),
                                         "-o", str(folder / "hadgan.tif"), *common])
            print(results["hadgan"]["output"], flush=True)
        print()
        print(HEADER)
        for name, stats in results.items():
            print(row(name, stats, pixels))
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"size": [rows, cols, bands], "memory_limit": args.memory_limit,
                 "runs": {k: {kk: vv for kk, vv in v.items() if kk not in ("output", "stderr")}
                          for k, v in results.items()}}, indent=2))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(s["rc"] == 0 for s in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
