"""The spectra of the detections (``hsad detect --spectra``) beside the way an analyst
writes it with SPy and SciPy, same scene and mask, same run.

Writes a seeded 2048 x 2048 x 200 int16 ENVI scene (BIL, as AVIRIS delivers it; 1.7 GB)
and a mask of blobs flagging about ``--share`` of the pixels, then runs each contender in
a child process and prints its wall time and peak resident memory (page cache warm):

- ``hsad``: ``region_spectra`` on the lazily opened cube (pixels read in batches ordered by
  chunk) and ``write_spectra`` to CSV: each region's peak and mean spectrum and the
  background's mean and standard deviation;
- ``SPy + SciPy``: ``spectral.open_image(...).load()`` (the whole cube in memory), then
  ``scipy.ndimage.mean`` and ``maximum_position`` of each band over the labelled regions,
  and the background's mean and standard deviation with numpy.

The mean spectra of the two are compared. A mask that flags no pixel (a small ``--size``
with a small ``--share``: the blobs are drawn at random) leaves nothing to compare: the
script says so and exits with status 2 before running either contender.

    .venv/bin/python benchmarks/bench_spectra.py
    .venv/bin/python benchmarks/bench_spectra.py --share 0.05 --size 1024x1024x200
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
from _data import fail, parse_size, require_spy  # noqa: E402
from bench_emit import run  # noqa: E402  (a child process's wall time and peak RSS)

HSAD_WAY = r"""
import sys, numpy as np, xarray as xr
from hsad.cube import transform_of
from hsad.io import open_cube
from hsad.outputs.spectra import region_spectra, write_spectra
scene, folder = sys.argv[1:3]
cube = open_cube(scene)
def as_map(values):
    out = xr.DataArray(values, dims=("y", "x"), coords={"y": cube.y, "x": cube.x})
    return out.rio.write_crs(cube.rio.crs).rio.write_transform(transform_of(cube))
ds = region_spectra(cube, as_map(np.load(folder + "/mask.npy")),
                    as_map(np.load(folder + "/scores.npy")))
write_spectra(ds, folder + "/hsad.csv")
np.save(folder + "/hsad_mean.npy", ds["mean_spectrum"].values)
"""

SPY_WAY = r"""
import sys, numpy as np, spectral
from scipy import ndimage
scene, folder = sys.argv[1:3]
cube = np.asarray(spectral.open_image(scene).load())  # a plain array: ndimage is slow on
# SPy's ImageArray subclass (13 s a band at 512 x 512)
mask, scores = np.load(folder + "/mask.npy"), np.load(folder + "/scores.npy")
labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
index = np.arange(1, n + 1)
peaks = ndimage.maximum_position(scores, labels, index)
peak = np.stack([cube[r, c] for r, c in peaks])
mean = np.stack([ndimage.mean(cube[:, :, b], labels, index) for b in range(cube.shape[2])], 1)
background = cube[~mask & np.isfinite(scores)]
np.savetxt(folder + "/spy.csv", np.vstack([background.mean(0), background.std(0), peak, mean]),
           delimiter=",", fmt="%.7g")
np.save(folder + "/spy_mean.npy", mean)
"""


def make_scene(folder: Path, rows: int, cols: int, bands: int, share: float) -> Path:
    """A seeded int16 BIL ENVI scene and a mask of 3 x 3 blobs (with its score map)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    data = folder / "scene.bil"
    with open(data, "wb") as fh:
        for r0 in range(0, rows, 64):
            block = rng.integers(0, 4000, (min(64, rows - r0), bands, cols), dtype=np.int16)
            fh.write(block.astype("<i2").tobytes())
    (folder / "scene.hdr").write_text(
        f"ENVI\nsamples = {cols}\nlines = {rows}\nbands = {bands}\nheader offset = 0\n"
        "file type = ENVI Standard\ndata type = 2\ninterleave = bil\nbyte order = 0\n"
        "map info = {UTM, 1, 1, 500000, 4200000, 5, 5, 11, North, WGS-84}\n"
        f"wavelength = {{{', '.join(f'{w:.2f}' for w in np.linspace(400, 2500, bands))}}}\n")
    seeds = rng.random((rows, cols)) < share / 9
    mask = ndimage.binary_dilation(seeds, structure=np.ones((3, 3), bool))
    scores = rng.random((rows, cols)).astype(np.float32) + mask
    np.save(folder / "mask.npy", mask)
    np.save(folder / "scores.npy", scores)
    return folder / "scene.hdr"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2048x2048x200", help="ROWSxCOLSxBANDS")
    ap.add_argument("--share", type=float, default=0.002, help="share of pixels flagged")
    args = ap.parse_args(argv)
    rows, cols, bands = parse_size(args.size)
    if not 0 < args.share < 1:
        fail(f"--share {args.share}: the share of pixels flagged lies in (0, 1)")
    require_spy()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        header = make_scene(tmp, rows, cols, bands, args.share)
        mask = np.load(tmp / "mask.npy")
        if not mask.any():
            fail(f"no pixel flagged: --share {args.share:g} of a {rows} x {cols} scene drew no "
                 f"blob (about {rows * cols * args.share / 9:.1f} expected), so there are no "
                 "spectra to compare; raise --share or --size")
        print(f"scene {rows} x {cols} x {bands} int16 BIL "
              f"({(tmp / 'scene.bil').stat().st_size / 1e9:.2f} GB); {int(mask.sum())} "
              f"pixels flagged; cpus: {os.cpu_count()}")
        subprocess.run(["cat", str(tmp / "scene.bil")], check=True,
                       stdout=subprocess.DEVNULL)  # page cache warm for both
        results = [("hsad region_spectra + CSV", run([sys.executable, "-c", HSAD_WAY,
                                                      str(header), str(tmp)])),
                   ("SPy load + scipy.ndimage", run([sys.executable, "-c", SPY_WAY,
                                                     str(header), str(tmp)]))]
        print(f"{'contender':30s} {'wall s':>8s} {'peak RSS GB':>12s}")
        for name, (wall, peak) in results:
            print(f"{name:30s} {wall:8.1f} {peak:12.2f}")
        a, b = np.load(tmp / "hsad_mean.npy"), np.load(tmp / "spy_mean.npy")
        print(f"regions: {len(a)}; mean spectra: max relative difference "
              f"{np.max(np.abs(a - b) / np.abs(b)):.1e}")


if __name__ == "__main__":
    main()
