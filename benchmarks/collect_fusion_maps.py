"""The maps ``benchmarks/choose_fusion.py`` chooses the fusion from: HADGAN (library
defaults, seed 0, CPU) trained on each real scene and on implanted versions of each.

Per map file (``<scene>_<real|size>.npz``): the residual |Y − Ŷ|, D_spectral (RX of the
residual), global RX, the cube's six leading principal components, the truth and the pixels
left out of the metric (an implanted scene's own labelled anomalies). Implanted targets:
``hsad.synthetic.implant`` with the counts of ``benchmarks/implanted_suite.py`` (its
``size_count``) and seed 7: flat targets of the standard sizes (``<scene>_7x7``), and
textured ones from 7×7 to 15×15 (``<scene>_13x13t``: ``implant(texture=True)``, the scene's
own pixel-to-pixel variation in every target pixel). Resumable: existing files are kept.
About 10 s per file on this 2-core CPU (100 files, 810 MB in all).

    .venv/bin/python benchmarks/collect_fusion_maps.py /tmp/fusion_maps
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hsad import datasets, detectors
from hsad import fusion as F
from hsad.synthetic import implant

sys.path.insert(0, str(Path(__file__).parent))
from _data import require_scenes  # noqa: E402
from implanted_suite import scene_pool, size_count  # noqa: E402

SIZES = ("1x1", "3x3", "7x7", "15x15")
#: textured targets (file suffix ``t``): the sizes around the spatial map's largest area
TEXTURED_SIZES = ("7x7t", "9x9t", "11x11t", "13x13t", "15x15t")


def map_scene(name: str, size: str | None):
    """``(cube, truth, ignore)`` of one map file: a real scene (``size`` None) or the scene
    with targets of ``size`` implanted (seed 7; a trailing ``t``: textured targets; its own
    labelled anomalies are ignored)."""
    cube, gt = datasets.load(name)
    if not size:
        return cube, gt.values, np.zeros(gt.shape, bool)
    texture = size.endswith("t")
    size = size.removesuffix("t")
    im = implant(cube, scene_pool(name, cube.sizes["band"]), size=size,
                 count=size_count(size), exclude=gt.values, seed=7, texture=texture)
    return im.cube, im.implanted, gt.values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out_dir = Path(args.folder)
    jobs = [(n, None) for n in datasets.names()]
    jobs += [(n, z) for z in SIZES + TEXTURED_SIZES for n in datasets.names()]
    jobs = [(n, z) for n, z in jobs if not (out_dir / f"{n}_{z or 'real'}.npz").exists()]
    if jobs:  # an implanted scene takes its targets from every other scene
        require_scenes()
    print(f"{len(jobs)} map files to make in {out_dir}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, size in jobs:
        out = out_dir / f"{name}_{size or 'real'}.npz"
        cube, truth, ignore = map_scene(name, size)
        t0 = time.perf_counter()
        det = detectors.get("hadgan", seed=0, progress=False, device="cpu").fit(cube)
        residual = det.residual(cube).compute()
        spec = F.spectral_rx(residual)
        pcs = F.principal_components(det._scene_good_bands(cube), 6)
        rx = detectors.get("rx").fit_score(cube).values
        np.savez(out, residual=residual, spec=spec, pcs=pcs, rx=rx, truth=truth, ignore=ignore)
        print(f"{out.name}: {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
