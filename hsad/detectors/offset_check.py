"""Whether float32 can hold a scene's detail.

The networks, their normalisation and the spatial filters compute in float32 (24-bit
mantissa). Data stored wider (float64, 32- and 64-bit integers) can sit on an offset so large
against their spread that the cast keeps almost none of it: ``1e10 + N(0, 1)`` becomes one
value every 1024 units, and ``aed``, ``fanogan`` and ``hadgan`` returned a one-value map with
exit status 0. RX centres in float64 and is not affected. :func:`check_offset` refuses such a
scene with what to do.
"""

from __future__ import annotations

import numpy as np

from hsad.detectors.level_check import sampled_values
from hsad.errors import ParameterError

#: fewer float32 steps than this across one spread (at the median band) are refused: 1e10 +
#: N(0, 1) has 0.001, int32 values near 2³¹ spread over 24 have 0.09, longitudes of -114.9
#: spread over 0.0007 (an AVIRIS-NG location file) have 87 and give AED the float64 map's
#: ranking (Spearman 0.998)
MIN_STEPS = 8.0
def wider_than_float32(dtype) -> bool:
    """Whether values of ``dtype`` can carry detail that a float32 cast drops."""
    dtype = np.dtype(dtype)
    return dtype.kind in "iu" and dtype.itemsize >= 4 or dtype.kind == "f" and dtype.itemsize > 4


def check_offset(centre: np.ndarray, spread: np.ndarray, dtype, what: str, path=None,
                 band_numbers=None, scale: float = 1.0) -> None:
    """ParameterError when, at the median band, one ``spread`` spans fewer than
    :data:`MIN_STEPS` float32 steps at the band's ``centre`` (one nearly constant band is no
    reason), and the data are stored wider than float32 (float32 data lose nothing more in
    the cast). ``band_numbers``: each band's 1-based number in the file, for the message;
    ``scale``: the power of two the values are multiplied by before the cast."""
    if not wider_than_float32(dtype):
        return
    given = np.asarray(centre, np.float64)
    centre, spread = given * scale, np.asarray(spread, np.float64) * scale
    ok = np.flatnonzero(np.isfinite(centre) & np.isfinite(spread) & (spread > 0)
                        & (np.abs(centre) < np.finfo(np.float32).max))
    if not ok.size:
        return
    steps = spread[ok] / np.spacing(np.abs(centre[ok]).astype(np.float32)).astype(np.float64)
    middle = int(np.argsort(steps, kind="stable")[steps.size // 2])
    if not steps[middle] < MIN_STEPS:
        return
    b = int(ok[middle])
    number = b + 1 if band_numbers is None else int(np.asarray(band_numbers)[b])
    step = float(np.spacing(np.float32(abs(centre[b])))) / scale
    raise ParameterError(
        f"{what}: the data sit on an offset {abs(centre[b]) / spread[b]:.1e} times their "
        f"spread (band {number}: {given[b]:.6g} ± {spread[b] / scale:.3g}); {what} computes in "
        f"float32, whose steps there are {step:.3g}: {steps[middle]:.2g} of them across a "
        "spread, too few to tell the pixels apart. Subtract a constant offset first (RX, "
        "which centres in float64, can score the scene as it is)", path)


def check_sampled_offset(data, bands: np.ndarray, nodata, what: str, path=None,
                         values: np.ndarray | None = None) -> None:
    """:func:`check_offset` of the per-band median and interquartile spread (IQR / 1.349)
    of an even sample (:func:`~hsad.detectors.level_check.sampled_values`) of ``data``
    (rows, cols, all bands) on ``bands`` (a boolean mask):
    no pass over a large scene, and nothing read unless the data are stored wider than
    float32. ``values``: that sample, drawn already."""
    if not wider_than_float32(data.dtype):
        return
    chosen = np.flatnonzero(np.asarray(bands, dtype=bool))
    if values is None:
        values = sampled_values(data, bands, nodata)
    usable = np.isfinite(values).any(axis=0)
    if not usable.any():
        return
    lo, med, hi = np.nanpercentile(values[:, usable], [25, 50, 75], axis=0)
    spread = (hi - lo) / 1.349
    spread = np.where(spread > 0, spread, np.nanstd(values[:, usable], axis=0))
    check_offset(med, spread, data.dtype, what, path, band_numbers=chosen[usable] + 1)
