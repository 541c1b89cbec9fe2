"""What the benchmark scripts share: refusing a run they cannot make (one line, exit 2),
and timing a contender in a child process (:func:`run_child`).

A script that reads the shared benchmark scenes calls :func:`require_scenes` before it
prints or computes anything; one that reads another file (a scene or model, a corpus, a
spectral library) calls :func:`require_file`; one that compares with SPy calls
:func:`require_spy`. Each prints one line naming the problem and what to set or install,
and exits with status 2 (no traceback).

Scripts run as ``python benchmarks/NAME.py`` find this module beside them (the script's
folder is first on ``sys.path``). Run itself, it checks the scenes' setup:

    .venv/bin/python benchmarks/_data.py [SCENE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

ENV_VAR = "HSAD_DATA_DIR"


def best(func, repeat: int) -> tuple[float, object]:
    """The fastest of ``repeat`` calls of ``func`` (seconds), and the last call's result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run_child(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of the child process ``args`` (its own usage, from
    ``os.wait4``; its output dropped), for contenders run side by side; one line naming
    the command, exit 2, when it fails."""
    import subprocess
    import time

    t0 = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        fail(f"failed: {' '.join(args)}")
    return wall, usage.ru_maxrss / 1024 ** 2


def compare_maps(ours_path, theirs_path) -> None:
    """Print how two score GeoTIFFs compare: grid and CRS, NaN pixels, and the largest score
    difference over the mean score."""
    import numpy as np
    import rasterio

    with rasterio.open(ours_path) as a, rasterio.open(theirs_path) as b:
        ours, theirs = a.read(1).astype(np.float64), b.read(1).astype(np.float64)
        same_grid = a.transform == b.transform and a.crs == b.crs
    ok = np.isfinite(ours) & np.isfinite(theirs)
    gap = np.max(np.abs(ours[ok] - theirs[ok])) / theirs[ok].mean()
    print(f"same grid and CRS: {same_grid}; same NaN pixels: "
          f"{np.array_equal(np.isnan(ours), np.isnan(theirs))}; largest score difference "
          f"over the mean score: {gap:.2e} ({ok.sum():,} pixels)")


def fail(message: str, status: int = 2) -> NoReturn:
    """Print ``message`` (one line, on stderr) and exit with ``status``."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(status)


def require_scenes(names=None) -> list[str]:
    """The benchmark scenes ``names`` (None: every development scene, sorted; a held-out
    scene is refused), once each is known to ``hsad.datasets`` and its file found on the
    search path (``$HSAD_DATA_DIR``, else ``../shared/datasets``, then the download cache);
    otherwise one line and exit 2.

    Only the files' presence is checked here; ``hsad.datasets.load`` verifies checksums.
    """
    from hsad import datasets
    from hsad.errors import DatasetError

    known = datasets.names()
    names = list(known if names is None else names)
    held_out = sorted(set(names) & set(datasets.names("held-out")))
    if held_out:
        fail(f"{', '.join(held_out)}: held-out scene{'s' * (len(held_out) > 1)}, which no "
             "default is chosen on (docs/datasets.md); score held-out scenes with `hsad benchmark "
             "--datasets held-out`")
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(f"unknown scene{'s' * (len(unknown) > 1)} {', '.join(unknown)}; known: "
             f"{', '.join(known)}")
    missing = []
    for name in names:
        try:
            datasets.path(name)
        except DatasetError:
            missing.append(datasets.manifest(name)["file"])
    if missing:
        where = ", ".join(str(d) for d in datasets.search_path())
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3
                                          else "")
        fail(f"{len(missing)} of {len(names)} scene files not found ({shown}) in {where}; "
             f"set {ENV_VAR} to the folder holding them (or run `hsad datasets fetch NAME`)")
    return names


def shared_manifest(folder: str | os.PathLike, wanted=None,
                    setting: str = f"set {ENV_VAR}", keep=None) -> list[dict]:
    """The scenes of ``folder/manifest.json`` (the shared datasets folder's own list), those
    named in ``wanted`` only when given (else those whose name ``keep(name)`` accepts, when
    given), once the manifest and each such scene's file exist;
    otherwise one line (ending with ``setting``, how to point the script elsewhere) and
    exit 2."""
    import json

    folder = Path(folder)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        fail(f"no manifest.json in {folder}: {setting} to the shared datasets folder")
    try:
        scenes = json.loads(manifest.read_text(encoding="utf-8"))["scenes"]
    except (ValueError, KeyError, TypeError) as exc:
        fail(f"{manifest}: not a datasets manifest ({type(exc).__name__}: {exc})")
    if wanted is not None:
        unknown = [n for n in wanted if n not in {s["name"] for s in scenes}]
        if unknown:
            fail(f"unknown scene{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                 f"{manifest} lists: {', '.join(s['name'] for s in scenes)}")
        scenes = [s for s in scenes if s["name"] in wanted]
    elif keep is not None:
        scenes = [s for s in scenes if keep(s["name"])]
    missing = [s["file"] for s in scenes if not (folder / s["file"]).is_file()]
    if missing:
        fail(f"{len(missing)} of {len(scenes)} scene files listed in {manifest} are missing "
             f"({', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}); {setting} to "
             "the folder holding them")
    return scenes


def require_file(path: str | os.PathLike, what: str, setting: str) -> Path:
    """``path`` when it is a file, else one line (``what`` is missing; ``setting`` says
    how to point the script at it) and exit 2."""
    path = Path(path)
    if not path.is_file():
        fail(f"{what} not found: {path}; {setting}")
    return path


def require_spy() -> None:
    """Exit 2 with one line unless SPy (the ``spectral`` package) can be imported."""
    try:
        import spectral  # noqa: F401
    except ImportError:
        fail("SPy (spectral) is not installed: the comparison needs it; pip install spectral")


def parse_size(text: str, option: str = "--size") -> tuple[int, int, int]:
    """``ROWSxCOLSxBANDS`` as three positive integers, else one line and exit 2."""
    try:
        rows, cols, bands = (int(v) for v in text.lower().split("x"))
    except ValueError:
        fail(f"{option} {text!r}: expected ROWSxCOLSxBANDS, e.g. 256x256x20")
    if min(rows, cols, bands) < 1:
        fail(f"{option} {text!r}: rows, columns and bands must be at least 1")
    return rows, cols, bands


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Check that the benchmark scenes are found: "
                                 "where each one's file is, or one line and exit 2.")
    ap.add_argument("scenes", nargs="*", help="default: every known scene")
    args = ap.parse_args(argv)
    from hsad import datasets

    for name in require_scenes(args.scenes or None):
        print(f"{name:18s} {datasets.path(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
