"""How often ``--library`` names a detection right: every spectrum of a real spectral library
implanted as a 3 x 3 target into a background of another of its materials, seen through
another sensor's bands, and named back by ``hsad.outputs.library_match``.

The scene's bands are EnMAP-like (224 bands, 420–2450 nm, FWHM 8–12 nm; the water bands at
1340–1460 and 1790–1960 nm marked bad), each a whole Gaussian over the library's bands, so
the library is resampled by another rule than the one that built the scene. Each target is
scaled by a brightness drawn from 0.7–1.3 and gets Gaussian noise of ``--noise`` times the
scene's mean reflectance. The regions are the implanted squares themselves (the detector
is not what is measured here). Prints the share named right and the angles, at each noise.

    .venv/bin/python benchmarks/library_naming.py
    .venv/bin/python benchmarks/library_naming.py --library my_library.sli --background 30
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_file  # noqa: E402

#: beside the scenes' folder: ``$HSAD_DATA_DIR``, else the checkout's ``../shared/datasets``
DEFAULT = Path(os.environ.get("HSAD_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared"
               / "datasets").parent / "envi_corpus" / "enmapbox" / "library_berlin.sli"


def sensor_bands() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EnMAP-like centres, FWHM and good bands."""
    wavelength = np.linspace(420, 2450, 224)
    fwhm = np.interp(wavelength, [420, 1000, 2450], [8.0, 10.0, 12.0])
    good = ~(((wavelength > 1340) & (wavelength < 1460)) |
             ((wavelength > 1790) & (wavelength < 1960)))
    return wavelength, fwhm, good


def seen_by(spectra: np.ndarray, source: np.ndarray, wavelength: np.ndarray,
            fwhm: np.ndarray) -> np.ndarray:
    """Whole-Gaussian band responses over the library's bands (NaN values left out)."""
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    weights = np.exp(-0.5 * ((source[None] - wavelength[:, None]) / sigma[:, None]) ** 2)
    ok = np.isfinite(spectra)
    total = np.where(ok, spectra, 0) @ weights.T
    norm = ok.astype(float) @ weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / norm
    covered = (weights.sum(axis=1) > 1e-6) & (wavelength >= source.min()) & \
        (wavelength <= source.max())
    return np.where(covered, out, np.nan)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", default=str(DEFAULT), help="ENVI spectral library (.sli)")
    ap.add_argument("--background", type=int, default=30, help="index of the background "
                    "material (the library's 31st: a grass in library_berlin)")
    ap.add_argument("--noise", default="0,0.01,0.05,0.1,0.2", help="noise levels, comma-separated")
    args = ap.parse_args(argv)
    require_file(args.library, "spectral library", "give --library (an ENVI .sli; default: "
                 "envi_corpus/enmapbox/library_berlin.sli beside $HSAD_DATA_DIR's folder)")
    from hsad.cube import make_cube
    from hsad.outputs.library_match import match_library, read_library
    from hsad.outputs.spectra import region_spectra

    lib = read_library(args.library)
    wavelength, fwhm, good = sensor_bands()
    seen = seen_by(lib.spectra, lib.wavelength, wavelength, fwhm)
    bands = np.isfinite(seen).all(axis=0) & good
    n = len(lib.names)
    side = int(np.ceil(np.sqrt(n)))
    print(f"library {Path(args.library).name}: {n} spectra; scene bands {bands.sum()} good of "
          f"{wavelength.size}; background: {lib.names[args.background]}")
    print(f"{'noise':>6s} {'named right':>12s} {'median angle':>13s} {'median margin':>14s}")
    for level in (float(v) for v in args.noise.split(",")):
        rng = np.random.default_rng(0)
        rows = cols = side * 6
        cube = np.repeat(np.repeat(np.nan_to_num(seen[args.background])[None, None], rows, 0),
                         cols, 1) * rng.uniform(0.9, 1.1, (rows, cols, 1))
        mask = np.zeros((rows, cols), bool)
        truth = []
        for i in range(n):
            if i == args.background:
                continue
            r, c = 6 * (i // side) + 2, 6 * (i % side) + 2
            cube[r:r + 3, c:c + 3] = np.nan_to_num(seen[i]) * rng.uniform(0.7, 1.3)
            mask[r:r + 3, c:c + 3] = True
            truth.append(i)
        scale = np.nanmean(seen[:, bands])
        cube = cube + rng.normal(0, level * scale, cube.shape)
        scene = make_cube(cube.astype(np.float32), wavelength=wavelength, fwhm=fwhm,
                          good_band=bands)
        found = match_library(region_spectra(scene, mask, mask.astype(float)), lib)
        names = list(found["match"].values)
        right = sum(lib.names[t] == name for t, name in zip(truth, names, strict=True))
        margin = found["second_angle"].values - found["match_angle"].values
        print(f"{level:6.3f} {right:5d} of {len(truth):3d} "
              f"{np.nanmedian(found['match_angle'].values):12.3f}° {np.nanmedian(margin):13.3f}°")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
