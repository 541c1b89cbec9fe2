"""Global RX (Reed & Yu 1990): squared Mahalanobis distance to the scene's mean and covariance.

``RX(y) = (y − μ)ᵀ Σ⁺ (y − μ)``, with μ and Σ (normalised by N) streamed over the cube's
chunks from its valid pixels and good bands. Σ⁺ is the pseudo-inverse (eigenvalues below
1e-10·λ_max dropped), optionally of ``Σ + ridge·tr(Σ)/B·I``. Scoring factors Σ⁺ = RᵀR with
R upper triangular and computes ``‖R (y − μ)‖²`` tile by tile, lazily with dask: one
triangular matrix product (BLAS trmm, half a GEMM, run without the GIL so that dask's
threads score tiles in parallel) per piece of pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad.cube import map_like, nodata_hits
from hsad.cube.background import background_mask
from hsad.detectors.base import BaseDetector
from hsad.engine.blas import triangular_factor, upper_trmm, working_mean, working_scale
from hsad.engine.covariance import check_whitens, distinct_spectra, whitening
from hsad.engine.data_checks import scene_moments
from hsad.engine.windows import (
    PIECE_PIXELS,
    check_dtype,
    check_ridge,
    map_pixels,
    single_threaded_linalg,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


def rx_block(
    block: np.ndarray, mean: np.ndarray, tri: np.ndarray | None, nodata: float | None = None,
    linear: np.ndarray | None = None, work=None, scale: float = 1.0,
) -> np.ndarray:
    """RX scores ``‖R (x − mean)‖²`` of a ``(rows, cols, B)`` block in the dtype of ``tri``.

    ``tri`` is the upper-triangular factor of Σ⁺ (Fortran order). ``linear`` (a float64
    B-vector a) adds ``aᵀ(x − mean)``, summed in float64 (its terms may cancel); with
    ``tri=None`` the score is that term alone, in the dtype ``work`` (UTD, RXD-UTD). Pixels
    that are not finite or have a band at ``nodata`` score NaN. ``scale`` (a power of two,
    :func:`working_scale`): ``tri`` is ``R / scale``, ``linear`` is ``a / scale`` and the
    centred values are multiplied by ``scale`` in float64 before the cast, so that data on
    a scale of 1e-39 keep their precision.
    """
    rows, cols, bands = block.shape
    dtype = tri.dtype if tri is not None else np.dtype(work)
    mean, residue, shift = working_mean(mean, block.dtype, dtype, scale, tri, linear)
    out = np.empty((rows, cols), dtype=dtype)
    screen_nodata = nodata is not None and np.isfinite(nodata)
    step = max(1, PIECE_PIXELS // max(cols, 1))
    buf = np.empty((min(step, rows), cols, bands), dtype=dtype)  # reused: no page faults
    with single_threaded_linalg():  # dask runs one tile per core
        for r in range(0, rows, step):
            raw = block[r : r + step]
            piece = buf[: raw.shape[0]]
            if scale != 1.0:  # centred and scaled in float64, then cast
                np.multiply(np.subtract(raw, mean), scale, out=piece, casting="unsafe")
            else:
                np.subtract(raw, mean, out=piece, casting="unsafe")  # cast and centre at once
                if residue is not None:
                    piece -= residue
            piece = piece.reshape(-1, bands)
            with np.errstate(invalid="ignore"):  # inf·a + (−inf)·b: NaN, as the line below
                score = piece @ linear - shift if linear is not None else 0.0
            if tri is not None:
                z = upper_trmm(tri, piece.T).T  # (R (x − μ))ᵀ, in place, GIL released
                score = score + np.einsum("ij,ij->i", z, z)
            if screen_nodata:
                score[nodata_hits(raw, nodata).any(axis=-1).reshape(-1)] = np.nan
            score[~np.isfinite(score)] = np.nan  # NaN or ±inf in a band
            out[r : r + step] = score.reshape(-1, cols)
    return out


class GlobalRX(BaseDetector):
    """Global RX anomaly detector.

    Parameters
    ----------
    ridge : adds ``ridge·tr(Σ)/B`` to the diagonal of Σ before the pseudo-inverse (0 = none;
        at most 1e6).
    dtype : ``"float32"`` (default) or ``"float64"`` for the scoring GEMM; statistics are
        always accumulated in float64.
    """

    #: read when scoring (``ridge`` shapes the fitted whitening: fit again after it)
    score_params = frozenset({"dtype"})
    #: whether background scores follow χ² of the rank (UTD's and RXD-UTD's do not)
    CHI2_NULL = True

    name = "rx"
    summary = "Global RX: Mahalanobis distance to the scene mean and covariance (Reed-Yu)"
    model_state = {"bands_": ("B",), "mean_": ("G",), "cov_": ("G", "G"),
                   "whitening_": ("G", "r"), "eigenvalues_": ("r",), "n_pixels_": (),
                   "background_": ()}

    def __init__(self, ridge: float = 0.0, dtype: str = "float32"):
        self.ridge = ridge
        self.dtype = dtype

    def check_params(self) -> GlobalRX:
        super().check_params()
        check_ridge(self.name, self.ridge)
        check_dtype(self.name, self.dtype)
        return self

    def fit(self, cube: CubeLike, background=None) -> Self:
        """Stream μ and Σ over the valid pixels and good bands (inside ``background``, a mask
        or polygons, see :mod:`hsad.cube.background`); factor the pseudo-inverse."""
        ridge = check_ridge(self.name, self.ridge)
        check_dtype(self.name, self.dtype)
        region = background_mask(cube, background)
        moments = scene_moments(cube, self.name, region=region)
        distinct = distinct_spectra(cube, moments.n, region) if not ridge > 0 else None
        with single_threaded_linalg():  # B×B work: threads only add overhead
            white, eigenvalues = whitening(moments.cov, ridge=ridge, n=moments.n,
                                           what=self.name, path=cube.attrs.get("source_path"),
                                           scores_its_pixels=True, distinct=distinct)
        self._remember_bands(cube)
        self.background_ = region is not None
        self.n_pixels_ = moments.n
        self.mean_ = moments.mean
        self.cov_ = moments.cov
        self.whitening_ = white
        self.eigenvalues_ = eigenvalues
        self._derive()
        return self

    def _derive(self) -> None:
        """The triangular factor, precision and rank that follow from the whitening (which
        must whiten the covariance: a model file's are checked so)."""
        check_whitens(self.whitening_, self.cov_, float(self.ridge), self.eigenvalues_)
        with single_threaded_linalg():
            self.triangular_ = triangular_factor(self.whitening_)
        self.rank_ = int(self.eigenvalues_.size)
        self.precision_ = self.whitening_ @ self.whitening_.T

    def _training_level(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean_, np.sqrt(np.clip(np.diag(self.cov_), 0.0, None))

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map of RX scores (dask-backed), NaN on nodata pixels."""
        return self._streamed(cube, self.triangular_ if hasattr(self, "triangular_") else None)

    def _streamed(self, cube: xr.DataArray, tri: np.ndarray | None,
                  linear: np.ndarray | None = None) -> xr.DataArray:
        """Lazy map of :func:`rx_block` with the fitted mean, ``tri`` and ``linear``."""
        data = self._fitted_bands(cube, "whitening_").rechunk({2: -1})
        dtype = check_dtype(self.name, self.dtype)
        scale = working_scale(tri)
        scores = map_pixels(
            rx_block,
            data,
            self.mean_,
            None if tri is None else np.asfortranarray(tri / scale, dtype=dtype),
            cube.attrs.get("nodata"),
            # the linear term reads the scaled values too: aᵀ(x − μ) = (a/s)ᵀ(s·(x − μ))
            None if linear is None else np.asarray(linear, dtype=np.float64) / scale,
            dtype,
            scale,
            dtype=dtype,
        )
        # the rank: the degrees of freedom of the map's null (threshold(far=) checks it)
        # and the ridge, which shrinks that null (threshold(far=) of an unfitted RX reads both)
        return map_like(cube, scores, name="score",
                        attrs={"method": self.name, "hsad_rank": int(self.rank_),
                               "hsad_ridge": float(self.ridge or 0.0)})

    def null_threshold(self, far: float) -> float | None:
        """The null quantile: Gaussian background RX scores follow χ² with ``rank_`` degrees
        of freedom; with a ridge, ``Σ wᵢ·χ²₁`` with ``wᵢ = λᵢ/(λᵢ + δ)``, the eigenvalues of
        ``WᵀΣW`` (the ridge shrinks every direction's score;
        :func:`hsad.engine.thresholds.weighted_chi2_isf`)."""
        if getattr(self, "rank_", 0) < 1:
            return None
        if float(self.ridge or 0.0) > 0:
            from hsad.engine.thresholds import weighted_chi2_isf

            white = np.asarray(self.whitening_, dtype=np.float64)
            weights = np.linalg.eigvalsh(white.T @ np.asarray(self.cov_) @ white)
            return weighted_chi2_isf(far, weights)
        from scipy.stats import chi2  # 0.5–0.8 s to import: not on every RX run

        return float(chi2.isf(far, df=self.rank_))

    def _null_of_map(self, scores: xr.DataArray, far: float) -> float | None:
        """χ² with the map's ``hsad_rank`` degrees of freedom, for an unfitted detector
        and a map made without a ridge (its ``hsad_ridge`` 0: a new ``GlobalRX()`` had
        fallen back to the robust log-normal fit, 24.55 where the fit gives 20.09); a
        ridge's null needs the fitted eigenvalues, and a map that does not say its ridge
        (or UTD's, :attr:`CHI2_NULL`) gets none."""
        try:  # as the map holds them, or as a GeoTIFF's tags gave them back (text)
            rank, ridge = int(scores.attrs["hsad_rank"]), float(scores.attrs["hsad_ridge"])
        except (KeyError, TypeError, ValueError):
            return None
        if not self.CHI2_NULL or float(self.ridge or 0.0) > 0 or ridge != 0 or rank < 1:
            return None
        from scipy.stats import chi2

        return float(chi2.isf(far, df=rank))
