"""Which variable of a MAT file is what: the variables listed without reading them
(:func:`mat_variables`), the cube (3-D numeric, found by name or size), the ground truth
on its grid (found by name), and the wavelength and bad-band vectors of its bands. The
errors name what the file holds."""

from __future__ import annotations

import os
import re
import warnings

import h5py
import numpy as np
import scipy.io as sio

from hsad.errors import FileFormatError
from hsad.io.mat_v5 import check_v5_tags, complex_names

#: Names tried, in order and ignoring case, for the cube and the ground truth.
CUBE_KEYS = ("data", "hsi", "cube", "img", "image", "X", "Y", "hyperspectral")
#: names that say "the cube" outright (not ``img``/``image``, also a preview's): the only
#: 3-D array of a file so named is its cube at any band count (``write_mat``'s ``data``)
NAMED_CUBES = ("data", "hsi", "cube", "hyperspectral")
GT_KEYS = ("map", "hsi_gt", "groundtruth", "ground_truth", "gt", "mask", "label", "labels")
WAVELENGTH_KEYS = ("wavelength", "wavelengths", "wl", "lambda")
#: a bad-band list (ENVI's ``bbl``: 1 good, 0 bad), as :mod:`hsad.io.mat_writer` writes it
BBL_KEYS = ("bbl",)
#: Other ground-truth names: ``gt`` as a word or ending (``Salinas_gt``, ``PlaneGT``,
#: ``tgt``, not ``length`` nor ``PATHLENGTH``), or one of these words inside
#: (``anomaly_map``). Not ``mask`` inside a name: a ``cloud_mask`` is no ground truth.
_TRUTH_NAME = re.compile(
    r"(?i:(?:^|[^a-z])gt|gt$|truth|map|label|target|anomal)|(?<![A-Z])GT(?![A-Z])|[a-z]GT$")
#: the names among those that say "ground truth" outright, taken before the others (an
#: ``anomaly_map`` beside a ``Sandiego_gt`` is likelier a detector's output)
_TRUTH_WORD = re.compile(r"(?i:(?:^|[^a-z])gt|gt$|truth)|(?<![A-Z])GT(?![A-Z])|[a-z]GT$")
#: 3-D arrays with at most this many bands (RGB previews, a (rows, cols, 1) ground truth)
#: are not taken for the cube unless named (``key=``), or the file's only 3-D array is
#: named as a cube (:data:`NAMED_CUBES`).
MAX_PREVIEW_BANDS = 3
#: the MATLAB classes of real numeric arrays
NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
           "int64", "uint64"}
_SKIP_H5 = ("#refs#", "#subsystem#")


def _variables(path: str, hdf5: bool) -> list[tuple[str, tuple, str]]:
    """``(name, MATLAB shape, MATLAB class)`` of each top-level variable."""
    try:
        if not hdf5:
            cplx = complex_names(path)
            return [(n, tuple(s), "complex" if n in cplx else c)
                    for n, s, c in sio.whosmat(path)]
        out = []
        with h5py.File(path, "r") as f:
            for name, obj in f.items():
                if name in _SKIP_H5:
                    continue
                cls = obj.attrs.get("MATLAB_class", b"")
                cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                if isinstance(obj, h5py.Group):  # a sparse matrix (CSC), a struct or object
                    if "MATLAB_sparse" in obj.attrs and "jc" in obj:
                        shape = (int(obj.attrs["MATLAB_sparse"]), obj["jc"].shape[0] - 1)
                        out.append((name, shape, "sparse"))
                    else:
                        out.append((name, (1, 1), cls or "struct"))
                    continue
                if obj.dtype.names or "MATLAB_empty" in obj.attrs:
                    cls = "complex" if obj.dtype.names else "empty"
                out.append((name, tuple(obj.shape[::-1]), cls))
        return out
    except Exception as exc:  # noqa: BLE001  scipy/h5py raise many types on bad files
        raise FileFormatError(f"not a readable MAT file ({type(exc).__name__}: {exc})",
                              path) from exc


def probe(p: str) -> tuple[bool, list[tuple[str, tuple, str]]]:
    """``(is v7.3, variables)`` of a MAT file, its v5 element tags checked first."""
    hdf5 = h5py.is_hdf5(p)
    if not hdf5:
        check_v5_tags(p)
    return hdf5, _variables(p, hdf5)


def mat_variables(path: str | os.PathLike) -> list[tuple[str, tuple, str]]:
    """``(name, MATLAB shape, MATLAB class)`` of each top-level variable of a MAT file."""
    return probe(os.fspath(path))[1]


def listing(variables) -> str:
    return ", ".join(f"{n} ({'x'.join(map(str, s))} {c})" for n, s, c in variables) or "none"


def _by_name(names: list[str], wanted) -> str | None:
    lower = {n.lower(): n for n in names}
    for w in wanted:
        if w.lower() in lower:
            return lower[w.lower()]
    return None


def cube_key(variables, key: str | None, path: str, warn: bool = True) -> str:
    """The cube's variable: ``key``, or found by size and name (:data:`CUBE_KEYS`); with
    ``warn``, a warning names the candidates when there are several."""
    shapes = {n: (s, c) for n, s, c in variables}
    if key is not None:
        if key not in shapes:
            raise FileFormatError(f"no variable {key!r}; variables: {listing(variables)}", path)
        shape, cls = shapes[key]
        if len(shape) != 3 or cls not in NUMERIC:
            raise FileFormatError(f"variable {key!r} is {'x'.join(map(str, shape))} {cls}, "
                                  "not a 3-D numeric cube", path)
        return key
    cands = [n for n, s, c in variables
             if len(s) == 3 and c in NUMERIC and s[2] > MAX_PREVIEW_BANDS]
    solid = [n for n, s, c in variables if len(s) == 3 and c in NUMERIC]
    if not cands and len(solid) == 1 and solid[0].lower() in NAMED_CUBES:
        return solid[0]  # a cube of a few bands, as hsad's writer names it: no preview
    # a complex cube is named as the reason (not "more than 3 bands"): one of more than 3
    # bands beside anything, one of fewer alone
    complex_cubes = [n for n, s, c in variables if len(s) == 3 and c == "complex"]
    wide = [n for n in complex_cubes if shapes[n][0][2] > MAX_PREVIEW_BANDS]
    if not cands and (wide or (complex_cubes and not solid)):
        named = (wide or complex_cubes)[0]
        raise FileFormatError(f"{named!r} is a complex array: hsad reads real cubes (take its "
                              "magnitude or real part in MATLAB); variables: "
                              f"{listing(variables)}", path)
    if not cands:
        raise FileFormatError(f"no 3-D numeric array with more than {MAX_PREVIEW_BANDS} bands "
                              "to use as the cube (name it with key= / --key if it is there); "
                              f"variables: {listing(variables)}", path)
    size = max(int(np.prod(shapes[n][0])) for n in cands)
    largest = [n for n in cands if int(np.prod(shapes[n][0])) == size]
    found = _by_name(largest, CUBE_KEYS) or largest[0]
    if warn and len(cands) > 1:
        warnings.warn(f"{path}: several variables could be the cube ("
                      f"{', '.join(f'{n} {dims(shapes[n][0])}' for n in cands)}); took the "
                      f"largest, {found!r}: name it with --key (key= in Python)", UserWarning,
                      stacklevel=4)
    return found


def plane(shape: tuple) -> tuple:
    """A MATLAB shape without trailing singleton dimensions beyond two: (r, c, 1) -> (r, c)."""
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return tuple(shape)


def maps_of(variables) -> dict[str, tuple]:
    """The 2-D numeric, logical or sparse variables (trailing singletons dropped): name -> shape."""
    return {n: plane(s) for n, s, c in variables
            if c in NUMERIC | {"logical", "sparse"} and len(plane(s)) == 2}


def _truth_by_name(names, path: str | None = None) -> str | None:
    """A ground truth among ``names``: a listed name, else one :data:`_TRUTH_NAME` finds
    (one :data:`_TRUTH_WORD` finds first). With ``path``, a warning when names of either
    kind leave a choice (the file's others are named)."""
    names = list(names)
    listed = _by_name(names, GT_KEYS)
    matches = [n for n in names if _TRUTH_NAME.search(n)
               or n.lower() in GT_KEYS]  # a listed name takes the others' place first
    found = listed or next((n for n in matches if _TRUTH_WORD.search(n)), None) or \
        next(iter(matches), None)
    if path is not None and len(matches) > 1:
        warnings.warn(f"{path}: several variables could be the ground truth "
                      f"({', '.join(matches)}); took {found!r}: name it with --truth-key "
                      "(gt_key= in Python)", UserWarning, stacklevel=4)
    return found


def truth_key(variables, shape: tuple | None, gt_key: str | None, path: str,
            strict: bool) -> str | None:
    """The ground-truth variable on a ``shape`` (rows, cols) grid (any 2-D one when None).

    ``strict``: a ground truth found only transposed is an error, not None.
    """
    maps = maps_of(variables)
    if gt_key is not None:
        if gt_key not in {n for n, _, _ in variables}:
            raise FileFormatError(f"no variable {gt_key!r}; variables: {listing(variables)}",
                                  path)
        if gt_key not in maps:
            raise FileFormatError(f"variable {gt_key!r} is not a 2-D numeric or logical map; "
                                  f"variables: {listing(variables)}", path)
        if shape is not None and maps[gt_key] != tuple(shape):
            raise FileFormatError(f"ground truth {gt_key!r} is {dims(maps[gt_key])}, not "
                                  f"{dims(shape)} like the cube{_transposed(maps[gt_key], shape)}",
                                  path)
        return gt_key
    found = _truth_by_name((n for n, s in maps.items() if shape is None or s == tuple(shape)),
                           path if strict else None)  # a warning where the truth is used
    if found is None and strict and shape is not None:
        flipped = _truth_by_name(n for n, s in maps.items() if s == tuple(shape)[::-1])
        if flipped is not None:
            raise FileFormatError(f"ground truth {flipped!r} is {dims(maps[flipped])}, not "
                                  f"{dims(shape)} like the cube: transposed?", path)
    return found


def truth_off_grid(path: str | os.PathLike, shape: tuple[int, int]) -> str | None:
    """Why a labelled file's ground truth is not found on the cube's ``shape``: a variable
    named as a ground truth on another grid (its name and size), or None."""
    maps = maps_of(probe(os.fspath(path))[1])
    other = _truth_by_name(n for n, s in maps.items() if s != tuple(shape))
    if other is None:
        return None
    return (f"ground truth {other!r} is {dims(maps[other])}, not {dims(shape)} like the "
            f"cube{_transposed(maps[other], shape)}")


def dims(shape) -> str:
    return "x".join(map(str, shape))


def _transposed(found: tuple, wanted: tuple) -> str:
    return ": transposed?" if tuple(found) == tuple(wanted)[::-1] else ""


def check_band_axis(variables, ckey: str, path: str) -> None:
    """Refuse a cube stored bands first: a ground truth on its last two dimensions."""
    rows, cols, bands = dict((n, s) for n, s, _ in variables)[ckey]
    maps = maps_of(variables)
    if _truth_by_name(n for n, s in maps.items() if s == (rows, cols)) is not None:
        return
    other = _truth_by_name(n for n, s in maps.items() if s == (cols, bands))
    if other is not None:
        raise FileFormatError(
            f"cube {ckey!r} is {rows}x{cols}x{bands} and the ground truth {other!r} is "
            f"{cols}x{bands}: the cube seems stored bands first; hsad reads (rows, cols, "
            "bands): save it as rows x cols x bands (permute(data, [2 3 1]) in MATLAB)", path)


def band_vector_key(variables, bands: int, names=WAVELENGTH_KEYS,
                    classes=NUMERIC) -> str | None:
    """A vector of ``bands`` values of one of ``classes`` with one of ``names``, or None."""
    cands = [n for n, s, c in variables if c in classes and int(np.prod(s)) == bands
             and sum(d > 1 for d in s) <= 1]
    return _by_name(cands, names)


__all__ = ["BBL_KEYS", "CUBE_KEYS", "GT_KEYS", "MAX_PREVIEW_BANDS", "NUMERIC", "WAVELENGTH_KEYS",
           "band_vector_key", "check_band_axis", "cube_key", "dims", "listing", "maps_of",
           "mat_variables", "plane", "probe", "truth_key", "truth_off_grid"]
