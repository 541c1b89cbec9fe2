"""A fitted model's bands in a scene: :func:`match_model_bands` finds the bands a saved
model was trained on, by wavelength, in a scene of the same or another band set, and
refuses (:class:`~hsad.errors.ModelError`) a scene that lacks them."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.cube import as_cube, good_band_mask
from hsad.detectors.scene_checks import (
    WAVELENGTH_REFUSE_NM,
    WAVELENGTH_WARN_NM,
    check_wavelengths,
    wavelength_shift,
)
from hsad.errors import ModelError


def _model_bands(detector) -> tuple[np.ndarray, np.ndarray | None]:
    """``(wavelengths, good mask or None)`` of the bands a fitted model reads from a cube:
    a neural model its good bands only (mask None), a statistics model every band."""
    wavelength = np.asarray(getattr(detector, "wavelength_", []), dtype=np.float64)
    if hasattr(detector, "n_bands_") and not hasattr(detector, "bands_"):
        return wavelength, None
    return wavelength, np.asarray(detector.bands_, dtype=bool)


def _model_flags(detector, good: np.ndarray | None) -> np.ndarray | None:
    """The bad-band flags a model was fitted under, over every band of its scene: a
    statistics model's ``bands_``, a neural model's ``band_mask_`` (None if it has none)."""
    if good is not None:
        return good
    mask = getattr(detector, "band_mask_", None)
    return None if mask is None else np.asarray(mask, dtype=bool)


def _fits(cube: xr.DataArray, detector) -> bool:
    """Whether a neural model takes ``cube``'s good bands as they are: as many as it was
    trained on, at its wavelengths where both have them (within 2 nm where the scene flags
    other bands bad than the model's: its bands are then found by wavelength)."""
    scene_good = good_band_mask(cube)
    if int(scene_good.sum()) != int(detector.n_bands_):
        return False
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)[scene_good]
    shift = wavelength_shift(scene, detector.wavelength_)
    flags = getattr(detector, "band_mask_", None)
    if flags is not None and flags.size == scene_good.size and shift > WAVELENGTH_WARN_NM \
            and not np.array_equal(flags, scene_good):
        return False  # bad bands flagged elsewhere, wavelengths apart: found by wavelength
    return shift <= WAVELENGTH_REFUSE_NM


def _reordered(cube: xr.DataArray, wanted: np.ndarray, good, flags=None) -> np.ndarray | None:
    """The scene's bands at the model's wavelengths ``wanted`` (each within
    :data:`~hsad.detectors.scene_checks.WAVELENGTH_WARN_NM`, a band of its own) where the scene
    stores them in another order, and they do not pair up where they are stored; else
    None. Each pairing must be clear: the nearest scene band less than half as far as the
    next (EnMAP's two overlapping spectrometers, 0.3 nm apart, would swap under a drift of
    1 nm; 6 nm bands drifted 1.6 nm pair). ``good``: the model's band flags (a statistics
    model, every band), or None (a neural model: good bands only, ``flags`` their place
    among all of its scene's, when known)."""
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)
    pool = np.flatnonzero(np.isfinite(scene) & (good_band_mask(cube) if good is None
                                                 else True))
    if not np.isfinite(wanted).all() or pool.size < max(wanted.size, 2) or wanted.size < 2:
        return None
    if (flags is not None and flags.size == scene.size and int(flags.sum()) == wanted.size
            and wavelength_shift(scene[flags], wanted) <= WAVELENGTH_WARN_NM):
        return None  # where its flags put them
    distance = np.abs(scene[pool][None, :] - wanted[:, None])
    pick = pool[distance.argmin(axis=1)]
    nearest, second = np.partition(distance, 1, axis=1)[:, :2].T
    if (nearest.max() > WAVELENGTH_WARN_NM or np.any(nearest >= second / 2)
            or np.unique(pick).size != pick.size or np.all(np.diff(pick) > 0)):
        return None
    if pool.size == wanted.size and wavelength_shift(scene[pool], wanted) <= WAVELENGTH_WARN_NM:
        return None  # paired where stored
    return pick


def _at_model_wavelengths(cube: xr.DataArray, detector, flags: np.ndarray) -> bool:
    """Whether a neural model's bands sit, in ``cube``, where its flags put them: the
    scene's wavelengths there within :data:`~hsad.detectors.scene_checks.WAVELENGTH_WARN_NM` of
    the model's (or unknown). Otherwise its bands are found by wavelength."""
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)[flags]
    model = np.asarray(detector.wavelength_, dtype=np.float64)
    return scene.size == model.size and wavelength_shift(scene, model) <= WAVELENGTH_WARN_NM


def _moved_by_position(cube: xr.DataArray, wanted: np.ndarray, good: np.ndarray) -> bool:
    """Whether a statistics model's bands are not where the scene stores as many: its good
    bands' wavelengths there beyond
    :data:`~hsad.detectors.scene_checks.WAVELENGTH_REFUSE_NM`, while every one is in the scene
    by wavelength (a scene whose bad bands were dropped, leaving the model's band count by
    chance). They are then found by wavelength."""
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if wavelength_shift(scene[good], wanted[good]) <= WAVELENGTH_REFUSE_NM:
        return False
    found = np.abs(scene[np.isfinite(scene)][None, :] - wanted[good][:, None]).min(axis=1)
    return bool(np.isfinite(wanted[good]).all() and found.max() <= WAVELENGTH_REFUSE_NM)


def _check_same_sensor(cube: xr.DataArray, detector, flags: np.ndarray) -> None:
    """Refuse a scene with the model's band count whose wavelengths are another sensor's
    (before its flags are compared: "a different band set", not "retrain")."""
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)
    model = np.asarray(detector.wavelength_, dtype=np.float64)
    if model.size == int(flags.sum()) != flags.size:  # a neural model's: good bands only
        scene = scene[flags]
    if model.size == scene.size and wavelength_shift(scene, model) > WAVELENGTH_REFUSE_NM:
        check_wavelengths(scene, model, cube.attrs.get("source_path"))  # raises


def _band_list(cube: xr.DataArray, index: np.ndarray) -> str:
    """``"1513.6, 1690.9 nm"`` (``" ..."`` past eight), or ``"bands 4, 7"`` (1-based)
    where the scene has no wavelengths."""
    wavelength = np.asarray(cube["wavelength"].values, dtype=np.float64)[index]
    more = " ..." if index.size > 8 else ""
    if np.isfinite(wavelength).all():
        return ", ".join(f"{w:.1f}" for w in wavelength[:8]) + more + " nm"
    return "bands " + ", ".join(str(i + 1) for i in index[:8]) + more


def _spans(numbers: np.ndarray) -> str:
    """``"101–160"``, ``"1–10, 21–30"``: band numbers as runs (eight at most, then …)."""
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    runs = [(int(r[0]), int(r[-1])) for r in np.split(numbers, breaks)]
    text = ", ".join(f"{a}–{b}" if b != a else f"{a}" for a, b in runs[:8])
    return text + (", …" if len(runs) > 8 else "")


def _check_band_numbers(cube: xr.DataArray, detector) -> None:
    """Where neither side records wavelengths, warn when the scene's bands are not the file
    bands the model was fitted on: taken by position, ``train --bands 100:160`` applied to
    ``detect --bands 0:60`` scored other bands in silence (a median of 1.9e6 against 80)."""
    fitted = getattr(detector, "_fitted_band_numbers", None)
    now = np.asarray(cube["band"].values) if "band" in cube.coords else None
    if fitted is None or now is None or now.dtype.kind not in "iu" \
            or now.size != np.size(fitted) or np.array_equal(now, fitted):
        return
    warnings.warn(f"{cube.attrs.get('source_path') or 'scene'}: the model was fitted on the "
                  f"file's bands {_spans(np.asarray(fitted))} and this scene's are "
                  f"{_spans(now)}; with no wavelengths on either side they are taken by "
                  "position: unless this file holds those bands alone (cut by `hsad "
                  "convert --bands`), select them (--bands)", UserWarning, stacklevel=3)


def _with_model_flags(cube: xr.DataArray, good: np.ndarray) -> xr.DataArray:
    """``cube`` (the model's bands, other bad-band flags) with the flags the model was
    fitted under: bands the scene calls good and the model left out are set aside as at fit
    time; a band the model was fitted on that the scene marks bad is a
    :class:`ModelError`."""
    scene_good = good_band_mask(cube)
    if np.array_equal(scene_good, good):
        return cube
    lost = np.flatnonzero(good & ~scene_good)
    if lost.size:
        raise ModelError(f"the scene marks {lost.size} of the model's {int(good.sum())} bands "
                         f"bad ({_band_list(cube, lost)}); the model was fitted on them: "
                         "retrain it on this scene's good bands", cube.attrs.get("source_path"))
    return cube.assign_coords(good_band=cube["good_band"].copy(data=good))


def match_model_bands(cube, detector) -> xr.DataArray:
    """``cube`` with the bands a fitted ``detector`` was trained on, chosen by wavelength.

    A cube with as many bands as the model's scene had (the same bands, by position; for
    a neural model, only when the scene's wavelengths there are the model's within
    :data:`~hsad.detectors.scene_checks.WAVELENGTH_WARN_NM`) is used with the bad-band flags the
    model was fitted under: the bands it left out are set
    aside, and a band it needs that the scene marks bad is a :class:`ModelError` (so is a
    scene of another sensor's wavelengths, beyond
    :data:`~hsad.detectors.scene_checks.WAVELENGTH_REFUSE_NM`; nearer ones the detector checks).
    A neural model also takes a cube with its good-band count at its wavelengths as it is.
    Otherwise each of the model's wavelengths takes the scene's nearest band (a good band,
    when the model used only good ones); one farther than ``WAVELENGTH_REFUSE_NM`` is
    missing: a :class:`ModelError` names the missing wavelengths (of a statistics model,
    those it used: its bad bands may be missing, and stay bad). Detectors without a band
    record pass through.
    """
    cube = as_cube(cube)  # a numpy array or a bare DataArray too, as score takes them
    if not hasattr(detector, "wavelength_"):
        return cube
    wanted, good = _model_bands(detector)
    known = (np.isfinite(wanted).any(),
             np.isfinite(np.asarray(cube["wavelength"].values, dtype=np.float64)).any())
    if known[0] != known[1]:  # either side without wavelengths: nothing to check them by
        whose = "the scene has" if known[0] else "the model records"
        warnings.warn(f"{cube.attrs.get('source_path') or 'scene'}: {whose} no "
                      "wavelengths, so the model's bands are taken by position, unchecked",
                      UserWarning, stacklevel=2)
    elif not known[0]:
        _check_band_numbers(cube, detector)
    flags = _model_flags(detector, good)
    order = _reordered(cube, wanted, good, flags)
    if order is not None:  # the model's bands, stored in another order
        matched = cube.isel(band=order)
        return matched if good is None else _with_model_flags(matched, good)
    same_count = flags is not None and cube.sizes["band"] == flags.size
    if same_count and (_at_model_wavelengths(cube, detector, flags) if good is None
                       else not _moved_by_position(cube, wanted, good)):
        _check_same_sensor(cube, detector, flags)
        return _with_model_flags(cube, flags)
    if good is None and _fits(cube, detector):
        return cube
    path = cube.attrs.get("source_path")
    n_model, n_scene = wanted.size, cube.sizes["band"]
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if not np.isfinite(wanted).all():
        raise ModelError(f"the model was trained on {n_model} bands and the scene has "
                         f"{n_scene}; the model records no wavelengths to find its bands by",
                         path)
    candidates = np.flatnonzero(np.isfinite(scene) & (
        good_band_mask(cube) if good is None or good.all() else True))
    if candidates.size == 0:
        raise ModelError(f"the model was trained on {n_model} bands and the scene has "
                         f"{n_scene}, without wavelengths to find them by; select the "
                         "model's bands with --bands", path)
    distance = np.abs(scene[candidates][None, :] - wanted[:, None])
    nearest = candidates[distance.argmin(axis=1)]
    # a statistics model's bad bands hold its layout only: any band stands in for them
    needed = np.ones(n_model, bool) if good is None else good
    missing = wanted[needed & (distance.min(axis=1) > WAVELENGTH_REFUSE_NM)]
    clash = np.unique(nearest[needed]).size != int(needed.sum())
    if (missing.size or clash) and same_count and good is not None:
        _check_same_sensor(cube, detector, flags)  # another sensor's by position too: said so
    if missing.size:
        shown = ", ".join(f"{w:.1f}" for w in missing[:8]) + (" ..." if missing.size > 8 else "")
        raise ModelError(f"the scene lacks {missing.size} of the model's {n_model} "
                         f"wavelengths (no band within {WAVELENGTH_REFUSE_NM:g} nm): {shown} nm",
                         path)
    if clash:
        gap = distance.min(axis=1)
        own = np.zeros(n_model, bool)  # each scene band: the model band nearest to it
        for band in np.unique(nearest[needed]):
            takers = np.flatnonzero(needed & (nearest == band))
            own[takers[np.argmin(gap[takers])]] = True
        lone = wanted[needed & ~own]
        shown = ", ".join(f"{w:.1f}" for w in lone[:8]) + (" ..." if lone.size > 8 else "")
        raise ModelError(f"several of the model's {n_model} bands would read the same scene "
                         f"band: {lone.size} have no scene band of their own ({shown} nm); "
                         "the scene's bands are farther apart, or it marks some of the "
                         "model's bands bad", path)
    matched = cube.isel(band=nearest)
    if good is not None and (stand_in := ~needed & (distance.min(axis=1) > WAVELENGTH_WARN_NM)
                             ).any():  # no wavelength of their own: unknown, and bad
        wavelength = np.where(stand_in, np.nan, scene[nearest])
        matched = matched.assign_coords(wavelength=("band", wavelength))
    return matched if good is None else _with_model_flags(matched, good)


__all__ = ["match_model_bands"]
