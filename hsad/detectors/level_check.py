"""Whether a scene lies on the scale of the data a model was fitted on.

A model applied to a scene in another unit or scale factor (reflectance × 10000 against
reflectance, radiance in other units) still returns a map, but its statistics do not
describe the scene: a global RX model of abu-urban-1 scores that scene × 10000 with
AUC(D,F) 0.70 instead of 0.99, ranking pixels by their level. (HADGAN's D_SS, whose RX and
spatial map take the scene's own statistics, held 0.993 there; the warning is the same.)

:func:`check_scene_level` compares the scene's per-band medians, from an even sample of
about :data:`LEVEL_SAMPLE` pixels read as small windows (no pass over a large scene), with
the model's per-band centre and spread (a normal-consistent σ: the standard deviation for
the RX family, IQR / 1.349 or its percentile analogue for the networks), and warns when
they lie many spreads away or many times above or below it.
"""

from __future__ import annotations

import warnings

import numpy as np

from hsad.cube import missing_values
from hsad.engine.sampling import even_sample
from hsad.errors import DegenerateDataWarning

#: pixels looked at to estimate a scene's per-band medians
LEVEL_SAMPLE = 4096
#: a scene whose median band lies more than this many of the model's spreads from the
#: model's centre is taken to be on another scale (between the shared scenes of one sensor
#: it is at most 0.4; a model fitted on a 20 × 20 window of a scene, applied to the whole
#: scene, at most 4.7)
LEVEL_SPREADS = 20.0
#: ... or whose median band is this many times the model's level, or this many times
#: smaller (a scale factor of 100, 1000 or 10000 either way: a model of DNs on a scene of
#: reflectance lies only a few spreads from it, its level being a few of its spreads)
LEVEL_RATIO = 50.0


def sampled_values(data, bands: np.ndarray, nodata: float | None) -> np.ndarray:
    """An even sample of about :data:`LEVEL_SAMPLE` pixels of ``data`` (rows, cols, all
    bands; numpy or dask) on ``bands`` (a boolean mask), float64, NaN where a value holds
    no data."""
    return as_values(even_sample(data, LEVEL_SAMPLE)[:, np.asarray(bands, dtype=bool)], nodata)


def as_values(sample: np.ndarray, nodata: float | None) -> np.ndarray:
    """A sample of pixels as stored, as float64 with NaN where a value holds no data."""
    values = sample.astype(np.float64)
    values[missing_values(sample, nodata)] = np.nan
    return values


def scene_medians(data, bands: np.ndarray, nodata: float | None,
                  values: np.ndarray | None = None) -> np.ndarray:
    """Per-band medians of ``data`` (rows, cols, all bands; numpy or dask) on ``bands`` (a
    boolean mask), over the sampled values that hold data (``values``: that sample, drawn
    already); NaN for a band without any."""
    if values is None:
        values = sampled_values(data, bands, nodata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a band without data: NaN
        return np.nanmedian(values, axis=0)


def _distance(medians: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> float:
    """The median over bands of |median − centre| / spread, where all three are usable."""
    ok = np.isfinite(medians) & np.isfinite(centre) & np.isfinite(spread) & (spread > 0)
    if not ok.any():
        return 0.0
    return float(np.median(np.abs(medians[ok] - centre[ok]) / spread[ok]))


def _times(medians: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> float | None:
    """The median over bands of ``medians / centre`` where both are positive and the centre
    lies more than a ``spread`` above zero (centred data have no scale to compare), else
    None."""
    both = np.isfinite(medians) & (centre > spread) & (medians > 0)
    return float(np.median(medians[both] / centre[both])) if both.any() else None


def _far(medians, centre, spread) -> bool:
    """Whether ``medians`` lie on another scale than ``centre``: more than
    :data:`LEVEL_SPREADS` spreads away, or :data:`LEVEL_RATIO` times larger or smaller."""
    times = _times(medians, centre, spread)
    return (_distance(medians, centre, spread) > LEVEL_SPREADS
            or (times is not None and not 1 / LEVEL_RATIO < times < LEVEL_RATIO))


def _rounded(x: float) -> str:
    """``x`` to two significant digits, with thousands separators (9,500): a ratio of a
    sample's medians to the training data's means is an estimate, not 9,525."""
    return f"{float(f'{x:.2g}'):,.0f}"


def check_scene_level(medians: np.ndarray, centre: np.ndarray, spread: np.ndarray,
                      what: str, path=None, fitted_scene: np.ndarray | None = None,
                      factor: float | None = None) -> None:
    """Warn when the scene's per-band ``medians`` lie on another scale than the ``centre``
    of the data the model was fitted on (more than :data:`LEVEL_SPREADS` ``spread`` away,
    or :data:`LEVEL_RATIO` times larger or smaller), and than the medians of the scene
    ``fit`` was given (``fitted_scene``, when known: a model fitted on a background area
    of a scene describes that scene's scale whatever the area's level). ``factor``: the
    scene's reflectance scale factor, not applied (named in the warning, with the way to
    apply it)."""
    centre = np.asarray(centre, dtype=np.float64)
    spread = np.asarray(spread, dtype=np.float64)
    if not _far(medians, centre, spread):
        return
    if fitted_scene is not None and not _far(medians, np.asarray(fitted_scene, np.float64),
                                             spread):
        return
    distance = _distance(medians, centre, spread)
    times = _times(medians, centre, spread)
    ratio = ""
    if times is not None:
        ratio = (f", about {_rounded(times)}× its level" if times >= 10 else
                 f", about 1/{_rounded(1 / times)} of its level" if times <= 0.1 else
                 f", about {times:.2g}×")
    where = f"{path}: " if path else ""
    warnings.warn(
        f"{where}{what}: the scene's values lie {distance:.3g} spreads from the data the "
        f"model was fitted on in the median band{ratio}: another unit or scale factor "
        "(reflectance × 10000, radiance units), or a scene unlike the training one, which "
        "the model does not describe. " + (
            f"The file declares a reflectance scale factor of {factor:g}, not applied: give "
            "--apply-scale (open_cube(..., apply_scale=True)) if the model was trained on "
            "the scaled values; else convert" if factor else "Convert")
        + " the scene to the model's units, or fit on the scene itself",
        DegenerateDataWarning, stacklevel=2)
