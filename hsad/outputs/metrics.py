"""Detection metrics: the ROC curve, its areas and the 3D-ROC measures (METHODS §5).

Every function takes a score map (higher = more anomalous; NaN = nodata, excluded) and a
ground-truth map of the same shape (True/nonzero = anomaly). Scores are min-max
normalised to [0, 1] over the valid pixels, then for a threshold τ:

- ``P_D(τ)`` = share of anomaly pixels with ``s ≥ τ`` (probability of detection);
- ``P_F(τ)`` = share of background pixels with ``s ≥ τ`` (probability of false alarm).

Areas (Chang, TGRS 59(6), 2021):

- ``AUC(D,F)``: trapezoid area of P_D over P_F through all unique thresholds, from
  (0, 0) to (1, 1); equal to ``sklearn.metrics.roc_auc_score`` (ties count one half).
- ``AUC(D,τ) = ∫₀¹ P_D(τ) dτ``. P_D is a step function of τ; integrating exactly,
  ``∫₀¹ 1[s_i ≥ τ] dτ = s_i`` for ``s_i ∈ [0, 1]``, so ``AUC(D,τ)`` is the mean
  normalised score of the anomaly pixels (no τ grid, no discretisation error).
- ``AUC(F,τ) = ∫₀¹ P_F(τ) dτ`` = mean normalised score of the background pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, overload

import numpy as np

from hsad.cube.nodata_values import hidden_class_note
from hsad.engine.thresholds import gathered_float64
from hsad.errors import ParameterError
from hsad.outputs.metric_inputs import (
    declared_nodata,
    exact_integers,
    warn_fill_scores,
    warn_fill_truth,
    without_nodata,
)
from hsad.outputs.roc_area import Ranked, area, rank_auc, ranked
from hsad.outputs.roc_area import curve_points as ranked_points

if TYPE_CHECKING:
    from hsad.cube.array_types import MapLike


class RocCurve(NamedTuple):
    """ROC points, ordered by decreasing threshold.

    ``thresholds[0]`` is ``+inf`` (nothing detected: the (0, 0) point); the last point
    is the lowest normalised score, 0, where every pixel is detected: (1, 1).
    """

    pd: np.ndarray
    pf: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    """All detection metrics of one score map (see the module docstring and docs/evaluation.md)."""

    #: ROC area, trapezoid over P_F (↑)
    auc_df: float
    #: ∫₀¹ P_D(τ) dτ = mean normalised anomaly score (↑)
    auc_dt: float
    #: ∫₀¹ P_F(τ) dτ = mean normalised background score (↓)
    auc_ft: float
    #: target detectability: AUC(D,F) + AUC(D,τ) (↑)
    td: float
    #: background suppression: AUC(D,F) − AUC(F,τ) (↑)
    bs: float
    #: AUC(D,τ) − AUC(F,τ) (↑)
    tdbs: float
    #: overall detection: AUC(D,F) + AUC(D,τ) − AUC(F,τ) (↑)
    od: float
    #: overall detection probability: AUC(D,τ) + 1 − AUC(F,τ) (↑)
    odp: float
    #: signal-to-noise probability ratio AUC(D,τ) / AUC(F,τ) (↑; inf if AUC(F,τ) = 0)
    snpr: float
    #: 10·log10(SNPR) in dB (↑)
    snpr_db: float
    #: number of valid anomaly pixels
    n_anomaly: int
    #: number of valid background pixels
    n_background: int

    def to_dict(self) -> dict:
        return asdict(self)

    def keys(self) -> list[str]:
        """Field names, so that ``dict(result)`` and ``result["auc_df"]`` work."""
        return list(self.__dataclass_fields__)

    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)


#: Display name, direction and definition of each metric, in table order.
METRICS = {
    "auc_df": ("AUC(D,F)", "higher", "ROC area, trapezoid over P_F"),
    "auc_dt": ("AUC(D,tau)", "higher", "integral of P_D over tau in [0,1]"),
    "auc_ft": ("AUC(F,tau)", "lower", "integral of P_F over tau in [0,1]"),
    "td": ("TD", "higher", "AUC(D,F) + AUC(D,tau)"),
    "bs": ("BS", "higher", "AUC(D,F) - AUC(F,tau)"),
    "tdbs": ("TDBS", "higher", "AUC(D,tau) - AUC(F,tau)"),
    "od": ("OD", "higher", "AUC(D,F) + AUC(D,tau) - AUC(F,tau)"),
    "odp": ("ODP", "higher", "AUC(D,tau) + 1 - AUC(F,tau)"),
    "snpr": ("SNPR", "higher", "AUC(D,tau) / AUC(F,tau)"),
    "snpr_db": ("SNPR (dB)", "higher", "10 log10 SNPR"),
}


def _values(a, truth: bool = False) -> np.ndarray:
    """ndarray of a numpy array, DataArray (computed if lazy; ``("x", "y")`` dimensions
    read as ``("y", "x")``) or dask array; a masked
    array's masked pixels become NaN (left out, as nodata is), and so do the pixels of a
    DataArray that hold the nodata value it declares (:func:`declared_nodata`); a
    ``(1, rows, cols)`` raster is its one band. A ``truth``'s nodata of 0 is its background
    (QGIS's Rasterize declares the value it does not burn so), not no data."""
    nodata = declared_nodata(a)
    if truth and nodata == 0:
        nodata = None
    if getattr(a, "dims", None):  # a DataArray (xarray and hsad.cube loaded only then)
        from hsad.cube.grid import rows_first

        a = rows_first(a)
    a = getattr(a, "data", a) if not isinstance(a, np.ndarray) else a
    if hasattr(a, "compute"):
        a = a.compute()
    if isinstance(a, np.ma.MaskedArray):
        return np.ma.filled(a.astype(np.float64), np.nan)
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise ParameterError(f"a score map or ground truth is a numeric array, got "
                             f"{a.dtype} {a.shape}")
    if a.ndim == 3 and a.shape[0] == 1:  # one band, as rioxarray reads a raster
        a = a[0]
    if not truth and (exact := exact_integers(a, nodata)) is not None:
        return exact
    return without_nodata(a, nodata)


def _aligned(scores, gt):
    """``gt`` in the dimension order of ``scores`` when both are labelled arrays with the
    same dimension names (a transposed truth is not compared pixel by pixel with the
    wrong pixels)."""
    s_dims, g_dims = getattr(scores, "dims", None), getattr(gt, "dims", None)
    if s_dims and g_dims and set(s_dims) == set(g_dims) and tuple(s_dims) != tuple(g_dims):
        return gt.transpose(*s_dims)
    return gt


def _check_same_place(scores, gt) -> None:
    """ParameterError when two labelled maps of one shape lie in different places: both
    with a CRS, and other CRSs or grids (two slices of a scene); neither with a CRS, and
    other coordinates (two slices of a scene without one). One with a CRS beside one
    without is compared as ``hsad evaluate`` compares files (:func:`hsad.cube.same_place`):
    a map whose grid is GDAL's default (a file without a georeference, as rioxarray reads
    it) is paired by position."""
    if not all(hasattr(m, "coords") and {"y", "x"} <= set(m.coords) for m in (scores, gt)):
        return
    from hsad.cube import same_place, transform_of
    from hsad.errors import HsadError

    crs = [getattr(getattr(m, "rio", None), "crs", None) for m in (scores, gt)]
    if crs[0] is not None and crs[1] is not None and crs[0] != crs[1]:
        raise ParameterError(f"the score map ({crs[0]}) and the ground truth ({crs[1]}) have "
                             "different CRSs: give them on one grid")
    try:
        grids = [transform_of(m) for m in (scores, gt)]
    except HsadError:  # uneven coordinates (a list selection): compared as they are
        grids = None
    if grids is not None and (crs[0] is None) != (crs[1] is None):
        if same_place(grids[0], crs[0], grids[1], crs[1], (scores.sizes["y"],
                                                            scores.sizes["x"])):
            return
    elif all(np.allclose(np.asarray(scores[d].values, np.float64),
                         np.asarray(gt[d].values, np.float64), rtol=0.0,
                         atol=1e-3 * _step(scores[d].values)) for d in ("y", "x")):
        return
    raise ParameterError("the score map and the ground truth lie in different places (their "
                         "coordinates differ): give them on one grid")


def _step(coords) -> float:
    """The smallest spacing of a coordinate axis (1 for one value)."""
    c = np.asarray(coords, dtype=np.float64)
    return float(np.abs(np.diff(c)).min()) if c.size > 1 else 1.0


def valid_scores(scores, gt, keep_float32: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The valid pixels' scores as given (float64; a float32 map's kept in float32 with
    ``keep_float32``: the same values, in half the memory) and their labels (bool).

    Valid = finite score and finite ground truth (infinite scores: a warning). Raises
    ParameterError on shape mismatch, when the score map has no valid pixel, or when a
    class has none.
    """
    s = _values(scores)
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    g = _values(_aligned(scores, gt), truth=True)
    if s.shape != g.shape:
        raise ParameterError(
            f"score map shape {s.shape} does not match the ground truth's {g.shape}"
        )
    _check_same_place(scores, gt)
    valid = np.isfinite(s)
    if not valid.any():
        raise ParameterError("the score map has no valid (finite, not nodata) pixel")
    warn_fill_scores(s)
    warn_fill_truth(g)
    if (infinite := int(np.count_nonzero(np.isinf(s)))):
        warnings.warn(f"{infinite} pixels of the score map score ±inf: left out as nodata "
                      "(write them as a finite score to rank them)", UserWarning, stacklevel=3)
    labelled, labels = _labels(g)
    valid &= labelled
    kept = np.float32 if keep_float32 and s.dtype == np.float32 else np.float64
    s, valid_labels = gathered_float64(s, valid, kept), labels[valid]
    n_anomaly = int(valid_labels.sum())
    if n_anomaly == 0 or n_anomaly == valid_labels.size:
        which = "anomaly" if n_anomaly == 0 else "background"
        held = int((labels if which == "anomaly" else ~labels)[labelled].sum())
        where = (f": none of its {held} {which} pixels has a valid score" if held else "")
        raise ParameterError(
            f"the ground truth has no valid {which} pixel{where}: detection metrics are "
            "undefined")
    return s, valid_labels


def _labels(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labelled, anomaly)`` of a ground truth's pixels: a bool truth labels every pixel;
    otherwise NaN is unlabelled and nonzero is an anomaly (where labelled)."""
    if g.dtype == bool:
        return np.ones(g.shape, bool), g
    return np.isfinite(g), g != 0


def check_truth(gt, nodata=None) -> None:
    """ParameterError unless the ground truth ``gt`` (bool, or values with NaN unlabelled,
    nonzero = anomaly) has labelled anomaly and background pixels, checked before any
    detection; ``nodata``: the file's nodata value, named when it left a class out."""
    labelled, labels = _labels(_values(gt, truth=True))
    anomalies = int(np.count_nonzero(labels & labelled))
    background = int(np.count_nonzero(labelled)) - anomalies
    if anomalies and background:
        return
    which = "anomaly" if not anomalies else "background"
    note = hidden_class_note(nodata, int((~labelled).sum()))
    hint = f" ({note}: is the {which} class written with it?)" if note else ""
    raise ParameterError(f"the ground truth has no {which} pixel{hint}: detection metrics "
                         "are undefined")


def _unit_range(s: np.ndarray, lo=None, hi=None) -> np.ndarray:
    """``s`` min-max scaled to [0, 1] (all 0 when constant), without overflow: a range
    wider than the largest float64 subtracts halves, which stay finite (halving is exact
    there; only a subnormal range, whose halves may round to 0, could not). ``lo``, ``hi``:
    the range (default ``s``'s own), so that some of the scores scale as they do among all;
    element by element, in one new array."""
    lo = s.min() if lo is None else lo
    hi = s.max() if hi is None else hi
    if not hi > lo:
        return np.zeros(s.shape)
    with np.errstate(over="ignore"):
        span = hi - lo
    if np.isfinite(span):
        out = np.subtract(s, lo)
        out /= span
    else:
        out = np.divide(s, 2)
        out -= lo / 2
        out /= hi / 2 - lo / 2
    return np.clip(out, 0.0, 1.0, out=out)


def normalised_scores(scores, gt) -> tuple[np.ndarray, np.ndarray]:
    """Valid pixels' scores min-max normalised to [0, 1] (float64) and their labels (bool).

    See :func:`valid_scores`. A constant map normalises to all 0.
    """
    s, labels = valid_scores(scores, gt)
    return _unit_range(s), labels


def _curve(r: Ranked, lo, hi, points: int | None = None) -> RocCurve:
    """The ROC of :func:`hsad.outputs.roc_area.ranked` scores (at every distinct score, or
    at about ``points`` of them: :func:`~hsad.outputs.roc_area.curve_points`), its
    thresholds min-max normalised over ``lo``–``hi`` as :func:`_unit_range` normalises
    every score. The points follow the scores as given, so one extreme score, which
    squeezes every other normalised score together, cannot merge them."""
    pd, pf, thresholds = ranked_points(r, points)
    tau = _unit_range(thresholds.astype(np.float64), lo, hi)
    return RocCurve(np.r_[0.0, pd], np.r_[0.0, pf], np.r_[np.inf, tau])


def roc(scores, gt) -> RocCurve:
    """P_D, P_F and thresholds τ (normalised) at every unique score, by decreasing τ.

    One sort and lookups of the thresholds: O(n log n), no loop over thresholds.
    """
    s, labels = valid_scores(scores, gt)
    lo, hi = s.min(), s.max()
    return _curve(ranked(s, labels), lo, hi)


def auc_df(scores, gt) -> float:
    """Area under the ROC curve P_D(P_F) through every unique threshold (the trapezoid
    rule's area, counted from ranks: :func:`hsad.outputs.roc_area.rank_auc`)."""
    s, labels = valid_scores(scores, gt, keep_float32=True)
    return rank_auc(s, labels)


def auc_dt(scores, gt) -> float:
    """∫₀¹ P_D(τ) dτ, exactly: the mean normalised score of the anomaly pixels."""
    s, labels = normalised_scores(scores, gt)
    return float(s[labels].mean())


def auc_ft(scores, gt) -> float:
    """∫₀¹ P_F(τ) dτ, exactly: the mean normalised score of the background pixels."""
    s, labels = normalised_scores(scores, gt)
    return float(s[~labels].mean())


#: Scores normalised at a time for the τ areas (:func:`_class_mean`).
MEAN_BLOCK = 1 << 20


def _class_mean(raw: np.ndarray, labels: np.ndarray, anomaly: bool, lo, hi) -> float:
    """Mean min-max normalised score (range ``lo``–``hi``) of one class, normalised
    :data:`MEAN_BLOCK` scores at a time: nothing map-sized beside the scores (in one
    block, as small maps are, the plain mean to the bit)."""
    total, count = 0.0, 0
    for at in range(0, raw.size, MEAN_BLOCK):
        picked = labels[at:at + MEAN_BLOCK]
        block = raw[at:at + MEAN_BLOCK][picked if anomaly else ~picked]
        total += np.add.reduce(_unit_range(block.astype(np.float64, copy=False), lo, hi))
        count += block.size
    return float(np.float64(total) / count)


@overload
def evaluate(scores: MapLike, gt: MapLike, return_curve: Literal[False] = False,
             curve_points: int | None = None) -> Evaluation: ...


@overload
def evaluate(scores: MapLike, gt: MapLike, return_curve: Literal[True],
             curve_points: int | None = None) -> tuple[Evaluation, RocCurve]: ...


@overload
def evaluate(scores: MapLike, gt: MapLike, return_curve: bool,
             curve_points: int | None = None) -> Evaluation | tuple[Evaluation, RocCurve]: ...


def evaluate(scores: MapLike, gt: MapLike, return_curve: bool = False,
             curve_points: int | None = None) -> Evaluation | tuple[Evaluation, RocCurve]:
    """Every metric of METHODS §5 for one score map, from one normalisation and one sort.

    Returns an :class:`Evaluation`, or ``(Evaluation, RocCurve)`` with ``return_curve``:
    the curve at every distinct score, or at about ``curve_points`` of them (each a point
    of the full curve, evenly and geometrically spaced from the top: what a plot draws).
    It holds the valid scores (float32 for a float32 map), their labels and the smaller
    class's scores, nothing more a pixel, and the curve's points (docs/performance.md).
    """
    if curve_points is not None and (isinstance(curve_points, bool) or not isinstance(
            curve_points, (int, np.integer)) or curve_points < 1):
        raise ParameterError(f"curve_points must be a whole number ≥ 1, got {curve_points!r}")
    raw, labels = valid_scores(scores, gt, keep_float32=True)
    lo, hi = np.float64(raw.min()), np.float64(raw.max())
    dt = _class_mean(raw, labels, True, lo, hi)
    ft = _class_mean(raw, labels, False, lo, hi)
    n_anomaly = int(np.count_nonzero(labels))
    r = ranked(raw, labels)  # sorts raw in place: after the means
    df = area(r)
    curve = _curve(r, lo, hi, curve_points) if return_curve else None
    with np.errstate(divide="ignore", invalid="ignore"):
        snpr = float(np.float64(dt) / np.float64(ft)) if ft > 0 else (np.inf if dt > 0 else np.nan)
        snpr_db = float(10.0 * np.log10(snpr)) if np.isfinite(snpr) else snpr
    result = Evaluation(
        auc_df=df,
        auc_dt=dt,
        auc_ft=ft,
        td=df + dt,
        bs=df - ft,
        tdbs=dt - ft,
        od=df + dt - ft,
        odp=dt + 1.0 - ft,
        snpr=snpr,
        snpr_db=snpr_db,
        n_anomaly=n_anomaly,
        n_background=labels.size - n_anomaly,
    )
    return (result, curve) if return_curve else result


def format_table(result: Evaluation) -> str:
    """The metrics as a small aligned text table (name, value, direction, definition)."""
    rows = [("metric", "value", "better", "definition")]
    values = result.to_dict()
    for key, (label, better, definition) in METRICS.items():
        rows.append((label, f"{values[key]:.4f}", better, definition))
    rows.append(("pixels", f"{result.n_anomaly}+{result.n_background}", "",
                 "anomaly + background (valid)"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    )


#: the columns of :func:`format_comparison`
COMPARED = ("auc_df", "auc_dt", "auc_ft", "td", "bs", "tdbs", "od", "odp", "snpr_db")


def format_comparison(results: dict[str, Evaluation]) -> str:
    """Several maps' metrics as one aligned text table, a row per map (its name) and a
    column per metric (↑ higher is better, ↓ lower); ``*`` marks each column's best (an
    infinite SNPR included; a constant map, every score equal, never)."""
    header = ["map"] + [f"{METRICS[k][0]} {'↑' if METRICS[k][1] == 'higher' else '↓'}"
                        for k in COMPARED] + ["pixels"]
    rows = [header]
    best = {}
    def constant(r: Evaluation) -> bool:  # every score equal: normalised, all 0
        return r.auc_dt == 0.0 and r.auc_ft == 0.0

    for key in COMPARED:  # a constant map is never the best
        values = [getattr(r, key) for r in results.values() if not constant(r)]
        ranked = [v for v in values if not math.isnan(v)]  # +inf SNPR: a perfect split
        if ranked:
            best[key] = (min if METRICS[key][1] == "lower" else max)(ranked)
    for name, result in results.items():
        cells = [name]
        for key in COMPARED:
            value = getattr(result, key)
            star = value == best.get(key) and not constant(result)
            cells.append(f"{value:.4f}{'*' if star else ' '}")
        cells.append(f"{result.n_anomaly}+{result.n_background}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in rows)


__all__ = [
    "COMPARED", "METRICS", "Evaluation", "RocCurve", "auc_df", "auc_dt", "auc_ft",
    "check_truth", "evaluate",
    "format_comparison", "format_table", "normalised_scores", "roc",
]
