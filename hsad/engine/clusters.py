"""Cluster RX's numerical kernels: k-means labels of a pixel sample, the small clusters set
aside as not background, and each pixel's Mahalanobis distance to its nearest cluster, a
tile at a time (:mod:`hsad.detectors.cluster_rx`).
"""

from __future__ import annotations

import warnings

import numpy as np

from hsad.engine.blas import upper_trmm, working_mean
from hsad.engine.stats import valid_rows
from hsad.engine.windows import single_threaded_linalg

#: principal components of the standardised sample that k-means clusters in
KMEANS_COMPONENTS = 10
#: pixels per GEMM inside a tile
_PIECE = 16384


def kmeans_labels(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Mini-batch k-means labels (0…k'−1, empty clusters dropped) of the centred sample
    ``x`` (n, B): bands standardised by their σ, then its ``KMEANS_COMPONENTS`` leading
    principal components."""
    if k <= 1:
        return np.zeros(len(x), dtype=np.int64)
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    sd = x.std(axis=0)
    z = x / np.where(sd > 0, sd, 1.0)
    if z.shape[1] > KMEANS_COMPONENTS:  # k-means on the leading principal components
        _, vec = np.linalg.eigh(z.T @ z)
        z = z @ vec[:, ::-1][:, :KMEANS_COMPONENTS]
    km = MiniBatchKMeans(n_clusters=k, random_state=int(seed), n_init=3,
                         batch_size=min(1024, len(z)))
    # one thread: on a small sample OpenMP's threads cost more than they give (3-7x)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # ConvergenceWarning on tiny or repeated data
        labels = km.fit_predict(z)
    _, labels = np.unique(labels, return_inverse=True)  # drop empty clusters
    return labels.reshape(-1)


def set_small_aside(x: np.ndarray, labels: np.ndarray, smallest: int,
                     ) -> tuple[np.ndarray, np.ndarray, str]:
    """``(x, labels, said)`` without the clusters of fewer than ``smallest`` pixels, where
    a larger one is left (``said`` tells which, or is empty): a compact group of anomalous
    pixels forms a cluster of its own, whose centre would score its pixels lowest of all
    (a 2 × 2 target scored 1.6e-7 beside a background median of 25). Their pixels are
    scored against the other clusters."""
    counts = np.bincount(labels)
    small = counts < smallest
    if small.all() and smallest > 1:  # none is left to score against: all kept, said
        warnings.warn(f"cluster-rx: min_cluster_size = {smallest} exceeds every cluster (the "
                      f"largest holds {counts.max()} of the {len(x)} pixels drawn): none set "
                      "aside", UserWarning, stacklevel=3)
    if not small.any() or small.all():
        return x, labels, ""
    renumber = np.cumsum(~small) - 1
    keep = ~small[labels]
    sizes = ", ".join(map(str, counts[small][:8])) + (", …" if small.sum() > 8 else "")
    said = (f"{int(small.sum())} of fewer than min_cluster_size = {smallest} pixels "
            f"({sizes} of the {len(x)} drawn) set aside as not "
            "background: their pixels score against the others")
    return x[keep], renumber[labels[keep]], said


def cluster_block(block: np.ndarray, mean: np.ndarray, centres: np.ndarray,
                  tri: np.ndarray, nodata: float | None = None,
                  scale: float = 1.0) -> np.ndarray:
    """Min over clusters of ``‖R_j (x − μ_j)‖²`` for a ``(rows, cols, B)`` block.

    ``centres`` (k, B) are μ_j − ``mean``, ``mean`` any reference pixels are centred on
    (Cluster RX's ``score`` takes the largest cluster's centre); ``tri`` (k, B, B) the
    upper-triangular factors R_j of K_j⁺ (RX's ``triangular_factor``), or (1, B, B) when
    pooled: then each pixel is whitened once and its distance to every whitened centre
    computed exactly. ``scale``
    (RX's ``working_scale``): ``tri`` is R/scale, ``centres`` are scaled, and so are the
    centred values, in float64 before the cast.
    """
    rows, cols, bands = block.shape
    dtype = tri.dtype
    mean, residue, _ = working_mean(mean, block.dtype, dtype, scale, tri)
    flat = block.reshape(-1, bands)
    out = np.empty(rows * cols, dtype=dtype)
    tri = [np.asfortranarray(t) for t in tri]
    with single_threaded_linalg():
        for lo in range(0, flat.shape[0], _PIECE):
            raw = flat[lo:lo + _PIECE]
            c = np.subtract(raw, mean)
            c = (c * scale if scale != 1.0 else c).astype(dtype, copy=False)
            if residue is not None:
                c -= residue
            score = np.full(raw.shape[0], np.inf, dtype=dtype)
            # a distance to a far cluster (an undeclared fill value's, say) may overflow
            # float32: it is not the nearest, and fmin takes the others (NaN included)
            with np.errstate(over="ignore", invalid="ignore"):
                if len(tri) == 1:  # pooled: one triangular product, exact distances
                    z = upper_trmm(tri[0], np.array(c.T, order="F")).T
                    for zc in centres @ tri[0].T:
                        d = z - zc
                        np.fmin(score, np.einsum("ij,ij->i", d, d), out=score)
                else:
                    for centre, r in zip(centres, tri, strict=True):
                        z = upper_trmm(r, np.array((c - centre).T, order="F")).T
                        np.fmin(score, np.einsum("ij,ij->i", z, z), out=score)
            ok = valid_rows(raw, nodata)
            if ok is not None:
                score[~ok] = np.nan
            score[~np.isfinite(score)] = np.nan
            out[lo:lo + _PIECE] = score
    return out.reshape(rows, cols)
