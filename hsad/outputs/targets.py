"""Target-level figures: how many of the labelled targets a score map finds.

Pixel AUC weighs a target by its pixels, so one large object outweighs a dozen vehicles.
An analyst counts targets: here a target is a group of anomaly pixels of the ground truth
touching by side or corner (8-connected; two digitised targets whose pixels touch are one),
and it is **found** at a false-alarm rate P_F when its highest score exceeds the threshold
that a share P_F of the background pixels exceed; a target without any score is missed.
Each target's own figure is the least false-alarm rate that finds it: the share of
background pixels scoring at least its peak. The target AUC(D,F) is the area under that
curve of targets found against P_F: the chance that a target's peak beats a background
pixel's score (ties count half).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hsad.errors import ParameterError
from hsad.outputs.metric_inputs import declared_nodata, integer_shift
from hsad.outputs.metrics import _aligned, _check_same_place, _labels, _values

#: the false-alarm rates at which targets are counted
FARS = (1e-4, 1e-3, 1e-2)


@dataclass
class TargetReport:
    """Target-level figures of one score map against one ground truth."""

    #: targets (8-connected groups of the ground truth's anomaly pixels)
    n_targets: int
    #: of them, those without a scored pixel (missed at every rate)
    n_unscored: int
    #: background pixels (scored, labelled background)
    n_background: int
    #: targets found at each false-alarm rate of :data:`FARS`
    found: dict[float, int]
    #: chance that a target's peak score beats a background pixel's (ties half)
    auc: float
    #: per target: ``id``, ``pixels``, ``row``, ``col`` (its centre), ``peak`` (its
    #: highest score; None without one) and ``far`` (the least false-alarm rate that
    #: finds it; 1 without a score)
    targets: list[dict]

    def to_dict(self) -> dict:
        return {"n_targets": self.n_targets, "n_unscored": self.n_unscored,
                "n_background": self.n_background,
                "found": {f"{far:g}": k for far, k in self.found.items()},
                "target_auc_df": self.auc, "targets": self.targets}

    def summary(self) -> str:
        """Two lines: the targets found at each rate, and the target AUC."""
        found = ", ".join(f"P_F {far:g}: {k} of {self.n_targets}"
                          for far, k in self.found.items())
        unscored = (f" ({self.n_unscored} without a score, missed)" if self.n_unscored
                    else "")
        return (f"targets (8-connected groups of truth pixels): {self.n_targets}{unscored}; "
                f"found at {found}\ntarget AUC(D,F): {self.auc:.4f} (each target by its "
                "highest score)")


def _rates(fars) -> tuple[float, ...]:
    """``fars`` as false-alarm rates in (0, 1] (a number alone is one rate)."""
    items = [fars] if isinstance(fars, (int, float, np.number)) else fars
    try:
        items = [] if isinstance(items, (str, bytes)) else list(items)
        if any(isinstance(r, (str, bytes, bool, np.bool_)) for r in items):
            raise TypeError
        rates = tuple(float(r) for r in items)
    except (TypeError, ValueError):
        rates = ()
    if not rates or not all(0.0 < r <= 1.0 for r in rates):  # NaN fails too
        raise ParameterError(f"fars: false-alarm rates within (0, 1], got {fars!r}")
    return rates


def target_report(scores, gt, fars=FARS) -> TargetReport:
    """Target-level figures of ``scores`` against the ground truth ``gt`` (1 anomaly, 0
    background, NaN unlabelled). The targets are the truth's own: a target whose pixels
    hold no finite score is missed, not dropped; background pixels without a score are
    left out, as the pixel metrics leave them. A truth without a target or a scored
    background pixel is a ParameterError, and so are false-alarm rates ``fars`` (one, or
    several) outside (0, 1]."""
    fars = _rates(fars)
    s = _values(scores)
    raw = getattr(scores, "values", scores)  # the peaks in the map's own values, unshifted
    shift = integer_shift(np.asarray(raw), declared_nodata(scores)) if isinstance(
        raw, np.ndarray) else None
    g = _values(_aligned(scores, gt), truth=True)
    if s.ndim != 2:
        raise ParameterError(f"a score map is a (rows, cols) map, got shape {s.shape}")
    if s.shape != g.shape:
        raise ParameterError(f"score map shape {s.shape} does not match the ground truth's "
                             f"{g.shape}")
    _check_same_place(scores, gt)
    if s.dtype.kind != "f":
        s = s.astype(np.float64)  # exact: _values shifted 64-bit ones beyond 2**53
    labelled, anomaly = _labels(g)
    labels, n = ndimage.label(labelled & anomaly, structure=np.ones((3, 3), dtype=bool))
    background = _background_scores(s, labelled, anomaly)
    if n == 0 or background.size == 0:
        raise ParameterError("the ground truth has no target" if n == 0 else
                             "the ground truth has no scored background pixel")
    # the targets' own pixels only (few against the map): no full-size temporaries
    where = np.flatnonzero(labels)
    which = labels.ravel()[where]
    del labels
    values = s.ravel()[where].astype(np.float64)
    values[~np.isfinite(values)] = -np.inf  # no scored pixel: a peak of -inf
    ids = np.arange(1, n + 1)
    peak = np.asarray(ndimage.maximum(values, which, ids), dtype=np.float64)
    pixels = np.bincount(which, minlength=n + 1)[1:]
    rows, cols = np.divmod(where, s.shape[1])
    centres = zip(np.bincount(which, rows, n + 1)[1:] / pixels,
                  np.bincount(which, cols, n + 1)[1:] / pixels, strict=True)
    at = peak.astype(background.dtype)  # the map's own values: exact in its type
    below = np.searchsorted(background, at, side="left")
    beaten = background.size - below  # background pixels scoring at least the peak
    ties = np.searchsorted(background, at, side="right") - below
    far = beaten / background.size
    auc = float(np.mean((below + 0.5 * ties) / background.size))
    targets = [{"id": int(i), "pixels": int(p), "row": round(float(r), 2),
                "col": round(float(c), 2),
                "peak": (float(v) + float(shift or 0)) if np.isfinite(v) else None,
                "far": float(f)}
               for i, p, (r, c), v, f in zip(ids, pixels, centres, peak, far, strict=True)]
    return TargetReport(int(n), int(np.sum(~np.isfinite(peak))), int(background.size),
                        {float(rate): int(np.sum(far <= rate)) for rate in fars}, auc, targets)


def _background_scores(s: np.ndarray, labelled: np.ndarray, anomaly: np.ndarray
                       ) -> np.ndarray:
    """The scored background pixels' scores, sorted, in the map's type."""
    keep = labelled
    keep &= ~anomaly  # ``labelled`` is ours to change
    keep &= np.isfinite(s)
    background = s[keep]
    background.sort()
    return background


def format_targets(reports: dict[str, TargetReport]) -> str:
    """A table of several maps' target figures, a row per map."""
    rates = list(next(iter(reports.values())).found)
    head = "| map | targets | " + " | ".join(f"found at P_F {r:g}" for r in rates) + \
        " | target AUC(D,F) |"
    lines = [head, "|" + "---|" * (len(rates) + 3)]
    for name, rep in reports.items():
        lines.append(f"| {name} | {rep.n_targets} | "
                     + " | ".join(str(rep.found[r]) for r in rates) + f" | {rep.auc:.4f} |")
    return "\n".join(lines)


__all__ = ["FARS", "TargetReport", "format_targets", "target_report"]
