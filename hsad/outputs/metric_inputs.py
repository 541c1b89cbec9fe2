"""What the metrics check of the maps they are given: the nodata value a DataArray
declares (its pixels are left out, as a file's are), and fill values no declaration left
out, which would be ranked as scores or counted as anomalies (a warning)."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.engine.data_checks import FILL_MAGNITUDE

#: values that files write for "no data" and that a 0/1 ground truth does not hold
FILL_LIKE = (255, 65535, -9999, -32768, -32767, 4294967295)


def declared_nodata(a) -> float | None:
    """The nodata value a DataArray declares (hsad's ``nodata`` attribute, or what
    rioxarray reads: ``_FillValue`` of an unmasked ``open_rasterio``); None where it
    declares none, or NaN."""
    if not isinstance(a, xr.DataArray):
        return None
    value = a.attrs.get("nodata")
    if value is None:
        try:
            value = a.rio.nodata
        except Exception:  # noqa: BLE001 - no rioxarray accessor, or an unreadable attr
            value = None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(value) else value


def without_nodata(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """``values`` with NaN where they hold ``nodata`` (floats: integers widen to float32,
    or float64 beyond 16 bits); ``values`` itself where none does."""
    if nodata is None or values.dtype == bool:
        return values
    hit = values == nodata
    if not hit.any():
        return values
    out = values.astype(np.result_type(values.dtype, np.float32))
    out[hit] = np.nan
    return out


def _integer_range(values: np.ndarray, nodata: float | None):
    """``(min, max)`` of 64-bit integer scores beyond 2**53 (which float64 would tie),
    leaving ``nodata`` out; None for any other map."""
    if values.dtype.kind not in "iu" or values.dtype.itemsize < 8 or not values.size:
        return None
    kept = values if nodata is None else values[values != nodata]
    if not kept.size:
        return None
    lo, hi = kept.min(), kept.max()
    return (lo, hi) if max(abs(int(lo)), abs(int(hi))) > 2**53 else None


def integer_shift(values: np.ndarray, nodata: float | None):
    """The minimum that :func:`exact_integers` shifts 64-bit integer scores by, or None
    where they are converted as they are."""
    found = _integer_range(values, nodata)
    return None if found is None else found[0]


def exact_integers(values: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """64-bit integer scores beyond 2**53 as float64 without the ties that converting them
    would make: shifted by their minimum first (every metric is shift-invariant), NaN where
    they hold ``nodata``; a warning where their range itself is wider than 2**53. None for
    any other map (converted as it is)."""
    found = _integer_range(values, nodata)
    if found is None:
        return None
    lo, hi = found
    if int(hi) - int(lo) > 2**53:
        warnings.warn(f"integer scores span {int(hi) - int(lo):.3g}, beyond 2**53: "
                      "neighbouring values tie in the float64 the metrics compute in",
                      UserWarning, stacklevel=4)
    # modulo 2**64, as uint64: exact for every value at or above the minimum
    out = (values.view(np.uint64) - np.asarray(lo).view(np.uint64)).astype(np.float64)
    if nodata is not None:
        out[values == nodata] = np.nan
    return out


def warn_fill_scores(s: np.ndarray) -> None:
    """Warn when some, not all, finite scores lie beyond ±FILL_MAGNITUDE (an undeclared
    fill value such as -3.4e38, which the τ-metrics' min-max scaling would be stretched
    by; a swath's fill may be most of the map)."""
    flat, block = s.reshape(-1), 1 << 20  # block by block: nothing map-sized beside it
    big = finite = 0
    for i in range(0, flat.size, block):
        part = flat[i:i + block]
        finite += int(np.count_nonzero(np.isfinite(part)))
        big += int(np.count_nonzero(np.abs(part) > FILL_MAGNITUDE)) \
            - int(np.count_nonzero(np.isinf(part)))
    if 0 < big < finite:  # all of them: the map's own scale
        warnings.warn(f"{big} pixels of the score map hold values beyond ±{FILL_MAGNITUDE:g} "
                      "(an undeclared fill value?): they are ranked as scores and stretch "
                      "the AUC(D,tau) / AUC(F,tau) scaling; declare the map's nodata or set "
                      "them to NaN", UserWarning, stacklevel=4)


def warn_fill_truth(g: np.ndarray) -> None:
    """Warn when a ground truth holds several nonzero values, one of them a fill value
    (0/1 with 255 beside: every nonzero value counts as anomaly)."""
    if g.dtype == bool or not g.size:
        return
    nonzero = g[(g != 0) & np.isfinite(g)] if g.dtype.kind == "f" else g[g != 0]
    if nonzero.size == 0:
        return
    lo, hi = nonzero.min(), nonzero.max()
    if lo == hi:
        return
    fill = next((float(v) for v in (hi, lo) if float(v) in FILL_LIKE
                 or abs(float(v)) > FILL_MAGNITUDE), None)
    if fill is not None:
        warnings.warn(f"the ground truth holds {fill:g} in {int(np.count_nonzero(g == fill))} "
                      "pixels beside other nonzero values: every nonzero value counts as "
                      f"anomaly; if {fill:g} means no data, declare it as the truth's nodata "
                      "(or set it to NaN)", UserWarning, stacklevel=4)
