"""Cluster RX (ArcGIS Pro *Detect Image Anomalies*, KMEANS method).

Background clusters come from mini-batch k-means (scikit-learn) on a seeded sample of the
valid pixels (or of the background area), bands standardised by the sample's σ and projected
on their 10 leading principal components. Each pixel
scores the squared Mahalanobis distance to its nearest cluster:

    CRX(r) = min_j (r − μ_j)ᵀ K_j⁺ (r − μ_j)

with μ_j the cluster means and K_j (pseudo-inverse as RX's, optionally ridged):

- ``pooled`` (default): one within-cluster covariance Σ_j S_j / n shared by all clusters
  (one triangular product per tile, as RX);
- ``shrunk``: K_j = (S_j + B·K_pooled)/(n_j + B), each cluster shrunk to the pooled one with
  a prior weight of B pixels (one triangular product per cluster);
- ``cluster``: K_j = S_j / n_j alone (plain per-cluster; unstable for small clusters).

Statistics come from the sample (``sample_size`` pixels, the same whatever the chunking); at
most n/(B + 1) clusters are formed so the statistics have pixels to stand on. The fitted
``centres_``, ``whitening_`` and ``counts_`` score any cube with the same bands.

Reference: ArcGIS Pro, *Detect Image Anomalies* (method KMEANS); D. Sculley, "Web-scale
k-means clustering", WWW 2010 (mini-batch k-means).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad.cube import good_band_mask, map_like
from hsad.cube.background import background_mask
from hsad.detectors.base import BaseDetector
from hsad.detectors.param_types import SEED_MAX
from hsad.engine.blas import triangular_factor, working_scale
from hsad.engine.clusters import cluster_block, kmeans_labels, set_small_aside
from hsad.engine.covariance import countable, distinct_rows, whitened_variance, whitening
from hsad.engine.data_checks import (
    FILL_ADVICE,
    FILL_MAGNITUDE,
    check_float32_sample,
)
from hsad.engine.windows import check_dtype, check_ridge, map_pixels, single_threaded_linalg
from hsad.errors import DegenerateDataWarning, ParameterError

COVARIANCES = ("pooled", "shrunk", "cluster")

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


class ClusterRX(BaseDetector):
    """Mahalanobis distance to the nearest of ``n_clusters`` k-means background clusters.

    Parameters
    ----------
    n_clusters : clusters wanted (fewer when the sample is small: at most n/(B + 1)).
    covariance : ``"pooled"`` (default), ``"shrunk"`` or ``"cluster"`` (see the module).
    sample_size : pixels sampled for k-means and the cluster statistics.
    min_cluster_size : sampled pixels a cluster needs to be background (None: B + 1); the
        pixels of smaller clusters are scored against the others (1: every cluster kept).
    ridge : adds ``ridge·tr(K)/B`` to each covariance's diagonal (0 = none; at most 1e6).
    seed : random seed of the sample and of k-means.
    dtype : ``"float32"`` (default) or ``"float64"`` for scoring.
    """

    #: read when scoring (the clusters and their statistics are fitted)
    score_params = frozenset({"dtype"})

    name = "cluster-rx"
    summary = ("Cluster RX: Mahalanobis distance to the nearest k-means background cluster "
               "(ArcGIS KMEANS)")
    model_state = {"bands_": ("B",), "mean_": ("G",), "centres_": ("k", "G"),
                   "counts_": ("k",), "whitening_": ("w", "G", "r"), "n_clusters_": (),
                   "n_sample_": (), "background_": ()}

    def __init__(self, n_clusters: int = 5, covariance: str = "pooled",
                 sample_size: int = 50_000, ridge: float = 0.0, seed: int = 0,
                 dtype: str = "float32", min_cluster_size: int | None = None):
        self.n_clusters = n_clusters
        self.covariance = covariance
        self.sample_size = sample_size
        self.min_cluster_size = min_cluster_size
        self.ridge = ridge
        self.seed = seed
        self.dtype = dtype

    def check_params(self) -> ClusterRX:
        super().check_params()
        self._validate()
        return self

    def _validate(self) -> float:
        for key, low, high in (("n_clusters", 1, None), ("sample_size", 1, None),
                               ("seed", 0, SEED_MAX), ("min_cluster_size", 1, None)):
            v = getattr(self, key)
            if v is None and key == "min_cluster_size":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (
                    high is not None and v > high):
                bound = f"≥ {low}" if high is None else f"in {low}…{high}"
                raise ParameterError(f"{self.name}: {key} must be an integer {bound}, got {v!r}")
        if self.covariance not in COVARIANCES:
            raise ParameterError(f"{self.name}: covariance must be one of {COVARIANCES}, got "
                                 f"{self.covariance!r}")
        check_dtype(self.name, self.dtype)
        return check_ridge(self.name, self.ridge)

    def fit(self, cube: CubeLike, background=None) -> Self:
        """Sample, cluster and estimate each cluster's mean and covariance."""
        from hsad.nn.sampling import sample_pixels  # hsad.nn imports torch: only when fitting

        ridge = self._validate()
        path = cube.attrs.get("source_path")
        region = background_mask(cube, background)
        bands = good_band_mask(cube)
        with np.errstate(over="ignore"):  # values beyond float32: refused just below
            x = sample_pixels(cube, int(self.sample_size), seed=int(self.seed), bands=bands,
                              mask=region, dtype=np.float64).values
        n, b = x.shape
        mean = check_float32_sample(x, cube, bands, self.name)
        cap = max(1, n // (b + 1))
        asked = int(self.n_clusters)
        labels = kmeans_labels(x - mean, min(asked, cap), int(self.seed))
        why = ([f"at most n/(B + 1) = {cap} from {n} pixels of {b} bands"] if asked > cap
               else ["empty clusters dropped"] if labels.max() + 1 < asked else [])
        drawn = n
        smallest = b + 1 if self.min_cluster_size is None else int(self.min_cluster_size)
        x, labels, set_aside = set_small_aside(x, labels, smallest)
        if set_aside:  # the statistics are the background's
            why.append(set_aside)
            mean = x.mean(axis=0)
        n = len(x)
        k = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=k)
        centres = np.stack([x[labels == j].mean(axis=0) for j in range(k)])
        biggest = centres[int(np.argmax(counts))]
        ordinary = np.abs(centres).max(axis=1) <= FILL_MAGNITUDE  # else the scene's unit
        if not np.abs(biggest).max() <= FILL_MAGNITUDE and ordinary.any():  # centred on it
            raise ParameterError(
                f"{self.name}: the largest cluster ({counts.max()} of the {n} pixels drawn) "
                f"lies at {biggest[np.argmax(np.abs(biggest))]:.3g}, beyond "
                f"±{FILL_MAGNITUDE:g}: {FILL_ADVICE}", path)
        resid = x - centres[labels]
        scatter = np.stack([resid[labels == j].T @ resid[labels == j] for j in range(k)])
        pooled = scatter.sum(axis=0) / n
        if not np.trace(pooled) > 0:  # clusters of identical pixels: fall back to one
            if k > 1:
                why.append("each cluster's pixels identical: one cluster of them all")
            k, counts, centres = 1, np.array([n]), mean[None]
            scatter = ((x - mean).T @ (x - mean))[None]
            pooled = scatter[0] / n
        with single_threaded_linalg():
            distinct = (distinct_rows(x) if k == 1 and not ridge > 0 and countable(n, b)
                        else None)
            white, _ = whitening(pooled, ridge, n=n, what=self.name, path=path,
                                 scores_its_pixels=k == 1, distinct=distinct)
            whites = [white]
            if self.covariance != "pooled":
                whites = [self._cluster_whitening(scatter[j], counts[j], pooled, ridge)
                          for j in range(k)]
        if k < asked:
            warnings.warn(f"{self.name}: {k} cluster{'s' if k > 1 else ''} formed of the "
                          f"{asked} asked ({'; '.join(why)}); the map records "
                          f"hsad_clusters = {k}", UserWarning, stacklevel=2)
        rank = max(w.shape[1] for w in whites)
        self.whitening_ = np.stack([np.pad(w, ((0, 0), (0, rank - w.shape[1])))
                                    for w in whites])
        self.centres_ = centres
        self.counts_ = counts
        self.mean_ = mean
        self._remember_bands(cube)
        self.n_clusters_ = k
        self.n_sample_ = drawn
        self.background_ = region is not None
        self._derive()
        return self

    def _derive(self) -> None:
        """The triangular factors that follow from the whitenings (one, or one per cluster)."""
        if self.n_clusters_ != len(self.centres_):
            raise ParameterError(f"n_clusters_ = {self.n_clusters_!r} but centres_ holds "
                                 f"{len(self.centres_)} clusters")
        if len(self.whitening_) not in (1, len(self.centres_)):
            raise ParameterError(f"{len(self.whitening_)} whitenings for "
                                 f"{len(self.centres_)} clusters")
        with single_threaded_linalg():
            self.triangular_ = np.stack([triangular_factor(w) for w in self.whitening_])

    def _cluster_whitening(self, scatter, count, pooled, ridge) -> np.ndarray:
        b = scatter.shape[0]
        if self.covariance == "shrunk":
            cov = (scatter + b * pooled) / (count + b)
        else:
            cov = scatter / max(count, 1)
        if not np.trace(cov) > 0:
            cov = pooled
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)  # small clusters, by design
            return whitening(cov, ridge, what=self.name)[0]

    def _training_level(self) -> tuple[np.ndarray, np.ndarray]:
        """The sample's mean and its total per-band spread: each cluster's variance (from its
        whitening, or the pooled one) plus its centre's offset, weighted by its count."""
        weights = np.asarray(self.counts_, dtype=np.float64)
        weights = weights / weights.sum()
        variance = np.zeros(len(self.mean_))
        for k, weight in enumerate(weights):
            white = np.asarray(self.whitening_[min(k, len(self.whitening_) - 1)], np.float64)
            within = whitened_variance(white)
            variance += weight * (within + (self.centres_[k] - self.mean_) ** 2)
        return self.mean_, np.sqrt(np.clip(variance, 0.0, None))

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map, streamed tile by tile, NaN on nodata pixels."""
        data = self._fitted_bands(cube, "whitening_").rechunk({2: -1})
        dtype = check_dtype(self.name, self.dtype)
        scale = working_scale(self.triangular_)  # data on a scale of 1e-36: factors of 1e38
        # pixels are centred on the largest cluster's centre, not on the mean, which one
        # undeclared fill value (-3.4e38) drags to -3e35: float32 differences from it lost
        # every digit, and the whole map was NaN
        ref = np.asarray(self.centres_[int(np.argmax(self.counts_))], np.float64)
        scores = map_pixels(cluster_block, data, ref,
                            ((self.centres_ - ref) * scale).astype(dtype),
                            np.ascontiguousarray(self.triangular_ / scale, dtype=dtype),
                            cube.attrs.get("nodata"), scale,
                            dtype=dtype)
        return map_like(cube, scores, name="score",
                        attrs={"method": self.name, "hsad_clusters": int(self.n_clusters_)})

