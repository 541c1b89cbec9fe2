"""Chunk-streamed statistics: one pass over a cube's chunks, never the whole scene.

Partial results per chunk are ``(n, mean, scatter)`` and are merged with Chan's
parallel update, which stays accurate in float64 where the naive
``E[xxᵀ] − μμᵀ`` loses digits on large radiance values. What a detector checks of them
is :mod:`hsad.engine.data_checks` (the scene's data) and :mod:`hsad.engine.covariance`
(the covariance, its precision and whitening).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np
import xarray as xr

from hsad.cube import (
    good_band_mask,
    nodata_hits,
    valid_mask,
)
from hsad.engine.blas import add_upper_gram, upper_to_symmetric
from hsad.engine.windows import PIECE_PIXELS as PIECE_PIXELS  # old imports (unused here)
from hsad.engine.windows import single_threaded_linalg
from hsad.lazy_modules import moved_names
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


#: pixels per piece of the streamed scatter (:func:`block_moments`): the float64 piece the
#: cast writes is read back by the rank-k update. On a 2-core AMD EPYC (Zen 4, 1 MB of L2
#: a core), 1 536 pixels of 200 bands (2.4 MB) made the moments 10–15 % faster than 4 096
#: (the pieces of the scores and projections, :data:`hsad.engine.windows.PIECE_PIXELS`)
#: with OpenBLAS's SkylakeX, Haswell and Zen kernels alike, one or both cores busy, and
#: no slower at 50 or 425 bands; global RX 3–12 % faster in all (docs/performance.md,
#: benchmark 41)
SCATTER_PIECE_PIXELS = 1536


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
    step = max(1, SCATTER_PIECE_PIXELS // max(block.shape[1], 1))
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
    (y, x) bool map (e.g. :func:`hsad.cube.background.background_mask`), keeps only its pixels.
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


#: the names that lived here before 0.2.7 (the scene checks, the covariance algebra and
#: what this module imported), and the modules that define them now: old imports work
MOVED = {
    **{n: "hsad.engine.data_checks" for n in (
        "FILL_ADVICE", "FILL_MAGNITUDE", "FLAT_FILL_SAMPLE", "FLAT_FILL_SHARE", "FLAT_MIN_BANDS",
        "FLAT_MIN_PIXELS", "HUGE_ADVICE", "HUGE_SHARE", "NO_WHOLE_PIXEL",
        "PARTIAL_NODATA_SAMPLE", "PARTIAL_NODATA_SHARE", "TINY_MAGNITUDE", "band_positions",
        "check_fill_values", "check_overflow", "check_partial_nodata", "dead_bands_note",
        "fill_limit_note", "flat_fill", "good_sample", "huge_note", "huge_scale",
        "no_pixel_note", "rescale_by", "scene_moments", "where_prefix")},
    **{n: "hsad.engine.covariance" for n in (
        "ADVICE", "COPY_TOLERANCE", "DISTINCT_FACTOR", "check_covariance", "check_scales",
        "countable", "covariance_rank", "distinct_rows", "distinct_spectra",
        "independent_bands", "mahalanobis", "pinv_precision", "whitening")},
    **{n: "hsad.cube.nodata_values" for n in ("can_miss", "missing_values")},
    **{n: "hsad.errors" for n in ("DegenerateDataWarning", "ParameterError")},
    "even_sample": "hsad.engine.sampling",
}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.cube.nodata_values import can_miss as can_miss
    from hsad.cube.nodata_values import missing_values as missing_values
    from hsad.engine.covariance import ADVICE as ADVICE
    from hsad.engine.covariance import COPY_TOLERANCE as COPY_TOLERANCE
    from hsad.engine.covariance import DISTINCT_FACTOR as DISTINCT_FACTOR
    from hsad.engine.covariance import check_covariance as check_covariance
    from hsad.engine.covariance import check_scales as check_scales
    from hsad.engine.covariance import countable as countable
    from hsad.engine.covariance import covariance_rank as covariance_rank
    from hsad.engine.covariance import distinct_rows as distinct_rows
    from hsad.engine.covariance import distinct_spectra as distinct_spectra
    from hsad.engine.covariance import independent_bands as independent_bands
    from hsad.engine.covariance import mahalanobis as mahalanobis
    from hsad.engine.covariance import pinv_precision as pinv_precision
    from hsad.engine.covariance import whitening as whitening
    from hsad.engine.data_checks import FILL_ADVICE as FILL_ADVICE
    from hsad.engine.data_checks import FILL_MAGNITUDE as FILL_MAGNITUDE
    from hsad.engine.data_checks import FLAT_FILL_SAMPLE as FLAT_FILL_SAMPLE
    from hsad.engine.data_checks import FLAT_FILL_SHARE as FLAT_FILL_SHARE
    from hsad.engine.data_checks import FLAT_MIN_BANDS as FLAT_MIN_BANDS
    from hsad.engine.data_checks import FLAT_MIN_PIXELS as FLAT_MIN_PIXELS
    from hsad.engine.data_checks import HUGE_ADVICE as HUGE_ADVICE
    from hsad.engine.data_checks import HUGE_SHARE as HUGE_SHARE
    from hsad.engine.data_checks import NO_WHOLE_PIXEL as NO_WHOLE_PIXEL
    from hsad.engine.data_checks import PARTIAL_NODATA_SAMPLE as PARTIAL_NODATA_SAMPLE
    from hsad.engine.data_checks import PARTIAL_NODATA_SHARE as PARTIAL_NODATA_SHARE
    from hsad.engine.data_checks import TINY_MAGNITUDE as TINY_MAGNITUDE
    from hsad.engine.data_checks import band_positions as band_positions
    from hsad.engine.data_checks import check_fill_values as check_fill_values
    from hsad.engine.data_checks import check_overflow as check_overflow
    from hsad.engine.data_checks import check_partial_nodata as check_partial_nodata
    from hsad.engine.data_checks import dead_bands_note as dead_bands_note
    from hsad.engine.data_checks import fill_limit_note as fill_limit_note
    from hsad.engine.data_checks import flat_fill as flat_fill
    from hsad.engine.data_checks import good_sample as good_sample
    from hsad.engine.data_checks import huge_note as huge_note
    from hsad.engine.data_checks import huge_scale as huge_scale
    from hsad.engine.data_checks import no_pixel_note as no_pixel_note
    from hsad.engine.data_checks import rescale_by as rescale_by
    from hsad.engine.data_checks import scene_moments as scene_moments
    from hsad.engine.data_checks import where_prefix as where_prefix
    from hsad.engine.sampling import even_sample as even_sample
    from hsad.errors import DegenerateDataWarning as DegenerateDataWarning
    from hsad.errors import ParameterError as ParameterError

__getattr__ = moved_names(__name__, MOVED)
