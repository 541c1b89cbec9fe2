"""The implanted-target suite drawn: mean AUC(D,F) against target size, from its CSV.

One row of panels per background set (the benchmark scenes, the corpus images), the
classic detectors on the left and the neural models' maps on the right; each map a line
over the target sizes (sub-pixel, then by edge), the mean over the backgrounds averaged as
``implanted_suite.py``'s tables average them (draws first, then backgrounds). A size a map
ran on no background of a set is a gap in its line.

    .venv/bin/python benchmarks/implanted_plot.py docs/implanted_suite.csv \\
        --out docs/img/implanted_suite.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _data import fail
from implanted_suite import means, per_background, read_rows

from hsad.errors import HsadError
from hsad.outputs.plots import LINE_STYLES, MARKERS, colours, new_figure, save_figure
from hsad.synthetic.implanting import target_edge

#: how the sets are named in the panels' titles
SETS = {"scenes": "the benchmark scenes", "corpus": "the corpus images"}


def size_order(sizes) -> list[str]:
    """Sub-pixel first, then the square sizes by edge."""
    return sorted(set(sizes), key=lambda s: (s != "subpixel", target_edge(s)))


def draw(rows: list[dict], path: str, title: str) -> None:
    table = per_background(rows)
    sizes = size_order(r["size"] for r in rows)
    maps = list(dict.fromkeys(r["map"] for r in rows))
    groups = {"classic detectors": [m for m in maps if ":" not in m],
              "neural models' maps (model:stage)": [m for m in maps if ":" in m]}
    groups = {k: v for k, v in groups.items() if v}
    sets = [s for s in SETS if any(r["set"] == s for r in rows)]
    fig = new_figure(figsize=(6.5 * len(groups), 4.6 * len(sets) + 0.8))
    axes = np.atleast_2d(fig.subplots(len(sets), len(groups), sharey=True, squeeze=False))
    x = np.arange(len(sizes))
    for row, set_ in enumerate(sets):
        for col, (group, keys) in enumerate(groups.items()):
            ax = axes[row, col]
            palette = colours(len(keys))
            for j, key in enumerate(keys):
                y = np.array([means(table, set_, s, key)[0] for s in sizes])
                if np.isfinite(y).any():
                    ax.plot(x, y, color=palette[j], ls=LINE_STYLES[j % len(LINE_STYLES)],
                            marker=MARKERS[j % len(MARKERS)], ms=5, lw=1.4, label=key)
            ax.axhline(0.5, color="0.5", lw=0.8, ls="--")
            ax.set_xticks(x, [s.replace("subpixel", "sub-pixel") for s in sizes])
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.set_title(f"{group}: {SETS[set_]}", fontsize="medium")
            if col == 0:
                ax.set_ylabel("mean AUC(D,F) (0.5: chance)")
            if row == len(sets) - 1:
                ax.set_xlabel("implanted target size (pixels; sub-pixel: abundance 0.1–1)")
            ax.legend(fontsize="x-small", loc="lower left", ncols=2)
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="a CSV of implanted_suite.py (--csv)")
    ap.add_argument("--out", required=True, help="the PNG to write")
    args = ap.parse_args(argv)
    if not Path(args.csv).is_file():
        fail(f"{args.csv}: no such file (a CSV written by implanted_suite.py --csv)")
    rows = [r for r in read_rows(args.csv) if r["set"] in SETS]
    if not rows:
        fail(f"{args.csv}: no rows of implanted_suite.py in it")
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        draw(rows, args.out, f"AUC(D,F) against implanted target size ({Path(args.csv).name})")
    except HsadError as exc:
        fail(str(exc))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
