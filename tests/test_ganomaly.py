"""GANomaly: the weighted generator loss, one step of each player, the latent-distance score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsad import detectors
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, epochs=3, batch_size=32, sample_size=400,
            lr=1e-3, progress=False, device="cpu", seed=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene():
    s = make_scene(rows=20, cols=20, bands=10, n_targets=2, road=False, seed=3)
    return s.cube.persist()


def _untrained(n_bands=8, batch=24, **params):
    """A detector with freshly built networks (seed 0) and its stages, plus a batch."""
    det = detectors.get("ganomaly", **{**TINY, **params})
    torch.manual_seed(0)
    det.networks_ = det._build(n_bands)
    x = torch.randn(batch, n_bands) if det.patch_size == 1 else \
        torch.randn(batch, n_bands, det.patch_size, det.patch_size)
    return det, det._stages()[0], x


def test_generator_loss_is_the_paper_weighting_1_50_1():
    det, stage, x = _untrained()
    assert (det.w_adv, det.w_con, det.w_enc) == (1.0, 50.0, 1.0)
    gen_update = stage.updates[0]
    with torch.no_grad():
        losses = gen_update.loss((x,), {})
        net = det.networks_
        z = net["encoder"](x)
        x_hat = net["decoder"](z)
        z_hat = net["encoder2"](x_hat)
        f = net["critic"].features
        l_adv = ((f(x) - f(x_hat)) ** 2).mean()
        l_con = (x - x_hat).abs().mean()
        l_enc = ((z - z_hat) ** 2).mean()
    for name, value in (("l_adv", l_adv), ("l_con", l_con), ("l_enc", l_enc)):
        torch.testing.assert_close(losses[name], value)
    torch.testing.assert_close(losses["loss_g"], l_adv + 50 * l_con + l_enc)
    # the weights are parameters: w_con = 0 drops the contextual term
    det0, stage0, _ = _untrained(w_con=0.0, w_adv=2.0)
    with torch.no_grad():
        out = stage0.updates[0].loss((x,), {})
    torch.testing.assert_close(out["loss_g"], 2 * out["l_adv"] + out["l_enc"])


def test_one_step_of_each_player_lowers_its_loss_and_leaves_the_other_unchanged():
    det, stage, x = _untrained()
    gen_update, disc_update = stage.updates
    critic = det.networks_["critic"]
    critic_before = [p.detach().clone() for p in critic.parameters()]
    with torch.no_grad():
        before_g = gen_update.loss((x,), {})["loss_g"]
    shared: dict = {}
    apply_update(gen_update, (x,), shared)
    with torch.no_grad():
        after_g = gen_update.loss((x,), {})["loss_g"]
    assert after_g < before_g
    for p, q in zip(critic.parameters(), critic_before, strict=True):
        assert torch.equal(p, q)  # the generator step does not move D
    gen_before = [p.detach().clone() for p in det.networks_["encoder"].parameters()]
    with torch.no_grad():
        before_d = disc_update.loss((x,), shared)["loss_d"]
    apply_update(disc_update, (x,), shared)
    with torch.no_grad():
        after_d = disc_update.loss((x,), shared)["loss_d"]
    assert after_d < before_d
    for p, q in zip(det.networks_["encoder"].parameters(), gen_before, strict=True):
        assert torch.equal(p, q)


def test_score_is_the_l1_latent_distance_by_hand():
    det, _, x = _untrained()
    for net in det.networks_.values():
        net.eval()
    with torch.no_grad():
        terms = det._score(x, PixelNoise(0, np.arange(len(x)))).numpy()
        net = det.networks_
        z = net["encoder"](x).numpy().astype(np.float64)
        z_hat = net["encoder2"](net["decoder"](net["encoder"](x))).numpy().astype(np.float64)
    np.testing.assert_allclose(terms[:, 0], np.abs(z - z_hat).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(terms[:, 1], ((z - z_hat) ** 2).mean(axis=1), rtol=1e-5)


def test_detector_map_is_the_latent_distance_of_each_normalised_pixel(scene):
    det = detectors.get("ganomaly", **TINY)
    scores = det.fit_score(scene)
    assert det.score_terms[0] == "latent" and det.output_ == "latent"
    assert set(det.history_.losses) >= {"loss_g", "loss_d", "l_adv", "l_con", "l_enc"}
    good = scene["good_band"].values
    rows, cols = [2, 11, 19], [4, 15, 0]
    x = torch.from_numpy(det.scaler_.transform(scene.values[rows, cols][:, good]))
    with torch.no_grad():
        z, _, z_hat = det._forward(x)
    np.testing.assert_allclose(scores.values[rows, cols], (z - z_hat).abs().sum(dim=1).numpy(),
                               rtol=1e-5)
    # the residual of the decoder's rebuild feeds D_SS
    stages = det.score_stages(scene)
    assert {"latent", "latent_mse", "d_spectral", "d_spatial", "d_ss", "residual"} <= set(stages)
    with torch.no_grad():
        x_hat = det._forward(x)[1].numpy()
    np.testing.assert_allclose(stages["residual"].values[rows, cols], np.abs(x.numpy() - x_hat),
                               rtol=1e-5, atol=1e-6)


def test_patch_mode_fits_and_scores(scene):
    det = detectors.get("ganomaly", **TINY, input="patch", patch=3, channels=4)
    scores = det.fit_score(scene)
    assert scores.shape == scene.shape[:2] and np.isfinite(scores.values).all()
    assert det.networks_["decoder"](torch.zeros(2, 3)).shape == (2, det.n_bands_, 3, 3)
