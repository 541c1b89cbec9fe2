"""Numerics: every registered detector on degenerate scenes (constant and all-NaN bands, one
valid pixel, one band, integers at their type's limits, bands of very different scale).

Each returns a finite map with NaN exactly at nodata, or raises a clear HsadError; none
returns an all-NaN or all-equal map. Degenerate statistics (fewer valid pixels than bands,
a singular covariance) warn with what to do.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hsad import detectors
from hsad.cube import make_cube, valid_mask
from hsad.detectors.neural import NeuralDetector
from hsad.engine.covariance import check_covariance, pinv_precision
from hsad.errors import DegenerateDataWarning, HsadError, ParameterError

ROWS, COLS, BANDS = 12, 12, 6
TINY_NN = dict(hidden=8, latent=2, epochs=2, batch_size=64, sample_size=256, progress=False,
               device="cpu", n_components=1, area=4, radius=1)
PARAMS = {
    "rx": {},
    "lrx": dict(inner=3, outer=7),
    "crd": dict(inner=3, outer=7),
    "hadgan": dict(TINY_NN, disc_hidden=8),
    "fanogan": dict(TINY_NN, depth=1, encoder_epochs=2),
}
ANOMALY = (6, 5)


def _background(bands=BANDS, seed=0) -> np.ndarray:
    """Correlated Gaussian background around 100, float64, with one anomalous pixel."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(bands, bands)) + 2 * np.eye(bands)
    x = 100.0 + rng.normal(size=(ROWS, COLS, bands)) @ mix
    x[ANOMALY] += 12.0 * np.sign(mix.sum(axis=0))
    return x


def constant_bands():
    x = _background()
    x[:, :, [1, 4]] = 7.0
    return make_cube(x.astype(np.float32))


def all_bands_constant():
    return make_cube(np.broadcast_to(np.arange(1.0, BANDS + 1), (ROWS, COLS, BANDS))
                     .astype(np.float32))


def nan_band():
    x = _background().astype(np.float32)
    x[:, :, 2] = np.nan
    return make_cube(x)


def nan_band_marked_bad():
    x = _background().astype(np.float32)
    x[:, :, 2] = np.nan
    good = np.ones(BANDS, bool)
    good[2] = False
    return make_cube(x, good_band=good)


def single_valid_pixel():
    x = np.full((ROWS, COLS, BANDS), np.nan, np.float32)
    x[4, 4] = np.arange(BANDS)
    return make_cube(x)


def fewer_pixels_than_bands():
    x = np.full((ROWS, COLS, BANDS), np.nan, np.float32)
    pts = [(3, 3), (3, 6), (6, 3), (6, 6)]  # in each other's rings (inner 3, outer 7)
    rng = np.random.default_rng(1)
    for p in pts:
        x[p] = rng.normal(size=BANDS) + 50
    return make_cube(x)


def one_band():
    return make_cube(_background(bands=1).astype(np.float32))


def _integers(dtype, top):
    """Background squeezed into the top of an integer type's range (noise ± ~600)."""
    x = _background()
    x = (x - x.max()) * 10
    return make_cube(np.clip(np.round(top + x), np.iinfo(dtype).min, top).astype(dtype))


def uint16_near_max():
    return _integers(np.uint16, 65535)


def int16_full_range():
    x = _background()
    x = (x - x.min()) / (x.max() - x.min()) * 65534 - 32767
    return make_cube(np.round(x).astype(np.int16))


def int32_near_max():
    return _integers(np.int32, 2**31 - 1)


def mixed_scales():
    """Radiance-like bands (~1e4) next to reflectance-like bands (~1e-3); the anomaly is in
    the small bands only."""
    x = _background(seed=2)
    x[ANOMALY] = 100.0 + np.random.default_rng(3).normal(size=BANDS)
    x[ANOMALY][3:] += 15.0
    x[:, :, :3] *= 100.0
    x[:, :, 3:] *= 1e-5
    return make_cube(x.astype(np.float32))


CASES = {f.__name__: f for f in (
    constant_bands, all_bands_constant, nan_band, nan_band_marked_bad, single_valid_pixel,
    fewer_pixels_than_bands, one_band, uint16_near_max, int16_full_range, int32_near_max,
    mixed_scales)}

#: cases in which there is nothing to detect: every detector must refuse them
REFUSED = {"all_bands_constant", "nan_band", "single_valid_pixel"}
#: detectors that score the pixels their global covariance comes from: with no more pixels
#: than bands + 1 their scores follow from the pixel count alone, so they refuse
EXACT_FIT = {"rx", "utd", "rxd-utd", "local-mean-rx", "cluster-rx"}

#: known failures, each with its reason (none today: keep the mechanism for the next one)
XFAIL: dict[tuple[str, str], str] = {}


def _neural(name: str) -> bool:
    return issubclass(detectors.available()[name], NeuralDetector)


def params_of(name: str) -> dict:
    """PARAMS, or for a neural detector without an entry the tiny settings it declares."""
    if name in PARAMS:
        return PARAMS[name]
    declared = detectors.available()[name].param_defaults() if _neural(name) else {}
    params = {k: v for k, v in TINY_NN.items() if k in declared}
    params.update({k: 2 for k in declared if k.endswith("epochs")})
    return params


def run(name: str, cube):
    """(map or None, HsadError or None, warnings) of ``fit_score`` on ``cube``."""
    det = detectors.get(name, **params_of(name))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return np.asarray(det.fit_score(cube).values, np.float64), None, caught
        except HsadError as exc:
            return None, exc, caught


def _params():
    for name in detectors.available():
        for case in CASES:
            marks = ()
            if (name, case) in XFAIL:
                marks = pytest.mark.xfail(strict=True, reason=XFAIL[name, case])
            if _neural(name):
                marks = (*([marks] if marks else []), pytest.mark.slow)
            yield pytest.param(name, case, marks=marks, id=f"{name}-{case}")


@pytest.mark.parametrize(("name", "case"), list(_params()))
def test_detector_gives_a_clean_map_or_a_clear_error(name, case):
    cube = CASES[case]()
    scores, error, _ = run(name, cube)
    if error is not None:
        assert str(error).strip() and "\n" not in str(error)
        # the exact-fit detectors and the networks (too few pixels to train on) may refuse
        # the scene with fewer pixels than bands; nothing else may be refused
        small = case == "fewer_pixels_than_bands"
        exact_fit = small and name in EXACT_FIT
        # (or, for the fused maps, too few for D_spectral: refused before any training)
        too_few = small and _neural(name) and any(why in str(error) for why in (
            "valid pixels to train on", "D_spectral needs more valid pixels than bands"))
        flattened = small and name == "aed" and "no more than the filters' area" in str(error)
        # values near 2³¹ with a spread of ~24: float32 (spacing 256) keeps none of it, and
        # the detectors computing in float32 refuse it (rx and the others centre in float64)
        in_float32 = (case == "int32_near_max" and (name == "aed" or _neural(name))
                      and "computes in float32" in str(error))
        assert case in REFUSED or exact_fit or too_few or flattened or in_float32, \
            f"{name} refused {case}: {error}"
        return
    assert case not in REFUSED, f"{name} scored a scene with nothing to detect"
    nodata = ~np.asarray(valid_mask(cube).values)
    finite = np.isfinite(scores)
    assert finite.any(), "all-NaN map"
    np.testing.assert_array_equal(~finite, nodata)  # NaN exactly at nodata
    # all equal but for rounding (n − 1 ± 1e-11 from an exactly determined covariance) counts
    assert np.ptp(scores[finite]) > 1e-6 * np.abs(scores[finite]).max(), "all-equal map"


# ---- what the RX-type detectors say and do on the degenerate cases -------------------------
@pytest.mark.parametrize("name", ["rx", "lrx", "crd"])
def test_refusals_say_what_is_wrong(name):
    _, err, _ = run(name, nan_band())
    assert isinstance(err, ParameterError)
    assert "band 3 (1-based) is not finite in any pixel; mark them bad" in str(err)
    _, err, _ = run(name, single_valid_pixel())
    assert "covariance of 1 valid pixel over 6 bands is zero" in str(err)
    # neither fewer bands nor a ridge helps one pixel (the advice had said both)
    assert str(err).endswith("give a scene of more than one valid pixel, or mark fewer "
                             "pixels nodata")
    _, err, _ = run(name, all_bands_constant())
    assert "every pixel alike" in str(err) and "pca=" in str(err)


@pytest.mark.parametrize("name", ["rx", "lrx"])
def test_singular_covariance_warns_with_advice(name):
    cases = [(constant_bands, "numerically singular")]
    if name == "lrx":  # its map comes from the rings: the scene's covariance only floors them
        cases.append((fewer_pixels_than_bands, "only 4 valid pixels for 6 bands"))
    for make, why in cases:
        scores, err, caught = run(name, make())
        assert err is None
        msgs = [str(w.message) for w in caught if w.category is DegenerateDataWarning]
        assert any(why in m and "pca=" in m and "larger scene" in m for m in msgs), msgs


@pytest.mark.parametrize("name", sorted(EXACT_FIT))
@pytest.mark.parametrize("pixels", [36, 51])  # n <= B, and n = B + 1 (full rank, still exact)
def test_an_exactly_determined_covariance_is_refused(name, pixels):
    """n ≤ B + 1 pixels in general position determine their covariance exactly: each of them
    has Mahalanobis distance n − 1 under it (the map would be constant but for rounding)."""
    x = np.random.default_rng(0).normal(size=(1, pixels, 50)) + 10
    with pytest.raises(ParameterError, match=f"only {pixels} valid pixels for 50 bands: they "
                       "determine the covariance exactly.*larger scene"):
        detectors.get(name).fit_score(make_cube(x.astype(np.float32)))
    # pixels repeated exactly lower the rank below n - 1, but the fit is still exact: a real
    # 15 x 15 window of abu-airport-1 (225 pixels, 194 distinct, 205 bands) scored the
    # repeat counts alone (224 and 111.5) with a warning
    repeated = np.concatenate([x, x[:, : pixels // 2]], axis=1)  # n > B + 1, m = pixels
    with pytest.raises(ParameterError, match="determine the covariance exactly"):
        detectors.get(name).fit_score(make_cube(repeated.astype(np.float32)))
    # a ridge keeps the scores apart: a map, with the warning
    if name != "cluster-rx":
        with pytest.warns(DegenerateDataWarning, match=f"only {pixels} valid pixels"):
            scores = detectors.get(name, ridge=0.1).fit_score(make_cube(x)).values
        assert np.ptp(scores) > 1e-3 * np.abs(scores).max()


@pytest.mark.parametrize("name", sorted(EXACT_FIT))
def test_an_exact_fit_is_refused_whatever_the_rank_cut_and_the_scene_size(name):
    """The rule counts distinct spectra against the live bands: a rank cut can count fewer
    directions than m - 1 (158 for 160 distinct pixels of a real hydice-urban window), and
    a few valid pixels in a large scene (a mostly-NaN scene, a small background area) are
    counted too (a 300 x 300 scene with 30 valid pixels, 10 spectra each thrice, scored
    9.0 everywhere)."""
    rng = np.random.default_rng(4)
    x = rng.normal(100.0, 5.0, (1, 40, 50))
    x[0, -1] = 0.5 * x[0, 0] + 0.5 * x[0, 1] + 1e-13  # affinely dependent to rounding
    with pytest.raises(ParameterError, match="determine the covariance exactly"):
        detectors.get(name).fit_score(make_cube(x))
    big = np.full((300, 300, 50), np.nan)
    spectra = rng.normal(100.0, 5.0, (10, 50))
    for i in range(30):
        big[7 * i, 3 * i] = spectra[i % 10]
    with pytest.raises(ParameterError, match="10 distinct spectra among them"):
        detectors.get(name).fit_score(make_cube(big.astype(np.float32)))


@pytest.mark.parametrize("name", sorted(EXACT_FIT))
def test_constant_bands_beside_few_pixels_are_not_an_exact_fit(name):
    """48 distinct pixels in 60 bands, 50 of them constant (zeroed absorption bands without
    a bad-band list): rank 10, far below 47, so the map is RX of the 10 live bands; a
    rule counting pixels against all bands refused it."""
    rng = np.random.default_rng(2)
    x = np.zeros((6, 8, 60), np.float32)
    x[:, :, :10] = rng.normal(100.0, 5.0, (6, 8, 10))
    x[2, 3, :10] += 40.0
    with pytest.warns(DegenerateDataWarning, match="rank 10 < 60"):
        scores = detectors.get(name).fit_score(make_cube(x)).values
    assert np.unique(np.round(scores, 6)).size == 48


@pytest.mark.parametrize("name", sorted(EXACT_FIT))
def test_copied_bands_beside_few_pixels_are_not_an_exact_fit(name):
    """30 distinct pixels in 50 bands, 40 of them copies of the first 10 (repeated, or
    rescaled with an offset, as a product that duplicates overlap bands): 10 independent
    bands, so 30 pixels are not an exact fit (RX's map is that of the 10); 30 pixels in 50
    independent bands still are."""
    rng = np.random.default_rng(4)
    base = rng.normal(100.0, 5.0, (5, 6, 10))
    base[2, 3] += 30.0
    copies = [base, base, 2.5 * base + 7.0, base * 0.5 - 3.0, base]
    x = np.concatenate(copies, axis=2).astype(np.float64)
    with pytest.warns(DegenerateDataWarning, match="rank 10 < 50"):
        scores = detectors.get(name).fit_score(make_cube(x)).values
    if name in ("rx", "local-mean-rx"):  # Mahalanobis distances: the copies change nothing
        alone = detectors.get(name).fit_score(make_cube(base)).values
        np.testing.assert_allclose(scores, alone, rtol=1e-6)
    assert np.unique(np.round(scores, 6)).size == 30
    independent = rng.normal(100.0, 5.0, (5, 6, 50))
    with pytest.raises(ParameterError, match="only 30 valid pixels for 50 bands"):
        detectors.get(name).fit_score(make_cube(independent))


def test_rx_ignores_constant_bands_exactly():
    # constant bands carry no information: RX equals RX of the other bands
    cube = constant_bands()
    keep = np.ones(BANDS, bool)
    keep[[1, 4]] = False
    with pytest.warns(DegenerateDataWarning):
        det = detectors.get("rx", dtype="float64").fit(cube)
    full = det.score(cube).values
    sub = detectors.get("rx", dtype="float64").fit_score(make_cube(cube.values[:, :, keep]))
    assert det.rank_ == 4
    np.testing.assert_allclose(full, sub.values, rtol=1e-9, atol=0)


def test_lrx_warns_when_its_rings_hold_fewer_pixels_than_bands():
    x = np.random.default_rng(0).normal(size=(12, 12, 30)).astype(np.float32)
    with pytest.warns(DegenerateDataWarning, match=r"lrx \(24-pixel rings\): only 24 valid "
                      r"pixels for 30 bands.*pca="):
        detectors.get("lrx", inner=5, outer=7, pca=None).fit(make_cube(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)  # pca=10 < 24: no warning
        detectors.get("lrx", inner=5, outer=7, pca=10).fit(make_cube(x))


def test_rx_is_exact_on_integers_near_their_limits():
    # float32 cannot hold int32 values near 2³¹ (spacing 256): RX centres them in float64
    for make in (uint16_near_max, int16_full_range, int32_near_max):
        cube = make()
        x = np.asarray(cube.values, np.float64).reshape(-1, BANDS)
        ref = np.einsum("ij,jk,ik->i", x - x.mean(0),
                        np.linalg.inv(np.cov(x.T, bias=True)), x - x.mean(0))
        got = detectors.get("rx").fit_score(cube).values.ravel()
        # float32 scores: the whitened residual carries ~κ(Σ)·u32 relative error
        kappa = np.linalg.cond(np.cov(x.T, bias=True))
        tol = 50 * np.sqrt(kappa) * np.finfo(np.float32).eps
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * ref.max(), err_msg=make.__name__)


def test_rx_is_scale_free_across_bands_of_very_different_scale():
    # RX is invariant to a per-band scaling: radiance ~1e4 beside reflectance ~1e-3 scores as
    # the same data in one unit, and the anomaly hidden in the small bands is found
    cube = mixed_scales()
    x = np.asarray(cube.values, np.float64)
    unit = x.copy()
    unit[:, :, :3] /= 100.0
    unit[:, :, 3:] /= 1e-5
    got = detectors.get("rx", dtype="float64").fit_score(cube).values
    ref = detectors.get("rx", dtype="float64").fit_score(make_cube(unit)).values
    # the inputs are float32: each band's values carry 2⁻²⁴ relative error, scaled by κ
    kappa = np.linalg.cond(np.cov(unit.reshape(-1, BANDS).T))
    np.testing.assert_allclose(got, ref, rtol=100 * kappa * np.finfo(np.float32).eps)
    assert np.unravel_index(np.argmax(got), got.shape) == ANOMALY


@pytest.mark.parametrize("name", ["lrx", "crd"])
def test_unit_dependent_detectors_warn_about_small_bands(name):
    # lrx's covariance floor and crd's Euclidean residual give them no weight
    with pytest.warns(DegenerateDataWarning, match="bands 4, 5, 6 .* one unit"):
        detectors.get(name, **PARAMS[name]).fit(mixed_scales())


def test_crd_warns_about_a_huge_offset():
    with pytest.warns(DegenerateDataWarning, match="crd: the data sit on an offset"):
        detectors.get("crd", **PARAMS["crd"]).fit(int32_near_max())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("crd", **PARAMS["crd"]).fit(uint16_near_max())


@pytest.mark.parametrize("name", ["lrx", "crd"])
def test_window_detectors_refuse_scenes_without_ring_pixels(name):
    x = _background()[:2, :2].astype(np.float32)  # all within the 3×3 guard window: no ring
    needed = "a valid pixel" if name == "crd" else "2 valid pixels"
    with pytest.raises(ParameterError, match=f"no valid pixel has {needed} in its ring"):
        detectors.get(name, inner=3, outer=7).fit(make_cube(x))
    x = _background().astype(np.float32)
    x[:, 6:] = np.nan
    x[10, 10] = 100.0  # a lonely valid pixel far from the others: NaN, with a warning
    fewer = "no valid pixel" if name == "crd" else "fewer than 2 valid pixels"
    with pytest.warns(DegenerateDataWarning, match=f"1 valid pixels have {fewer}"):
        scores = detectors.get(name, **PARAMS[name]).fit_score(make_cube(x)).values
    assert np.isnan(scores[10, 10]) and np.isfinite(scores[:, :6]).all()


def test_ring_advice_fits_the_windows():
    """On an 8 × 8 scene an outer window of 51 covers the scene from every pixel: crd's
    NaN pixels were told to "use a larger outer window", which cannot help; and lrx, whose
    guard window covered the scene, warned of a reduction to "1 leading principal
    components; set pca= below 0" before refusing it."""
    x = _background()[:8, :8].astype(np.float32)
    with pytest.warns(DegenerateDataWarning, match=r"windows 9/51\) and score NaN; use a "
                      r"smaller inner window \(the outer window covers the scene\)"):
        detectors.get("crd", inner=9, outer=51).fit_score(make_cube(x))
    lonely = _background().astype(np.float32)
    lonely[:, 6:] = np.nan
    lonely[10, 10] = 100.0  # far from the other valid pixels: a larger outer window reaches
    with pytest.warns(DegenerateDataWarning, match=r"windows 3/7\) and score NaN; use a "
                      r"larger outer or a smaller inner window"):
        detectors.get("crd", inner=3, outer=7).fit_score(make_cube(lonely))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(
            ParameterError, match="no valid pixel has 2 valid pixels in its ring"):
        warnings.simplefilter("always")
        detectors.get("lrx", inner=15, outer=31).fit(make_cube(x))
    assert not [w for w in caught if "pca= below" in str(w.message)]


def test_aed_refuses_a_scene_no_larger_than_its_filters_area():
    """The area opening and closing of a scene of at most ``area`` pixels flatten all of it:
    every pixel scored 4.0 (the component count) on a real 5 × 5 crop."""
    x = np.random.default_rng(1).normal(100.0, 5.0, (5, 5, 8)).astype(np.float32)
    for params in ({"variant": "aed"}, {"variant": "aed", "area": 25}):
        with pytest.raises(ParameterError, match="only 25 valid pixels, no more than the "
                           "filters' area.*larger scene"):
            detectors.get("aed", **params).fit_score(make_cube(x))
    for params in ({"variant": "aed", "area": 9}, {"variant": "multiscale"}):
        scores = detectors.get("aed", **params).fit_score(make_cube(x)).values
        assert np.ptp(scores) > 1e-6 * np.abs(scores).max(), params  # not all alike
    with pytest.raises(ParameterError, match="only 9 valid pixels"):
        detectors.get("aed").fit_score(make_cube(x[:3, :3]))


def test_lrx_leaves_a_pixel_with_one_ring_pixel_unscored():
    """One ring pixel gives no covariance (Σ = 0): its distance over the floor alone was
    ~1e7 on a cloud-masked real scene, ranking it first. It scores NaN, with a warning."""
    x = _background().astype(np.float32)
    x[:, 6:] = np.nan
    x[10, 10] = x[10, 8] = 100.0  # two valid pixels, each the other's only ring pixel
    with pytest.warns(DegenerateDataWarning, match="2 valid pixels have fewer than 2"):
        scores = detectors.get("lrx", inner=1, outer=5).fit_score(make_cube(x)).values
    assert np.isnan(scores[10, [8, 10]]).all() and np.isfinite(scores[:, :6]).all()


def test_pinv_precision_shares_the_rule():
    # the neural detectors' residual RX goes through pinv_precision: same warning and refusal
    cov = np.diag([1.0, 2.0, 0.0])
    with pytest.warns(DegenerateDataWarning, match="residual RX: the covariance is "
                      "numerically singular.*rank 2 < 3"):
        prec = pinv_precision(cov, what="residual RX")
    np.testing.assert_allclose(prec, np.diag([1.0, 0.5, 0.0]), atol=1e-15)
    with pytest.raises(ParameterError, match="zero"):
        pinv_precision(np.zeros((3, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        check_covariance(3, 3, n=10)  # full rank, enough pixels: silent


@pytest.mark.parametrize("name", ["rx", "utd", "local-mean-rx", "cluster-rx", "lrx", "crd"])
def test_an_undeclared_fill_value_warns_and_says_to_declare_it(name):
    """One pixel at -3.4e38 (a float fill value without nodata) dominates the statistics
    and flattens every other score; the warning names the cure (cluster RX, whose
    statistics come from a sample, said nothing)."""
    x = _background().astype(np.float32)
    x[0, 0] = -3.4028235e38
    with pytest.warns(DegenerateDataWarning, match="undeclared fill value.*--nodata"):
        detectors.get(name, **params_of(name)).fit(make_cube(x))
    with warnings.catch_warnings():  # declared, it is nodata: silent
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get(name, **params_of(name)).fit(make_cube(x, nodata=-3.4028235e38))


def _dark_band_scene(zero_share: float):
    """A uint16 scene with nodata 0 in which band 2 reads 0 (a real dark value) on a share
    of the pixels, every other band holding data there."""
    rng = np.random.default_rng(3)
    data = rng.integers(100, 4000, size=(40, 40, 6)).astype(np.uint16)
    dark = rng.random((40, 40)) < zero_share
    data[dark, 2] = 0
    return make_cube(data, nodata=0), dark


def test_pixels_with_the_nodata_value_in_some_bands_only_are_named():
    """The any-band nodata rule leaves such pixels out; when they are many it says so, with
    what to do, and scores the rest as before."""
    cube, dark = _dark_band_scene(0.3)
    with pytest.warns(DegenerateDataWarning, match=r"about 3\d% of the pixels hold the nodata "
                      r"value 0 in some good bands but data in others.*another --nodata"):
        scores = np.asarray(detectors.get("rx").fit_score(cube).values)
    np.testing.assert_array_equal(np.isnan(scores), dark)
    # a swath edge (every band 0) is nodata as meant: no warning
    data = np.asarray(cube.values).copy()
    data[dark] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("rx").fit_score(make_cube(data, nodata=0))


def test_pixels_with_nan_in_some_bands_only_are_named_with_the_bands():
    """The same rule for NaN: a band NaN in 60 % of the pixels left them out silently."""
    rng = np.random.default_rng(4)
    data = rng.normal(1.0, 0.1, size=(40, 50, 20)).astype(np.float32)
    data[:24, :, 5] = np.nan
    with pytest.warns(DegenerateDataWarning, match=r"about 60% of the pixels hold no finite "
                      r"value \(NaN or ±inf\) in some good bands.*mostly in band 6 \(1-based\)"):
        scores = np.asarray(detectors.get("rx").fit_score(make_cube(data)).values)
    assert np.isnan(scores[:24]).all() and np.isfinite(scores[24:]).all()
    data[:24] = np.nan  # whole pixels without data (a swath edge): no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("rx").fit_score(make_cube(data))


def test_a_band_that_is_the_nodata_value_everywhere_is_named():
    cube, _ = _dark_band_scene(1.0)
    _, err, _ = run("rx", cube)
    assert isinstance(err, ParameterError)
    assert ("no valid pixel: band 3 (1-based) is the nodata value 0 (or not finite) in every "
            "pixel; mark them bad") in str(err)


@pytest.mark.parametrize("name", ["hadgan", "vae", "cluster-rx"])
def test_a_band_without_data_is_named_by_the_sampling_detectors_too(name):
    """They said "the scene is all nodata" where RX named the band to mark bad."""
    data = np.random.default_rng(5).normal(size=(12, 14, 8)).astype(np.float32)
    data[:, :, 3] = np.nan
    with pytest.raises(ParameterError, match=r"band 4 \(1-based\) is not finite in any "
                       r"pixel; mark them bad"):
        detectors.get(name, **({"epochs": 1} if name != "cluster-rx" else {})).fit(
            make_cube(data))
    with pytest.raises(ParameterError, match="the file holds no data"):
        detectors.get(name, **({"epochs": 1} if name != "cluster-rx" else {})).fit(
            make_cube(np.full((12, 14, 8), np.nan, np.float32)))
    area = np.zeros((12, 14), bool)
    area[:6, :7] = True  # a training area: the dead band is still named
    with pytest.raises(ParameterError, match=r"band 4 \(1-based\) is not finite"):
        detectors.get(name, **({"epochs": 1} if name != "cluster-rx" else {})).fit(
            make_cube(data), background=area)
    striped = np.random.default_rng(6).normal(size=(12, 14, 8)).astype(np.float32)
    striped.reshape(-1, 8)[np.arange(12 * 14), np.arange(12 * 14) % 8] = np.nan
    for det in (detectors.get(name, **({"epochs": 1} if name != "cluster-rx" else {})),
                detectors.get("rx")):  # no band dead, no pixel whole: said so, not "all nodata"
        with pytest.raises(ParameterError, match="no pixel holds data in every good band"):
            det.fit(make_cube(striped))


def test_a_file_of_nodata_alone_is_named_as_such():
    """Every band the nodata value everywhere: the message listed every band as one to mark
    bad, which is no remedy; it says the file holds no data."""
    data = np.full((6, 7, 12), -9999.0, dtype=np.float32)
    _, err, _ = run("rx", make_cube(data, nodata=-9999.0))
    assert isinstance(err, ParameterError) and "mark them bad" not in str(err)
    assert ("no valid pixel: every pixel is the nodata value -9999 or not finite in every "
            "band, so the file holds no data to analyse") in str(err)


@pytest.mark.parametrize(("name", "params"), [("cluster-rx", {}), ("hadgan", {"epochs": 1}),
                                              ("aed", {})])
def test_every_kind_of_detector_warns_of_partial_nodata(name, params):
    """Detectors that sample pixels (cluster RX, the networks) check it too."""
    cube, _ = _dark_band_scene(0.3)
    with pytest.warns(DegenerateDataWarning, match="in some good bands but data in others"):
        detectors.get(name, **params).fit_score(cube)


def _few_per_band(pixels: int, bands: int = 60) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.normal(size=(1, pixels, bands)) + np.linspace(0, 5, bands)).astype(np.float32)


def test_rx_warns_below_four_pixels_a_band_and_its_scores_are_so_bounded():
    """120 pixels for 60 bands (AVIRIS-NG crops of 750 pixels for 425 bands scored 189–707
    in silence): no in-sample Mahalanobis distance exceeds n − 1, and they average the rank,
    so the most anomalous pixel stands at most n/r times above the mean."""
    with pytest.warns(DegenerateDataWarning, match=r"rx: only 120 valid pixels for 60 bands "
                      r"\(fewer than 4 per band\): a covariance so estimated flattens the "
                      r"scores \(the RX score of any of these pixels is at most 119, against "
                      r"a mean of 60\).*larger scene"):
        scores = np.asarray(detectors.get("rx").fit_score(make_cube(_few_per_band(120))))
    assert scores.max() <= 119 * (1 + 1e-5) and scores.mean() == pytest.approx(60, rel=1e-4)
    with warnings.catch_warnings():  # 4 pixels a band: silent
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("rx").fit_score(make_cube(_few_per_band(240)))
    with warnings.catch_warnings():  # a ridge keeps the bound off: silent as before
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("rx", ridge=0.1).fit_score(make_cube(_few_per_band(120)))


@pytest.mark.slow
def test_a_networks_d_spectral_is_checked_as_rx_checks_its_scene():
    """HADGAN's D_spectral is RX of the residual over the scene's bands: on 7 × 7 × 60 it
    was 48 ± 1e-5 everywhere (with a warning about collinear bands only), and on fewer than
    4 pixels a band it was bounded as RX is, in silence."""
    tiny = {k: v for k, v in PARAMS["hadgan"].items() if k != "area"}  # the ladder's own
    tiny.update(output="d_spectral", n_components=2)
    exact = make_cube(_few_per_band(49).reshape(7, 7, 60))
    det = detectors.get("hadgan", **tiny)
    with pytest.raises(ParameterError, match=r"D_spectral needs more valid pixels than bands "
                       r"\+ 1, and the scene has 49 for 60 bands"):
        det.fit_score(exact)  # before any training (row 787)
    det.fit(exact)  # a fit alone (`hsad train`) is not refused: another scene may be scored
    with pytest.raises(ParameterError, match=r"D_spectral \(RX of the network's residual\): "
                       r"only 49 valid pixels for 60 bands: they determine the covariance "
                       r"exactly.*hsad.select_bands\) or give a larger scene$"):
        det.score(exact)
    for output in ("d_spectral", "d_ss"):  # the fused map warns too
        with pytest.warns(DegenerateDataWarning, match=r"D_spectral \(RX of the network's "
                          r"residual\): only 120 valid pixels for 60 bands \(fewer than 4 "
                          r"per band\).*or give a larger scene$"):
            det = detectors.get("hadgan", **dict(tiny, output=output))
            scores = np.asarray(det.fit_score(make_cube(_few_per_band(120).reshape(10, 12,
                                                                                   60))))
        if output == "d_spectral":
            assert scores.max() <= 119 * (1 + 1e-4)


@pytest.mark.parametrize("method", ["rx", "aed"])
def test_a_window_without_data_is_said_to_be_the_window_not_the_file(tmp_path, capsys,
                                                                      method):
    """--srcwin over a corner of nodata said "the file holds no data (an empty product?)"
    of a file whose other pixels hold data."""
    import rasterio
    from cli_helpers import one_error, run_cli
    from rasterio.transform import from_origin

    data = np.random.default_rng(0).normal(100, 5, (10, 40, 40)).astype(np.float32)
    data[:, :20, :20] = -9999
    path = tmp_path / "corner.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=10,
                       dtype="float32", nodata=-9999, crs="EPSG:32633",
                       transform=from_origin(500000, 4000000, 30, 30)) as dst:
        dst.write(data)
    line = one_error(["detect", path, "-m", method, "-o", tmp_path / "w.tif", "--srcwin",
                      "5", "2", "10", "12"], capsys)
    assert ("not finite in every band of the window read (rows 2:14, columns 5:15), so it "
            "holds no data to analyse") in line and "the file holds" not in line
    code, _, err = run_cli(["detect", path, "-m", method, "-o", tmp_path / "w.tif",
                            "--srcwin", "10", "10", "20", "20"], capsys)
    assert code == 0, err
