"""AAE (Chen & Konukoglu 2018): its losses, one training step, its score by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neural_helpers import built
from sklearn.metrics import roc_auc_score

from hsad import detectors
from hsad.detectors.aae import AAE
from hsad.nn.blocks import LEAKY_SLOPE
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, batch_size=64, sample_size=600, epochs=8,
            progress=False, device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(n_bands=8, **kw):
    """An AAE with built networks and stages, as ``fit`` makes them, on ``n_bands`` bands."""
    return built(AAE, n_bands, **{**TINY, "lr": 1e-2, **kw})


def _batch(n=64, n_bands=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, generator=g) @ torch.randn(2, n_bands, generator=g)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_one_autoencoder_step_lowers_its_loss_and_leaves_the_discriminator_alone():
    det, (stage,) = _model()
    auto, disc_update = stage.updates
    x = (_batch(),)
    before = auto.loss(x, {})["loss"].item()
    d_before = _params(det.networks_["discriminator"])
    apply_update(auto, x, {})
    assert auto.loss(x, {})["loss"].item() < before
    assert all(torch.equal(a, b) for a, b in
               zip(d_before, _params(det.networks_["discriminator"]), strict=True))
    # the discriminator's step moves the discriminator only
    e_before = _params(det.networks_["encoder"])
    shared: dict = {}
    auto.loss(x, shared)
    disc_update.optimiser.zero_grad(set_to_none=True)
    disc_update.loss(x, shared)["loss_d"].backward()
    disc_update.optimiser.step()
    assert not all(torch.equal(a, b) for a, b in
                   zip(d_before, _params(det.networks_["discriminator"]), strict=True))
    assert all(torch.equal(a, b) for a, b in
               zip(e_before, _params(det.networks_["encoder"]), strict=True))


def test_the_losses_are_the_papers_terms_with_their_weights():
    det, (stage,) = _model(w_const=2.0, w_adv=0.5)
    enc, dec, disc = (det.networks_[k] for k in ("encoder", "decoder", "discriminator"))
    x = _batch()
    with torch.no_grad():
        out = stage.updates[0].loss((x,), {})
        z = enc(x)
        x_hat = dec(z)
        rec = ((x - x_hat) ** 2).mean()
        const = ((z - enc(x_hat)) ** 2).mean()  # ‖E(x) − E(D(E(x)))‖²: latent consistency
        adv = torch.nn.functional.softplus(-disc(z)).mean()  # BCE(D(z), 1)
    torch.testing.assert_close(out["loss_rec"], rec)
    torch.testing.assert_close(out["loss_const"], const)
    torch.testing.assert_close(out["loss_adv"], adv)
    torch.testing.assert_close(out["loss"], rec + 2.0 * const + 0.5 * adv)
    # w_adv = 0: a plain constrained autoencoder, no discriminator step
    _, (plain,) = _model(w_adv=0.0)
    assert [u.minimise for u in plain.updates] == ["loss"]


def _numpy_mlp(layers, x):
    """A FeatureMLP by hand: hidden Linear + LeakyReLU stages, then the linear output."""
    h = x
    for layer in layers.hidden:
        lin = layer[0]
        h = h @ lin.weight.numpy().T + lin.bias.numpy()
        h = np.where(h > 0, h, LEAKY_SLOPE * h)
    out = layers.out[0]
    h = h @ out.weight.numpy().T
    return h + out.bias.numpy() if out.bias is not None else h


def test_score_is_the_reconstruction_residual_computed_by_hand():
    det, _ = _model()
    for module in det.networks_.values():
        module.eval()
    enc, dec = det.networks_["encoder"], det.networks_["decoder"]
    x = _batch(10)
    with torch.no_grad():
        scores = det._score(x, None).numpy()
        # the networks are plain FeatureMLPs: recompute them in numpy, float64
        xn = x.numpy().astype(np.float64)
        z = _numpy_mlp(enc, xn)
        x_hat = _numpy_mlp(dec, z)
        z_hat = _numpy_mlp(enc, x_hat)
    np.testing.assert_allclose(scores[:, 0], ((xn - x_hat) ** 2).mean(axis=1), rtol=1e-4)
    np.testing.assert_allclose(scores[:, 1], ((z - z_hat) ** 2).mean(axis=1), rtol=1e-4,
                               atol=1e-7)


@pytest.fixture(scope="module")
def scene():
    s = make_scene(rows=32, cols=32, bands=16, n_targets=4, road=False, seed=4)
    return s.cube.persist(), np.asarray(s.truth.values, dtype=bool)


@pytest.mark.parametrize("input_", ["pixel", "patch"])
def test_fitted_map_is_the_error_of_the_normalised_pixels(scene, input_):
    cube, truth = scene
    det = detectors.get("aae", **TINY, input=input_, seed=2).fit(cube)
    maps = det.score_stages(cube)
    assert set(maps) >= {"error", "latent_error", "residual", "d_spectral", "d_ss", "score"}
    # the residual map is |x − x̂| of the centre spectrum; the error is its mean square
    np.testing.assert_allclose(maps["error"].values, (maps["residual"].values ** 2).mean(axis=2),
                               rtol=1e-4, atol=1e-6)
    if input_ == "pixel":
        x = det._prepare(np.asarray(cube.values)[..., det.band_mask_].reshape(-1, det.n_bands_))
        with torch.no_grad():
            ref = ((x - det.networks_["decoder"](det.networks_["encoder"](x))) ** 2).mean(1)
        np.testing.assert_allclose(maps["error"].values.ravel(), ref.numpy(), rtol=1e-4,
                                   atol=1e-6)
    assert roc_auc_score(truth.ravel(), maps["error"].values.ravel()) > 0.8
    assert {"loss_rec", "loss_const", "loss_adv", "loss_d"} <= set(det.history_.losses)
