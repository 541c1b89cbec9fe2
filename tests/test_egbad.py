"""EGBAD: the BiGAN updates, the score α·L_G + (1 − α)·L_D with both L_D variants by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bigan_reference import apply, joint, softplus
from neural_helpers import built

from hsad import detectors
from hsad.detectors.egbad import EGBAD
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, disc_hidden=12, epochs=3, batch_size=32,
            sample_size=400, lr=1e-3, progress=False, device="cpu", seed=4)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene():
    s = make_scene(rows=20, cols=20, bands=10, n_targets=2, road=False, seed=3)
    return s.cube.persist()


def _loss(det, which: int, x: torch.Tensor) -> dict:
    """Update ``which``'s losses with a fresh prior stream and fixed dropout masks."""
    update = det._stages()[0].updates[which]
    torch.manual_seed(11)
    with torch.no_grad():
        return update.loss((x,), {})


@pytest.mark.parametrize(("which", "name"), [(0, "loss_d"), (1, "loss_ge")])
def test_one_step_lowers_the_players_loss(which, name):
    det, _ = built(EGBAD, 8, **TINY)
    x = torch.randn(48, 8, generator=torch.Generator().manual_seed(1))
    before = _loss(det, which, x)[name]
    others = [m for k, m in det.networks_.items()
              if (k == "critic") != (which == 0)]
    frozen = [p.detach().clone() for m in others for p in m.parameters()]
    update = det._stages()[0].updates[which]  # the same first prior draw as _loss
    torch.manual_seed(11)
    apply_update(update, (x,), {})
    after = _loss(det, which, x)[name]
    assert after < before
    moved = [p for m in others for p in m.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(moved, frozen, strict=True))


def test_generator_and_encoder_losses_are_the_bigan_ones():
    det, _ = built(EGBAD, 8, **TINY, dropout=0.0)
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(2))
    losses = _loss(det, 1, x)
    d_z = det.latent_size(8)
    z = torch.randn(20, d_z, generator=torch.Generator().manual_seed(TINY["seed"] + 1))
    net = {k: m for k, m in det.networks_.items()}
    with torch.no_grad():
        logit_g, _ = joint(net["critic"], net["generator"](z).numpy(), z.numpy())
        logit_e, _ = joint(net["critic"], x.numpy(), net["encoder"](x).numpy())
    # G: σ(D(G(z), z), 1) = softplus(−l); E: σ(D(x, E(x)), 0) = softplus(l)
    np.testing.assert_allclose(losses["loss_g"], softplus(-logit_g).mean(), rtol=1e-5)
    np.testing.assert_allclose(losses["loss_e"], softplus(logit_e).mean(), rtol=1e-5)
    np.testing.assert_allclose(losses["loss_ge"], losses["loss_g"] + losses["loss_e"],
                               rtol=1e-6)


@pytest.mark.parametrize("variant", ["fm", "bce"])
def test_score_is_the_paper_formula_by_hand(variant):
    det, _ = built(EGBAD, 8, **TINY, disc_score=variant, alpha=0.7)
    for net in det.networks_.values():
        net.eval()
    x = torch.randn(30, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        terms = det._score(x, PixelNoise(0, np.arange(30))).numpy()
    net, xn = det.networks_, x.numpy().astype(np.float64)
    z = apply(net["encoder"], xn)
    x_hat = apply(net["generator"], z)
    l_g = np.abs(xn - x_hat).sum(axis=1)
    logit, f_real = joint(net["critic"], xn, z)
    _, f_fake = joint(net["critic"], x_hat, z)
    l_d = np.abs(f_real - f_fake).sum(axis=1) if variant == "fm" else softplus(-logit)
    np.testing.assert_allclose(terms[:, 1], l_g, rtol=1e-4)
    np.testing.assert_allclose(terms[:, 2], l_d, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(terms[:, 0], 0.7 * l_g + 0.3 * l_d, rtol=1e-4)


def test_the_l_d_variant_changes_the_map_and_only_its_term(scene):
    fm = detectors.get("egbad", **TINY).fit(scene)
    assert fm.disc_score == "fm" and fm.alpha == 0.9
    first = fm.score_stages(scene)
    fm.set_params(disc_score="bce")
    second = fm.score_stages(scene)
    np.testing.assert_array_equal(first["l_g"].values, second["l_g"].values)
    assert not np.allclose(first["l_d"].values, second["l_d"].values)
    assert not np.allclose(first["anomaly"].values, second["anomaly"].values)
    with pytest.raises(Exception, match="disc_score"):
        detectors.get("egbad", disc_score="l2").fit(scene)


def test_detector_map_and_residual_follow_the_networks(scene):
    det = detectors.get("egbad", **TINY).fit(scene)
    stages = det.score_stages(scene)
    assert {"anomaly", "l_g", "l_d", "residual", "d_spectral", "d_spatial",
            "d_ss"} <= set(stages)
    assert {"loss_d", "loss_g", "loss_e", "l_rec"} <= set(det.history_.losses)
    good = scene["good_band"].values
    rows, cols = [2, 11, 19], [4, 15, 0]
    x = torch.from_numpy(det.scaler_.transform(scene.values[rows, cols][:, good]))
    with torch.no_grad():
        terms = det._score(x, PixelNoise(0, np.arange(3))).numpy()
        x_hat = det._reconstruct(x).numpy()
    np.testing.assert_allclose(stages["anomaly"].values[rows, cols], terms[:, 0], rtol=1e-5)
    np.testing.assert_allclose(stages["residual"].values[rows, cols],
                               np.abs(x.numpy() - x_hat), rtol=1e-5, atol=1e-6)


def test_patch_mode_fits_and_scores(scene):
    det = detectors.get("egbad", **TINY, input="patch", patch=3, channels=4)
    scores = det.fit_score(scene)
    assert scores.shape == scene.shape[:2] and np.isfinite(scores.values).all()
    assert det.networks_["generator"](torch.zeros(2, 3)).shape == (2, det.n_bands_, 3, 3)
