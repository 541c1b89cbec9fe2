"""An EMIT granule to an orthorectified GeoTIFF and to an RX map: hsad next to the way
NASA's ``emit_tools`` does it, same file, same run.

Writes a seeded granule of the real size (default 1280 x 1242 x 285 float32, 1.8 GB, a
swath turned 35 degrees on a lookup-table grid of about 1900 x 2300 cells) in a
temporary folder, then runs each contender in a child process and prints its wall time
and peak resident memory (page cache warm for all):

- ``emit_tools``: the whole reflectance read into memory, the lookup applied at once
  (``out[valid] = data[glt_y - 1, glt_x - 1]``, as ``emit_tools.apply_glt``), the cube
  written with rasterio;
- ``hsad convert granule.nc ortho.tif`` (the same cube, streamed block by block);
- ``hsad detect granule.nc -m rx -o rx.tif`` (RX in instrument geometry, the map placed on
  the grid).

The two GeoTIFFs are compared value for value.

    .venv/bin/python benchmarks/bench_emit.py
    .venv/bin/python benchmarks/bench_emit.py --size 640x621x285
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import run_child as run  # noqa: E402

ANGLE = np.deg2rad(35.0)

NASA_WAY = r"""
import sys, h5py, numpy as np, rasterio
from affine import Affine
src, dst = sys.argv[1:3]
with h5py.File(src, "r") as f:
    data = f["reflectance"][()]
    gx, gy = f["location/glt_x"][()], f["location/glt_y"][()]
    gt = f.attrs["geotransform"]
valid = (gx != 0) & (gy != 0)
out = np.full(gx.shape + data.shape[2:], -9999, np.float32)
out[valid] = data[gy[valid] - 1, gx[valid] - 1]
del data
profile = dict(driver="GTiff", height=out.shape[0], width=out.shape[1], count=out.shape[2],
               dtype="float32", crs="EPSG:4326", transform=Affine.from_gdal(*gt),
               nodata=-9999, tiled=True, compress="deflate", interleave="pixel")
with rasterio.open(dst, "w", **profile) as d:
    d.write(np.moveaxis(out, -1, 0))
"""


def lookup_tables(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """1-based ``glt_x``, ``glt_y`` of a swath of ``rows`` x ``cols`` turned by ANGLE on a
    grid of slightly finer cells (0: no pixel), as a granule's are."""
    cell = 0.9  # grid cells per pixel side, as EMIT's grid is a little finer than its pixels
    corners = np.array([[0, 0], [0, cols], [rows, 0], [rows, cols]], float)
    rot = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
    placed = corners @ rot.T / cell
    lo = placed.min(axis=0)
    shape = np.ceil(placed.max(axis=0) - lo).astype(int)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    back = (np.stack([yy + 0.5, xx + 0.5], -1) + lo) * cell @ rot  # inverse rotation
    r, c = np.floor(back[..., 0]).astype(int), np.floor(back[..., 1]).astype(int)
    inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    return (np.where(inside, c + 1, 0).astype(np.int32),
            np.where(inside, r + 1, 0).astype(np.int32))


def make_granule(path: Path, rows: int, cols: int, bands: int) -> None:
    import h5py

    rng = np.random.default_rng(0)
    gx, gy = lookup_tables(rows, cols)
    with h5py.File(path, "w") as f:
        # chunks as netCDF-C sizes them by default (about 4 MB): each spectrum spans several
        var = f.create_dataset("reflectance", (rows, cols, bands), np.float32,
                               chunks=(min(rows, 160), min(cols, 160), min(bands, 40)))
        for r0 in range(0, rows, 64):
            block = rng.normal(0.2, 0.05, (min(64, rows - r0), cols, bands))
            var[r0:r0 + len(block)] = block.astype(np.float32)
        var.attrs["_FillValue"] = np.float32(-9999)
        f.attrs["geotransform"] = np.array([-110.0, 0.000542, 0, 35.0, 0, -0.000542])
        f.attrs["spatial_ref"] = "EPSG:4326"
        group = f.create_group("sensor_band_parameters")
        group.create_dataset("wavelengths", data=np.linspace(381, 2493, bands))
        loc = f.create_group("location")
        loc.create_dataset("glt_x", data=gx)
        loc.create_dataset("glt_y", data=gy)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1280x1242x285", help="ROWSxCOLSxBANDS")
    args = ap.parse_args(argv)
    rows, cols, bands = (int(v) for v in args.size.lower().split("x"))
    hsad = str(Path(sys.executable).with_name("hsad"))
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        granule = tmp / "EMIT_L2A_RFL_001_20240101T000000_2400101_001.nc"
        make_granule(granule, rows, cols, bands)
        gx, _ = lookup_tables(rows, cols)
        print(f"granule {rows} x {cols} x {bands} float32 ({granule.stat().st_size / 1e9:.2f} "
              f"GB), grid {gx.shape[0]} x {gx.shape[1]} cells; cpus: {os.cpu_count()}")
        subprocess.run(["cat", str(granule)], check=True, stdout=subprocess.DEVNULL)  # warm
        results = [
            ("hsad detect -m rx (map on the grid)", run([hsad, "detect", str(granule), "-m",
                                                        "rx", "-o", str(tmp / "rx.tif"),
                                                        "--no-progress"])),
            ("hsad convert (ortho GeoTIFF)", run([hsad, "convert", str(granule),
                                                  str(tmp / "hsad.tif"), "--interleave",
                                                  "bip"])),
            ("emit_tools way (ortho GeoTIFF)", run([sys.executable, "-c", NASA_WAY,
                                                    str(granule), str(tmp / "nasa.tif")])),
        ]
        print(f"{'contender':38s} {'wall s':>8s} {'peak RSS GB':>12s}")
        for name, (wall, peak) in results:
            print(f"{name:38s} {wall:8.1f} {peak:12.2f}")
        import rasterio

        with rasterio.open(tmp / "hsad.tif") as a, rasterio.open(tmp / "nasa.tif") as b:
            same = a.transform == b.transform and all(
                np.array_equal(a.read(window=w), b.read(window=w))
                for _, w in a.block_windows(1))
        print(f"orthorectified cubes equal value for value: {same}")


if __name__ == "__main__":
    main()
