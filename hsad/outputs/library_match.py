"""What each detection resembles: the spectral angle (SAM; Kruse et al., 1993) between each
region's mean spectrum and every spectrum of a reference library, the library first
resampled to the scene's bands (SPy's ``BandResampler``: each scene band a Gaussian of its
FWHM over the library's bands), as ENVI's Spectral Analyst ranks them.

The angle ignores a spectrum's brightness (a gain), not an offset: it compares shapes, so a
reflectance scene matches a reflectance library, and a radiance scene matches nothing
meaningfully. Angles are taken over the scene's good bands where both spectra have a value.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import xarray as xr

from hsad.errors import ParameterError

#: Fewest common bands an angle is taken over; fewer give no match.
MIN_BANDS = 5


@dataclass(frozen=True)
class Library:
    """A reference library: ``spectra`` (n, bands), their ``names``, ``wavelength`` and
    ``fwhm`` in nm (fwhm None when the header has none), read from ``path``."""

    spectra: np.ndarray
    names: list[str]
    wavelength: np.ndarray
    fwhm: np.ndarray | None
    path: str


def read_library(path: str | os.PathLike) -> Library:
    """An ENVI spectral library (``.sli`` with its ``.hdr``), its bad bands (``bbl``) set to
    NaN. A library without wavelengths is a ParameterError: its bands cannot be matched to
    a scene's."""
    from hsad.io import check_regular
    from hsad.io.envi import read_spectral_library, resolve_paths
    from hsad.io.envi_header import band_gains, parse_header

    for file in resolve_paths(path):  # a named pipe would be waited on
        if file is not None:
            check_regular(file)
    header = parse_header(resolve_paths(path)[0])
    if not header.is_spectral_library:
        raise ParameterError(f"is not an ENVI spectral library (its file type is "
                             f"'{header.file_type}'): give a .sli and its .hdr", path)
    spectra, names, wavelength = read_spectral_library(path)
    if not np.isfinite(wavelength).all():
        raise ParameterError("the spectral library gives no wavelength for every band, so "
                             "its spectra cannot be resampled to the scene's bands", path)
    if wavelength.size < MIN_BANDS:
        raise ParameterError(f"the spectral library has {wavelength.size} band(s); an angle "
                             f"needs at least {MIN_BANDS}", path)
    bands = wavelength.size
    raw = np.asarray(spectra)
    spectra = raw.astype(np.float64)
    if header.nodata is not None and np.isfinite(header.nodata):
        spectra[raw == header.nodata] = np.nan
    if header.good_band is not None and len(header.good_band) == bands:
        spectra[:, ~np.asarray(header.good_band, bool)] = np.nan
    scaling = band_gains(header.raw, bands, path)
    if scaling is not None:  # data gain and offset values: an offset changes an angle
        spectra = spectra * np.asarray(scaling[0]) + np.asarray(scaling[1])
    fwhm = header.fwhm
    if fwhm is None or len(fwhm) != bands or not (np.isfinite(fwhm) & (fwhm > 0)).all():
        fwhm = None  # half the distance to the neighbouring bands (SPy)
    order = np.argsort(wavelength, kind="stable")  # SPy's resampling walks them upwards
    return Library(spectra[:, order], list(names), np.asarray(wavelength, np.float64)[order],
                   None if fwhm is None else np.asarray(fwhm, np.float64)[order],
                   os.fspath(path))


def resampled(library: Library, wavelength: np.ndarray,
              fwhm: np.ndarray | None = None) -> np.ndarray:
    """The library's spectra on bands of these centres and FWHM (nm): (n, bands), NaN on a
    band the library does not cover or whose library values are missing."""
    from spectral import BandResampler

    wavelength = np.asarray(wavelength, np.float64)
    order = np.argsort(wavelength, kind="stable")  # SPy sizes a band from its neighbours
    spy = logging.getLogger("spectral")  # SPy logs each band it cannot cover, at INFO
    level = spy.level
    spy.setLevel(logging.WARNING)
    try:
        matrix = np.empty((wavelength.size, library.wavelength.size))
        matrix[order] = BandResampler(library.wavelength, wavelength[order], library.fwhm,
                                      None if fwhm is None else np.asarray(fwhm)[order]).matrix
    finally:
        spy.setLevel(level)
    out = np.full((library.spectra.shape[0], len(wavelength)), np.nan)
    covered = np.isfinite(matrix).all(axis=1)
    weights = np.where(np.isfinite(matrix[covered]), matrix[covered], 0.0)
    touched = weights != 0
    values = np.nan_to_num(library.spectra)
    out[:, covered] = values @ weights.T
    # a band is missing where a library value it draws on is missing
    gaps = ~np.isfinite(library.spectra)
    out[:, covered] = np.where(gaps.astype(float) @ touched.T > 0, np.nan, out[:, covered])
    return out


def spectral_angles(spectra: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Angles in degrees (k, n) between ``spectra`` (k, bands) and ``references`` (n, bands),
    each pair over the bands where both have a value (NaN with fewer than
    :data:`MIN_BANDS`, or a spectrum of zeros)."""
    a_ok, b_ok = np.isfinite(spectra), np.isfinite(references)
    a, b = np.where(a_ok, spectra, 0.0), np.where(b_ok, references, 0.0)
    dot = a @ b.T
    a_norm = (a * a) @ b_ok.T.astype(float)  # |a|² over the bands b has too
    b_norm = a_ok.astype(float) @ (b * b).T
    common = a_ok.astype(float) @ b_ok.T.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = dot / np.sqrt(a_norm * b_norm)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return np.where((common >= MIN_BANDS) & (a_norm > 0) & (b_norm > 0), angle, np.nan)


def references(bands, library: Library) -> tuple[np.ndarray, np.ndarray]:
    """``(good, spectra)``: the good bands of ``bands`` (a cube, or a Dataset of
    :func:`hsad.outputs.spectra.region_spectra`: its ``wavelength``, ``fwhm`` and
    ``good_band``) that have a wavelength, and the library resampled to them. A
    ParameterError when the scene has no wavelengths or the library covers none of them:
    the CLI checks this before any work."""
    coords = bands.coords
    wavelength = np.asarray(coords["wavelength"].values, np.float64) \
        if "wavelength" in coords else np.full(bands.sizes["band"], np.nan)
    if not np.isfinite(wavelength).any():
        raise ParameterError("the scene has no wavelengths, so no library can be matched to "
                             "its bands", bands.attrs.get("source_path") or None)
    good = np.isfinite(wavelength)
    if "good_band" in coords:
        good &= np.asarray(coords["good_band"].values, bool)
    if good.sum() < MIN_BANDS:
        raise ParameterError(f"the scene has {int(good.sum())} good band(s) with a wavelength;"
                             f" an angle needs at least {MIN_BANDS}",
                             bands.attrs.get("source_path") or None)
    fwhm = np.asarray(coords["fwhm"].values, np.float64)[good] if "fwhm" in coords else None
    fwhm = fwhm if fwhm is not None and np.isfinite(fwhm).all() and (fwhm > 0).all() else None
    spectra = resampled(library, wavelength[good], fwhm)
    if (np.isfinite(spectra).sum(axis=1) < MIN_BANDS).all():
        raise ParameterError(f"the library ({library.wavelength.min():g}–"
                             f"{library.wavelength.max():g} nm) covers fewer than {MIN_BANDS} "
                             f"of the scene's good bands ({wavelength[good].min():g}–"
                             f"{wavelength[good].max():g} nm)", library.path)
    return good, spectra


def match_library(ds: xr.Dataset, library: Library | str | os.PathLike) -> xr.Dataset:
    """``ds`` (:func:`hsad.outputs.spectra.region_spectra`) with, for each region, the
    library spectrum nearest its mean spectrum: ``match`` (its name, empty for none),
    ``match_angle`` (degrees) and ``second_angle`` (the runner-up's angle; the margin says
    how sure the match is). The scene's bands need wavelengths."""
    lib = library if isinstance(library, Library) else read_library(library)
    good, refs = references(ds, lib)
    angles = spectral_angles(ds["mean_spectrum"].values[:, good].astype(np.float64), refs)
    n = ds.sizes["region"]
    order = np.argsort(np.where(np.isnan(angles), np.inf, angles), axis=1)
    rows = np.arange(n)
    best = angles[rows, order[:, 0]] if n else np.empty(0)
    second = angles[rows, order[:, 1]] if n and angles.shape[1] > 1 else np.full(n, np.nan)
    names = np.array([lib.names[i] if np.isfinite(a) else ""
                      for i, a in zip(order[:, 0] if n else [], best, strict=True)],
                     dtype=object)
    out = ds.assign(match=("region", names), match_angle=("region", best),
                    second_angle=("region", second))
    out.attrs["library"] = lib.path
    return out


__all__ = ["Library", "MIN_BANDS", "match_library", "read_library", "references",
           "resampled", "spectral_angles"]
