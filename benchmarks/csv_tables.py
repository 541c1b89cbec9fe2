"""Markdown tables from ``hsad benchmark --csv`` files, as docs/benchmarks.md shows them.

One table per figure (AUC(D,F), AUC(F,τ), SNPR, seconds): scenes as rows, methods (and
stage maps, ``hadgan:d_ss``) as columns, with the mean over the scenes. Several CSVs are
read as one; ``--methods`` keeps and orders the columns.

    .venv/bin/python benchmarks/csv_tables.py docs/benchmarks_hadgan.csv
    .venv/bin/python benchmarks/csv_tables.py docs/benchmarks_classic.csv \\
        docs/benchmarks_fanogan.csv --methods rx fanogan fanogan:d_spectral fanogan:d_ss
"""

from __future__ import annotations

import argparse
import csv

from hsad.outputs.benchmark import Row, to_markdown

FIGURES = ("auc_df", "auc_ft", "auc_dt", "snpr_db", "seconds")


def read_rows(paths: list[str], methods: list[str] | None = None) -> list[Row]:
    """The rows of every CSV (its methods in ``methods``' order when given)."""
    rows = []
    for path in paths:
        with open(path, newline="") as fh:
            for r in csv.DictReader(line for line in fh if not line.startswith("#")):
                rows.append(Row(r["scene"], r["method"], *(float(r[k]) for k in FIGURES)))
    if methods:
        order = {m: i for i, m in enumerate(methods)}
        missing = set(methods) - {r.method for r in rows}
        if missing:
            raise SystemExit(f"error: no rows for {', '.join(sorted(missing))}")
        rows = sorted((r for r in rows if r.method in order), key=lambda r: order[r.method])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--methods", nargs="+", help="columns to keep, in this order")
    args = ap.parse_args()
    print(to_markdown(read_rows(args.csv, args.methods)), end="")


if __name__ == "__main__":
    main()
