"""ROC curves (P_D against P_F) and the 3D ROC of one or several score maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from hsad.errors import ParameterError
from hsad.outputs.figures import finish, new_figure
from hsad.outputs.metrics import evaluate

#: Largest number of points drawn per curve (the areas always use every point).
MAX_CURVE_POINTS = 4000
#: Axes of probabilities and τ reach this far beyond [0, 1], so that a curve along an edge
#: (a constant map's, an AUC of 0) is drawn beside the spine, not hidden under it
PAD = 0.015
#: Points of a curve computed for the plots, at most about (each a point of the full
#: curve; a map with fewer distinct scores has all of them): what is thinned to draw
CURVE_POINTS = 1 << 20


def _as_maps(maps) -> dict:
    """``{name: map}`` of one map, a mapping, ``(name, map)`` pairs or a list of maps (each
    named by its ``name``, else numbered; a name met twice numbered too)."""
    if isinstance(maps, (np.ndarray, xr.DataArray)):
        out = {str(getattr(maps, "name", None) or "scores"): maps}
    elif isinstance(maps, (list, tuple)) and all(
            isinstance(m, (np.ndarray, xr.DataArray)) for m in maps):
        names = [str(getattr(m, "name", None) or f"map {i}") for i, m in enumerate(maps, 1)]
        out = {(n if names.count(n) == 1 else f"{n} ({i})"): m
               for i, (n, m) in enumerate(zip(names, maps, strict=True), 1)}
    else:  # a mapping, or (name, map) pairs
        try:
            out = dict(maps)
        except (TypeError, ValueError):
            raise ParameterError("maps: give one score map, a list of them or {name: map}, "
                                 f"got {type(maps).__name__}") from None
    if not out:
        raise ParameterError("no score map to plot")
    return out


def roc_curves(maps, gt) -> dict:
    """name -> (RocCurve, AUC(D,F), AUC(D,τ), AUC(F,τ), valid background pixels) of one map
    or of ``{name: map}``: what :func:`plot_roc` and :func:`plot_roc3d` draw, computed once
    for both (``curves=``; each map's curve is a sort of all its pixels)."""
    out = {}
    for name, scores in _as_maps(maps).items():
        result, curve = evaluate(scores, gt, return_curve=True, curve_points=CURVE_POINTS)
        out[name] = (curve, result.auc_df, result.auc_dt, result.auc_ft, result.n_background)
    return out


def _thin(*arrays, log_x: bool = False, even_in: Sequence[np.ndarray] = ()):
    """At most about :data:`MAX_CURVE_POINTS` points of a curve: evenly spaced by index,
    and as many again evenly spaced along each monotone array of ``even_in`` (a curve's
    threshold τ: a staircase over τ keeps its steps where the points are few); with
    ``log_x``, also evenly spaced in log(x) (x = ``arrays[0]``, non-decreasing), so that a
    log axis is drawn from its first positive value."""
    n = arrays[0].size
    if n <= MAX_CURVE_POINTS:
        return arrays
    parts = 1 + len(even_in) + bool(log_x)
    per = MAX_CURVE_POINTS // parts
    idx = [np.linspace(0, n - 1, per).round().astype(int)]
    for key in even_in:
        key = np.asarray(key, dtype=np.float64)
        rising = key[-1] >= key[0]
        ordered = key if rising else key[::-1]
        at = np.searchsorted(ordered, np.linspace(ordered[0], ordered[-1], per)).clip(0, n - 1)
        idx += [at if rising else n - 1 - at]
        idx += [np.clip(idx[-1] - 1, 0, n - 1)]  # the step's other side
    x = arrays[0]
    positive = np.flatnonzero(x > 0)
    if log_x and positive.size:
        levels = np.geomspace(x[positive[0]], x[-1], per)
        idx += [[positive[0]], np.searchsorted(x, levels).clip(0, n - 1)]
    idx = np.unique(np.concatenate(idx))
    return tuple(a[idx] for a in arrays)


def _on_log_axis(pf: np.ndarray, pd: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """An ROC curve's points for a log P_F axis from ``floor``: the curve between two
    points is a straight line in linear P_F (tied scores are interpolated so, as the AUC
    counts them), which a log axis bends; so points evenly spaced in log P_F are added on
    those lines (a map of one value, or a mask, is then drawn as the curve it is, not as a
    line clipped at its first point)."""
    grid = np.geomspace(floor, 1.0, MAX_CURVE_POINTS // 2)
    kept = pf >= floor
    x = np.r_[grid, pf[kept]]
    y = np.r_[np.interp(grid, pf, pd), pd[kept]]
    order = np.lexsort((y, x))
    return x[order], y[order]


def plot_roc(maps, gt, path=None, log_far: bool = False, title: str | None = None,
             curves: dict | None = None) -> Figure:
    """ROC curves P_D(P_F) of one map or of ``{name: map}``; the legend gives AUC(D,F).

    ``log_far`` puts P_F on a log axis (from one false alarm, 1/n_background, to 1).
    ``curves``: :func:`roc_curves` of these maps, when computed already.
    """
    fig = new_figure()
    ax = fig.add_subplot()
    curves = curves if curves is not None else roc_curves(maps, gt)
    floor = min(1.0 / max(c[4], 1) for c in curves.values())  # one false alarm
    for name, (curve, adf, _, _, _) in curves.items():
        pf, pd = _thin(curve.pf, curve.pd, log_x=log_far)
        if log_far:
            pf, pd = _on_log_axis(pf, pd, floor)
        ax.plot(pf, pd, lw=1.5, label=f"{name} (AUC = {adf:.4f})")
    ax.set_xlabel("false alarm rate $P_F$")
    ax.set_ylabel("detection probability $P_D$")
    if log_far:
        ax.set_xscale("log")
        ax.set_xlim(floor, 1.0 + 3 * PAD)
    else:
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        ax.set_xlim(-PAD, 1 + PAD)
    ax.set_ylim(-PAD, 1 + PAD)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "ROC")
    return finish(fig, path)


def plot_roc3d(maps, gt, path=None, title: str | None = None,
               curves: dict | None = None) -> Figure:
    """3D ROC (P_D, P_F, τ) and its projections ROC(D,F), ROC(D,τ), ROC(F,τ), 2×2;
    ``curves``: :func:`roc_curves` of these maps, when computed already."""
    fig = new_figure(figsize=(10.0, 8.5))
    ax3d = fig.add_subplot(2, 2, 1, projection="3d")
    ax_df, ax_dt, ax_ft = (fig.add_subplot(2, 2, i) for i in (2, 3, 4))
    curves = curves if curves is not None else roc_curves(maps, gt)
    for name, (curve, adf, adt, aft, _) in curves.items():
        pd, pf, tau = _thin(curve.pd[1:], curve.pf[1:], curve.thresholds[1:],
                            even_in=(curve.pf[1:], curve.thresholds[1:]))
        few = {"marker": "o", "ms": 4} if pf.size < 3 else {}  # one point: seen
        (line,) = ax3d.plot(pf, tau, pd, lw=1.2, label=name, **few)
        c = line.get_color()
        ax_df.plot(np.r_[0, pf], np.r_[0, pd], color=c, label=f"{name} ({adf:.4f})")
        ax_dt.plot(tau, pd, color=c, drawstyle="steps-post", label=f"{name} ({adt:.4f})",
                   **few)
        ax_ft.plot(tau, pf, color=c, drawstyle="steps-post", label=f"{name} ({aft:.4f})",
                   **few)
    for limits in (ax3d.set_xlim, ax3d.set_ylim, ax3d.set_zlim):
        limits(0, 1)
    ax3d.set_xlabel("$P_F$")
    ax3d.set_ylabel("τ")
    ax3d.set_zlabel("$P_D$")
    ax3d.set_title("3D ROC")
    if len(curves) > 1:
        ax3d.legend(fontsize="small")
    for ax, (xl, yl, t) in zip(
        (ax_df, ax_dt, ax_ft),
        (("$P_F$", "$P_D$", "ROC(D,F): AUC(D,F)"), ("τ", "$P_D$", "ROC(D,τ): AUC(D,τ)"),
         ("τ", "$P_F$", "ROC(F,τ): AUC(F,τ)")),
        strict=True,
    ):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(t)
        ax.set_xlim(-PAD, 1 + PAD)
        ax.set_ylim(-PAD, 1 + PAD)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return finish(fig, path)
