"""Reading speed and memory: hsad's lazy ENVI reader next to ``spectral.open_image().load()``.

Writes a BIL int16 ENVI scene (default 2048 x 2048 x 200, ~1.6 GB) into a temporary
folder with ``hsad.io.envi_writer.write_envi``, reads it once to warm the page cache, then
runs each contender in its own subprocess (so that peak RSS, ``VmHWM``, is its own):

* ``hsad dask``: ``hsad.open_cube(hdr, chunks)`` and a per-chunk sum computed by
  dask's threaded scheduler;
* ``hsad sequential``: the same cube, one chunk at a time in a Python loop;
* ``spectral load``: ``spectral.open_image(hdr).load()`` (whole scene in memory,
  float32 as spectral returns it), then its sum.

Every contender returns the total of all pixel values; the run fails if they differ.
Besides wall-clock MB/s the table gives MB per CPU-second (user + system time of the
contender's process), which says more than wall time on a machine shared with others.

    .venv/bin/python benchmarks/bench_read.py                 # full size
    .venv/bin/python benchmarks/bench_read.py --size 512x512x50 --chunk 128
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_spy  # noqa: E402

CHILD = r"""
import json, os, sys, time
import numpy as np
mode, hdr, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss_mb(field="VmRSS"):
    # /proc, not ru_maxrss: on Linux ru_maxrss survives exec() and would report the
    # parent's peak; VmHWM belongs to this process image only.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
if mode.startswith("hsad"):
    import dask
    import hsad
    base = rss_mb()
    c0 = os.times()
    t0 = time.perf_counter()
    cube = hsad.open_cube(hdr, chunks=chunk)
    t_open = time.perf_counter() - t0
    data = cube.data
    if mode == "hsad-dask":
        total = int(data.sum(dtype=np.int64).compute(scheduler="threads"))
    else:
        total = 0
        for index in np.ndindex(*data.numblocks):
            block = data.blocks[index].compute(scheduler="sync")
            total += int(block.sum(dtype=np.int64))
            del block
    nbytes = data.nbytes
else:
    import spectral
    base = rss_mb()
    c0 = os.times()
    t0 = time.perf_counter()
    img = spectral.open_image(hdr)
    t_open = time.perf_counter() - t0
    arr = img.load()
    total = int(np.asarray(arr).sum(dtype=np.float64))
    nbytes = img.nrows * img.ncols * img.nbands * img.sample_size
seconds = time.perf_counter() - t0
c1 = os.times()
cpu = (c1.user - c0.user) + (c1.system - c0.system)
peak = rss_mb("VmHWM")
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "open_s": t_open, "peak_rss_mb": peak,
                  "base_rss_mb": base, "total": total, "nbytes": nbytes}))
"""


def write_scene(folder: Path, rows: int, cols: int, bands: int, chunk: int) -> tuple[Path, float]:
    """Write a seeded random int16 BIL cube with hsad's streaming writer; return (header, s)."""
    import dask.array as da
    import numpy as np

    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi

    def block(block_info=None):
        (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
        rng = np.random.default_rng([y0, x0])
        return rng.integers(0, 4096, size=(y1 - y0, x1 - x0, bands), dtype=np.int16)

    data = da.map_blocks(block, dtype=np.int16, chunks=((chunk,) * (rows // chunk)
                         + ((rows % chunk,) if rows % chunk else ()),
                         (chunk,) * (cols // chunk) + ((cols % chunk,) if cols % chunk else ()),
                         (bands,)))
    cube = make_cube(data, wavelength=np.linspace(400, 2500, bands))
    t0 = time.perf_counter()
    path = write_envi(cube, folder / "scene.bil", interleave="bil")
    return path.with_suffix(".hdr"), time.perf_counter() - t0


def warm_cache(path: Path) -> float:
    """Read the whole file once (into a small buffer) so later reads come from page cache."""
    buf = bytearray(64 * 2**20)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.readinto(buf):
            pass
    return time.perf_counter() - t0


def run(mode: str, header: Path, chunk: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(header), str(chunk)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2048x2048x200", help="ROWSxCOLSxBANDS")
    ap.add_argument("--chunk", type=int, default=512, help="tile size (rows = cols)")
    ap.add_argument("--dir", default=None, help="folder for the scene (default: a temp dir)")
    ap.add_argument("--skip-spectral", action="store_true")
    args = ap.parse_args(argv)
    rows, cols, bands = (int(v) for v in args.size.lower().split("x"))
    if not args.skip_spectral:
        require_spy()  # before the scene is written (a child's traceback after, before)

    with tempfile.TemporaryDirectory(prefix="hsad-bench-", dir=args.dir) as tmp:
        header, t_write = write_scene(Path(tmp), rows, cols, bands, args.chunk)
        data_file = header.with_suffix(".bil")
        size_mb = os.path.getsize(data_file) / 1e6
        t_warm = warm_cache(data_file)
        print(f"scene: {rows} x {cols} x {bands} int16 BIL, {size_mb:.0f} MB; "
              f"chunks {args.chunk} x {args.chunk} x {bands} "
              f"({args.chunk * args.chunk * bands * 2 / 1e6:.0f} MB each)")
        print(f"write_envi: {size_mb / t_write:.0f} MB/s; page-cache warm-up read: "
              f"{size_mb / t_warm:.0f} MB/s; cpus: {os.cpu_count()}; "
              f"load average: {os.getloadavg()[0]:.1f}")
        modes = ["hsad-dask", "hsad-seq"] + ([] if args.skip_spectral else ["spectral-load"])
        results = {m: run(m, header, args.chunk) for m in modes}
    totals = {r["total"] for r in results.values()}
    print()
    print(f"{'contender':<16}{'open s':>8}{'wall s':>8}{'MB/s':>7}{'CPU s':>7}"
          f"{'MB/CPU-s':>10}{'peak RSS MB':>13}{'after import':>14}")
    for mode, r in results.items():
        mb = r["nbytes"] / 1e6
        print(f"{mode:<16}{r['open_s']:>8.3f}{r['seconds']:>8.2f}{mb / r['seconds']:>7.0f}"
              f"{r['cpu_s']:>7.2f}{mb / max(r['cpu_s'], 1e-9):>10.0f}"
              f"{r['peak_rss_mb']:>13.0f}{r['base_rss_mb']:>14.0f}")
    if len(totals) != 1:
        print(f"MISMATCH: contenders disagree on the pixel total: {totals}")
        return 1
    print(f"\nall contenders agree on the pixel total ({totals.pop()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
