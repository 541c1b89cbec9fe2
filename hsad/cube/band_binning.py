"""Band binning: :func:`bin_bands` averages a cube's good bands into groups of adjacent
bands, for a scene with too few valid pixels for its band count (RX-type statistics
would be degenerate), keeping the whole spectral range at a coarser sampling."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from hsad.cube import (
    band_scaling,
    block_valid,
    georef,
    good_band_mask,
    make_cube,
    physical_scaling,
    with_band_scaling,
    wrap_numpy,
)
from hsad.engine.windows import single_threaded_linalg
from hsad.errors import ParameterError


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


__all__ = ["band_groups", "bin_bands"]
