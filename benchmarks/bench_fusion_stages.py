"""HADGAN's fusion stages on a large scene, one at a time: the sampled statistics and the
attribute + guided filters of the multi-scale D_spatial.

Works on a scene and model kept by ``bench_out_of_core.py --keep`` (``scene.hdr`` and
``hadgan.hsad`` in ``--dir``). Each stage runs in this process on one thread (dask's
``sync`` scheduler, filters in-process), so its CPU seconds measure its work, not how the
threads share the cores. Printed per stage: wall and CPU seconds, and
for the statistics the share of the cube read from the file. A scene of at most
``stats_sample`` pixels (the model's, 262 144 = 512² by default) has no sampled statistics:
the library then computes them exactly, and so does this script: the principal components'
step then streams the moments over the cube itself (its time includes that pass), as
``hsad.fusion.tiled`` does.

Filter settings compared (``--edges``): the tile-edge cap of the attribute filters
(``hsad.fusion.filter_tiles.FILTER_EDGE``; 0 = tiles as large as the memory budget
allows), each with hsad's tree (one tree per polarity for every area,
:mod:`hsad.engine.area_tree`) and, with ``--diplib``, with DIPlib's area opening called
once per area and polarity on the whole tile (the filters hsad used before 2026-12-02).
The attribute responses are computed on tiles of that cap and the guided filter on its
own tiles (``hsad.fusion.filter_tiles.aed_filtered``).
``--parallel`` then runs the default filters once more as ``hsad detect`` does (threaded
scheduler, the filters shared out over the cores in threads) and prints the wall and CPU
seconds: set beside the one-thread figure, they show what running two filters side by side
costs.

    .venv/bin/python benchmarks/bench_out_of_core.py --size 2048x2048x200 --dir /tmp/big \\
        --keep --memory-limit 1GB
    .venv/bin/python benchmarks/bench_fusion_stages.py --dir /tmp/big/hsad-ooc-XXXX
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fail  # noqa: E402


def _count_reads():
    """Patch the ENVI reader to count the values it copies out of the file."""
    from hsad.io import envi

    transpose = envi.EnviPixels._transpose_lines
    count, lock = [0], threading.Lock()

    def counted(planes, dst, buf, band_axis_first):
        with lock:
            count[0] += dst.size
        return transpose(planes, dst, buf, band_axis_first)

    envi.EnviPixels._transpose_lines = staticmethod(counted)
    return count


def _timed(func):
    t, c = time.perf_counter(), time.process_time()
    out = func()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path,
                        help="folder with scene.hdr and hadgan.hsad (bench_out_of_core --keep)")
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--edges", default="0,1024", help="tile-edge caps to compare")
    parser.add_argument("--diplib", action="store_true",
                        help="also run DIPlib's area opening, one call per area and polarity")
    parser.add_argument("--parallel", action="store_true",
                        help="also run the default filters on every core, as hsad detect does")
    args = parser.parse_args()

    import dask
    import dask.array as da

    from hsad.engine.morphology import attribute_responses as responses
    from hsad.engine.tiles import open_tiled
    from hsad.errors import HsadError
    from hsad.fusion import filter_tiles, tiled
    from hsad.nn.persistence import load_detector
    from hsad.nn.trainer import cpu_threads

    try:
        edges = [int(e) for e in args.edges.split(",")]
    except ValueError:
        fail(f"--edges {args.edges!r}: expected comma-separated integers, e.g. 0,1024")
    reads = _count_reads()
    try:
        cube = open_tiled(args.dir / "scene.hdr", args.memory_limit)
        det = load_detector(args.dir / "hadgan.hsad")
    except HsadError as exc:
        fail(f"--dir {args.dir}: {exc} (a folder kept by bench_out_of_core.py --keep)")
    fusion = det.fusion_(cube).resolved()
    values = int(np.prod(cube.shape))
    print(f"scene {'x'.join(map(str, cube.shape))} {cube.dtype}, {fusion.variant} fusion, "
          f"areas {fusion.areas()}; one thread (dask sync)")

    with dask.config.set(scheduler="sync"), cpu_threads(1):
        stats, wall, cpu = _timed(lambda: det.fusion_statistics(cube))
        if stats is None:  # the library's exact statistics, streamed where they are used
            pixels, sample = cube.shape[0] * cube.shape[1], det.stats_sample
            why = ("stats_sample 0: exact statistics asked" if not sample else
                   f"the scene's {pixels} pixels are not more than stats_sample {sample}"
                   if pixels <= sample else "the sample held too few valid pixels per band")
            print(f"sampled statistics: none ({why}): exact, streamed over the cube by the "
                  f"next step; {wall:.1f} s wall, read {reads[0] / values:.3f} of the cube")
        else:
            print(f"sampled statistics: {wall:6.1f} s wall {cpu:6.1f} s CPU; "
                  f"read {reads[0] / values:.3f} of the cube")
        reads[0] = 0
        comps, wall, cpu = _timed(lambda: tiled.components_map(
            det._scene_good_bands(cube), int(fusion.n_components),
            moments=stats and stats.source).compute())
        print(f"principal components{' (with the exact moments)' if stats is None else ''}: "
              f"{wall:6.1f} s wall {cpu:6.1f} s CPU; read {reads[0] / values:.3f} of the cube")

        lazy = da.from_array(comps, chunks=(512, -1, -1))
        cap, ref, tile = filter_tiles.FILTER_EDGE, None, filter_tiles._response_tile
        seen = []

        def recorded(block, **kwargs):  # the filter tiles, halo included
            seen.append(block.shape[:2])
            return tile(block, **kwargs)

        backends = ("tree", "diplib") if args.diplib else ("tree",)
        try:
            filter_tiles._response_tile = recorded
            for edge in edges:
                for backend in backends:
                    filter_tiles.FILTER_EDGE = edge or None
                    filter_tiles.attribute_responses = (
                        _diplib_responses if backend == "diplib"
                        else functools.partial(responses, workers=0))
                    seen.clear()
                    m = filter_tiles.aed_filtered(lazy, fusion, args.memory_limit)
                    out, wall, cpu = _timed(m.compute)
                    ref = out if ref is None else ref
                    diff = float(np.nanmax(np.abs(out - ref)))
                    tiles = [s for s in seen if min(s) > 1]  # not dask's meta calls
                    share = sum(h * w for h, w in tiles) / (lazy.shape[0] * lazy.shape[1])
                    print(f"filters, edge cap {edge or 'none':>5}, {backend:6}: {wall:6.1f} s "
                          f"wall {cpu:6.1f} s CPU ({len(tiles)} filter tiles, {share:.2f}× "
                          f"the scene's pixels; max |Δ| {diff:.1e})")
        finally:
            filter_tiles.FILTER_EDGE, filter_tiles.attribute_responses = cap, responses
            filter_tiles._response_tile = tile
    if args.parallel:
        _parallel_filters(lazy, fusion, args.memory_limit)


def _diplib_responses(images, areas, *, summed=True):
    """The summed responses from DIPlib's area opening, one call per area and polarity."""
    from hsad.engine.morphology import area_filter

    out = []
    for image in images:
        total = np.zeros(image.shape, np.int64)
        for a in areas:
            total += area_filter(image, a, "closing", backend="diplib")
            total -= area_filter(image, a, "opening", backend="diplib")
        out.append(total.astype(np.uint32))
    return out


def _parallel_filters(lazy, fusion, memory_limit) -> None:
    """The default filters with the threaded scheduler, shared out over the cores."""
    from hsad.engine.scheduler import THREADED
    from hsad.fusion import filter_tiles

    m = filter_tiles.aed_filtered(lazy, fusion, memory_limit)
    _, wall, cpu = _timed(lambda: m.compute(scheduler=THREADED))
    print(f"filters on every core: {wall:6.1f} s wall {cpu:6.1f} s CPU")


if __name__ == "__main__":
    main()
