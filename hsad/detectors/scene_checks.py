"""What a fitted detector checks of the scene it is given: the band layout it was fitted
on, the wavelengths of a model's bands and the scale of the data (the mixin
:class:`SceneChecks`, part of :class:`~hsad.detectors.base.BaseDetector`)."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.errors import ModelError, ParameterError

#: a model applied to a scene whose wavelengths differ by more than this (nm) warns ...
WAVELENGTH_WARN_NM = 2.0
#: ... and by more than this is refused (another sensor or band set)
WAVELENGTH_REFUSE_NM = 20.0
#: how a model's bands are taken from another scene in Python (hsad detect --model does it)
MATCH_HINT = (" (in Python, hsad.cube.model_bands.match_model_bands(cube, model) takes a "
              "model's bands from a scene by wavelength)")


def wavelength_shift(scene: np.ndarray, model: np.ndarray) -> float:
    """The largest difference (nm) between two bands' wavelengths, band by band, where both
    are known (0 where none is)."""
    scene, model = np.asarray(scene, np.float64), np.asarray(model, np.float64)
    both = np.isfinite(scene) & np.isfinite(model)
    return float(np.abs(scene[both] - model[both]).max()) if both.any() else 0.0


def unit_ratio(scene: np.ndarray, model: np.ndarray) -> float | None:
    """The power of ten (not 1) that the model's wavelengths are of the scene's in every band
    where both are known, within 0.5 %; None otherwise."""
    scene, model = np.asarray(scene, np.float64), np.asarray(model, np.float64)
    both = np.isfinite(scene) & np.isfinite(model) & (scene > 0) & (model > 0)
    if not both.any() or scene.shape != model.shape:
        return None
    ratio = model[both] / scene[both]
    power = 10.0 ** np.round(np.log10(np.median(ratio)))
    if power == 1.0 or not np.all(np.abs(ratio / power - 1) < 5e-3):
        return None
    return float(power)


def check_wavelengths(scene: np.ndarray, model: np.ndarray, path=None) -> None:
    """Refuse (ModelError) or warn when a scene's wavelengths differ from a model's."""
    diff = wavelength_shift(scene, model)
    if diff > WAVELENGTH_REFUSE_NM:
        if (ratio := unit_ratio(scene, model)) is not None:
            why = " (hsad before 0.3.14 read ENVI's Angstroms as nanometres)" * (ratio == 10)
            raise ModelError(f"the model's wavelengths are {ratio:g} times the scene's, band "
                             f"for band: the same bands read in another unit{why}; retrain the "
                             "model, or correct the `wavelength units` of one header", path)
        raise ModelError(f"scene wavelengths differ from the model's by up to {diff:.1f} nm "
                         f"(> {WAVELENGTH_REFUSE_NM} nm): a different band set{MATCH_HINT}",
                         path)
    if diff > WAVELENGTH_WARN_NM:
        warnings.warn(f"{path or 'scene'}: wavelengths differ from the model's by up to "
                      f"{diff:.1f} nm", UserWarning, stacklevel=4)


def flags_moved(fitted: np.ndarray, scene: np.ndarray) -> str:
    """Where a scene's bad-band flags differ from a model's of the same band count, in
    words ("" where they do not)."""
    fitted, scene = np.asarray(fitted, dtype=bool), np.asarray(scene, dtype=bool)
    moved = np.flatnonzero(fitted != scene) if fitted.size == scene.size else ()
    if not len(moved):
        return ""
    listed = ", ".join(str(int(i) + 1) for i in moved[:8]) + (", ..." if len(moved) > 8 else "")
    return f"; the bad-band flags differ at band {listed} (1-based)"


def check_flag_layout(scene_good: np.ndarray, scene_wl: np.ndarray, model_good: np.ndarray,
                      model_wl: np.ndarray, name: str, path=None) -> None:
    """ModelError when a scene of the model's band count flags other bands bad than the
    model was fitted with, so that its good bands, taken by position, are others than the
    model's: unless both sets of wavelengths are known and agree (another band layout of
    the model's wavelengths, which a neural model takes as it is)."""
    moved = flags_moved(model_good, scene_good)
    if not moved:
        return
    scene_wl = np.asarray(scene_wl, dtype=np.float64)[np.asarray(scene_good, dtype=bool)]
    model_wl = np.asarray(model_wl, dtype=np.float64)
    if scene_wl.size == model_wl.size and np.isfinite(scene_wl).all() \
            and np.isfinite(model_wl).all() and wavelength_shift(scene_wl, model_wl) \
            <= WAVELENGTH_WARN_NM:
        return
    raise ModelError(f"{name}: the scene's good bands are not those the model was fitted "
                     f"on{moved}{MATCH_HINT}", path)


def _declared_factor(cube: xr.DataArray) -> float | None:
    """The scale factor the file declares and ``apply_scale`` would apply: an ENVI or NEON
    ``reflectance scale factor``, or 1 / its band scale (a GeoTIFF's, ENVI's ``data gain
    values``: one for every band, no offset, what ``hsad convert`` writes such a factor
    as), or None."""
    if factor := cube.attrs.get("reflectance_scale_factor"):
        return factor
    from hsad.cube import band_scaling

    own = band_scaling(cube)
    if own is None:
        return None
    scales, offsets = (np.asarray(values, dtype=np.float64) for values in own)
    if np.ptp(scales) == 0 and not offsets.any() and 0 < scales[0] < 1:
        return float(1 / scales[0])
    return None


class SceneChecks:
    """The checks a fitted detector makes of the cube it scores (band layout, wavelengths,
    the data's scale); :meth:`_training_level` is where a model says what scale it learnt."""

    def _fitted_bands(self, cube: xr.DataArray, *attrs: str):
        """``cube``'s data on the bands the detector was fit on (``bands_``), after checking
        that ``fit`` has set ``attrs`` and that the cube has that band layout."""
        self._check_fitted(*attrs)
        self._check_layout(cube)
        self._check_level(cube, self.bands_)
        return cube.data if self.bands_.all() else cube.data[:, :, self.bands_]

    def _check_layout(self, cube: xr.DataArray) -> None:
        """The band layout the detector was fit on (``bands_``), and its wavelengths where
        it noted them (``wavelength_``: :func:`check_wavelengths`)."""
        self._check_bands(cube, self.bands_)
        if hasattr(self, "wavelength_"):
            check_wavelengths(np.asarray(cube["wavelength"].values, dtype=np.float64),
                              self.wavelength_, cube.attrs.get("source_path"))

    # ---- the scene's scale against the model's (hsad.detectors.level_check) ----------
    def _training_level(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The per-band centre and spread of the data the model was fitted on (fitted bands),
        or None where the model keeps no such statistics."""
        return None

    def _level_bands(self) -> np.ndarray:
        """The bands (a boolean mask of the fitted cube's) that :meth:`_training_level`
        describes."""
        return self.bands_

    def _scene_level(self, cube: xr.DataArray, bands: np.ndarray,
                     values: np.ndarray | None = None) -> np.ndarray:
        from hsad.detectors.level_check import scene_medians

        return scene_medians(cube.data, bands, cube.attrs.get("nodata"), values)

    def _remember_scene_level(self, cube: xr.DataArray) -> None:
        """After fit: the fitted scene's per-band medians, where the model keeps a level."""
        if self._training_level() is not None:
            self._fitted_scene_level = self._scene_level(cube, self._level_bands())
            self._fitted_scene_name = getattr(cube.data, "name", None)  # a dask graph's token

    def _check_level(self, cube: xr.DataArray, bands: np.ndarray,
                     values: np.ndarray | None = None) -> None:
        """Warn when ``cube`` (on ``bands``, those the model reads) lies on another scale
        than the data the model was fitted on, and than the scene it was fitted on
        (``values``: the scene's even sample on ``bands``, when drawn already); and, as
        ``fit`` warns of its scene, when pixels hold nodata in some bands or an undeclared
        fill value (:func:`hsad.engine.data_checks.check_partial_nodata`)."""
        level = self._training_level()
        if level is None:
            return
        name = getattr(cube.data, "name", None)
        if name is not None and name == getattr(self, "_fitted_scene_name", None) \
                and np.array_equal(bands, self._level_bands()):
            return  # the scene just fitted (fit_score): its level is the fitted scene's
        from hsad.detectors.level_check import LEVEL_SAMPLE, as_values, check_scene_level
        from hsad.engine.data_checks import PARTIAL_NODATA_SAMPLE, check_partial_nodata
        from hsad.engine.sampling import even_sample

        # one even sample serves both checks: a scene of up to PARTIAL_NODATA_SAMPLE pixels
        # whole (every saturated pixel counted), a larger one the level check's 4096 (the
        # screening's own 65,536, in small windows, cost more than scoring a lazy scene)
        pixels = cube.sizes["y"] * cube.sizes["x"]
        size = pixels if pixels <= PARTIAL_NODATA_SAMPLE else LEVEL_SAMPLE
        raw = even_sample(cube.data, size)[:, np.asarray(bands, dtype=bool)]
        check_partial_nodata(cube, self.name, bands, sample=raw)
        if values is None:
            values = as_values(raw, cube.attrs.get("nodata"))

        factor = None if cube.attrs.get("scale_applied") else _declared_factor(cube)
        check_scene_level(self._scene_level(cube, bands, values), *level, self.name,
                          cube.attrs.get("source_path"),
                          getattr(self, "_fitted_scene_level", None), factor)

    def _check_bands(self, cube: xr.DataArray, bands: np.ndarray) -> None:
        """Raise ``ParameterError`` unless ``cube`` has the band layout the detector was fit on."""
        from hsad.cube import good_band_mask

        if cube.sizes["band"] != bands.size or not np.array_equal(good_band_mask(cube), bands):
            raise ParameterError(
                f"{self.name}: fitted on {int(bands.sum())} good bands of {bands.size}, "
                f"but the cube has {int(good_band_mask(cube).sum())} of {cube.sizes['band']}"
                f"{flags_moved(bands, good_band_mask(cube))}{MATCH_HINT}",
                cube.attrs.get("source_path"),
            )
