"""Global RX: manifest AUCs on the shared scenes, nodata and bad bands, dtype, χ² threshold."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import scipy.io
from scipy import stats
from sklearn.metrics import roc_auc_score
from tolerance import assert_within_conditioning, solve_rtol

from hsad import datasets, detectors
from hsad.cube import make_cube
from hsad.errors import ParameterError


def _reference_rx(x: np.ndarray) -> np.ndarray:
    """(x − μ)ᵀ pinv(Σ) (x − μ) with Σ normalised by N, float64, over all pixels."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    xc = flat - mean
    prec = np.linalg.pinv(xc.T @ xc / len(flat), hermitian=True)
    return np.einsum("ij,jk,ik->i", xc, prec, xc).reshape(x.shape[:2])


def _rx_condition(x: np.ndarray) -> np.ndarray:
    """Per pixel: κ(Σ) (over the eigenvalues a pseudo-inverse keeps) for the whitening, plus
    2‖μ‖/√(s·λ_min) for forming r = x − μ in the working precision (a pixel near the mean
    of an offset cube loses digits there)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    lam = np.linalg.eigvalsh(np.cov(flat.T, bias=True))
    lam = lam[lam > 1e-10 * lam[-1]]
    s = _reference_rx(x)
    return lam[-1] / lam[0] + 2 * np.linalg.norm(mean) / np.sqrt(s * lam[0])


def assert_equals_reference(scores, x, dtype=np.float64):
    """RX scores equal the float64 pinv formula within the problem's conditioning."""
    assert_within_conditioning(scores, _reference_rx(x), _rx_condition(x), n=x.shape[-1],
                               dtype=dtype)


def _cube(seed=0, shape=(20, 24, 8), **kw):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(shape[2], shape[2]))
    x = rng.normal(size=shape) @ mix + 50.0
    return x, make_cube(x.astype(np.float32), **kw)


def test_rx_auc_matches_manifest_on_every_shared_scene(datasets_dir):
    scenes = json.loads((datasets_dir / "manifest.json").read_text())["scenes"]
    assert sorted(s["name"] for s in scenes) == datasets.names()  # a data manifest per scene
    for scene in scenes:
        mat = scipy.io.loadmat(datasets_dir / scene["file"])
        cube = make_cube(mat[scene["cube_key"]])
        gt = mat[scene["gt_key"]]
        scores = detectors.get("rx").fit_score(cube).values
        auc = roc_auc_score(gt.ravel() > 0, scores.ravel())
        assert abs(auc - scene["rx_global_auc"]) < 0.002, (scene["name"], auc)


def test_rx_scores_equal_the_pinv_formula_in_float32_and_float64():
    x, cube = _cube()
    s64 = detectors.get("rx", dtype="float64").fit_score(cube)
    s32 = detectors.get("rx").fit_score(cube)
    assert s64.dtype == np.float64 and s32.dtype == np.float32
    assert_equals_reference(s64.values, x.astype(np.float32))
    assert_equals_reference(s32.values, x.astype(np.float32), dtype=np.float32)


def test_rx_score_is_lazy_and_keeps_the_cube_chunks():
    x, cube = _cube()
    cube = cube.chunk({"y": 7, "x": 10})
    scores = detectors.get("rx", dtype="float64").fit_score(cube)
    assert isinstance(scores.data, da.Array)
    assert scores.data.chunks == ((7, 7, 6), (10, 10, 4))
    assert_equals_reference(scores.values, x.astype(np.float32))


def test_rx_nodata_pixels_score_nan_and_leave_the_statistics_unchanged():
    x, cube = _cube()
    det = detectors.get("rx", dtype="float64").fit(cube)
    holed = x.astype(np.float32).copy()
    holes = np.zeros(x.shape[:2], bool)
    holes[[0, 3, 3, 19], [0, 5, 6, 23]] = True
    holed[holes] = -9999.0
    holed[5, 5, 2] = np.nan  # a non-finite good band also marks the pixel invalid
    holes[5, 5] = True
    det_holed = detectors.get("rx", dtype="float64").fit(make_cube(holed, nodata=-9999.0))
    kept = x.astype(np.float32).astype(np.float64)[~holes]
    np.testing.assert_allclose(det_holed.mean_, kept.mean(axis=0), rtol=1e-12)
    assert det_holed.n_pixels_ == (~holes).sum()
    assert not np.allclose(det_holed.mean_, det.mean_)
    scores = det_holed.score(make_cube(holed, nodata=-9999.0)).values
    assert np.isnan(scores[holes]).all() and np.isfinite(scores[~holes]).all()


def test_rx_bad_bands_are_left_out():
    x, _ = _cube()
    good = np.ones(x.shape[2], bool)
    good[[1, 6]] = False
    x_bad = x.astype(np.float32).copy()
    x_bad[:, :, 1] = np.nan  # garbage in a bad band must not matter
    x_bad[:, :, 6] = 1e30
    det = detectors.get("rx", dtype="float64").fit(make_cube(x_bad, good_band=good))
    assert det.mean_.shape == (6,) and det.rank_ == 6
    scores = det.score(make_cube(x_bad, good_band=good)).values
    assert_equals_reference(scores, x.astype(np.float32)[:, :, good])


def test_rx_ridge_regularises_the_covariance():
    x, cube = _cube()
    det = detectors.get("rx", ridge=0.1, dtype="float64").fit(cube)
    cov = det.cov_
    regularised = cov + np.eye(8) * 0.1 * np.trace(cov) / 8
    expected = np.linalg.inv(regularised)
    # an inverse's entries err by about κ·u relative to its norm, not to each entry
    atol = solve_rtol(np.linalg.cond(regularised), 8) * np.abs(expected).max()
    np.testing.assert_allclose(det.precision_, expected, rtol=0, atol=atol)
    assert det.score(cube).values.max() < detectors.get("rx").fit_score(cube).values.max()


def test_rx_pseudo_inverse_handles_collinear_bands():
    x, _ = _cube()
    x = np.concatenate([x, x[:, :, :1] * 2.0], axis=2)  # band 9 = 2 × band 1
    det = detectors.get("rx", dtype="float64").fit(make_cube(x))
    assert det.rank_ == 8
    assert_equals_reference(det.score(make_cube(x)).values, x)


def test_rx_null_threshold_is_the_chi2_quantile_with_rank_dof():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 200, 5))
    det = detectors.get("rx", dtype="float64")
    scores = det.fit_score(make_cube(x))
    assert det.null_threshold(0.01) == pytest.approx(stats.chi2.isf(0.01, df=5))
    mask = det.threshold(scores, far=0.01)
    assert det.threshold_ == pytest.approx(stats.chi2.isf(0.01, df=5))
    assert 0.008 < mask.values.mean() < 0.012  # Gaussian background: FAR as asked


@pytest.mark.parametrize("ridge", [0.1, 1.0])
def test_rx_null_threshold_with_a_ridge_keeps_the_false_alarm_rate(ridge):
    """A ridge shrinks every direction's score (λ/(λ + δ)): the plain χ² threshold flagged
    104 and 0 pixels of 400 asked at ridge 0.1 and 1 on a Gaussian background. The null is
    the weighted χ² of those factors."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 200, 30)) @ rng.normal(size=(30, 30))
    det = detectors.get("rx", dtype="float64", ridge=ridge)
    scores = det.fit_score(make_cube(x))
    for far in (0.01, 0.001):
        rate = det.threshold(scores, far=far).values.mean()
        # the approximation's 10 % and four binomial standard deviations
        spread = 0.1 * far + 4 * np.sqrt(far / x[..., 0].size)
        assert abs(rate - far) < spread, (far, rate)
        assert det.threshold_ < stats.chi2.isf(far, df=30)


def test_rx_refuses_to_score_before_fit_or_on_other_bands():
    x, cube = _cube()
    with pytest.raises(ParameterError, match="not fitted"):
        detectors.get("rx").score(cube)
    det = detectors.get("rx").fit(cube)
    with pytest.raises(ParameterError, match="good bands"):
        det.score(make_cube(x[:, :, :5]))


def test_rx_rejects_bad_parameters():
    _, cube = _cube()
    for params in ({"ridge": -1}, {"ridge": "x"}, {"dtype": "int16"}, {"dtype": "float16"}):
        with pytest.raises(ParameterError):
            detectors.get("rx", **params).fit(cube)
