"""Global RX on a window of a large ENVI file: hsad next to SPy, same file, same window.

Writes a seeded float32 ENVI file (default 2048 x 2048 x 50, BIP, 800 MB) in a temporary
folder, then for the whole scene and for each window times, best of ``--repeat``:

- hsad: ``open_cube(hdr, srcwin=…)`` (the window opened as a file of its own,
  :mod:`hsad.io.window`) then ``get("rx").fit_score(...)``, with the values its reader
  read (``EnviPixels.read_window`` counted);
- SPy: ``open_image(hdr).read_subregion(rows, cols)`` then ``spectral.rx`` (the whole
  scene: ``.load()``).

Page cache warm for both. Prints seconds, values read per window value, and how far the
two score maps differ (SPy divides the covariance by n - 1 where hsad divides by n, so the
maps differ by that factor, which this removes).

    .venv/bin/python benchmarks/bench_window.py
    .venv/bin/python benchmarks/bench_window.py --size 1024x1024x50 --interleave bil
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import parse_size, require_spy  # noqa: E402
from bench_rx import make_scene  # noqa: E402

WINDOWS = ((1000, 1000, 64, 64), (1000, 1000, 256, 256), (500, 0, 1000, 2048))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2048x2048x50", help="ROWSxCOLSxBANDS")
    ap.add_argument("--interleave", default="bip", choices=["bsq", "bil", "bip"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rows, cols, bands = parse_size(args.size)
    require_spy()

    import spectral

    from hsad import detectors
    from hsad.cube import make_cube
    from hsad.io import envi, open_cube
    from hsad.io.envi_writer import write_envi

    read = [0]
    lock = threading.Lock()
    original = envi.EnviPixels.read_window

    def counting(self, *a):
        out = original(self, *a)
        with lock:
            read[0] += out.size
        return out

    envi.EnviPixels.read_window = counting
    with tempfile.TemporaryDirectory() as tmp:
        path = write_envi(make_cube(make_scene(rows, cols, bands)), Path(tmp) / "scene.img",
                          interleave=args.interleave)
        hdr = str(Path(path).with_suffix(".hdr"))
        print(f"scene: {rows} x {cols} x {bands} float32 {args.interleave.upper()} ENVI "
              f"({rows * cols * bands * 4 / 2**20:.0f} MiB); best of {args.repeat}")
        print(f"{'window (-srcwin)':24s} {'hsad s':>7s} {'SPy s':>7s} {'speedup':>8s} "
              f"{'hsad reads':>11s} {'max rel diff':>13s}")
        for window in (None, *[w for w in WINDOWS if w[0] + w[2] <= cols
                               and w[1] + w[3] <= rows]):
            def run_hsad(window=window):
                cube = open_cube(path, srcwin=window) if window else open_cube(path)
                return detectors.get("rx").fit_score(cube).values

            def run_spy(window=window):
                img = spectral.open_image(hdr)
                if window is None:
                    data = img.load()
                else:
                    c0, r0, w, h = window
                    data = img.read_subregion((r0, r0 + h), (c0, c0 + w))
                return spectral.rx(np.asarray(data))

            best = {}
            for name, fn in (("hsad", run_hsad), ("spy", run_spy)):
                times = []
                for _ in range(args.repeat):
                    read[0] = 0
                    t0 = time.perf_counter()
                    out = fn()
                    times.append(time.perf_counter() - t0)
                best[name] = min(times), out, read[0]
            n = (window[2] * window[3]) if window else rows * cols
            ratio = best["hsad"][2] / (n * bands)
            hsad_map, spy_map = best["hsad"][1], best["spy"][1] * n / (n - 1)
            diff = float(np.nanmax(np.abs(hsad_map - spy_map) / np.abs(spy_map)))
            label = " ".join(map(str, window)) if window else "whole scene"
            print(f"{label:24s} {best['hsad'][0]:7.2f} {best['spy'][0]:7.2f} "
                  f"{best['spy'][0] / best['hsad'][0]:7.1f}x {ratio:10.2f}x {diff:13.2e}")


if __name__ == "__main__":
    main()
