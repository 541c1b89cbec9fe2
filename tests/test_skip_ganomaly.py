"""Skip-GANomaly: the U-Net generator, the weighted loss, one step of each player, the score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsad import detectors
from hsad.errors import ParameterError
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import apply_update
from hsad.nn.unet import PatchUNet, SpectralUNet
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, channels=2, unet_levels=2, epochs=3, batch_size=32,
            sample_size=400, progress=False, device="cpu", seed=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene():
    s = make_scene(rows=20, cols=20, bands=10, n_targets=2, road=False, seed=3)
    return s.cube.persist()


def _untrained(n_bands=9, batch=24, **params):
    """A detector with freshly built networks (seed 0) and its stage, plus a batch."""
    det = detectors.get("skip-ganomaly", **{**TINY, **params})
    torch.manual_seed(0)
    det.networks_ = det._build(n_bands)
    k = det.patch_size
    x = torch.randn(batch, n_bands) if k == 1 else torch.randn(batch, n_bands, k, k)
    return det, det._stages()[0], x


def test_generator_is_a_u_net_over_bands_or_space():
    det, _, x = _untrained()
    gen = det.networks_["generator"]
    assert isinstance(gen, SpectralUNet) and gen(x).shape == x.shape
    det_p, _, xp = _untrained(input="patch", patch=3)
    gen_p = det_p.networks_["generator"]
    assert isinstance(gen_p, PatchUNet) and gen_p(xp).shape == xp.shape
    # the skip: the decoder sees the first encoder level at full length
    _, feats = gen(x, return_features=True)
    assert feats[0].shape[-1] == x.shape[-1] and feats[-1].shape[-1] < x.shape[-1]


def test_generator_loss_is_the_paper_weighting_1_40_1():
    det, stage, x = _untrained()
    assert (det.w_adv, det.w_con, det.w_lat, det.score_lambda) == (1.0, 40.0, 1.0, 0.9)
    gen, critic = det.networks_["generator"], det.networks_["critic"]
    with torch.no_grad():
        losses = stage.updates[0].loss((x,), {})
        x_hat = gen(x)
        logit = critic(x_hat)
        l_adv = torch.nn.functional.softplus(-logit).mean()  # BCE(D(x̂), 1)
        l_con = (x - x_hat).abs().mean()
        l_lat = ((critic.features(x) - critic.features(x_hat)) ** 2).mean()
    for name, value in (("l_adv", l_adv), ("l_con", l_con), ("l_lat", l_lat)):
        torch.testing.assert_close(losses[name], value)
    torch.testing.assert_close(losses["loss_g"], l_adv + 40 * l_con + l_lat)


def test_one_step_of_each_player_lowers_its_loss_and_leaves_the_other_unchanged():
    det, stage, x = _untrained(lr=1e-3)
    gen_update, disc_update = stage.updates
    gen, critic = det.networks_["generator"], det.networks_["critic"]
    gen.eval()  # batch norm on running statistics: the same function before and after
    critic_before = [p.detach().clone() for p in critic.parameters()]
    with torch.no_grad():
        before_g = gen_update.loss((x,), {})["loss_g"]
    shared: dict = {}
    apply_update(gen_update, (x,), shared)
    with torch.no_grad():
        after_g = gen_update.loss((x,), {})["loss_g"]
    assert after_g < before_g
    assert all(torch.equal(p, q) for p, q in zip(critic.parameters(), critic_before,
                                                  strict=True))
    gen_before = [p.detach().clone() for p in gen.parameters()]
    with torch.no_grad():
        before_d = disc_update.loss((x,), shared)["loss_d"]
    apply_update(disc_update, (x,), shared)
    with torch.no_grad():
        after_d = disc_update.loss((x,), shared)["loss_d"]
    assert after_d < before_d
    assert all(torch.equal(p, q) for p, q in zip(gen.parameters(), gen_before, strict=True))


def _score_by_hand(**params):
    """An untrained detector's score terms in float64, and its R and L differences by hand:
    ``(terms, x − x̂, f(x) − f(x̂), det, x)``."""
    det, _, x = _untrained(**params)
    for net in det.networks_.values():
        net.eval()
    gen, critic = det.networks_["generator"], det.networks_["critic"]
    with torch.no_grad():
        terms = det._score(x, PixelNoise(0, np.arange(len(x)))).numpy().astype(np.float64)
        r_diff = x.numpy().astype(np.float64) - gen(x).numpy().astype(np.float64)
        l_diff = (critic.features(x).numpy().astype(np.float64)
                  - critic.features(gen(x)).numpy().astype(np.float64))
    return terms, r_diff, l_diff, det, x


@pytest.mark.parametrize("lam", [0.9, 0.25])
def test_score_is_lambda_r_plus_one_minus_lambda_l_by_hand(lam):
    terms, r_diff, l_diff, _, _ = _score_by_hand(score_lambda=lam)
    r = np.abs(r_diff).sum(axis=1)
    lat = np.sqrt((l_diff ** 2).sum(axis=1))
    np.testing.assert_allclose(terms[:, 1], r, rtol=1e-5)
    np.testing.assert_allclose(terms[:, 2], lat, rtol=1e-5)
    np.testing.assert_allclose(terms[:, 0], lam * r + (1 - lam) * lat, rtol=1e-5)


def test_score_form_code_is_the_authors_means_of_squares_by_hand():
    """``score_form="code"``: 0.9·mean((x − x̂)²) + 0.1·mean((f(x) − f(x̂))²), the score of
    the authors' ``test()``; the paper's form on the same networks differs."""
    terms, r_diff, l_diff, det, x = _score_by_hand(score_form="code")
    r, lat = (r_diff ** 2).mean(axis=1), (l_diff ** 2).mean(axis=1)
    np.testing.assert_allclose(terms[:, 1], r, rtol=1e-5)
    np.testing.assert_allclose(terms[:, 2], lat, rtol=1e-5)
    np.testing.assert_allclose(terms[:, 0], 0.9 * r + 0.1 * lat, rtol=1e-5)
    det.score_form = "paper"
    with torch.no_grad():
        paper = det._score(x, PixelNoise(0, np.arange(len(x)))).numpy()
    assert not np.allclose(paper[:, 0], terms[:, 0], rtol=1e-2)


def test_an_unknown_score_form_is_refused_in_one_line():
    with pytest.raises(ParameterError, match="score_form must be one of paper, code"):
        detectors.get("skip-ganomaly", **TINY, score_form="mse").check_params()


def test_detector_maps_are_the_terms_of_each_pixel_and_combine_with_fixed_weights(scene):
    det = detectors.get("skip-ganomaly", **TINY).fit(scene)
    stages = det.score_stages(scene)
    assert det.output_ == "anomaly"
    assert {"anomaly", "r_con", "l_lat", "d_spectral", "d_spatial", "d_ss", "residual",
            "score"} <= set(stages)
    a, r, lat = (stages[k].values.astype(np.float64) for k in ("anomaly", "r_con", "l_lat"))
    # no scaling over the scene: the map is the fixed 0.9/0.1 mix of the two raw terms
    np.testing.assert_allclose(a, 0.9 * r + 0.1 * lat, rtol=1e-5)
    good = scene["good_band"].values
    rows, cols = [1, 10, 19], [3, 12, 19]
    x = torch.from_numpy(det.scaler_.transform(scene.values[rows, cols][:, good]))
    with torch.no_grad():
        x_hat = det.networks_["generator"](x).numpy()
    np.testing.assert_allclose(r[rows, cols], np.abs(x.numpy() - x_hat).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stages["residual"].values[rows, cols], np.abs(x.numpy() - x_hat),
                               rtol=1e-5, atol=1e-6)


def test_patch_mode_fits_and_scores(scene):
    det = detectors.get("skip-ganomaly", **TINY, input="patch", patch=3)
    scores = det.fit_score(scene)
    assert scores.shape == scene.shape[:2] and np.isfinite(scores.values).all()
