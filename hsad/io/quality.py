"""``--exclude-quality``: the pixels a product's own quality layers flag, left out.

Two sources carry such layers: EnMAP products (:mod:`hsad.io.enmap_quality`: cloud, cloudshadow,
haze, cirrus, snow, water, saturated) and NEON reflectance files (:mod:`hsad.io.neon_weather`:
partlycloudy, mostlycloudy, from the weather quality indicator). A flag of the other source,
or flags for a scene of neither, is a ParameterError that names what applies.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.errors import ParameterError

#: source format → what the errors call it
SOURCES = {"enmap": "EnMAP products", "neon": "NEON reflectance files"}


def _modules():
    from hsad.io import enmap_quality, neon_weather

    return {"enmap": enmap_quality, "neon": neon_weather}


def flags_of(source: str) -> tuple[str, ...]:
    """The flags a source format (``enmap``, ``neon``) applies."""
    return tuple(_modules()[source].FLAGS)


def parse_flags(text: str | None) -> tuple[str, ...] | None:
    """``cloud,cloudshadow`` as a tuple of flags; ``none`` as (); None as None. Any source's
    flags pass here; :func:`quality_valid` checks them against the scene's."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    if names == ("none",):
        return ()
    known = {source: flags_of(source) for source in SOURCES}
    unknown = [n for n in names if not any(n in flags for flags in known.values())]
    if unknown or not names:
        listed = "; ".join(f"{', '.join(f)} ({SOURCES[s]})" for s, f in known.items())
        raise ParameterError(f"--exclude-quality takes none or flags among {listed}; not "
                             f"{', '.join(unknown) or repr(text)}")
    return names


def _check_source(source: str | None, flags, path) -> None:
    """ParameterError when ``flags`` do not apply to a scene of format ``source``."""
    if source not in SOURCES:
        raise ParameterError("--exclude-quality applies to EnMAP products (read from their "
                             "folder, METADATA.XML or SPECTRAL_IMAGE) and NEON reflectance "
                             "files; give --valid-mask for other scenes", path)
    other = [f for f in flags if f not in flags_of(source)]
    if other:
        raise ParameterError(f"--exclude-quality {','.join(other)}: {SOURCES[source]} flag "
                             f"{', '.join(flags_of(source))}", path)


def check_flags(flags, path) -> None:
    """ParameterError when ``flags`` do not apply to the scene at ``path``, told by its
    format before any of it is read (a batch stops before its first scene); a scene whose
    format cannot be told is left to its own reading to report."""
    from hsad.errors import HsadError
    from hsad.io import detect_format

    if not flags:
        return
    try:
        source = detect_format(path)
    except (HsadError, OSError):
        return
    _check_source(source, flags, path)


def quality_valid(cube: xr.DataArray, flags) -> np.ndarray | None:
    """(y, x) bool map of ``cube``'s pixels that none of ``flags`` marks, from the quality
    layers of the EnMAP product or NEON file it was read from (cut to its window); None for
    no flags."""
    if not flags:
        return None
    source = cube.attrs.get("source_format")
    _check_source(source, flags, cube.attrs.get("source_path"))
    return _modules()[source].quality_valid(cube, flags)


def cover_note(cube: xr.DataArray, valid: np.ndarray | None = None) -> str | None:
    """The source's line on how much of the scene its quality layers flag as cloudy (EnMAP:
    the metadata's cover of the swath; NEON: the weather quality indicator, over the pixels
    ``valid`` keeps); None when little or none."""
    source = cube.attrs.get("source_format")
    if source == "neon":
        return _modules()[source].cover_note(cube, valid=valid)
    return _modules()[source].cover_note(cube) if source in SOURCES else None


def warn_cover(cube: xr.DataArray, valid: np.ndarray | None = None) -> None:
    """Warn with :func:`cover_note` (stacklevel for the caller's caller)."""
    note = cover_note(cube, valid)
    if note:
        warnings.warn(f"{cube.attrs.get('source_path')}: {note}", UserWarning, stacklevel=3)


__all__ = ["SOURCES", "check_flags", "cover_note", "flags_of", "parse_flags", "quality_valid",
           "warn_cover"]
