"""Global RX from Python on one scene given in each form a notebook holds, beside SPy's
``spectral.rx`` on the same file, same run (best of ``--repeat``).

Writes a seeded int16 scene (rows x cols x bands) as ENVI and as hsad's tiled, compressed
GeoTIFF, then times ``detectors.get("rx").fit_score(...).values`` on

- ``hsad.open_cube`` of the ENVI file and of the GeoTIFF, and the ENVI cube divided by
  10 000 (arithmetic on a lazy cube, as a notebook scales DNs to reflectance);
- ``rioxarray.open_rasterio`` of the ENVI file: unchunked, ``chunks=True``, and chunked
  ``{"band": -1, "y": 512, "x": 512}``;
- ``spectral.open_image`` (SPy's file object, read through hsad);
- a numpy array already in memory;

and SPy's own ``spectral.rx(spectral.open_image(...).load())`` as the peer. Each form's map
is compared with the numpy array's (its largest difference, relative to the highest score).

    .venv/bin/python benchmarks/bench_api_inputs.py                 # 768 x 768 x 60
    .venv/bin/python benchmarks/bench_api_inputs.py --size 1024 --bands 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fail, require_spy  # noqa: E402


def make_files(folder: Path, size: int, bands: int) -> tuple[Path, Path]:
    from affine import Affine

    import hsad
    from hsad.io.envi_writer import write_envi
    from hsad.io.geotiff_writer import write_geotiff_cube

    rng = np.random.default_rng(0)
    cube = hsad.make_cube((rng.normal(size=(size, size, bands)) * 100 + 1000).astype(np.int16),
                          transform=Affine(30, 0, 5e5, 0, -30, 4e6), crs="EPSG:32633",
                          wavelength=np.linspace(400, 2500, bands))
    return write_envi(cube, folder / "scene.img"), write_geotiff_cube(cube, folder / "scene.tif")


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=768, help="rows = columns of the scene")
    ap.add_argument("--bands", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if not 64 <= args.size <= 8192 or not 2 <= args.bands <= 1000 or args.repeat < 1:
        fail("give --size 64…8192, --bands 2…1000 and --repeat ≥ 1")
    require_spy()
    import rioxarray
    import spectral

    import hsad
    from hsad import detectors

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        envi, tif = make_files(Path(tmp), args.size, args.bands)
        header = str(envi.with_suffix(".hdr"))
        in_memory = np.asarray(hsad.open_cube(envi).values)
        forms = {
            "hsad.open_cube (ENVI)": lambda: hsad.open_cube(envi),
            "hsad.open_cube (tiled GeoTIFF)": lambda: hsad.open_cube(tif),
            "hsad.open_cube (ENVI) / 10000": lambda: hsad.open_cube(envi) / 10000,
            "rioxarray.open_rasterio": lambda: rioxarray.open_rasterio(envi),
            "rioxarray, chunks=True": lambda: rioxarray.open_rasterio(envi, chunks=True),
            "rioxarray, chunked band=-1, 512²": lambda: rioxarray.open_rasterio(envi).chunk(
                {"band": -1, "y": 512, "x": 512}),
            "spectral.open_image (SPy file)": lambda: spectral.open_image(header),
            "numpy array in memory": lambda: in_memory,
        }
        print(f"scene {args.size} x {args.size} x {args.bands} int16; cpus: {os.cpu_count()}; "
              f"best of {args.repeat}")
        print(f"{'RX fit_score on':40s} {'s':>8s}  largest difference from the numpy map")
        reference = detectors.get("rx").fit_score(in_memory).values
        for name, form in forms.items():
            maps = []

            def run(f=form, m=maps):
                m.append(detectors.get("rx").fit_score(f()).values)

            seconds = best(run, args.repeat)
            diff = np.nanmax(np.abs(maps[-1] - reference) / np.abs(reference).max())
            print(f"{name:40s} {seconds:8.2f}  {diff:.1e} of the highest score")
        peer = best(lambda: spectral.rx(spectral.open_image(header).load()), args.repeat)
        print(f"{'SPy spectral.rx(open_image().load())':40s} {peer:8.2f}")


if __name__ == "__main__":
    main()
