"""``hsad convert`` of an ENVI cube to MAT v5 beside ``scipy.io.savemat`` of the same
cube, same run: wall time and peak resident memory of each, in a child process.

Writes a seeded float32 ENVI cube (rows x cols x bands, in the interleave asked), then runs

- ``hsad convert cube.img out.mat``: the cube's variable written a band group at a time
  (``hsad.io.mat_writer``);
- ``hsad.open_cube + scipy.io.savemat``: the cube read into memory and written whole,
  compressed, as a Python user (and hsad before 2026-12-05) would.

Both files are read back with ``scipy.io.loadmat`` and compared.

    .venv/bin/python benchmarks/bench_convert_mat.py                      # 1500 x 1500 x 200
    .venv/bin/python benchmarks/bench_convert_mat.py --size 1000 --interleave bip
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fail  # noqa: E402
from _data import run_child as run  # noqa: E402

SCIPY_WAY = r"""
import sys, numpy as np, scipy.io as sio, hsad
cube = hsad.open_cube(sys.argv[1])
sio.savemat(sys.argv[2], {"data": np.asarray(cube.values)}, do_compression=True,
            oned_as="row")
"""


def make_cube(folder: Path, rows: int, cols: int, bands: int, interleave: str) -> Path:
    """A seeded float32 ENVI cube, written tile by tile."""
    import dask.array as da

    from hsad.cube import make_cube as wrap
    from hsad.io.envi_writer import write_envi

    rng = da.random.default_rng(0)
    data = (rng.normal(size=(rows, cols, bands), chunks=(256, 256, bands)) * 300 + 2000)
    cube = wrap(data.astype(np.float32), wavelength=np.linspace(400, 2500, bands))
    return write_envi(cube, folder / "cube.img", interleave=interleave)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1500, help="rows = columns of the cube")
    ap.add_argument("--bands", type=int, default=200)
    ap.add_argument("--interleave", choices=("bsq", "bil", "bip"), default="bil")
    args = ap.parse_args(argv)
    gib = args.size ** 2 * args.bands * 4 / 2 ** 30
    if not 16 <= args.size <= 20000 or not 1 <= args.bands <= 2000 or gib > 1.99:
        fail(f"--size {args.size} --bands {args.bands}: a float32 cube of at most 2 GiB "
             "(MAT v5's limit), 16 pixels a side at least")
    import scipy.io as sio

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        cube = make_cube(Path(tmp), args.size, args.size, args.bands, args.interleave)
        print(f"cube {args.size} x {args.size} x {args.bands} float32 ({gib:.2f} GiB, "
              f"ENVI {args.interleave}); cpus: {os.cpu_count()}")
        results = [
            ("hsad convert", run([sys.executable, "-m", "hsad", "convert", str(cube),
                                  f"{tmp}/hsad.mat", "--no-progress"])),
            ("hsad.open_cube + scipy savemat",
             run([sys.executable, "-c", SCIPY_WAY, str(cube), f"{tmp}/scipy.mat"])),
        ]
        same = np.array_equal(sio.loadmat(f"{tmp}/hsad.mat")["data"],
                              sio.loadmat(f"{tmp}/scipy.mat")["data"])
        sizes = [os.path.getsize(f"{tmp}/{n}.mat") for n in ("hsad", "scipy")]
    print(f"{'contender':32s} {'wall s':>8s} {'peak RSS GB':>12s}")
    for name, (wall, peak) in results:
        print(f"{name:32s} {wall:8.1f} {peak:12.2f}")
    print(f"arrays read back equal: {same}; file sizes {sizes[0]:,} and {sizes[1]:,} bytes")


if __name__ == "__main__":
    main()
