"""Checks of a scene's data before its statistics are used: no valid pixel, nodata held
in some bands only, undeclared fill values, values too large or too small to square.

:func:`scene_moments` is :func:`hsad.engine.stats.cube_moments` for a detector's fit, with
these checks made on the moments and on one even sample of the scene.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.cube import (
    can_miss,
    good_band_mask,
    missing_values,
    nodata_hits,
)
from hsad.cube.nodata_values import value_text
from hsad.cube.subset import current_window
from hsad.engine.covariance import check_covariance
from hsad.engine.sampling import even_sample
from hsad.engine.stats import Moments, cube_moments
from hsad.errors import DegenerateDataWarning, ParameterError


def scene_moments(cube: xr.DataArray, what: str, bands=None,
                  region: np.ndarray | None = None) -> Moments:
    """:func:`cube_moments` for a detector's fit: a clear error when no statistic can be had.

    No valid pixel: the message names the good bands that are not finite anywhere (to be
    marked bad). Every pixel alike (one valid pixel, or constant bands only): every score
    would be equal.
    """
    path = cube.attrs.get("source_path")
    moments = cube_moments(cube, bands=bands, region=region)
    if moments.n == 0:
        where = "the background area holds" if region is not None else "the cube has"
        note = _off_data_note(cube, bands) if region is not None else ""
        raise ParameterError(f"{what}: {where} no valid pixel"
                             f"{note or no_pixel_note(cube, bands)}", path)
    sample = good_sample(cube, bands)  # one even sample for the checks below
    fill = check_partial_nodata(cube, what, bands, moments=moments, sample=sample)
    check_overflow(moments, what, path, sample=sample, nodata=cube.attrs.get("nodata"))
    if not np.trace(moments.scatter) > 0:
        level = float(np.max(np.abs(moments.mean), initial=0.0))
        if 0.0 < level < TINY_MAGNITUDE:  # squares underflow: not pixels alike
            raise ParameterError(
                f"{what}: the values (about {level:.1e}) are too small to square in float64, "
                f"so their covariance is zero; rescale the scene first ({rescale_by(level)})",
                path)
        check_covariance(0, moments.mean.size, moments.n, what, path)
    if fill is None or not abs(fill) > FILL_MAGNITUDE:  # else said with its value just above
        check_fill_values(moments, what, path, sample=sample, nodata=cube.attrs.get("nodata"))
    return moments


#: band means or spreads beyond this come from no measurement: an undeclared fill value
#: (or a scene in a unit no detector handles: :func:`huge_scale`)
FILL_MAGNITUDE = 1e20
#: what to do about an undeclared fill value (part of its warnings)
FILL_ADVICE = ("an undeclared fill value (such as -3.4e38) dominates the statistics and "
               "flattens every other score; declare it with --nodata VALUE "
               "(hsad.cube.nodata.set_nodata)")
#: the share of the sampled pixels (of those holding data) beyond which values over
#: :data:`FILL_MAGNITUDE` in every good band are the scene's scale, not a fill value
HUGE_SHARE = 0.5
#: what to do about a scene whose values lie beyond :data:`FILL_MAGNITUDE` (:func:`huge_note`)
HUGE_ADVICE = (f"the detectors handle values up to ±{FILL_MAGNITUDE:g} (the networks take "
               "larger ones for a fill value); rescale the scene first")


def huge_note(level: float) -> str:
    """What a scene whose values lie about ``level`` (:func:`huge_scale`) is told: its unit,
    not a fill value, and by what to divide it."""
    return (f"most pixels hold values beyond ±{FILL_MAGNITUDE:g} in every good band (a median "
            f"of {level:.1e}): the scene's unit, not a fill value; {HUGE_ADVICE} "
            f"({rescale_by(level)})")


def rescale_by(level: float) -> str:
    """How to bring values about ``level`` to unit scale: ``multiply it by 1e36`` or
    ``divide it by 1e25`` (a level that is not a positive number: by 1e20)."""
    power = int(np.floor(np.log10(level))) if level > 0 and np.isfinite(level) else 20
    return f"multiply it by 1e{-power}" if power < 0 else f"divide it by 1e{power}"


def where_prefix(path, what: str) -> str:
    """``"<file>: <detector>: "`` (the file when known) that starts a warning about a scene."""
    return f"{path}: {what}: " if path else f"{what}: "


def huge_scale(sample: np.ndarray, nodata: float | None = None) -> float | None:
    """The median magnitude of ``sample`` (n, good bands) when more than :data:`HUGE_SHARE`
    of its pixels holding data hold values beyond :data:`FILL_MAGNITUDE` in every band
    (spectra, not one value in every band: that is a fill value, :func:`flat_fill`): a
    scene in a unit no detector handles; None otherwise."""
    if not np.issubdtype(sample.dtype, np.floating) or not sample.size:
        return None
    rows = sample[~missing_values(sample, nodata).any(axis=-1)]
    if not rows.shape[0]:
        return None
    with np.errstate(over="ignore"):
        big = (np.abs(rows) > FILL_MAGNITUDE).all(axis=-1) & ~(rows == rows[:, :1]).all(axis=-1)
    if not big.sum() > HUGE_SHARE * rows.shape[0]:
        return None
    return float(np.median(np.abs(rows[big].astype(np.float64))))


def fill_limit_note(cube: xr.DataArray, bands=None) -> str:
    """Why a sample that leaves out pixels beyond :data:`FILL_MAGNITUDE` (the networks'
    ``fill_limit``) found none to keep: the scene's unit (:func:`huge_note`) when an even
    sample shows most pixels that large in every good band, else a fill value everywhere."""
    level = huge_scale(good_sample(cube, bands), cube.attrs.get("nodata"))
    if level is not None:
        return f": {huge_note(level)}"
    return f": every pixel drawn holds a value beyond ±{FILL_MAGNITUDE:g}; {FILL_ADVICE}"


def check_overflow(moments: Moments, what: str, path=None, sample=None,
                   nodata: float | None = None) -> None:
    """Refuse statistics whose squares overflowed float64 (values beyond about 1e154): the
    scene's unit when the even ``sample`` shows most pixels that large (:func:`huge_scale`;
    the advice names the power of ten to divide by), else a few extreme pixels (a fill
    value). Their covariance was NaN or inf: "every pixel alike", or a NaN from k-means."""
    if np.isfinite(moments.mean).all() and np.isfinite(moments.scatter).all():
        return
    level = None if sample is None else huge_scale(sample, nodata)
    if level is not None:
        raise ParameterError(
            f"{what}: the values (about {level:.1e}) are too large to square in float64, so "
            f"their covariance overflows; rescale the scene first ({rescale_by(level)})",
            path)
    raise ParameterError(f"{what}: some values are too large to square in float64 (beyond "
                         f"about ±1e150), so the covariance overflows: {FILL_ADVICE}", path)


def check_fill_values(moments: Moments, what: str, path=None, sample=None,
                      nodata: float | None = None) -> None:
    """Warn when a band's mean or spread exceeds :data:`FILL_MAGNITUDE`: one pixel of
    -3.4e38 among a billion still gives a spread of 1e34. When the even ``sample`` of the
    good bands (:func:`good_sample`) shows most pixels that large in every band
    (:func:`huge_scale`), the scene's unit is the trouble, and the warning says so."""
    spread = np.sqrt(np.clip(np.diag(moments.cov), 0.0, None))
    huge = np.flatnonzero((np.abs(moments.mean) > FILL_MAGNITUDE) | (spread > FILL_MAGNITUDE))
    if not huge.size:
        return
    level = None if sample is None else huge_scale(sample, nodata)
    if level is not None:
        warnings.warn(f"{where_prefix(path, what)}{huge_note(level)}", DegenerateDataWarning,
                      stacklevel=3)
        return
    listed = ", ".join(str(b + 1) for b in huge[:5]) + (" …" if huge.size > 5 else "")
    warnings.warn(f"{where_prefix(path, what)}bands {listed} (1-based) spread over "
                  f"±{spread[huge].max():.1e}: {FILL_ADVICE}", DegenerateDataWarning,
                  stacklevel=3)


#: pixels looked at to estimate how many hold the nodata value in only some bands, or one
#: value in every band (:func:`good_sample`)
PARTIAL_NODATA_SAMPLE = 65536
#: the share of such pixels above which the any-band nodata rule is worth a warning about
#: its share; fewer such pixels holding the nodata value (a saturated target at the type's
#: maximum) are warned of by count
PARTIAL_NODATA_SHARE = 0.01
#: the share of the sampled pixels holding data above which one value held in every good
#: band is taken for an undeclared fill value (:func:`flat_fill`): no measured spectrum is
#: flat across bands, a swath's filler is. 0 % on every shared benchmark scene and the ENVI
#: corpus; a rotated swath's corners are 20 % to 85 %.
FLAT_FILL_SHARE = 0.02
#: pixels sampled for :func:`flat_fill` alone: a 2 % share is about 80 of them
FLAT_FILL_SAMPLE = 4096
#: fewer good bands than this may be flat by chance (one band always is)
FLAT_MIN_BANDS = 3
#: fewer sampled pixels of one value than this are no swath's filler (a 3-band 8-bit scene
#: of a few hundred pixels holds such coincidences) and hardly move a statistic
FLAT_MIN_PIXELS = 10
#: with this many good bands or more, no share is too small: ten pixels flat across them
#: are no coincidence, and scored as data they are the map's top detections (25 fill
#: pixels of 1920, 1.3 %, were 21 of RX's top 25); fewer bands keep FLAT_FILL_SHARE
FLAT_MANY_BANDS = 10


def good_sample(cube: xr.DataArray, bands=None) -> np.ndarray:
    """An even sample of ``cube``'s good bands (or ``bands``), ``(n, bands)`` as stored
    (:func:`even_sample`: no pass over a large scene): about :data:`PARTIAL_NODATA_SAMPLE`
    pixels when some can lack data (their share is estimated on it), else
    :data:`FLAT_FILL_SAMPLE` (65536 pixels in 8 × 8 windows cost 1.7 s on a 4096² × 50
    scene: a quarter of its RX run)."""
    size = (PARTIAL_NODATA_SAMPLE if can_miss(cube.dtype, cube.attrs.get("nodata"))
            else FLAT_FILL_SAMPLE)
    sample = even_sample(cube.data, size)
    chosen = band_positions(cube, bands)
    if np.array_equal(chosen, np.arange(sample.shape[-1])):
        return sample  # every band: no copy
    return sample[:, chosen]


def band_positions(cube: xr.DataArray, bands=None) -> np.ndarray:
    """0-based positions of ``bands`` (a boolean vector or index list; None: the good
    bands)."""
    chosen = good_band_mask(cube) if bands is None else np.asarray(bands)
    return np.flatnonzero(chosen) if chosen.dtype == bool else chosen.astype(int)


def flat_fill(sample: np.ndarray, nodata: float | None = None) -> tuple[float, float] | None:
    """``(value, share)``: the value most of ``sample``'s (n, good bands) pixels holding data
    hold in every band, and their share of those pixels, when they are at least
    :data:`FLAT_MIN_PIXELS` and, with fewer than :data:`FLAT_MANY_BANDS` bands, more than
    :data:`FLAT_FILL_SHARE` (an undeclared fill value); None otherwise, or when every such
    pixel holds it (a scene of one value: every score equal, said by the covariance rule)."""
    if sample.shape[-1] < FLAT_MIN_BANDS:
        return None
    rows = (sample[~missing_values(sample, nodata).any(axis=-1)]
            if can_miss(sample.dtype, nodata) else sample)
    if not rows.shape[0]:
        return None
    flat = (rows == rows[:, :1]).all(axis=-1)
    if not flat.any():
        return None
    values, counts = np.unique(rows[flat, 0], return_counts=True)
    top = int(np.argmax(counts))
    share = counts[top] / rows.shape[0]
    least = 0.0 if sample.shape[-1] >= FLAT_MANY_BANDS else FLAT_FILL_SHARE
    if not least < share < 1.0 or counts[top] < FLAT_MIN_PIXELS:
        return None
    return float(values[top]), float(share)


def _fill_advice(cube: xr.DataArray, value: float, dtype) -> str:
    """How to declare ``value`` (data of ``dtype``) as nodata, written as the data hold it:
    on the command line in the file's stored units (``--nodata`` beside ``--apply-scale``
    is read before the scale), in Python on the cube as it is."""
    from hsad.io.physical_units import stored_value

    shown = value_text(value, dtype)
    python = f"hsad.cube.nodata.set_nodata(cube, {shown})"
    if not cube.attrs.get("scale_applied"):
        return f"give --nodata {shown} ({python})"
    stored = stored_value(cube, value)
    if stored is None:
        return (f"the bands' scales differ, so give --nodata without --apply-scale, or a "
                f"--valid-mask ({python})")
    stored = value_text(stored, cube.attrs.get("stored_dtype") or np.float64)
    return (f"give --nodata {stored}, the value the file stores (--nodata is in stored "
            f"units beside --apply-scale; {python})")


def check_partial_nodata(cube: xr.DataArray, what: str, bands=None, *,
                         moments: Moments | None = None,
                         sample: np.ndarray | None = None) -> float | None:
    """Warn when pixels hold the nodata value, or no finite value, in some good bands but
    data in others; or when many hold one value in every good band (an undeclared fill
    value, :func:`flat_fill`). Returns that value, or None.

    A pixel is left out when any good band holds no data (a spectrum with a hole cannot be
    scored); a nodata value that is also a real measurement (0 in dark absorption bands, a
    bright target saturated at 65535) then removes pixels that hold data. Estimated on an
    even sample of about :data:`PARTIAL_NODATA_SAMPLE` pixels (``sample``, else
    :func:`good_sample`), so it costs no pass over a large scene: more than
    :data:`PARTIAL_NODATA_SHARE` of them is warned of by share. Fewer pixels holding the
    nodata value are warned of by count: counted exactly by the pass of ``moments``
    (:attr:`Moments.partial`, no extra pass) when it screened every pixel, else as the
    sample shows them (a few pixels of a large scene may then go unseen)."""
    nodata = cube.attrs.get("nodata")
    path = cube.attrs.get("source_path")
    where = where_prefix(path, what)
    sel = band_positions(cube, bands)
    if sample is None:
        sample = good_sample(cube, bands)
    fill = flat_fill(sample, nodata)
    if fill is not None and moments is not None and not np.trace(moments.scatter) > 0:
        fill = None  # every valid pixel alike: refused by the covariance rule
    if fill is not None:
        value, share = fill
        whole = "the scene's pixels" if not can_miss(sample.dtype, nodata) or not (
            missing_values(sample, nodata).any()) else "the scene's pixels holding data"
        about = f"{share:.0%}" if share >= 0.01 else f"{100 * share:.2g}%"  # not "0%"
        warnings.warn(f"{where}about {about} of {whole} hold {value_text(value, sample.dtype)}"
                      f" in every good band (no measured spectrum is flat): an undeclared "
                      f"fill value? They are scored as data and skew the statistics; "
                      f"{_fill_advice(cube, value, sample.dtype)}",
                      DegenerateDataWarning, stacklevel=3)
    if not can_miss(cube.dtype, nodata):
        return fill[0] if fill else None
    missing = missing_values(sample, nodata)
    hits = missing.sum(axis=-1)
    partial = (hits > 0) & (hits < sel.size)
    counted = moments is not None and moments.partial is not None
    finite = nodata is not None and np.isfinite(nodata)
    share, exact = partial.mean(), False
    if counted and not share > PARTIAL_NODATA_SHARE:  # the pass's count, when it has one
        share, exact = moments.partial / max(cube.sizes["y"] * cube.sizes["x"], 1), True
    if share > PARTIAL_NODATA_SHARE:
        if finite and (exact or nodata_hits(sample[partial], nodata).any()):
            held, advice = (f"the nodata value {nodata:g}", f"if {nodata:g} is a real value "
                            "in those bands, give another --nodata or mark the bands bad")
        else:  # NaN or ±inf in some bands: those bands are the trouble
            worst = np.argsort(-missing[partial].sum(axis=0))[:3]
            named = [str(int(sel[b]) + 1) for b in worst if missing[partial, b].any()]
            held, advice = ("no finite value (NaN or ±inf)",
                            f"mostly in band{'s' * (len(named) > 1)} {', '.join(named)} "
                            "(1-based): drop them (--bands, --exclude-wavelengths) or mark "
                            "them bad")
        warnings.warn(
            f"{where}about {share:.0%} of the pixels hold {held} in some good bands but data "
            f"in others, and are left out (a pixel is scored only when every good band holds "
            f"data); {advice}", DegenerateDataWarning, stacklevel=3)
    elif finite:  # few: each is worth a word (a saturated target is what one looks for)
        # a scene no larger than the sample is sampled whole: its count is exact too
        counted = counted or sample.shape[0] == cube.sizes["y"] * cube.sizes["x"]
        if moments is not None and moments.partial is not None:
            count, per_band = int(moments.partial), np.asarray(moments.partial_bands)
        else:
            at = nodata_hits(sample, nodata)
            some = at.any(axis=-1) & ~at.all(axis=-1)
            count, per_band = int(some.sum()), at[some].sum(axis=0)
        if count:
            worst = [b for b in np.argsort(-per_band, kind="stable")[:3] if per_band[b]]
            named = ", ".join(str(int(sel[b]) + 1) for b in worst)
            one = count == 1
            many = f"{count}{'' if counted else ' sampled'} pixel{'' if one else 's'}"
            warnings.warn(
                f"{where}{many} hold{'s' if one else ''} {nodata:g} in some good bands only "
                f"(saturated, or a ragged edge?), mostly in band{'s' * (len(worst) > 1)} "
                f"{named} (1-based), and {'is' if one else 'are'} left out (NaN in the map); "
                f"if {nodata:g} is a real value there, give a --nodata the data never hold "
                f"(and --valid-mask for the fill) or drop those bands (--bands)",
                DegenerateDataWarning, stacklevel=3)
    return fill[0] if fill else None


def dead_bands_note(cube: xr.DataArray, bands=None) -> str:
    """``": bands … hold no data in any pixel; mark them bad"``, or "" when there are none."""
    sel = band_positions(cube, bands)
    nodata = cube.attrs.get("nodata")
    data = cube.data[:, :, sel]
    if not can_miss(data.dtype, nodata):
        return ""
    alive = np.asarray((~missing_values(data, nodata)).any(axis=(0, 1)).compute())
    dead = sel[~alive]
    if not dead.size:
        return ""
    window = current_window(cube)
    if dead.size == sel.size and sel.size > 1:  # marking every band bad is no remedy
        value = ("" if nodata is None or not np.isfinite(nodata)
                 else f"the nodata value {nodata:g} or ")
        if window is not None:
            r0, c0 = window[:2]
            rows, cols = cube.sizes["y"], cube.sizes["x"]
            return (f": every pixel is {value}not finite in every band of the window read "
                    f"(rows {r0}:{r0 + rows}, columns {c0}:{c0 + cols}), "
                    "so it holds no data to analyse (a window outside the scene's data, or "
                    "a wrong --nodata?)")
        return (f": every pixel is {value}not finite in every band, so the file holds no "
                "data to analyse (a wrong --nodata, or an empty product?)")
    listed = ", ".join(str(int(b) + 1) for b in dead[:10]) + (", …" if dead.size > 10 else "")
    state = ("not finite in any pixel" if nodata is None or not np.isfinite(nodata)
             else f"the nodata value {nodata:g} (or not finite) in every pixel")
    inside = "" if window is None else " of the window read"
    return (f": band{'s' * (dead.size > 1)} {listed} (1-based) {'are' if dead.size > 1 else 'is'}"
            f" {state}{inside}; mark them bad (bbl / good_band) or drop them")


#: why no pixel is valid when every good band holds data somewhere
NO_WHOLE_PIXEL = (": no pixel holds data in every good band (each lacks some band: choose "
                  "fewer bands, or mark the gappy ones bad)")


def _off_data_note(cube: xr.DataArray, bands=None) -> str:
    """Why a background area holds no valid pixel when the scene holds some (as an even
    sample shows): its pixels are the scene's nodata or excluded (``--valid-mask``); "" when
    the sample shows none either (:func:`no_pixel_note` then says why)."""
    sample = good_sample(cube, bands)
    if not sample.size or missing_values(sample, cube.attrs.get("nodata")).any(axis=-1).all():
        return ""
    return (": every pixel in it is nodata, excluded (--valid-mask) or lacks a good band, "
            "though the scene holds valid pixels elsewhere: draw it over them")


def no_pixel_note(cube: xr.DataArray, bands=None) -> str:
    """Why no pixel is valid: the bands without data (:func:`dead_bands_note`), or, when
    each band holds data somewhere, :data:`NO_WHOLE_PIXEL`."""
    return dead_bands_note(cube, bands) or NO_WHOLE_PIXEL


#: values below this square to less than float64's smallest normal number (2.2e-308)
TINY_MAGNITUDE = 1e-154


#: values below this keep fewer than 13 bits in a float32 sample (float32 subnormals)
SMALLEST = float(np.finfo(np.float32).tiny) * 2.0**-10


def check_float32_sample(x: np.ndarray, cube: xr.DataArray, bands, what: str) -> np.ndarray:
    """The mean of ``x``, a sample of ``cube``'s ``bands`` (float32, or float64 where the
    statistics keep a float64 scene's digits), after RX's checks of its band statistics: a
    warning when they exceed 1e20 (an undeclared fill value); refused when the sample holds
    values beyond float32's range, in which the detector scores (the scene's unit, or a
    fill value), or the scene's values lie below :data:`SMALLEST` (``what``: the detector,
    in the messages)."""
    path, nodata = cube.attrs.get("source_path"), cube.attrs.get("nodata")
    sample = good_sample(cube, bands)  # an even sample, as stored (float64 stays so)
    fill = check_partial_nodata(cube, what, bands, sample=sample)
    level = 0.0
    if np.issubdtype(sample.dtype, np.floating):
        level = float(np.max(np.abs(sample[np.isfinite(sample)]), initial=0.0))
    if 0.0 < level < SMALLEST:
        raise ParameterError(
            f"{what}: the values (up to {level:.1e}) are too small for its float32 "
            f"sample (below {SMALLEST:.0e} it keeps fewer than 13 bits); rescale the "
            f"scene first ({rescale_by(level)})", path)
    if not (np.abs(x) <= np.finfo(np.float32).max).all():  # also inf of a float32 cast
        level = huge_scale(sample, nodata)
        raise ParameterError(f"{what}: values beyond float32's range (±3.4e38), in "
                             "which its sample is drawn: "
                             f"{huge_note(level) if level else FILL_ADVICE}", path)
    mean = x.mean(axis=0)
    spread = np.diag(((x - mean) ** 2).sum(axis=0))  # the diagonal is all it reads
    if fill is None or not abs(fill) > FILL_MAGNITUDE:  # else named with its value
        check_fill_values(Moments(len(x), mean, spread), what, path, sample=sample,
                          nodata=nodata)
    return mean
