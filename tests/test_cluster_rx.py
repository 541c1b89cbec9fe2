"""Cluster RX: the nearest-cluster Mahalanobis formula in numpy on planted clusters, the
three covariance models, streaming, nodata, a fitted detector on a new cube."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tolerance import assert_within_conditioning

from hsad import detectors
from hsad.cube import make_cube
from hsad.errors import ParameterError

CENTRES = np.array([[0.0] * 5, [40.0, 0, 0, 0, 0], [0, 40.0, 0, 0, 0]]) + 100.0


def _scene(seed=0, rows=30, cols=30):
    """Three well-separated Gaussian clusters (k-means recovers them exactly), one each in
    three vertical stripes, with their own covariances; also the true labels."""
    rng = np.random.default_rng(seed)
    labels = np.minimum(np.arange(cols) * 3 // cols, 2)[None, :].repeat(rows, 0)
    x = np.empty((rows, cols, 5))
    for j in range(3):
        mix = rng.normal(size=(5, 5)) * 0.5 + np.eye(5) * (1 + j)
        pts = rng.normal(size=(int((labels == j).sum()), 5)) @ mix + CENTRES[j]
        x[labels == j] = pts
    return x.astype(np.float32), labels


def _reference(x, labels, covariance):
    """min_j (r − μ_j)ᵀ K_j⁺ (r − μ_j) from the true clusters; and the worst κ(K_j)."""
    flat, lab = x.reshape(-1, x.shape[-1]).astype(np.float64), labels.ravel()
    n, b = flat.shape
    mus = np.stack([flat[lab == j].mean(0) for j in range(3)])
    scat = [(flat[lab == j] - mus[j]).T @ (flat[lab == j] - mus[j]) for j in range(3)]
    pooled = sum(scat) / n
    covs = {"pooled": [pooled] * 3,
            "shrunk": [(s + b * pooled) / ((lab == j).sum() + b) for j, s in enumerate(scat)],
            "cluster": [s / (lab == j).sum() for j, s in enumerate(scat)]}[covariance]
    d = np.stack([np.einsum("ij,jk,ik->i", flat - m, np.linalg.pinv(c, hermitian=True),
                            flat - m) for m, c in zip(mus, covs, strict=True)])
    score = d.min(0).reshape(x.shape[:2])
    kappa = max(np.linalg.cond(c) for c in covs)
    cond = kappa + 2 * np.linalg.norm(flat - flat.mean(0), axis=1).reshape(score.shape) / \
        np.sqrt(score * min(np.linalg.eigvalsh(c)[0] for c in covs))
    return score, cond


@pytest.mark.parametrize("covariance", ["pooled", "shrunk", "cluster"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scores_equal_the_nearest_cluster_formula(covariance, dtype):
    x, labels = _scene()
    det = detectors.get("cluster-rx", n_clusters=3, covariance=covariance, dtype=dtype,
                        sample_size=10_000)  # the whole scene is the sample
    got = det.fit_score(make_cube(x))
    assert det.n_clusters_ == 3 and det.n_sample_ == x.shape[0] * x.shape[1]
    assert sorted(det.counts_) == sorted(np.bincount(labels.ravel()))
    ref, cond = _reference(x, labels, covariance)
    assert_within_conditioning(got.values, ref, cond, n=5, dtype=np.dtype(dtype))


def test_tiled_equals_whole_nan_at_nodata_and_a_fitted_detector_scores_a_new_cube():
    x, _ = _scene(seed=1)
    x[2, 3] = np.nan
    x[20, 29, 1] = -5.0
    params = dict(n_clusters=3, dtype="float64", sample_size=500, seed=4)
    whole = detectors.get("cluster-rx", **params).fit_score(make_cube(x, nodata=-5.0)).values
    det = detectors.get("cluster-rx", **params).fit(make_cube(x, nodata=-5.0).chunk(
        {"y": 7, "x": 9}))
    tiled = det.score(make_cube(x, nodata=-5.0).chunk({"y": 7, "x": 9}))
    assert tiled.data.npartitions > 1
    np.testing.assert_allclose(tiled.values, whole, rtol=1e-9, atol=0)
    off = np.zeros(whole.shape, bool)
    off[2, 3] = off[20, 29] = True
    np.testing.assert_array_equal(np.isnan(whole), off)
    y, _ = _scene(seed=2)
    new = det.score(make_cube(y)).values  # the stored clusters score another cube
    white = det.whitening_[0]
    d = [(((y.reshape(-1, 5) - c) @ white) ** 2).sum(1) for c in det.centres_]
    np.testing.assert_allclose(new.ravel(), np.min(d, axis=0), rtol=1e-9)


def test_an_outlier_between_clusters_scores_high_where_global_rx_does_not():
    x, _ = _scene(seed=3)
    x[15, 15] = (CENTRES[1] + CENTRES[2]) / 2  # inside the global cloud, far from each cluster
    crx = detectors.get("cluster-rx", n_clusters=3).fit_score(make_cube(x)).values
    rx = detectors.get("rx").fit_score(make_cube(x)).values
    assert np.unravel_index(np.nanargmax(crx), crx.shape) == (15, 15)
    assert (rx > rx[15, 15]).mean() > 0.05


@pytest.mark.parametrize(("key", "value"), [("n_clusters", 0), ("covariance", "full"),
                                            ("sample_size", 2.5), ("ridge", -1),
                                            ("seed", -1), ("seed", 2.5), ("seed", "abc")])
def test_bad_parameters_are_refused(key, value):
    with pytest.raises(ParameterError, match=key):
        detectors.get("cluster-rx", **{key: value}).fit(make_cube(_scene()[0]))


def test_fewer_clusters_than_asked_warn_and_are_recorded():
    x = _scene()[0]  # 900 pixels of 5 bands: at most 150 clusters
    det = detectors.get("cluster-rx", n_clusters=10_000)
    with pytest.warns(UserWarning, match=r"clusters formed of the 10000 asked \(at most "
                      r"n/\(B \+ 1\) = 150 from 900 pixels of 5 bands[;)]"):
        scores = det.fit_score(make_cube(x))
    assert scores.attrs["hsad_clusters"] == det.n_clusters_ <= 150


def test_an_undeclared_fill_value_warns_even_when_it_forms_its_own_cluster():
    """One pixel at -3.4e38: k-means gives it a cluster of its own, so the pooled
    within-cluster covariance does not show it; the sample's spread does, and cluster RX
    warns as RX does (it said nothing). By default that cluster of one is set aside as
    not background (min_cluster_size=1 keeps it)."""
    import warnings

    from hsad.errors import DegenerateDataWarning

    x, _ = _scene()
    x[0, 0] = -3.4028235e38
    det = detectors.get("cluster-rx", n_clusters=4, min_cluster_size=1)
    with pytest.warns(DegenerateDataWarning, match=r"spread over ±1\.\de\+37: an undeclared "
                      r"fill value.*--nodata VALUE"):
        det.fit(make_cube(x))
    assert 1 in det.counts_  # the fill pixel alone
    with pytest.warns(DegenerateDataWarning, match="an undeclared fill value"):
        det = detectors.get("cluster-rx", n_clusters=4).fit(make_cube(x))  # set aside
    assert det.counts_.sum() == x.shape[0] * x.shape[1] - 1
    with warnings.catch_warnings():  # declared: silent, and scored as nodata
        warnings.simplefilter("error", DegenerateDataWarning)
        scores = det.fit_score(make_cube(x, nodata=-3.4028235e38)).values
    assert np.isnan(scores[0, 0]) and np.isfinite(scores).sum() == scores.size - 1


def test_an_undeclared_fill_value_leaves_the_other_pixels_scored(datasets_dir):
    """abu-beach-4 (values 0..1) with a 3 × 3 block at -3.4e38: the map was NaN everywhere
    with exit 0 (pixels were centred on the mean, which the fill value drags to -3e35, and
    float32 differences from it kept no digit). Centred on the largest cluster's centre,
    every other pixel is scored as in the clean scene, to float32 rounding."""
    import warnings

    from hsad.errors import DegenerateDataWarning
    from hsad.io.matlab import load_mat

    cube, _ = load_mat(datasets_dir / "abu-beach-4.mat")
    x = np.asarray(cube.values, np.float32).copy()
    x[5:8, 5:8, :] = -3.4028235e38
    with pytest.warns(DegenerateDataWarning, match="undeclared fill value"):
        det = detectors.get("cluster-rx").fit(make_cube(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        scores = det.score(make_cube(x)).values
    scored = np.isfinite(scores)
    assert scored.sum() == scores.size - 9 and not scored[5:8, 5:8].any()


def test_a_fill_value_holding_the_largest_cluster_is_refused_in_one_line():
    """60 % of the scene at -3.4e38, undeclared: the pixels would be centred on the fill
    value's cluster (the map was NaN in float32, 0 in float64, exit 0)."""
    import warnings

    rng = np.random.default_rng(0)
    d = (rng.normal(size=(40, 50, 12)) * 0.05 + 0.3).astype(np.float32)
    d[:, 20:, :] = -3.4e38
    with warnings.catch_warnings(), pytest.raises(
            ParameterError, match=r"the largest cluster \(\d+ of the \d+ pixels drawn\) lies "
                                  r"at -3\.4e\+38, beyond ±1e\+20: an undeclared fill value"):
        warnings.simplefilter("ignore")
        detectors.get("cluster-rx").fit(make_cube(d))


def test_a_scene_in_a_large_unit_is_scored_not_taken_for_a_fill_value():
    """Values around 1e25 everywhere are the scene's unit (RX warns so and scores): the
    largest cluster lies beyond ±1e20 without any fill value."""
    import warnings

    x, _ = _scene()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big = detectors.get("cluster-rx").fit_score(make_cube(x * 1e23)).values
        unit = detectors.get("cluster-rx").fit_score(make_cube(x)).values
    np.testing.assert_allclose(big, unit, rtol=1e-3)


def test_a_float64_scene_keeps_its_digits_in_the_statistics():
    """The sample the clusters' statistics come from keeps a float64 scene's values (the
    statistics are float64, as `hsad methods cluster-rx` says): it had been cast to float32,
    and on a scene offset by 1000 with a spread of 1e-3 one cluster's map then differed from
    RX's by 3.5e-3 of the median score."""
    rng = np.random.default_rng(1)
    x = 1000.0 + 1e-3 * (rng.normal(size=(40, 40, 6)) @ rng.normal(size=(6, 6)))
    cube = make_cube(x)
    rx = detectors.get("rx", dtype="float64").fit_score(cube).values
    one = detectors.get("cluster-rx", n_clusters=1, dtype="float64").fit_score(cube).values
    flat = x.reshape(-1, 6)
    cov = np.cov(flat.T, bias=True)
    lam = np.linalg.eigvalsh(cov)
    # κ(C), and the rounding of the values themselves (u·‖x‖) against the pixel's distance
    # √(score·λ_min), as in _reference
    norms = np.linalg.norm(flat, axis=1).reshape(rx.shape)
    cond = lam[-1] / lam[0] + 2 * norms / np.sqrt(rx * lam[0])
    assert_within_conditioning(one, rx, cond, n=6, dtype=np.float64)


def _with_target(seed=0):
    """The three-cluster scene with a 2 × 2 target of one foreign spectrum: k-means (8
    clusters asked) gives its 4 pixels a cluster of their own."""
    x, _ = _scene(seed, rows=40, cols=40)
    x[20:22, 20:22] = CENTRES[0] + np.array([0.0, 0.0, 300.0, -300.0, 300.0])
    return x


def test_a_compact_target_is_not_a_background_cluster():
    """Its own cluster's centre had scored the target 1.6e-7, the lowest of the scene, with
    no warning (a real crop of abu-airport-1, the same): a cluster of fewer than B + 1
    sampled pixels is set aside and its pixels are scored against the others, as global
    RX ranks them (above every background pixel); min_cluster_size=1 keeps it."""
    x = _with_target()
    det = detectors.get("cluster-rx", n_clusters=8)
    with pytest.warns(UserWarning, match=r"clusters formed of the 8 asked \(1 of fewer than "
                      r"min_cluster_size = 6 pixels \(4 of the 1600 drawn\) set aside as not "
                      r"background: their pixels score against the others\)"):
        scores = det.fit_score(make_cube(x)).values
    target = np.zeros(x.shape[:2], bool)
    target[20:22, 20:22] = True
    assert scores[target].min() > scores[~target].max()
    assert 4 not in det.counts_ and det.counts_.sum() == 1600 - 4
    kept = detectors.get("cluster-rx", n_clusters=8, min_cluster_size=1)
    old = kept.fit_score(make_cube(x)).values
    assert 4 in kept.counts_ and old[target].max() < np.median(old[~target])


def test_the_clusters_warned_of_are_those_the_map_records():
    """Three distinct spectra repeated, 8 clusters asked: the warning said 3 clusters while
    the fit then fell back to one (each cluster's pixels identical) and the map's tag said
    1; the warning now comes after the fallback, with its reason."""
    base = np.array([[1.0, 2, 3, 4, 5], [2.0, 1, 5, 3, 4], [5.0, 4, 1, 2, 3]])
    x = base[np.arange(400) % 3].reshape(20, 20, 5).astype(np.float32)
    det = detectors.get("cluster-rx", n_clusters=8)
    with pytest.warns(UserWarning, match=r"1 cluster formed of the 8 asked \(.*each "
                      r"cluster's pixels identical: one cluster of them all\); the map "
                      r"records hsad_clusters = 1") as caught:
        scores = det.fit_score(make_cube(x))
    assert scores.attrs["hsad_clusters"] == det.n_clusters_ == 1
    assert not [w for w in caught if "3 clusters formed" in str(w.message)]


def test_a_min_cluster_size_beyond_every_cluster_is_said():
    """`min_cluster_size=100000` set nothing aside (none would be left) and said nothing,
    where the docs say every smaller cluster is set aside."""
    det = detectors.get("cluster-rx", n_clusters=3, min_cluster_size=100_000)
    with pytest.warns(UserWarning, match=r"min_cluster_size = 100000 exceeds every cluster "
                                         r"\(the largest holds \d+ of the 900 pixels drawn\): "
                                         r"none set aside"):
        det.fit(make_cube(_scene()[0]))
    assert det.counts_.sum() == 900


def test_min_cluster_size_is_checked():
    with pytest.raises(ParameterError, match=r"cluster-rx: min_cluster_size must be an "
                                             r"integer ≥ 1, got 0"):
        detectors.get("cluster-rx", min_cluster_size=0).check_params()


def test_the_training_level_comes_from_a_qr_not_a_pseudo_inverse():
    """The per-band spread a cluster's whitening stands for was the diagonal of a B×B
    pseudo-inverse (its SVD, twice: 36 of 52 s of a 60×60×2000 cube); a QR gives it, closer
    to the covariance, and the same pseudo-inverse's diagonal for a singular one."""
    from hsad.engine.covariance import whitened_variance, whitening

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 200)) @ rng.normal(size=(200, 200))
    x[:, :3] *= 1e3  # bands on other scales: the whitening is equilibrated
    cov = np.cov(x.T)
    np.testing.assert_allclose(whitened_variance(whitening(cov)[0]), np.diag(cov), rtol=1e-9)
    low = rng.normal(size=(100, 10)) @ rng.normal(size=(10, 30))  # rank 10 of 30 bands
    cov = np.cov(low.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numerically singular, said elsewhere
        white = whitening(cov)[0]
    np.testing.assert_allclose(whitened_variance(white),
                               np.diag(np.linalg.pinv(white @ white.T)), rtol=1e-6)
