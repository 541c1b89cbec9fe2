"""CRD: per-pixel reference of Li & Du's representation, nodata, tiling, validation."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_within_conditioning, solve_rtol
from window_reference import per_pixel

from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors.crd_rows import crd_block
from hsad.errors import ParameterError


def _system(y, ring, lam):
    xs = ring.T  # B × n
    gamma = np.diag(np.linalg.norm(y[:, None] - xs, axis=0))
    return xs, xs.T @ xs + lam * gamma.T @ gamma


def _reference_crd(x: np.ndarray, inner: int, outer: int, lam: float) -> np.ndarray:
    """Per pixel: X_s = ring pixels as columns, Γ = diag‖y − x_k‖, w = (XᵀX + λΓᵀΓ)⁻¹Xᵀy."""

    def residual(y, ring):
        xs, a = _system(y, ring, lam)
        try:
            return np.linalg.norm(y - xs @ np.linalg.solve(a, xs.T @ y))
        except np.linalg.LinAlgError:  # exactly singular (copies of y in its ring): whether
            return np.nan  # LU meets a zero pivot is the BLAS kernel's rounding; no reference

    return per_pixel(x, inner, outer, residual)


def _condition(x, inner, outer, lam):
    """κ of each pixel's n × n system, and the number of terms summed into it."""
    cond = per_pixel(x, inner, outer, lambda y, ring: np.linalg.cond(_system(y, ring, lam)[1]))
    return cond, (outer * outer - inner * inner) * x.shape[-1]


def assert_equals_reference(scores, x, inner, outer, lam):
    """Scores equal the reference within the conditioning of each pixel's n × n system."""
    cond, n = _condition(x, inner, outer, lam)
    assert_within_conditioning(scores, _reference_crd(x, inner, outer, lam), cond, n)


def _scene(seed=0, shape=(12, 12, 6)):
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=shape) @ rng.normal(size=(shape[2], shape[2]))) + 10.0
    x[5, 8] *= 1.8  # an anomaly
    return x


@pytest.mark.parametrize("inner,outer,lam", [(1, 3, 1e-2), (3, 7, 1e-3), (1, 5, 1e-1)])
def test_crd_block_equals_per_pixel_reference_with_clipped_borders(inner, outer, lam):
    x = _scene()
    x[2, 3] = np.nan
    assert_equals_reference(crd_block(x, inner, outer, lam=lam), x, inner, outer, lam)


def test_crd_with_more_ring_pixels_than_bands_matches_reference():
    # n = 48 ring pixels, B = 4: XᵀX has rank 4 and λ = 1e-6 leaves κ up to ~5e11, so the
    # residuals (~1e-8) carry relative errors up to ~1e-5 that differ between BLAS kernels
    x = _scene(1, shape=(11, 10, 4))
    assert_equals_reference(crd_block(x, 1, 7, lam=1e-6), x, 1, 7, 1e-6)


def test_crd_pixels_equal_to_a_ring_pixel_take_the_n_by_n_form():
    """The B×B form (I + X_s D⁻¹X_sᵀ)⁻¹y needs D = λΓᵀΓ invertible. A pixel whose ring holds
    its own value (Γ_kk = 0) takes the n×n form: it represents itself at no cost, so its
    residual is 0. The other pixels of those rows stay in the B×B form and match the
    reference."""
    x = _scene(4, shape=(10, 11, 5))
    x[4, 4] = x[4, 3]  # two identical neighbours: a distance 0 in each one's ring
    x[6, 2] = x[5, 3]
    x[7, 7] = np.nan
    scores = crd_block(x, 1, 5, lam=1e-2)
    twins = [(4, 3), (4, 4), (6, 2), (5, 3)]
    for r, c in twins:
        assert abs(scores[r, c]) < 1e-9 * np.linalg.norm(x[r, c])
    reference = _reference_crd(x, 1, 5, 1e-2)
    cond, n = _condition(x, 1, 5, 1e-2)
    for r, c in twins:  # a residual of 0 has no relative error to compare
        scores[r, c] = reference[r, c] = np.nan
    assert_within_conditioning(scores, reference, cond, n)


@pytest.mark.parametrize("bands", [5, 30])  # the B×B form, and the n×n (B > n = 24)
def test_a_pixel_with_two_copies_in_its_ring_scores_zero_not_1e7(bands):
    """Two exact copies of a pixel in its ring make its system singular. In the B×B form
    (B ≤ n) LU solved it to weights of 1e16: a background pixel of sandiego-1 copied twice
    by hand, three pixels apart, scored 2.4e7 against a scene maximum of 3876 (default
    windows), and with inner=1, outer=7 the scene's own copies gave a maximum of 1.2e11
    and AUC 0.578 (0.630 now). The n×n form scored them about 6e-13: 0 now, exactly."""
    x = _scene(4, shape=(12, 12, bands))
    x[6, 9] = x[6, 3] = x[6, 6]  # outside each other's guard window, in each other's ring
    scores = crd_block(x, 3, 7, lam=1e-2)
    assert scores[6, 6] == 0.0
    # the two end copies hold one copy each in their rings (the middle), so score 0 too
    assert scores[6, 3] == 0.0 and scores[6, 9] == 0.0
    others = np.ones(scores.shape, bool)
    others[6, [3, 6, 9]] = False
    reference = _reference_crd(x, 3, 7, 1e-2)
    cond, n = _condition(x, 3, 7, 1e-2)
    scores[~others] = reference[~others] = np.nan
    assert_within_conditioning(scores, reference, cond, n)


def test_crd_with_more_bands_than_ring_pixels_solves_the_n_by_n_form():
    x = _scene(5, shape=(9, 10, 12))  # 8 ring pixels, 12 bands
    x[3, 3] = np.nan
    assert_equals_reference(crd_block(x, 1, 3, lam=1e-2), x, 1, 3, 1e-2)


def test_crd_detector_scores_nan_on_nodata_and_finds_the_anomaly():
    x = _scene(2).astype(np.float32)
    x[0, 11] = 0.0
    cube = make_cube(x, nodata=0.0)
    scores = detectors.get("crd", inner=3, outer=7, lam=1e-3, pca=None,
                           dtype="float64").fit_score(cube)
    ref_in = x.astype(np.float64)
    ref_in[0, 11] = np.nan
    assert_equals_reference(scores.values, ref_in, 3, 7, 1e-3)
    assert np.isnan(scores.values[0, 11])
    assert np.nanargmax(scores.values) == 5 * 12 + 8


def test_crd_scale_does_not_change_the_ranking():
    x = _scene(3)
    a = crd_block(x, 1, 5, lam=1e-6)
    b = crd_block(x * 1000.0, 1, 5, lam=1e-6)
    assert_within_conditioning(b, a * 1000.0, *_condition(x, 1, 5, 1e-6))


def test_crd_tiled_equals_untiled():
    x = _scene(4, shape=(21, 17, 5)).astype(np.float32)
    det = detectors.get("crd", inner=1, outer=5, lam=1e-3, pca=None).fit(make_cube(x))
    whole = det.score(make_cube(x)).values
    tiled = det.score(make_cube(x).chunk({"y": 4, "x": 5}))
    assert len(tiled.data.chunks[0]) >= 4
    # float64 solves in both, stored as float32
    cond, n = _condition(x.astype(np.float64), 1, 5, 1e-3)
    assert_within_conditioning(tiled.values, whole, cond, n, stored=np.float32)


def test_crd_pca_equals_reference_on_the_projected_pixels():
    x = _scene(5, shape=(13, 12, 8))
    det = detectors.get("crd", inner=1, outer=5, lam=1e-3, pca=3, dtype="float64")
    scores = det.fit_score(make_cube(x))
    assert det.components_.shape == (8, 3) and scores.attrs["hsad_dimension"] == 3
    lam, vec = np.linalg.eigh(np.cov(x.reshape(-1, 8).T, bias=True))
    z = x @ vec[:, ::-1][:, :3]  # not centred; eigenvector signs do not change residual norms
    cond, n = _condition(z, 1, 5, 1e-3)
    # the components carry the eigenvectors' error, u·λ_max/gap (Davis–Kahan), on top of κ
    gap = np.min(-np.diff(lam[::-1][:4]))
    assert solve_rtol(lam.max() / gap, n) < 1e-6
    assert_within_conditioning(scores.values, _reference_crd(z, 1, 5, 1e-3),
                               cond * lam.max() / gap, n)


def test_crd_without_pca_uses_every_good_band():
    det = detectors.get("crd", inner=1, outer=5, pca=None)
    scores = det.fit_score(make_cube(_scene()))
    assert det.components_ is None and scores.attrs["hsad_dimension"] == 6
    det = detectors.get("crd", inner=1, outer=5, pca=7)  # above the band count: all 6
    assert det.fit_score(make_cube(_scene())).attrs["hsad_dimension"] == 6


@pytest.mark.parametrize(
    "params,message",
    [
        ({"inner": 5, "outer": 3}, "smaller than the outer"),
        ({"inner": 2, "outer": 5}, "odd"),
        ({"outer": 0}, "odd positive"),
        ({"lam": 0}, "lam must be a finite number > 0, got 0"),
        ({"lam": -1.0}, "lam must be a finite number > 0, got -1.0"),
        ({"lam": float("inf")}, "lam must be a finite number > 0"),
        ({"dtype": "complex64"}, "dtype"),
        ({"pca": 0}, "pca"),
        ({"pca": -2}, "pca"),
        ({"pca": 2.0}, "pca"),
        ({"pca": True}, "pca"),
    ],
)
def test_crd_fit_validates_parameters(params, message):
    with pytest.raises(ParameterError, match=message):
        detectors.get("crd", **params).fit(make_cube(_scene()))


def test_crd_defaults_find_the_anomaly_on_projected_pixels():
    # the defaults chosen by leave-one-scene-out: (5, 15), pca=20, lam=0.1
    rng = np.random.default_rng(7)
    x = np.abs(rng.normal(size=(20, 20, 30)) @ rng.normal(size=(30, 30))) + 10.0
    x[9, 11] *= 1.8
    det = detectors.get("crd")
    scores = det.fit_score(make_cube(x))
    assert (det.inner, det.outer, det.pca, det.lam) == (5, 15, 20, 0.1)
    assert det.components_.shape == (30, 20) and scores.attrs["hsad_dimension"] == 20
    assert np.nanargmax(scores.values) == 9 * 20 + 11
