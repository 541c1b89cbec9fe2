"""ENVI ``.hdr`` files: parsing them, and the typed fields hsad uses (a file's header
and data are found by :mod:`hsad.io.envi_files`; wavelength units are read by
:mod:`hsad.io.wavelength_units`).

A header is text whose first line is ``ENVI`` followed by ``key = value`` lines.
Values may be ``{...}`` lists spanning several lines; lines starting with ``;`` are
comments; keys are matched case-insensitively with runs of spaces collapsed and ``_`` read
as a space. The georeferencing, the nodata value and the frame offsets are taken from the
header as GDAL reads it (:mod:`hsad.io.envi_gdal_view`), so that they are GDAL's.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hsad.errors import FileFormatError, HeaderError, UnsupportedError
from hsad.io.envi_gdal_view import (
    LAYOUT_KEYS,
    gdal_fields,
    gdal_integer,
    gdal_list,
    gdal_number,
    why_unread,
)
from hsad.io.missing import no_file
from hsad.io.wavelength_units import (
    fwhm_scale,
    placeholder_wavelengths,
    plausible_nm,
    unit_scale,
    wavelength_scale,
    wavelengths_from_band_names,
)
from hsad.lazy_modules import moved_names

#: ENVI ``data type`` code -> numpy dtype (byte order applied separately).
DATA_TYPES: dict[int, np.dtype] = {
    1: np.dtype("u1"),
    2: np.dtype("i2"),
    3: np.dtype("i4"),
    4: np.dtype("f4"),
    5: np.dtype("f8"),
    12: np.dtype("u2"),
    13: np.dtype("u4"),
    14: np.dtype("i8"),
    15: np.dtype("u8"),
}
_COMPLEX_TYPES = {6: "complex64", 9: "complex128"}
#: numpy dtype -> ENVI ``data type`` code.
DTYPE_CODES: dict[np.dtype, int] = {dt: code for code, dt in DATA_TYPES.items()}



#: a NUL and the rest of its line: GDAL reads each line as a C string, so a NUL ends it
_NUL_TO_LINE_END = re.compile(rb"\x00[^\r\n]*")


def _first_line(text: str) -> str:
    """The first line of ``text`` that is not blank, stripped."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _decode(raw: bytes, path: Path) -> str:
    """Header text, each line ending at its first NUL as in GDAL (NUL padding, a C
    terminator); with a NUL and no ``ENVI`` first line, a binary file: HeaderError."""
    cut = _NUL_TO_LINE_END.sub(b"", raw)
    try:
        text = cut.decode("utf-8-sig")
    except UnicodeDecodeError:  # Latin-1 (a µ as one byte), after any UTF-8 BOM
        text = cut.removeprefix(b"\xef\xbb\xbf").decode("latin-1")
    if cut != raw and not _first_line(text).upper().startswith("ENVI"):
        raise HeaderError("not an ENVI header (binary content; first line must be 'ENVI')", path)
    return text


def read_header_bytes(path: Path) -> bytes:
    """Read a header file, turning OS errors into :class:`FileFormatError`."""
    if path.is_dir():
        raise FileFormatError("is a directory, not an ENVI header or data file", path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(no_file(path), path) from None
    except PermissionError:
        raise FileFormatError("permission denied (file is not readable)", path) from None
    except OSError as exc:
        raise FileFormatError(f"cannot read header: {exc.strerror or exc}", path) from None


def _normalise_key(key: str) -> str:
    return " ".join(key.strip().lower().replace("_", " ").split())


def parse_header_text(text: str, path: str | os.PathLike | None = None) -> dict[str, str]:
    """Parse header text into ``{key: value}``; braced values lose their outer braces.

    Keys are lower-case with single spaces (``"byte order"``). Later keys win.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not _first_line(text).upper().startswith("ENVI"):
        raise HeaderError("not an ENVI header (first line must be 'ENVI')", path)
    out: dict[str, str] = {}
    i = 1 + next(i for i, ln in enumerate(lines) if ln.strip())
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith(";") or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        value = value.strip()
        if value.startswith("{"):
            depth = value.count("{") - value.count("}")
            parts = [value]
            j = i
            while depth > 0 and j < len(lines):
                parts.append(lines[j].strip())
                depth += lines[j].count("{") - lines[j].count("}")
                j += 1
            if depth > 0:  # braces inside the value (a '{' in a path): GDAL's rule, the
                # value ends at the first line holding a '}'
                closing = next((k for k, part in enumerate(parts) if "}" in part), None)
                if closing is None:
                    raise HeaderError(f"unclosed '{{' in the value of "
                                      f"'{_normalise_key(key)}'", path)
                parts, j = parts[:closing + 1], i + closing
            i = j
            value = "\n".join(parts).strip()
            value = value[1 : value.rfind("}")].strip()
        out[_normalise_key(key)] = value
    return out


def split_list(value: str) -> list[str]:
    """Split an ENVI ``{a, b, c}`` list (braces already removed) into stripped items."""
    value = value.strip()
    if value.startswith("{") and value.endswith("}"):
        value = value[1:-1]
    if not value.strip():
        return []
    return [item.strip() for item in value.replace("\n", " ").split(",")]


#: a number with a Fortran ``D`` exponent (``4.0D+02``), as IDL writes doubles
_FORTRAN_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+))[dD]([-+]?\d+)")


def _number(item: str, fortran: bool) -> float:
    """``item`` as a float; with ``fortran``, a ``D`` exponent too. ValueError if neither."""
    match = _FORTRAN_NUMBER.fullmatch(item) if fortran else None
    return float(f"{match.group(1)}e{match.group(2)}" if match else item)


def _floats(value: str, key: str, path, fortran: bool = False) -> np.ndarray:
    """The numbers of a list, an empty last item dropped (``{400, 500,}``, as GDAL drops
    it); HeaderError naming the first item that is not a number."""
    items = split_list(value)
    if len(items) > 1 and not items[-1]:
        items.pop()
    out = []
    for item in items:
        try:
            out.append(_number(item, fortran))
        except ValueError:
            raise HeaderError(f"'{key}' item '{_short(item)}' is not a number", path) from None
    return np.array(out, dtype=np.float64)


def _optional_floats(raw: dict, key: str, path) -> np.ndarray | None:
    """An optional numeric list (``wavelength``, ``fwhm``, ``bbl``; ``D`` exponents read);
    None, with a warning, when it does not read: not worth refusing the file."""
    try:
        return _floats(raw[key], key, path, fortran=True)
    except HeaderError as exc:
        warnings.warn(f"{path}: {exc.problem}; the list is ignored", UserWarning, stacklevel=4)
        return None


@dataclass
class EnviHeader:
    """The fields of an ENVI header that hsad uses, typed; ``raw`` keeps every key."""

    path: Path
    raw: dict[str, str]
    samples: int
    lines: int
    bands: int
    data_type: int
    interleave: str | None
    byte_order: int
    header_offset: int
    file_type: str
    file_compression: int
    nodata: float | None = None
    reflectance_scale_factor: float | None = None
    description: str | None = None
    wavelength: np.ndarray | None = None
    fwhm: np.ndarray | None = None
    good_band: np.ndarray | None = None
    band_names: list[str] | None = None
    class_names: list[str] | None = None
    spectra_names: list[str] | None = None
    wavelength_units: str | None = None
    extra: dict = field(default_factory=dict)
    #: the fields as GDAL reads them (:func:`hsad.io.envi_gdal_view.gdal_fields`)
    gdal: dict = field(default_factory=dict)
    #: ``major frame offsets``: bytes before and after each line of the file (GDAL's rule)
    frame_offsets: tuple[int, int] = (0, 0)
    #: the header's text, decoded (what GDAL skips of it is said from it)
    text: str = ""

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of the stored pixels, with the file's byte order."""
        return DATA_TYPES[self.data_type].newbyteorder(">" if self.byte_order else "<")

    @property
    def is_spectral_library(self) -> bool:
        return "spectral library" in self.file_type.lower()

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data the header promises (without the header offset)."""
        return self.samples * self.lines * self.bands * DATA_TYPES[self.data_type].itemsize


def _short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[:limit] + "..."


def _without_comment(text: str) -> str:
    """``text`` without a trailing ``; comment`` (``samples = 10 ; pixels``: GDAL's
    ``atoi`` reads 10), stripped."""
    head, sep, _ = text.partition(";")
    return head.strip() if sep and head.strip() else text.strip()


#: what GDAL takes for a layout key it does not read: a header saying so reads the same
GDAL_LAYOUT_DEFAULTS = {"byte order": ("0",), "header offset": ("0",), "interleave": ("bsq",)}


def _check_gdal_layout(raw: dict, gdal: dict, text: str, path) -> None:
    """Warn when a key that lays out the pixels (byte order, interleave, header offset) is
    one GDAL does not read: GDAL and QGIS then show the file's bytes in another layout,
    while hsad reads them as the header says."""
    for key, gdal_key in LAYOUT_KEYS.items():
        if key in raw and gdal_key not in gdal and \
                _without_comment(raw[key]).lower() not in GDAL_LAYOUT_DEFAULTS[key]:
            warnings.warn(f"{path}: GDAL does not read this header's '{key}' "
                          f"({why_unread(text, key)}): GDAL and QGIS show this file's "
                          "pixels in another layout; hsad reads them as the header says",
                          UserWarning, stacklevel=3)


def _check_gdal_opens(raw_bytes: bytes, path) -> None:
    """Warn when the file does not begin with ``ENVI`` (a UTF-8 byte-order mark, blank lines
    or spaces before it, ``envi`` in lower case): hsad reads it, but GDAL checks the first
    four bytes, so GDAL and QGIS do not open the file."""
    if raw_bytes[:4] != b"ENVI":  # GDAL's test is exact: 'envi' fails it too
        if raw_bytes.startswith(b"\xef\xbb\xbf"):
            what = "a UTF-8 byte-order mark before 'ENVI'"
        elif raw_bytes.lstrip()[:4].upper() == b"ENVI" and raw_bytes[:1].isspace():
            what = "blank lines or spaces before 'ENVI'"
        else:
            what = f"a first line of {raw_bytes[:4].decode('latin-1')!r}, not 'ENVI'"
        warnings.warn(f"{path}: {what}: hsad reads the header, but GDAL and QGIS do not open "
                      "the file (correct it)", UserWarning, stacklevel=3)


def _int(raw: dict, key: str, path, default: int | None = None, minimum: int = 0) -> int:
    if key not in raw:
        if default is None:
            raise HeaderError(f"header is missing '{key}'", path)
        return default
    text = _without_comment(raw[key])
    try:
        value = int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            as_float = math.nan
        if not as_float.is_integer():
            raise HeaderError(f"'{key}' must be an integer, got '{_short(text)}'", path) from None
        value = int(as_float)
    if value < minimum:
        raise HeaderError(f"'{key}' must be >= {minimum}, got {value}", path)
    return value


def _float(raw: dict, key: str, path) -> float | None:
    if key not in raw or not raw[key].strip():
        return None
    try:
        return float(raw[key].strip())
    except ValueError:
        raise HeaderError(f"'{key}' must be a number, got '{_short(raw[key].strip())}'",
                          path) from None


def _scale_factor(raw: dict, path) -> float | None:
    """``reflectance scale factor``; one that is not a positive finite number (0, written by
    some tools for "none", −1, NaN) cannot be divided by: dropped with a warning."""
    factor = _float(raw, "reflectance scale factor", path)
    if factor is not None and not (np.isfinite(factor) and factor > 0):
        warnings.warn(f"{path}: 'reflectance scale factor = {factor:g}' is not a positive "
                      "number, so nothing can be divided by it; it is ignored",
                      UserWarning, stacklevel=4)
        return None
    return factor


def _nodata(raw: dict, gdal: dict, path) -> float | None:
    """``data ignore value`` as GDAL reads it (:func:`gdal_number`), with a warning where
    that is not what the text plainly says (``{-9999}`` and ``none`` are 0 to GDAL) or where
    GDAL does not see the key at all."""
    if "data_ignore_value" not in gdal:
        if "data ignore value" in raw:
            warnings.warn(f"{path}: GDAL does not read this header's 'data ignore value' "
                          f"({_short(raw['data ignore value'])}); neither does hsad, so the "
                          "scene has no nodata value, as in GDAL and QGIS", UserWarning,
                          stacklevel=3)
        return None
    text = gdal["data_ignore_value"]
    value = gdal_number(text)
    try:
        plain = float(text.strip())
    except ValueError:
        plain = None
    if plain is None or not (plain == value or (plain != plain and value != value)):
        warnings.warn(f"{path}: 'data ignore value = {_short(text.strip())}' is not a plain "
                      f"number; read as {value:g}, as GDAL reads it", UserWarning, stacklevel=3)
    return value


def _frame_offsets(gdal: dict, header_offset: int, line_bytes: int) -> tuple[int, int]:
    """``major frame offsets = {before, after}`` as GDAL takes them: a list of two
    integers, non-negative, and (GDAL's C ``int`` arithmetic) neither the shifted header
    offset nor the framed line length past 2³¹ − 1; else none."""
    items = gdal_list(gdal.get("major_frame_offsets", ""))
    if len(items) != 2:
        return 0, 0
    pre, post = (gdal_integer(item) for item in items)
    limit = 2**31 - 1
    if pre < 0 or post < 0 or header_offset >= limit - pre or pre >= limit - post \
            or pre + post >= limit - line_bytes:
        return 0, 0
    return pre, post


def _per_band(values, bands: int, key: str, path):
    """Drop (with a warning) a per-band list whose length does not match ``bands``."""
    if values is None or len(values) == bands:
        return values
    warnings.warn(f"{path}: '{key}' has {len(values)} values for {bands} bands; ignored",
                  UserWarning, stacklevel=4)
    return None


def band_gains(raw: dict, bands: int, path) -> tuple[list[float], list[float]] | None:
    """Per-band ``(scales, offsets)`` from ``data gain values`` and ``data offset values``
    (what GDAL reads as band scale and offset: value = DN · gain + offset), None when the
    header gives neither (:func:`hsad.cube.with_band_scaling` leaves out the identity)."""
    if "data gain values" not in raw and "data offset values" not in raw:
        return None
    try:
        gains, offsets = (
            _per_band(_floats(raw[key], key, path), bands, key, path) if key in raw else None
            for key in ("data gain values", "data offset values"))
    except HeaderError as exc:  # metadata no detector reads: not worth refusing the file
        warnings.warn(f"{path}: {exc.problem}; the band scales and offsets are ignored",
                      UserWarning, stacklevel=3)
        return None
    gains = np.ones(bands) if gains is None else gains
    offsets = np.zeros(bands) if offsets is None else offsets
    return [float(v) for v in gains], [float(v) for v in offsets]


def parse_header(path: str | os.PathLike) -> EnviHeader:
    """Read and validate an ENVI header file, returning an :class:`EnviHeader`.

    Raises :class:`HeaderError` for a file that is not an ENVI header or lacks
    ``samples``/``lines``/``bands``, and :class:`UnsupportedError` for complex data.
    """
    p = Path(path)
    raw_bytes = read_header_bytes(p)
    if not raw_bytes.strip():
        raise HeaderError("not an ENVI header (empty file)", p)
    text = _decode(raw_bytes, p)
    raw = parse_header_text(text, p)
    gdal = gdal_fields(text)

    missing = [k for k in ("samples", "lines", "bands") if k not in raw]
    if missing:
        raise HeaderError(f"header is missing required key(s): {', '.join(missing)}", p)
    samples, lines, bands = (_int(raw, k, p, minimum=1) for k in ("samples", "lines", "bands"))

    if "data type" not in raw:
        raise HeaderError("header is missing 'data type'", p)
    data_type = _int(raw, "data type", p)
    if data_type in _COMPLEX_TYPES:
        raise UnsupportedError(
            f"complex data type {data_type} ({_COMPLEX_TYPES[data_type]}) is not supported; "
            "hsad reads real-valued cubes only", p)
    if data_type not in DATA_TYPES:
        known = ", ".join(str(c) for c in sorted(DATA_TYPES))
        raise HeaderError(f"unknown data type {data_type} (supported: {known})", p)

    _check_gdal_layout(raw, gdal, text, p)
    _check_gdal_opens(raw_bytes, p)
    interleave = _without_comment(raw.get("interleave", "")).lower() or None
    if interleave is not None and interleave not in ("bsq", "bil", "bip"):
        raise HeaderError(f"unknown interleave '{_short(raw['interleave'].strip())}' "
                          "(expected bsq, bil or bip)", p)
    byte_order = _int(raw, "byte order", p, default=0)
    if byte_order not in (0, 1):
        raise HeaderError(f"'byte order' must be 0 or 1, got {byte_order}", p)
    compression = _int(raw, "file compression", p, default=0)
    if compression not in (0, 1):
        raise UnsupportedError(f"file compression = {compression} is not supported "
                               "(only 0 = none and 1 = gzip)", p)

    hdr = EnviHeader(
        path=p, raw=raw, samples=samples, lines=lines, bands=bands, data_type=data_type,
        interleave=interleave, byte_order=byte_order,
        header_offset=_int(raw, "header offset", p, default=0),
        file_type=raw.get("file type", "ENVI Standard").strip() or "ENVI Standard",
        file_compression=compression,
        nodata=_nodata(raw, gdal, p), gdal=gdal, text=text,
        reflectance_scale_factor=_scale_factor(raw, p),
        description=raw.get("description"),
        wavelength_units=raw.get("wavelength units"),
    )
    item = DATA_TYPES[data_type].itemsize
    line = samples * item * (1 if (interleave or "bsq") == "bsq" else bands)
    hdr.frame_offsets = _frame_offsets(gdal, hdr.header_offset, line)
    _spectral_fields(hdr, raw, p)
    if "class names" in raw:
        hdr.class_names = split_list(raw["class names"])
    if "spectra names" in raw:
        hdr.spectra_names = split_list(raw["spectra names"])
    return hdr


def _check_units(units: str | None, values: np.ndarray, factor: float | None, path) -> None:
    """Warn when the declared ``wavelength units`` put every band outside
    :data:`hsad.io.wavelength_units.PLAUSIBLE_NM` (Micrometers on 400–800): the values
    are kept, as GDAL keeps them."""
    finite = values[np.isfinite(values)]
    declared = unit_scale(units) is not None
    if not declared or not finite.size or plausible_nm(finite * factor):
        return
    nm = finite * factor
    guess = next((name for name, f in (("nanometres", 1.0), ("micrometres", 1000.0))
                  if f != factor and plausible_nm(finite * f)), None)
    hint = f"the values look like {guess}" if guess else "the values look like no unit"
    warnings.warn(f"{path}: 'wavelength units = {_short(units.strip())}' puts every band "
                  f"outside 100 nm – 100 µm ({nm.min():g}–{nm.max():g} nm); {hint}; "
                  "kept as declared, as GDAL keeps them: correct the header's units",
                  UserWarning, stacklevel=4)


def _say_unread(units: str | None, factor: float | None, path: Path) -> None:
    """Warn when the header's ``wavelength`` values are set aside for their unit: a
    wavenumber or a frequency (``Index``, ENVI's "band numbers", says nothing: there are
    none). Such a scene had been said to have "no wavelengths" by the model matching."""
    unit = (units or "").strip()
    if factor is not None or unit.lower() in ("", "index", "unknown"):
        return
    warnings.warn(f"{path}: 'wavelength units = {_short(unit)}' is no length: hsad reads "
                  "wavelengths in a length unit only, so this scene's bands have none (band "
                  "selection by wavelength and a model's band matching go by position); "
                  "write them in nm in the header to use them", UserWarning, stacklevel=4)


def _spectral_fields(hdr: EnviHeader, raw: dict, p: Path) -> None:
    """Fill wavelength/fwhm (nm), good_band and band_names from the header."""
    n = hdr.samples if hdr.is_spectral_library else hdr.bands
    if "band names" in raw and not hdr.is_spectral_library:
        names = split_list(raw["band names"]) or [""]  # "{}": one empty name
        hdr.band_names = _per_band(names, n, "band names", p)
    fwhm_factor = wl = None
    if "wavelength" in raw:
        wl = _per_band(_optional_floats(raw, "wavelength", p), n, "wavelength", p)
        wl = placeholder_wavelengths(wl, p)
        if wl is not None:
            fwhm_factor = wavelength_scale(hdr.wavelength_units, wl)
            hdr.wavelength = None if fwhm_factor is None else wl * fwhm_factor
            _check_units(hdr.wavelength_units, wl, fwhm_factor, p)
            _say_unread(hdr.wavelength_units, fwhm_factor, p)
    elif hdr.band_names is not None:
        hdr.wavelength = wavelengths_from_band_names(hdr.band_names)
    if "fwhm" in raw:
        fw = _per_band(_optional_floats(raw, "fwhm", p), n, "fwhm", p)
        if fw is not None:
            # the wavelengths' unit when they were read, else the fwhm's own
            factor = (fwhm_factor if "wavelength" in raw and wl is not None
                      else fwhm_scale(hdr.wavelength_units, fw))
            hdr.fwhm = None if factor is None else fw * factor
    if "bbl" in raw:
        bbl = _per_band(_optional_floats(raw, "bbl", p), n, "bbl", p)
        hdr.good_band = None if bbl is None else bbl != 0


#: names moved to :mod:`hsad.io.envi_files` and :mod:`hsad.io.wavelength_units` in 0.3.1,
#: still served here (no warning)
MOVED = {**{n: "hsad.io.envi_files" for n in (
    "DATA_EXTENSIONS", "data_candidates", "find_data", "find_header", "header_candidates")},
    "PLAUSIBLE_NM": "hsad.io.wavelength_units"}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.io.envi_files import DATA_EXTENSIONS as DATA_EXTENSIONS
    from hsad.io.envi_files import data_candidates as data_candidates
    from hsad.io.envi_files import find_data as find_data
    from hsad.io.envi_files import find_header as find_header
    from hsad.io.envi_files import header_candidates as header_candidates
    from hsad.io.wavelength_units import PLAUSIBLE_NM as PLAUSIBLE_NM

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "DATA_TYPES", "DTYPE_CODES", "EnviHeader", "band_gains", "parse_header",
           "parse_header_text", "read_header_bytes", "split_list", "unit_scale",
           "wavelength_scale", "wavelengths_from_band_names"]
