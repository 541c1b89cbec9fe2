"""Global RX: ``spectral.rx(cube)`` next to hsad's ``get("rx").fit_score(cube)``, same cube.

Builds a seeded float32 cube (default 1024 x 1024 x 200, 800 MB: a few smooth endmembers
mixed by random abundances plus noise and a handful of implanted anomalies), then times
each contender on it in the same process, best of ``--repeat`` (default 3), and prints
wall and CPU seconds, the speedup, and how far the two score maps differ. The contenders
take turns (SPy, hsad, SPy, hsad, …), so a machine whose speed drifts between runs (shared
virtual machines do, by up to 50 %) slows both alike; the speedup of each round is
printed beside the ratio of the best runs. hsad's scores
are float32 (its default), spectral's float64. The BLAS in use (threadpoolctl) is printed
too: on some processors OPENBLAS_CORETYPE is set for safety, which slows a current numpy's
kernels.

``--envi`` also writes the cube as a float32 ENVI file (``--interleave``, default bip) in a
temporary folder and times both from the file, page cache warm: hsad ``open_cube(hdr)``
then ``fit_score``; SPy ``open_image(hdr).load()`` then ``rx``.

    .venv/bin/python benchmarks/bench_rx.py --envi
    .venv/bin/python benchmarks/bench_rx.py --size 512x512x100 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import parse_size, require_spy  # noqa: E402


def make_scene(rows: int, cols: int, bands: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 (rows, cols, bands) cube built in row slabs to bound temporaries."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(0.0, 1.0, bands)
    ends = np.stack([np.exp(-((wl - c) ** 2) / w) for c, w in rng.uniform(0.05, 0.5, (6, 2))])
    ends *= rng.uniform(500.0, 3000.0, (6, 1))
    out = np.empty((rows, cols, bands), np.float32)
    for r0 in range(0, rows, 64):
        r1 = min(rows, r0 + 64)
        ab = rng.dirichlet(np.ones(6), size=(r1 - r0, cols))
        out[r0:r1] = ab @ ends + rng.normal(0.0, 20.0, (r1 - r0, cols, bands))
    for r, c in rng.integers(0, [rows, cols], size=(16, 2)):
        out[r, c] += 5.0 * ends[0] * np.sin(40 * wl)
    return out


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')}, "
        f"{i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    core = os.environ.get("OPENBLAS_CORETYPE")
    return "; ".join(parts) + (f"; OPENBLAS_CORETYPE={core}" if core else "")


def timed(fn, repeat: int = 1):
    """``(result, best wall s, CPU s of that run)`` over ``repeat`` runs."""
    best = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        run = (out, time.perf_counter() - w0, time.process_time() - c0)
        best = run if best is None or run[1] < best[1] else best
    return best


def taking_turns(spy, hsad, repeat: int):
    """``(hsad best, spy best, per-round speedups)``: the two timed in alternation,
    ``repeat`` rounds, each best as :func:`timed` gives it."""
    best = {"spy": None, "hsad": None}
    ratios = []
    for _ in range(repeat):
        walls = {}
        for name, fn in (("spy", spy), ("hsad", hsad)):
            run = timed(fn)
            walls[name] = run[1]
            if best[name] is None or run[1] < best[name][1]:
                best[name] = run
        ratios.append(walls["spy"] / walls["hsad"])
    return best["hsad"], best["spy"], ratios


def rounds(ratios) -> str:
    return "per round: " + ", ".join(f"{r:.1f}x" for r in ratios)


def from_file(cube_np: np.ndarray, interleave: str, repeat: int):
    """Both contenders from an ENVI file of ``cube_np``: :func:`taking_turns`'s result."""
    import tempfile

    import spectral

    from hsad import detectors, open_cube
    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi

    with tempfile.TemporaryDirectory() as tmp:
        hdr = Path(tmp) / "scene.hdr"
        write_envi(make_cube(cube_np), hdr, interleave=interleave)
        for path in Path(tmp).iterdir():  # warm the page cache
            path.read_bytes()
        return taking_turns(lambda: spectral.rx(spectral.open_image(str(hdr)).load()),
                            lambda: detectors.get("rx").fit_score(open_cube(hdr)).values,
                            repeat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1024x1024x200", help="ROWSxCOLSxBANDS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--envi", action="store_true", help="also time both from an ENVI file")
    ap.add_argument("--interleave", default="bip", choices=("bip", "bil", "bsq"))
    args = ap.parse_args(argv)
    rows, cols, bands = parse_size(args.size)
    require_spy()  # both the in-memory and the --envi comparison need it

    import spectral

    from hsad import detectors
    from hsad.cube import make_cube

    detectors.available()  # import every detector module now, not inside the timing
    cube_np = make_scene(rows, cols, bands, args.seed)
    print(f"scene: {rows} x {cols} x {bands} float32 ({cube_np.nbytes / 1e6:.0f} MB); "
          f"cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}")
    print(f"BLAS: {blas_info()}")

    cube, cube_wall, cube_cpu = timed(lambda: make_cube(cube_np))
    (hsad_map, det_wall, det_cpu), (spy_map, spy_wall, spy_cpu), ratios = taking_turns(
        lambda: spectral.rx(cube_np), lambda: detectors.get("rx").fit_score(cube).values,
        args.repeat)
    hsad_wall, hsad_cpu = cube_wall + det_wall, cube_cpu + det_cpu
    diff = np.abs(hsad_map.astype(np.float64) - spy_map)
    rel = diff / np.maximum(np.abs(spy_map), 1e-12)
    print(f"best of {args.repeat} runs each, taking turns")
    print()
    print(f"{'contender':<34}{'wall s':>8}{'CPU s':>8}")
    print(f"{'spectral.rx(cube) (float64)':<34}{spy_wall:>8.2f}{spy_cpu:>8.2f}")
    print(f"{'hsad make_cube + rx fit_score':<34}{hsad_wall:>8.2f}{hsad_cpu:>8.2f}")
    print(f"{'  of which make_cube(numpy)':<34}{cube_wall:>8.2f}{cube_cpu:>8.2f}")
    print(f"{'  of which rx fit_score (float32)':<34}{det_wall:>8.2f}{det_cpu:>8.2f}")
    print(f"speedup: {spy_wall / hsad_wall:.1f}x wall, {spy_cpu / hsad_cpu:.1f}x CPU "
          f"(detector alone: {spy_wall / det_wall:.1f}x wall, {spy_cpu / det_cpu:.1f}x CPU); "
          f"{rounds(ratios)}")
    top = np.intersect1d(np.argsort(hsad_map, None)[-100:], np.argsort(spy_map, None)[-100:])
    print(f"max |hsad - spectral| = {diff.max():.3g} (scores up to {spy_map.max():.3g}); "
          f"max relative difference = {rel.max():.2e}; same top-100 pixels: {top.size}/100")
    if args.envi:
        (_, hw, hc), (_, sw, sc), file_ratios = from_file(cube_np, args.interleave,
                                                          args.repeat)
        print()
        print(f"from a float32 {args.interleave.upper()} ENVI file (page cache warm), best of "
              f"{args.repeat}, taking turns:")
        print(f"{'spectral open_image().load() + rx':<34}{sw:>8.2f}{sc:>8.2f}")
        print(f"{'hsad open_cube + rx fit_score':<34}{hw:>8.2f}{hc:>8.2f}")
        print(f"speedup: {sw / hw:.1f}x wall, {sc / hc:.1f}x CPU; {rounds(file_ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
