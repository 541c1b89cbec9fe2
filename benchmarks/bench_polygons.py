"""Anomaly polygons of a speckled mask: hsad's ``regions`` + ``write_regions`` (what
``hsad detect --polygons`` runs) beside GDAL's polygonize alone (``rasterio.features.shapes``
and a GeoPackage write of what it traces, as ``gdal_polygonize.py -8`` does), same run.

The mask flags a share of the pixels at random (``--share``, default 0.3 of 3000 × 1000:
about 140,000 8-connected regions, the worst case of a permissive ``--contamination``).
GDAL's 8-connected trace of pixels meeting at a corner gives rings that touch themselves
(invalid polygons, counted below); hsad traces 4-connected parts and gathers them, so every
region is one valid (Multi)Polygon with its score fields.

    .venv/bin/python benchmarks/bench_polygons.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from pyogrio.raw import write

from hsad.outputs.polygons import regions, write_regions

GRID = Affine(30, 0, 500_000, 0, -30, 5_100_000)


def gdal_polygonize(mask: np.ndarray, path: Path) -> tuple[int, int]:
    """``(polygons, invalid ones)`` written by GDAL's own 8-connected polygonize."""
    shapes = [shapely.geometry.shape(g) for g, _ in rasterio.features.shapes(
        mask.astype(np.uint8), mask=mask, connectivity=8, transform=GRID)]
    geoms = np.array(shapes, dtype=object)
    write(str(path), geometry=shapely.to_wkb(geoms), field_data=[], fields=[],
          driver="GPKG", geometry_type="Polygon", crs="EPSG:32633")
    return geoms.size, int((~shapely.is_valid(geoms)).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="3000x1000", help="ROWSxCOLS")
    ap.add_argument("--share", type=float, default=0.3, help="share of pixels flagged")
    args = ap.parse_args(argv)
    rows, cols = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    mask = rng.random((rows, cols)) < args.share
    scores = rng.random((rows, cols))
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        geoms, props = regions(mask, scores, transform=GRID)
        t1 = time.perf_counter()
        write_regions(geoms, props, Path(tmp) / "hsad.gpkg", crs="EPSG:32633",
                      with_scores=True)
        t2 = time.perf_counter()
        n_gdal, invalid = gdal_polygonize(mask, Path(tmp) / "gdal.gpkg")
        t3 = time.perf_counter()
    print(f"mask {rows} x {cols}, {args.share:.0%} of pixels flagged")
    print(f"{'contender':<34}{'polygons':>10}{'invalid':>9}{'seconds':>9}")
    print(f"{'hsad regions + write_regions':<34}{geoms.size:>10}"
          f"{int((~shapely.is_valid(geoms)).sum()):>9}{t2 - t0:>9.2f}"
          f"   (trace {t1 - t0:.2f}, write {t2 - t1:.2f})")
    print(f"{'GDAL polygonize -8, GPKG':<34}{n_gdal:>10}{invalid:>9}{t3 - t2:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
