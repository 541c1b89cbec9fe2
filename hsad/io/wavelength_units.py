"""Wavelength units: the factor that turns a file's wavelengths (or band widths) into
nanometres, from the unit it names or, when it names none, from the values; and the
wavelengths written in band names. Every reader uses them (ENVI, GeoTIFF, MAT, NEON, EMIT)."""

from __future__ import annotations

import re
import warnings

import numpy as np

_MICRO = {"micrometers", "micrometer", "micrometres", "micrometre", "microns", "micron",
          "um", "µm", "μm", "micro meters"}
_NANO = {"nanometers", "nanometer", "nanometres", "nanometre", "nm"}
_MILLI = {"millimeters", "millimeter", "millimetres", "millimetre", "mm"}
#: the other length units ENVI's header lists (Angstroms, Centimeters, Meters), as factors
_OTHER_LENGTHS = dict.fromkeys(("angstroms", "angstrom", "ångströms", "ångström", "å"), 0.1) \
    | dict.fromkeys(("centimeters", "centimeter", "centimetres", "centimetre", "cm"), 1e7) \
    | dict.fromkeys(("meters", "meter", "metres", "metre", "m"), 1e9)
_NOT_WAVELENGTH = {"index", "ghz", "mhz", "hz", "wavenumber", "wavenumbers", "cm-1"}
#: A number, then (matched separately, so that a long run of digits stays linear time)
#: a wavelength unit right after it.
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_UNIT_AFTER = re.compile(
    r"\s*(nanometers?|nanometres?|nm|micrometers?|micrometres?|microns?|um|µm|μm)\b",
    re.IGNORECASE,
)


def unit_scale(units: str | None) -> float | None:
    """Factor turning values in the length unit ``units`` names into nanometres; None when
    it names none (missing, unknown, ``Index``)."""
    u = (units or "").strip().lower()
    if u in _OTHER_LENGTHS:
        return _OTHER_LENGTHS[u]
    return 1000.0 if u in _MICRO else 1.0 if u in _NANO else 1e6 if u in _MILLI else None


def wavelength_scale(units: str | None, values: np.ndarray) -> float | None:
    """Factor turning wavelength values into nanometres; None when they are not wavelengths.

    Micrometres x1000, nanometres x1, millimetres x1e6, and ENVI's other length units
    (Angstroms x0.1, Centimeters x1e7, Meters x1e9: they had been guessed from the values,
    Angstroms read as 10 times their wavelength); ``Index``/frequency units give None.
    Missing or unknown units: values below 100 are taken as micrometres.
    """
    u = (units or "").strip().lower()
    if (factor := unit_scale(u)) is not None:
        return factor
    if u in _NOT_WAVELENGTH:
        return None
    finite = values[np.isfinite(values)]
    if finite.size and np.nanmax(np.abs(finite)) < 100:
        return 1000.0
    return 1.0


#: a range's low end and the dash after it (``0.45-0.51 µm``, ``450 – 510 nm``), the low
#: end a number of its own (``B400-750nm`` is band 400's label, not a range)
_RANGE_START = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)\s*[-\u2013\u2014]\s*$")
#: a band's range ends within this ratio (Landsat 7's panchromatic 0.52–0.90 µm: 1.73)
_RANGE_RATIO = 1.8


def wavelengths_from_band_names(names: list[str]) -> np.ndarray | None:
    """Wavelengths (nm) written in every band name (``"Band 1 (0.4500 Micrometers)"``,
    ``"450.5 nm"``; a range, ``"Blue 0.45-0.51 µm"`` as Landsat's band tables give it, by
    its centre; a band's range ends within :data:`_RANGE_RATIO`), or None if any name lacks one
    or gives a negative wavelength. A dash after a number is never a minus sign: it had
    been (``0.45-0.51 µm`` was -510 nm)."""
    out = []
    for name in map(_with_decimal_points, names):
        matches = [(m, u.group(1)) for m in _NUMBER.finditer(name)
                   if (u := _UNIT_AFTER.match(name, m.end()))]
        if not matches:
            return None
        found, unit = matches[-1]
        value = float(found.group())
        digits = found.start() + (found.group()[0] in "-+")
        low = _RANGE_START.search(name[:digits])
        if low is not None and 0 < float(low.group(1)) < abs(value) <= _RANGE_RATIO * float(
                low.group(1)):
            value = (float(low.group(1)) + abs(value)) / 2  # the range's centre
        elif found.start() > 0 and (name[found.start() - 1].isalnum() or name[
                found.start() - 1] in ").µμ" or low is not None):
            value = abs(value)  # a dash after a label or a number: "B8A-865nm", "B3-560nm"
        if value < 0:
            return None
        factor = wavelength_scale(unit, np.array([value]))
        out.append(value * (factor or 1.0))
    return np.array(out, dtype=np.float64) if out else None


#: a number with a comma between its digits right before a wavelength unit: ``0,45 µm``
_COMMA_NUMBER = re.compile(r"(?<![\d.,])(\d+),(\d+)(?=\s*(?:nanomet|nm|micromet|micron|um|µm|μm))",
                           re.IGNORECASE)


def _with_decimal_points(name: str) -> str:
    """``name`` with its numbers before a wavelength unit written with a point: a decimal
    comma (``Kanal 1 (0,45 µm)``, which had read as 45000 nm) or a thousands separator
    (``1,450 nm``), whichever gives a plausible wavelength (:data:`PLAUSIBLE_NM`; a
    decimal comma when both or neither do)."""
    def point(m: re.Match) -> str:
        decimal, thousands = f"{m.group(1)}.{m.group(2)}", m.group(1) + m.group(2)
        if len(m.group(2)) != 3:
            return decimal
        unit = _UNIT_AFTER.match(name, m.end()).group(1)
        ok = [text for text in (decimal, thousands) if plausible_nm(
            np.array([float(text) * (wavelength_scale(unit, np.array([float(text)])) or 1.0)]))]
        return ok[0] if len(ok) == 1 else decimal

    return _COMMA_NUMBER.sub(point, name)


def fwhm_scale(units: str | None, fwhm: np.ndarray) -> float | None:
    """nm factor for a ``fwhm`` list: explicit units, else values below 1 are micrometres."""
    u = (units or "").strip().lower()
    if u in _MICRO | _NANO | _MILLI | _OTHER_LENGTHS.keys() | _NOT_WAVELENGTH:
        return wavelength_scale(u, fwhm)
    finite = fwhm[np.isfinite(fwhm)]
    return 1000.0 if finite.size and np.max(np.abs(finite)) < 1 else 1.0


#: wavelengths (nm) an imaging spectrometer can have: 100 nm (far UV) to 100 µm (far IR)
PLAUSIBLE_NM = (100.0, 100_000.0)


def plausible_nm(values_nm: np.ndarray) -> bool:
    """Whether any finite value lies within :data:`PLAUSIBLE_NM`."""
    return bool(((values_nm >= PLAUSIBLE_NM[0]) & (values_nm <= PLAUSIBLE_NM[1])).any())


def placeholder_wavelengths(wl, where) -> np.ndarray | None:
    """None for a wavelength list that places no band: all NaN, or one value for every band
    of several (``{0, 0, …}``, a writer's placeholder, which would pair every band with
    every other by wavelength), the latter with a warning naming ``where``; else ``wl``."""
    if wl is None:
        return None
    wl = np.asarray(wl, dtype=np.float64)
    if not np.isfinite(wl).any():
        return None
    if wl.size > 1 and np.isfinite(wl).all() and np.all(wl == wl.flat[0]):
        warnings.warn(f"{where}: 'wavelength' gives every band the same value "
                      f"({wl.flat[0]:g}), a placeholder; the wavelengths are taken as "
                      "unknown", UserWarning, stacklevel=3)
        return None
    return wl


__all__ = ["PLAUSIBLE_NM", "fwhm_scale", "placeholder_wavelengths", "plausible_nm", "unit_scale",
           "wavelength_scale",
           "wavelengths_from_band_names"]
