"""Local dual-window RX: per-pixel reference, clipped borders, nodata, tiling, PCA, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from tolerance import assert_within_conditioning, covariance_condition
from window_reference import per_pixel

import hsad
from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors.lrx import auto_dimension
from hsad.engine.ring_rx import lrx_block
from hsad.engine.windows import median_ring
from hsad.errors import DegenerateDataWarning, ParameterError
from hsad.outputs.metrics import auc_df


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


def test_lrx_block_in_band_blocks_and_strips_equals_the_reference(monkeypatch):
    """Products in one band block per band, np.cumsum and two-level cumulative sums,
    strips narrower than the row, a nodata pixel taking one row's pixel off: all equal the
    per-pixel reference."""
    from hsad.engine import ring_features

    x = _scene(2, shape=(10, 14, 7))
    x[5, 9] = np.nan
    whole = lrx_block(x, 3, 7, ridge=1e-3, floor=1e-9)
    assert_equals_reference(whole, x, 3, 7, 1e-3, 1e-9)
    monkeypatch.setattr(ring_features, "BLOCK_BYTES", 1)  # one band per block
    monkeypatch.setattr(ring_features, "SMALL_BLOCK", 4)
    monkeypatch.setattr(ring_features, "CUMSUM_FEATURES", 4)
    assert len(ring_features.band_blocks(7)) > 3
    init = ring_features.RingStatistics.__init__
    monkeypatch.setattr(ring_features.RingStatistics, "__init__",
                        lambda self, *a, **k: init(self, *a, **k, max_bytes=8 * 3 * 500))
    blocked = lrx_block(x, 3, 7, ridge=1e-3, floor=1e-9)
    assert_equals_reference(blocked, x, 3, 7, 1e-3, 1e-9)
    np.testing.assert_allclose(blocked, whole, rtol=1e-9)


def test_lrx_groups_whose_cholesky_fails_fall_back_to_the_pseudo_inverse(monkeypatch):
    """Rows of several Cholesky groups, every other group failing (as a numerically
    indefinite matrix would make it): those pixels take the pseudo-inverse, the others stay
    on the fast path, and all equal the reference."""
    from hsad.engine import ring_rx

    x = _scene(3, shape=(9, 11, 5))
    x[4, 2] = np.nan  # rows whose kept pixels are a subset
    calls = []
    real = np.linalg.cholesky

    def every_other_fails(a):
        calls.append(len(a))
        if len(calls) % 2 == 0:
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        return real(a)

    monkeypatch.setattr(ring_rx, "CHOLESKY_BYTES", 3 * 8 * 7**2)  # groups of 3 (B = 5)
    assert ring_rx.cholesky_group(5) == 3
    monkeypatch.setattr(np.linalg, "cholesky", every_other_fails)
    scores = lrx_block(x, 1, 5, ridge=1e-3, floor=1e-9)
    assert len(calls) > 20 and max(calls) == 3
    assert_equals_reference(scores, x, 1, 5, 1e-3, 1e-9)


def test_lrx_detector_matches_reference_and_scores_nan_on_nodata():
    x = _scene(1).astype(np.float32)
    x[0, 0] = -1.0
    x[6, 6, 2] = -1.0  # one band at nodata is enough
    cube = make_cube(x, nodata=-1.0)
    det = detectors.get("lrx", inner=3, outer=7, pca=None, ridge=1e-4, dtype="float64")
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
    det = detectors.get("lrx", inner=3, outer=9, pca=None, ridge=1e-3).fit(make_cube(x))
    whole = det.score(make_cube(x)).values
    tiled = det.score(make_cube(x).chunk({"y": 5, "x": 6}))
    assert len(tiled.data.chunks[0]) >= 4 and len(tiled.data.chunks[1]) >= 3
    x64 = x.astype(np.float64)
    assert_equals_reference(whole, x64, 3, 9, 1e-3, det.floor_, stored=np.float32)
    assert_equals_reference(tiled.values, x64, 3, 9, 1e-3, det.floor_, stored=np.float32)


def test_lrx_image_smaller_than_the_window():
    # every 15 × 15 window covers the whole 7 × 5 scene: rings of 26–31 pixels, enough for
    # 3 bands (the automatic reduction counts the rings the scene leaves)
    x = _scene(6, shape=(7, 8, 3))[:, :5]
    det = detectors.get("lrx", inner=3, outer=15, pca=None, ridge=1e-3,
                        dtype="float64")
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
    for ridge in (0.0, 1e-6):  # 8 ring pixels for 30 bands: reduced to 2 components
        with pytest.warns(DegenerateDataWarning, match="reduced automatically to its 2"):
            scores = detectors.get("lrx", inner=1, outer=3, pca=None,
                                   ridge=ridge).fit_score(make_cube(x))
        assert np.isfinite(scores.values).all()
    # no regularisation at all: pseudo-inverse; a constant window around a constant pixel is 0
    bare = lrx_block(x, 1, 3, ridge=0.0, floor=0.0)
    assert np.isfinite(bare).all() and abs(bare[1, 1]) < 1e-9


def test_lrx_bands_selection_uses_good_bands():
    x = _scene(5)
    good = np.array([True, True, False, True, True, True])
    bad = x.copy()
    bad[:, :, 2] = np.nan
    det = detectors.get("lrx", inner=1, outer=5, pca=None, ridge=1e-3, dtype="float64")
    scores = det.fit_score(make_cube(bad, good_band=good)).values
    assert_equals_reference(scores, x[:, :, good], 1, 5, 1e-3, det.floor_)


def _mixed_scene(seed=0, rows=40, cols=40, bands=40):
    """Linear mixture of 4 endmembers plus noise, with 12 sub-pixel targets (and their truth)."""
    rng = np.random.default_rng(seed)
    ends = rng.uniform(0.2, 1.0, size=(4, bands))
    x = 100.0 * rng.dirichlet(np.ones(4), size=(rows, cols)) @ ends
    x += rng.normal(scale=0.5, size=x.shape)
    truth = np.zeros((rows, cols), bool)
    target = 100.0 * rng.uniform(0.2, 1.0, size=bands)
    for r, c in rng.integers(3, rows - 3, size=(12, 2)):
        x[r, c] = 0.6 * x[r, c] + 0.4 * target
        truth[r, c] = True
    return x, truth


def test_auto_dimension_rule():
    assert auto_dimension(205, None, 200) == 50  # all bands, n < 4B: n // 4
    assert auto_dimension(40, None, 392) == 40  # ≥ 4 ring pixels per band: all bands
    assert auto_dimension(102, None, 392) == 98
    assert auto_dimension(205, 20, 200) == 20  # explicit pca below the ring size: kept
    assert auto_dimension(205, 30, 24) == 6  # explicit pca ≥ ring size: reduced
    assert auto_dimension(30, None, 3) == 1


def test_lrx_reduces_the_dimension_when_rings_are_too_small_and_says_so(tmp_path):
    # 40 bands, 40-pixel rings: every local covariance is singular with all bands
    x, truth = _mixed_scene()
    cube = make_cube(x)
    with pytest.warns(DegenerateDataWarning, match=r"lrx \(40-pixel rings\): only 40 valid "
                      r"pixels for 40 bands.*reduced automatically to its 10 leading"):
        det = detectors.get("lrx", inner=3, outer=7, pca=None, ridge=0.0, dtype="float64")
        scores = det.fit_score(cube)
    assert det.n_components_ == 10 and det.components_.shape == (40, 10)
    assert "reduced automatically to 10 principal components" in det.reduction_
    assert scores.attrs["hsad_dimension"] == 10
    assert scores.attrs["hsad_reduction"] == det.reduction_
    # the same map as asking for pca=10, and far better than the all-band statistic
    explicit = detectors.get("lrx", inner=3, outer=7, pca=10, ridge=0.0, dtype="float64")
    np.testing.assert_array_equal(explicit.fit_score(cube).values, scores.values)
    all_bands = lrx_block(x, 3, 7, ridge=0.0, floor=det.floor_)
    assert auc_df(scores.values, truth) > 0.98
    assert auc_df(scores.values, truth) > auc_df(all_bands, truth) + 0.1
    # the provenance reaches the GeoTIFF's tags
    path = hsad.write_geotiff(scores, tmp_path / "lrx.tif", like=cube)
    with rasterio.open(path) as src:
        tags = src.tags()
    assert tags["hsad_dimension"] == "10" and tags["hsad_reduction"] == det.reduction_


def test_lrx_keeps_the_asked_dimension_when_rings_hold_enough_pixels():
    x, _ = _mixed_scene(1, rows=16, cols=16, bands=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        det = detectors.get("lrx", inner=3, outer=7, pca=39).fit(make_cube(x))
    assert det.n_components_ == 39 and det.reduction_ is None
    with pytest.warns(DegenerateDataWarning, match="for 40 components"):
        det = detectors.get("lrx", inner=3, outer=7, pca=40).fit(make_cube(x))
    assert det.n_components_ == 10
    det = detectors.get("lrx", inner=1, outer=5, pca=None).fit(make_cube(_scene()))
    scores = det.score(make_cube(_scene()))
    assert det.n_components_ == 6 and det.components_ is None and det.reduction_ is None
    assert scores.attrs["hsad_dimension"] == 6 and "hsad_reduction" not in scores.attrs
    # pca above the band count: every band's component (the default must fit small scenes)
    assert detectors.get("lrx", inner=1, outer=5, pca=7).fit(make_cube(_scene())).n_components_ == 6


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
        ({"pca": 1.5}, "pca"),
        ({"ridge": -1e-3}, "ridge"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_lrx_fit_validates_parameters(params, message):
    with pytest.raises(ParameterError, match=message):
        detectors.get("lrx", **params).fit(make_cube(_scene()))


def test_lrx_defaults_find_sub_pixel_targets_without_warning():
    # the defaults chosen by leave-one-scene-out: (7, 21), pca=5, ridge=1e-2
    x, truth = _mixed_scene(2, rows=48, cols=48, bands=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        det = detectors.get("lrx")
        scores = det.fit_score(make_cube(x.astype(np.float32)))
    assert (det.inner, det.outer, det.pca, det.ridge) == (7, 21, 5, 1e-2)
    assert det.n_components_ == 5 and scores.attrs["hsad_dimension"] == 5
    assert auc_df(scores.values, truth) > 0.95


def test_a_scene_narrower_than_the_outer_window_reduces_to_its_clipped_rings():
    """In a one-column strip (a spectral library stored as an image, a --srcwin one pixel
    wide) every 7 × 7 ring holds at most 4 pixels, not 40: the automatic reduction counts
    the rings the scene leaves, and says why."""
    x = np.random.default_rng(0).normal(100.0, 5.0, (40, 1, 20)).astype(np.float32)
    with pytest.warns(DegenerateDataWarning, match=r"4-pixel rings in the median, the 40x1 "
                      r"scene being narrower than the outer window\).*reduced automatically "
                      r"to its 1 "):
        det = detectors.get("lrx", inner=3, outer=7).fit(make_cube(x))
    assert det.n_components_ == 1
    wide = np.random.default_rng(0).normal(100.0, 5.0, (40, 40, 20)).astype(np.float32)
    assert detectors.get("lrx", inner=3, outer=7).fit(make_cube(wide)).n_components_ == 5
    # a 7 × 7 scene inside the default 7 / 21 windows: the centre pixel has no ring, but
    # the median pixel 21 (corners 33): no reduction below pca=5
    small = np.random.default_rng(0).normal(100.0, 5.0, (7, 7, 20)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:  # (the centre pixel: NaN, warned)
        warnings.simplefilter("always")
        assert detectors.get("lrx").fit(make_cube(small)).n_components_ == 5
    assert not [w for w in caught if "reduced automatically" in str(w.message)]
    assert median_ring(7, 7, 7, 21) == 21 and median_ring(40, 1, 3, 7) == 4
    # a 4 × 5 window: 12 of 20 pixels have no ring (NaN, said elsewhere), 8 have 4 pixels;
    # the advice is a smaller inner window, never "pca= below 0"
    tiny = np.random.default_rng(0).normal(100.0, 5.0, (4, 5, 20)).astype(np.float32)
    with pytest.warns(DegenerateDataWarning, match=r"4-pixel rings in the median.*pca= below "
                      r"4 or use a smaller inner window"):
        detectors.get("lrx").fit(make_cube(tiny))


def test_a_singular_scene_covariance_is_said_only_where_the_projection_meets_it():
    """A constant and a duplicated band: with pca=3 the warning advised "use pca= (lrx) or
    ridge=", both in effect, though three leading components lie within rank 4 of 6."""
    x = np.random.default_rng(3).normal(size=(30, 30, 6)).astype(np.float32)
    x[..., 4] = 2.0
    x[..., 5] = x[..., 0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detectors.get("lrx", pca=3, inner=3, outer=9).fit(make_cube(x))
    assert not [w for w in caught if "numerically singular" in str(w.message)]
    for pca in (None, 5):  # every band, or more components than the rank
        with pytest.warns(DegenerateDataWarning, match="numerically singular.*rank 4 < 6"):
            detectors.get("lrx", pca=pca, inner=3, outer=9).fit(make_cube(x))
