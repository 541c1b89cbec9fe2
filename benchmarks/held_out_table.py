"""The held-out summary of docs/benchmarks.md ("Held-out scenes"), from the CSVs.

For each detector's default map: its mean AUC(D,F) on the development scenes (the
``docs/benchmarks_*.csv`` runs, in-sample), its leave-one-scene-out mean where a default
was chosen by AUC (the figures of docs/benchmarks.md and docs/detectors.md), and on the
held-out scenes (``docs/held_out_benchmark.csv``) its mean, its worst margin over global
RX and how many scenes it scores at or above RX. ``--guide`` renders the table of
docs/detectors.md, "Choosing a detector", instead: the same means and worst margin, with
the held-out mean AUC(F,τ) and median seconds.

    python benchmarks/held_out_table.py
    python benchmarks/held_out_table.py --guide
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from csv_tables import read_rows

DOCS = Path(__file__).resolve().parents[1] / "docs"

#: the rows: label, and the map's name in the CSVs
ROWS = [("`rx`", "rx"), ("`lrx`", "lrx"), ("`crd`", "crd"),
        ("`local-mean-rx`", "local-mean-rx"), ("`cluster-rx`", "cluster-rx"),
        ("`rxd-utd`", "rxd-utd"), ("`aed` (HADGAN's D_spatial)", "aed"),
        ("`hadgan` (D_SS)", "hadgan"), ("`hadgan` D_spectral", "hadgan:d_spectral"),
        ("`fanogan` (its own score)", "fanogan"), ("`fanogan --fusion dss`", "fanogan:d_ss")]

#: the rows of docs/detectors.md's "Choosing a detector"
GUIDE_ROWS = [("`rx`", "rx"), ("`lrx`", "lrx"), ("`crd`", "crd"), ("`aed`", "aed"),
              ("`hadgan` (D_SS, the default)", "hadgan"),
              ("`hadgan --fusion none` (D_spectral)", "hadgan:d_spectral")]

#: leave-one-scene-out means of the defaults chosen by AUC, as the protocols that chose
#: them measured them (docs/benchmarks.md, "Leave-one-scene-out"; docs/detectors.md;
#: docs/classic_detectors.md)
LEFT_OUT = {"lrx": 0.9558, "crd": 0.9749, "local-mean-rx": 0.9425, "cluster-rx": 0.9203,
            "hadgan": 0.9828, "fanogan:d_ss": 0.9820}


def figure_table(paths, figure: str = "auc_df") -> dict[str, dict[str, float]]:
    """One figure (default AUC(D,F)) by map and scene of ``hsad benchmark --csv`` files,
    read as ``csv_tables.py`` reads them (a scene and map given twice: the first CSV's
    row)."""
    table: dict[str, dict[str, float]] = {}
    for row in read_rows([str(p) for p in paths]):
        table.setdefault(row.method, {})[row.scene] = getattr(row, figure)
    return table


def auc_table(paths) -> dict[str, dict[str, float]]:
    """AUC(D,F) by map and scene (:func:`figure_table`)."""
    return figure_table(paths)


def same_scenes(table: dict[str, dict[str, float]], names) -> None:
    """Refuse a table whose maps ``names`` were not all scored on the scenes RX was (a mean
    over fewer scenes than the header counts)."""
    scenes = set(table["rx"])
    short = [name for name in names if set(table[name]) != scenes]
    if short:
        raise SystemExit(f"error: not scored on the {len(scenes)} scenes of rx: "
                         f"{', '.join(short)}")


def signed(value: float) -> str:
    return f"{value:+.4f}".replace("-", "−")


def summary(held: dict, development: dict) -> str:
    same_scenes(held, [name for _, name in ROWS])
    same_scenes(development, [name for _, name in ROWS])
    lines = [f"| detector (map) | development, in-sample ({len(development['rx'])}) | "
             f"development, left out | **held-out ({len(held['rx'])})** | "
             "held-out − RX, worst scene | held-out scenes ≥ RX |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, name in ROWS:
        left_out = f"{LEFT_OUT[name]:.4f}" if name in LEFT_OUT else "–"
        margin = np.array([auc - held["rx"][scene] for scene, auc in held[name].items()])
        worst, count = ("–", "–") if name == "rx" else (signed(margin.min()),
                                                        str(int((margin >= 0).sum())))
        lines.append(f"| {label} | {np.mean(list(development[name].values())):.4f} | "
                     f"{left_out} | **{np.mean(list(held[name].values())):.4f}** | {worst} | "
                     f"{count} |")
    return "\n".join(lines)


def guide(held_paths, development: dict) -> str:
    """The table of docs/detectors.md, "Choosing a detector"."""
    held = figure_table(held_paths)
    same_scenes(held, [name for _, name in GUIDE_ROWS])
    same_scenes(development, [name for _, name in GUIDE_ROWS])
    false_alarms, seconds = figure_table(held_paths, "auc_ft"), figure_table(held_paths, "seconds")
    lines = ["| detector (map) | AUC(D,F) development | AUC(D,F) held-out | "
             "held-out, worst scene − RX | AUC(F,τ) held-out | seconds a scene (median) |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, name in GUIDE_ROWS:
        worst = "–" if name == "rx" else signed(
            min(auc - held["rx"][scene] for scene, auc in held[name].items()))
        secs = float(np.median(list(seconds[name].values())))
        secs_text = f"{secs:.2f}" if secs < 1 else f"{secs:.1f}"
        lines.append(f"| {label} | {np.mean(list(development[name].values())):.4f} | "
                     f"{np.mean(list(held[name].values())):.4f} | {worst} | "
                     f"{np.mean(list(false_alarms[name].values())):.4f} | {secs_text} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--held-out", type=Path, default=DOCS / "held_out_benchmark.csv")
    ap.add_argument("--development", type=Path, nargs="+",
                    default=sorted(DOCS.glob("benchmarks_*.csv")))
    ap.add_argument("--guide", action="store_true",
                    help="the table of docs/detectors.md, \"Choosing a detector\"")
    args = ap.parse_args()
    development = auc_table(args.development)
    if args.guide:
        print(guide([args.held_out], development))
    else:
        print(summary(auc_table([args.held_out]), development))


if __name__ == "__main__":
    main()
