"""CRD: per-pixel reference of Li & Du's representation, nodata, tiling, validation."""

from __future__ import annotations

import numpy as np
import pytest
from window_reference import per_pixel

from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors.crd import crd_block
from hsad.errors import ParameterError


def _reference_crd(x: np.ndarray, inner: int, outer: int, lam: float) -> np.ndarray:
    """Per pixel: X_s = ring pixels as columns, Γ = diag‖y − x_k‖, w = (XᵀX + λΓᵀΓ)⁻¹Xᵀy."""

    def residual(y, ring):
        xs = ring.T  # B × n
        gamma = np.diag(np.linalg.norm(y[:, None] - xs, axis=0))
        w = np.linalg.solve(xs.T @ xs + lam * gamma.T @ gamma, xs.T @ y)
        return np.linalg.norm(y - xs @ w)

    return per_pixel(x, inner, outer, residual)


def _scene(seed=0, shape=(12, 12, 6)):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=shape) @ rng.normal(size=(shape[2], shape[2]))) + 10.0
    x[5, 8] *= 1.8  # an anomaly
    return x


@pytest.mark.parametrize("inner,outer,lam", [(1, 3, 1e-2), (3, 7, 1e-3), (1, 5, 1e-1)])
def test_crd_block_equals_per_pixel_reference_with_clipped_borders(inner, outer, lam):
    x = _scene()
    x[2, 3] = np.nan
    np.testing.assert_allclose(
        crd_block(x, inner, outer, lam=lam), _reference_crd(x, inner, outer, lam), rtol=1e-7
    )


def test_crd_with_more_ring_pixels_than_bands_matches_reference():
    x = _scene(1, shape=(11, 10, 4))  # n = 48 ring pixels, B = 4: Gram matrix of rank 4
    np.testing.assert_allclose(
        crd_block(x, 1, 7, lam=1e-6), _reference_crd(x, 1, 7, 1e-6), rtol=1e-5
    )


def test_crd_detector_scores_nan_on_nodata_and_finds_the_anomaly():
    x = _scene(2).astype(np.float32)
    x[0, 11] = 0.0
    cube = make_cube(x, nodata=0.0)
    scores = detectors.get("crd", inner=3, outer=7, lam=1e-3, dtype="float64").fit_score(cube)
    ref_in = x.astype(np.float64)
    ref_in[0, 11] = np.nan
    np.testing.assert_allclose(scores.values, _reference_crd(ref_in, 3, 7, 1e-3), rtol=1e-7)
    assert np.isnan(scores.values[0, 11])
    assert np.nanargmax(scores.values) == 5 * 12 + 8


def test_crd_scale_does_not_change_the_ranking():
    x = _scene(3)
    a = crd_block(x, 1, 5, lam=1e-6)
    b = crd_block(x * 1000.0, 1, 5, lam=1e-6)
    np.testing.assert_allclose(b, a * 1000.0, rtol=1e-6)


def test_crd_tiled_equals_untiled():
    x = _scene(4, shape=(21, 17, 5)).astype(np.float32)
    det = detectors.get("crd", inner=1, outer=5, lam=1e-3).fit(make_cube(x))
    whole = det.score(make_cube(x)).values
    tiled = det.score(make_cube(x).chunk({"y": 4, "x": 5}))
    assert len(tiled.data.chunks[0]) >= 4
    np.testing.assert_allclose(tiled.values, whole, rtol=1e-5)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"inner": 5, "outer": 3}, "smaller than the outer"),
        ({"inner": 2, "outer": 5}, "odd"),
        ({"outer": 0}, "odd positive"),
        ({"lam": 0}, "lam"),
        ({"lam": -1.0}, "lam"),
        ({"dtype": "complex64"}, "dtype"),
    ],
)
def test_crd_fit_validates_parameters(params, message):
    with pytest.raises(ParameterError, match=message):
        detectors.get("crd", **params).fit(make_cube(_scene()))
