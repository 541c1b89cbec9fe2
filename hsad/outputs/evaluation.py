"""Evaluate a score-map file against a ground-truth file (the work behind ``hsad evaluate``)."""

from __future__ import annotations

import contextlib
import os
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from hsad.cube import same_place, transform_of
from hsad.cube.subset import recorded_frame
from hsad.cube.vector_masks import is_vector
from hsad.errors import ParameterError
from hsad.io import detect_format
from hsad.io.maps import read_single_band, read_truth
from hsad.outputs.metrics import Evaluation, check_truth, evaluate


def _grid(cube) -> str:
    return f"{cube.rio.crs} {tuple(round(v, 6) for v in tuple(transform_of(cube))[:6])}"


def _tagged_window(scores_path, s_cube) -> tuple[int, int, int, int] | None:
    """``(r0, c0, scene rows, scene cols)`` from the ``hsad_window`` and ``hsad_window_of``
    tags of a map ``hsad detect --srcwin/--projwin`` wrote, when the window's size is the
    map's (a map cut again by another tool keeps the tags of the old window); else None."""
    if s_cube.attrs.get("source_format") != "geotiff":
        return None
    from hsad.io.window import frame_from_tags, window_from_tags
    from hsad.outputs.provenance import read_provenance

    tags, shape = read_provenance(scores_path), (s_cube.sizes["y"], s_cube.sizes["x"])
    within = window_from_tags(tags, shape)
    if within is None or frame_from_tags(tags, within, shape) is None:
        return None  # stale or malformed: the tags are not used, as the reader drops them
    return within


def _window_of(scores_path, s_cube, t_cube, truth_shape) -> tuple[int, int] | None:
    """Row and column offsets of the score map inside a larger ground truth: from the grids
    when both are georeferenced (:func:`hsad.cube.placement.offsets_in`), else from the map's
    window tags (:func:`_tagged_window`), when the truth has the size of the scene the
    window was cut from; None if neither places it."""
    from hsad.cube.placement import offsets_in

    if t_cube is not None and (placed := offsets_in(s_cube, t_cube)) is not None:
        return placed
    tagged = _tagged_window(scores_path, s_cube)
    if tagged is None:
        return None
    if tagged[2:] == tuple(truth_shape):
        return tagged[:2]
    frame = recorded_frame(s_cube.attrs)  # on the grid of the file it was detected on
    if frame is not None and tuple(frame[2:]) == tuple(truth_shape):
        return tagged[0] - frame[0], tagged[1] - frame[1]
    return None  # a truth of another scene than the one the window was cut from


def _truth_for(t_cube, scores_path, s_cube, shape, truth_path):
    """A lazy ground-truth raster cut to the score map (of its size, or a larger truth the
    map is a window of: :func:`_window_of`), or refused, before any of it is read."""
    got = (t_cube.sizes["y"], t_cube.sizes["x"])
    if got == tuple(shape):
        return t_cube
    offsets = _window_of(scores_path, s_cube, t_cube, got)
    if offsets is None:
        grids = "" if t_cube.rio.crs is None or s_cube.rio.crs is None else \
            f", and the map is no window of its grid: {_grid(t_cube)} vs {_grid(s_cube)}"
        raise ParameterError(f"ground truth is {got[0]}x{got[1]} but the score map "
                             f"{scores_path} is {shape[0]}x{shape[1]}{grids}", truth_path)
    r0, c0 = offsets
    return t_cube.isel(y=slice(r0, r0 + shape[0]), x=slice(c0, c0 + shape[1]))


def _placed_window(scores_path, s_cube):
    """The score map, with the window of the scene it maps (its window tags) noted where
    its grid cannot place geometries itself (a scene without georeference, whose polygons
    are drawn in the whole scene's pixel frame)."""
    from hsad.cube.subset import WINDOW_ATTR

    if WINDOW_ATTR in s_cube.attrs or (tagged := _tagged_window(scores_path, s_cube)) is None:
        return s_cube
    placed = s_cube.copy()
    placed.attrs[WINDOW_ATTR] = tagged
    return placed


def evaluate_files(scores_path: str | os.PathLike, truth_path: str | os.PathLike,
                   scores_key: str | None = None, truth_key: str | None = None,
                   truth_read: tuple | None = None,
                   ) -> tuple[Evaluation, np.ndarray, np.ndarray]:
    """Read both maps, check they match, and return ``(Evaluation, scores, truth)``
    (the maps as float32 where that holds the score file's values exactly, else float64;
    NaN where left out).
    ``truth_read``: the truth as :func:`hsad.io.maps.read_truth` read it already (several
    maps against one truth read it once).

    Shapes must match; when both maps are georeferenced (a CRS or a transform), their
    grids must match too (:func:`hsad.cube.same_place`). A ground truth of a larger scene
    is cut to the score map's window when both grids place it, or the map's
    ``hsad_window`` tag does (a map of a spatial subset, :mod:`hsad.cube.subset`). Raises
    ParameterError otherwise, when a class has no valid pixel, or when the score map is
    the ground truth's own raster (a MAT file may hold both).
    """
    return _evaluate_file(scores_path, truth_path, scores_key, truth_key, truth_read)[:3]


def _evaluate_file(scores_path, truth_path, scores_key, truth_key, truth_read,
                   several: bool = False):
    """:func:`evaluate_files`, and the score map's one-band cube (its georeference);
    ``several``: one of several maps, which takes ``scores_key`` only if it is a MAT file."""
    if os.path.realpath(scores_path) == os.path.realpath(truth_path) and \
            detect_format(scores_path, "score map") != "mat":  # a MAT file may hold both
        raise ParameterError("the ground truth's own file given as a score map", scores_path)
    if _same_mat_variable(scores_path, truth_path, scores_key, truth_key):
        raise ParameterError("the ground truth's own variable given as a score map",
                             scores_path)
    if several and scores_key is not None and detect_format(scores_path, "score map") != "mat":
        scores_key = None  # one key for several maps names the MAT files' variable
    scores, s_cube = read_single_band(scores_path, scores_key, exact32=True)

    if truth_read is None and is_vector(truth_path):  # drawn on the map's own grid
        truth_read = read_truth(truth_path, grid=_placed_window(scores_path, s_cube),
                                region="the score map")
    truth, t_cube = truth_read or read_truth(
        truth_path, truth_key, fit=partial(_truth_for, scores_path=scores_path, s_cube=s_cube,
                                           shape=scores.shape, truth_path=truth_path))
    if scores.shape != truth.shape and (
            offsets := _window_of(scores_path, s_cube, t_cube, truth.shape)) is not None:
        r0, c0 = offsets
        truth = truth[r0:r0 + scores.shape[0], c0:c0 + scores.shape[1]]
        if t_cube is not None:
            t_cube = t_cube.isel(y=slice(r0, r0 + scores.shape[0]),
                                 x=slice(c0, c0 + scores.shape[1]))
    if scores.shape != truth.shape:
        raise ParameterError(
            f"ground truth is {truth.shape[0]}x{truth.shape[1]} but the score map "
            f"{scores_path} is {scores.shape[0]}x{scores.shape[1]}", truth_path)
    if t_cube is not None and not same_place(transform_of(s_cube), s_cube.rio.crs,
                                             transform_of(t_cube), t_cube.rio.crs,
                                             scores.shape):
        raise ParameterError(f"ground truth is not on the grid of the score map "
                             f"{scores_path}: {_grid(t_cube)} vs {_grid(s_cube)}", truth_path)
    if not np.isfinite(scores).any():
        raise ParameterError("the score map has no valid (finite, not nodata) pixel",
                             scores_path)
    try:
        check_truth(truth, nodata=None if t_cube is None else t_cube.attrs.get("nodata"))
        result = evaluate(scores, truth)
    except ParameterError as exc:
        raise ParameterError(exc.problem, exc.path or truth_path) from exc
    return result, scores, truth, s_cube


def _same_mat_variable(scores_path, truth_path, scores_key, truth_key) -> bool:
    """Whether a MAT file given as both the score map and the truth would be read as the
    same variable for both (a truth-only file among ``*.mat`` maps)."""
    if os.path.realpath(scores_path) != os.path.realpath(truth_path) or \
            detect_format(scores_path, "score map") != "mat":
        return False
    from hsad.errors import HsadError
    from hsad.io.matlab import mat_map_name

    try:
        return mat_map_name(scores_path, scores_key, "score map") == mat_map_name(
            truth_path, truth_key, "ground truth")
    except HsadError:
        return False  # the reads below say why


def _window_tag(path, cube) -> str | None:
    """The ``hsad_window`` tag of a map ``hsad detect`` wrote of a window (`--srcwin`,
    `--projwin`), or None."""
    if cube.attrs.get("source_format") != "geotiff":
        return None
    from hsad.outputs.provenance import read_provenance

    return read_provenance(path).get("hsad_window") or None


def _other_windows(a: str | None, b: str | None) -> bool:
    """Whether two maps' window tags name different windows (a map without one, e.g. not
    written by hsad, is placed by its grid alone)."""
    return a is not None and b is not None and a != b


def _where(path, cube) -> str:
    """A map's size, window and grid, as an error shows it."""
    tag = _window_tag(path, cube)
    return (f"{cube.sizes['y']}x{cube.sizes['x']} pixels"
            + (f", window {tag}" if tag else "") + f", grid {_grid(cube)}")


@contextlib.contextmanager
def _once(said: set):
    """Warnings of the block passed on, each text only once across the blocks sharing
    ``said``."""
    try:
        with warnings.catch_warnings(record=True) as caught:  # the filters as they are
            yield
    finally:  # also those said before an error
        for w in caught:
            if (w.category, str(w.message)) not in said:
                said.add((w.category, str(w.message)))
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def map_names(paths) -> list[str]:
    """Short, distinct names of score map files: the file names without extension, or the
    paths as given where two share one."""
    stems = [Path(p).stem for p in paths]
    names = [stem if stems.count(stem) == 1 else str(p) for stem, p in zip(stems, paths,
                                                                            strict=True)]
    # a stem may still equal another map's path (`x`, `x.tif`, `x.tif.tif`): number them
    return [name if names.count(name) == 1 else f"{name} [{i + 1}]"
            for i, name in enumerate(names)]


def compare_files(scores_paths, truth_path, scores_key: str | None = None,
                  truth_key: str | None = None, common: bool = False
                  ) -> tuple[dict[str, Evaluation], dict[str, np.ndarray], np.ndarray]:
    """Several score maps against one ground truth: ``({name: Evaluation}, {name: scores},
    truth)``, each map read and checked as :func:`evaluate_files` does (errors name it).

    ``common``: evaluate every map on the pixels all of them score (a map without a score
    where another has one is otherwise judged on other pixels); without it, a
    :class:`DifferentPixelsWarning` says when the maps' pixels differ.
    """
    seen = set()
    for path in scores_paths:
        if (key := os.path.realpath(path)) in seen:
            raise ParameterError("score map given twice", path)
        seen.add(key)
    names = map_names(scores_paths)
    # for each map, cut to it before it is read (a truth of 20 000² pixels read whole for
    # two maps of 60 × 50 took 4.1 GB); polygons are drawn on each map's own grid
    read = None
    results, maps, truth = {}, {}, None
    said: set = set()
    for name, path in zip(names, scores_paths, strict=True):
        with _once(said):  # polygons drawn on each map warn alike: say it once
            try:
                results[name], maps[name], theirs, grid = _evaluate_file(
                    path, truth_path, scores_key, truth_key, read, several=True)
            except ParameterError as exc:  # the truth's file named: say which map too
                if exc.path is None or os.fspath(exc.path) == os.fspath(path):
                    raise
                raise ParameterError(f"{exc.problem} (score map {os.fspath(path)})",
                                     exc.path) from exc
        if truth is None:
            truth, first, first_grid = theirs, path, grid
        elif (theirs.shape != truth.shape
              or not np.array_equal(theirs, truth, equal_nan=True)
              or not same_place(transform_of(grid), grid.rio.crs, transform_of(first_grid),
                                first_grid.rio.crs, theirs.shape)
              or _other_windows(_window_tag(path, grid), _window_tag(first, first_grid))):
            # the maps' own grids and windows too: a truth without georeference (a MAT
            # file) cannot tell two windows of one scene apart
            raise ParameterError(f"covers another part of the scene than {first} "
                                 f"({_where(path, grid)} against {_where(first, first_grid)})"
                                 ": compare maps of one window", path)
    scored = {name: np.isfinite(m) for name, m in maps.items()}
    everywhere = np.logical_and.reduce(list(scored.values()))
    if common:
        for name in names:
            if not np.array_equal(scored[name], everywhere):
                maps[name] = np.where(everywhere, maps[name], np.nan)
                try:
                    results[name] = evaluate(maps[name], truth)
                except ParameterError as exc:
                    raise ParameterError(f"on the pixels every map scores: {exc.problem}",
                                         truth_path) from exc
    elif any(not np.array_equal(s, everywhere) for s in scored.values()):
        counts = ", ".join(f"{name} {int(s.sum())}" for name, s in scored.items())
        warnings.warn(f"the maps score different pixels ({counts}): each is judged on its "
                      "own; give --common-pixels (common=True) to compare them on the pixels "
                      "every map scores", DifferentPixelsWarning, stacklevel=2)
    return results, maps, truth


class DifferentPixelsWarning(UserWarning):
    """Score maps compared on different sets of pixels."""


__all__ = ["compare_files", "DifferentPixelsWarning", "evaluate_files", "map_names"]
