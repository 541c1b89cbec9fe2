"""The spectra of the detections, to tell what was found: each region's peak pixel and mean
spectrum beside the background's mean and standard deviation (:func:`region_spectra`, an
xarray Dataset), written as a CSV table or an ENVI spectral library (:func:`write_spectra`).

Regions are those :mod:`hsad.outputs.polygons` traces, with the same ids. An EMIT granule's
regions lie on its lookup table's grid, and their spectra come from the instrument pixels
its cells hold, each pixel once. Values are in the file's physical units (band scales and
offsets, ENVI's reflectance scale factor applied), missing values (NaN, nodata) left out of
the means band by band. Pixels are read in batches ordered by the cube's chunks, so each
chunk is read about once and memory stays bounded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import sparse

from hsad.cube import band_numbers, missing_values
from hsad.errors import ParameterError
from hsad.io import printable
from hsad.io.glt import map_values
from hsad.outputs.polygons import label_regions

#: Pixels read from the cube at once (:func:`region_spectra`).
BATCH = 65_536
#: Output formats by suffix.
FORMATS = {".csv": "CSV table", ".sli": "ENVI spectral library"}
#: The per-region fields of :func:`region_spectra`, in the CSV's column order.
FIELDS = ("area_px", "pixels", "peak_score", "peak_row", "peak_col", "peak_x", "peak_y",
          "peak_lon", "peak_lat")
_BAND_COORDS = ("wavelength", "fwhm", "good_band", "band_name")


def region_spectra(cube: xr.DataArray, mask, scores, *, min_pixels: int = 1,
                   connectivity: int = 8, background: bool = True,
                   batch: int = BATCH) -> xr.Dataset:
    """The spectra of the connected regions of ``mask`` (a ``(y, x)`` map on ``cube``'s
    grid, as :meth:`BaseDetector.threshold` gives it; an array is taken on the cube's
    georeference) with ``scores`` (the score map).

    Returns a Dataset on dims ``region`` (coordinate ``id``: 1 … n, as :func:`polygons`
    numbers them) and ``band`` (the cube's band coordinates), spectra in the file's
    physical units (:func:`_scaling`):

    - ``peak_spectrum``: the pixel of the region's highest score (the first in raster
      order among ties); ``mean_spectrum``: the mean over the region's pixels, each once;
    - ``area_px`` (cells, as the polygons count them), ``pixels`` (distinct scene pixels:
      fewer than ``area_px`` where an EMIT table repeats one), ``peak_score``;
    - ``peak_row``/``peak_col``: the peak pixel in the cube (an EMIT granule's: downtrack,
      crosstrack); ``peak_x``/``peak_y``: its centre in the polygons' coordinates (attr
      ``crs``, WKT, empty for pixel coordinates); ``peak_lon``/``peak_lat``: WGS 84
      degrees (NaN without a CRS);
    - ``background_mean``/``background_std`` (band): over the pixels with a finite score
      outside the mask (attr ``background_pixels``); skipped (NaN) with
      ``background=False``, which saves a pass over the cube.
    """
    cube = cube.transpose("y", "x", "band") if cube.ndim == 3 else cube
    if cube.ndim != 3:
        raise ParameterError(f"region_spectra needs a (y, x, band) cube, got shape {cube.shape}")
    shape = cube.shape[:2]
    mask, scores = _on_cube(mask, cube), _on_cube(scores, cube)
    for what, map_ in (("mask", mask), ("score map", scores)):
        if tuple(np.shape(map_)) != shape:
            raise ParameterError(f"the {what}'s shape {tuple(np.shape(map_))} is not the "
                                 f"cube's {shape}")
    if int(batch) < 1:
        raise ParameterError(f"batch must be at least 1, got {batch!r}")
    lab = label_regions(mask, min_pixels, connectivity)
    s = np.asarray(map_values(scores), np.float64)
    bands = cube.shape[2]
    n = lab.n
    cells = np.flatnonzero(lab.labels)
    region = lab.labels.ravel()[cells].astype(np.int64)
    if lab.glt is None:
        source = cells.astype(np.int64)
    else:  # the instrument pixel each grid cell holds
        source = lab.glt.rows.ravel()[cells].astype(np.int64) * shape[1] \
            + lab.glt.cols.ravel()[cells]
    cell_score = lab.on_frame(s).ravel()[cells]
    order = np.lexsort((-np.where(np.isfinite(cell_score), cell_score, -np.inf), region))
    first = order[np.r_[0, np.flatnonzero(np.diff(region[order])) + 1]] if n else order
    peak_cell, peak_source = cells[first], source[first]
    pairs = np.unique(region * (shape[0] * shape[1]) + source)  # each pixel once a region
    pair_region, pair_source = np.divmod(pairs, shape[0] * shape[1])
    pixels = np.bincount(pair_region, minlength=n + 1)[1:]
    peak, mean = _gather_spectra(cube, pair_region - 1, pair_source, peak_source, n, batch)
    gain, offset = _scaling(cube)
    fields = {
        "area_px": lab.area_px.astype(np.int64), "pixels": pixels.astype(np.int64),
        "peak_score": cell_score[first] if n else np.empty(0),
        **_locations(lab, peak_cell, peak_source, shape[1]),
    }
    fields["peak_score"] = np.where(np.isfinite(fields["peak_score"]), fields["peak_score"],
                                    np.nan)
    bg_mean = bg_std = np.full(bands, np.nan)
    bg_count = 0
    if background:
        taken = np.isfinite(s) & ~_mask_values(mask)
        bg_mean, bg_std, bg_count = _background(cube, taken)
    coords = {"id": ("region", np.arange(1, n + 1))}
    coords.update({k: ("band", cube[k].values) for k in _BAND_COORDS if k in cube.coords})
    if "band" in cube.coords:  # the file's band numbers (band_N columns)
        coords["band"] = ("band", np.asarray(cube["band"].values))
    attrs = {"crs": "" if lab.crs is None else lab.crs.to_wkt(),
             "background_pixels": int(bg_count),
             "source_path": str(cube.attrs.get("source_path") or ""),
             "units": str(cube.attrs.get("units") or "")}
    data = {"peak_spectrum": (("region", "band"), _scaled(peak, gain, offset, batch)),
            "mean_spectrum": (("region", "band"), _scaled(mean, gain, offset, batch)),
            "background_mean": ("band", (bg_mean * gain + offset).astype(np.float32)),
            "background_std": ("band", (bg_std * np.abs(gain)).astype(np.float32))}
    data.update({k: ("region", v) for k, v in fields.items()})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _scaled(spectra: np.ndarray, gain: np.ndarray, offset: np.ndarray, batch: int
            ) -> np.ndarray:
    """``spectra * gain + offset`` (float32 spectra, computed in float64), in place and in
    pieces of ``batch`` rows: the table can be the size of the scene's detections."""
    for i in range(0, spectra.shape[0], int(batch)):
        spectra[i:i + int(batch)] = spectra[i:i + int(batch)] * gain + offset
    return spectra


def _scaling(cube: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band ``(gain, offset)`` to the file's physical units
    (:func:`hsad.cube.physical_scaling`), the identity where the file gives none."""
    from hsad.cube import physical_scaling

    scaling = physical_scaling(cube)
    bands = cube.shape[2]
    return (np.ones(bands), np.zeros(bands)) if scaling is None else scaling


def _on_cube(map_, cube: xr.DataArray):
    """A map given as an array, as a DataArray on ``cube``'s grid (its georeference, an EMIT
    granule's lookup table): the frame its regions are traced in."""
    if isinstance(map_, xr.DataArray):
        return map_.transpose("y", "x") if set(map_.dims) == {"y", "x"} else map_
    values = np.asarray(map_)
    if values.shape != cube.shape[:2]:
        return values  # refused by the caller, which names the map
    return cube.isel(band=0, drop=True).copy(data=values)


def _mask_values(mask) -> np.ndarray:
    m = map_values(mask)
    return np.isfinite(m) & (m != 0) if m.dtype != bool else m


def _chunk_order(data, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """An order of the pixels ``(rows, cols)`` that visits the chunks of ``data`` one by one."""
    chunks = getattr(data, "chunks", None)
    if chunks is None:
        return np.arange(rows.size)
    by = np.searchsorted(np.cumsum(chunks[0]), rows, side="right")
    bx = np.searchsorted(np.cumsum(chunks[1]), cols, side="right")
    return np.argsort(by * len(chunks[1]) + bx, kind="stable")


def _read(data, rows: np.ndarray, cols: np.ndarray, nodata) -> np.ndarray:
    """The spectra of pixels ``(rows, cols)`` as float64, NaN where a value is missing."""
    raw = data.vindex[rows, cols].compute() if hasattr(data, "vindex") \
        else np.asarray(data)[rows, cols]
    values = raw.astype(np.float64)
    values[missing_values(raw, nodata)] = np.nan
    return values


def _gather_spectra(cube, pair_region, pair_source, peak_source, n, batch):
    """``(peak, mean)`` spectra, (n, band) float32, from the (region, pixel) pairs."""
    bands = cube.shape[2]
    peak = np.full((n, bands), np.nan, np.float32)
    mean = np.full((n, bands), np.nan, np.float32)
    if n == 0:
        return peak, mean
    data, nodata, width = cube.data, cube.attrs.get("nodata"), cube.shape[1]
    distinct, pair_index = np.unique(pair_source, return_inverse=True)
    rows, cols = np.divmod(distinct, width)
    order = _chunk_order(data, rows, cols)
    position = np.empty(distinct.size, np.int64)
    position[order] = np.arange(distinct.size)
    pair_position = position[pair_index]
    by_position = np.argsort(pair_position, kind="stable")
    pair_region, pair_position = pair_region[by_position], pair_position[by_position]
    peak_position = position[np.searchsorted(distinct, peak_source)]
    sums = np.zeros((n, bands))
    counts = None  # values counted band by band once one is missing; else the pixels
    for start in range(0, distinct.size, int(batch)):
        take = order[start:start + int(batch)]
        values = _read(data, rows[take], cols[take], nodata)
        good = np.isfinite(values)
        lo, hi = np.searchsorted(pair_position, [start, start + take.size])
        touched, local = np.unique(pair_region[lo:hi], return_inverse=True)
        member = sparse.csr_matrix((np.ones(hi - lo), (local, pair_position[lo:hi] - start)),
                                   shape=(touched.size, take.size))
        here = (peak_position >= start) & (peak_position < start + take.size)
        peak[here] = values[peak_position[here] - start]
        if counts is None and not good.all():  # int32: exact, half of float64's memory
            counts = np.repeat(np.bincount(pair_region[:lo], minlength=n)[:, None]
                               .astype(np.int32), bands, axis=1)
        if counts is not None:  # a batch's counts, exact in float32 up to 2²⁴ pixels
            exact = np.float32 if take.size <= 2**24 else np.float64
            counts[touched] += (member @ good.astype(exact)).astype(np.int32)
        values[~good] = 0.0
        sums[touched] += member @ values
    if counts is None:
        counts = np.bincount(pair_region, minlength=n).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(0, n, int(batch)):  # in pieces: no (region, band) float64 temporaries
            count = counts[i:i + int(batch)]
            part = sums[i:i + int(batch)] / count
            part[np.broadcast_to(count == 0, part.shape)] = np.nan
            mean[i:i + int(batch)] = part
    return peak, mean


def _locations(lab, peak_cell, peak_source, width) -> dict[str, np.ndarray]:
    """The peak pixels' rows and columns in the cube, centres in the polygons' coordinates
    and WGS 84 longitude and latitude."""
    row, col = np.divmod(peak_source, width)
    frame_row, frame_col = np.divmod(peak_cell, lab.labels.shape[1])
    x, y = lab.affine @ (frame_col + 0.5, frame_row + 0.5)
    xy = np.column_stack([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    if lab.to_ground is not None and len(xy):  # GCPs or RPCs: placed as gdalwarp places them
        xy = np.asarray(lab.to_ground(xy), np.float64)
    lon = lat = np.full(len(xy), np.nan)
    crs = lab.crs
    if crs is not None and (crs.is_geographic or crs.is_projected) and len(xy):
        from pyproj import CRS as ProjCRS
        from pyproj import Transformer

        to_wgs84 = Transformer.from_crs(ProjCRS.from_wkt(crs.to_wkt()), "EPSG:4326",
                                        always_xy=True)
        lon, lat = (np.asarray(v, np.float64) for v in to_wgs84.transform(xy[:, 0], xy[:, 1]))
    return {"peak_row": row.astype(np.int64), "peak_col": col.astype(np.int64),
            "peak_x": xy[:, 0], "peak_y": xy[:, 1], "peak_lon": _in_range(lon), "peak_lat": lat}


def _in_range(lon: np.ndarray) -> np.ndarray:
    """Longitudes in [-180, 180): a scene placed across the antimeridian by control points
    past 180 (continuous for GDAL's polynomial) gives the usual longitude; others are
    kept to the last digit."""
    lon = np.asarray(lon, np.float64)
    return np.where((lon < -180) | (lon >= 180), (lon + 180) % 360 - 180, lon)


def _background(cube, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and standard deviation, band by band, of the pixels ``taken`` (a (y, x) bool
    map), block by block of the cube (:func:`_band_moments`, merged as Chan et al. do);
    missing values left out, NaN for a band missing everywhere."""
    import dask
    import dask.array as da

    data = cube.data if isinstance(cube.data, da.Array) else da.from_array(
        np.asarray(cube.data), chunks=(512, 512, -1))
    data = data.rechunk({2: -1})
    keep = da.from_array(taken, chunks=data.chunks[:2]).to_delayed().ravel()
    nodata = cube.attrs.get("nodata")
    parts = [dask.delayed(_band_moments)(block, k, nodata)
             for block, k in zip(data.to_delayed()[:, :, 0].ravel(), keep, strict=True)]
    total = (np.zeros(data.shape[2]),) * 3
    for part in dask.compute(*parts):
        total = _merge(total, part)
    n, mean, m2 = total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, mean, np.nan), np.where(n > 0, np.sqrt(m2 / n), np.nan), \
            int(taken.sum())


def _merge(a, b):
    """Per-band ``(count, mean, sum of squared deviations)`` of two sets together."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, nb / n, 0.0)
    delta = mb - ma
    return n, ma + delta * share, sa + sb + delta * delta * na * share


def _band_moments(block: np.ndarray, keep: np.ndarray, nodata):
    """Per-band ``(count, mean, sum of squared deviations)`` of the pixels ``keep`` of a
    ``(rows, cols, band)`` block, in pieces of :data:`PIECE_PIXELS` (float64 copies of a
    piece only)."""
    from hsad.engine.windows import PIECE_PIXELS

    bands = block.shape[2]
    total = (np.zeros(bands),) * 3
    step = max(1, PIECE_PIXELS // max(block.shape[1], 1))
    for r in range(0, block.shape[0], step):
        rows = keep[r:r + step].reshape(-1)
        if not rows.any():
            continue
        raw = block[r:r + step].reshape(-1, bands)
        raw = raw if rows.all() else raw[rows]
        x = raw.astype(np.float64)
        missing = missing_values(raw, nodata)
        if missing.any():
            x[missing] = np.nan
            n = np.isfinite(x).sum(axis=0).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(n > 0, np.nansum(x, axis=0) / np.maximum(n, 1), 0.0)
            x -= mean
            x[missing] = 0.0
        else:  # the common case: no NaN machinery
            n = np.full(bands, float(len(x)))
            mean = x.sum(axis=0) / len(x)
            x -= mean
        total = _merge(total, (n, mean, np.einsum("ij,ij->j", x, x)))
    return total


def _band_labels(ds: xr.Dataset, taken: tuple[str, ...] = ()) -> list[str]:
    """CSV column names of the bands: wavelengths in nm, else band names, else band_N by
    the file's band number (whichever names every band once, none of them a name in ``taken``)."""
    bands = ds.sizes["band"]
    if "wavelength" in ds.coords:
        w = np.asarray(ds["wavelength"].values, np.float64)
        names = [f"{v:.6g}" for v in w]
        if np.isfinite(w).all() and len(set(names)) == bands:
            return names
    if "band_name" in ds.coords:
        names = [str(v) for v in ds["band_name"].values]
        if len(set(names)) == bands and all(names) and not set(names) & set(taken):
            return names
    numbers = band_numbers(ds)  # the file's (101 … 110 for --bands 100:110), else 1 … B
    if numbers is None or len(set(numbers.tolist())) != bands:
        numbers = range(1, bands + 1)
    return [f"band_{int(n)}" for n in numbers]


def spectra_files(path: str | os.PathLike) -> list[Path]:
    """The files :func:`write_spectra` writes to ``path``: the table, or the library and its
    header (``name.hdr``, ENVI's naming), with the headers readers would take first. A
    ``name.hdr`` that is another cube's header (``name.img`` beside it) is a
    ParameterError: the library would replace it."""
    p = Path(path)
    if p.suffix.lower() != ".sli":
        return [p]
    from hsad.io.envi_files import find_data
    from hsad.io.envi_writer import stale_headers

    header = p.with_suffix(".hdr")
    if header.is_file():
        owner = find_data(header)
        if owner is not None and owner.name.lower() != p.name.lower():
            raise ParameterError(f"its header would be {header.name}, the header of "
                                 f"{owner.name}: choose another name", p)
    return [p, header, *stale_headers(p, header)]


def write_spectra(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write :func:`region_spectra` to ``path``, atomically; returns it.

    - ``.csv``: one row a spectrum, columns ``id`` (0: the background), ``spectrum``
      (``peak``, ``mean``, ``background_mean``, ``background_std``, and ``good_band``: 1
      for a good band, 0 for a bad one), the region fields (:data:`FIELDS`, the same on a
      region's two rows), ``crs`` (that of ``peak_x``, ``peak_y``) and, after
      :func:`hsad.outputs.library_match.match_library`, ``match``, ``match_angle`` and
      ``second_angle``; then one column a band named by its wavelength in nm (else its
      band name, else ``band_N``).
    - ``.sli``: an ENVI spectral library (float32, with ``name.hdr``) of the spectra,
      named ``background mean``, ``background std``, ``region N peak``, ``region N mean``,
      with the wavelengths, FWHM and bad-band list; ENVI, the EnMAP-Box and SPy read it. A
      ``name.hdr`` of another cube (the scene's own) is refused.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise ParameterError(f"unknown spectra format {p.suffix!r} (use .csv or .sli)", p)
    return _write_csv(ds, p) if suffix == ".csv" else _write_library(ds, p)


#: Regions written at once (a table of many detections is written in pieces)
WRITE_BLOCK = 16_384


def _blocks(n: int):
    """``(start, stop)`` of the regions written at once."""
    return ((i, min(i + WRITE_BLOCK, n)) for i in range(0, n, WRITE_BLOCK))


def _region_rows(ds: xr.Dataset, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """The spectra of regions ``start:stop``, a row each: peak, mean, peak, mean …; and
    their ids."""
    part = ds.isel(region=slice(start, stop))
    rows = np.empty((2 * (stop - start), ds.sizes["band"]), np.float32)
    rows[0::2], rows[1::2] = part["peak_spectrum"].values, part["mean_spectrum"].values
    return rows, np.repeat(part["id"].values, 2)


def _crs_text(wkt: str) -> str:
    """A CRS as ``AUTHORITY:CODE`` where it has one, else its WKT; empty for none."""
    if not wkt:
        return ""
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt)
    code = crs.to_authority()
    return f"{code[0]}:{code[1]}" if code else wkt


def _write_csv(ds, path: Path) -> Path:
    from hsad.io.atomic import atomic_path

    good = ds["good_band"].values.astype(np.float32) if "good_band" in ds.coords else \
        np.ones(ds.sizes["band"], np.float32)
    head = np.stack([ds["background_mean"].values, ds["background_std"].values, good])
    crs = _crs_text(ds.attrs.get("crs", ""))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        first = _csv_frame(ds, head, np.zeros(3, np.int64),
                           ["background_mean", "background_std", "good_band"], None, crs)
        first.to_csv(out, index=False, float_format="%.7g", na_rep="")
        for start, stop in _blocks(ds.sizes["region"]):
            rows, ids = _region_rows(ds, start, stop)
            frame = _csv_frame(ds, rows, ids, ["peak", "mean"] * (stop - start),
                               ds.isel(region=slice(start, stop)), crs)
            frame.to_csv(out, index=False, header=False, float_format="%.7g", na_rep="")
    return path


def _csv_frame(ds, spectra, ids, kinds, regions, crs: str):
    """The CSV rows of ``spectra`` (a row each; ``regions``: their regions' fields, each on
    its two rows, None for the background's rows, which leave them blank)."""
    import pandas as pd

    rows = len(ids)
    table = pd.DataFrame({"id": ids, "spectrum": kinds})

    def field(name):
        return (np.full(rows, np.nan) if regions is None else
                np.repeat(regions[name].values.astype(np.float64), 2))

    for name in FIELDS:
        values = field(name)
        if name in ("area_px", "pixels", "peak_row", "peak_col"):
            table[name] = pd.Series(values).astype("Int64")  # blank for the background
        else:  # full precision: coordinates need more digits than spectra
            table[name] = [repr(float(v)) if np.isfinite(v) else "" for v in values]
    table["crs"] = [""] * rows if regions is None else [crs] * rows
    if "match" in ds:  # hsad.outputs.library_match
        table["match"] = ([""] * rows if regions is None else
                          list(np.repeat(regions["match"].values, 2)))
        for name in ("match_angle", "second_angle"):
            table[name] = [f"{v:.3f}" if np.isfinite(v) else "" for v in field(name)]
    spectra = pd.DataFrame(spectra, columns=_band_labels(ds, tuple(table.columns)))
    return pd.concat([table, spectra], axis=1)


def _write_library(ds, path: Path) -> Path:
    from hsad.io.atomic import atomic_paths
    from hsad.io.envi_writer import _clean, _list, band_lines, remove_headers, stale_headers

    header = path.with_suffix(".hdr")
    spectra_files(path)  # another cube's header (the scene's own) is refused
    n = ds.sizes["region"]
    ids = ds["id"].values
    names = ["background mean", "background std"] + [
        f"region {i} {kind}" for i in ids for kind in ("peak", "mean")]
    source = printable(ds.attrs.get("source_path") or "a cube")  # a Latin-1 name had raised
    lines = ["ENVI", f"description = {{{_clean(f'hsad detection spectra of {source}', False)}}}",
             f"samples = {ds.sizes['band']}", f"lines   = {2 * n + 2}", "bands   = 1",
             "header offset = 0", "file type = ENVI Spectral Library", "data type = 4",
             "interleave = bsq", "byte order = 0"]
    lines += band_lines(ds.coords, complete=True)
    lines.append(f"spectra names = {_list(names, _clean)}")
    stale = stale_headers(path, header)
    with atomic_paths(path, header) as (tmp_data, tmp_header):
        with open(tmp_data, "wb") as out:
            for name in ("background_mean", "background_std"):
                out.write(ds[name].values.astype("<f4").tobytes())
            for start, stop in _blocks(n):
                out.write(_region_rows(ds, start, stop)[0].astype("<f4").tobytes())
        tmp_header.write_text("\n".join(lines) + "\n", encoding="utf-8")
    remove_headers(stale, header)  # readers would take them before ours
    return path


__all__ = ["BATCH", "FIELDS", "FORMATS", "region_spectra", "spectra_files", "write_spectra"]
