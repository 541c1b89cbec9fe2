"""Global RX on a compressed, tiled float32 GeoTIFF (a COG as GDAL writes it), beside SPy's
``spectral.rx`` on the same pixels read by rasterio, same run (best of ``--repeat``).

Writes a seeded float32 scene (a smooth field, a per-band gain and noise, rounded to 1e-3
as reflectance is stored) as a deflate-compressed GeoTIFF with ``--tile``-pixel tiles and
floating-point prediction, then times

- ``hsad detect scene.tif -m rx -o rx.tif``, the whole process (``--no-progress``);
- ``detectors.get("rx").fit_score(open_cube(...)).values`` in this process, and the scene
  checks' two even samples alone, as in one detector call (``good_sample`` and the level
  check's, within ``shared_samples``);
- SPy: ``spectral.rx`` of the cube rasterio reads whole (``src.read()``, bands last),
  reading included;

and prints the largest difference between hsad's map and SPy's, relative to the highest
score, and the command's peak RSS. A float32 scene takes the 65 536-pixel sample (its
pixels may lack data) and the level check's 4 096-pixel one.

    .venv/bin/python benchmarks/bench_compressed_geotiff.py                   # 2048² x 50
    .venv/bin/python benchmarks/bench_compressed_geotiff.py --size 1024 --bands 60 --tile 512
    .venv/bin/python benchmarks/bench_compressed_geotiff.py --size 1024 --bands 224 --tile 512
    .venv/bin/python benchmarks/bench_compressed_geotiff.py --srcwin 100 100 1500 1500
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import best, fail, require_spy  # noqa: E402

#: ``python -m hsad`` that also prints its peak RSS on stderr (Linux: ``VmHWM``, this
#: program's own; ``ru_maxrss`` would count the benchmark's pages, forked before the exec)
REPORTING_CLI = """
import sys
from hsad.cli.main import main
try:
    main(sys.argv[1:])
finally:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    print("peak_rss_bytes", int(line.split()[1]) * 1024, file=sys.stderr)
    except OSError:
        pass
"""


def make_file(path: Path, size: int, bands: int, tile: int) -> Path:
    """The seeded scene, written a band at a time."""
    import rasterio
    from rasterio.transform import from_origin
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(0)
    field = uniform_filter(rng.normal(size=(size, size)).astype(np.float32), 15) * 30
    profile = dict(driver="GTiff", width=size, height=size, count=bands, dtype="float32",
                   tiled=True, blockxsize=tile, blockysize=tile, compress="deflate",
                   predictor=3, crs="EPSG:32633",
                   transform=from_origin(500000, 4000000, 30, 30))
    with rasterio.open(path, "w", **profile) as dst:
        for b in range(bands):
            noise = rng.normal(size=(size, size)).astype(np.float32) * 0.05
            dst.write(np.round(field * (1 + 0.01 * b) + noise + 0.3, 3), b + 1)
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--bands", type=int, default=50)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="keep the scene here")
    ap.add_argument("--srcwin", type=int, nargs=4, metavar=("XOFF", "YOFF", "XSIZE", "YSIZE"),
                    help="also time `hsad detect --srcwin` of this window")
    args = ap.parse_args(argv)
    require_spy()

    import rasterio
    import spectral

    import hsad
    from hsad.detectors import get
    from hsad.detectors.level_check import LEVEL_SAMPLE
    from hsad.engine.sampling import even_sample

    try:
        from hsad.engine.sampling import shared_samples
    except ImportError:  # hsad before 0.2.2
        shared_samples = None
    from hsad.engine.data_checks import good_sample

    temporary = None if args.dir else tempfile.TemporaryDirectory(prefix="hsad-cog-")
    folder = args.dir or Path(temporary.name)  # the scene, removed after unless --dir
    folder.mkdir(parents=True, exist_ok=True)
    try:
        tif = folder / f"scene_{args.size}_{args.bands}_{args.tile}.tif"
        if not tif.exists():
            make_file(tif, args.size, args.bands, args.tile)
        print(f"hsad {hsad.__version__} from {Path(hsad.__file__).parent}")
        print(f"{tif.name}: {args.size}x{args.size}x{args.bands} float32, deflate, "
              f"{args.tile}² tiles, {tif.stat().st_size / 2**20:.0f} MiB; cores {os.cpu_count()}")

        def samples():
            cube = hsad.open_cube(tif)
            with shared_samples() if shared_samples else contextlib.nullcontext():
                good_sample(cube)  # as in one detector call
                even_sample(cube.data, LEVEL_SAMPLE)

        def fit_score():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.asarray(get("rx").fit_score(hsad.open_cube(tif)).values)

        peaks = []

        def command(*more):
            out = folder / "rx.tif"
            done = subprocess.run([sys.executable, "-c", REPORTING_CLI, "detect", str(tif), "-m",
                                   "rx", "-o", str(out), "--no-progress", "--overwrite", *more],
                                  capture_output=True, text=True, cwd=folder)
            if done.returncode:
                fail(f"hsad detect failed: {done.stderr.strip()}")
            peaks.extend(float(line.split()[1]) for line in done.stderr.splitlines()
                         if line.startswith("peak_rss_bytes "))

        def spy():
            with rasterio.open(tif) as src:
                cube = np.moveaxis(src.read(), 0, -1)
            return spectral.rx(cube)

        rows = [("the two samples (hsad)", best(samples, args.repeat)),
                ("hsad rx fit_score", best(fit_score, args.repeat)),
                ("hsad detect -m rx (process)", best(command, args.repeat)),
                ("SPy: rasterio read + rx", best(spy, args.repeat))]
        ours, theirs = rows[1][1][1], rows[3][1][1]
        spy_s = rows[3][1][0]
        whole = list(peaks)
        if args.srcwin:
            del peaks[:]
            window = [str(v) for v in args.srcwin]
            seconds = best(lambda: command("--srcwin", *window), args.repeat)[0]
            print(f"hsad detect -m rx --srcwin {' '.join(window)}: {seconds:.2f} s" + (
                f", peak RSS {max(peaks) / 2**30:.2f} GiB" if peaks else ""))
        print(f"{'contender':32s} {'wall s':>8s} {'vs SPy':>8s}")
        for name, (seconds, _) in rows:
            print(f"{name:32s} {seconds:8.2f} {spy_s / seconds:7.1f}x")
        diff = np.nanmax(np.abs(ours - theirs)) / np.nanmax(np.abs(theirs))
        print(f"largest difference, hsad's map against SPy's: {diff:.1e} of the highest score")
        if whole:
            print(f"hsad detect's peak RSS: {min(whole) / 2**30:.2f}–{max(whole) / 2**30:.2f} GiB")
    finally:
        if temporary is not None:
            temporary.cleanup()


if __name__ == "__main__":
    main()
