"""Choosing the bands to analyse: :func:`select_bands`, :func:`match_model_bands` for
a saved model applied to a scene with more bands, and :func:`bin_bands` for a scene with
too few pixels for its band count.

Wavelengths are in nanometres (readers convert headers in micrometres); ranges include
both ends. Band indices are 0-based and a range ``LO:HI`` stops before ``HI``, as in a
Python slice. Every result is the same lazy cube, with fewer bands: nothing is computed.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from hsad.cube import (
    as_cube,
    band_scaling,
    block_valid,
    georef,
    good_band_mask,
    index_wavelength,
    make_cube,
    physical_scaling,
    with_band_scaling,
    wrap_numpy,
)
from hsad.detectors.scene_checks import (
    WAVELENGTH_REFUSE_NM,
    WAVELENGTH_WARN_NM,
    check_wavelengths,
    wavelength_shift,
)
from hsad.engine.windows import single_threaded_linalg
from hsad.errors import ModelError, ParameterError

Range = tuple[float | None, float | None]


def _number(text: str, name: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise ParameterError(f"{name}: {text!r} is not a number") from None


def parse_ranges(spec, name: str = "wavelengths") -> list[Range]:
    """``"400:900,1000:"`` → ``[(400, 900), (1000, None)]``; open ends are None. Already
    parsed ranges (pairs) pass through."""
    if spec is None:
        return []
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for part in parts:
        if isinstance(part, str):
            if part.count(":") != 1:
                raise ParameterError(f"{name}: {part.strip()!r} is not a range LO:HI "
                                     "(nm; LO or HI may be left out)")
            lo, hi = (None if not t.strip() else _number(t.strip(), name, float)
                      for t in part.split(":"))
        else:
            lo, hi = part
        if lo is not None and hi is not None and lo > hi:
            raise ParameterError(f"{name}: range {lo:g}:{hi:g} runs backwards")
        out.append((lo, hi))
    if not out:
        raise ParameterError(f"{name}: no range given")
    return out


def parse_indices(spec, n_bands: int | None = None, name: str = "bands") -> list[int]:
    """``"3,5,10:20"`` → band positions (0-based; ``LO:HI`` excludes HI, open ends allowed).

    ``spec`` may also be a slice or a sequence of ints. Without ``n_bands`` only the syntax
    is checked (and an open end is left unresolved).
    """
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else (
        [spec] if isinstance(spec, slice) else list(spec))
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
            index = _number(item.strip(), name, int) if isinstance(item, str) else int(item)
            if index < 0:
                raise ParameterError(f"{name}: band indices are 0-based, got {index}")
            out.append(index)
    if n_bands is not None:
        outside = [i for i in out if i >= n_bands]
        if outside:
            raise ParameterError(f"{name}: band {outside[0]} does not exist: the scene has "
                                 f"{n_bands} bands, numbered 0 to {n_bands - 1}")
    return out


def _in_ranges(wavelength: np.ndarray, ranges: list[Range]) -> np.ndarray:
    keep = np.zeros(wavelength.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for lo, hi in ranges:
            keep |= ((wavelength >= (-np.inf if lo is None else lo))
                     & (wavelength <= (np.inf if hi is None else hi)))
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
    from hsad.io.envi_header import wavelength_scale

    p = Path(path)
    check_input(p, "wavelength", ParameterError)
    header, rows = None, []
    for number, line in enumerate(p.read_text(encoding="utf-8-sig", errors="replace").splitlines()):
        fields = [f for f in re.split(r"[,;\s]+", line.split("#", 1)[0].strip()) if f]
        if not fields:
            continue
        try:
            rows.append([float(f) for f in fields])
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


def attach_wavelengths(cube: xr.DataArray, wavelength, fwhm=None) -> xr.DataArray:
    """``cube`` with these band wavelengths (nm) and fwhm, replacing the file's (for
    products whose wavelengths GDAL cannot read, e.g. a PRISMA cube exported to GeoTIFF)."""
    n = cube.sizes["band"]
    wavelength = np.asarray(wavelength, dtype=np.float64).reshape(-1)
    if wavelength.size != n:
        raise ParameterError(f"{wavelength.size} wavelengths for a scene of {n} bands",
                             cube.attrs.get("source_path"))
    fwhm = np.full(n, np.nan) if fwhm is None else np.asarray(fwhm, np.float64).reshape(-1)
    cube = cube.drop_indexes("wavelength") if "wavelength" in cube.xindexes else cube
    return index_wavelength(cube.assign_coords(wavelength=("band", wavelength),
                                               fwhm=("band", fwhm)))


def select_bands(cube: xr.DataArray, wavelengths=None, exclude_wavelengths=None, bands=None,
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
        cube = attach_wavelengths(cube, *read_wavelength_file(wavelength_file))
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


def _model_bands(detector) -> tuple[np.ndarray, np.ndarray | None]:
    """``(wavelengths, good mask or None)`` of the bands a fitted model reads from a cube:
    a neural model its good bands only (mask None), a statistics model every band."""
    wavelength = np.asarray(getattr(detector, "wavelength_", []), dtype=np.float64)
    if hasattr(detector, "n_bands_") and not hasattr(detector, "bands_"):
        return wavelength, None
    return wavelength, np.asarray(detector.bands_, dtype=bool)


def _model_flags(detector, good: np.ndarray | None) -> np.ndarray | None:
    """The bad-band flags a model was fitted under, over every band of its scene: a
    statistics model's ``bands_``, a neural model's ``band_mask_`` (None if it has none)."""
    if good is not None:
        return good
    mask = getattr(detector, "band_mask_", None)
    return None if mask is None else np.asarray(mask, dtype=bool)


def _fits(cube: xr.DataArray, detector) -> bool:
    """Whether a neural model takes ``cube``'s good bands as they are: as many as it was
    trained on, at its wavelengths where both have them."""
    scene_good = good_band_mask(cube)
    if int(scene_good.sum()) != int(detector.n_bands_):
        return False
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)[scene_good]
    return wavelength_shift(scene, detector.wavelength_) <= WAVELENGTH_REFUSE_NM


def _reordered(cube: xr.DataArray, wanted: np.ndarray, good, flags=None) -> np.ndarray | None:
    """The scene's bands at the model's wavelengths ``wanted`` (each within
    :data:`~hsad.detectors.scene_checks.WAVELENGTH_WARN_NM`, a band of its own) where the scene
    stores them in another order, and they do not pair up where they are stored; else
    None. Each pairing must be clear: the nearest scene band less than half as far as the
    next (EnMAP's two overlapping spectrometers, 0.3 nm apart, would swap under a drift of
    1 nm; 6 nm bands drifted 1.6 nm pair). ``good``: the model's band flags (a statistics
    model, every band), or None (a neural model: good bands only, ``flags`` their place
    among all of its scene's, when known)."""
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)
    pool = np.flatnonzero(np.isfinite(scene) & (good_band_mask(cube) if good is None
                                                 else True))
    if not np.isfinite(wanted).all() or pool.size < max(wanted.size, 2) or wanted.size < 2:
        return None
    if (flags is not None and flags.size == scene.size and int(flags.sum()) == wanted.size
            and wavelength_shift(scene[flags], wanted) <= WAVELENGTH_WARN_NM):
        return None  # where its flags put them
    distance = np.abs(scene[pool][None, :] - wanted[:, None])
    pick = pool[distance.argmin(axis=1)]
    nearest, second = np.partition(distance, 1, axis=1)[:, :2].T
    if (nearest.max() > WAVELENGTH_WARN_NM or np.any(nearest >= second / 2)
            or np.unique(pick).size != pick.size or np.all(np.diff(pick) > 0)):
        return None
    if pool.size == wanted.size and wavelength_shift(scene[pool], wanted) <= WAVELENGTH_WARN_NM:
        return None  # paired where stored
    return pick


def _at_model_wavelengths(cube: xr.DataArray, detector, flags: np.ndarray) -> bool:
    """Whether a neural model's bands sit, in ``cube``, where its flags put them: the
    scene's wavelengths there within :data:`~hsad.detectors.scene_checks.WAVELENGTH_WARN_NM` of
    the model's (or unknown). Otherwise its bands are found by wavelength."""
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)[flags]
    model = np.asarray(detector.wavelength_, dtype=np.float64)
    return scene.size == model.size and wavelength_shift(scene, model) <= WAVELENGTH_WARN_NM


def _check_same_sensor(cube: xr.DataArray, detector, flags: np.ndarray) -> None:
    """Refuse a scene with the model's band count whose wavelengths are another sensor's
    (before its flags are compared: "a different band set", not "retrain")."""
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)
    model = np.asarray(detector.wavelength_, dtype=np.float64)
    if model.size == int(flags.sum()) != flags.size:  # a neural model's: good bands only
        scene = scene[flags]
    if model.size == scene.size and wavelength_shift(scene, model) > WAVELENGTH_REFUSE_NM:
        check_wavelengths(scene, model, cube.attrs.get("source_path"))  # raises


def _band_list(cube: xr.DataArray, index: np.ndarray) -> str:
    """``"1513.6, 1690.9 nm"`` (``" ..."`` past eight), or ``"bands 4, 7"`` (1-based)
    where the scene has no wavelengths."""
    wavelength = np.asarray(cube["wavelength"].values, dtype=np.float64)[index]
    more = " ..." if index.size > 8 else ""
    if np.isfinite(wavelength).all():
        return ", ".join(f"{w:.1f}" for w in wavelength[:8]) + more + " nm"
    return "bands " + ", ".join(str(i + 1) for i in index[:8]) + more


def _with_model_flags(cube: xr.DataArray, good: np.ndarray) -> xr.DataArray:
    """``cube`` (the model's bands, other bad-band flags) with the flags the model was
    fitted under: bands the scene calls good and the model left out are set aside as at fit
    time; a band the model was fitted on that the scene marks bad is a
    :class:`ModelError`."""
    scene_good = good_band_mask(cube)
    if np.array_equal(scene_good, good):
        return cube
    lost = np.flatnonzero(good & ~scene_good)
    if lost.size:
        raise ModelError(f"the scene marks {lost.size} of the model's {int(good.sum())} bands "
                         f"bad ({_band_list(cube, lost)}); the model was fitted on them: "
                         "retrain it on this scene's good bands", cube.attrs.get("source_path"))
    return cube.assign_coords(good_band=cube["good_band"].copy(data=good))


def match_model_bands(cube: xr.DataArray, detector) -> xr.DataArray:
    """``cube`` with the bands a fitted ``detector`` was trained on, chosen by wavelength.

    A cube with as many bands as the model's scene had (the same bands, by position; for
    a neural model, only when the scene's wavelengths there are the model's within
    :data:`~hsad.detectors.scene_checks.WAVELENGTH_WARN_NM`) is used with the bad-band flags the
    model was fitted under: the bands it left out are set
    aside, and a band it needs that the scene marks bad is a :class:`ModelError` (so is a
    scene of another sensor's wavelengths, beyond
    :data:`~hsad.detectors.scene_checks.WAVELENGTH_REFUSE_NM`; nearer ones the detector checks).
    A neural model also takes a cube with its good-band count at its wavelengths as it is.
    Otherwise each of the model's wavelengths takes the scene's nearest band (a good band,
    when the model used only good ones); one farther than ``WAVELENGTH_REFUSE_NM`` is
    missing: a :class:`ModelError` names the missing wavelengths (of a statistics model,
    those it used: its bad bands may be missing, and stay bad). Detectors without a band
    record pass through.
    """
    if not hasattr(detector, "wavelength_"):
        return cube
    wanted, good = _model_bands(detector)
    flags = _model_flags(detector, good)
    order = _reordered(cube, wanted, good, flags)
    if order is not None:  # the model's bands, stored in another order
        matched = cube.isel(band=order)
        return matched if good is None else _with_model_flags(matched, good)
    if flags is not None and cube.sizes["band"] == flags.size and (
            good is not None or _at_model_wavelengths(cube, detector, flags)):
        _check_same_sensor(cube, detector, flags)
        return _with_model_flags(cube, flags)
    if good is None and _fits(cube, detector):
        return cube
    path = cube.attrs.get("source_path")
    n_model, n_scene = wanted.size, cube.sizes["band"]
    scene = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if not np.isfinite(wanted).all():
        raise ModelError(f"the model was trained on {n_model} bands and the scene has "
                         f"{n_scene}; the model records no wavelengths to find its bands by",
                         path)
    candidates = np.flatnonzero(np.isfinite(scene) & (
        good_band_mask(cube) if good is None or good.all() else True))
    if candidates.size == 0:
        raise ModelError(f"the model was trained on {n_model} bands and the scene has "
                         f"{n_scene}, without wavelengths to find them by; select the "
                         "model's bands with --bands", path)
    distance = np.abs(scene[candidates][None, :] - wanted[:, None])
    nearest = candidates[distance.argmin(axis=1)]
    # a statistics model's bad bands hold its layout only: any band stands in for them
    needed = np.ones(n_model, bool) if good is None else good
    missing = wanted[needed & (distance.min(axis=1) > WAVELENGTH_REFUSE_NM)]
    if missing.size:
        shown = ", ".join(f"{w:.1f}" for w in missing[:8]) + (" ..." if missing.size > 8 else "")
        raise ModelError(f"the scene lacks {missing.size} of the model's {n_model} "
                         f"wavelengths (no band within {WAVELENGTH_REFUSE_NM:g} nm): {shown} nm",
                         path)
    if np.unique(nearest[needed]).size != int(needed.sum()):
        gap = distance.min(axis=1)
        own = np.zeros(n_model, bool)  # each scene band: the model band nearest to it
        for band in np.unique(nearest[needed]):
            takers = np.flatnonzero(needed & (nearest == band))
            own[takers[np.argmin(gap[takers])]] = True
        lone = wanted[needed & ~own]
        shown = ", ".join(f"{w:.1f}" for w in lone[:8]) + (" ..." if lone.size > 8 else "")
        raise ModelError(f"several of the model's {n_model} bands would read the same scene "
                         f"band: {lone.size} have no scene band of their own ({shown} nm); "
                         "the scene's bands are farther apart, or it marks some of the "
                         "model's bands bad", path)
    matched = cube.isel(band=nearest)
    if good is not None and (stand_in := ~needed & (distance.min(axis=1) > WAVELENGTH_WARN_NM)
                             ).any():  # no wavelength of their own: unknown, and bad
        wavelength = np.where(stand_in, np.nan, scene[nearest])
        matched = matched.assign_coords(wavelength=("band", wavelength))
    return matched if good is None else _with_model_flags(matched, good)


def band_groups(n_bands: int, n_groups: int) -> np.ndarray:
    """``(n_bands, n_groups)`` averaging matrix: adjacent bands in ``n_groups`` runs whose
    lengths differ by at most one (longer runs first, as ``numpy.array_split``); each column
    holds ``1/length`` on its run, so ``spectra @ band_groups(B, G)`` are the group means."""
    if not 1 <= n_groups <= n_bands:
        raise ParameterError(f"n_groups must be 1 to {n_bands} (the bands), got {n_groups}")
    group = np.repeat(np.arange(n_groups), [len(r) for r in
                                            np.array_split(np.arange(n_bands), n_groups)])
    weights = np.zeros((n_bands, n_groups))
    weights[np.arange(n_bands), group] = 1.0
    return weights / weights.sum(axis=0)


def _group_extent(weights: np.ndarray, wavelength: np.ndarray, fwhm: np.ndarray):
    """Each group's mean wavelength and the width it spans (NaN where unknown)."""
    member = weights > 0
    centre = wavelength @ weights
    lo = np.where(member, (wavelength - fwhm / 2)[:, None], np.inf).min(axis=0)
    hi = np.where(member, (wavelength + fwhm / 2)[:, None], -np.inf).max(axis=0)
    with np.errstate(invalid="ignore"):
        width = np.where(np.isfinite(hi - lo), hi - lo, np.nan)
    return centre, width


def _binned(block: np.ndarray, nodata, weights: np.ndarray, scaling=None) -> np.ndarray:
    """A block's bands averaged by ``weights`` (float64 sums), NaN where it holds no data: one
    blockwise step, so the cube is read once (a separate mask would read it again).
    ``scaling``: per-band ``(gain, offset)`` applied first (bands of different gains
    average in physical units)."""
    out = block.astype(np.float64)
    out[~block_valid(block, nodata)] = np.nan
    if scaling is not None:
        out = out * scaling[0] + scaling[1]
    with single_threaded_linalg():  # dask runs one block per core
        return (out @ weights).astype(np.float32)


def bin_bands(cube: xr.DataArray, n_groups: int) -> xr.DataArray:
    """``cube`` with its good bands averaged into ``n_groups`` groups of adjacent bands (in
    the cube's band order: a sensor whose detectors overlap, as EnMAP's VNIR and SWIR, keeps
    its order).

    For scenes with fewer valid pixels than bands, where RX-type statistics are degenerate:
    averaging keeps the whole spectral range at a coarser sampling (unlike a band subset).
    Bad bands (``good_band``) are dropped first; nodata pixels become NaN (the result is
    float32, averaged in float64); each group's wavelength is the mean of its bands' and
    its ``fwhm`` the span of their widths (NaN where unknown). A group whose bands share a
    scale and offset keeps them (its values averaged as stored); where they differ within
    a group, bands are averaged in physical units (:func:`hsad.cube.physical_scaling`),
    which the result then holds. Lazy, like the input; georeference and attributes follow.
    Groups from :func:`band_groups`.
    """
    good = good_band_mask(cube)
    cube = cube.transpose("y", "x", "band").isel(band=np.flatnonzero(good))
    if not isinstance(cube.data, da.Array):  # an in-memory cube: lazy views over it
        cube = cube.copy(data=wrap_numpy(np.asarray(cube.data)))
    weights = band_groups(cube.sizes["band"], int(n_groups))
    own = band_scaling(cube)
    member = weights > 0
    same = own is None or all(
        np.ptp(np.asarray(values)[member[:, j]]) == 0
        for values in own for j in range(weights.shape[1]))
    # bands of one gain and offset a group average as stored (the group keeps them);
    # bands of different ones, in physical units (which the result then holds)
    scaling = None if same else physical_scaling(cube)
    data = cube.data.rechunk({2: -1})
    data = data.map_blocks(_binned, cube.attrs.get("nodata"), weights, scaling,
                           chunks=data.chunks[:2] + ((weights.shape[1],),), dtype=np.float32,
                           meta=np.empty((0, 0, 0), np.float32))
    wavelength = np.asarray(cube["wavelength"].values, dtype=np.float64)
    fwhm = np.asarray(cube["fwhm"].values, dtype=np.float64)
    centre, width = _group_extent(weights, wavelength, fwhm)
    crs, transform = georef(cube)
    scaled = ("reflectance_scale_factor", "scale_applied") if scaling is not None else ()
    attrs = {k: v for k, v in cube.attrs.items()
             if k not in ("nodata", "source_format", "source_path", *scaled)}
    attrs["hsad_binned"] = f"{good.sum()} good bands averaged into {n_groups} groups"
    out = make_cube(data, transform=transform, crs=crs,
                    wavelength=centre, fwhm=width, source_format=cube.attrs.get(
                        "source_format"), source_path=cube.attrs.get("source_path"),
                    attrs=attrs, name=cube.name or "cube")
    if own is not None and same:
        first = member.argmax(axis=0)  # a group's gain and offset: any of its bands'
        out = with_band_scaling(out, np.asarray(own[0])[first], np.asarray(own[1])[first])
    return out


__all__ = ["attach_wavelengths", "band_groups", "bin_bands", "match_model_bands",
           "parse_indices", "parse_ranges", "read_wavelength_file", "select_bands"]
