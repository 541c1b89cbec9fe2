"""Choosing the bands to analyse: :func:`select_bands` by wavelength range, band index
or bad-band list, and the parsers of those selections. A saved model's bands in a scene
are found by :mod:`hsad.cube.model_bands`; bands averaged into groups by
:mod:`hsad.cube.band_binning` (both names still served here).

Wavelengths are in nanometres (readers convert headers in micrometres); ranges include
both ends. Band indices are 0-based and a range ``LO:HI`` stops before ``HI``, as in a
Python slice. Every result is the same lazy cube, with fewer bands: nothing is computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad.cube import (
    as_cube,
    good_band_mask,
    index_wavelength,
)
from hsad.cube.array_types import CubeLike  # the annotations only: costs nothing at run time
from hsad.errors import ParameterError
from hsad.lazy_modules import moved_names

Range = tuple[float | None, float | None]


def _number(text: str, name: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise ParameterError(f"{name}: {text!r} is not a number") from None


def _bound(value, name: str) -> float | None:
    """One end of a wavelength range given in Python: a number, a numeric string, or None
    (or an empty string) for an open end."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        value = _number(value.strip(), name, float)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ParameterError(f"{name}: a range's ends are numbers (nm) or None, got {value!r}")
    if not np.isfinite(value):
        raise ParameterError(f"{name}: a range's ends are finite (nm; None for an open end), "
                             f"got {value!r}")
    return float(value)


def _is_bound(value) -> bool:
    return value is None or (isinstance(value, (int, float, np.number))
                             and not isinstance(value, (bool, np.bool_)))


def parse_ranges(spec, name: str = "wavelengths") -> list[Range]:
    """``"400:900,1000:"`` → ``[(400, 900), (1000, None)]``; open ends are None. Ranges
    already parsed (pairs, ``[(400, 900), (1000, None)]``) pass through checked, and one
    pair alone (``(400, 900)``) is one range."""
    if spec is None:
        return []
    if not isinstance(spec, str):
        spec = _values_of(spec, name, "give (LO, HI) in nm, a list of such pairs, or text "
                                      "such as '400:900,1000:'")
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    if len(parts) == 2 and all(_is_bound(p) for p in parts):  # (400, 900): one range
        parts = [tuple(parts)]
    out = []
    for part in parts:
        if isinstance(part, str):
            if part.count(":") != 1:
                raise ParameterError(f"{name}: {part.strip()!r} is not a range LO:HI "
                                     "(nm; LO or HI may be left out)")
            lo, hi = (None if not t.strip() else _number(t.strip(), name, float)
                      for t in part.split(":"))
        elif isinstance(part, (tuple, list, np.ndarray)) and len(part) == 2:
            lo, hi = (_bound(v, name) for v in part)
        else:
            raise ParameterError(f"{name}: {part!r} is not a range: give (LO, HI) in nm, "
                                 "a list of such pairs, or text such as '400:900,1000:'")
        if lo is not None and hi is not None and lo > hi:
            raise ParameterError(f"{name}: range {lo:g}:{hi:g} runs backwards")
        out.append((lo, hi))
    if not out:
        raise ParameterError(f"{name}: no range given")
    return out


def parse_indices(spec, n_bands: int | None = None, name: str = "bands") -> list[int]:
    """``"3,5,10:20"`` → band positions (0-based; ``LO:HI`` excludes HI, open ends allowed).

    ``spec`` may also be a slice, a sequence of ints, or a boolean mask over the bands
    (``cube.wavelength.values < 900``: the bands where it is True). Without ``n_bands``
    only the syntax is checked (and an open end is left unresolved).
    """
    if spec is None:
        return []
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, (bool, np.bool_)):
        spec = [spec]  # one position
    if not isinstance(spec, (str, slice)):
        spec = _values_of(spec, name, "give positions, a slice or a boolean mask")
        if np.asarray(spec).dtype == bool:  # a mask (a DataArray's too), not positions
            spec = [bool(v) for v in np.asarray(spec).reshape(-1)]
    items = spec.split(",") if isinstance(spec, str) else (
        [spec] if isinstance(spec, slice) else list(spec))
    flags = [isinstance(item, (bool, np.bool_)) for item in items]
    if items and all(flags):  # a boolean mask, not positions 0 and 1
        if n_bands is not None and len(items) != n_bands:
            raise ParameterError(f"{name}: a boolean mask of {len(items)} values for a scene "
                                 f"of {n_bands} bands")
        return np.flatnonzero(np.asarray(items, dtype=bool)).tolist()
    if any(flags):
        raise ParameterError(f"{name}: booleans among band positions; give positions, or a "
                             "boolean mask of one value a band")
    end = n_bands if n_bands is not None else 0
    out: list[int] = []
    for item in items:
        if isinstance(item, str) and ":" in item:
            if item.count(":") != 1:
                raise ParameterError(f"{name}: {item.strip()!r} is not an index or a range LO:HI")
            lo, hi = (None if not t.strip() else _number(t.strip(), name, int)
                      for t in item.split(":"))
            item = slice(lo, hi)
        if isinstance(item, slice):
            lo, hi = item.start or 0, end if item.stop is None else item.stop
            if lo < 0 or (item.stop is not None and hi < 0) or item.step not in (None, 1):
                raise ParameterError(f"{name}: band positions are 0-based, got "
                                     f"{lo}:{'' if item.stop is None else hi}")
            if item.stop is not None and hi < lo:
                raise ParameterError(f"{name}: range {lo}:{hi} runs backwards")
            out.extend(range(lo, hi))
        else:
            index = _number(item.strip(), name, int) if isinstance(item, str) else \
                _position(item, name)
            if index < 0:
                raise ParameterError(f"{name}: band indices are 0-based, got {index}")
            out.append(index)
    if n_bands is not None:
        outside = [i for i in out if i >= n_bands]
        if outside:
            raise ParameterError(f"{name}: band {outside[0]} does not exist: the scene has "
                                 f"{n_bands} bands, numbered 0 to {n_bands - 1}")
    return out


def _values_of(spec, name: str, how: str):
    """A selection given in Python as a list (a DataArray's or numpy array's values, or
    the sequence itself); a value that is no sequence is a ParameterError saying ``how``."""
    values = getattr(spec, "values", spec)  # an xarray DataArray: its values
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ParameterError(f"{name}: expected one value a band or range, got an array "
                                 f"of shape {values.shape}; {how}")
        return values.tolist() if values.dtype != bool else values
    try:
        return list(values)
    except TypeError:
        raise ParameterError(f"{name}: {spec!r} is not a selection; {how}") from None


def _position(item, name: str) -> int:
    """A band position given in Python: an integer (3.0 too), never 3.7 cut to 3."""
    try:
        index = int(item)
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(f"{name}: {item!r} is not a band position") from None
    if index != item:
        raise ParameterError(f"{name}: {item!r} is not a whole band position")
    return index


#: relative tolerance of a range's ends: a typed 472.41 matches a header's 0.47241 µm
#: (472.40999999999997 nm once converted) and a float32 wavelength, never the next band
END_TOLERANCE = 1e-6


def _in_ranges(wavelength: np.ndarray, ranges: list[Range]) -> np.ndarray:
    """Bands whose wavelength lies in one of ``ranges``, both ends included (to
    :data:`END_TOLERANCE`)."""
    keep = np.zeros(wavelength.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for lo, hi in ranges:
            keep |= ((wavelength >= (-np.inf if lo is None else lo - END_TOLERANCE * abs(lo)))
                     & (wavelength <= (np.inf if hi is None else hi + END_TOLERANCE * abs(hi))))
    return keep


def _span(wavelength: np.ndarray) -> str:
    known = wavelength[np.isfinite(wavelength)]
    return f"{known.min():g}-{known.max():g} nm" if known.size else "no wavelengths"


_WAVELENGTH_COLUMN = ("wavelength", "wl", "lambda", "center", "centre", "cw")
_FWHM_COLUMN = ("fwhm", "width", "bandwidth")


def _column(names: list[str], words) -> int | None:
    return next((i for i, n in enumerate(names) if any(w in n.lower() for w in words)), None)


def read_wavelength_file(path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(wavelength nm, fwhm nm or None)`` from a text or CSV file, one band per line:
    ``wavelength`` or ``wavelength, fwhm`` (commas, semicolons or blanks between; a decimal
    point), or all wavelengths on one line. ``#`` starts a comment. A first line of names
    picks the columns (``band, wavelength, fwhm``: the ones named like wavelength and fwhm).
    Values all below 100 are micrometres. A layout that could be read two ways (a first
    column 1, 2, 3… with no names; a fwhm not below its wavelength) is refused."""
    import re
    from pathlib import Path

    from hsad.io import check_input
    from hsad.io.wavelength_units import wavelength_scale

    p = Path(path)
    check_input(p, "wavelength", ParameterError)
    header, rows, texts = None, [], []
    for number, line in enumerate(p.read_text(encoding="utf-8-sig", errors="replace").splitlines()):
        text = line.split("#", 1)[0].strip()
        fields = [f for f in re.split(r"[,;\s]+", text) if f]
        if not fields:
            continue
        try:
            rows.append([float(f) for f in fields])
            texts.append(text)
        except ValueError:
            if rows or header is not None:  # one line of names may come first, nothing else
                raise ParameterError(f"line {number + 1} is not numbers: {line[:40]!r}",
                                     p) from None
            header = fields
    if len(rows) == 1 and header is None:
        rows = [[v] for v in rows[0]]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ParameterError("expected one band per line (wavelength, or wavelength and "
                             "fwhm) or all wavelengths on one line", p)
    _check_decimal_commas(texts, p)
    table = np.asarray(rows, dtype=np.float64)
    columns = table.shape[1]
    if header is not None and len(header) == columns and columns > 1:
        wl_col, fwhm_col = _column(header, _WAVELENGTH_COLUMN), _column(header, _FWHM_COLUMN)
        if wl_col is None:
            raise ParameterError(f"no column named like a wavelength among {header}", p)
    elif columns <= 2:
        wl_col, fwhm_col = 0, (1 if columns == 2 else None)
        if columns == 2 and np.array_equal(table[:, 0], np.arange(1, len(table) + 1)):
            raise ParameterError("the first column counts 1, 2, 3…: band numbers? name the "
                                 "columns on a first line (band, wavelength, fwhm)", p)
    else:
        raise ParameterError(f"{columns} columns: name them on a first line (band, "
                             "wavelength, fwhm)", p)
    scale = wavelength_scale(None, table[:, wl_col])
    wavelength = table[:, wl_col] * scale
    fwhm = None if fwhm_col is None else table[:, fwhm_col] * scale
    if fwhm is not None and (fwhm >= wavelength).any():
        raise ParameterError("a fwhm is not below its wavelength: are the columns "
                             "wavelength, fwhm? (a decimal point, not a comma)", p)
    return wavelength, fwhm


def _check_decimal_commas(lines: list[str], path) -> None:
    """ParameterError when every line is two whole numbers joined by a comma and some of the
    second have a leading zero (``845,04``, ``450,00``): one number with a decimal comma
    each (a German export), which had been read as wavelength 845 and fwhm 4."""
    import re

    pairs = [re.fullmatch(r"[+-]?\d+,(\d+)", line) for line in lines]
    if pairs and all(pairs) and (odd := next((line for line, m in zip(lines, pairs, strict=True)
                                              if len(m.group(1)) > 1 and
                                              m.group(1).startswith("0")), None)):
        raise ParameterError(f"lines such as {odd!r} read as one number with a decimal comma: "
                             "write decimal points (a comma, or a comma and a space, between "
                             "wavelength and fwhm)", path)


def attach_wavelengths(cube: xr.DataArray, wavelength, fwhm=None,
                       source=None) -> xr.DataArray:
    """``cube`` with these band wavelengths (nm) and fwhm, replacing the file's (for
    products whose wavelengths GDAL cannot read, e.g. a PRISMA cube exported to GeoTIFF).
    ``source``: the file they were read from, which an error of their count names first
    (the scene after it)."""
    n = cube.sizes["band"]
    wavelength = np.asarray(wavelength, dtype=np.float64).reshape(-1)
    if wavelength.size != n:
        scene = cube.attrs.get("source_path")
        also = f" ({scene})" if source is not None and scene else ""
        raise ParameterError(f"{wavelength.size} wavelengths for a scene of {n} bands{also}",
                             source if source is not None else scene)
    fwhm = np.full(n, np.nan) if fwhm is None else np.asarray(fwhm, np.float64).reshape(-1)
    cube = cube.drop_indexes("wavelength") if "wavelength" in cube.xindexes else cube
    return index_wavelength(cube.assign_coords(wavelength=("band", wavelength),
                                               fwhm=("band", fwhm)))


def select_bands(cube: CubeLike, wavelengths=None, exclude_wavelengths=None, bands=None,
                 drop_bad_bands: bool = False, wavelength_file=None) -> xr.DataArray:
    """The cube restricted to the chosen bands (lazy; coordinates and attributes follow).

    ``wavelength_file`` first gives the cube the wavelengths of that file
    (:func:`read_wavelength_file`, :func:`attach_wavelengths`); then:

    - ``wavelengths``: keep bands inside these ranges, nm, ends included (``"400:2400"``,
      ``":900,1000:"`` or ``[(400, 2400)]``);
    - ``exclude_wavelengths``: drop bands inside these ranges (``"1340:1450,1790:1960"``);
    - ``bands``: keep these 0-based positions (``"5:180"`` = 5..179, ``"3,5,10:20"``, a slice
      or a list);
    - ``drop_bad_bands``: drop the bands the header's bad-band list (``good_band``) marks bad.
      Without it they stay in the cube, and detectors skip them anyway.

    All criteria apply together; bands keep their order. An empty selection, wavelengths
    asked of a scene without any, or a malformed range is a :class:`ParameterError`.
    """
    cube = as_cube(cube)
    if wavelength_file is not None:
        cube = attach_wavelengths(cube, *read_wavelength_file(wavelength_file),
                                  source=wavelength_file)
    n = cube.sizes["band"]
    path = cube.attrs.get("source_path")
    keep = np.ones(n, dtype=bool)
    if bands is not None:
        chosen = np.zeros(n, dtype=bool)
        chosen[parse_indices(bands, n)] = True
        keep &= chosen
    wavelength = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if (wavelengths is not None or exclude_wavelengths is not None) and not np.isfinite(
            wavelength).any():
        raise ParameterError("the scene has no wavelengths to select by: choose bands by "
                             "position with --bands (bands=)", path)
    if wavelengths is not None:
        keep &= _in_ranges(wavelength, parse_ranges(wavelengths, "wavelengths"))
    if exclude_wavelengths is not None:
        keep &= ~_in_ranges(wavelength, parse_ranges(exclude_wavelengths,
                                                     "exclude_wavelengths"))
    if drop_bad_bands:
        keep &= good_band_mask(cube)
    if not keep.any():
        raise ParameterError(f"the band selection keeps none of the scene's {n} bands "
                             f"({_span(wavelength)})", path)
    return cube if keep.all() else cube.isel(band=np.flatnonzero(keep))


#: names moved to modules of their own in 0.3.1, still served here (no warning)
MOVED = {"match_model_bands": "hsad.cube.model_bands",
         **{n: "hsad.cube.band_binning" for n in ("band_groups", "bin_bands")}}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.cube.band_binning import band_groups as band_groups
    from hsad.cube.band_binning import bin_bands as bin_bands
    from hsad.cube.model_bands import match_model_bands as match_model_bands

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "attach_wavelengths", "parse_indices", "parse_ranges", "read_wavelength_file",
           "select_bands"]
