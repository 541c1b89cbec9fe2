"""ALAD: spectral normalisation on every discriminator, the three-discriminator losses and
the D_xx feature score by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bigan_reference import apply, joint, softplus
from neural_helpers import built
from torch import nn
from torch.nn.utils import parametrize

from hsad import detectors
from hsad.detectors.alad import ALAD
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, disc_hidden=12, disc_hidden_z=6, epochs=3,
            batch_size=32, sample_size=400, lr=1e-3, progress=False, device="cpu", seed=4)
CRITICS = ("d_xz", "d_xx", "d_zz")

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


def _prior(det, n: int) -> torch.Tensor:
    """The first prior draw of a fresh ``_stages()``."""
    gen = torch.Generator().manual_seed(int(det.seed) + 1)
    return torch.randn(n, det.latent_size(det.n_bands_), generator=gen)


def _linear_layers(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


@pytest.mark.parametrize("patch", [1, 3])
def test_every_discriminator_is_spectrally_normalised_and_e_g_are_not(patch):
    params = {**TINY, "input": "patch", "channels": 4} if patch > 1 else TINY
    det, _ = built(ALAD, 8, **params)
    for name in CRITICS:
        layers = _linear_layers(det.networks_[name])
        assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers), name
    for name in ("encoder", "generator"):
        assert not any(parametrize.is_parametrized(m) for m in
                       _linear_layers(det.networks_[name]))
    if patch > 1:  # the patch front end of D_xz is normalised too
        assert any(isinstance(m, nn.Conv2d) for m in det.networks_["d_xz"].modules())


def test_trained_discriminator_weights_have_unit_spectral_norm(scene):
    det = detectors.get("alad", **TINY).fit(scene)
    for name in CRITICS:
        for layer in _linear_layers(det.networks_[name]):
            sn = layer.parametrizations.weight[0]  # W / σ̂, σ̂ = uᵀ·W·v (power iteration)
            w = layer.parametrizations.weight.original.detach().flatten(1)
            sigma_hat = sn._u @ w @ sn._v
            torch.testing.assert_close(layer.weight.detach().flatten(1), w / sigma_hat)
            sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
            assert abs(float(sigma) - 1.0) < 0.15, (name, float(sigma))


@pytest.mark.parametrize(("which", "name"), [(0, "loss_d"), (1, "loss_ge")])
def test_one_step_lowers_the_players_loss(which, name):
    det, _ = built(ALAD, 8, **TINY)
    x = torch.randn(48, 8, generator=torch.Generator().manual_seed(1))
    before = _loss(det, which, x)[name]
    others = [m for k, m in det.networks_.items() if (k in CRITICS) != (which == 0)]
    frozen = [p.detach().clone() for m in others for p in m.parameters()]
    update = det._stages()[0].updates[which]  # the same first prior draw as _loss
    torch.manual_seed(11)
    apply_update(update, (x,), {})
    after = _loss(det, which, x)[name]
    assert after < before
    moved = [p for m in others for p in m.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(moved, frozen, strict=True))


def test_losses_are_the_papers_by_hand():
    det, _ = built(ALAD, 8, **TINY, dropout=0.0)
    for net in det.networks_.values():
        net.eval()  # spectral norm from its stored vectors: the same weights in both
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(2))
    d_loss, ge_loss = _loss(det, 0, x), _loss(det, 1, x)
    net = det.networks_
    z = _prior(det, 20).numpy().astype(np.float64)
    xn = x.numpy().astype(np.float64)
    z_x = apply(net["encoder"], xn)
    x_z = apply(net["generator"], z)
    x_hat, z_hat = apply(net["generator"], z_x), apply(net["encoder"], x_z)
    enc_l, gen_l = joint(net["d_xz"], xn, z_x)[0], joint(net["d_xz"], x_z, z)[0]
    xx_real, xx_fake = joint(net["d_xx"], xn, xn)[0], joint(net["d_xx"], xn, x_hat)[0]
    zz_real, zz_fake = joint(net["d_zz"], z, z)[0], joint(net["d_zz"], z, z_hat)[0]

    def close(got, want):
        np.testing.assert_allclose(float(got), want, rtol=1e-4)

    # σ(l, 1) = softplus(−l), σ(l, 0) = softplus(l)
    close(d_loss["loss_dxz"], softplus(-enc_l).mean() + softplus(gen_l).mean())
    close(d_loss["loss_dxx"], softplus(-xx_real).mean() + softplus(xx_fake).mean())
    close(d_loss["loss_dzz"], softplus(-zz_real).mean() + softplus(zz_fake).mean())
    cost_x = softplus(xx_real).mean() + softplus(-xx_fake).mean()
    cost_z = softplus(zz_real).mean() + softplus(-zz_fake).mean()
    close(ge_loss["cost_x"], cost_x)
    close(ge_loss["cost_z"], cost_z)
    close(ge_loss["loss_g"], softplus(-gen_l).mean() + cost_x + cost_z)
    close(ge_loss["loss_e"], softplus(enc_l).mean() + cost_x + cost_z)


def test_one_step_on_the_sum_gives_each_player_its_own_gradient():
    det, stages = built(ALAD, 8, **TINY)
    x = torch.randn(24, 8, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(11)
    losses = stages[0].updates[1].loss((x,), {})
    for player, own in (("generator", "loss_g"), ("encoder", "loss_e")):
        params = list(det.networks_[player].parameters())
        total = torch.autograd.grad(losses["loss_ge"], params, retain_graph=True)
        mine = torch.autograd.grad(losses[own], params, retain_graph=True)
        for a, b in zip(total, mine, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("patch", [1, 3])
def test_score_is_the_d_xx_feature_distance_by_hand(patch):
    params = {**TINY, "input": "patch", "channels": 4} if patch > 1 else TINY
    det, _ = built(ALAD, 8, **params)
    for net in det.networks_.values():
        net.eval()
    shape = (30, 8) if patch == 1 else (30, 8, 3, 3)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        terms = det._score(x, PixelNoise(0, np.arange(30))).numpy()
        x_hat = det.networks_["generator"](det.networks_["encoder"](x)).numpy()
    net, xn = det.networks_, x.numpy().astype(np.float64).reshape(30, -1)
    if patch == 1:  # the reference encoder/generator, in numpy
        x_hat = apply(net["generator"], apply(net["encoder"], xn))
    x_hat = x_hat.reshape(30, -1)
    _, f_real = joint(net["d_xx"], xn, xn)
    logit, f_fake = joint(net["d_xx"], xn, x_hat)
    np.testing.assert_allclose(terms[:, 0], np.abs(f_real - f_fake).sum(axis=1), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(terms[:, 1], softplus(-logit), rtol=1e-4)
    centre = (lambda a: a.reshape(30, 8, 3, 3)[:, :, 1, 1]) if patch > 1 else (lambda a: a)
    np.testing.assert_allclose(terms[:, 2], np.abs(centre(xn) - centre(x_hat)).sum(axis=1),
                               rtol=1e-4)


def test_detector_map_and_residual_follow_the_networks(scene):
    det = detectors.get("alad", **TINY).fit(scene)
    stages = det.score_stages(scene)
    assert det.output_ == "fm"
    assert {"fm", "ch", "l1", "residual", "d_spectral", "d_spatial", "d_ss"} <= set(stages)
    assert {"loss_d", "loss_dxz", "loss_dxx", "loss_dzz", "loss_g", "loss_e",
            "l_rec"} <= set(det.history_.losses)
    good = scene["good_band"].values
    rows, cols = [2, 11, 19], [4, 15, 0]
    x = torch.from_numpy(det.scaler_.transform(scene.values[rows, cols][:, good]))
    with torch.no_grad():
        terms = det._score(x, PixelNoise(0, np.arange(3))).numpy()
        x_hat = det._reconstruct(x).numpy()
    np.testing.assert_allclose(stages["fm"].values[rows, cols], terms[:, 0], rtol=1e-5)
    np.testing.assert_allclose(stages["residual"].values[rows, cols],
                               np.abs(x.numpy() - x_hat), rtol=1e-5, atol=1e-6)


def test_patch_mode_fits_and_scores(scene):
    det = detectors.get("alad", **TINY, input="patch", patch=3, channels=4)
    scores = det.fit_score(scene)
    assert scores.shape == scene.shape[:2] and np.isfinite(scores.values).all()
