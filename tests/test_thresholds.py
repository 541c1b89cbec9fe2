"""The default threshold rule, which needs no ground truth (hsad.engine.thresholds)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hsad.engine.thresholds import (
    check_threshold,
    contamination_threshold,
    robust_threshold,
    weighted_chi2_isf,
)
from hsad.errors import DegenerateDataWarning, ParameterError


def test_nominal_rate_holds_on_a_log_normal_background():
    rng = np.random.default_rng(0)
    s = rng.lognormal(mean=2.0, sigma=0.7, size=1_000_000)
    for far in (1e-2, 1e-3):
        # sampling error of the median and MAD at n = 1e6 moves the rate by a few percent
        assert (s >= robust_threshold(s, far)).mean() == pytest.approx(far, rel=0.15)


def test_scale_moves_the_threshold_with_the_scores_and_maps_with_zeros_are_shifted():
    rng = np.random.default_rng(1)
    s = rng.lognormal(size=20_000)
    t = robust_threshold(s, 1e-3)
    assert robust_threshold(3.0 * s, 1e-3) == pytest.approx(3.0 * t, rel=1e-9)
    scaled = (s - s.min()) / (s.max() - s.min())  # a min-max normalised map: its minimum is 0
    u = robust_threshold(scaled, 1e-3)
    assert 0 < u < 1 and robust_threshold(scaled - 1.0, 1e-3) == pytest.approx(u - 1.0)


def test_a_few_strong_anomalies_barely_move_it_and_are_flagged():
    rng = np.random.default_rng(2)
    background = rng.gamma(shape=20.0, scale=1.0, size=(200, 200))
    t = robust_threshold(background, 1e-3)
    scene = background.copy()
    scene[:5, :8] = 500.0  # 40 anomalous pixels, 0.1 %
    t_scene = robust_threshold(scene, 1e-3)
    assert t_scene == pytest.approx(t, rel=0.01)
    assert (scene[:5, :8] >= t_scene).all()


def test_nan_is_nodata_and_a_map_with_zero_mad_is_fitted_above_its_mode():
    rng = np.random.default_rng(3)
    s = np.zeros((100, 100))
    s[:40] = rng.lognormal(size=(40, 100))  # 60 % of the pixels score exactly 0
    s[0, 0] = np.nan
    positives = s[:40].ravel()[1:]
    assert robust_threshold(s, 1e-3) == robust_threshold(positives, 1e-3)
    assert np.isfinite(robust_threshold(positives, 1e-3))


def test_a_constant_map_flags_nothing_and_says_so():
    with pytest.warns(DegenerateDataWarning, match="constant"):
        assert robust_threshold(np.full((10, 10), 4.0)) == np.inf
    # one repeated spectrum and an outlier: two scores, the higher one flagged
    s = np.full((30, 30), 0.0011)
    s[10, 10] = 899.0
    with pytest.warns(DegenerateDataWarning, match=r"1 of 900 scores share one score, 899, "
                      r"above all the others \(which tie at 0.0011 or below\): those are "
                      "flagged"):
        assert robust_threshold(s) == 899.0
    s = np.full(81, 0.5)  # a small scene: one outlier is a few outliers too
    s[7] = 34.0
    with pytest.warns(DegenerateDataWarning, match="1 of 81 scores"):
        assert robust_threshold(s) == 34.0
    # a tiny map of two levels, and 49 %: none flagged
    for s in (np.array([0.0, 0.0, 1.0]), np.r_[np.zeros(22), np.ones(3)],
              np.r_[np.zeros(5100), np.ones(4900)]):
        with pytest.warns(DegenerateDataWarning, match="two levels, not a few outliers"):
            assert robust_threshold(s) == np.inf
    # ties on two levels, then one outlier: the outlier is flagged
    s = np.r_[np.zeros(6000), np.ones(3999), 7.0]
    with pytest.warns(DegenerateDataWarning, match=r"1 of 10000 scores share one score, 7, "
                      r"above all the others \(which tie at 1 or below\)"):
        assert robust_threshold(s) == 7.0
    # a few distinct scores above a tied majority (an outlier and numerical noise): the
    # fit, as ever, with a warning that it is rough; the outlier flagged, not the noise
    s = np.r_[np.zeros(995), 1e-12, 2e-12, 3e-12, 4e-12, 5.0]
    with pytest.warns(DegenerateDataWarning, match="only 5 of 1000 scores lie above"):
        t = robust_threshold(s)
    assert 4e-12 < t <= 5.0
    # over half the pixels at the highest score (a saturated map): none stands out, and
    # the map is not called constant
    s = np.r_[np.linspace(0.0, 0.9, 40), np.ones(60)]
    with pytest.warns(DegenerateDataWarning, match="60 of 100 scores share the highest "
                      "score, 1: no pixel stands above them"):
        assert robust_threshold(s) == np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        assert robust_threshold(np.full(3, np.nan)) == np.inf


@pytest.mark.parametrize("bad", [0.0, 1.0, -1.0])
def test_rates_outside_the_unit_interval_are_refused(bad):
    with pytest.raises(ParameterError, match="far"):
        robust_threshold(np.arange(10.0), bad)


def test_two_threshold_rules_are_refused_naming_the_options():
    with pytest.raises(ParameterError, match="--contamination, --far or --threshold"):
        check_threshold(contamination=0.01, far=0.001)


@pytest.mark.parametrize(("k1", "k2", "a"), [(3, 5, 0.2), (1, 10, 0.05), (2, 6, 0.5),
                                          (4, 40, 0.02)])
def test_weighted_chi2_quantile_against_the_exact_tail(k1, k2, a):
    """Two groups of equal weights, χ²_k1 + a·χ²_k2, have an exact tail by one smooth
    integral; the saddlepoint quantile holds the rate asked within 6 % down to 1e-5 (the
    three-moment approximation used before missed by up to 31 % at 1e-4 for a ridge's
    weights)."""
    from scipy.integrate import quad
    from scipy.stats import chi2

    def tail(x):  # E[P(χ²_k1 > x − a·y)], y ~ χ²_k2
        inside = quad(lambda y: chi2.pdf(y, k2) * chi2.sf(x - a * y, k1), 0, x / a,
                      limit=500, epsabs=0, epsrel=1e-12)[0]
        return inside + chi2.sf(x / a, k2)

    weights = np.r_[np.ones(k1), np.full(k2, a)]
    for far in (0.9, 0.5, 0.3, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5):
        assert tail(weighted_chi2_isf(far, weights)) == pytest.approx(far, rel=0.06), far
    # continuous and decreasing over (0, 1): the switch to another approximation near the
    # mean made a larger rate give a larger threshold (1.002 → 1.024 about far = 0.31)
    rates = np.r_[np.geomspace(1e-10, 0.9, 150), np.linspace(0.9, 0.9999, 30)]
    values = np.array([weighted_chi2_isf(far, weights) for far in rates])
    assert np.isfinite(values).all() and (np.diff(values) <= 0).all()


@pytest.mark.parametrize("weights", [
    np.full(30, 1 / 1.1),  # equal: exact
    np.r_[np.full(5, 0.99), np.linspace(0.01, 0.9, 25)],
    np.geomspace(1, 1e-4, 200) / (np.geomspace(1, 1e-4, 200) + 0.01),  # a ridge's factors
])
def test_weighted_chi2_quantile_against_simulation(weights):
    from scipy.stats import chi2

    q = (np.random.default_rng(0).standard_normal((200_000, weights.size)) ** 2) @ weights
    for far in (1e-2, 1e-3):
        rate = (q > weighted_chi2_isf(far, weights)).mean()
        assert abs(rate - far) < 0.1 * far + 4 * np.sqrt(far / q.size), (far, rate)
    assert weighted_chi2_isf(0.01, np.full(7, 2.0)) == pytest.approx(2 * chi2.isf(0.01, 7))
    assert weighted_chi2_isf(0.01, np.zeros(3)) == np.inf
    # scale-free: tiny weights (a huge ridge) do not underflow to NaN
    assert weighted_chi2_isf(1e-3, 1e-60 * weights) == pytest.approx(
        1e-60 * weighted_chi2_isf(1e-3, weights), rel=1e-12)


def test_contamination_flags_tied_scores_all_or_none_and_says_so():
    """300 saturated pixels share the top score: 1 % of 10,000 flagged all 300 of them,
    silently. They are still flagged together (a threshold on the score), with a warning
    giving both counts; without ties the share is exact and nothing is said."""
    s = np.random.default_rng(0).normal(size=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.count_nonzero(s >= contamination_threshold(s, 0.01)) == 100
    s[:300] = 50.0
    with pytest.warns(DegenerateDataWarning, match="300 pixels share the score at the "
                      r"quantile \(50\), so 300 pixels are flagged for the 100 asked"):
        assert np.count_nonzero(s >= contamination_threshold(s, 0.01)) == 300
    assert contamination_threshold(np.array([]), 0.01) == np.inf


def _plain_robust_threshold(scores, far):
    """The rule as the module docstring states it, in plain numpy (copies everywhere)."""
    from statistics import NormalDist

    s = np.asarray(scores, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if np.median(np.abs(s - np.median(s))) == 0:
        s = s[s > np.median(s)]
    lo = s.min()
    offset = 0.0 if lo > 0 else lo - 1e-6 * (np.median(s) - lo or s.max() - lo or 1.0)
    logs = np.log(s - offset)
    centre = np.median(logs)
    scale = 1.4826 * np.median(np.abs(logs - centre))
    return float(np.exp(centre + NormalDist().inv_cdf(1 - far) * scale) + offset)


@pytest.mark.parametrize("case", ["lognormal", "signed", "mode", "float64", "odd"])
def test_the_in_place_rule_equals_the_plain_one_exactly(case):
    rng = np.random.default_rng(5)
    m = rng.lognormal(size=(301, 257) if case == "odd" else (300, 256))
    if case == "signed":
        m = m - 1.5
    if case == "mode":
        m[:200] = 0.25  # over half the pixels share one score
    m = m if case == "float64" else m.astype(np.float32)
    m[::7, ::5] = np.nan
    m[3, 4] = np.inf
    for far in (1e-3, 0.05):
        assert robust_threshold(m, far) == _plain_robust_threshold(m, far)
    flat = m[np.isfinite(m)].astype(np.float64)
    assert contamination_threshold(flat.copy(), 0.01, overwrite_input=True) == \
        float(np.quantile(flat, 0.99))


def test_a_float32_map_is_compared_with_its_threshold_in_float64():
    from hsad import detectors

    below = np.float32(1.0)
    above = np.nextafter(below, np.float32(2))
    thr = (float(below) + float(above)) / 2  # between two float32 values
    m = np.array([[below, above, np.nan, np.inf]], dtype=np.float32)
    mask = detectors.get("rx").threshold(m, value=thr)
    assert mask.values.tolist() == [[False, True, False, False]]


def test_thresholding_a_map_holds_no_float64_copy_of_it():
    """8 bytes a map pixel (one float64 vector of the finite scores) and a boolean mask or
    two, for either rule; the float32 map itself not counted."""
    import tracemalloc

    import xarray as xr

    from hsad import detectors

    m = np.random.default_rng(1).lognormal(size=(512, 512)).astype(np.float32)
    scores = xr.DataArray(m, dims=("y", "x"))
    det = detectors.get("rx")
    for kwargs in ({}, {"contamination": 0.01}):
        det.threshold(scores[:8, :8], **kwargs)  # imports and first calls, not counted
        tracemalloc.start()
        det.threshold(scores, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak / m.size < 12, kwargs  # 9.3 measured; 40 before (float64 copies)


def test_threshold_options_given_as_text_are_numbers():
    """``threshold(contamination="0.1")`` (read from a form or a config file) works as 0.1
    (a ValueError from the rule's text before)."""
    from hsad import detectors

    scores = np.random.default_rng(0).random((10, 10))
    rx = detectors.get("rx")
    text = rx.threshold(scores, contamination="0.1")
    assert text.attrs["threshold_rule"] == rx.threshold(scores, contamination=0.1).attrs[
        "threshold_rule"] and int(text.sum()) == 10
    assert rx.threshold(scores, far="0.01").attrs["threshold"] == rx.threshold(
        scores, far=0.01).attrs["threshold"]
    with pytest.raises(ParameterError, match="contamination"):
        rx.threshold(scores, contamination="ten")


def test_an_absolute_threshold_beyond_the_scores_says_so():
    """`--threshold 1e308` (another map's threshold, a typo) wrote an empty mask, and
    `--threshold -1e308` a full one, without a word: each now warns with the scores' range;
    a threshold inside the range is quiet."""
    import warnings

    from hsad import detectors

    s = np.random.default_rng(0).random((20, 20))
    s[0, 0] = np.nan  # no score: neither flagged nor counted
    rx = detectors.get("rx")
    with pytest.warns(UserWarning, match=r"lies above every score \(the highest is 0.99"):
        assert not rx.threshold(s, value=1e308).values.any()
    with pytest.warns(UserWarning, match="flags every pixel with a score"):
        assert int(rx.threshold(s, value=-1e308).sum()) == 399
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0 < int(rx.threshold(s, value=0.5).sum()) < 399
    # infinite pixels are no scores: the finite range, with the digits that tell it apart
    with pytest.warns(UserWarning, match=r"threshold 5 lies above every score \(the highest "
                                         r"is 2\)"):
        rx.threshold(np.array([[1.0, 2.0], [np.inf, np.nan]]), value=5)
    with pytest.warns(UserWarning, match=r"the highest is 0\.9999999404\)"):
        rx.threshold(np.array([[0.5, 0.99999994]], np.float32), value=1.0)
    with pytest.warns(UserWarning, match=r"threshold 0\.30000000000000004 lies above every "
                                         r"score \(the highest is 0\.3\)"):
        rx.threshold(np.array([[0.3, 0.1], [0.2, 0.0]]), value=0.1 + 0.2)


def test_half_the_scores_tied_is_fitted_above_them():
    """With exactly half the scores tied, the MAD was half the smallest other deviation:
    the fit had no spread and flagged all 250 scores above the tie at far 1e-3."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0, 0.9, 250), np.ones(500),
                             1.0 + rng.lognormal(0, 0.5, 250)])
    thr = robust_threshold(scores, far=1e-3)
    assert 0 < np.count_nonzero(scores >= thr) < 25


def test_one_score_above_a_tie_is_flagged_up_to_one_percent_or_one_pixel_of_ten():
    """10 of 1000 scores (1 %), or 1 of 10, on one value above a tie are flagged."""
    for s, n in ((np.r_[np.zeros(990), np.full(10, 5.0)], 10), (np.r_[np.zeros(9), 5.0], 1)):
        with pytest.warns(DegenerateDataWarning, match=f"{n} of {s.size} scores share one "
                                                      "score, 5, .*: those are flagged"):
            assert robust_threshold(s) == 5.0


def test_the_rough_fit_warning_is_for_fewer_than_ten_scores_above_a_tie():
    """9 distinct scores above a tied majority warn that the fit is rough; 10 do not."""
    with pytest.warns(DegenerateDataWarning, match="only 9 of 100 scores lie above the 0 "):
        robust_threshold(np.r_[np.zeros(91), np.arange(1, 10.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(robust_threshold(np.r_[np.zeros(90), np.arange(1, 11.0)]))


def test_contamination_warns_when_ties_flag_over_five_percent_more_than_asked():
    """contamination 0.1 of 1000: 106 tied at the top warn (over 5 % more), 105 do not."""
    rng = np.random.default_rng(0)
    for tied, warns in ((106, True), (105, False), (150, True)):
        s = np.r_[rng.uniform(0, 1, 1000 - tied), np.full(tied, 2.0)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert np.count_nonzero(s >= contamination_threshold(s, 0.1)) == tied
        said = [str(w.message) for w in caught if w.category is DegenerateDataWarning]
        assert said == ([f"contamination 0.1: {tied} pixels share the score at the quantile "
                         f"(2), so {tied} pixels are flagged for the 100 asked (pixels of "
                         "one score are flagged all or none)"] if warns else [])


def test_a_threshold_equal_to_the_lowest_score_is_shown_as_written():
    """`--threshold 1` on scores from 1 says "threshold 1 … the lowest is 1", not "1.0"."""
    from hsad import detectors

    with pytest.warns(UserWarning, match=r"^threshold 1 lies at or below every score \(the "
                                         r"lowest is 1\): the mask flags every pixel"):
        detectors.get("rx").threshold(np.array([[1.0, 2.0, 3.0]]), value=1.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_at_or_above_decides_as_float64_for_every_float_type(dtype):
    """NumPy 1.x compared a float32 map with a float64 scalar in float32: a threshold
    between two float32 values flagged the one below it. ``at_or_above`` decides as float64
    does on any NumPy, the threshold moved to the smallest value of the map's type above it."""
    from hsad.engine.thresholds import at_or_above

    rng = np.random.default_rng(3)
    s = rng.normal(size=2000).astype(dtype)
    finfo = np.finfo(dtype)
    for thr in (*rng.normal(size=50), 0.0, float(s[7]), float(s[7]) * (1 + 1e-12),
                float(finfo.max) * 1.5, -float(finfo.max) * 1.5, np.inf, -np.inf, np.nan):
        got = at_or_above(s, thr)
        np.testing.assert_array_equal(got, s.astype(np.float64) >= np.float64(thr))


def test_a_fitted_rule_whose_tail_lies_beyond_the_map_says_so():
    """The default rule fits a log-normal to the bulk of the scores; on a bounded map with
    most of its pixels near zero (HADGAN's D_SS on hydice-2: threshold 1.75, highest score
    0.69) the fitted tail lies beyond every score, and the empty mask said nothing."""
    from hsad import detectors

    rng = np.random.default_rng(0)
    bounded = rng.uniform(size=(60, 60)) ** 4  # in [0, 1], mostly near 0, no tail
    rx = detectors.get("rx")
    for kwargs in ({}, {"far": 0.01}):  # the default rule and the robust fit at a rate
        with pytest.warns(UserWarning, match=r"lies above every score \(the highest is "
                          r"0\.99.*flags no pixel; no pixel lies beyond the tail the rule "
                          r"fitted.*--contamination RATE or --threshold VALUE"):
            assert not rx.threshold(bounded, **kwargs).values.any()
    tailed = rng.lognormal(size=(60, 60))
    tailed[5, 5] = 1e4  # an anomaly beyond the background's tail: flagged, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rx.threshold(tailed).values[5, 5]
    with warnings.catch_warnings():  # a share asked for always flags: nothing to say
        warnings.simplefilter("error")
        assert rx.threshold(bounded, contamination=0.01).values.any()


def test_a_rule_that_explained_its_empty_mask_is_not_told_again():
    """A constant, saturated or two-level map gets an infinite threshold and the rule's own
    warning; the one about a tail beyond the map would repeat it."""
    from hsad import detectors

    maps = [np.full((20, 20), 3.0), np.r_[np.zeros(150), np.ones(250)].reshape(20, 20),
            np.r_[np.zeros(204), np.ones(196)].reshape(20, 20)]
    for s in maps:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not detectors.get("rx").threshold(s).values.any()
        assert len(caught) == 1 and "lies above every score" not in str(caught[0].message)


def test_a_null_distributions_empty_mask_is_no_fitted_tail():
    """RX's χ² threshold at a rate is no fit to the scores: a Gaussian background that
    none of its pixels exceeds flags nothing, rightly, without the fitted rule's warning."""
    from hsad import detectors
    from hsad.cube import make_cube

    x = np.random.default_rng(0).normal(size=(100, 100, 20)).astype(np.float32)
    rx = detectors.get("rx")
    s = rx.fit_score(make_cube(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask = rx.threshold(s, far=1e-4)
    assert mask.attrs["threshold_rule"].endswith("(null distribution)")
    assert not mask.values.any()


def test_a_null_threshold_is_refused_for_a_changed_fit_and_for_another_detectors_map():
    """``rx.threshold(map, far=)`` took χ² quantiles of the ridge set after the fit (0 pixels
    where the fitted ridge flags hundreds) and of RX itself for an AED map (scores 0–1
    against a threshold of 273), in silence; both are one-line ParameterErrors now, and the
    rules that take no null distribution still threshold any map."""
    from hsad import detectors
    from hsad.cube import make_cube

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 60, 12)).astype(np.float32)
    x[10:13, 20:23] += 4.0
    cube = make_cube(x)
    rx = detectors.get("rx", ridge=0.5).fit(cube)
    scores = rx.score(cube)
    before = rx.threshold(scores, far=1e-3)
    rx.set_params(ridge=0.0)
    with pytest.raises(ParameterError, match="ridge is 0.0 but the detector was fitted with "
                                             "0.5"):
        rx.threshold(scores, far=1e-3)
    rx.set_params(ridge=0.5)
    assert (rx.threshold(scores, far=1e-3).values == before.values).all()
    other = detectors.get("aed").fit_score(cube)
    with pytest.raises(ParameterError, match="this map was made by aed, and far=0.001 takes "
                                             "rx's null distribution") as exc:
        rx.threshold(other, far=1e-3)
    assert "\n" not in str(exc.value)
    assert int(rx.threshold(other, contamination=0.01).sum()) == 36
    assert rx.threshold(other.values, far=1e-3).attrs["threshold_rule"].endswith(
        "(null distribution)")  # a bare array names no detector: the caller's word


def test_an_unfitted_rx_thresholds_an_rx_map_with_the_maps_own_rank():
    """A new GlobalRX() thresholding a map scored earlier fell back to the robust log-normal
    fit (24.55) where the fitted detector gives χ² with the map's rank (20.09), silently;
    UTD, whose map records a rank too, has no χ² null and keeps the robust fit."""
    from hsad import detectors

    cube = np.random.default_rng(4).normal(size=(40, 40, 8)).astype(np.float32)
    fitted = detectors.get("rx").fit(cube)
    scores = fitted.score(cube)
    want = fitted.threshold(scores, far=0.01).attrs["threshold"]
    got = detectors.get("rx").threshold(scores, far=0.01)
    assert got.attrs["threshold"] == want and "null distribution" in got.attrs["threshold_rule"]
    ridged = detectors.get("rx", ridge=0.1).threshold(scores, far=0.01)
    assert "robust" in ridged.attrs["threshold_rule"]  # a ridge's null needs the fit's eigenvalues
    # nor may a map made with a ridge take χ² of its rank (45.31 for the fit's 30.19)
    ridge_map = detectors.get("rx", ridge=0.5).fit_score(cube)
    assert ridge_map.attrs["hsad_ridge"] == 0.5
    assert "robust" in detectors.get("rx").threshold(ridge_map, far=0.01).attrs[
        "threshold_rule"]
    old = scores.copy()
    del old.attrs["hsad_ridge"]  # a map that does not say its ridge: none assumed
    assert "robust" in detectors.get("rx").threshold(old, far=0.01).attrs["threshold_rule"]
    utd_map = detectors.get("utd").fit_score(cube)
    assert "robust" in detectors.get("utd").threshold(utd_map, far=0.01).attrs["threshold_rule"]


def test_a_map_read_back_from_hsad_detect_s_geotiff_is_thresholded_as_in_memory(tmp_path):
    """A GeoTIFF's tags come back as `hsad_method`, not `method`: `hsad detect`'s RX map read
    with rioxarray took the robust fit from a new GlobalRX() (171.43 for χ²'s 169.28), and
    a fitted RX took a UTD map's file with its own χ² (251 of 2349 pixels at far=1e-3),
    which it refuses in memory."""
    import rioxarray

    from hsad import detectors
    from hsad.cli.main import main
    from hsad.cube import make_cube
    from hsad.io import open_cube
    from hsad.io.envi_writer import write_envi

    cube = make_cube(np.random.default_rng(5).normal(size=(40, 40, 8)).astype(np.float32))
    scene = write_envi(cube, tmp_path / "s.img")
    for method in ("rx", "utd"):
        with pytest.raises(SystemExit) as done:
            main(["detect", str(scene), "-m", method, "-o", str(tmp_path / f"{method}.tif"),
                  "-q"])
        assert done.value.code == 0

    def with_rioxarray(name):
        return rioxarray.open_rasterio(tmp_path / name, masked=True).squeeze("band", drop=True)

    def with_hsad(name):  # hsad's own reader had dropped the tags (robust fit, no refusal)
        return open_cube(tmp_path / name).isel(band=0)

    fitted = detectors.get("rx").fit(cube)
    want = fitted.threshold(fitted.score(cube), far=0.01).attrs["threshold"]
    for read in (with_rioxarray, with_hsad):
        got = detectors.get("rx").threshold(read("rx.tif"), far=0.01)
        assert "null distribution" in got.attrs["threshold_rule"], read
        assert got.attrs["threshold"] == pytest.approx(want, rel=1e-9)
        with pytest.raises(ParameterError, match="this map was made by utd"):
            fitted.threshold(read("utd.tif"), far=1e-3)
    assert "hsad_method" not in open_cube(scene).attrs  # a scene holds no map's tags

