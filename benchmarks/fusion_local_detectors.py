"""A third map in the fusion: a classic local detector (LRX or CRD) beside the spatial and
the spectral map, judged out of sample like the other fusion rules (issue #12, "a fusion
that never hurts"; docs/fusion_rules.md).

D = λs·N(D_spatial) + λc·N(local) + (1 − λs − λc)·N(D_spectral), N = min-max, with the
default spatial map (multi-scale AED, the default's largest area) and ``local`` the ``lrx``
or ``crd`` detector at its library defaults, run on the same cube as HADGAN (real scenes and
the implanted ones of ``benchmarks/collect_fusion_maps.py``). Same implanted constraint,
same leave-one-scene-out selection and the same table as ``benchmarks/fusion_rules.py``; the
two-map rule (the λ grid of ``choose_fusion.py``) is the baseline row. Every rule is judged
with D_spectral itself and (family name ending ``+tophat``) with its area top-hat over the
spatial map's areas (``hsad.fusion.spectral_tophat``, the library default since
2026-12-02).

The local maps are cached beside the fusion maps (``<folder>/local/``), about 1 s per file.

    .venv/bin/python benchmarks/collect_fusion_maps.py /tmp/fusion_maps
    .venv/bin/python benchmarks/fusion_local_detectors.py /tmp/fusion_maps
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

from hsad import detectors
from hsad import fusion as F

sys.path.insert(0, str(Path(__file__).parent))
from choose_fusion import LAMS, file_aucs, mean, parse_args, report, split  # noqa: E402
from collect_fusion_maps import map_scene  # noqa: E402
from fusion_rules import POOLS, family_tables  # noqa: E402

LOCAL = ("lrx", "crd")
#: (λs, λc) pairs of the three-map rule: the spatial and the local map's weights.
WEIGHTS = [(s, c) for s in (0.2, 0.3, 0.4, 0.5) for c in (0.1, 0.2, 0.3, 0.4, 0.5)
           if s + c <= 0.8]
AREA = F.VARIANT_DEFAULTS["multiscale"]["area"]


def local_maps(folder: Path, stem: str) -> dict[str, np.ndarray]:
    """The local detectors' maps of one map file (cached in ``folder/local``), with their
    seconds."""
    path = folder / "local" / f"{stem}.npz"
    if not path.exists():
        name, size = stem.rsplit("_", 1)
        cube, _, _ = map_scene(name, None if size == "real" else size)
        maps = {}
        for method in LOCAL:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                maps[method] = np.asarray(detectors.get(method).fit_score(cube).values)
            maps[f"{method}_seconds"] = np.float64(time.perf_counter() - t0)
        path.parent.mkdir(exist_ok=True)
        np.savez(path, **maps)
    z = np.load(path)
    return {k: z[k] for k in z.files}


def fusion_maps(folder: Path):
    """``maps_of(d)`` for :func:`choose_fusion.file_aucs`: every candidate of one map file."""
    def maps_of(d: dict) -> dict[str, np.ndarray]:
        local = local_maps(folder, d["stem"])
        spatial = F.normalise_map(F.spatial_aed(d["pcs"][:, :, :4], area=F.ladder(AREA),
                                                radius=1, eps=1e-3))
        out = {"rx": d["rx"], "d_spectral": d["spec"], **{m: local[m] for m in LOCAL}}
        terms = {"": d["spec"], "+tophat": F.spectral_tophat(d["spec"], F.ladder(AREA))}
        for suffix, term in terms.items():
            spectral = F.normalise_map(term)
            for lam in LAMS:
                out[f"two maps (default rule){suffix} | λ={lam}"] = (lam * spatial
                                                                     + (1 - lam) * spectral)
            for method in LOCAL:
                m = F.normalise_map(local[method])
                for s, c in WEIGHTS:
                    out[f"{method} as third map{suffix} | λs={s} λc={c}"] = (
                        s * spatial + c * m + (1 - s - c) * spectral)
        return out
    return maps_of


def main() -> None:
    args = parse_args(__doc__)
    folder = Path(args.folder)
    aucs = file_aucs(args.folder, fusion_maps(folder))
    real, implanted, _ = split(aucs)
    seconds = {m: np.mean([float(local_maps(folder, s)[f"{m}_seconds"]) for s in real])
               for m in LOCAL}
    alone = ", ".join(f"{m} {mean(aucs, m, real):.4f} ({seconds[m]:.2f} s per scene)"
                      for m in LOCAL)
    text = ["# A local detector as a third fusion map, judged out of sample", "",
            "Written by `benchmarks/fusion_local_detectors.py` (do not edit by hand) from the "
            "maps of", "`benchmarks/collect_fusion_maps.py` (HADGAN at the library defaults, "
            f"seed 0) on {len(real)} real scenes", f"and {len(implanted)} implanted ones.", "",
            "AUC(D,F); columns as in fusion_rules.md. Global RX: "
            f"{mean(aucs, 'rx', real):.4f}; D_spectral alone: "
            f"{mean(aucs, 'd_spectral', real):.4f}; the local detectors alone: {alone}.", "",
            *family_tables(aucs, POOLS)]
    report(text, args.out)


if __name__ == "__main__":
    main()
