"""Band wavelengths from the XML metadata that EnMAP and DESIS deliver beside their
GeoTIFFs (``…-SPECTRAL_IMAGE.TIF`` with ``…-METADATA.XML``), which GDAL does not read.

Each band's centre is a ``wavelengthCenterOfBand`` element and its width a ``FWHMOfBand``
(EnMAP) or ``wavelengthWidthOfBand`` (DESIS) element, in band order, in nanometres.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

#: Larger sidecars are not parsed (EnMAP's is about 1 MB).
MAX_XML_BYTES = 64 * 2**20
_CENTRE = "wavelengthCenterOfBand"
_WIDTH = ("FWHMOfBand", "wavelengthWidthOfBand")


def sidecar_of(image: str | Path) -> Path | None:
    """The ``…-METADATA.XML`` beside a ``…-SPECTRAL_IMAGE.TIF``, if it exists."""
    image = Path(image)
    stem = image.stem
    at = stem.upper().rfind("SPECTRAL_IMAGE")
    if at < 0:
        return None
    for suffix in (".XML", ".xml"):
        candidate = image.with_name(stem[:at] + "METADATA" + stem[at + 14:] + suffix)
        if candidate.is_file():
            return candidate
    return None


def local_name(tag: str) -> str:
    """An XML element's name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def sidecar_wavelengths(image: str | Path,
                        bands: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(wavelength nm, fwhm nm or None)`` of ``bands`` bands from the image's sidecar XML,
    or None (no sidecar, or one that does not list ``bands`` band centres: a warning)."""
    xml = sidecar_of(image)
    if xml is None:
        return None
    if xml.stat().st_size > MAX_XML_BYTES:
        return None
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        warnings.warn(f"{xml}: not readable XML ({exc}); band wavelengths unknown", UserWarning,
                      stacklevel=3)
        return None
    centres, widths = [], []
    for element in root.iter():
        name = local_name(element.tag)
        if name == _CENTRE:
            centres.append(element.text)
        elif name in _WIDTH:
            widths.append(element.text)
    if len(centres) != bands:
        if centres:
            warnings.warn(f"{xml}: {len(centres)} band centres for {bands} bands; band "
                          "wavelengths unknown", UserWarning, stacklevel=3)
        return None
    try:
        wavelength = np.asarray(centres, dtype=np.float64)
        fwhm = np.asarray(widths, dtype=np.float64) if len(widths) == bands else None
    except (TypeError, ValueError):
        return None
    return wavelength, fwhm


__all__ = ["MAX_XML_BYTES", "local_name", "sidecar_of", "sidecar_wavelengths"]
