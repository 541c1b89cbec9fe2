"""A PRISMA L2D product to an RX map: hsad reading the .he5 itself against the usual way.

The usual way in Python (as hypercoast's and prismatools' readers, then SPy): read both
cubes whole with h5py, keep and order the bands with a wavelength (the VNIR's below the
SWIR's first, as prismaread joins them and hsad does), scale the DN to
reflectance, stack them as a (rows, cols, bands) float32 array, ``spectral.rx``, and
write the map with rasterio on the grid of the product's corners. Each contender runs in a
child process (wall time and peak RSS its own), page cache warm; the two maps are compared.

    .venv/bin/python benchmarks/bench_prisma.py                 # 1000 x 1000, 66 + 173 slots
    .venv/bin/python benchmarks/bench_prisma.py --packed        # compressed chunks
    .venv/bin/python benchmarks/bench_prisma.py --size 400x400  # a quick look
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from _data import compare_maps
from bench_emit import run

VNIR_WL = np.r_[[0, 0, 0], np.linspace(972.6, 402.4, 63)]
SWIR_WL = np.r_[np.linspace(2496.9, 942.96, 171), [0, 0]]
SWATH = "HDFEOS/SWATHS/PRS_L2D_HCO"

USUAL_WAY = r'''
import sys
import h5py, numpy as np, rasterio, spectral
from affine import Affine
path, out = sys.argv[1:]
with h5py.File(path, "r") as f:
    parts = []
    swir = np.asarray(f.attrs["List_Cw_Swir"])
    first_swir = swir[swir > 0].min()  # prismaread's join: the SWIR's bands where they overlap
    for arm, name in (("Vnir", "VNIR_Cube"), ("Swir", "SWIR_Cube")):
        wl = np.asarray(f.attrs[f"List_Cw_{arm}"])
        low, high = (float(f.attrs[f"L2Scale{arm}{e}"]) for e in ("Min", "Max"))
        keep = np.flatnonzero((wl > 0) & ((wl < first_swir) if arm == "Vnir" else True))
        keep = keep[np.argsort(wl[keep])]
        dn = f[f"HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields/{name}"][()]
        parts.append(low + dn[:, keep, :].transpose(0, 2, 1).astype(np.float32)
                     * np.float32((high - low) / 65535))
    ulx, uly = (float(f.attrs[f"Product_ULcorner_{a}"]) for a in ("easting", "northing"))
    epsg = int(f.attrs["Epsg_Code"])
cube = np.concatenate(parts, axis=2)
scores = spectral.rx(cube).astype(np.float32)
with rasterio.open(out, "w", driver="GTiff", height=scores.shape[0], width=scores.shape[1],
                   count=1, dtype="float32", crs=f"EPSG:{epsg}",
                   transform=Affine(30, 0, ulx - 15, 0, -30, uly + 15)) as dst:
    dst.write(scores, 1)
'''


def make_product(path: Path, rows: int, cols: int, packed: bool = False) -> None:
    """An L2D product of ``rows`` x ``cols`` pixels: eight materials mixed plus noise, DN
    scaled as reflectance 0-1, laid out as ASI's (tests/prisma_products.py); ``packed``:
    its cubes in gzip-compressed chunks of 100 x 100 pixels, all bands (else in one
    piece)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for name, wl in (("VNIR_Cube", VNIR_WL), ("SWIR_Cube", SWIR_WL)):
            ends = rng.uniform(0.05, 0.6, (8, wl.size))
            layout = {"chunks": (min(100, rows), wl.size, min(100, cols)),
                      "compression": "gzip", "compression_opts": 4} if packed else {}
            var = f.create_dataset(f"{SWATH}/Data Fields/{name}", (rows, wl.size, cols),
                                   np.uint16, **layout)
            for r0 in range(0, rows, 100):
                n = min(100, rows - r0)
                share = rng.dirichlet(np.ones(8), (n, cols))
                refl = share @ ends + rng.normal(0, 0.004, (n, cols, wl.size))
                dn = np.clip(refl * 65535, 1, 65535).astype(np.uint16)
                dn[:, :, wl == 0] = 0
                var[r0:r0 + n] = dn.transpose(0, 2, 1)
        f.attrs["Processing_Level"] = np.bytes_("2D")
        for arm, wl in (("Vnir", VNIR_WL), ("Swir", SWIR_WL)):
            f.attrs[f"List_Cw_{arm}"] = wl.astype(np.float32)
            f.attrs[f"List_Fwhm_{arm}"] = np.where(wl > 0, 10.0, 0).astype(np.float32)
            f.attrs[f"List_Cw_{arm}_Flags"] = (wl > 0).astype(np.uint8)
            f.attrs[f"L2Scale{arm}Min"] = np.float32(0)
            f.attrs[f"L2Scale{arm}Max"] = np.float32(1)
        f.attrs["Epsg_Code"] = np.int32(32633)
        f.attrs["Product_ULcorner_easting"] = 400_015.0
        f.attrs["Product_ULcorner_northing"] = 5_000_015.0
        f.attrs["Product_LRcorner_easting"] = 400_015.0 + 30 * (cols - 1)
        f.attrs["Product_LRcorner_northing"] = 5_000_015.0 - 30 * (rows - 1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1000x1000", help="ROWSxCOLS")
    ap.add_argument("--packed", action="store_true",
                    help="cubes in gzip-compressed chunks (read through h5py, not mapped)")
    args = ap.parse_args(argv)
    rows, cols = (int(v) for v in args.size.lower().split("x"))
    hsad = str(Path(sys.executable).with_name("hsad"))
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        product = tmp / "PRS_L2D_STD_20210724101530_20210724101534_0001.he5"
        make_product(product, rows, cols, args.packed)
        print(f"L2D product {rows} x {cols} x (66 + 173 slots) uint16"
              f"{', gzip chunks of 100 x 100' if args.packed else ''} "
              f"({product.stat().st_size / 1e9:.2f} GB); cpus: {os.cpu_count()}")
        subprocess.run(["cat", str(product)], check=True, stdout=subprocess.DEVNULL)  # warm
        results = [
            ("hsad detect -m rx (the .he5 itself)",
             run([hsad, "detect", str(product), "-m", "rx", "-o", str(tmp / "hsad.tif"),
                  "--no-progress"])),
            ("h5py whole + spectral.rx + rasterio",
             run([sys.executable, "-c", USUAL_WAY, str(product), str(tmp / "usual.tif")])),
        ]
        report(results, tmp / "hsad.tif", tmp / "usual.tif")


def report(results, ours_path: Path, theirs_path: Path) -> None:
    """Print each contender's wall time and peak RSS, and how its two maps compare: grid and
    CRS, NaN pixels, and the largest score difference over the mean score."""
    print(f"{'contender':38s} {'wall s':>8s} {'peak RSS GB':>12s}")
    for name, (wall, peak) in results:
        print(f"{name:38s} {wall:8.1f} {peak:12.2f}")
    compare_maps(ours_path, theirs_path)


if __name__ == "__main__":
    main()
