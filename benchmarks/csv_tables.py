"""Markdown tables from ``hsad benchmark --csv`` files, as docs/benchmarks.md shows them.

One table per figure (AUC(D,F), AUC(F,τ), SNPR, seconds): scenes as rows, methods (and
stage maps, ``hadgan:d_ss``) as columns, with the mean over the scenes. Several CSVs are
read as one (a scene and method given twice: the first CSV's row, with a warning where
their AUCs differ; methods over different scenes warn too); ``--methods`` keeps and
orders the columns; ``--plot`` also draws them (``hsad benchmark --plot``'s picture).

    .venv/bin/python benchmarks/csv_tables.py docs/benchmarks_hadgan.csv
    .venv/bin/python benchmarks/csv_tables.py docs/benchmarks_classic.csv \\
        docs/benchmarks_fanogan.csv --methods rx fanogan fanogan:d_spectral fanogan:d_ss
    .venv/bin/python benchmarks/csv_tables.py docs/benchmarks_classic.csv \
        docs/benchmarks_aed.csv docs/benchmarks_hadgan.csv docs/benchmarks_fanogan.csv \
        --methods rx lrx crd aed hadgan hadgan:d_spectral fanogan fanogan:d_ss \
        --plot docs/img/benchmarks_main.png
"""

from __future__ import annotations

import argparse
import csv
import sys

from hsad.outputs.benchmark import Row, to_markdown

FIGURES = ("auc_df", "auc_ft", "auc_dt", "snpr_db", "seconds")


def read_rows(paths: list[str], methods: list[str] | None = None) -> list[Row]:
    """The rows of every CSV (its methods in ``methods``' order when given); a scene and
    method that an earlier CSV holds already keeps that row, with a warning where the later
    row's AUC differs at 4 decimals (runs of other settings: a CSV records none)."""
    rows, seen = [], {}
    for path in paths:
        with open(path, newline="") as fh:
            for r in csv.DictReader(line for line in fh if not line.startswith("#")):
                key = (r["scene"], r["method"])
                if key not in seen:
                    seen[key] = (path, float(r["auc_df"]))
                    rows.append(Row(r["scene"], r["method"], *(float(r[k]) for k in FIGURES)))
                elif abs(float(r["auc_df"]) - seen[key][1]) >= 5e-5:  # seen at 4 decimals
                    print(f"warning: {path}: {key[1]} on {key[0]} scores AUC(D,F) "
                          f"{float(r['auc_df']):.4f}, {seen[key][0]} {seen[key][1]:.4f} (runs "
                          "of other settings?); the first is kept", file=sys.stderr)
    if methods:
        order = {m: i for i, m in enumerate(methods)}
        missing = set(methods) - {r.method for r in rows}
        if missing:
            raise SystemExit(f"error: no rows for {', '.join(sorted(missing))}")
        rows = sorted((r for r in rows if r.method in order), key=lambda r: order[r.method])
    return rows


def warn_other_scenes(rows: list[Row]) -> None:
    """Warn when the methods cover different scenes: their means are then over different
    scenes, side by side in one row."""
    scenes = {m: {r.scene for r in rows if r.method == m} for m in dict.fromkeys(
        r.method for r in rows)}
    if len({frozenset(v) for v in scenes.values()}) > 1:
        print("warning: the methods cover different scenes, so their means are over different "
              "scenes (" + ", ".join(f"{m}: {len(v)}" for m, v in scenes.items()) + ")",
              file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--methods", nargs="+", help="columns to keep, in this order")
    ap.add_argument("--plot", help="also draw the AUC(D,F) and seconds as this PNG")
    args = ap.parse_args()
    if args.plot and not args.plot.lower().endswith(".png"):
        ap.error(f"--plot {args.plot}: the picture is a PNG; give a .png file name")
    rows = read_rows(args.csv, args.methods)
    warn_other_scenes(rows)
    print(to_markdown(rows), end="")
    if args.plot:
        from pathlib import Path

        from hsad.outputs.benchmark_plot import plot_benchmark

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        methods = {r.method for r in rows}
        stages = sum(":" in m for m in methods)
        maps = f"{len(methods) - stages} detectors" + (f" and {stages} stage maps" if stages
                                                      else "")
        plot_benchmark(rows, args.plot, title=f"{maps} on {len({r.scene for r in rows})} "
                       f"scenes, from {', '.join(Path(p).name for p in args.csv)}")


if __name__ == "__main__":
    main()
