"""Whether float32 can hold a scene's detail.

The networks, their normalisation and the spatial filters compute in float32 (24-bit
mantissa). Data stored wider (float64, 32- and 64-bit integers) can sit on an offset so large
against their spread that the cast keeps none of it: ``1e10 + N(0, 1)`` becomes one value
every 1024 units, and ``aed``, ``fanogan`` and ``hadgan`` returned a one-value map with exit
status 0. RX centres in float64 and is not affected. :func:`check_offset` refuses such a
scene with what to do.
"""

from __future__ import annotations

import numpy as np

from hsad.cube import missing_values
from hsad.engine.stats import even_sample
from hsad.errors import ParameterError

#: a band whose |centre| exceeds this many spreads keeps under 8 of float32's 24 bits for
#: its detail (compared for the median band)
OFFSET_SPREADS = 2.0 ** 16
#: pixels sampled for the centre and spread when no statistics are at hand
OFFSET_SAMPLE = 4096


def wider_than_float32(dtype) -> bool:
    """Whether values of ``dtype`` can carry detail that a float32 cast drops."""
    dtype = np.dtype(dtype)
    return dtype.kind in "iu" and dtype.itemsize >= 4 or dtype.kind == "f" and dtype.itemsize > 4


def check_offset(centre: np.ndarray, spread: np.ndarray, dtype, what: str, path=None) -> None:
    """ParameterError when most bands' ``centre`` lies more than :data:`OFFSET_SPREADS` of
    their ``spread`` from 0 (the median band's ratio: one nearly constant band is no reason)
    and the data are stored wider than float32 (float32 data lose nothing more in the
    cast)."""
    if not wider_than_float32(dtype):
        return
    centre, spread = np.asarray(centre, np.float64), np.asarray(spread, np.float64)
    ok = np.flatnonzero(np.isfinite(centre) & np.isfinite(spread) & (spread > 0))
    if not ok.size:
        return
    ratio = np.abs(centre[ok]) / spread[ok]
    middle = int(np.argsort(ratio, kind="stable")[ratio.size // 2])
    if not ratio[middle] > OFFSET_SPREADS:
        return
    b = int(ok[middle])
    ratio = np.zeros(centre.shape)
    ratio[ok] = np.abs(centre[ok]) / spread[ok]
    raise ParameterError(
        f"{what}: the data sit on an offset {ratio[b]:.1e} times their spread (band {b + 1}: "
        f"{centre[b]:.6g} ± {spread[b]:.3g}); {what} computes in float32, which keeps none "
        "of that detail: subtract a constant offset first (RX, which centres in float64, "
        "can score the scene as it is)", path)


def check_sampled_offset(data, bands: np.ndarray, nodata, what: str, path=None) -> None:
    """:func:`check_offset` of the per-band median and interquartile spread (IQR / 1.349)
    of an even sample of ``data`` (rows, cols, all bands) on ``bands``: no pass over a
    large scene, and nothing read unless the data are stored wider than float32."""
    if not wider_than_float32(data.dtype):
        return
    sample = even_sample(data, OFFSET_SAMPLE)[:, np.asarray(bands, dtype=bool)]
    values = sample.astype(np.float64)
    values[missing_values(sample, nodata) | ~np.isfinite(values)] = np.nan
    usable = np.isfinite(values).any(axis=0)
    if not usable.any():
        return
    lo, med, hi = np.nanpercentile(values[:, usable], [25, 50, 75], axis=0)
    spread = (hi - lo) / 1.349
    spread = np.where(spread > 0, spread, np.nanstd(values[:, usable], axis=0))
    check_offset(med, spread, data.dtype, what, path)
