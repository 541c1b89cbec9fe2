"""HADGAN: training, determinism, persistence, model checks and the ``hsad train`` command."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.io
import torch
from scipy.ndimage import gaussian_filter
from sklearn.metrics import roc_auc_score

from hsad import detectors
from hsad.cube import make_cube
from hsad.engine.covariance import mahalanobis, pinv_precision
from hsad.errors import DegenerateDataWarning, ModelError, ParameterError
from hsad.nn.persistence import load_detector, save_detector

# small and quick: a few hundred optimiser steps on tiny networks
FAST = dict(hidden=32, latent=1, epochs=30, batch_size=128, progress=False, device="cpu",
            n_components=2, area=9, radius=2)


def curved_scene(rows=32, cols=32, bands=30, seed=0, nodata_pixels=()):
    """A scene whose background spectra lie on a curve (a half circle in spectral space,
    its position varying smoothly over the image): the Gaussian that RX fits puts the
    scene mean at the lowest score, so 2×2 targets whose spectrum is the scene mean are
    invisible to RX, while a model of the curve cannot rebuild them. Returns (cube, truth)."""
    rng = np.random.default_rng(seed)
    t = gaussian_filter(rng.normal(size=(rows, cols)), 4)
    t = np.pi * (t - t.min()) / (t.max() - t.min())
    wl = np.linspace(0, 1, bands)
    a = np.sin(2 * np.pi * wl)[None, None, :]
    b = np.cos(3 * np.pi * wl)[None, None, :]
    cube = 5.0 + np.cos(t)[..., None] * a + np.sin(t)[..., None] * b
    cube += rng.normal(0, 0.03, cube.shape)
    truth = np.zeros((rows, cols), bool)
    for r, c in [(5, 6), (12, 25), (22, 9), (27, 27), (17, 16)]:
        truth[r:r + 2, c:c + 2] = True
    mean = cube[~truth].mean(axis=0)
    cube[truth] = mean + rng.normal(0, 0.03, (truth.sum(), bands))
    for r, c in nodata_pixels:
        cube[r, c] = -9999.0
    data = cube.astype(np.float32)
    return make_cube(data, nodata=-9999.0 if nodata_pixels else None,
                     wavelength=400 + 2000 * wl), truth


def rx_scores(cube) -> np.ndarray:
    x = np.asarray(cube.values, dtype=np.float64).reshape(-1, cube.shape[2])
    mu = x.mean(axis=0)
    cov = (x - mu).T @ (x - mu) / len(x)
    return mahalanobis(x, mu, pinv_precision(cov)).reshape(cube.shape[:2])


@pytest.fixture(scope="module")
def scene():
    return curved_scene()


@pytest.fixture(scope="module")
def fitted(scene):
    cube, _ = scene
    det = detectors.get("hadgan", **FAST, seed=7)
    scores = det.fit_score(cube)
    return det, scores


def test_hadgan_beats_rx_on_a_curved_background(scene, fitted):
    cube, truth = scene
    det, scores = fitted
    auc_rx = roc_auc_score(truth.ravel(), rx_scores(cube).ravel())
    auc = roc_auc_score(truth.ravel(), scores.values.ravel())
    assert auc_rx < 0.6 < 0.95 < auc
    assert scores.dims == ("y", "x") and scores.dtype == np.float32
    np.testing.assert_array_equal(scores["x"], cube["x"])
    losses = det.history_.losses
    assert len(losses["loss_r"]) == FAST["epochs"]
    assert losses["loss_r"][-1] < 0.5 * losses["loss_r"][0]
    assert {"adv_z", "adv_i", "loss_d", "loss_ziz", "loss_shrink"} <= set(losses)


def test_every_stage_is_returned_and_d_spectral_alone_beats_rx(scene, fitted):
    cube, truth = scene
    det, scores = fitted
    stages = det.stages_
    assert set(stages) == {"residual", "d_spectral", "d_spatial", "d_ss", "score"}
    assert stages["residual"].dims == ("y", "x", "band")
    assert stages["residual"].shape == cube.shape
    np.testing.assert_array_equal(stages["d_ss"].values, scores.values)
    auc_spec = roc_auc_score(truth.ravel(), stages["d_spectral"].values.ravel())
    assert auc_spec > 0.85
    fusion = det.fusion_()  # the variant's own defaults where the parameters are None
    from hsad.fusion import normalise_map

    norm, lam = det.fusion_norm, fusion.lam
    term = fusion.spectral_term(stages["d_spectral"].values)  # its area top-hat
    assert fusion.spectral_tophat and not np.allclose(term, stages["d_spectral"].values)
    expected = (lam * normalise_map(stages["d_spatial"].values, norm)
                + (1 - lam) * normalise_map(term, norm))
    np.testing.assert_allclose(stages["d_ss"].values, expected, rtol=1e-5, atol=1e-6)


def test_same_seed_gives_identical_maps(scene, fitted):
    cube, _ = scene
    _, scores = fitted
    again = detectors.get("hadgan", **FAST, seed=7).fit_score(cube)
    np.testing.assert_array_equal(again.values, scores.values)
    quick = {**FAST, "epochs": 2}
    seed8 = detectors.get("hadgan", **quick, seed=8).fit_score(cube)
    seed7 = detectors.get("hadgan", **quick, seed=7).fit_score(cube)
    assert not np.array_equal(seed8.values, seed7.values)


def test_save_load_and_detect_reproduce_the_map(tmp_path, scene, fitted):
    cube, _ = scene
    det, scores = fitted
    path = save_detector(det, tmp_path / "model.hsad")
    loaded = load_detector(path)
    assert loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.score(cube).values, scores.values)
    np.testing.assert_array_equal(loaded.wavelength_, det.wavelength_)
    assert loaded.history_.losses == det.history_.losses
    assert not list(tmp_path.glob("*.part"))


def test_model_refuses_a_scene_with_another_band_count(scene, fitted):
    det, _ = fitted
    other, _ = curved_scene(bands=24)
    with pytest.raises(ModelError, match="expects 30 bands but the scene has 24"):
        det.score(other)


def test_model_checks_wavelengths(scene, fitted):
    cube, _ = scene
    det, scores = fitted
    shifted = cube.assign_coords(wavelength=cube["wavelength"] + 5.0)
    with pytest.warns(UserWarning, match="wavelengths differ"):
        det.score(shifted)
    far = cube.assign_coords(wavelength=cube["wavelength"] + 50.0)
    with pytest.raises(ModelError, match="different band set"):
        det.score(far)


def test_bad_bands_are_dropped_and_nodata_gets_nan():
    cube, truth = curved_scene(nodata_pixels=[(0, 0), (10, 3)])
    good = np.ones(cube.shape[2], bool)
    good[[0, 5]] = False
    cube = cube.assign_coords(good_band=("band", good))
    det = detectors.get("hadgan", **{**FAST, "epochs": 3}, seed=1)
    scores = det.fit_score(cube).values
    assert det.n_bands_ == 28 and det.n_train_ == 32 * 32 - 2
    assert np.isnan(scores[0, 0]) and np.isnan(scores[10, 3])
    assert np.isfinite(scores).sum() == 32 * 32 - 2


def test_large_scenes_train_on_a_sample(scene):
    cube, _ = scene
    det = detectors.get("hadgan", **{**FAST, "epochs": 1}, sample_size=200, seed=0)
    det.fit(cube)
    assert det.n_train_ == 200 and det.history_.epochs == 1


def test_patch_mode_trains_and_detects(scene):
    cube, truth = scene
    det = detectors.get("hadgan", **FAST, input="patch", patch=3, seed=2)
    scores = det.fit_score(cube)
    assert det.networks_["encoder"].front.conv[0].kernel_size == (3, 3)
    assert roc_auc_score(truth.ravel(), scores.values.ravel()) > 0.9


def test_bad_parameters_are_refused(scene):
    cube, _ = scene
    for bad in ({"input": "cube"}, {"patch": 4, "input": "patch"}, {"lam": 2.0},
                {"epochs": 0}, {"output": "d_everything"}):
        with pytest.raises(ParameterError):
            detectors.get("hadgan", **{**FAST, **bad}).fit(cube)
    with pytest.raises(ParameterError):
        detectors.get("hadgan", nonsense=1)
    with pytest.raises(ModelError, match="not fitted"):
        detectors.get("hadgan").score(cube)


def test_cli_train_saves_a_model_and_a_loss_plot(tmp_path, scene):
    from hsad.cli.main import main

    cube, _ = scene
    mat = tmp_path / "scene.mat"
    scipy.io.savemat(mat, {"data": cube.values})
    model, plot = tmp_path / "m.hsad", tmp_path / "losses.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(mat), "-o", str(model), "--epochs", "2", "--seed", "3",
              "-p", "hidden=16", "-p", "latent=3", "--device", "cpu", "--loss-plot",
              str(plot), "--quiet"])
    assert exit_info.value.code == 0
    det = load_detector(model)
    assert det.epochs == 2 and det.seed == 3 and det.hidden == 16
    assert len(det.history_.losses["loss_r"]) == 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_train_reports_a_bad_parameter(tmp_path, scene, capsys):
    from hsad.cli.main import main

    cube, _ = scene
    mat = tmp_path / "scene.mat"
    scipy.io.savemat(mat, {"data": cube.values})
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(mat), "-o", str(tmp_path / "m.hsad"), "-p", "wings=2"])
    assert exit_info.value.code == 2
    assert "unknown parameter 'wings'" in capsys.readouterr().err
    assert not (tmp_path / "m.hsad").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_runs(scene):
    cube, truth = scene
    det = detectors.get("hadgan", **{**FAST, "device": "cuda"}, seed=7)
    scores = det.fit_score(cube)
    assert det.device_.type == "cuda"
    assert roc_auc_score(truth.ravel(), scores.values.ravel()) > 0.9


def test_a_scene_with_too_few_pixels_to_train_on_is_refused():
    tiny = make_cube(np.random.default_rng(0).random((3, 3, 6)).astype(np.float32))
    with pytest.raises(ParameterError, match="only 9 valid pixels to train on"):
        detectors.get("hadgan", progress=False).fit(tiny)


def test_a_flat_spatial_stage_is_named():
    """A scene no larger than the filters' area leaves D_spatial flat (the openings and
    closings flatten all of it): D_SS then ranks by the spectral term alone, and says so.
    A scene with structures below the area fuses without a word."""
    # 5 bands: 25 pixels are at least 4 a band (D_spectral's own warning stays out)
    x = np.random.default_rng(3).normal(100.0, 5.0, (5, 5, 5)).astype(np.float32)
    params = {**FAST, "epochs": 2, "fusion": "aed", "area": 25, "seed": 0}
    with pytest.warns(DegenerateDataWarning, match=r"D_spatial is flat.*areas \(25 pixels\)"
                      r".*spectral term alone.*smaller area"):
        stages = detectors.get("hadgan", **params).fit(make_cube(x)).score_stages(make_cube(x))
    assert np.ptp(stages["d_spatial"].values) == 0
    np.testing.assert_array_equal(np.argsort(stages["d_ss"].values, axis=None, kind="stable"),
                                  np.argsort(stages["d_spectral"].values, axis=None,
                                             kind="stable"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("hadgan", **{**params, "area": 9}).fit(make_cube(x)).score_stages(
            make_cube(x))


def test_the_losses_are_those_of_the_docs_each_weighted_and_labelled(scene, fitted):
    """docs/hadgan.md: L = L_R + w_ziz·L_ziz + w_shrink·L_shrink + w_adv_z·BCE(D_z(z), 1) +
    w_adv_i·BCE(D_I(ŷ), 1), and the discriminators learn prior and data as real, codes and
    reconstructions as fake. Leaving a term out of L (while still reporting it), or
    swapping the discriminators' labels, had passed every test: computed here
    independently of the detector's own loss functions."""
    det = copy.deepcopy(fitted[0])  # the module's fitted detector stays as it is
    det.set_params(w_ziz=0.7, w_shrink=0.3, w_adv_z=0.05, w_adv_i=0.02)
    stages = det._stages()
    autoencoder, discriminators = (u.loss for u in stages[0].updates)
    net = det.networks_
    enc, dec, d_z, d_i = net["encoder"], net["decoder"], net["d_z"], net["d_i"]
    y = torch.from_numpy(np.random.default_rng(2).random((16, det.n_bands_), np.float32))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(16, 1), torch.zeros(16, 1)
    with torch.no_grad():
        shared = {}
        got = autoencoder((y,), shared)
        z = enc(y)
        y_hat = dec(z)
        terms = {"loss_r": ((y - y_hat) ** 2).mean(), "loss_ziz": ((z - enc(dec(z))) ** 2).mean(),
                 "loss_shrink": (z ** 2).mean(), "adv_z": bce(d_z(z), ones),
                 "adv_i": bce(d_i(y_hat), ones)}
        expected = (terms["loss_r"] + 0.7 * terms["loss_ziz"] + 0.3 * terms["loss_shrink"]
                    + 0.05 * terms["adv_z"] + 0.02 * terms["adv_i"])
        for name, value in terms.items():
            torch.testing.assert_close(got[name], value)
        torch.testing.assert_close(got["loss"], expected)
        prior = torch.randn(16, z.shape[1], generator=torch.Generator().manual_seed(
            int(det.seed) + 1))
        loss_d = (bce(d_z(prior), ones) + bce(d_z(z), zeros) + bce(d_i(y), ones)
                  + bce(d_i(y_hat), zeros))
        torch.testing.assert_close(discriminators((y,), shared)["loss_d"], loss_d)
