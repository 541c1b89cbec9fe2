"""Covariances as RX-type detectors take them: degeneracy checks, regularised or
pseudo-inverse precisions and whitening, Mahalanobis distances.

:func:`check_covariance` holds the one rule for a covariance too degenerate to score with
(fewer distinct spectra than bands, a rank below the bands, constant bands); the
streamed statistics it judges come from :mod:`hsad.engine.stats`.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from hsad.cube import (
    good_band_mask,
    valid_mask,
)
from hsad.errors import DegenerateDataWarning, ParameterError

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


_FEWER_BANDS = "select fewer bands (--bands, --wavelengths, --exclude-wavelengths; " \
    "hsad.select_bands)"
#: what to try when a covariance is degenerate (part of every degeneracy message)
ADVICE = f"{_FEWER_BANDS}, use pca= (lrx) or ridge=, or give a larger scene"
#: the same for a statistic without a ridge or a dimension to set (a network's residual)
BANDS_ADVICE = f"{_FEWER_BANDS} or give a larger scene"


#: valid pixels per independent direction below which RX of the pixels its statistics come
#: from is flattened: under the maximum-likelihood covariance no pixel scores above n − 1,
#: and the scores average the rank r (their sum is n·r), so with n < 4r the most anomalous
#: pixel stands at most 4 times above the mean (Reed & Yu's statistic needs n ≫ B); lrx's
#: automatic reduction keeps as many ring pixels a dimension (``lrx.SAMPLES_PER_DIMENSION``)
PIXELS_PER_DIRECTION = 4


def check_covariance(rank: int, bands: int, n: int | None = None, what: str = "RX",
                     path=None, scores_its_pixels: bool = False,
                     distinct: int | None = None, live: int | None = None,
                     advice: str = ADVICE) -> None:
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
    carry no information (RX ignores them, LRX weighs them by its floor only). So does, with
    ``scores_its_pixels``, a full-rank covariance of fewer than
    :data:`PIXELS_PER_DIRECTION` pixels per direction: no pixel can then score above
    ``n − 1`` against a mean of ``rank``.
    """
    count = "" if n is None else f" of {n} valid pixel{'s' * (n != 1)}"
    if rank == 0:
        # one valid pixel (or one distinct spectrum): no band selection or ridge helps
        alone = n == 1 or distinct == 1
        raise ParameterError(f"{what}: the covariance{count} over {bands} band"
                             f"{'s' * (bands != 1)} is zero (every pixel alike): every score "
                             "would be equal; "
                             + ("give a scene of more than one valid pixel, or mark fewer "
                                "pixels nodata" if n == 1 else
                                "the valid pixels all hold one spectrum: nothing sets any "
                                "apart" if alone else advice), path)
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
                             f"{advice}", path)
    gap = bands - rank
    if n is not None and n <= bands + 1:
        why = f"only {n} valid pixels for {bands} bands"
    elif rank < bands:
        why = (f"the covariance{count} is numerically singular (constant or collinear "
               "bands, or pixels repeating a few spectra)")
    elif scores_its_pixels and n is not None and n < PIXELS_PER_DIRECTION * rank:
        warnings.warn(f"{what}: only {n} valid pixels for {bands} bands (fewer than "
                      f"{PIXELS_PER_DIRECTION} per band): a covariance so estimated flattens "
                      f"the scores (the RX score of any of these pixels is at most {n - 1}, "
                      f"against a mean of {rank}), so anomalies stand out little; {advice}",
                      DegenerateDataWarning, stacklevel=3)
        return
    else:
        return
    lost = (f"rank {rank} < {bands}, so {gap} direction{'s' * (gap != 1)} "
            f"carr{'ies' if gap == 1 else 'y'} no information" if gap
            else "the covariance is barely determined")
    warnings.warn(f"{what}: {why}: {lost}; {advice}", DegenerateDataWarning, stacklevel=3)


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
           scores_its_pixels: bool = False, distinct: int | None = None,
           advice: str = ADVICE):
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
                     distinct, independent_bands(corr, live), advice)
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
                    rcond: float = 1e-10, advice: str = ADVICE, warn: bool = True) -> int:
    """Rank of ``cov`` as the RX-type detectors count it, checked by
    :func:`check_covariance` (``advice`` ends its messages; ``warn=False``: its refusals
    only, not its warnings)."""
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore", DegenerateDataWarning)
        return int(_eigen(np.asarray(cov, dtype=np.float64), rcond, n, what, path,
                          advice=advice)[0].size)


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
    distinct: int | None = None, advice: str = ADVICE,
) -> tuple[np.ndarray, np.ndarray]:
    """Whitening matrix W (B×r) with W Wᵀ = ``pinv_precision(cov, ridge, rcond)``.

    ``‖(x − μ) W‖²`` is then the squared Mahalanobis distance, computed as one GEMM. Returns
    ``(W, eigenvalues kept)`` (of the band-equilibrated covariance, see :func:`_eigen`); r,
    the number kept, is the rank of the covariance used. ``scores_its_pixels``: see
    :func:`check_covariance` (only without a ridge, which keeps the scores apart), with
    ``distinct`` spectra among the ``n`` pixels when counted; ``advice`` ends its messages.
    """
    lam, vec, scale = _eigen(_regularised(cov, ridge), rcond, n, what, path,
                             scores_its_pixels and not ridge > 0, distinct, advice)
    return vec / np.sqrt(lam) / scale[:, None], lam


def whitened_variance(white: np.ndarray) -> np.ndarray:
    """The per-band variance a whitening ``W`` (B×r, of full column rank, as
    :func:`whitening` makes it) whitens: the diagonal of ``(W Wᵀ)⁺``, which is
    ``‖R⁻¹ Qᵀ eᵢ‖²`` for ``W = QR``; a QR and a triangular solve, not the SVD of a B×B
    pseudo-inverse (3.5 times the time at 1500 bands, and farther from the covariance)."""
    from scipy.linalg import solve_triangular

    q, r = np.linalg.qr(np.asarray(white, dtype=np.float64))
    m = solve_triangular(r, q.T)
    return np.einsum("ij,ij->j", m, m)


#: how far ``Wᵀ Σ W`` may lie from the identity for a whitening ``W`` of ``Σ`` (the fits of
#: the shared scenes: 3e-8 at most; the float64 rounding of a pseudo-inverse at
#: ``rcond`` 1e-10 stays far below)
WHITENS_TOLERANCE = 1e-2


def check_whitens(white: np.ndarray, cov: np.ndarray, ridge: float,
                  eigenvalues: np.ndarray) -> None:
    """ValueError unless ``white`` whitens ``cov`` (with ``ridge``, as :func:`whitening`
    made it: ``Wᵀ Σ W`` the identity) and ``eigenvalues`` are positive: a model file whose
    statistics were edited apart (a zero whitening scores every pixel 0)."""
    if not (np.asarray(eigenvalues) > 0).all():
        raise ValueError("eigenvalues must be positive")
    w = np.asarray(white, dtype=np.float64)
    product = w.T @ _regularised(cov, ridge) @ w
    if np.result_type(white, cov) == np.float64:
        gap = np.abs(product - np.eye(w.shape[1])).max(initial=0.0)
    else:  # statistics stored in float32 (which a model file may hold): their rounding
        # times the condition number moves single entries (1.115 on abu-airport-1), so
        # the diagonal's median is checked, which a zeroed or rescaled whitening moves
        gap = float(np.median(np.abs(np.diag(product) - 1.0))) if product.size else 0.0
    if not gap <= WHITENS_TOLERANCE:
        raise ValueError(f"the whitening does not whiten the covariance (Wᵀ Σ W is "
                         f"{gap:.3g} from the identity)")


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row of ``x`` (…, B) → (…)."""
    xc = x - mean.astype(x.dtype, copy=False)
    return np.einsum("...i,...i->...", xc @ precision.astype(x.dtype, copy=False), xc)
