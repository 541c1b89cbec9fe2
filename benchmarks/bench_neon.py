"""A NEON AOP reflectance file to an RX map: hsad reading the .h5 itself against the usual way.

The usual way in Python (NEON's tutorials, hytools' reader, then SPy): read
``Reflectance_Data`` whole with h5py, drop the water vapour bands and the −9999 pixels,
``spectral.rx`` on the rest (float32 reflectance), and write the map with rasterio on the
grid of ``Map_Info``. Each contender runs in a child process (wall time and peak RSS its
own), page cache warm; the two maps are compared. The file is made here: a flight line's
size (NEON's PUUM 2025 line, 1714 × 719 × 428 int16), eight materials mixed plus noise,
stored as hytools' issue #29 lists NEON's files of 2022 on, one whole band a gzip chunk
(``--chunks`` for another layout, e.g. ``424,27,14`` as in 2019).

    .venv/bin/python benchmarks/bench_neon.py
    .venv/bin/python benchmarks/bench_neon.py --chunks 424,27,14
    .venv/bin/python benchmarks/bench_neon.py --size 600x400x428      # a quick look
    PYTHONPATH=/path/to/archive .venv/bin/python benchmarks/bench_neon.py --only hsad
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import compare_maps  # noqa: E402
from _data import run_child as run  # noqa: E402

MAP_INFO = ("UTM,  1.000,  1.000,  257500.00,  4112500.0,       1.0000000,       1.0000000,"
            "  5,  North,  WGS-84,  units=Meters, 0")
WATER = ((1340, 1445), (1790, 1955))

USUAL_WAY = r'''
import sys
import h5py, numpy as np, rasterio, spectral
from affine import Affine
path, out = sys.argv[1:]
with h5py.File(path, "r") as f:
    site = list(f.keys())[0]
    data = f[site]["Reflectance/Reflectance_Data"]
    cube = data[()]
    ignore = float(data.attrs["Data_Ignore_Value"])
    scale = float(data.attrs["Scale_Factor"])
    windows = [data.attrs[f"Band_Window_{i}_Nanometers"] for i in (1, 2)]
    wl = f[site]["Reflectance/Metadata/Spectral_Data/Wavelength"][()]
    info = f[site]["Reflectance/Metadata/Coordinate_System/Map_Info"][()].decode().split(",")
    epsg = int(f[site]["Reflectance/Metadata/Coordinate_System/EPSG Code"][()])
good = np.ones(wl.size, bool)
for lo, hi in windows:
    good &= ~((wl >= lo) & (wl <= hi))
valid = ~(cube == ignore).any(axis=2)
pixels = cube[valid][:, good].astype(np.float32) / np.float32(scale)
scores = np.full(valid.shape, np.nan, np.float32)
scores[valid] = spectral.rx(pixels[:, None, :])[:, 0]
transform = Affine(float(info[5]), 0, float(info[3]), 0, -float(info[6]), float(info[4]))
with rasterio.open(out, "w", driver="GTiff", height=scores.shape[0], width=scores.shape[1],
                   count=1, dtype="float32", crs=f"EPSG:{epsg}", transform=transform,
                   nodata=np.nan) as dst:
    dst.write(scores, 1)
'''


def make_file(path: Path, rows: int, cols: int, bands: int, chunks) -> None:
    """A NEON reflectance file (tests/neon_files.py's layout) of eight materials mixed
    plus noise, written a band at a time, in ``chunks`` deflated at NEON's level 3."""
    rng = np.random.default_rng(0)
    wl = np.linspace(381, 2510, bands)
    ends = rng.uniform(300, 6000, (8, bands)).astype(np.float32)
    share = rng.dirichlet(np.ones(8), (rows, cols)).astype(np.float32)
    with h5py.File(path, "w") as f:
        refl = f.create_group("PUUM/Reflectance")
        d = refl.create_dataset("Reflectance_Data", (rows, cols, bands), np.int16,
                                chunks=chunks, compression="gzip", compression_opts=3)
        for b0 in range(0, bands, 32):
            b1 = min(bands, b0 + 32)
            values = share @ ends[:, b0:b1]
            values += rng.standard_normal(values.shape, dtype=np.float32) * 40
            values[:3, :5] = -9999
            d[:, :, b0:b1] = values.astype(np.int16)
        d.attrs["Data_Ignore_Value"] = -9999.0
        d.attrs["Scale_Factor"] = 10000.0
        for i, window in enumerate(WATER, 1):
            d.attrs[f"Band_Window_{i}_Nanometers"] = np.array(window)
        spectral = refl.create_group("Metadata/Spectral_Data")
        spectral.create_dataset("Wavelength", data=wl).attrs["Units"] = "nanometers"
        spectral.create_dataset("FWHM", data=np.full(bands, 5.0))
        coords = refl.create_group("Metadata/Coordinate_System")
        coords["Map_Info"] = np.bytes_(MAP_INFO)
        coords["EPSG Code"] = np.bytes_("32605")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1714x719x428", help="ROWSxCOLSxBANDS")
    ap.add_argument("--chunks", default=None,
                    help="ROWS,COLS,BANDS of a chunk (default: one whole band)")
    ap.add_argument("--only", choices=("hsad", "usual"), help="one contender")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each contender")
    args = ap.parse_args(argv)
    rows, cols, bands = (int(v) for v in args.size.lower().split("x"))
    chunks = (rows, cols, 1) if args.chunks is None else \
        tuple(int(v) for v in args.chunks.split(","))
    hsad = str(Path(sys.executable).with_name("hsad"))
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        path = tmp / "NEON_D20_PUUM_DP1_L054-1_20250108_directional_reflectance.h5"
        t0 = time.perf_counter()
        make_file(path, rows, cols, bands, chunks)
        print(f"NEON file {rows} x {cols} x {bands} int16 in gzip chunks of {chunks} "
              f"({path.stat().st_size / 1e9:.2f} GB, made in {time.perf_counter() - t0:.0f} s);"
              f" cpus: {os.cpu_count()}")
        subprocess.run(["cat", str(path)], check=True, stdout=subprocess.DEVNULL)  # warm
        env_path = os.environ.get("PYTHONPATH")
        contenders = [
            ("hsad", f"hsad detect -m rx{' (PYTHONPATH)' if env_path else ''}",
             [sys.executable, "-m", "hsad", "detect", str(path), "-m", "rx", "-o",
              str(tmp / "hsad.tif"), "--no-progress", "--overwrite"] if env_path else
             [hsad, "detect", str(path), "-m", "rx", "-o", str(tmp / "hsad.tif"),
              "--no-progress", "--overwrite"]),
            ("usual", "h5py whole + spectral.rx + rasterio",
             [sys.executable, "-c", USUAL_WAY, str(path), str(tmp / "usual.tif")]),
        ]
        print(f"{'contender':40s} {'wall s':>8s} {'peak RSS GB':>12s}")
        for key, name, command in contenders:
            if args.only in (None, key):
                for _ in range(args.repeat):
                    if key == "usual":
                        (tmp / "usual.tif").unlink(missing_ok=True)
                    wall, peak = run(command)
                    print(f"{name:40s} {wall:8.1f} {peak:12.2f}", flush=True)
        if args.only is None:
            compare_maps(tmp / "hsad.tif", tmp / "usual.tif")


if __name__ == "__main__":
    main()
