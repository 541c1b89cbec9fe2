"""Chunk-streamed statistics: one pass over a cube's chunks, never the whole scene.

Partial results per chunk are ``(n, mean, scatter)`` and are merged with Chan's
parallel update, which stays accurate in float64 where the naive
``E[xxᵀ] − μμᵀ`` loses digits on large radiance values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.local import get_sync

from hsad.cube import can_miss, good_band_mask, missing_values, nodata_hits, valid_mask
from hsad.engine.windows import PIECE_PIXELS, single_threaded_linalg
from hsad.errors import DegenerateDataWarning, ParameterError


@dataclass
class Moments:
    """Pixel count, band means and scatter matrix Σ(x−μ)(x−μ)ᵀ (float64)."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray

    @property
    def cov(self) -> np.ndarray:
        """Covariance normalised by N (as the HAD literature's RX does)."""
        return self.scatter / max(self.n, 1)

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        return Moments(n, mean, scatter)


def valid_rows(pixels: np.ndarray, nodata: float | None = None) -> np.ndarray | None:
    """Flat boolean per pixel of ``pixels`` (…, bands): finite and no band at ``nodata``.

    The same rule as :func:`hsad.cube.valid_mask`; None when every pixel is valid.
    """
    ok = None
    if np.issubdtype(pixels.dtype, np.floating):
        ok = np.isfinite(pixels).all(axis=-1)
    if nodata is not None and np.isfinite(nodata):
        hit = nodata_hits(pixels, nodata).any(axis=-1)
        ok = ~hit if ok is None else ok & ~hit
    return None if ok is None or ok.all() else ok.reshape(-1)


def block_moments(
    block: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    screen: bool = False,
    nodata: float | None = None,
) -> Moments:
    """Moments of the pixels of one (rows, cols, bands) block.

    ``valid`` selects pixels; ``screen=True`` instead drops non-finite pixels and those
    with a band at ``nodata`` (as :func:`valid_rows`), piece by piece. The block is
    converted to float64 and centred piece by piece, each piece's scatter being one
    symmetric rank-k product about a reference pixel (corrected for the mean shift), and the
    pieces are merged with Chan's update.
    """
    block = np.asarray(block)
    if block.ndim == 2:
        block = block[None]
    b = block.shape[-1]
    keep = None if valid is None else np.asarray(valid, dtype=bool).reshape(block.shape[:2])
    step = max(1, PIECE_PIXELS // max(block.shape[1], 1))
    total = Moments(0, np.zeros(b), np.zeros((b, b)))
    buf = np.empty((min(step, block.shape[0]), block.shape[1], b))  # reused: no page faults
    ones = np.ones(step * block.shape[1])
    # finite values are screened after the cast, from the piece's band sums (finite iff
    # every value is): one matrix-vector product instead of a full isfinite pass
    by_sums = screen and np.issubdtype(block.dtype, np.floating)
    by_values = screen and nodata is not None and np.isfinite(nodata)
    ref = None
    with single_threaded_linalg():
        for r in range(0, block.shape[0], step):
            raw = block[r : r + step]
            first = ref is None
            ok = valid_rows(raw, nodata) if (screen and first) or by_values else None
            if keep is not None:
                rows = keep[r : r + step].reshape(-1)
                ok = rows if ok is None else ok & rows
            if ok is not None and not ok.any():
                continue
            if first:  # centring reference: the mean of the block's first piece
                flat = raw.reshape(-1, b)
                ref = (flat if ok is None else flat[ok]).mean(axis=0, dtype=np.float64)
            piece = buf[: raw.shape[0]]
            np.subtract(raw, ref, out=piece, casting="unsafe")  # cast and centre in one pass
            piece = piece.reshape(-1, b)
            with np.errstate(invalid="ignore", over="ignore"):  # ±inf: screened just below
                sums = ones[: piece.shape[0]] @ piece
            if by_sums and not first and not np.isfinite(sums).all():
                finite = np.isfinite(piece).all(axis=1)
                ok = finite if ok is None else ok & finite
                if not ok.any():
                    continue
            if ok is not None and not ok.all():
                piece = piece[ok]
                sums = piece.sum(axis=0)
            shift = sums / piece.shape[0]  # piece mean − ref
            scatter = piece.T @ piece - np.outer(shift, shift) * piece.shape[0]
            total = total.merge(Moments(piece.shape[0], ref + shift, scatter))
    return total


def _tree_merge(parts: list) -> Moments:
    while len(parts) > 1:
        parts = [
            dask.delayed(Moments.merge)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    return parts[0]


def cube_moments(cube: xr.DataArray, use_mask: bool = True, bands=None,
                 region: np.ndarray | None = None) -> Moments:
    """Mean and scatter of the cube's valid pixels over its good bands, in one pass.

    ``bands`` overrides the band selection (a boolean vector or index list); ``region``, a
    (y, x) bool map (e.g. :func:`hsad.background.background_mask`), keeps only its pixels.
    """
    sel = good_band_mask(cube) if bands is None else np.asarray(bands)
    data = cube.data
    if sel.dtype != bool or not sel.all():
        data = data[:, :, sel]
    data = data.rechunk({2: -1})
    blocks = data.to_delayed()[:, :, 0].ravel()
    if region is not None:
        keep = da.from_array(np.asarray(region, dtype=bool), chunks=data.chunks[:2])
        nodata = cube.attrs.get("nodata")
        parts = [dask.delayed(block_moments)(b, m, screen=use_mask, nodata=nodata)
                 for b, m in zip(blocks, keep.to_delayed().ravel(), strict=True)]
    elif use_mask and bands is None:  # screen pixels inside each block: one pass over the data
        nodata = cube.attrs.get("nodata")
        parts = [dask.delayed(block_moments)(b, screen=True, nodata=nodata) for b in blocks]
    elif use_mask:
        mask = valid_mask(cube).data.rechunk(data.chunks[:2])
        masks = mask.to_delayed().ravel()
        parts = [dask.delayed(block_moments)(b, m) for b, m in zip(blocks, masks, strict=True)]
    else:
        parts = [dask.delayed(block_moments)(b) for b in blocks]
    (result,) = dask.compute(_tree_merge(list(parts)))
    return result


def scene_moments(cube: xr.DataArray, what: str, bands=None,
                  region: np.ndarray | None = None) -> Moments:
    """:func:`cube_moments` for a detector's fit: a clear error when no statistic can be had.

    No valid pixel: the message names the good bands that are not finite anywhere (to be
    marked bad). Every pixel alike (one valid pixel, or constant bands only): every score
    would be equal.
    """
    path = cube.attrs.get("source_path")
    moments = cube_moments(cube, bands=bands, region=region)
    if moments.n == 0:
        where = "the background area holds" if region is not None else "the cube has"
        raise ParameterError(f"{what}: {where} no valid pixel{no_pixel_note(cube, bands)}",
                             path)
    check_partial_nodata(cube, what, bands)
    if not np.trace(moments.scatter) > 0:
        check_covariance(0, moments.mean.size, moments.n, what, path)
    check_fill_values(moments, what, path)
    return moments


#: distinct spectra are counted (:func:`distinct_spectra`) for at most this many valid
#: pixels per band + 1: beyond, an exactly determined covariance would need most pixels to
#: repeat another exactly, which no measured scene does
DISTINCT_FACTOR = 4


def distinct_spectra(cube: xr.DataArray, n: int, region: np.ndarray | None = None,
                     ) -> int | None:
    """The number of distinct valid spectra (good bands, inside ``region``) of a scene
    with few valid pixels (``n``; see :data:`DISTINCT_FACTOR`), None otherwise: pixels
    repeated exactly lower the covariance's rank without making it less exactly determined
    (:func:`check_covariance`). Only the rows and columns holding the region are read; a
    large scene with few valid pixels and no region is read once more for the count."""
    sel = good_band_mask(cube)
    if not countable(n, int(sel.sum())):
        return None
    if region is not None:
        region = np.asarray(region, dtype=bool)
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        if not rows.size:
            return None
        box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        cube, region = cube.isel(y=box[0], x=box[1]), region[box]
    values = np.asarray(cube.data[:, :, sel] if not sel.all() else cube.data)
    keep = np.asarray(valid_mask(cube).values, dtype=bool)
    if region is not None:
        keep &= region
    return distinct_rows(values[keep])


def countable(n: int, bands: int) -> bool:
    """Whether ``n`` pixels of ``bands`` bands are few enough for an exact fit to be
    possible, so that their distinct spectra are worth counting (:data:`DISTINCT_FACTOR`)."""
    return n <= DISTINCT_FACTOR * (bands + 1)


def distinct_rows(pixels: np.ndarray) -> int:
    """The number of distinct spectra among ``pixels`` (n, bands)."""
    return int(np.unique(pixels, axis=0).shape[0])


#: band means or spreads beyond this come from no measurement: an undeclared fill value
FILL_MAGNITUDE = 1e20
#: what to do about an undeclared fill value (part of its warnings)
FILL_ADVICE = ("an undeclared fill value (such as -3.4e38) dominates the statistics and "
               "flattens every other score; declare it with --nodata VALUE "
               "(hsad.nodata.set_nodata)")


def check_fill_values(moments: Moments, what: str, path=None) -> None:
    """Warn when a band's mean or spread exceeds :data:`FILL_MAGNITUDE`: one pixel of
    -3.4e38 among a billion still gives a spread of 1e34."""
    spread = np.sqrt(np.clip(np.diag(moments.cov), 0.0, None))
    huge = np.flatnonzero((np.abs(moments.mean) > FILL_MAGNITUDE) | (spread > FILL_MAGNITUDE))
    if huge.size:
        listed = ", ".join(str(b + 1) for b in huge[:5]) + (" …" if huge.size > 5 else "")
        warnings.warn(f"{what}: bands {listed} (1-based) spread over ±{spread[huge].max():.1e}: "
                      f"{FILL_ADVICE}", DegenerateDataWarning, stacklevel=3)


#: side of the small windows an even sample of a scene is read in (:func:`even_sample`)
SAMPLE_WINDOW = 8
#: a lazy scene no larger than this is read whole for a sample: that costs less than one
#: computation per window (about 3 ms each: 64 windows of a 256² window took 0.24 s)
ONE_PASS_BYTES = 16 * 2**20


def even_sample(data, n_pixels: int) -> np.ndarray:
    """About ``n_pixels`` pixels ``(n, bands)`` of ``data`` ``(rows, cols, bands)``, numpy or
    dask, read as small windows on an even grid (all of it when it is no larger): a lazy
    reader then reads those windows only, where a strided slice makes it read whole chunks
    (GeoTIFF windows, ENVI rows under a band selection)."""
    rows, cols, bands = data.shape
    if hasattr(data, "dask") and data.nbytes <= ONE_PASS_BYTES:
        data = data.compute(scheduler=get_sync)  # small: read whole, at once
    w = SAMPLE_WINDOW
    if rows * cols <= n_pixels or rows < w or cols < w:
        blocks = [data]
    else:
        side = max(1, int(np.ceil(np.sqrt(n_pixels / (w * w)))))
        ys = np.unique(np.linspace(0, rows - w, side).astype(int))
        xs = np.unique(np.linspace(0, cols - w, side).astype(int))
        blocks = [data[y:y + w, x:x + w] for y in ys for x in xs]
    # each window alone: computed together, windows sharing a chunk would read it whole
    # (dask's scheduler as a function: given by name it imports dask.distributed)
    blocks = [b.compute(scheduler=get_sync) if hasattr(b, "dask") else b
              for b in blocks]
    return np.concatenate([np.asarray(b).reshape(-1, bands) for b in blocks])


#: pixels looked at to estimate how many hold the nodata value in only some bands
PARTIAL_NODATA_SAMPLE = 65536
#: the share of such pixels above which the any-band nodata rule is worth a warning
PARTIAL_NODATA_SHARE = 0.01


def check_partial_nodata(cube: xr.DataArray, what: str, bands=None) -> None:
    """Warn when many pixels hold the nodata value, or no finite value, in some good bands
    but data in others.

    A pixel is left out when any good band holds no data (a spectrum with a hole cannot be
    scored); a nodata value that is also a real measurement (0 in dark absorption bands)
    then removes pixels that hold data. Estimated on an even sample of about
    :data:`PARTIAL_NODATA_SAMPLE` pixels (:func:`even_sample`), so it costs no pass over a
    large scene."""
    nodata = cube.attrs.get("nodata")
    if not can_miss(cube.dtype, nodata):
        return
    sel = np.flatnonzero(good_band_mask(cube) if bands is None else np.asarray(bands))
    sample = even_sample(cube.data, PARTIAL_NODATA_SAMPLE)[:, sel]
    missing = missing_values(sample, nodata)
    hits = missing.sum(axis=-1)
    partial = (hits > 0) & (hits < sel.size)
    share = partial.mean()
    if share <= PARTIAL_NODATA_SHARE:
        return
    if nodata is not None and np.isfinite(nodata) and nodata_hits(sample[partial], nodata).any():
        held, advice = (f"the nodata value {nodata:g}", f"if {nodata:g} is a real value in "
                        "those bands, give another --nodata or mark the bands bad")
    else:  # NaN or ±inf in some bands: those bands are the trouble
        worst = np.argsort(-missing[partial].sum(axis=0))[:3]
        named = [str(int(sel[b]) + 1) for b in worst if missing[partial, b].any()]
        held, advice = ("no finite value (NaN or ±inf)",
                        f"mostly in band{'s' * (len(named) > 1)} {', '.join(named)} (1-based): "
                        "drop them (--bands, --exclude-wavelengths) or mark them bad")
    warnings.warn(
        f"{what}: about {share:.0%} of the pixels hold {held} in some good bands but data in "
        f"others, and are left out (a pixel is scored only when every good band holds data); "
        f"{advice}", DegenerateDataWarning, stacklevel=3)


def dead_bands_note(cube: xr.DataArray, bands=None) -> str:
    """``": bands … hold no data in any pixel; mark them bad"``, or "" when there are none."""
    sel = np.flatnonzero(good_band_mask(cube) if bands is None else np.asarray(bands))
    nodata = cube.attrs.get("nodata")
    data = cube.data[:, :, sel]
    if not can_miss(data.dtype, nodata):
        return ""
    alive = np.asarray((~missing_values(data, nodata)).any(axis=(0, 1)).compute())
    dead = sel[~alive]
    if not dead.size:
        return ""
    if dead.size == sel.size and sel.size > 1:  # marking every band bad is no remedy
        value = ("" if nodata is None or not np.isfinite(nodata)
                 else f"the nodata value {nodata:g} or ")
        return (f": every pixel is {value}not finite in every band, so the file holds no "
                "data to analyse (a wrong --nodata, or an empty product?)")
    listed = ", ".join(str(int(b) + 1) for b in dead[:10]) + (", …" if dead.size > 10 else "")
    state = ("not finite in any pixel" if nodata is None or not np.isfinite(nodata)
             else f"the nodata value {nodata:g} (or not finite) in every pixel")
    return (f": band{'s' * (dead.size > 1)} {listed} (1-based) {'are' if dead.size > 1 else 'is'}"
            f" {state}; mark them bad (bbl / good_band) or drop them")


#: why no pixel is valid when every good band holds data somewhere
NO_WHOLE_PIXEL = (": no pixel holds data in every good band (each lacks some band: choose "
                  "fewer bands, or mark the gappy ones bad)")


def no_pixel_note(cube: xr.DataArray, bands=None) -> str:
    """Why no pixel is valid: the bands without data (:func:`dead_bands_note`), or, when
    each band holds data somewhere, :data:`NO_WHOLE_PIXEL`."""
    return dead_bands_note(cube, bands) or NO_WHOLE_PIXEL


#: what to try when a covariance is degenerate (part of every degeneracy message)
ADVICE = ("select fewer bands (--bands, --wavelengths, --exclude-wavelengths; "
          "hsad.select_bands), use pca= (lrx) or ridge=, or give a larger scene")


def check_covariance(rank: int, bands: int, n: int | None = None, what: str = "RX",
                     path=None, scores_its_pixels: bool = False,
                     distinct: int | None = None, live: int | None = None) -> None:
    """The one degeneracy rule for RX-type statistics (global RX, LRX's scene statistics,
    the neural detectors' residual RX).

    A zero covariance (one valid pixel, or every pixel alike) is a :class:`ParameterError`:
    every score would be equal. So is, with ``scores_its_pixels`` (a detector that scores
    the pixels its unregularised covariance comes from), ``m`` distinct spectra
    (``distinct``, when counted: :func:`distinct_spectra`; else the ``n`` pixels) that are
    no more than the ``live`` bands + 1 (non-constant, copies of another band counted once:
    :func:`independent_bands`; default all), or a rank of ``m − 1``:
    such pixels determine the covariance exactly, and each scores ``n − 1`` when none
    repeats, or a value set by how often it repeats (Reed & Yu's statistic needs
    ``n ≫ bands``). The count is compared with the bands, not only with the numerical rank,
    which a rank cut can put below ``m − 1`` (158 for 160 distinct pixels of hydice-urban).
    Otherwise fewer valid
    pixels than bands + 2, or a numerically singular covariance (constant or collinear
    bands), gives a :class:`~hsad.errors.DegenerateDataWarning`: ``bands − rank`` directions
    carry no information (RX ignores them, LRX weighs them by its floor only).
    """
    count = "" if n is None else f" of {n} valid pixel{'s' * (n != 1)}"
    if rank == 0:
        raise ParameterError(f"{what}: the covariance{count} over {bands} band"
                             f"{'s' * (bands != 1)} is zero (every pixel alike): every score "
                             f"would be equal; {ADVICE}", path)
    m = distinct if distinct is not None else n
    live = bands if live is None else live
    if scores_its_pixels and m is not None and (rank >= m - 1 or m <= live + 1):
        if m == n:
            how = f"so each of them would score about {n - 1}"
        else:
            how = (f"{m} distinct spectra among them, so their scores follow from how often "
                   "each repeats")
        raise ParameterError(f"{what}: only {n} valid pixels for {bands} bands: they "
                             f"determine the covariance exactly (rank {rank}), {how}; "
                             f"{ADVICE}", path)
    gap = bands - rank
    if n is not None and n <= bands + 1:
        why = f"only {n} valid pixels for {bands} bands"
    elif rank < bands:
        why = f"the covariance{count} is numerically singular (constant or collinear bands)"
    else:
        return
    lost = (f"rank {rank} < {bands}, so {gap} direction{'s' * (gap != 1)} "
            f"carr{'ies' if gap == 1 else 'y'} no information" if gap
            else "the covariance is barely determined")
    warnings.warn(f"{what}: {why}: {lost}; {ADVICE}", DegenerateDataWarning, stacklevel=3)


def check_scales(variance: np.ndarray, what: str, path=None) -> None:
    """Warn when some bands vary over 1e4 times less (in σ) than the average band: detectors
    that mix bands in one unit (LRX's covariance floor, CRD's Euclidean residual) give them
    no weight."""
    variance = np.asarray(variance, dtype=np.float64)
    small = np.flatnonzero((variance > 0) & (variance < 1e-8 * variance.mean()))
    if small.size:
        listed = ", ".join(str(int(b) + 1) for b in small[:10]) + (", …" if small.size > 10
                                                                    else "")
        warnings.warn(f"{what}: bands {listed} (1-based, of the good bands) vary over 1e4 "
                      "times less than the average band and get no weight; bring the bands "
                      "to one unit (or standardise them) first", DegenerateDataWarning,
                      stacklevel=3)


def _regularised(cov: np.ndarray, ridge: float) -> np.ndarray:
    cov = np.asarray(cov, dtype=np.float64)
    if ridge > 0:
        cov = cov + np.eye(cov.shape[0]) * (ridge * np.trace(cov) / cov.shape[0])
    return cov


def _eigen(cov: np.ndarray, rcond: float, n: int | None, what: str, path,
           scores_its_pixels: bool = False, distinct: int | None = None):
    """Eigenpairs kept (descending) of the band-equilibrated covariance, and the band scales.

    Σ = D C D with D = diag(σ_b): the pseudo-inverse D⁻¹ C⁺ D⁻¹ is a generalised inverse of
    Σ (same scores for every pixel in the data's span) whose rank cut is relative to the
    correlation matrix, so bands of very different scale (radiance next to reflectance) all
    count. Bands with σ_b ≤ 1e-12·max σ are constant: they get no weight.
    """
    sigma = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    live = sigma > 1e-12 * sigma.max(initial=0.0)
    scale = np.where(live, sigma, 1.0)
    corr = cov / np.outer(scale, scale)
    corr[~live] = 0.0
    corr[:, ~live] = 0.0
    lam, vec = np.linalg.eigh(corr)
    keep = lam > rcond * max(lam.max(initial=0.0), 0.0)
    check_covariance(int(keep.sum()), cov.shape[0], n, what, path, scores_its_pixels,
                     distinct, independent_bands(corr, live))
    return lam[keep][::-1], vec[:, keep][:, ::-1], scale


#: bands whose correlation lies this close to ±1 are copies of each other (an exact copy,
#: or one band rescaled): in float64 they lie within ~1e-15, measured bands far beyond
COPY_TOLERANCE = 1e-9


def independent_bands(corr: np.ndarray, live: np.ndarray) -> int:
    """The live (non-constant) bands that are not copies of an earlier one (correlation
    ±1 within :data:`COPY_TOLERANCE`), from the band-equilibrated covariance ``corr``: a
    band repeated, or rescaled, adds no direction in which pixels can spread."""
    idx = np.flatnonzero(live)
    copied = np.triu(np.abs(corr[np.ix_(idx, idx)]) >= 1.0 - COPY_TOLERANCE, k=1)
    return int(idx.size - copied.any(axis=0).sum())


def covariance_rank(cov: np.ndarray, n: int | None = None, what: str = "RX", path=None,
                    rcond: float = 1e-10) -> int:
    """Rank of ``cov`` as the RX-type detectors count it, checked by
    :func:`check_covariance`."""
    return int(_eigen(np.asarray(cov, dtype=np.float64), rcond, n, what, path)[0].size)


def pinv_precision(cov: np.ndarray, ridge: float = 0.0, rcond: float = 1e-10, *,
                   n: int | None = None, what: str = "RX", path=None) -> np.ndarray:
    """Inverse covariance: pseudo-inverse, optionally of ``cov + ridge·tr(cov)/B·I``.

    Checked by :func:`check_covariance` (``n``: the pixel count, when known).
    """
    white, _ = whitening(cov, ridge, rcond, n=n, what=what, path=path)
    return white @ white.T


def whitening(
    cov: np.ndarray, ridge: float = 0.0, rcond: float = 1e-10, *, n: int | None = None,
    what: str = "RX", path=None, scores_its_pixels: bool = False,
    distinct: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Whitening matrix W (B×r) with W Wᵀ = ``pinv_precision(cov, ridge, rcond)``.

    ``‖(x − μ) W‖²`` is then the squared Mahalanobis distance, computed as one GEMM. Returns
    ``(W, eigenvalues kept)`` (of the band-equilibrated covariance, see :func:`_eigen`); r,
    the number kept, is the rank of the covariance used. ``scores_its_pixels``: see
    :func:`check_covariance` (only without a ridge, which keeps the scores apart), with
    ``distinct`` spectra among the ``n`` pixels when counted.
    """
    lam, vec, scale = _eigen(_regularised(cov, ridge), rcond, n, what, path,
                             scores_its_pixels and not ridge > 0, distinct)
    return vec / np.sqrt(lam) / scale[:, None], lam


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row of ``x`` (…, B) → (…)."""
    xc = x - mean.astype(x.dtype, copy=False)
    return np.einsum("...i,...i->...", xc @ precision.astype(x.dtype, copy=False), xc)
