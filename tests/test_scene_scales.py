"""Scenes on unusual scales: RX on values near float32's smallest numbers, detectors that
compute in float32 on data sitting on a huge offset, and cubes without a band."""

from __future__ import annotations

import numpy as np
import pytest

from hsad import datasets, detectors
from hsad.cube import good_band_mask, make_cube
from hsad.detectors.offset_check import check_sampled_offset
from hsad.engine.blas import working_scale
from hsad.errors import ParameterError


def _scene(seed: int = 0) -> np.ndarray:
    """40 x 40 x 20 correlated background with one 6-sigma pixel at (20, 20)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(20, 20))
    x = rng.normal(size=(40, 40, 20)) @ mix + 50.0
    x[20, 20] += 6.0 * mix.std() * np.sqrt(20)
    return x


def test_rx_scores_values_near_float32s_smallest_as_it_scores_them_at_unit_scale():
    """Values of 1e-37 (float64): the triangular factor (about 1e37) and the centred values
    (below float32's normal numbers) no longer fit float32; scored through a power-of-two
    scale, the map is the unit-scale map's. (It was all NaN, with exit status 0.)"""
    x = _scene()
    want = detectors.get("rx").fit_score(make_cube(x)).values
    tiny = detectors.get("rx").fit(make_cube(x * 1e-37))
    assert working_scale(tiny.triangular_) != 1.0
    got = tiny.score(make_cube(x * 1e-37)).values
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-3)  # float32 products over 20 bands


@pytest.mark.parametrize("factor", [1e-39, 1e37])
def test_local_mean_rx_scores_extreme_scales_as_at_unit_scale(factor):
    """Values of 1e-38 (or 1e38) and a 5x5 local mean: scored through RX's power-of-two
    scale, the map is the unit-scale map's (it was all NaN, with exit status 0)."""
    x = _scene()
    want = detectors.get("local-mean-rx", kernel=5).fit_score(make_cube(x)).values
    got = detectors.get("local-mean-rx", kernel=5).fit_score(make_cube(x * factor)).values
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-3)  # float32 products over 20 bands


@pytest.mark.parametrize("factor", [1e39, 1e-140])
def test_aed_scores_float64_values_beyond_float32s_range_as_at_unit_scale(factor):
    """float64 values of 1e39 became inf in AED's float32 cast ("fewer than 2 valid
    pixels"); values of 1e-140 became 0 (the offset check's refusal). Brought near 1 by a
    power of two first, they give the unit-scale map: the components are of standardised
    bands."""
    x = _scene()
    want = detectors.get("aed").fit_score(make_cube(x)).values
    got = detectors.get("aed").fit_score(make_cube(x * factor)).values
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_an_offset_refused_at_an_extreme_scale_is_named_in_the_data_s_units():
    """float32's steps are those at the scaled values, given back in the data's units
    (they had been the step of zero, 1.4e-45, to which the cast rounded 1e-130)."""
    rng = np.random.default_rng(1)
    x = (1e10 + 20 * rng.normal(size=(30, 30, 10))) * 1e-140
    with pytest.raises(ParameterError, match=r"\(band \d+: 1e-130 ± 2(\.\d+)?e-139\); aed "
                                             r"computes in float32, whose steps there are "
                                             r"1\.07e-137:"):
        detectors.get("aed").fit_score(make_cube(x))


def test_rx_on_float32_subnormal_values_gives_a_finite_map_with_the_anomaly_on_top():
    """float32 values of 1e-40 hold about 14 bits: RX still ranks the anomaly first."""
    x = (_scene() * 2e-42).astype(np.float32)
    got = detectors.get("rx").fit_score(make_cube(x)).values
    assert np.isfinite(got).all()
    assert np.unravel_index(np.argmax(got), got.shape) == (20, 20)


def test_ordinary_scales_are_scored_without_a_scale():
    """Scores of data on any ordinary scale keep their exact float32 path."""
    for factor in (1e-4, 1.0, 1e4):
        rx = detectors.get("rx").fit(make_cube(_scene() * factor))
        assert working_scale(rx.triangular_) == 1.0


@pytest.mark.parametrize("method", ["aed", "fanogan", "hadgan"])
@pytest.mark.parametrize("offset, dtype", [(1e10, np.float64), (4.29e9, np.uint32)])
def test_float32_detectors_refuse_data_on_a_huge_offset(method, offset, dtype):
    """1e10 + N(0, 1) in float64 (or uint32 near 2^32) is one value every 1024 units in
    float32: the maps were one value, with exit status 0. RX centres in float64 and scores
    the scene."""
    rng = np.random.default_rng(1)
    x = (offset + 20 * rng.normal(size=(30, 30, 10))).astype(dtype)
    with pytest.raises(ParameterError, match="offset .* times their spread.*float32"):
        detectors.get(method).fit_score(make_cube(x))
    rx = detectors.get("rx").fit_score(make_cube(x)).values
    assert np.unique(rx).size > 800


def test_the_offset_message_names_the_files_band_and_fine_detail_is_kept():
    """Bands are named by their number in the file (a bad band before them counted); an
    offset that leaves float32 dozens of steps a spread (longitudes -114.885 ± 0.0007, as
    in an AVIRIS-NG location file) is scored."""
    rng = np.random.default_rng(3)
    x = 5.0 + rng.normal(size=(30, 30, 6))
    x[:, :, 2:] += 1e7
    cube = make_cube(x, good_band=np.array([False, True, True, True, True, True]))
    with pytest.raises(ParameterError, match=r"\(band 4: 1e\+07"):
        detectors.get("aed").fit_score(cube)
    lon = -114.885 + 0.0007 * rng.normal(size=(30, 30, 2))
    lon[10, 10] += 0.01
    m = detectors.get("aed", variant="aed", area=9).fit_score(make_cube(lon)).values
    assert np.isfinite(m).all() and np.unique(m).size > 800


@pytest.mark.parametrize("method", ["rx", "utd", "rxd-utd", "cluster-rx"])
def test_float32_data_on_an_offset_score_as_float64_does(method):
    """1e4 + reflectance stored in float32 (a spread of 0.01 to 0.05 per band): the
    float32 mean, off by up to 5e-4 a band, moved RX's scores by a median 14 % (UTD's by
    115 %, Cluster RX's by 22 %) from float64's; AUC 0.9599 against 0.9624. The mean's
    residue is now taken off the centred values: within float32's rounding."""
    rng = np.random.default_rng(4)
    mix = rng.normal(size=(20, 20)) * 0.002
    x = (1e4 + 0.3 + rng.normal(size=(40, 40, 20)) @ mix).astype(np.float32)
    x[20, 20] += np.float32(0.05)
    cube = make_cube(x)
    got = detectors.get(method).fit_score(cube).values.astype(np.float64)
    want = detectors.get(method, dtype="float64").fit_score(cube).values
    # float32 products of centred values already rounded once (a step of 1e-3 at 1e4)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_rxd_utd_is_unchanged_by_the_working_scale():
    """RXD-UTD's linear term reads the scaled values too (it came out 1e12 times too large
    at a unit of 1e-12)."""
    x = _scene() * 1e-12
    det = detectors.get("rxd-utd").fit(make_cube(x))
    assert working_scale(det.triangular_) != 1.0
    got = det.score(make_cube(x)).values
    centred = x.reshape(-1, x.shape[2]) - det.mean_  # the exact scores, in float64
    want = (np.sum((centred @ det.triangular_.T) ** 2, axis=1)
            - centred @ np.asarray(det.direction_)).reshape(got.shape)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_one_nearly_constant_band_is_no_offset():
    """Reflectance in float64 with one band nearly constant: the median band decides."""
    rng = np.random.default_rng(2)
    x = 0.3 + 0.05 * rng.normal(size=(30, 30, 10))
    x[:, :, 3] = 0.5 + 1e-12 * rng.normal(size=(30, 30))
    check_sampled_offset(x, np.ones(10, bool), None, "aed")  # no error
    assert np.isfinite(detectors.get("aed").fit_score(make_cube(x)).values).all()


@pytest.mark.parametrize("shape", [(30, 30, 0), (0, 5, 3), (5, 0, 3)])
def test_a_cube_without_a_band_row_or_column_is_a_parameter_error(shape):
    with pytest.raises(ParameterError, match="at least one row, column and band"):
        detectors.get("rx").fit_score(np.zeros(shape))


def test_no_benchmark_scene_sits_on_an_offset(datasets_dir):
    """The offset rule refuses none of the real scenes."""
    for name in datasets.names():
        cube, _ = datasets.load(name, verify_sha256=False)
        check_sampled_offset(cube.data, good_band_mask(cube), cube.attrs.get("nodata"), name)


def test_values_too_small_to_square_are_named_as_such():
    """float64 values of 1e-310 square to 0: their covariance is zero, but the pixels are
    not alike, and the advice is to rescale (it was "every pixel alike")."""
    with pytest.raises(ParameterError, match="too small to square in float64.*multiply it by"):
        detectors.get("rx").fit(make_cube(_scene() * 1e-312))


@pytest.mark.parametrize("name", ["rx", "utd", "rxd-utd", "local-mean-rx", "lrx", "crd"])
def test_values_too_large_to_square_are_named_as_such(name):
    """float64 values of 5e161 square past float64's range: the streamed covariance was
    NaN and the fit said "every pixel alike"; it says the unit is too large, and by what
    to divide the scene."""
    with pytest.raises(ParameterError, match=rf"^{name}: the values \(about 5\.\de\+161\) are "
                       r"too large to square in float64.*\(divide it by 1e161\)$"):
        detectors.get(name).fit(make_cube(_scene() * 1e160))


def test_a_few_pixels_too_large_to_square_are_a_fill_value():
    """One pixel at -1e300 among ordinary ones overflows the covariance: a fill value."""
    x = _scene()
    x[3, 3] = -1e300
    with pytest.raises(ParameterError, match="too large to square in float64.*--nodata"):
        detectors.get("rx").fit(make_cube(x))
    rx = detectors.get("rx").fit(make_cube(x, nodata=-1e300))  # declared: scored
    assert np.isfinite(rx.cov_).all()


def test_cluster_rx_refuses_values_beyond_its_float32_sample():
    """Cluster RX samples in float32: values of 5e161 were inf there, and k-means raised
    sklearn's "Input X contains NaN"; a fill value beyond float32 is named as one."""
    with pytest.raises(ParameterError, match=r"^cluster-rx: values beyond float32's range.*"
                       r"the scene's unit.*\(divide it by 1e161\)$"):
        detectors.get("cluster-rx").fit(make_cube(_scene() * 1e160))
    x = _scene()
    x[3, 3] = -1e300
    with pytest.raises(ParameterError, match="float32's range.*--nodata VALUE"):
        detectors.get("cluster-rx").fit(make_cube(x))


def test_cluster_rx_scores_tiny_values_as_at_unit_scale_and_refuses_lost_ones():
    """Values of 5e-38: the triangular factors (about 1e37) overflowed float32 and every
    pixel scored NaN; through RX's power-of-two scale the map is the unit-scale map. Values
    of 5e-311 vanish in the float32 sample (they were "every pixel alike")."""
    x = _scene()
    want = detectors.get("cluster-rx").fit_score(make_cube(x)).values
    tiny = detectors.get("cluster-rx").fit(make_cube(x * 1e-39))
    assert working_scale(tiny.triangular_) != 1.0
    np.testing.assert_allclose(tiny.score(make_cube(x * 1e-39)).values, want, rtol=1e-3)
    with pytest.raises(ParameterError, match=r"too small for its float32 sample.*multiply it "
                       r"by 1e311"):
        detectors.get("cluster-rx").fit(make_cube(x * 1e-312))


def test_the_mean_residue_costs_a_pass_only_where_it_moves_scores():
    """The residue pass runs where float32's mean moves scores beyond float32's rounding
    (1e4 + reflectance), not on data of an ordinary scale (2000 ± 20), whose RX needs
    no more work than before."""
    from hsad.engine.blas import working_mean

    rng = np.random.default_rng(5)
    for level, spread, needed in ((2000.0, 20.0, False), (1e4, 0.01, True)):
        x = (level + spread * rng.normal(size=(30, 30, 20))).astype(np.float32)
        rx = detectors.get("rx").fit(make_cube(x))
        tri = np.asarray(rx.triangular_, np.float32)
        held, residue, shift = working_mean(rx.mean_, x.dtype, np.float32, 1.0, tri)
        assert (residue is not None) == needed and shift == 0.0
        _, none, shift = working_mean(rx.mean_, x.dtype, np.float32, 1.0, None, np.ones(20))
        assert none is None and shift == pytest.approx(float(np.sum(rx.mean_ - held)))


@pytest.mark.parametrize("method, params", [("hadgan", {}), ("fanogan", {"output": "d_ss"})])
def test_too_few_pixels_for_d_spectral_are_refused_before_any_training(method, params,
                                                                        tmp_path, capsys):
    """10 x 10 pixels for 120 bands: D_spectral's covariance is determined exactly, which
    was found only once the network had trained (22 s at one epoch for 30 x 30 x 1000)."""
    from cli_helpers import one_error

    from hsad.io.envi_writer import write_envi

    x = np.random.default_rng(0).normal(size=(10, 10, 120)).astype(np.float32)
    det = detectors.get(method, epochs=1, **params)
    with pytest.raises(ParameterError, match="D_spectral needs more valid pixels than "
                       "bands \\+ 1, and the scene has 100 for 120 bands"):
        det.fit_score(make_cube(x))
    assert not hasattr(det, "history_")  # no training ran
    holes = np.random.default_rng(1).normal(size=(12, 12, 120)).astype(np.float32)
    holes[:3, :10] = np.nan  # 144 pixels, 114 of them valid: counted on a small scene
    with pytest.raises(ParameterError, match="has 114 valid for 120 bands"):
        det.fit_score(make_cube(holes))
    assert not hasattr(det, "history_")
    scene = write_envi(make_cube(x), tmp_path / "s.img")
    line = one_error(["detect", scene, "-m", method, "-p", "epochs=1",
                      *[f"-p{k}={v}" for k, v in params.items()], "-o", tmp_path / "m.tif"],
                     capsys)
    assert "has 100 for 120 bands" in line and not (tmp_path / "m.tif").exists()


def test_a_score_without_d_spectral_is_not_refused_for_few_pixels():
    """f-AnoGAN's own score needs no residual covariance: 100 pixels of 120 bands score."""
    x = np.random.default_rng(0).normal(size=(10, 10, 120)).astype(np.float32)
    det = detectors.get("fanogan", epochs=1, hidden=4, sample_size=100)
    assert np.isfinite(det.fit_score(make_cube(x)).values).all()
