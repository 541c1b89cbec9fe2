"""Local-mean RX: the formula in numpy, halo tiles equal the whole scene, nodata, kernel."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_within_conditioning

from hsad import detectors
from hsad.cube import make_cube
from hsad.errors import ParameterError


def _cube(seed=0, shape=(21, 26, 6)):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(shape[2], shape[2])) + 2 * np.eye(shape[2])
    ramp = np.linspace(0, 5, shape[1])[None, :, None]  # a trend the local mean follows
    return (rng.normal(size=shape) @ mix + 40.0 + ramp).astype(np.float32)


def _reference(x: np.ndarray, k: int, nodata=None):
    """(r − m_k(r))ᵀ pinv(K)(r − m_k(r)): K over the valid pixels, m_k the mean of the valid
    pixels of the clipped k×k window, by explicit offsets; and the per-pixel condition."""
    x = x.astype(np.float64)
    valid = np.isfinite(x).all(-1)
    if nodata is not None:
        valid &= ~(x == nodata).any(-1)
    flat = x[valid]
    mu = flat.mean(0)
    cov = (flat - mu).T @ (flat - mu) / len(flat)
    prec = np.linalg.pinv(cov, hermitian=True)
    h = k // 2
    rows, cols, b = x.shape
    xp = np.zeros((rows + 2 * h, cols + 2 * h, b))
    vp = np.zeros((rows + 2 * h, cols + 2 * h))
    xp[h:h + rows, h:h + cols] = np.where(valid[..., None], x, 0)
    vp[h:h + rows, h:h + cols] = valid
    total, count = np.zeros_like(x), np.zeros((rows, cols))
    for dr in range(k):
        for dc in range(k):
            total += xp[dr:dr + rows, dc:dc + cols]
            count += vp[dr:dr + rows, dc:dc + cols]
    d = x - total / count[..., None]
    score = np.einsum("...i,ij,...j->...", d, prec, d)
    score[~valid] = np.nan
    lam = np.linalg.eigvalsh(cov)
    # κ(K) for the whitening, plus ‖r − μ‖ against the whitened residual: the residual is
    # formed from data centred in the working precision
    cond = lam[-1] / lam[0] + 2 * np.linalg.norm(x - mu, axis=-1) / np.sqrt(score * lam[0])
    return score, cond


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kernel", [3, 7])
def test_scores_equal_the_formula(kernel, dtype):
    x = _cube()
    got = detectors.get("local-mean-rx", kernel=kernel, dtype=dtype).fit_score(make_cube(x))
    assert got.dtype == np.dtype(dtype)
    ref, cond = _reference(x, kernel)
    assert_within_conditioning(got.values, ref, cond, n=x.shape[-1] * kernel ** 2,
                               dtype=np.dtype(dtype))


def test_halo_tiles_equal_the_whole_scene_and_nan_is_nodata():
    x = _cube(seed=1)
    x[0, 0] = -1.0
    x[9, 13, 3] = -1.0
    whole = detectors.get("local-mean-rx", kernel=5, dtype="float64").fit_score(
        make_cube(x, nodata=-1.0)).values
    tiled = detectors.get("local-mean-rx", kernel=5, dtype="float64").fit_score(
        make_cube(x, nodata=-1.0).chunk({"y": 6, "x": 8}))
    assert tiled.data.npartitions > 1
    np.testing.assert_allclose(tiled.values, whole, rtol=1e-10, atol=0)
    ref, cond = _reference(x, 5, nodata=-1.0)
    assert_within_conditioning(whole, ref, cond, n=6 * 25)
    off = np.zeros(whole.shape, bool)
    off[0, 0] = off[9, 13] = True
    np.testing.assert_array_equal(np.isnan(whole), off)


def test_local_mean_follows_a_trend_the_global_mean_does_not():
    # a ramp in band 0 across the scene: the scene edges are far from the global mean but
    # near their local mean, so local-mean RX puts its peak on the anomaly, global RX not
    x = _cube(seed=2)
    x[:, :, 0] += np.linspace(-60, 60, x.shape[1])[None, :].astype(np.float32) ** 3 / 600
    x[10, 12, 1] += 14.0
    lm = detectors.get("local-mean-rx", kernel=5).fit_score(make_cube(x)).values
    rx = detectors.get("rx").fit_score(make_cube(x)).values
    assert np.unravel_index(np.nanargmax(lm), lm.shape) == (10, 12)
    assert np.unravel_index(np.nanargmax(rx), rx.shape) != (10, 12)


@pytest.mark.parametrize("kernel", [1, 4, 2.0, True])
def test_bad_kernel_is_refused(kernel):
    with pytest.raises(ParameterError, match="kernel must be an (odd )?integer"):
        detectors.get("local-mean-rx", kernel=kernel).fit(make_cube(_cube()))


def test_float32_tiles_equal_the_whole_scene_to_rounding_where_rx_is_exact():
    """With the same fitted statistics, float32 scores on 8-pixel halo tiles match the
    whole-scene map to float32 rounding (the float64 box sums restart at each tile: 1.9e-6
    relative at most on the 10 shared scenes), not to the bit; global RX's are bit-equal."""
    x = _cube(seed=2, shape=(40, 40, 6))
    cube = make_cube(x)
    for name, params in (("local-mean-rx", dict(kernel=7)), ("rx", {})):
        det = detectors.get(name, **params).fit(cube)
        whole = det.score(cube.chunk({"y": -1, "x": -1})).values
        tiled = det.score(cube.chunk({"y": 8, "x": 8}))
        assert tiled.data.npartitions == 25 and tiled.dtype == np.float32
        if name == "rx":
            np.testing.assert_array_equal(tiled.values, whole)
        else:
            np.testing.assert_allclose(tiled.values, whole, rtol=2e-5, atol=0)
