"""The wrapping every detector's cube methods get (:class:`~hsad.detectors.base.BaseDetector`
applies it to each subclass): any cube-like argument taken as a cube, maps of an in-memory
cube returned computed, Ctrl-C stopping the worker threads, and ``fit`` recording the
scene's level and the training seed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import xarray as xr

from hsad.cube import MapShapeError, band_numbers
from hsad.errors import ParameterError

#: Detector methods whose first argument is a cube, wrapped by :func:`taking_any_cube` in
#: every subclass that defines them.
CUBE_METHODS = ("fit", "score", "fit_score", "score_stages", "residual")

_Method = TypeVar("_Method", bound=Callable[..., Any])


def taking_any_cube(method: _Method) -> _Method:
    """``method`` with its cube argument passed through :func:`hsad.cube.as_cube`, so that
    a numpy array, a cube loaded into memory or a ``(band, y, x)`` DataArray works as a cube
    (or is refused with a ParameterError), never as a raw AttributeError deep inside. The
    maps of a cube given in memory are returned computed, as the cube was.

    A ``KeyboardInterrupt`` (Ctrl-C, a notebook's "interrupt") stops the work left in the
    worker threads (:func:`hsad.stopping.stop_work`) before it goes on up: a signal reaches
    only the main thread, and the workers would otherwise compute on in the background."""

    @functools.wraps(method)
    def wrapper(self, cube, *args, **kwargs):
        from hsad.cube import as_cube
        from hsad.engine.sampling import shared_samples

        try:
            with shared_samples():  # the scene checks' samples: read once per call
                result = method(self, as_cube(cube), *args, **kwargs)
            return _computed(result) if _in_memory(cube) and result is not self else result
        except KeyboardInterrupt:
            from hsad.stopping import stop_work

            stop_work()
            raise
        except MapShapeError as exc:  # a plugin's score: the map named, not the detector
            raise ParameterError(f"{self.name}: {method.__name__}: {exc.problem}",
                                 exc.path) from None

    wrapper.takes_any_cube = True  # type: ignore[attr-defined]
    return cast(_Method, wrapper)


def _in_memory(cube) -> bool:
    """Whether ``cube`` is an array in memory (numpy, a DataArray loaded, ``make_cube`` of
    a numpy array), not a lazy one (a file, a dask array)."""
    if isinstance(cube, xr.DataArray):
        if cube.chunks is None:
            return getattr(cube.variable, "_in_memory", True)
        from hsad.cube import wraps_numpy

        return cube.attrs.get("source_path") is None and wraps_numpy(cube.data)
    return isinstance(cube, np.ndarray)


def _computed(result):
    """A map (or a dict of maps) of a cube given in memory, computed: a lazy one would read
    the caller's array at each use (recomputed each time, and changed when the array is).
    A (y, x, band) residual stays lazy: computing it would hold a second scene."""
    if isinstance(result, dict):
        return {k: _computed(v) for k, v in result.items()}
    if isinstance(result, xr.DataArray) and result.chunks is not None and result.ndim == 2:
        return result.compute()
    return result  # a residual cube stays lazy: as large as the scene, computed if asked


def recording_scene_level(fit):
    """``fit`` that then notes the fitted scene's per-band medians (``_fitted_scene_level``,
    for :meth:`BaseDetector._check_level`), dropped first so that a failed fit leaves none;
    a fit that calls its parent's (itself recorded) reads the scene's sample once. A model
    loaded from a file and fitted again is today's: its file's format goes. The ``seed``
    it was fitted with is kept (``training_seed_``): a seed set afterwards changes only
    what scoring draws, and a model file records both. A fit that fails (a diverged
    network, an interrupt) leaves the detector's state as it was before it; one that
    succeeds drops the ``threshold_`` of a map the earlier fit scored."""

    @functools.wraps(fit)
    def wrapper(self, cube, *args, **kwargs):
        self._check_types()  # a value the model file could not keep: refused before any work
        before = dict(self.__dict__)
        self.__dict__.pop("_fitted_scene_level", None)
        self.__dict__.pop("_fitted_scene_name", None)
        self.__dict__.pop("_fitted_band_numbers", None)
        self.__dict__.pop("model_format_", None)
        self.__dict__.pop("threshold_", None)  # the last map's threshold: the old fit's
        try:
            result = fit(self, cube, *args, **kwargs)
        except BaseException:  # a failed fit leaves the model as it was: a re-fit that
            self.__dict__.clear()  # diverged had left the new band count and scaler
            self.__dict__.update(before)  # beside the old networks
            raise
        if "_fitted_scene_level" not in self.__dict__:
            self._remember_scene_level(cube)
        if "_fitted_band_numbers" not in self.__dict__:
            self._fitted_band_numbers = band_numbers(cube)
        self._fitted_params = self._fit_params()
        seed = self.get_params().get("seed")  # kept: seed may change after fit
        self.training_seed_ = (int(seed) if isinstance(seed, (int, np.integer))
                               and not isinstance(seed, bool) and 0 <= seed <= 2**32 - 1
                               else None)  # a plugin's Generator or wider seed: not recorded
        return result

    return wrapper
