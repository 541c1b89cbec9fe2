"""The area filters of HADGAN's multi-scale spatial map, one filter tile, by backend.

One tile as ``hsad.fusion.tiled`` filters it: a 512-pixel tile with the halo of the
largest area (121 → 752 × 752 pixels), an 8-bit image, the openings and closings of areas
9, 25, 49 and 121 (``hsad.morphology.attribute_response``, each area on its own halo).
The image is the first principal component of a generated scene (``bench_rx.make_scene``)
or of a real ENVI scene (``--scene``), quantised to 256 levels as the fusion stage does.

Contenders, best of ``--repeat``:

- ``diplib``: hsad's path, DIPlib's union-find area opening, one call per area and polarity;
  and, as a check of a cascade, the opening of area 121 of the image against that of its
  opening of area 49 (the same image: area openings compose to the larger area);
- ``scikit-image max-tree``: only building one max-tree of the largest image
  (``skimage.morphology.max_tree``), the step that a tree shared by all areas would need;
- ``higra``: a max-tree and a min-tree each built once, then one reconstruction per area
  (``hg.component_tree_max_tree``, ``hg.reconstruct_leaf_data``), when higra is installed
  (hsad does not depend on it). Its images are checked against DIPlib's.

    .venv/bin/python benchmarks/bench_area_filters.py
    .venv/bin/python benchmarks/bench_area_filters.py --scene /tmp/big/hsad-ooc-XXXX/scene.hdr
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from hsad import fusion as F
from hsad.morphology import area_filter, attribute_response

AREAS = (9, 25, 49, 121)
TILE = 512


def component_image(scene: str | None, edge: int) -> np.ndarray:
    """The first principal component of an ``edge`` × ``edge`` window, quantised to 8 bits
    (``hsad.fusion.principal_components`` and ``quantise``)."""
    if scene:
        import hsad

        window = hsad.open_cube(scene)[:edge, :edge]
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_rx import make_scene

        window = make_scene(edge, edge, 60)
    return F.quantise(F.principal_components(window, 1)[:, :, 0], 256)


def best(func, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t)
    return min(times), out


def higra_filters(image: np.ndarray):
    import higra as hg

    graph = hg.get_4_adjacency_graph(image.shape)
    out = {}
    for polarity, build in (("opening", hg.component_tree_max_tree),
                            ("closing", hg.component_tree_min_tree)):
        tree, altitudes = build(graph, image)
        area = hg.attribute_area(tree)
        for a in AREAS:
            out[polarity, a] = hg.reconstruct_leaf_data(tree, altitudes, area < a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", help="an ENVI or GeoTIFF scene (default: a generated one)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    halo = max(AREAS) - 1
    edge = TILE + 2 * halo
    image = component_image(args.scene, edge)
    margins = [(halo - (a - 1),) * 4 for a in AREAS]
    filters = 2 * len(AREAS)
    print(f"one tile: {TILE} px + halo {halo} = {edge} x {edge} uint8, areas {AREAS}, "
          f"opening and closing ({filters} filters); best of {args.repeat}")
    t, _ = best(lambda: attribute_response(image, AREAS, margins), args.repeat)
    print(f"{'diplib (hsad, per-area halos)':38s} {t:6.3f} s")
    t, _ = best(lambda: [area_filter(image, a, p) for a in AREAS
                         for p in ("opening", "closing")], args.repeat)
    print(f"{'diplib, every area on the whole tile':38s} {t:6.3f} s")
    opened = area_filter(image, 49, "opening")
    t, direct = best(lambda: area_filter(image, 121, "opening"), args.repeat)
    t2, cascade = best(lambda: area_filter(opened, 121, "opening"), args.repeat)
    print(f"{'diplib, opening 121 of the image':38s} {t:6.3f} s")
    print(f"{'diplib, opening 121 of opening 49':38s} {t2:6.3f} s (same image: "
          f"{np.array_equal(direct, cascade)})")
    from skimage.morphology import max_tree

    t, _ = best(lambda: max_tree(image, connectivity=1), 1)
    print(f"{'scikit-image: one max-tree only':38s} {t:6.3f} s")
    try:
        import higra  # noqa: F401
    except ImportError:
        print(f"{'higra':38s} not installed")
        return
    t, out = best(lambda: higra_filters(image), args.repeat)
    same = all(np.array_equal(out[p, a].reshape(image.shape), area_filter(image, a, p))
               for p, a in out)
    print(f"{'higra: two trees, 8 reconstructions':38s} {t:6.3f} s (same images as "
          f"DIPlib: {same})")


if __name__ == "__main__":
    main()
