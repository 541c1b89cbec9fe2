"""What HADGAN's spectral detector reads, re-checked by leave-one-scene-out (issue #12,
item 4): RX of the absolute residual |Y − Ŷ| (the paper's and hsad's default) against three
other inputs from the same trained network:

- ``signed``: the signed residual Y − Ŷ (the absolute value folds a residual's direction);
- ``residual+latent``: |Y − Ŷ| with the latent code z beside it (a pixel far from the
  background on the learnt manifold, though well rebuilt, could still stand out);
- ``latent``: z alone.

One network per scene (HADGAN defaults, seed 0). Every variant's D_SS uses the same
spatial map (the multi-scale AED map of the cube's principal components, the fusion
default: area 121, λ = 0.5, min-max). Rule fixed beforehand: the highest mean D_SS on the
other nine scenes picks each left-out scene's variant.

    .venv/bin/python benchmarks/spectral_variants.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from hsad import datasets, detectors
from hsad import fusion as F
from hsad.outputs.metrics import auc_df

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import require_scenes  # noqa: E402

VARIANTS = ("abs", "signed", "residual+latent", "latent")
DEFAULT = "abs"


def spectral_inputs(det, cube) -> dict[str, np.ndarray]:
    """Each variant's input to RX, (y, x, C), from one pass of the trained network (in its
    normalised units; RX does not depend on a per-band scale)."""
    values = np.asarray(cube.values, dtype=np.float32)
    h, w, b = values.shape
    with torch.inference_mode():
        x = det._prepare(values.reshape(-1, b))
        z = det.networks_["encoder"](x).numpy().reshape(h, w, -1)
        signed = (x - det._reconstruct(x)).numpy().reshape(h, w, -1)
    return {"abs": np.abs(signed), "signed": signed,
            "residual+latent": np.concatenate([np.abs(signed), z], axis=-1), "latent": z}


def default_fusion(det, cube):
    """``fuse(spec) -> D_SS``: the fusion default of a fitted ``det`` with its spatial map
    (min-max, multi-scale AED of the cube's principal components: no network in it) made
    once for every spectral map fused with it."""
    fusion = det.fusion_(cube).resolved()
    pcs = F.principal_components(det._scene_good_bands(cube), int(fusion.n_components))
    spatial = F.normalise_map(F.spatial_aed(pcs, area=F.ladder(fusion.area),
                                            radius=int(fusion.radius), eps=float(fusion.eps)))
    lam = float(fusion.lam)
    return lambda spec: lam * spatial + (1 - lam) * F.normalise_map(spec)


def scene_aucs(name: str) -> dict[str, tuple[float, float]]:
    """``{variant: (D_spectral AUC, D_SS AUC)}`` of one shared scene."""
    cube, gt = datasets.load(name)
    truth = gt.values.astype(bool)
    det = detectors.get("hadgan", seed=0, progress=False, device="cpu").fit(cube)
    fuse = default_fusion(det, cube)
    out = {}
    for variant, data in spectral_inputs(det, cube).items():
        spec = F.spectral_rx(data)
        out[variant] = (auc_df(spec, truth), auc_df(fuse(spec), truth))
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    names = require_scenes()
    torch.set_num_threads(1)
    aucs = {}
    for name in names:
        aucs[name] = scene_aucs(name)
        print(name, " ".join(f"{v}: {s:.4f}/{d:.4f}" for v, (s, d) in aucs[name].items()),
              flush=True)
    print("\n| variant | D_spectral in-sample | D_SS in-sample |\n|---|---|---|")
    for v in VARIANTS:
        tag = " (default)" if v == DEFAULT else ""
        print(f"| {v}{tag} | {np.mean([aucs[n][v][0] for n in names]):.4f} | "
              f"{np.mean([aucs[n][v][1] for n in names]):.4f} |")
    print("\n| left-out scene | chosen on the others | left-out D_SS | default's D_SS |\n"
          "|---|---|---|---|")
    left_out = []
    for n in names:
        others = datasets.fold_scenes(n, names)
        pick = max(VARIANTS, key=lambda v: np.mean([aucs[m][v][1] for m in others]))
        left_out.append(aucs[n][pick][1])
        print(f"| {n} | {pick} | {aucs[n][pick][1]:.4f} | {aucs[n][DEFAULT][1]:.4f} |")
    print(f"\nleave-one-out mean D_SS {np.mean(left_out):.4f}; the default's in-sample "
          f"{np.mean([aucs[n][DEFAULT][1] for n in names]):.4f}")


if __name__ == "__main__":
    main()
