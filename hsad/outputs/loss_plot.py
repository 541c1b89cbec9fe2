"""Training losses per epoch, one panel per loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from hsad.errors import ParameterError
from hsad.outputs.figures import LINE_STYLES, MARKERS, finish, new_figure, wrapped


def plot_losses(
    history, path=None, title: str | None = None,
    stages: Mapping[str, Sequence] | None = None,
) -> Figure:
    """Training losses per epoch, one line per key; log y axis when all are positive and
    span more than two decades. ``history``: a fitted network's ``history_`` (its stages
    then drawn as panels), or a mapping of loss name → values. ``stages``
    (``History.stages``: name → ``[first epoch, epochs, loss names]``) draws one panel per
    training stage."""
    if hasattr(history, "losses") and hasattr(history, "stages"):  # a History
        stages = history.stages if stages is None else stages
        history = history.losses
    if not isinstance(history, Mapping):
        raise ParameterError(f"plot_losses takes a fitted detector's history_ or a mapping "
                             f"of loss name to values, got {type(history).__name__}")
    try:
        series = {k: np.asarray(v, dtype=np.float64) for k, v in history.items() if len(v)}
    except (TypeError, ValueError):
        series = None
    if series is None or any(v.ndim != 1 for v in series.values()):
        raise ParameterError("plot_losses: each loss is a list of numbers, one an epoch")
    if not series:
        raise ParameterError("no loss values to plot")
    panels = {name: (int(first), [n for n in names if n in series])
              for name, (first, _, names) in (stages or {}).items()}
    panels = {k: v for k, v in panels.items() if v[1]} or {"": (0, list(series))}
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(7.0 * len(panels) if len(panels) > 1 else 7.0, 4.5))
    head = title or "training losses"
    for i, (stage, (first, names)) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for j, name in enumerate(names):  # colour, line and marker differ: told apart in grey
            values = series[name]
            ax.plot(np.arange(first + 1, first + values.size + 1), values, lw=1.3,
                    label=name, ls=LINE_STYLES[j % len(LINE_STYLES)],
                    marker=MARKERS[j % len(MARKERS)], ms=4,
                    markevery=max(1, values.size // 15))
        allv = np.concatenate([series[n] for n in names])
        allv = allv[np.isfinite(allv)]
        if allv.size and allv.min() > 0 and allv.max() / allv.min() > 100:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if max(series[n].size for n in names) == 1:  # one epoch: its tick, not fractions
            ax.set_xlim(first + 0.5, first + 1.5)
            ax.set_xticks([first + 1])
        ax.set_xlabel("epoch" if first == 0 else
                      f"epoch of the whole training (this stage's 1st is {first + 1})")
        ax.set_ylabel("loss (each as its model computes it)" if len(names) > 1 else name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(wrapped(f"{head}: {stage}" if len(panels) > 1 else head, 6.5))
    return finish(fig, path)
