"""ALAE (Pidhorskyi et al. 2020): the three steps, R1 in the discriminator loss, the score
by hand and the latent-error option."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as fn
from neural_helpers import built
from sklearn.metrics import roc_auc_score

from hsad import detectors
from hsad.detectors.alae import ALAE
from hsad.nn.blocks import LEAKY_SLOPE
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, batch_size=64, sample_size=600, epochs=6,
            progress=False, device="cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(n_bands=8, **kw):
    return built(ALAE, n_bands, **{**TINY, **kw})


def _batch(n=64, n_bands=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, generator=g) @ torch.randn(2, n_bands, generator=g)


def _update(det, name):
    """Update ``name`` of freshly made stages: its latent draws restart from the seed."""
    return next(u for u in det._stages()[0].updates if u.minimise == name)


def _params(det, name):
    return [p.detach().clone() for p in det.networks_[name].parameters()]


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize(("name", "moved", "held"), [
    ("loss_d", ("encoder", "discriminator"), ("mapping", "generator")),
    ("loss_g", ("mapping", "generator"), ("encoder", "discriminator")),
    ("loss_lae", ("encoder", "generator"), ("mapping", "discriminator")),
])
def test_each_of_the_three_steps_lowers_its_loss_and_moves_only_its_players(name, moved, held):
    det, _ = _model(lr=1e-3)
    x = (_batch(),)
    before = _update(det, name).loss(x, {})[name].item()
    snapshot = {k: _params(det, k) for k in det.networks_}
    apply_update(_update(det, name), x, {})
    assert _update(det, name).loss(x, {})[name].item() < before
    for k in moved:
        assert not _same(snapshot[k], _params(det, k)), k
    for k in held:
        assert _same(snapshot[k], _params(det, k)), k


def test_the_discriminator_loss_holds_the_r1_penalty_as_the_paper_computes_it():
    det, _ = _model(gamma=10.0)
    enc, disc = det.networks_["encoder"], det.networks_["discriminator"]
    x = _batch(16)
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))
    out = det.discriminator_loss(x, z)
    # R1 by central differences in float64: E_x ‖∇ₓ D(E(x))‖²
    e64, d64 = copy.deepcopy(enc).double(), copy.deepcopy(disc).double()
    x64, h = x.double(), 1e-6
    grads = torch.zeros_like(x64)
    with torch.no_grad():
        for j in range(x64.shape[1]):
            step = torch.zeros_like(x64)
            step[:, j] = h
            grads[:, j] = (d64(e64(x64 + step)) - d64(e64(x64 - step)))[:, 0] / (2 * h)
    r1 = grads.pow(2).sum(1).mean()
    np.testing.assert_allclose(out["r1"].item(), r1.item(), rtol=1e-3)
    with torch.no_grad():
        fake = det.networks_["generator"](det.networks_["mapping"](z))
        adv = fn.softplus(disc(enc(fake))).mean() + fn.softplus(-disc(enc(x))).mean()
    torch.testing.assert_close(out["loss_adv_d"], adv)
    torch.testing.assert_close(out["loss_d"], adv + 5.0 * out["r1"])
    # γ = 0: no penalty in the loss; the R1 gradient trains D∘E
    det.set_params(gamma=0.0)
    torch.testing.assert_close(det.discriminator_loss(x, z)["loss_d"], adv)
    loss = det.set_params(gamma=10.0).discriminator_loss(x, z)["r1"]
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())


def _np_mlp(mlp, h):
    h = np.asarray(h, dtype=np.float64)
    for stage in mlp.hidden:
        lin = stage[0]
        h = h @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()
        h = np.where(h > 0, h, LEAKY_SLOPE * h)
    out = mlp.out[0]
    y = h @ out.weight.detach().double().numpy().T
    return y + out.bias.detach().double().numpy() if out.bias is not None else y


def test_score_is_the_reconstruction_error_and_the_latent_error_by_hand():
    det, _ = _model()
    for m in det.networks_.values():
        m.eval()
    enc, gen = det.networks_["encoder"], det.networks_["generator"]
    x = _batch(10)
    with torch.no_grad():
        scores = det._score(x, None).numpy()
    xn = x.detach().double().numpy()
    w = _np_mlp(enc, xn)
    x_hat = _np_mlp(gen, w)
    np.testing.assert_allclose(scores[:, 0], ((xn - x_hat) ** 2).mean(1), rtol=1e-4)
    np.testing.assert_allclose(scores[:, 1], ((w - _np_mlp(enc, x_hat)) ** 2).mean(1),
                               rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("input_", ["pixel", "patch"])
def test_fitted_alae_gives_the_error_the_latent_error_option_and_d_ss(input_):
    s = make_scene(rows=32, cols=32, bands=16, n_targets=4, road=False, seed=4)
    cube, truth = s.cube.persist(), np.asarray(s.truth.values, dtype=bool)
    det = detectors.get("alae", **{**TINY, "epochs": 15}, input=input_, seed=2).fit(cube)
    maps = det.score_stages(cube)
    assert set(maps) >= {"error", "latent_error", "residual", "d_ss", "score"}
    np.testing.assert_allclose(maps["error"].values, (maps["residual"].values ** 2).mean(2),
                               rtol=1e-4, atol=1e-6)
    assert roc_auc_score(truth.ravel(), maps["error"].values.ravel()) > 0.7
    latent = det.set_params(output="latent_error").score(cube)
    np.testing.assert_array_equal(latent.values, maps["latent_error"].values)
    assert {"loss_d", "r1", "loss_g", "loss_lae"} <= set(det.history_.losses)
