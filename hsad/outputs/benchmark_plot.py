"""The benchmark's picture (:func:`plot_benchmark`): AUC(D,F) and runtime of every method on
every scene, one marker per method, the mean over the scenes below them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib.figure import Figure

from hsad.errors import ParameterError
from hsad.outputs.benchmark import MEAN_ROW, mean_rows  # noqa: F401 (MEAN_ROW: its name)
from hsad.outputs.figures import (
    LINE_STYLES,
    colours,
    finish,
    literal_texts,
    new_figure,
    wrapped,
)

#: height of a scene's row, in inches
ROW_INCHES = 0.32
#: the methods' markers, in turn: filled shapes, each edged in black
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "p", "h", "*")


def plot_benchmark(rows: Iterable, path=None, title: str | None = None) -> Figure:
    """AUC(D,F) (left) and runtime (right, log axis) of each method on each scene, scenes
    top to bottom as :func:`hsad.outputs.benchmark.run` ran them, the mean over the scenes
    a method ran on as the last row, after the mean of each kind of scene when a run mixes
    kinds (as in the tables). Each method has its colour and its
    marker, and is nudged up or down a little within a row, so that methods of one value
    stay apart; the stage rows of ``--stages`` (``hadgan:d_spatial``) take the AUC panel
    only, their time being the whole run's.

    A value a panel cannot show (an AUC that is not finite; a time that is not a positive
    number, on the log axis) is left out, and the axis label says how many; the means are
    then those of the values drawn. A scene name longer than :data:`NAME_CHARS` (a path)
    is shown by its end.

    ``rows``: :class:`hsad.outputs.benchmark.Row` objects (or anything with ``scene``,
    ``method``, ``auc_df`` and ``seconds``)."""
    rows = list(rows)
    if not rows:
        raise ParameterError("no benchmark result to plot")
    scenes = list(dict.fromkeys(r.scene for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    auc = {(r.scene, r.method): float(r.auc_df) for r in rows}
    seconds = {(r.scene, r.method): float(r.seconds) for r in rows
               if ":" not in r.method}  # a stage's time is its whole run's
    left_out = {"auc": [k for k, v in auc.items() if not np.isfinite(v)],
                "seconds": [k for k, v in seconds.items() if not (np.isfinite(v) and v > 0)]}
    for values, bad in ((auc, left_out["auc"]), (seconds, left_out["seconds"])):
        for key in bad:
            del values[key]
    if not auc:
        raise ParameterError("no finite AUC to plot")
    means = mean_rows(scenes)  # each kind's, when a run mixes them, then all scenes'
    labels = [_short(scene) for scene in scenes] + [label for label, _ in means]
    fig = new_figure(figsize=(10.0, 1.9 + ROW_INCHES * (len(labels) + 0.6 * len(methods) / 2)))
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    palette = colours(len(methods))
    step = 0.6 / max(len(methods), 1)  # the nudge between methods, within a row's 0.6
    for i, method in enumerate(methods):
        nudge = (i - (len(methods) - 1) / 2) * step
        style = dict(color=palette[i], marker=MARKERS[i % len(MARKERS)], ls="none", ms=6,
                     label=method, markeredgecolor="black", markeredgewidth=0.4)
        for ax, values in ((left, auc), (right, seconds)):
            y, x = _row_values(values, scenes, method)
            if not x.size:
                continue
            ax.plot(x, y + nudge, **style)
            # the means: the same marker, larger, on the mean rows
            for j, (_, members) in enumerate(means):
                kept = [v for row, v in zip(y, x, strict=True) if scenes[int(row)] in members]
                if kept:  # a method that failed on every scene of a kind has no mean there
                    ax.plot([np.mean(kept)], [len(scenes) + j + nudge],
                            **{**style, "ms": 8, "label": None})
    for ax in (left, right):
        ax.axhline(len(scenes) - 0.5, color="0.3", lw=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.grid(axis="y", alpha=0.15, ls=LINE_STYLES[2])
    left.set_yticks(range(len(labels)), labels)
    left.set_ylim(len(labels) - 0.5, -0.5)  # the first scene on top, the mean at the bottom
    low = min(auc.values())
    left.set_xlim(max(0.0, low - 0.05 * (1.0 - low) - 0.005), 1.0 + 0.01 * (1.0 - low) + 0.002)
    left.axvline(1.0, color="0.5", lw=0.8)
    if low < 0.5:
        left.axvline(0.5, color="0.5", lw=0.8, ls="--")
        left.text(0.5, -0.5, " chance", va="top", fontsize="x-small", color="0.3")
    left.set_xlabel("AUC(D,F): higher is better (1 = every anomaly above every background "
                    "pixel)" + _left_out_note(left_out["auc"], "not finite"))
    right.set_xscale("log")
    _seconds_ticks(right)
    right.set_xlabel("fit + score, seconds (log)" +
                     _left_out_note(left_out["seconds"], "not a positive number"))
    handles, names = left.get_legend_handles_labels()
    for handle, name in zip(*right.get_legend_handles_labels(), strict=True):
        if name not in names:  # a method whose every AUC was left out: its times only
            handles.append(handle)
            names.append(name)
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(methods), 5),
               fontsize="small", title="method")
    fig.suptitle(wrapped(title or f"hsad benchmark: {len(methods)} method(s) on "
                                   f"{len(scenes)} scene(s)", 7.5))
    return finish(fig, path)


def _seconds_ticks(ax) -> None:
    """The log axis of seconds labelled in plain numbers: the densest of 1–9, 1-2-5 and 1
    × 10ᵏ whose labels fit side by side (at least two within the axis), else its two
    ends' values; minor ticks unlabelled. matplotlib labels the minor ticks of an axis
    spanning less than a decade, and those labels overlapped."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    for subs in (tuple(range(1, 10)), (1, 2, 5), (1,)):
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        if _labels_fit(ax):
            return
    lo, hi = ax.get_xlim()
    ends = [lo * (hi / lo) ** 0.1, lo * (hi / lo) ** 0.9]
    digits = 2
    while digits < 8 and f"{ends[0]:.{digits}g}" == f"{ends[1]:.{digits}g}":
        digits += 1
    ax.xaxis.set_major_locator(FixedLocator(ends))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.{digits}g}"))


def _labels_fit(ax) -> bool:
    """Whether at least two tick labels lie within the axis, none overlapping another."""
    fig = ax.figure
    literal_texts(fig)  # a scene named p$_^$: drawn as written, not parsed as a formula
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    lo, hi = ax.get_xlim()
    boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels()
                    if t.get_text() and lo <= t.get_position()[0] <= hi), key=lambda b: b.x0)
    return len(boxes) >= 2 and all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:],
                                                                strict=False))


def _row_values(values: dict, scenes: list[str], method: str) -> tuple[np.ndarray, np.ndarray]:
    """``(row positions, values)`` of the scenes ``method`` has a value on (none: empty)."""
    rows = [(i, values[(s, method)]) for i, s in enumerate(scenes) if (s, method) in values]
    y, x = zip(*rows, strict=True) if rows else ((), ())
    return np.asarray(y, np.float64), np.asarray(x, np.float64)


#: longest scene name shown whole; a longer one (a file's path) is shown by its end
NAME_CHARS = 32


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else "…" + name[-(NAME_CHARS - 1):]


def _left_out_note(keys: list, why: str) -> str:
    """The axis label's note of the values a panel leaves out."""
    if not keys:
        return ""
    return f"\n{len(keys)} value{'s' if len(keys) > 1 else ''} {why} left out; means of the rest"


__all__ = ["plot_benchmark"]
