"""Local dual-window RX: per-pixel reference, clipped borders, nodata, tiling, PCA, validation."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_within_conditioning, covariance_condition
from window_reference import per_pixel

from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors.lrx import lrx_block
from hsad.errors import ParameterError


def _ring_stats(ring, ridge, floor):
    mean = ring.mean(axis=0)
    bands = ring.shape[1]
    cov = (ring - mean).T @ (ring - mean) / len(ring)
    return mean, cov + np.eye(bands) * (ridge * np.trace(cov) / bands + floor)


def _reference_lrx(x: np.ndarray, inner: int, outer: int, ridge: float, floor: float):
    """Straightforward per-pixel local RX: ring = clipped outer window minus inner, valid only."""

    def mahalanobis(y, ring):
        mean, cov = _ring_stats(ring, ridge, floor)
        return (y - mean) @ np.linalg.solve(cov, y - mean)

    return per_pixel(x, inner, outer, mahalanobis)


def assert_equals_reference(scores, x, inner, outer, ridge, floor, stored=None):
    """Scores equal the reference within each ring covariance's conditioning (hsad forms it
    from running sums, so the cancellation term ‖μ‖²/λ_min counts too)."""
    cond = per_pixel(x, inner, outer,
                     lambda y, ring: covariance_condition(*_ring_stats(ring, ridge, floor)[::-1]))
    assert_within_conditioning(scores, _reference_lrx(x, inner, outer, ridge, floor), cond,
                               n=outer * outer * x.shape[-1], stored=stored)


def _scene(seed=0, shape=(12, 12, 6)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) @ rng.normal(size=(shape[2], shape[2])) + 100.0
    x[4, 7] += 6.0  # an anomaly
    return x


@pytest.mark.parametrize("inner,outer", [(1, 3), (3, 7), (3, 9), (1, 5)])
def test_lrx_block_equals_per_pixel_reference_with_clipped_borders(inner, outer):
    x = _scene()
    x[2, 3] = np.nan  # nodata pixel: NaN score, left out of its neighbours' rings
    assert_equals_reference(lrx_block(x, inner, outer, ridge=1e-3, floor=1e-9),
                            x, inner, outer, 1e-3, 1e-9)


def test_lrx_detector_matches_reference_and_scores_nan_on_nodata():
    x = _scene(1).astype(np.float32)
    x[0, 0] = -1.0
    x[6, 6, 2] = -1.0  # one band at nodata is enough
    cube = make_cube(x, nodata=-1.0)
    det = detectors.get("lrx", inner=3, outer=7, ridge=1e-4, dtype="float64")
    scores = det.fit_score(cube)
    ref_in = x.astype(np.float64)
    ref_in[0, 0] = ref_in[6, 6] = np.nan
    assert scores.dims == ("y", "x") and scores.dtype == np.float64
    assert_equals_reference(scores.values, ref_in, 3, 7, 1e-4, det.floor_)
    assert np.isnan(scores.values[0, 0]) and np.isnan(scores.values[6, 6])
    assert np.nanargmax(scores.values) == 4 * 12 + 7  # the anomaly stands out


def test_lrx_tiled_equals_untiled():
    x = _scene(2, shape=(23, 19, 5)).astype(np.float32)
    x[10, 0] = np.nan
    det = detectors.get("lrx", inner=3, outer=9, ridge=1e-3).fit(make_cube(x))
    whole = det.score(make_cube(x)).values
    tiled = det.score(make_cube(x).chunk({"y": 5, "x": 6}))
    assert len(tiled.data.chunks[0]) >= 4 and len(tiled.data.chunks[1]) >= 3
    x64 = x.astype(np.float64)
    assert_equals_reference(whole, x64, 3, 9, 1e-3, det.floor_, stored=np.float32)
    assert_equals_reference(tiled.values, x64, 3, 9, 1e-3, det.floor_, stored=np.float32)


def test_lrx_image_smaller_than_the_window():
    x = _scene(6, shape=(5, 8, 3))[:, :4]
    det = detectors.get("lrx", inner=3, outer=15, ridge=1e-3, dtype="float64")
    scores = det.fit_score(make_cube(x).chunk({"y": 2, "x": 2})).values
    assert_equals_reference(scores, x, 3, 15, 1e-3, det.floor_)


def test_lrx_pca_equals_reference_on_the_leading_components():
    x = _scene(3, shape=(14, 13, 8))
    det = detectors.get("lrx", inner=1, outer=5, pca=3, ridge=1e-3, dtype="float64")
    scores = det.fit_score(make_cube(x)).values
    flat = x.reshape(-1, 8)
    lam, vec = np.linalg.eigh(np.cov(flat.T, bias=True))
    z = ((flat - flat.mean(axis=0)) @ vec[:, ::-1][:, :3]).reshape(14, 13, 3)
    # eigenvector signs may differ; Mahalanobis distances do not. The components carry the
    # eigenvectors' error, of order u·λ_max/gap (Davis–Kahan), on top of each window's κ.
    gap = np.min(np.diff(lam[::-1][:4]) * -1)
    z_error = lam.max() / gap
    cond = per_pixel(z, 1, 5, lambda y, ring: covariance_condition(
        *_ring_stats(ring, 1e-3, det.floor_)[::-1]) * z_error)
    assert_within_conditioning(scores, _reference_lrx(z, 1, 5, 1e-3, det.floor_), cond,
                               n=25 * 8)
    np.testing.assert_allclose(det.floor_, 1e-10 * lam[::-1][:3].mean(), rtol=1e-6)


def test_lrx_never_fails_on_singular_local_covariances():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 10, 30))  # 8 ring pixels for 30 bands
    x[:5, :5] = 1.0  # constant corner: zero covariance
    for ridge in (0.0, 1e-6):
        scores = detectors.get("lrx", inner=1, outer=3, ridge=ridge).fit_score(make_cube(x))
        assert np.isfinite(scores.values).all()
    # no regularisation at all: pseudo-inverse; a constant window around a constant pixel is 0
    bare = lrx_block(x, 1, 3, ridge=0.0, floor=0.0)
    assert np.isfinite(bare).all() and abs(bare[1, 1]) < 1e-9


def test_lrx_bands_selection_uses_good_bands():
    x = _scene(5)
    good = np.array([True, True, False, True, True, True])
    bad = x.copy()
    bad[:, :, 2] = np.nan
    det = detectors.get("lrx", inner=1, outer=5, ridge=1e-3, dtype="float64")
    scores = det.fit_score(make_cube(bad, good_band=good)).values
    assert_equals_reference(scores, x[:, :, good], 1, 5, 1e-3, det.floor_)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"inner": 5, "outer": 5}, "smaller than the outer"),
        ({"inner": 7, "outer": 5}, "smaller than the outer"),
        ({"inner": 2, "outer": 7}, "odd"),
        ({"inner": 3, "outer": 8}, "odd"),
        ({"inner": 0, "outer": 7}, "odd positive"),
        ({"inner": -1, "outer": 7}, "odd positive"),
        ({"inner": 3.0, "outer": 7}, "integer"),
        ({"pca": 0}, "pca"),
        ({"pca": 7}, "pca"),
        ({"ridge": -1e-3}, "ridge"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_lrx_fit_validates_parameters(params, message):
    with pytest.raises(ParameterError, match=message):
        detectors.get("lrx", **params).fit(make_cube(_scene()))
