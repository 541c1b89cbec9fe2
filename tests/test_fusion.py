"""The spatial–spectral fusion stage on hand-made residuals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from hsad import fusion as F
from hsad.errors import ParameterError


def _residual(rows=40, cols=40, bands=6, seed=0):
    rng = np.random.default_rng(seed)
    # band b has energy growing with b: bands 0, 1, 2 carry the least
    scale = np.arange(1, bands + 1, dtype=np.float64)
    return np.abs(rng.normal(size=(rows, cols, bands))) * scale


def test_min_energy_bands_are_the_lowest_energy_bands():
    res = _residual()
    res = res[:, :, [4, 0, 5, 2, 3, 1]]  # shuffle: low-energy bands now sit at 1, 5, 3
    assert F.min_energy_bands(res, 3).tolist() == [1, 3, 5]
    energy = F.band_energy(res)
    np.testing.assert_allclose(energy, res.sum(axis=(0, 1)))


def test_band_energy_ignores_nodata_pixels():
    res = _residual()
    res[0, 0, :] = np.nan
    expected = np.nansum(np.asarray(res, np.float64), axis=(0, 1))
    assert np.isfinite(expected).all() and np.abs(expected).min() > 0
    np.testing.assert_allclose(F.band_energy(res), expected, rtol=1e-12)


def _blob_image():
    img = np.zeros((40, 40))
    img[5:7, 5:7] = 1.0  # small bright blob: 4 pixels
    img[20:32, 20:32] = 1.0  # large flat bright region: 144 pixels
    img[10:12, 30:32] = -1.0  # small dark blob
    return img


def test_attribute_filter_picks_small_blobs_and_ignores_large_regions():
    out = F.attribute_filter(_blob_image(), area=25, levels=256)
    assert out[5:7, 5:7].min() > 0.4  # bright blob: opening removes it
    assert out[10:12, 30:32].min() > 0.4  # dark blob: closing fills it
    assert out[20:32, 20:32].max() == 0.0  # larger than the area threshold: untouched
    assert out[0:3, 35:40].max() == 0.0  # flat background


def test_attribute_filter_area_threshold_decides():
    img = _blob_image()
    assert F.attribute_filter(img, area=200)[20:32, 20:32].min() > 0.4
    assert F.attribute_filter(img, area=3)[5:7, 5:7].max() == 0.0


def test_guided_filter_keeps_a_constant_image_constant():
    const = np.full((30, 30), 0.7)
    out = F.guided_filter(const, const, radius=3, eps=0.01)
    np.testing.assert_allclose(out, 0.7, atol=1e-12)
    guide = np.random.default_rng(1).random((30, 30))
    np.testing.assert_allclose(F.guided_filter(guide, const, radius=3, eps=0.01), 0.7,
                               atol=1e-12)


def test_guided_filter_preserves_edges_where_a_box_filter_blurs():
    step = np.zeros((30, 30))
    step[:, 15:] = 1.0
    noisy = step + np.random.default_rng(2).normal(0, 0.05, step.shape)
    out = F.guided_filter(step, noisy, radius=3, eps=1e-3)
    box = uniform_filter(noisy, size=7)
    edge_out = out[:, 15].mean() - out[:, 14].mean()
    edge_box = box[:, 15].mean() - box[:, 14].mean()
    assert edge_out > 0.9 and edge_box < 0.4
    # and it smooths the flat parts
    assert out[:, 3:10].std() < noisy[:, 3:10].std() / 2


def test_aed_filters_the_summed_responses_as_the_sum_of_filtered_ones():
    """The guided filter is linear in its input for a fixed guide: D_spatial filters the
    components' summed responses once, and equals the AED sum of per-component filters."""
    rng = np.random.default_rng(3)
    comps = uniform_filter(rng.normal(size=(40, 50, 3)), (3, 3, 1))
    comps[5, 7, :] = np.nan
    areas = (9, 25)
    guide = F._nan_fill(F.normalise_map(comps[:, :, 0]))
    per_component = sum(F.guided_filter(guide, np.mean([F.attribute_filter(
        comps[:, :, i], a) for a in areas], axis=0), radius=2, eps=1e-3) for i in range(3))
    got = F.spatial_aed(comps, area=areas, radius=2, eps=1e-3)
    assert np.isnan(got[5, 7])
    per_component[5, 7] = np.nan
    np.testing.assert_allclose(got, per_component, rtol=1e-10, atol=1e-12)
    p, q = rng.random((40, 50)), rng.random((40, 50))
    np.testing.assert_allclose(F.guided_filter(guide, 2 * p + q, 2, 1e-3),
                               2 * F.guided_filter(guide, p, 2, 1e-3)
                               + F.guided_filter(guide, q, 2, 1e-3), rtol=1e-10, atol=1e-12)


def test_spectral_rx_is_the_mahalanobis_distance_of_the_residual():
    res = _residual(20, 20, 5)
    res[3, 4] = np.nan
    d = F.spectral_rx(res)
    x = res.reshape(-1, 5)
    ok = np.isfinite(x).all(axis=1)
    mu = x[ok].mean(axis=0)
    cov = (x[ok] - mu).T @ (x[ok] - mu) / ok.sum()
    ref = np.einsum("ij,jk,ik->i", x - mu, np.linalg.pinv(cov), x - mu).reshape(20, 20)
    assert np.isnan(d[3, 4])
    np.testing.assert_allclose(d[np.isfinite(d)], ref[np.isfinite(d)], rtol=1e-6)


def test_normalise_map_minmax_and_rank():
    m = np.array([[1.0, 3.0], [np.nan, 5.0]])
    np.testing.assert_allclose(F.normalise_map(m, "minmax")[[0, 0, 1], [0, 1, 1]], [0, 0.5, 1])
    r = F.normalise_map(m, "rank")
    assert np.isnan(r[1, 0]) and r[1, 1] == 1.0 and r[0, 0] == pytest.approx(1 / 3)
    with pytest.raises(ParameterError):
        F.normalise_map(m, "zscore")


def _scene_and_residual():
    rng = np.random.default_rng(3)
    cube = rng.normal(size=(32, 32, 8)).cumsum(axis=2)
    cube[10:12, 10:12] += 5.0
    res = np.abs(rng.normal(size=(32, 32, 8)))
    res[10:12, 10:12] += 3.0
    return cube, res


@pytest.mark.parametrize("variant", ["aed", "paper"])
def test_lambda_extremes_give_each_detector_alone(variant):
    cube, res = _scene_and_residual()
    for norm in ("minmax", "rank"):
        at0 = F.Fusion(variant=variant, lam=0.0, norm=norm).stages(res, cube)
        at1 = F.Fusion(variant=variant, lam=1.0, norm=norm).stages(res, cube)
        np.testing.assert_allclose(at0["d_ss"], F.normalise_map(at0["d_spectral"], norm))
        np.testing.assert_allclose(at1["d_ss"], F.normalise_map(at1["d_spatial"], norm))
        half = F.Fusion(variant=variant, lam=0.5, norm=norm).stages(res, cube)
        np.testing.assert_allclose(half["d_ss"], 0.5 * (at0["d_ss"] + at1["d_ss"]))


@pytest.mark.parametrize("variant", ["aed", "paper"])
def test_spatial_detectors_find_a_small_implanted_object(variant):
    cube, res = _scene_and_residual()
    d = F.Fusion(variant=variant).spatial(res, cube)
    assert d[10:12, 10:12].min() > np.quantile(d, 0.95)


def test_nodata_pixels_stay_nan_in_every_stage():
    cube, res = _scene_and_residual()
    cube[0, 5] = np.nan
    res[0, 5] = np.nan
    stages = F.Fusion().stages(res, cube)
    for name, m in stages.items():
        assert np.isnan(m[0, 5]), name
        assert np.isfinite(np.delete(m.ravel(), 5)).all(), name


def test_paper_variant_uses_the_minimum_energy_bands():
    _, res = _scene_and_residual()
    res[:, :, :5] += 10.0  # bands 5, 6, 7 now have the least energy
    res[20:22, 4:6, 5:] += 4.0  # a blob visible only in them
    d = F.spatial_paper(res, n_components=3, area=25)
    assert d[20:22, 4:6].min() > np.quantile(d, 0.97)


def test_fusion_rejects_bad_parameters():
    res = np.ones((8, 8, 3))
    for bad in ({"variant": "x"}, {"lam": 1.5}, {"norm": "z"}, {"area": 0}, {"eps": 0},
                {"pc_source": "pca"}, {"levels": 1}):
        with pytest.raises(ParameterError):
            F.Fusion(**bad).stages(res, res)


def test_library_defaults_are_the_documented_sweep_choice():
    """docs/fusion_choice.md (benchmarks/choose_fusion.py) names the chosen setting; HADGAN's
    defaults must be that setting."""
    import ast
    import re
    from pathlib import Path

    from hsad.detectors.hadgan import HADGAN

    doc = Path(__file__).resolve().parents[1] / "docs" / "fusion_choice.md"
    match = re.search(r"HADGAN parameters `(\{.*?\})`", doc.read_text(encoding="utf-8"))
    assert match, "fusion_choice.md lacks the chosen HADGAN parameters"
    chosen = ast.literal_eval(match.group(1))
    # lam, n_components, area, radius and eps default to None: the variant's own defaults
    resolved = HADGAN().fusion_()
    defaults = {**HADGAN.param_defaults(), **{k: getattr(resolved, k) for k in (
        "lam", "n_components", "area", "radius", "eps", "spectral_tophat")}}
    assert {k: defaults[k] for k in chosen} == chosen
    assert F.Fusion().resolved() == F.Fusion(
        variant=chosen["fusion"], lam=chosen["lam"], n_components=chosen["n_components"],
        area=chosen["area"], levels=chosen["levels"], radius=chosen["radius"],
        eps=chosen["eps"], norm=chosen["fusion_norm"],
        pc_source=chosen.get("pc_source", "cube"),
        spectral_tophat=chosen.get("spectral_tophat", False))


def test_spectral_tophat_keeps_small_bright_blobs_and_drops_large_structures():
    d = np.ones((60, 60))
    d[10, 10] = 9.0  # one pixel: smaller than every area
    d[30:50, 30:50] = 9.0  # 400 pixels: larger than every area
    d[5:8, 40:43] = 5.0  # 9 pixels: removed by the areas 25 to 225, kept by 9
    d[0, 0] = np.nan
    # quantised to 0…255 between 1 and 9: the pixel and the block 255, the blob 128
    t = F.spectral_tophat(d, F.ladder(225))
    assert np.isnan(t[0, 0]) and np.isfinite(t[1:, 1:]).all()
    assert t[10, 10] == pytest.approx(1.0)
    assert np.abs(t[30:50, 30:50]).max() == 0
    assert t[6, 41] == pytest.approx(4 * 128 / (5 * 255))
    assert t[20:28, 5:25].max() == 0  # the flat background


def test_d_ss_fuses_the_spectral_tophat_by_default_in_the_multiscale_variant():
    rng = np.random.default_rng(3)
    residual = np.abs(rng.normal(size=(40, 44, 5)))
    residual[8, 9] += 6.0
    cube = rng.normal(size=(40, 44, 5))
    assert F.Fusion().resolved().spectral_tophat is True
    assert F.Fusion(variant="aed").resolved().spectral_tophat is False
    assert F.Fusion(variant="paper").resolved().spectral_tophat is False
    for fusion in (F.Fusion(area=25), F.Fusion(area=25, spectral_tophat=False),
                   F.Fusion(variant="aed", area=9, spectral_tophat=True)):
        f = fusion.resolved()
        out = f.stages(residual, cube)
        term = (F.spectral_tophat(out["d_spectral"], f.areas()) if f.spectral_tophat
                else out["d_spectral"])
        np.testing.assert_allclose(out["d_ss"], F.fuse(out["d_spatial"], term, f.lam))
    with pytest.raises(ParameterError, match="spectral_tophat"):
        F.Fusion(spectral_tophat="yes").resolved()


def test_paper_variant_is_methods_section_1_on_a_hand_computed_case():
    """One bright residual pixel in 3 low-energy bands, plus a flat high-energy band.

    METHODS.md §1: the 3 minimum-energy bands (the flat band is left out), area filters
    (the pixel is a 1-pixel peak: D_f = 1 there, 0 elsewhere, in every band), their mean
    F = δ, then a guided filter guided by F with r = 3, ε = 0.5. Every 7×7 window holding
    the pixel has mean m = 1/49 and variance m − m², so a = (m − m²)/(m − m² + ε),
    b = m(1 − a); at the pixel q = a + b, and at offset (i, j) q = b·(7−|i|)(7−|j|)/49.
    """
    res = np.zeros((15, 15, 4))
    res[7, 7, [0, 1, 3]] = 1.0
    res[:, :, 2] = 1.0  # energy 225: not among the 3 minimum-energy bands
    paper = F.Fusion(variant="paper")
    assert (paper.resolved().n_components, paper.resolved().radius,
            paper.resolved().eps) == (3, 3, 0.5)
    got = paper.spatial(res)
    m = 1 / 49
    a = (m - m * m) / (m - m * m + 0.5)
    b = m * (1 - a)
    i = np.abs(np.arange(15) - 7)
    reach = np.clip(7 - i, 0, None)
    expected = b * np.outer(reach, reach) / 49
    expected[7, 7] = a + b
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # the AED variant keeps its own (sweep) defaults and gives another map
    assert F.Fusion(variant="aed").resolved().radius == 1
    assert not np.allclose(F.Fusion(variant="paper", radius=1, eps=1e-3).spatial(res), got)


def test_detectors_take_the_variant_defaults_unless_given():
    from hsad import detectors

    fusion = detectors.get("hadgan", fusion="paper").fusion_()
    assert (fusion.lam, fusion.n_components, fusion.area, fusion.radius, fusion.eps) == (
        0.5, 3, 25, 3, 0.5)
    assert detectors.get("hadgan", fusion="paper", radius=2).fusion_().radius == 2
    default = detectors.get("fanogan").fusion_()
    assert default.variant == "multiscale"
    assert (default.lam, default.n_components, default.area, default.radius,
            default.eps) == (0.4, 4, 225, 1, 0.001)
    assert detectors.get("fanogan", lam=0.7).fusion_().lam == 0.7
    aed = detectors.get("fanogan", fusion="aed").fusion_()
    assert (aed.lam, aed.n_components, aed.area, aed.radius, aed.eps) == (0.5, 4, 36, 1, 0.001)
