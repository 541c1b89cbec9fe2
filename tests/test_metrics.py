"""Detection metrics against hand computations, sklearn and the exact τ integrals."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import roc_auc_score

from hsad.errors import ParameterError
from hsad.outputs.metrics import (
    auc_df,
    auc_dt,
    auc_ft,
    evaluate,
    format_table,
    normalised_scores,
    roc,
)


def test_six_pixel_case_matches_hand_computation():
    # normalised scores: 0, .25, .5, .5, .75, 1; anomalies at .5, .75, 1
    scores = np.array([[0.0, 2.0, 4.0], [4.0, 6.0, 8.0]])
    gt = np.array([[False, False, True], [False, True, True]])
    curve = roc(scores, gt)
    np.testing.assert_allclose(curve.thresholds, [np.inf, 1, 0.75, 0.5, 0.25, 0])
    np.testing.assert_allclose(curve.pd, [0, 1 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(curve.pf, [0, 0, 0, 1 / 3, 2 / 3, 1])
    r = evaluate(scores, gt)
    # 9 (anomaly, background) pairs: 8 wins and one tie (0.5 vs 0.5) -> 8.5/9
    assert r.auc_df == pytest.approx(17 / 18, abs=1e-12)
    assert r.auc_dt == pytest.approx((0.5 + 0.75 + 1) / 3, abs=1e-12)
    assert r.auc_ft == pytest.approx((0 + 0.25 + 0.5) / 3, abs=1e-12)
    assert r.td == pytest.approx(17 / 18 + 0.75)
    assert r.bs == pytest.approx(17 / 18 - 0.25)
    assert r.tdbs == pytest.approx(0.5)
    assert r.od == pytest.approx(17 / 18 + 0.5)
    assert r.odp == pytest.approx(1.5)
    assert r.snpr == pytest.approx(3.0)
    assert r.snpr_db == pytest.approx(10 * np.log10(3.0))
    assert (r.n_anomaly, r.n_background) == (3, 3)


@pytest.mark.parametrize("levels", [None, 7, 2])
def test_auc_df_equals_sklearn_including_ties(levels):
    rng = np.random.default_rng(levels or 1)
    gt = rng.random((60, 70)) < 0.05
    scores = rng.normal(size=gt.shape) + 1.5 * gt
    if levels:  # heavy ties: only a few distinct values
        scores = np.digitize(scores, np.linspace(-2, 3, levels)).astype(np.float32)
    expected = roc_auc_score(gt.ravel(), scores.ravel())
    assert abs(auc_df(scores, gt) - expected) < 1e-9
    assert abs(evaluate(scores, gt).auc_df - expected) < 1e-9


def test_tau_areas_are_exact_integrals_of_the_step_curves():
    rng = np.random.default_rng(3)
    gt = rng.random(500) < 0.1
    scores = np.round(rng.gamma(2.0, size=500) + gt, 1)  # ties on purpose
    curve = roc(scores, gt)
    # P_D(τ) is constant on (t_{k+1}, t_k]: integrate the steps exactly over [0, 1]
    t = curve.thresholds[1:]
    widths = t - np.r_[t[1:], 0.0]
    assert auc_dt(scores, gt) == pytest.approx(np.sum(curve.pd[1:] * widths), abs=1e-12)
    assert auc_ft(scores, gt) == pytest.approx(np.sum(curve.pf[1:] * widths), abs=1e-12)
    # and a brute-force midpoint rule over τ agrees to its resolution
    s, labels = normalised_scores(scores, gt)
    tau = (np.arange(20000) + 0.5) / 20000
    pd_tau = (s[labels][None, :] >= tau[:, None]).mean(axis=1)
    assert auc_dt(scores, gt) == pytest.approx(pd_tau.mean(), abs=1e-3)


def test_perfect_and_inverted_detectors():
    gt = np.zeros((10, 10), bool)
    gt[2:4, 5:8] = True
    perfect = gt.astype(float) * 10 + 1
    r = evaluate(perfect, gt)
    assert r.auc_df == 1.0 and r.auc_dt == 1.0 and r.auc_ft == 0.0
    assert r.odp == 2.0 and r.snpr == np.inf
    inverted = evaluate(-perfect, gt)
    assert inverted.auc_df == 0.0 and inverted.auc_dt == 0.0 and inverted.auc_ft == 1.0


def test_constant_map_is_chance_level():
    gt = np.eye(5, dtype=bool)
    r = evaluate(np.full((5, 5), 3.0), gt)
    assert r.auc_df == 0.5 and r.auc_dt == 0.0 and np.isnan(r.snpr)


def test_nan_scores_and_nan_truth_are_excluded():
    rng = np.random.default_rng(4)
    gt = (rng.random((40, 40)) < 0.1).astype(np.float64)
    scores = rng.normal(size=gt.shape) + gt
    scores[:3] = np.nan
    gt[-2:] = np.nan
    keep = np.isfinite(scores) & np.isfinite(gt)
    r = evaluate(scores, gt)
    assert r.n_anomaly + r.n_background == keep.sum()
    sub = evaluate(scores[keep], gt[keep] > 0)
    assert r == sub
    assert abs(r.auc_df - roc_auc_score(gt[keep] > 0, scores[keep])) < 1e-9
    # an extreme value hidden behind a NaN truth does not change the normalisation
    scores[-1, 0] = 1e9
    assert evaluate(scores, gt) == r


def test_lazy_dataarray_inputs():
    rng = np.random.default_rng(5)
    gt = rng.random((32, 32)) < 0.1
    scores = rng.normal(size=gt.shape) + 2 * gt
    lazy = xr.DataArray(da.from_array(scores, chunks=8), dims=("y", "x"))
    assert evaluate(lazy, xr.DataArray(gt, dims=("y", "x"))) == evaluate(scores, gt)


@pytest.mark.parametrize(
    "gt, match",
    [(np.zeros((4, 4), bool), "no valid anomaly"), (np.ones((4, 4), bool), "no valid background")],
)
def test_empty_class_is_a_parameter_error(gt, match):
    with pytest.raises(ParameterError, match=match):
        evaluate(np.arange(16.0).reshape(4, 4), gt)


def test_all_nan_anomalies_is_a_parameter_error():
    gt = np.zeros((4, 4), bool)
    gt[0, 0] = True
    scores = np.arange(16.0).reshape(4, 4)
    scores[0, 0] = np.nan
    with pytest.raises(ParameterError, match="none of its 1 anomaly pixels has a valid score"):
        roc(scores, gt)
    with pytest.raises(ParameterError, match="the score map has no valid"):
        evaluate(np.full((4, 4), np.nan), gt)


@pytest.mark.parametrize("extreme", [-3.4028234663852886e38, -1e20])
def test_one_extreme_score_does_not_merge_the_others(extreme):
    """AUC(D,F) depends on the order of the scores only: an undeclared float32 nodata value
    (-FLT_MAX) squeezes the normalised scores together but must not tie them."""
    rng = np.random.default_rng(7)
    gt = rng.random((50, 50)) < 0.05
    scores = rng.normal(size=gt.shape) + 2 * gt
    scores[0, 0] = extreme
    expected = roc_auc_score(gt.ravel(), scores.ravel())
    assert evaluate(scores, gt).auc_df == pytest.approx(expected, abs=1e-12)
    assert auc_df(scores, gt) == pytest.approx(expected, abs=1e-12)


def test_a_range_wider_than_float64_stays_finite():
    rng = np.random.default_rng(8)
    gt = rng.random((30, 30)) < 0.05
    scores = rng.normal(size=gt.shape) * 1e307
    scores[0, 0], scores[gt] = -1.7e308, 1.7e308
    r = evaluate(scores, gt)
    assert r.auc_df == pytest.approx(roc_auc_score(gt.ravel(), scores.ravel()), abs=1e-12)
    assert r.auc_dt == pytest.approx(1.0) and 0 < r.auc_ft < 1
    curve = roc(scores, gt)
    assert np.isfinite(curve.thresholds[1:]).all() and curve.thresholds[1:].max() <= 1.0


def test_a_subnormal_range_keeps_every_metric():
    """0 and the smallest subnormal: halving the bounds (the overflow guard) would round the
    range to 0 and every tau metric to NaN (found by a review, 2026-12-03)."""
    gt = np.array([1, 1, 0, 0, 0, 0, 0, 0], bool)
    tiny = np.array([1, 1, 1, 0, 0, 0, 0, 0]) * 5e-324
    r, plain = evaluate(tiny, gt), evaluate(tiny / 5e-324, gt)
    for name in ("auc_df", "auc_dt", "auc_ft", "odp", "snpr"):
        assert getattr(r, name) == pytest.approx(getattr(plain, name)), name
    assert (r.auc_dt, r.auc_ft) == (pytest.approx(1.0), pytest.approx(1 / 6))
    assert np.isfinite(roc(tiny, gt).thresholds[1:]).all()


def test_a_masked_arrays_masked_pixels_are_left_out():
    """A numpy masked array's mask is nodata, not data (a masked fill value of 99 was
    scored as the highest background pixel)."""
    scores = np.ma.masked_array([5.0, 4.0, 1.0, 2.0, 0.5, 99.0],
                                mask=[0, 0, 0, 0, 0, 1])
    gt = np.array([1, 1, 0, 0, 0, 0], bool)
    r = evaluate(scores, gt)
    assert r.auc_df == 1.0 and r.n_background == 3
    truth = np.ma.masked_array(gt, mask=[0, 0, 0, 0, 1, 0])
    assert evaluate(np.array([5.0, 4.0, 1.0, 2.0, 0.5, 0.1]), truth).n_background == 3


def test_a_transposed_labelled_truth_is_aligned_by_its_dimension_names():
    rng = np.random.default_rng(9)
    gt = rng.random((40, 40)) < 0.05
    scores = rng.normal(size=gt.shape) + 2 * gt
    s, g = xr.DataArray(scores, dims=("y", "x")), xr.DataArray(gt, dims=("y", "x"))
    expected = evaluate(s, g).auc_df
    assert evaluate(s, g.transpose("x", "y")).auc_df == expected
    rect = xr.DataArray(gt[:, :30], dims=("y", "x"))
    assert evaluate(s[:, :30], rect.transpose()).auc_df == evaluate(s[:, :30], rect).auc_df


def test_shape_mismatch_is_a_parameter_error():
    with pytest.raises(ParameterError, match="does not match"):
        evaluate(np.zeros((4, 5)), np.zeros((5, 4), bool))


def test_table_lists_every_metric():
    gt = np.eye(6, dtype=bool)
    text = format_table(evaluate(np.eye(6) + np.arange(36).reshape(6, 6) / 100, gt))
    for label in ("AUC(D,F)", "AUC(D,tau)", "AUC(F,tau)", "TD", "BS", "TDBS", "OD", "ODP",
                  "SNPR", "SNPR (dB)"):
        assert f"\n{label} " in text
    assert "6+30" in text


def test_result_reads_like_a_mapping():
    gt = np.eye(4, dtype=bool)
    r = evaluate(np.eye(4) + 0.1, gt)
    assert r["auc_df"] == r.auc_df == 1.0
    assert dict(r) == r.to_dict() and list(dict(r))[:3] == ["auc_df", "auc_dt", "auc_ft"]
    with pytest.raises(KeyError):
        r["auc"]


def _plain_evaluation(scores, gt):
    """The metrics as first written here: float64 copies, a descending stable sort, diffs."""
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    valid = np.isfinite(s) & np.isfinite(g)
    s, labels = s[valid], g[valid] != 0
    lo, hi = s.min(), s.max()
    with np.errstate(over="ignore"):
        span = hi - lo
    tau = (np.clip((s - lo) / span, 0, 1) if np.isfinite(span) else
           np.clip((s / 2 - lo / 2) / (hi / 2 - lo / 2), 0, 1)) if hi > lo else np.zeros_like(s)
    order = np.argsort(-s, kind="stable")
    ordered, ordered_labels, ordered_tau = s[order], labels[order], tau[order]
    last = np.r_[np.flatnonzero(np.diff(ordered)), s.size - 1]
    tp = np.cumsum(ordered_labels)[last]
    fp = (last + 1) - tp
    pd, pf = np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]
    return (pd, pf, np.r_[np.inf, ordered_tau[last]], float(tau[labels].mean()),
            float(tau[~labels].mean()))


@pytest.mark.parametrize("case", ["float32", "ties", "huge range", "integers"])
def test_the_lean_evaluation_equals_the_plain_one_exactly(case):
    rng = np.random.default_rng(11)
    scores = rng.lognormal(size=(120, 90))
    if case == "float32":
        scores = scores.astype(np.float32)
    elif case == "ties":
        scores = np.round(scores, 1)
    elif case == "huge range":
        scores = scores * 1e307 - 1.5e308  # max − min overflows float64
    else:
        scores = (scores * 10).astype(np.int32)
    if case != "integers":
        scores[::13, ::7] = np.nan
    gt = np.zeros(scores.shape)
    gt[rng.integers(0, 120, 40), rng.integers(0, 90, 40)] = 1
    gt[50:52] = np.nan
    result, curve = evaluate(scores, gt, return_curve=True)
    pd, pf, tau, dt, ft = _plain_evaluation(scores, gt)
    for got, want in ((curve.pd, pd), (curve.pf, pf), (curve.thresholds, tau)):
        np.testing.assert_array_equal(got, want)
    assert (result.auc_dt, result.auc_ft) == (dt, ft)


def test_maps_of_other_places_are_refused():
    """Two labelled maps of one shape from other places (two slices of a scene, or other
    CRSs) were paired by position; their coordinates and CRSs must agree."""
    from hsad import detectors
    from hsad.synthetic import make_scene

    scene = make_scene(rows=64, cols=64, bands=20)
    scores = detectors.get("rx").fit_score(scene.cube)
    same = evaluate(scores.isel(y=slice(0, 40)), scene.truth.isel(y=slice(0, 40)))
    assert same.auc_df > 0.8
    with pytest.raises(ParameterError, match="different places"):
        evaluate(scores.isel(y=slice(0, 40)), scene.truth.isel(y=slice(20, 60)))
    with pytest.raises(ParameterError, match="different CRSs"):
        evaluate(scores, scene.truth.rio.write_crs("EPSG:4326"))
    # a truth without a georeference (rioxarray's pixel coordinates) is paired by position,
    # as `hsad evaluate` pairs its file
    plain = xr.DataArray(scene.truth.values, dims=("y", "x"),
                         coords={"y": np.arange(64) + 0.5, "x": np.arange(64) + 0.5})
    assert evaluate(scores, plain).auc_df == evaluate(scores, scene.truth).auc_df
    # without a CRS: slices from the origin (GDAL's default grid) and uneven selections are
    # places too
    bare_s = scores.drop_vars("spatial_ref").assign_coords(y=np.arange(64) + 0.5,
                                                           x=np.arange(64) + 0.5)
    uneven = [i for i in range(64) if i != 10]
    for a, b in ((slice(0, 10), slice(10, 20)), (uneven[:-1], uneven[1:])):
        with pytest.raises(ParameterError, match="different places"):
            evaluate(bare_s.isel(y=a), plain.isel(y=b))
    assert evaluate(bare_s.isel(y=uneven), plain.isel(y=uneven)).n_anomaly > 0
    # arrays without coordinates are paired by position, as before
    assert evaluate(scores.values, scene.truth.values).auc_df == evaluate(
        scores, scene.truth).auc_df
    with pytest.raises(ParameterError, match="numeric array"):
        evaluate("x", np.zeros((3, 3)))


@pytest.mark.parametrize("case", ["float32", "float64 ties", "anomalies the larger class",
                                  "huge range", "constant"])
def test_the_area_from_ranks_equals_the_trapezoid_and_sklearn(case, monkeypatch):
    """AUC(D,F) is counted from ranks (:mod:`hsad.outputs.roc_area`): the trapezoid area of
    the curve, and sklearn's, whichever class is the smaller and over several lookups."""
    from hsad.outputs import roc_area

    monkeypatch.setattr(roc_area, "LOOKUP_BLOCK", 37)  # many lookups of the smaller class
    rng = np.random.default_rng(7)
    gt = rng.random((80, 60)) < (0.8 if case == "anomalies the larger class" else 0.04)
    scores = rng.normal(size=gt.shape) + 1.2 * gt
    if case == "float32":
        scores = scores.astype(np.float32)
    elif case in ("float64 ties", "anomalies the larger class"):
        scores = np.round(scores, 1)
    elif case == "huge range":
        scores = scores * 1e307
    else:
        scores = np.full(gt.shape, 2.5)
    result, curve = evaluate(scores, gt, return_curve=True)
    trapezoid = float(np.sum(np.diff(curve.pf) * (curve.pd[1:] + curve.pd[:-1])) / 2.0)
    assert result.auc_df == pytest.approx(trapezoid, abs=1e-12)
    assert result.auc_df == pytest.approx(roc_auc_score(gt.ravel(), scores.ravel()),
                                          abs=1e-12)
    assert auc_df(scores, gt) == evaluate(scores, gt).auc_df == result.auc_df
    assert scores.flags.writeable and not np.all(np.diff(scores.ravel()) >= 0) or \
        case == "constant"  # the caller's map is not sorted in place


def test_the_tau_areas_in_blocks_equal_the_plain_means(monkeypatch):
    """AUC(D,τ) and AUC(F,τ) are means normalised a block at a time: on a map of many
    blocks they equal the plain means of the normalised scores to float64 rounding."""
    from hsad.outputs import metrics

    rng = np.random.default_rng(8)
    gt = rng.random((90, 70)) < 0.05
    scores = rng.lognormal(size=gt.shape).astype(np.float32) + gt
    whole = evaluate(scores, gt)  # one block: the plain means to the bit
    s, labels = normalised_scores(scores, gt)
    assert (whole.auc_dt, whole.auc_ft) == (float(s[labels].mean()), float(s[~labels].mean()))
    monkeypatch.setattr(metrics, "MEAN_BLOCK", 101)
    blocks = evaluate(scores, gt)
    assert blocks.auc_dt == pytest.approx(whole.auc_dt, rel=1e-13)
    assert blocks.auc_ft == pytest.approx(whole.auc_ft, rel=1e-13)
    assert blocks.auc_df == whole.auc_df


def test_evaluating_a_map_holds_about_ten_bytes_a_pixel_beyond_it(monkeypatch):
    """The metrics hold the valid scores in the map's float32, their labels and a few
    masks: no argsort index, no float64 copy, no curve (55 bytes a pixel before). Blocks
    made small, as a large map's are beside it."""
    import tracemalloc

    from hsad.outputs import metrics, roc_area

    monkeypatch.setattr(metrics, "MEAN_BLOCK", 1 << 14)
    monkeypatch.setattr(roc_area, "LOOKUP_BLOCK", 1 << 12)
    rng = np.random.default_rng(9)
    gt = rng.random((700, 700)) < 0.01
    scores = rng.normal(size=gt.shape).astype(np.float32) + gt
    evaluate(scores[:8, :8], np.eye(8, dtype=bool))  # imports, first calls: not counted
    truth = gt.astype(np.float32)  # as files are read: NaN unlabelled
    truth[:5] = np.nan
    for labels, most in ((gt, 10), (truth, 14)):  # 7.1 and 12.1 measured
        tracemalloc.start()
        evaluate(scores, labels)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak / scores.size < most, peak / scores.size


def test_a_curve_at_fewer_points_holds_points_of_the_full_curve():
    """`evaluate(..., curve_points=k)` (what the plots compute) gives about k points, each
    a point of the full curve with its thresholds, from the highest score (geometric ranks:
    a log P_F axis keeps its first false alarms) to (1, 1); the areas are the full ones."""
    rng = np.random.default_rng(12)
    gt = rng.random((100, 120)) < 0.03
    scores = (rng.normal(size=gt.shape) + 1.5 * gt).astype(np.float32)
    full, whole = evaluate(scores, gt, return_curve=True)
    few_result, few = evaluate(scores, gt, return_curve=True, curve_points=60)
    assert few_result == full and 30 < few.pd.size <= 62 < whole.pd.size
    points = set(zip(whole.pd, whole.pf, whole.thresholds, strict=True))
    assert all(p in points for p in zip(few.pd, few.pf, few.thresholds, strict=True))
    np.testing.assert_array_equal(few.pd[:4], whole.pd[:4])  # the three highest scores
    assert (few.pd[-1], few.pf[-1], few.thresholds[-1]) == (1.0, 1.0, 0.0)
    assert np.all(np.diff(few.thresholds) < 0)
    # as many points as distinct scores, or more: the full curve itself
    same = evaluate(scores, gt, return_curve=True, curve_points=scores.size)[1]
    for a, b in zip(same, whole, strict=True):
        np.testing.assert_array_equal(a, b)
    for bad in (0, -3, 10.0, True):
        with pytest.raises(ParameterError, match="curve_points must be a whole number"):
            evaluate(scores, gt, return_curve=True, curve_points=bad)
    ties = np.array([[0, 0, 0, 0, 0, 0, 0, 0, 1, 2]], np.float32)  # 3 distinct scores
    labels = np.array([[0] * 8 + [1, 1]], bool)
    for a, b in zip(evaluate(ties, labels, return_curve=True, curve_points=3)[1],
                    evaluate(ties, labels, return_curve=True)[1], strict=True):
        np.testing.assert_array_equal(a, b)  # (P_F 0, P_D 1) kept


def test_a_curve_at_fewer_points_keeps_the_first_false_alarms():
    """Many anomalies above the whole background: the first false alarms lie deep in the
    ranks, and a log P_F axis still starts at one false alarm."""
    rng = np.random.default_rng(1)
    scores = rng.random((256, 256)).astype(np.float32)
    gt = np.zeros(scores.shape, bool)
    gt[:64] = True
    scores[gt] += 0.999
    few = evaluate(scores, gt, return_curve=True, curve_points=300)[1]
    background = int((~gt).sum())
    assert few.pd.size < 320
    false_alarms = (few.pf[few.pf > 0] * background).round()
    assert false_alarms[0] == 1 and np.count_nonzero(false_alarms <= 10) >= 5


def test_the_plots_curves_hold_no_argsort_of_the_map(monkeypatch):
    """The curves the ROC plots draw are computed at a bounded number of points from the
    sorted scores: a few bytes a pixel, not the 50 of an argsort and a curve at every
    distinct score."""
    import tracemalloc

    from hsad.outputs import metrics, roc_area, roc_plots

    monkeypatch.setattr(metrics, "MEAN_BLOCK", 1 << 14)
    monkeypatch.setattr(roc_area, "LOOKUP_BLOCK", 1 << 12)
    monkeypatch.setattr(roc_plots, "CURVE_POINTS", 1 << 12)
    rng = np.random.default_rng(13)
    gt = rng.random((700, 700)) < 0.01
    scores = rng.normal(size=gt.shape).astype(np.float32) + gt
    roc_plots.roc_curves(scores[:8, :8], np.eye(8, dtype=bool))  # imports: not counted
    tracemalloc.start()
    curves = roc_plots.roc_curves({"m": scores}, gt)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak / scores.size < 10, peak / scores.size
    assert curves["m"][0].pd.size <= (1 << 12) + 2


@pytest.mark.parametrize("case", ["anomalies the larger class", "perfect separation"])
def test_a_curve_at_fewer_points_starts_at_one_false_alarm(case):
    """A plotted curve starts at 1 false alarm (anomalies the majority, or all on top)."""
    rng = np.random.default_rng(1)
    scores = rng.random((256, 256)).astype(np.float32)
    gt = np.zeros(scores.shape, bool)
    gt[:200 if case == "anomalies the larger class" else 64] = True
    scores[gt] += 0.999 if case == "anomalies the larger class" else 1.5
    few = evaluate(scores, gt, return_curve=True, curve_points=300)[1]
    false_alarms = (few.pf[few.pf > 0] * int((~gt).sum())).round()
    assert false_alarms[0] == 1 and np.count_nonzero(false_alarms <= 10) >= 5


def test_a_curve_at_few_points_keeps_its_end_and_its_documented_ranks():
    """curve_points=4 ends at (1, 1); 9 of 10 distinct scores sample ranks 0, 2, 4, 9."""
    rng = np.random.default_rng(0)
    gt = rng.random((50, 50)) < 0.05
    few = evaluate(rng.normal(size=gt.shape) + gt, gt, return_curve=True, curve_points=4)[1]
    assert (few.pf[-1], few.pd[-1], few.thresholds[-1]) == (1.0, 1.0, 0.0)
    scores = np.arange(10.0).reshape(2, 5)
    labels = scores >= 8
    nine = evaluate(scores, labels, return_curve=True, curve_points=9)[1]
    np.testing.assert_allclose(nine.thresholds, [np.inf, 1, 7 / 9, 5 / 9, 0])
    np.testing.assert_allclose(nine.pf, [0, 0, 1 / 8, 3 / 8, 1])
    assert evaluate(scores, labels, return_curve=True, curve_points=10)[1].pd.size == 11


def test_truth_coordinates_off_by_half_a_pixel_are_refused():
    """A truth half a pixel off is refused, also on unevenly selected rows."""
    rng = np.random.default_rng(0)
    gt = rng.random((3, 20)) < 0.3
    x = np.arange(20) * 30.0
    for y in (np.arange(3) * 30.0, np.array([0.0, 1.0, 1000.0]) * 30.0):
        scores = xr.DataArray(rng.normal(size=gt.shape) + gt, dims=("y", "x"),
                              coords={"y": y, "x": x})
        truth = xr.DataArray(gt, dims=("y", "x"), coords={"y": y, "x": x})
        assert evaluate(scores, truth).n_anomaly == int(gt.sum())
        with pytest.raises(ParameterError, match="lie in different places"):
            evaluate(scores, truth.assign_coords(y=y + 15.0))


def test_the_truths_nodata_hint_is_given_only_when_nodata_left_pixels_out():
    """A truth without anomalies names its nodata value only when it left pixels out."""
    from hsad.outputs.metrics import check_truth

    with pytest.raises(ParameterError) as caught:
        check_truth(np.zeros((4, 4), np.uint8), nodata=255)
    assert str(caught.value) == ("the ground truth has no anomaly pixel: detection metrics "
                                 "are undefined")
    held = np.zeros((4, 4))
    held[0] = np.nan
    with pytest.raises(ParameterError, match=r"no anomaly pixel \(its nodata value, 255, "
                                             r"leaves 4 pixels out"):
        check_truth(held, nodata=255)


@pytest.mark.parametrize("base", [2**60, -(2**60), 2**63 + 5])
def test_64_bit_integer_scores_beyond_2_53_are_ranked_exactly(base):
    """Scores of 2**60 plus small integers all became one float64: a constant map, AUC 0.5
    in silence (sklearn ranks them: 0.680). They are shifted by their minimum first; a
    range itself wider than 2**53 warns that neighbours tie."""
    import warnings

    rng = np.random.default_rng(0)
    gt = rng.random(10000) < 0.02
    small = np.round(rng.normal(size=10000) * 3 + 2 * gt).astype(np.int64)
    dtype = np.uint64 if base > 2**62 else np.int64
    scores = (np.array(base, dtype=dtype) + small.astype(dtype)).reshape(100, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = evaluate(scores, gt.reshape(100, 100))
        want = evaluate(small.reshape(100, 100), gt.reshape(100, 100))
    assert got.auc_df == pytest.approx(roc_auc_score(gt, small), abs=1e-12)
    assert (got.auc_dt, got.auc_ft) == pytest.approx((want.auc_dt, want.auc_ft), abs=1e-12)
    holes = scores.copy()
    holes[:10] = 0  # a declared nodata of 0: left out, the others still exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        left = evaluate(xr.DataArray(holes, dims=("y", "x"), attrs={"nodata": 0}),
                        gt.reshape(100, 100))
    assert left.n_anomaly + left.n_background == 9000
    assert left.auc_df == pytest.approx(roc_auc_score(gt[1000:], small[1000:]), abs=1e-12)
    wide = np.array([-(2**62), 0, 1, 2**62], dtype=np.int64).reshape(2, 2)
    with pytest.warns(UserWarning, match="beyond 2\\*\\*53: neighbouring values tie"):
        evaluate(wide, np.array([[0, 0], [1, 1]]))


def test_a_map_with_x_before_y_is_read_by_name_beside_a_plain_array():
    """A DataArray with dimensions ("x", "y") beside a numpy truth was read position by
    position: a perfect square map scored AUC 0.742 in silence (two DataArrays were already
    aligned by name, and detectors read such a cube by name)."""
    rng = np.random.default_rng(0)
    s = rng.random((24, 24))
    gt = np.zeros((24, 24), bool)
    gt[5, 5] = gt[12, 17] = True
    s[gt] = 10
    by_name = xr.DataArray(s, dims=("y", "x")).transpose("x", "y")
    assert evaluate(by_name, gt).auc_df == 1.0
    assert evaluate(s, xr.DataArray(gt.T, dims=("x", "y"))).auc_df == 1.0
