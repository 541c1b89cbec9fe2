"""The area filters of HADGAN's multi-scale spatial map, one filter tile, by backend.

One tile as ``hsad.fusion.tiled`` filters it: a ``--tile`` pixel tile (default
``FILTER_EDGE``, 2048) with the halo of the largest area (225 → 2496 × 2496 pixels), an
8-bit image, the openings and closings of the ladder's areas 9, 25, 49, 121 and 225. The
image is the first principal component of a generated scene (``bench_rx.make_scene``) or of
a real ENVI scene (``--scene``), quantised to 256 levels as the fusion stage does. A scene
smaller than the tile with its halo gives the window it has (its top-left corner, at most
that size): what is timed, and printed, is that window.

Contenders, best of ``--repeat``, each checked against the tree's images:

- ``tree``: hsad's path (:mod:`hsad.engine.area_tree`): one max-tree and one min-tree, every area
  read from them (``hsad.engine.morphology.attribute_response``), built by flooding (8-bit images),
  and by union-find over the sorted pixels (hsad's path for 8-bit images until 2026-12-02,
  still its path for floats and wide integer ranges);
- ``diplib``: DIPlib's union-find area opening, one call per area and polarity, on the whole
  tile, and with each area on its own halo only (hsad's path until 2026-12-02);
- ``scikit-image max-tree``: only building one max-tree (``skimage.morphology.max_tree``),
  on tiles up to 1100 pixels with their halo (it takes minutes beyond);
- ``higra``: a max-tree and a min-tree, one reconstruction per area, when higra is
  installed (hsad does not depend on it).

    .venv/bin/python benchmarks/bench_area_filters.py
    .venv/bin/python benchmarks/bench_area_filters.py --scene /tmp/big/hsad-ooc-XXXX/scene.hdr
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hsad import fusion as F
from hsad.engine import area_tree
from hsad.engine.morphology import area_filter, attribute_response
from hsad.fusion.filter_tiles import FILTER_EDGE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import best, fail  # noqa: E402

AREAS = F.LADDER


def component_image(scene: str | None, edge: int) -> np.ndarray:
    """The first principal component of an ``edge`` × ``edge`` window, quantised to 8 bits
    (``hsad.fusion.principal_components`` and ``quantise``)."""
    if scene:
        import hsad
        from hsad.errors import HsadError

        try:
            window = hsad.open_cube(scene)[:edge, :edge]
        except HsadError as exc:
            fail(f"--scene: {exc}")
    else:
        from bench_rx import make_scene

        window = make_scene(edge, edge, 60)
    return F.quantise(F.principal_components(window, 1)[:, :, 0], 256)


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


def per_area_halos(image: np.ndarray, halo: int) -> np.ndarray:
    """DIPlib, each area on the tile less the halo it does not need, summed responses."""
    total = np.zeros(image.shape, np.int64)
    for a in AREAS:
        cut = halo - (a - 1)
        inner = (slice(cut, image.shape[0] - cut), slice(cut, image.shape[1] - cut))
        part = np.ascontiguousarray(image[inner])
        total[inner] += area_filter(part, a, "closing", backend="diplib")
        total[inner] -= area_filter(part, a, "opening", backend="diplib")
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", help="an ENVI or GeoTIFF scene (default: a generated one)")
    ap.add_argument("--tile", type=int, default=FILTER_EDGE, help="tile edge without the halo")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.tile < 1 or args.repeat < 1:
        fail(f"--tile and --repeat must be at least 1 (got {args.tile}, {args.repeat})")
    halo = max(AREAS) - 1
    flood_levels = area_tree.FLOOD_LEVELS
    edge = args.tile + 2 * halo
    image = component_image(args.scene, edge)
    filters = 2 * len(AREAS)
    rows, cols = image.shape
    if (rows, cols) == (edge, edge):
        what = f"one tile: {args.tile} px + halo {halo} = {edge} x {edge}"
    else:
        what = (f"the scene's whole window, {rows} x {cols} (smaller than a {args.tile} px "
                f"tile + halo {halo} = {edge} x {edge})")
    print(f"{what} uint8, areas {AREAS}, opening and closing ({filters} filters); best of "
          f"{args.repeat}")
    attribute_response(image[:40, :40], AREAS)  # compiled (or loaded) before timing
    t, tree = best(lambda: attribute_response(image, AREAS, summed=True), args.repeat)
    print(f"{'tree (hsad): two trees, every area':40s} {t:6.3f} s")
    area_tree.FLOOD_LEVELS = 0  # the same trees by union-find
    t, out = best(lambda: attribute_response(image, AREAS, summed=True), args.repeat)
    area_tree.FLOOD_LEVELS = flood_levels
    print(f"{'tree by union-find (hsad until 12-02)':40s} {t:6.3f} s (same: "
          f"{np.array_equal(out, tree)})")
    t, out = best(lambda: [area_filter(image, a, p, backend="diplib") for a in AREAS
                           for p in ("opening", "closing")], args.repeat)
    same = np.array_equal(sum(x.astype(np.int64) for x in out[1::2])
                          - sum(x.astype(np.int64) for x in out[::2]), tree)
    print(f"{'diplib, every area on the whole tile':40s} {t:6.3f} s (same: {same})")
    t, out = best(lambda: per_area_halos(image, halo), args.repeat)
    core = (slice(halo, -halo), slice(halo, -halo))
    print(f"{'diplib, each area on its own halo':40s} {t:6.3f} s (same on the core: "
          f"{np.array_equal(out[core], tree[core])})")
    if max(rows, cols) <= 1100:  # scikit-image's max-tree takes minutes beyond (super-linear)
        from skimage.morphology import max_tree

        t, _ = best(lambda: max_tree(image, connectivity=1), 1)
        print(f"{'scikit-image: one max-tree only':40s} {t:6.3f} s")
    try:
        import higra  # noqa: F401
    except ImportError:
        print(f"{'higra':40s} not installed")
        return
    t, out = best(lambda: higra_filters(image), args.repeat)
    same = all(np.array_equal(out[p, a].reshape(image.shape), area_filter(image, a, p))
               for p, a in out)
    print(f"{'higra: two trees, a reconstruction each':40s} {t:6.3f} s (same images: {same})")


if __name__ == "__main__":
    main()
