"""ALOCC: the denoising reconstructor, the classifier, λ·L_R in the loss, the score 1 − D(R(x))."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neural_helpers import built

from hsad import detectors
from hsad.detectors.alocc import ALOCC
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, epochs=3, batch_size=64, sample_size=400,
            progress=False, device="cpu", seed=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(n_bands=6, **params):
    """ALOCC's networks and updates on ``n_bands``-band spectra, as ``fit`` builds them."""
    return built(ALOCC, n_bands, **{**TINY, **params})


def _batch(seed=1, n=64, bands=6):
    return (torch.randn(n, bands, generator=torch.Generator().manual_seed(seed)),)


def test_one_classifier_step_reduces_its_loss():
    # σ = 0: the classifier's loss draws no noise, so before and after see the same batch
    _, stages = _model(noise_std=0.0)
    update = stages[0].updates[0]
    batch = _batch()
    before = apply_update(update, batch, {})["loss_d"]
    after = update.loss(batch, {})["loss_d"]
    assert after.item() < before.item()


def test_one_reconstructor_step_reduces_its_loss():
    _, stages = _model()
    d_update, r_update = stages[0].updates
    batch, shared = _batch(), {}
    d_update.loss(batch, shared)  # draws the noisy input X̃ the reconstructor sees
    before = apply_update(r_update, batch, shared)["loss_rd"]
    after = r_update.loss(batch, shared)["loss_rd"]
    assert after.item() < before.item()


def test_loss_is_bce_plus_lambda_times_the_squared_error_of_the_noisy_input():
    det, stages = _model(noise_std=0.3)
    assert ALOCC().lam_r == 0.4  # the paper's λ (§4.1)
    d_update, r_update = stages[0].updates
    assert r_update.frozen == (det.networks_["classifier"],)
    x = _batch(n=4000)[0]
    shared = {}
    with torch.no_grad():
        losses_d = d_update.loss((x,), shared)
        losses_r = r_update.loss((x,), shared)
        x_noisy = shared["x_noisy"]
        rebuilt = det.networks_["reconstructor"](x_noisy)
        fake = torch.sigmoid(det.networks_["classifier"](rebuilt))
        real = torch.sigmoid(det.networks_["classifier"](x))
    noise = (x_noisy - x).numpy()
    assert abs(noise.std() - 0.3) < 0.01 and abs(noise.mean()) < 0.01
    mse = ((x - rebuilt) ** 2).mean()
    torch.testing.assert_close(losses_r["loss_r"], mse)
    torch.testing.assert_close(losses_r["adv_r"], -torch.log(fake).mean())
    torch.testing.assert_close(losses_r["loss_rd"], -torch.log(fake).mean() + 0.4 * mse)
    torch.testing.assert_close(losses_d["loss_d"],
                               -torch.log(real).mean() - torch.log(1 - fake).mean())
    lam0 = _model(noise_std=0.3, lam_r=0.0)[1][0].updates
    shared = {}
    lam0[0].loss((x,), shared)
    only_adv = lam0[1].loss((x,), shared)
    torch.testing.assert_close(only_adv["loss_rd"], only_adv["adv_r"])


def test_score_equals_the_formula_by_hand():
    det, _ = _model()
    for net in det.networks_.values():
        net.eval()
    x = _batch(seed=5, n=10)[0]
    with torch.no_grad():
        terms = det._score(x, None).numpy().astype(np.float64)
        rebuilt = det.networks_["reconstructor"](x)
        d = torch.sigmoid(det.networks_["classifier"](rebuilt)).numpy()[:, 0]
    np.testing.assert_allclose(terms[:, 0], 1.0 - d, rtol=1e-5, atol=1e-7)
    r_error = ((x.numpy() - rebuilt.numpy()) ** 2).mean(axis=1)
    np.testing.assert_allclose(terms[:, 1], r_error, rtol=1e-5)
    assert ((terms[:, 0] > 0) & (terms[:, 0] < 1)).all()


@pytest.fixture(scope="module")
def fitted():
    scene = make_scene(rows=24, cols=24, bands=12, n_targets=3, road=False, seed=4)
    cube = scene.cube.persist()
    det = detectors.get("alocc", **TINY).fit(cube)
    return det, cube


def test_map_is_the_novelty_of_each_pixel_and_the_residual_is_r_of_the_clean_input(fitted):
    det, cube = fitted
    stages = det.score_stages(cube)
    assert {"novelty", "r_error", "residual", "d_spectral", "d_spatial", "d_ss"} <= set(stages)
    np.testing.assert_array_equal(stages["score"].values, stages["novelty"].values)
    rows, cols = [2, 11, 20], [5, 0, 17]
    good = cube["good_band"].values
    x = torch.from_numpy(det.scaler_.transform(cube.values[rows, cols][:, good]))
    with torch.no_grad():
        rebuilt = det.networks_["reconstructor"](x)  # no noise at test time
        d = torch.sigmoid(det.networks_["classifier"](rebuilt)).numpy()[:, 0]
    np.testing.assert_allclose(stages["novelty"].values[rows, cols], 1 - d, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(stages["residual"].values[rows, cols],
                               np.abs(x.numpy() - rebuilt.numpy()), rtol=1e-5, atol=1e-6)
    # deterministic at inference: a second pass gives the same map
    np.testing.assert_array_equal(det.score(cube).values, stages["novelty"].values)


def test_history_and_the_fusion_switch(fitted):
    det, _ = fitted
    losses = det.history_.losses
    assert {"loss_d", "loss_rd", "adv_r", "loss_r"} <= set(losses)
    assert all(len(v) == TINY["epochs"] for v in losses.values())
    assert det.set_fusion("none").output == "novelty"
    assert det.set_fusion("dss").output == "d_ss"
    det.set_params(output=None)


def test_patch_input_has_a_patch_classifier_and_scores_the_centre():
    det, stages = _model(input="patch", patch=3)
    x = torch.randn(8, 6, 3, 3, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        rebuilt = det.networks_["reconstructor"](x)
        assert rebuilt.shape == (8, 6, 3, 3)
        assert det._reconstruct(x).shape == (8, 6)
        terms = det._score(x, None)
        d = torch.sigmoid(det.networks_["classifier"](rebuilt))[:, 0]
    torch.testing.assert_close(terms[:, 0], 1 - d)
    shared = {}
    stages[0].updates[0].loss((x,), shared)
    assert shared["x_noisy"].shape == x.shape


@pytest.mark.parametrize(("bad", "message"), [({"lam_r": -1.0}, "lam_r must be ≥ 0"),
                                              ({"noise_std": -0.1}, "noise_std must be ≥ 0")])
def test_bad_parameters_are_errors(bad, message):
    from hsad.errors import ParameterError

    with pytest.raises(ParameterError, match=message):
        detectors.get("alocc", **bad)._validate()


def test_patch_variant_fits_and_scores_a_scene(fitted):
    _, cube = fitted
    det = detectors.get("alocc", **{**TINY, "epochs": 1, "input": "patch", "patch": 3})
    scores = det.fit_score(cube).values
    assert scores.shape == cube.shape[:2] and np.isfinite(scores).all()
    assert np.ptp(scores) > 0
