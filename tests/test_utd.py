"""UTD and RXD-UTD: Chang's formulas in numpy, streaming, nodata, background, registry."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import solve_rtol

from hsad import detectors
from hsad.cube import make_cube


def _cube(seed=0, shape=(20, 24, 8), offset=50.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(shape[2], shape[2])) + 2 * np.eye(shape[2])
    x = (rng.normal(size=shape) @ mix + offset).astype(np.float32)
    return x, make_cube(x)


def _reference(x: np.ndarray):
    """(UTD, RXD-UTD, the magnitudes each sum cancels, κ(K)) in float64 over all pixels."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mu = flat.mean(axis=0)
    cov = (flat - mu).T @ (flat - mu) / len(flat)
    prec = np.linalg.pinv(cov, hermitian=True)
    one = np.ones_like(mu)
    c = flat - mu
    utd = c @ prec @ (one - mu)
    rxd_utd = np.einsum("ij,jk,ik->i", flat - one, prec, c)
    norm = np.sqrt(np.einsum("ij,jk,ik->i", c, prec, c))

    def mahal(v):
        return np.sqrt(np.einsum("...j,jk,...k->...", v, prec, v))

    # |aᵀ K⁻¹ b| ≤ ‖a‖_K⁻¹ ‖b‖_K⁻¹: the size of the terms a float sum cancels; forming r − μ
    # adds ‖μ‖ relative to the whitened residual
    scale_utd = mahal(one - mu) * norm + np.linalg.norm(mu) * np.abs(prec @ (one - mu)).sum()
    scale_rxd = mahal(flat - one) * norm + np.linalg.norm(mu) * np.abs(prec @ (one - mu)).sum()
    kappa = np.linalg.cond(cov)
    shape = x.shape[:2]
    return (utd.reshape(shape), rxd_utd.reshape(shape), scale_utd.reshape(shape),
            scale_rxd.reshape(shape), kappa)


def assert_matches(actual, desired, scale, kappa, n, dtype):
    """|Δ| ≤ √n·u·κ·(magnitude of the terms summed), per pixel (tests/tolerance.py)."""
    rtol = solve_rtol(kappa, n, dtype)
    assert rtol < 1e-2, "test too ill-conditioned"
    err = np.abs(np.asarray(actual, np.float64) - desired)
    assert (err <= rtol * scale).all(), float((err / (rtol * scale)).max())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_utd_and_rxd_utd_equal_chang_formulas(dtype):
    x, cube = _cube()
    utd, rxd, s_utd, s_rxd, kappa = _reference(x)
    got_utd = detectors.get("utd", dtype=dtype).fit_score(cube).values
    got_rxd = detectors.get("rxd-utd", dtype=dtype).fit_score(cube).values
    assert got_utd.dtype == np.dtype(dtype) and got_rxd.dtype == np.dtype(dtype)
    assert_matches(got_utd, utd, s_utd, kappa, x.shape[-1], np.dtype(dtype))
    assert_matches(got_rxd, rxd, s_rxd, kappa, x.shape[-1], np.dtype(dtype))


def test_rxd_utd_is_rx_minus_utd():
    x, cube = _cube(seed=1)
    rx = detectors.get("rx", dtype="float64").fit_score(cube).values
    utd = detectors.get("utd", dtype="float64").fit_score(cube).values
    rxd = detectors.get("rxd-utd", dtype="float64").fit_score(cube).values
    np.testing.assert_allclose(rxd, rx - utd, rtol=1e-10, atol=1e-10 * np.abs(rx).max())


@pytest.mark.parametrize("name", ["utd", "rxd-utd"])
def test_tiled_equals_whole_and_nan_at_nodata(name):
    x, _ = _cube(seed=2)
    x[3, 4] = -9999.0
    x[10, 0, 2] = -9999.0
    whole = detectors.get(name, dtype="float64").fit_score(
        make_cube(x, nodata=-9999.0)).values
    tiled = detectors.get(name, dtype="float64").fit_score(
        make_cube(x, nodata=-9999.0).chunk({"y": 7, "x": 5}))
    assert tiled.data.chunks == ((7, 7, 6), (5, 5, 5, 5, 4))  # streamed tile by tile
    np.testing.assert_allclose(tiled.values, whole, rtol=1e-9,
                               atol=1e-9 * np.nanmax(np.abs(whole)))
    off = np.zeros(whole.shape, bool)
    off[3, 4] = off[10, 0] = True
    np.testing.assert_array_equal(np.isnan(whole), off)


@pytest.mark.parametrize("name", ["utd", "rxd-utd"])
def test_an_infinite_pixel_scores_nan_without_numpys_warning(name):
    """A pixel at +inf or -inf in every band printed numpy's "invalid value encountered in
    matmul" (the linear term's inf - inf) beside the right map."""
    import warnings

    x, _ = _cube(seed=3)
    for value in (np.inf, -np.inf):
        y = x.copy()
        y[5, 6] = value
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            scores = detectors.get(name).fit_score(make_cube(y)).values
        assert np.isnan(scores).sum() == 1 and np.isnan(scores[5, 6])


def test_a_fitted_detector_scores_another_cube():
    _, fit_cube = _cube(seed=3)
    y, other = _cube(seed=4)
    det = detectors.get("utd", dtype="float64").fit(fit_cube)
    got = det.score(other).values
    mu, prec = det.mean_, np.linalg.pinv(det.cov_, hermitian=True)
    ref = (y.reshape(-1, 8) - mu) @ prec @ (1 - mu)
    np.testing.assert_allclose(got.ravel(), ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


def test_methods_lists_both_with_their_reference():
    avail = detectors.available()
    assert "Chang" in avail["utd"].summary and "near chance" in avail["utd"].summary
    assert "Chang" in avail["rxd-utd"].summary
