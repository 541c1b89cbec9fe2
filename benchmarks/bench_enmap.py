"""An EnMAP L2A product to an RX map without its clouds: hsad reading the product folder
against the usual way.

The usual way in Python (as the EnMAP-Box's import then SPy): parse the METADATA.XML for
the wavelengths, gains and detector band lists, read the SPECTRAL_IMAGE whole with
rasterio, keep the VNIR's bands below the SWIR's first wavelength and the SWIR's, scale the
DN to reflectance, set the background and the pixels the cloud and cloud-shadow layers flag
to NaN, ``spectral.rx`` with the statistics of the other pixels, and write the map with
rasterio on the image's grid. Each contender runs in a child process (wall time and peak
RSS its own), page cache warm; the two maps are compared.

    .venv/bin/python benchmarks/bench_enmap.py                 # 1000 x 1000 x 224 int16
    .venv/bin/python benchmarks/bench_enmap.py --size 300x300  # a quick look
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from bench_emit import run
from bench_prisma import report

VNIR_WL = np.linspace(418.2, 993.2, 91).round(3)
SWIR_WL = np.linspace(902.5, 2445.5, 133).round(3)
PREFIX = "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"
TRANSFORM = Affine(30.0, 0.0, 360_000.0, 0.0, -30.0, 5_810_000.0)

USUAL_WAY = r'''
import sys, xml.etree.ElementTree as ET
import numpy as np, rasterio, spectral
folder, out = sys.argv[1:]
prefix = next(p.name[:-13] for p in __import__("pathlib").Path(folder).iterdir()
              if p.name.endswith("-METADATA.XML"))
root = ET.parse(f"{folder}/{prefix}-METADATA.XML").getroot()
bands = root.findall("specific/bandCharacterisation/bandID")
wl = np.array([float(b.findtext("wavelengthCenterOfBand")) for b in bands])
gain = np.array([float(b.findtext("GainOfBand")) for b in bands], np.float32)
offset = np.array([float(b.findtext("OffsetOfBand")) for b in bands], np.float32)
vnir, swir = (np.array([int(v) for v in root.findtext(f"specific/{d}ProductQuality/"
              "expectedChannelsList").split(",")]) - 1 for d in ("vnir", "swir"))
keep = np.concatenate([vnir[wl[vnir] < wl[swir].min()], swir])
keep = keep[np.argsort(wl[keep])]
with rasterio.open(f"{folder}/{prefix}-SPECTRAL_IMAGE.TIF") as src:
    dn = src.read()
    crs, transform = src.crs, src.transform
cube = dn[keep].transpose(1, 2, 0).astype(np.float32) * gain[keep] + offset[keep]
bad = (dn[keep] == -32768).any(axis=0)
del dn
for layer in ("CLOUD", "CLOUDSHADOW"):
    with rasterio.open(f"{folder}/{prefix}-QL_QUALITY_{layer}.TIF") as src:
        bad |= src.read(1) == 1
stats = spectral.calc_stats(cube[~bad])
scores = spectral.rx(cube, background=stats).astype(np.float32)
scores[bad] = np.nan
with rasterio.open(out, "w", driver="GTiff", height=scores.shape[0], width=scores.shape[1],
                   count=1, dtype="float32", crs=crs, transform=transform,
                   nodata=float("nan")) as dst:
    dst.write(scores, 1)
'''


def make_product(folder: Path, rows: int, cols: int) -> None:
    """An L2A product of ``rows`` x ``cols`` pixels as DLR lays it out (one folder, the
    image band-interleaved int16 with the bands in ascending wavelength, the detectors
    interleaved where they overlap): eight materials mixed plus noise, a frame of background
    value, a cloud and its shadow flagged in their layers (tests/enmap_products.py)."""
    rng = np.random.default_rng(0)
    wl = np.r_[VNIR_WL, SWIR_WL]
    order = np.argsort(wl, kind="stable")
    detector = np.r_[np.zeros(VNIR_WL.size, int), np.ones(SWIR_WL.size, int)][order]
    wl = wl[order]
    ends = rng.uniform(0.05, 0.6, (8, wl.size))
    cloud = np.zeros((rows, cols), np.uint8)
    cloud[rows // 5:rows // 5 + rows // 8, cols // 3:cols // 3 + cols // 6] = 1
    shadow = np.roll(cloud, (rows // 10, cols // 12), axis=(0, 1)) & (1 - cloud)
    profile = dict(driver="GTiff", width=cols, height=rows, crs="EPSG:32633",
                   transform=TRANSFORM)
    with rasterio.open(folder / f"{PREFIX}-SPECTRAL_IMAGE.TIF", "w", count=wl.size,
                       dtype="int16", nodata=-32768, interleave="band", **profile) as dst:
        for r0 in range(0, rows, 100):
            n = min(100, rows - r0)
            share = rng.dirichlet(np.ones(8), (n, cols))
            refl = share @ ends + rng.normal(0, 0.004, (n, cols, wl.size))
            refl[cloud[r0:r0 + n] == 1] = 0.8 + rng.normal(0, 0.01, (int(cloud[r0:r0 + n].sum()),
                                                                      wl.size))
            refl[shadow[r0:r0 + n] == 1] *= 0.3
            dn = np.clip(refl * 10000, 1, 10000).astype(np.int16)
            dn[:, :3] = -32768
            if r0 == 0:
                dn[:3] = -32768
            dst.write(dn.transpose(2, 0, 1), window=((r0, r0 + n), (0, cols)))
    for layer, values in (("CLOUD", cloud), ("CLOUDSHADOW", shadow)):
        with rasterio.open(folder / f"{PREFIX}-QL_QUALITY_{layer}.TIF", "w", count=1,
                           dtype="uint8", **profile) as dst:
            dst.write(values, 1)
    bands = "\n".join(
        f'<bandID number="{i + 1}"><wavelengthCenterOfBand>{w}</wavelengthCenterOfBand>'
        f"<FWHMOfBand>8.0</FWHMOfBand><GainOfBand>0.0001</GainOfBand>"
        f"<OffsetOfBand>0</OffsetOfBand></bandID>" for i, w in enumerate(wl))
    lists = {d: ",".join(str(i + 1) for i in np.flatnonzero(detector == k))
             for d, k in (("vnir", 0), ("swir", 1))}
    (folder / f"{PREFIX}-METADATA.XML").write_text(
        f"<?xml version='1.0' encoding='UTF-8'?>\n<level_X><base><level>L2A</level></base>"
        f"<specific><vnirProductQuality><expectedChannelsList>{lists['vnir']}"
        f"</expectedChannelsList></vnirProductQuality><swirProductQuality>"
        f"<expectedChannelsList>{lists['swir']}</expectedChannelsList></swirProductQuality>"
        f"<bandCharacterisation>{bands}</bandCharacterisation></specific></level_X>\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1000x1000", help="ROWSxCOLS")
    args = ap.parse_args(argv)
    rows, cols = (int(v) for v in args.size.lower().split("x"))
    hsad = str(Path(sys.executable).with_name("hsad"))
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        folder = tmp / PREFIX
        folder.mkdir()
        make_product(folder, rows, cols)
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"L2A product {rows} x {cols} x 224 int16 ({size / 1e9:.2f} GB); "
              f"cpus: {os.cpu_count()}")
        for f in folder.iterdir():  # page cache warm
            subprocess.run(["cat", str(f)], check=True, stdout=subprocess.DEVNULL)
        results = [
            ("hsad detect -m rx --exclude-quality",
             run([hsad, "detect", str(folder), "-m", "rx", "--exclude-quality",
                  "cloud,cloudshadow", "-o", str(tmp / "hsad.tif"), "--no-progress"])),
            ("XML + rasterio whole + spectral.rx",
             run([sys.executable, "-c", USUAL_WAY, str(folder), str(tmp / "usual.tif")])),
        ]
        report(results, tmp / "hsad.tif", tmp / "usual.tif")

if __name__ == "__main__":
    main()
