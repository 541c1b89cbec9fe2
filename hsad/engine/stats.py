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

from hsad.cube import (
    can_miss,
    good_band_mask,
    missing_values,
    nodata_hits,
    valid_mask,
)
from hsad.engine.blas import add_upper_gram, upper_to_symmetric
from hsad.engine.sampling import even_sample
from hsad.engine.windows import PIECE_PIXELS, single_threaded_linalg
from hsad.errors import DegenerateDataWarning, ParameterError
from hsad.progress import bar_style


@dataclass
class Moments:
    """Pixel count, band means and scatter matrix Σ(x−μ)(x−μ)ᵀ (float64)."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray
    #: pixels holding the nodata value in some of the bands but not all (left out of ``n``),
    #: counted by the pass that screens every pixel (:func:`block_moments`); None: not
    #: counted (no finite nodata value, or pixels selected by a mask computed apart)
    partial: int | None = None
    #: per band, how many of those pixels hold the nodata value there (None as ``partial``)
    partial_bands: np.ndarray | None = None

    @property
    def cov(self) -> np.ndarray:
        """Covariance normalised by N (as the HAD literature's RX does)."""
        return self.scatter / max(self.n, 1)

    def merge(self, other: Moments) -> Moments:
        partial = (None if self.partial is None or other.partial is None
                   else self.partial + other.partial)  # kept from parts without valid pixels
        bands = (None if self.partial_bands is None or other.partial_bands is None
                 else self.partial_bands + other.partial_bands)
        if other.n == 0:
            n, mean, scatter = self.n, self.mean, self.scatter
        elif self.n == 0:
            n, mean, scatter = other.n, other.mean, other.scatter
        else:
            n = self.n + other.n
            delta = other.mean - self.mean
            mean = self.mean + delta * (other.n / n)
            scatter = (self.scatter + other.scatter
                       + np.outer(delta, delta) * (self.n * other.n / n))
        return Moments(n, mean, scatter, partial, bands)


def valid_rows(pixels: np.ndarray, nodata: float | None = None) -> np.ndarray | None:
    """Flat boolean per pixel of ``pixels`` (…, bands): finite and no band at ``nodata``.

    The same rule as :func:`hsad.cube.valid_mask`; None when every pixel is valid.
    """
    return _screened(pixels, nodata)[0]


def _screened(pixels: np.ndarray, nodata: float | None = None):
    """:func:`valid_rows`, and the flat indices of the pixels holding ``nodata`` (finite) in
    some bands but not all with each one's hits ``(rows, (n, bands) bool)``, or None: found
    from the comparison the screen makes anyway, its hits counted per pixel where the screen
    took their ``any`` (as fast), so the count costs no pass of its own."""
    ok = partial = None
    if np.issubdtype(pixels.dtype, np.floating):
        ok = np.isfinite(pixels).all(axis=-1)
    if nodata is not None and np.isfinite(nodata):
        b = pixels.shape[-1]
        hits = nodata_hits(pixels, nodata).reshape(-1, b)
        # hits per pixel as a byte sum: no slower than hits.any(axis=-1) was
        count = hits.view(np.uint8).sum(axis=-1, dtype=np.uint16 if b < 2**16 else np.int64)
        hit = count > 0
        part = hit & (count < b)
        if part.any():
            rows = np.flatnonzero(part)
            partial = (rows, hits[rows])
        hit = hit.reshape(pixels.shape[:-1])
        ok = ~hit if ok is None else ok & ~hit
    return (None if ok is None or ok.all() else ok.reshape(-1)), partial


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
    converted to float64 and centred on a reference piece by piece (the mean of an even
    grid of its valid pixels, :func:`_centring_reference`; else of its first piece); each
    piece's scatter about the reference is added in place by one symmetric rank-k update
    (:func:`~hsad.engine.blas.add_upper_gram`), and the mean shift is corrected once for
    the block. Blocks are merged with Chan's update.
    """
    block = np.asarray(block)
    if block.ndim == 2:
        block = block[None]
    b = block.shape[-1]
    keep = None if valid is None else np.asarray(valid, dtype=bool).reshape(block.shape[:2])
    step = max(1, PIECE_PIXELS // max(block.shape[1], 1))
    by_values = screen and nodata is not None and np.isfinite(nodata)
    # pixels at nodata in some bands only: counted by the screen (:attr:`Moments.partial`)
    partial_n, partial_bands = 0, np.zeros(b, np.int64)
    buf = np.empty((min(step, block.shape[0]), block.shape[1], b))  # reused: no page faults
    ones = np.ones(step * block.shape[1])
    gram, sums, n = np.zeros((b, b), order="F"), np.zeros(b), 0  # about ``ref``
    # finite values are screened after the cast, from the piece's band sums (finite iff
    # every value is): one matrix-vector product instead of a full isfinite pass
    by_sums = screen and np.issubdtype(block.dtype, np.floating)
    ref = _centring_reference(block, keep, screen, nodata)
    with single_threaded_linalg():
        for r in range(0, block.shape[0], step):
            raw = block[r : r + step]
            first = ref is None  # no reference from the grid yet: this piece gives it
            ok = None
            if (screen and first) or by_values:
                ok, partial = _screened(raw, nodata)
                if partial is not None and by_values:
                    partial_n += partial[0].size
                    partial_bands += partial[1].sum(axis=0)
            if keep is not None:
                rows = keep[r : r + step].reshape(-1)
                ok = rows if ok is None else ok & rows
            if ok is not None and not ok.any():
                continue
            if first:  # centring reference: the mean of the first piece holding data
                flat = raw.reshape(-1, b)
                ref = (flat if ok is None else flat[ok]).mean(axis=0, dtype=np.float64)
            piece = buf[: raw.shape[0]]
            np.subtract(raw, ref, out=piece, casting="unsafe")  # cast and centre in one pass
            piece = piece.reshape(-1, b)
            with np.errstate(invalid="ignore", over="ignore"):  # ±inf: screened just below
                piece_sums = ones[: piece.shape[0]] @ piece
            if by_sums and not first and not np.isfinite(piece_sums).all():
                finite = np.isfinite(piece).all(axis=1)
                ok = finite if ok is None else ok & finite
                if not ok.any():
                    continue
            if ok is not None and not ok.all():
                piece = piece[ok]
                piece_sums = piece.sum(axis=0)
            add_upper_gram(gram, piece.T)
            sums += piece_sums
            n += piece.shape[0]
    total = Moments(0, np.zeros(b), np.zeros((b, b)))
    if n:
        shift = sums / n  # block mean − ref
        with np.errstate(over="ignore", invalid="ignore"):  # said by check_overflow
            scatter = upper_to_symmetric(gram) - np.outer(shift, shift) * n
        total = Moments(n, ref + shift, scatter)
    if by_values:
        total.partial, total.partial_bands = partial_n, partial_bands
    return total


#: pixels of a block whose mean centres its scatter (:func:`_centring_reference`)
CENTRING_PIXELS = 4096


def _centring_reference(block: np.ndarray, keep: np.ndarray | None, screen: bool,
                        nodata: float | None) -> np.ndarray | None:
    """The mean (float64) of about :data:`CENTRING_PIXELS` valid pixels of ``block`` on an
    even grid, or None when the grid holds none or their mean overflows. The scatter of
    the block's pieces is summed about it, and the block's mean shift from it subtracted
    once: a reference near the block's mean keeps that subtraction from cancelling digits,
    where the first piece's mean may lie far from it (a drift along the block, a first
    piece of one outlier)."""
    rows, cols = block.shape[:2]
    stride = max(1, int(np.sqrt(rows * cols / CENTRING_PIXELS)))
    grid = block[::stride, ::stride].reshape(-1, block.shape[-1])
    ok = valid_rows(grid, nodata) if screen else None
    if keep is not None:
        chosen = keep[::stride, ::stride].reshape(-1)
        ok = chosen if ok is None else ok & chosen
    if ok is not None:
        grid = grid[ok]
    if not grid.shape[0]:
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # said by check_overflow
        mean = grid.mean(axis=0, dtype=np.float64)
    # values near float64's limit (an undeclared fill of -1.8e308) overflow the mean: the
    # first piece's then centres the block, as the moments' own check expects
    return mean if np.isfinite(mean).all() else None


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
    return _merged(list(parts))


def _merged(parts: list) -> Moments:
    """The merge of the blocks' ``parts`` (delayed). On a cluster, where no local callback
    sees the blocks, with a bar over them when one is asked for
    (:class:`~hsad.engine.scheduler.TileProgress`)."""
    from hsad.engine.scheduler import TileProgress, active_client

    shown = TileProgress.current()
    client = active_client() if shown is not None and not shown.disable else None
    if client is None:
        (result,) = dask.compute(_tree_merge(parts))
        return result
    from distributed import as_completed
    from tqdm.auto import tqdm

    level = client.compute(parts)
    pending = as_completed(level)
    while len(level) > 1:  # merged as the blocks arrive, each part freed once merged
        level = [client.submit(Moments.merge, level[i], level[i + 1])
                 if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    total = level[0]
    del level
    with tqdm(total=pending.count(), desc="statistics (cluster)", unit="tile",
              **bar_style()) as bar:
        for _ in pending:
            bar.update(1)
    return total.result()


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
    sample = good_sample(cube, bands)  # one even sample for the checks below
    fill = check_partial_nodata(cube, what, bands, moments=moments, sample=sample)
    check_overflow(moments, what, path, sample=sample, nodata=cube.attrs.get("nodata"))
    if not np.trace(moments.scatter) > 0:
        level = float(np.max(np.abs(moments.mean), initial=0.0))
        if 0.0 < level < TINY_MAGNITUDE:  # squares underflow: not pixels alike
            raise ParameterError(
                f"{what}: the values (about {level:.1e}) are too small to square in float64, "
                f"so their covariance is zero; rescale the scene first ({rescale_by(level)})",
                path)
        check_covariance(0, moments.mean.size, moments.n, what, path)
    if fill is None or not abs(fill) > FILL_MAGNITUDE:  # else said with its value just above
        check_fill_values(moments, what, path, sample=sample, nodata=cube.attrs.get("nodata"))
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
#: (or a scene in a unit no detector handles: :func:`huge_scale`)
FILL_MAGNITUDE = 1e20
#: what to do about an undeclared fill value (part of its warnings)
FILL_ADVICE = ("an undeclared fill value (such as -3.4e38) dominates the statistics and "
               "flattens every other score; declare it with --nodata VALUE "
               "(hsad.nodata.set_nodata)")
#: the share of the sampled pixels (of those holding data) beyond which values over
#: :data:`FILL_MAGNITUDE` in every good band are the scene's scale, not a fill value
HUGE_SHARE = 0.5
#: what to do about a scene whose values lie beyond :data:`FILL_MAGNITUDE` (:func:`huge_note`)
HUGE_ADVICE = (f"the detectors handle values up to ±{FILL_MAGNITUDE:g} (the networks take "
               "larger ones for a fill value); rescale the scene first")


def huge_note(level: float) -> str:
    """What a scene whose values lie about ``level`` (:func:`huge_scale`) is told: its unit,
    not a fill value, and by what to divide it."""
    return (f"most pixels hold values beyond ±{FILL_MAGNITUDE:g} in every good band (a median "
            f"of {level:.1e}): the scene's unit, not a fill value; {HUGE_ADVICE} "
            f"({rescale_by(level)})")


def rescale_by(level: float) -> str:
    """How to bring values about ``level`` to unit scale: ``multiply it by 1e36`` or
    ``divide it by 1e25`` (a level that is not a positive number: by 1e20)."""
    power = int(np.floor(np.log10(level))) if level > 0 and np.isfinite(level) else 20
    return f"multiply it by 1e{-power}" if power < 0 else f"divide it by 1e{power}"


def where_prefix(path, what: str) -> str:
    """``"<file>: <detector>: "`` (the file when known) that starts a warning about a scene."""
    return f"{path}: {what}: " if path else f"{what}: "


def huge_scale(sample: np.ndarray, nodata: float | None = None) -> float | None:
    """The median magnitude of ``sample`` (n, good bands) when more than :data:`HUGE_SHARE`
    of its pixels holding data hold values beyond :data:`FILL_MAGNITUDE` in every band
    (spectra, not one value in every band: that is a fill value, :func:`flat_fill`): a
    scene in a unit no detector handles; None otherwise."""
    if not np.issubdtype(sample.dtype, np.floating) or not sample.size:
        return None
    rows = sample[~missing_values(sample, nodata).any(axis=-1)]
    if not rows.shape[0]:
        return None
    with np.errstate(over="ignore"):
        big = (np.abs(rows) > FILL_MAGNITUDE).all(axis=-1) & ~(rows == rows[:, :1]).all(axis=-1)
    if not big.sum() > HUGE_SHARE * rows.shape[0]:
        return None
    return float(np.median(np.abs(rows[big].astype(np.float64))))


def fill_limit_note(cube: xr.DataArray, bands=None) -> str:
    """Why a sample that leaves out pixels beyond :data:`FILL_MAGNITUDE` (the networks'
    ``fill_limit``) found none to keep: the scene's unit (:func:`huge_note`) when an even
    sample shows most pixels that large in every good band, else a fill value everywhere."""
    level = huge_scale(good_sample(cube, bands), cube.attrs.get("nodata"))
    if level is not None:
        return f": {huge_note(level)}"
    return f": every pixel drawn holds a value beyond ±{FILL_MAGNITUDE:g}; {FILL_ADVICE}"


def check_overflow(moments: Moments, what: str, path=None, sample=None,
                   nodata: float | None = None) -> None:
    """Refuse statistics whose squares overflowed float64 (values beyond about 1e154): the
    scene's unit when the even ``sample`` shows most pixels that large (:func:`huge_scale`;
    the advice names the power of ten to divide by), else a few extreme pixels (a fill
    value). Their covariance was NaN or inf: "every pixel alike", or a NaN from k-means."""
    if np.isfinite(moments.mean).all() and np.isfinite(moments.scatter).all():
        return
    level = None if sample is None else huge_scale(sample, nodata)
    if level is not None:
        raise ParameterError(
            f"{what}: the values (about {level:.1e}) are too large to square in float64, so "
            f"their covariance overflows; rescale the scene first ({rescale_by(level)})",
            path)
    raise ParameterError(f"{what}: some values are too large to square in float64 (beyond "
                         f"about ±1e150), so the covariance overflows: {FILL_ADVICE}", path)


def check_fill_values(moments: Moments, what: str, path=None, sample=None,
                      nodata: float | None = None) -> None:
    """Warn when a band's mean or spread exceeds :data:`FILL_MAGNITUDE`: one pixel of
    -3.4e38 among a billion still gives a spread of 1e34. When the even ``sample`` of the
    good bands (:func:`good_sample`) shows most pixels that large in every band
    (:func:`huge_scale`), the scene's unit is the trouble, and the warning says so."""
    spread = np.sqrt(np.clip(np.diag(moments.cov), 0.0, None))
    huge = np.flatnonzero((np.abs(moments.mean) > FILL_MAGNITUDE) | (spread > FILL_MAGNITUDE))
    if not huge.size:
        return
    level = None if sample is None else huge_scale(sample, nodata)
    if level is not None:
        warnings.warn(f"{where_prefix(path, what)}{huge_note(level)}", DegenerateDataWarning,
                      stacklevel=3)
        return
    listed = ", ".join(str(b + 1) for b in huge[:5]) + (" …" if huge.size > 5 else "")
    warnings.warn(f"{where_prefix(path, what)}bands {listed} (1-based) spread over "
                  f"±{spread[huge].max():.1e}: {FILL_ADVICE}", DegenerateDataWarning,
                  stacklevel=3)


#: pixels looked at to estimate how many hold the nodata value in only some bands, or one
#: value in every band (:func:`good_sample`)
PARTIAL_NODATA_SAMPLE = 65536
#: the share of such pixels above which the any-band nodata rule is worth a warning about
#: its share; fewer such pixels holding the nodata value (a saturated target at the type's
#: maximum) are warned of by count
PARTIAL_NODATA_SHARE = 0.01
#: the share of the sampled pixels holding data above which one value held in every good
#: band is taken for an undeclared fill value (:func:`flat_fill`): no measured spectrum is
#: flat across bands, a swath's filler is. 0 % on every shared benchmark scene and the ENVI
#: corpus; a rotated swath's corners are 20 % to 85 %.
FLAT_FILL_SHARE = 0.02
#: pixels sampled for :func:`flat_fill` alone: a 2 % share is about 80 of them
FLAT_FILL_SAMPLE = 4096
#: fewer good bands than this may be flat by chance (one band always is)
FLAT_MIN_BANDS = 3
#: fewer sampled pixels of one value than this are no swath's filler (a 3-band 8-bit scene
#: of a few hundred pixels holds such coincidences) and hardly move a statistic
FLAT_MIN_PIXELS = 10


def good_sample(cube: xr.DataArray, bands=None) -> np.ndarray:
    """An even sample of ``cube``'s good bands (or ``bands``), ``(n, bands)`` as stored
    (:func:`even_sample`: no pass over a large scene): about :data:`PARTIAL_NODATA_SAMPLE`
    pixels when some can lack data (their share is estimated on it), else
    :data:`FLAT_FILL_SAMPLE` (65536 pixels in 8 × 8 windows cost 1.7 s on a 4096² × 50
    scene: a quarter of its RX run)."""
    size = (PARTIAL_NODATA_SAMPLE if can_miss(cube.dtype, cube.attrs.get("nodata"))
            else FLAT_FILL_SAMPLE)
    sample = even_sample(cube.data, size)
    chosen = band_positions(cube, bands)
    if np.array_equal(chosen, np.arange(sample.shape[-1])):
        return sample  # every band: no copy
    return sample[:, chosen]


def band_positions(cube: xr.DataArray, bands=None) -> np.ndarray:
    """0-based positions of ``bands`` (a boolean vector or index list; None: the good
    bands)."""
    chosen = good_band_mask(cube) if bands is None else np.asarray(bands)
    return np.flatnonzero(chosen) if chosen.dtype == bool else chosen.astype(int)


def flat_fill(sample: np.ndarray, nodata: float | None = None) -> tuple[float, float] | None:
    """``(value, share)``: the value most of ``sample``'s (n, good bands) pixels holding data
    hold in every band, and their share of those pixels, when it exceeds
    :data:`FLAT_FILL_SHARE` (an undeclared fill value) and they are at least
    :data:`FLAT_MIN_PIXELS`; None otherwise, or when every such pixel holds it (a scene of
    one value: every score equal, said by the covariance rule)."""
    if sample.shape[-1] < FLAT_MIN_BANDS:
        return None
    rows = (sample[~missing_values(sample, nodata).any(axis=-1)]
            if can_miss(sample.dtype, nodata) else sample)
    if not rows.shape[0]:
        return None
    flat = (rows == rows[:, :1]).all(axis=-1)
    if not flat.any():
        return None
    values, counts = np.unique(rows[flat, 0], return_counts=True)
    top = int(np.argmax(counts))
    share = counts[top] / rows.shape[0]
    if not FLAT_FILL_SHARE < share < 1.0 or counts[top] < FLAT_MIN_PIXELS:
        return None
    return float(values[top]), float(share)


def check_partial_nodata(cube: xr.DataArray, what: str, bands=None, *,
                         moments: Moments | None = None,
                         sample: np.ndarray | None = None) -> float | None:
    """Warn when pixels hold the nodata value, or no finite value, in some good bands but
    data in others; or when many hold one value in every good band (an undeclared fill
    value, :func:`flat_fill`). Returns that value, or None.

    A pixel is left out when any good band holds no data (a spectrum with a hole cannot be
    scored); a nodata value that is also a real measurement (0 in dark absorption bands, a
    bright target saturated at 65535) then removes pixels that hold data. Estimated on an
    even sample of about :data:`PARTIAL_NODATA_SAMPLE` pixels (``sample``, else
    :func:`good_sample`), so it costs no pass over a large scene: more than
    :data:`PARTIAL_NODATA_SHARE` of them is warned of by share. Fewer pixels holding the
    nodata value are warned of by count: counted exactly by the pass of ``moments``
    (:attr:`Moments.partial`, no extra pass) when it screened every pixel, else as the
    sample shows them (a few pixels of a large scene may then go unseen)."""
    nodata = cube.attrs.get("nodata")
    path = cube.attrs.get("source_path")
    where = where_prefix(path, what)
    sel = band_positions(cube, bands)
    if sample is None:
        sample = good_sample(cube, bands)
    fill = flat_fill(sample, nodata)
    if fill is not None and moments is not None and not np.trace(moments.scatter) > 0:
        fill = None  # every valid pixel alike: refused by the covariance rule
    if fill is not None:
        value, share = fill
        whole = "the scene's pixels" if not can_miss(sample.dtype, nodata) or not (
            missing_values(sample, nodata).any()) else "the scene's pixels holding data"
        warnings.warn(f"{where}about {share:.0%} of {whole} hold {value:g} in every good band "
                      f"(no measured spectrum is flat): an undeclared fill value? They are "
                      f"scored as data and skew the statistics; give --nodata {value:g} "
                      f"(hsad.nodata.set_nodata)", DegenerateDataWarning, stacklevel=3)
    if not can_miss(cube.dtype, nodata):
        return fill[0] if fill else None
    missing = missing_values(sample, nodata)
    hits = missing.sum(axis=-1)
    partial = (hits > 0) & (hits < sel.size)
    counted = moments is not None and moments.partial is not None
    finite = nodata is not None and np.isfinite(nodata)
    share, exact = partial.mean(), False
    if counted and not share > PARTIAL_NODATA_SHARE:  # the pass's count, when it has one
        share, exact = moments.partial / max(cube.sizes["y"] * cube.sizes["x"], 1), True
    if share > PARTIAL_NODATA_SHARE:
        if finite and (exact or nodata_hits(sample[partial], nodata).any()):
            held, advice = (f"the nodata value {nodata:g}", f"if {nodata:g} is a real value "
                            "in those bands, give another --nodata or mark the bands bad")
        else:  # NaN or ±inf in some bands: those bands are the trouble
            worst = np.argsort(-missing[partial].sum(axis=0))[:3]
            named = [str(int(sel[b]) + 1) for b in worst if missing[partial, b].any()]
            held, advice = ("no finite value (NaN or ±inf)",
                            f"mostly in band{'s' * (len(named) > 1)} {', '.join(named)} "
                            "(1-based): drop them (--bands, --exclude-wavelengths) or mark "
                            "them bad")
        warnings.warn(
            f"{where}about {share:.0%} of the pixels hold {held} in some good bands but data "
            f"in others, and are left out (a pixel is scored only when every good band holds "
            f"data); {advice}", DegenerateDataWarning, stacklevel=3)
    elif finite:  # few: each is worth a word (a saturated target is what one looks for)
        # a scene no larger than the sample is sampled whole: its count is exact too
        counted = counted or sample.shape[0] == cube.sizes["y"] * cube.sizes["x"]
        if moments is not None and moments.partial is not None:
            count, per_band = int(moments.partial), np.asarray(moments.partial_bands)
        else:
            at = nodata_hits(sample, nodata)
            some = at.any(axis=-1) & ~at.all(axis=-1)
            count, per_band = int(some.sum()), at[some].sum(axis=0)
        if count:
            worst = [b for b in np.argsort(-per_band, kind="stable")[:3] if per_band[b]]
            named = ", ".join(str(int(sel[b]) + 1) for b in worst)
            one = count == 1
            many = f"{count}{'' if counted else ' sampled'} pixel{'' if one else 's'}"
            warnings.warn(
                f"{where}{many} hold{'s' if one else ''} {nodata:g} in some good bands only "
                f"(saturated, or a ragged edge?), mostly in band{'s' * (len(worst) > 1)} "
                f"{named} (1-based), and {'is' if one else 'are'} left out (NaN in the map); "
                f"if {nodata:g} is a real value there, give a --nodata the data never hold "
                f"(and --valid-mask for the fill) or drop those bands (--bands)",
                DegenerateDataWarning, stacklevel=3)
    return fill[0] if fill else None


def dead_bands_note(cube: xr.DataArray, bands=None) -> str:
    """``": bands … hold no data in any pixel; mark them bad"``, or "" when there are none."""
    sel = band_positions(cube, bands)
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


#: values below this square to less than float64's smallest normal number (2.2e-308)
TINY_MAGNITUDE = 1e-154

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
