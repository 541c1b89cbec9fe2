"""Score maps turned into boolean anomaly masks (the mixin :class:`Thresholding`, part of
:class:`~hsad.detectors.base.BaseDetector`): a score, a contamination, a false-alarm rate
from the detector's null distribution or a robust fit, or the default rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad.errors import ParameterError

if TYPE_CHECKING:
    from hsad.cube.array_types import MapLike


class Thresholding:
    """``threshold(scores, ...)``, and the null distribution a detector may know."""

    if TYPE_CHECKING:  # the detector's (:class:`~hsad.detectors.base.BaseDetector`)
        name: str

        def _check_fit_params(self) -> None: ...

    def threshold(
        self,
        scores: MapLike,
        contamination: float | None = None,
        far: float | None = None,
        value: float | None = None,
    ) -> xr.DataArray:
        """Boolean anomaly mask from a score map; give at most one criterion.

        - ``value``: pixels with ``score >= value``.
        - ``contamination``: the expected share of anomalous pixels; the threshold is the
          ``1 − contamination`` quantile of the valid scores (pixels tied at it are all
          flagged, with a warning when that flags more than asked).
        - ``far``: the false-alarm rate wanted on background. Detectors with a known null
          distribution (RX: χ² with B degrees of freedom) use it; others fit the background
          robustly (:func:`hsad.engine.thresholds.robust_threshold`).
        - none: the default rule, which needs no ground truth and is the same for every
          detector: a robust log-normal fit of the scores at a false-alarm rate of 0.001
          (:data:`hsad.engine.thresholds.DEFAULT_RULE`).

        The mask's attrs record ``threshold`` and ``threshold_rule``.
        """
        from hsad.engine.thresholds import (
            BEYOND_THE_MAP,
            DEFAULT_FAR,
            DEFAULT_RULE,
            at_or_above,
            check_threshold,
            robust_threshold,
            say_if_all_or_none,
        )

        check_threshold(contamination, far, value)
        contamination, far, value = (None if v is None else float(v)
                                     for v in (contamination, far, value))  # "0.1" too
        if np.ndim(scores) != 2:
            raise ParameterError(f"threshold: a score map is (y, x), got shape "
                                 f"{np.shape(scores)}")
        if not isinstance(scores, xr.DataArray):  # a numpy map
            scores = xr.DataArray(np.asarray(scores), dims=("y", "x"), name="scores")
        s = np.asarray(scores.values)  # as it is: no float64 copy of the map
        if not np.issubdtype(s.dtype, np.floating):
            s = s.astype(np.float64)
        fitted = False  # a tail fitted to the scores (the robust rule, below)
        if value is not None:
            thr, rule = float(value), "absolute score"
        elif contamination is not None:
            from hsad.engine.thresholds import contamination_threshold, gathered_float64

            thr = contamination_threshold(gathered_float64(s), float(contamination),
                                          overwrite_input=True)
            rule = f"contamination {contamination:g} (score quantile)"
        elif far is not None and (null := self._null_threshold_of(scores, far)) is not None:
            thr, rule = null, f"false-alarm rate {far:g} (null distribution)"
        else:
            fitted = True
            rate = DEFAULT_FAR if far is None else float(far)
            thr = robust_threshold(s, rate)
            rule = DEFAULT_RULE if far is None else \
                f"false-alarm rate {far:g} (robust log-normal fit of the scores)"
        # decided as in float64, on any NumPy, with no float64 copy of the map
        mask = np.isfinite(s) & at_or_above(s, thr)
        if value is not None:
            say_if_all_or_none(mask, s, thr)
        elif fitted and np.isfinite(thr) and not mask.any():
            # a fitted tail beyond the whole map (an infinite threshold: the rule has said
            # why already); a null distribution's threshold is no fit, and says nothing
            say_if_all_or_none(mask, s, thr, advice=BEYOND_THE_MAP)
        out = scores.copy(data=mask)
        out.name = "mask"
        out.attrs = {**scores.attrs, "threshold": thr, "threshold_rule": rule}
        self.threshold_ = thr
        return out

    def _null_threshold_of(self, scores: xr.DataArray, far: float) -> float | None:
        """:meth:`null_threshold`, for a map this detector made as it is fitted now: a
        hyperparameter changed since ``fit`` (a ridge: another null) is refused as
        ``score`` refuses it, and so is another detector's map (its ``method``), whose
        scores follow no distribution of this one's (``method``, or a GeoTIFF's
        ``hsad_method`` tag), and so is a map of another fit's rank (``hsad_rank``: the χ²
        null's degrees of freedom)."""
        null = self.null_threshold(far)
        # as the map holds it, or as a GeoTIFF's tags gave it back (`hsad detect`'s map
        # read with rioxarray: taken for no detector's, another's was thresholded by RX)
        made_by = scores.attrs.get("method") or scores.attrs.get("hsad_method")
        if null is None:
            return self._null_of_map(scores, far) if made_by == self.name else None
        self._check_fit_params()
        if isinstance(made_by, str) and made_by and made_by != self.name:
            raise ParameterError(f"{self.name}: this map was made by {made_by}, and "
                                 f"far={far:g} takes {self.name}'s null distribution; "
                                 f"threshold it with the {made_by} detector, or give "
                                 "contamination= or value=")
        rank, own = scores.attrs.get("hsad_rank"), getattr(self, "rank_", None)
        if rank is not None and own is not None and int(rank) != int(own):
            raise ParameterError(f"{self.name}: this map was made by a fit of rank {rank}, "
                                 f"and this one has rank {own}: its null distribution is "
                                 "another; threshold it with the detector that made it, or "
                                 "give contamination= or value=")
        return null

    def null_threshold(self, far: float) -> float | None:
        """Score exceeded by background with probability ``far``; None if unknown."""
        return None

    def _null_of_map(self, scores: xr.DataArray, far: float) -> float | None:
        """The null quantile of a map this detector's kind made, read from the map where
        the detector is not fitted (a map scored earlier and thresholded by a new
        detector); None where the map does not carry what it needs."""
        return None
