"""VAE (Lu & Xu 2018): one training step, the importance-weighted score by hand, and a map
that does not depend on tiling or batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neural_helpers import built
from scipy.special import logsumexp

from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors import neural_tiles
from hsad.detectors.vae import VAE
from hsad.nn.noise import PixelNoise

TINY = dict(hidden=16, depth=1, latent=3, batch_size=64, sample_size=600, epochs=4,
            progress=False, device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(n_bands=8, **kw):
    return built(VAE, n_bands, **{**TINY, "lr": 1e-2, **kw})


def _batch(n=64, n_bands=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, generator=g) @ torch.randn(2, n_bands, generator=g)


def _loss(update, x):
    torch.manual_seed(3)  # the same reparameterisation draws before and after the step
    return update.loss((x,), {})["loss"]


def test_one_step_lowers_the_negative_elbo_and_calibrates_the_decoder_variance():
    det, (stage,) = _model()
    (update,) = stage.updates
    x = _batch()
    before = _loss(update, x)
    logvar = det.networks_["decoder"].logvar.clone()
    update.optimiser.zero_grad(set_to_none=True)
    before.backward()
    update.optimiser.step()
    assert _loss(update, x).item() < before.item()
    assert not torch.equal(logvar, det.networks_["decoder"].logvar)


def test_training_loss_is_the_negative_elbo_with_the_batch_ml_variance():
    det, (stage,) = _model()
    enc, dec = det.networks_["encoder"], det.networks_["decoder"]
    x = _batch(16)
    with torch.no_grad():
        loss = _loss(stage.updates[0], x)
        torch.manual_seed(3)
        mu, logvar = enc(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape)
        mu_x = dec.mean(z)
        var = ((x - mu_x) ** 2).mean(0).clamp_min(1e-4)  # σ_b² maximising the batch's ELBO
        nll = 0.5 * (np.log(2 * np.pi) + var.log() + (x - mu_x) ** 2 / var).sum(1)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    torch.testing.assert_close(loss, (nll + kl).mean() / 8, rtol=1e-5, atol=1e-6)
    # the inference variance is a running mean of the batch variances (from σ² = 1)
    torch.testing.assert_close(dec.logvar.exp(), 0.9 + 0.1 * var, rtol=1e-5, atol=1e-7)
    for _ in range(200):
        _loss(stage.updates[0], x)
    torch.testing.assert_close(dec.logvar.exp(), var, rtol=1e-4, atol=1e-7)


def _log_normal(x, mu, var):
    return -0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var).sum(axis=-1)


@pytest.mark.parametrize("n_samples", [1, 10])
def test_score_is_lu_and_xus_importance_weighted_estimate_by_hand(n_samples):
    det, _ = _model(n_samples=n_samples)
    enc, dec = det.networks_["encoder"], det.networks_["decoder"]
    for module in det.networks_.values():
        module.eval()
    x, keys = _batch(12), np.arange(100, 112)
    with torch.no_grad():
        scores = det._score(x, PixelNoise(det.seed, keys)).numpy().astype(np.float64)
        mu, logvar = (t.numpy().astype(np.float64) for t in enc(x))
        eps = PixelNoise(det.seed, keys).normal(n_samples * 3).numpy().reshape(12, n_samples, 3)
        z = mu[:, None] + np.exp(0.5 * logvar)[:, None] * eps  # (N, L, d)
        mu_x = dec(torch.from_numpy(z.reshape(-1, 3)).float())[0].numpy()
        mu_x = mu_x.reshape(12, n_samples, 8).astype(np.float64)
    var_x = np.exp(det.networks_["decoder"].logvar.detach().numpy().astype(np.float64))
    xn = x.numpy().astype(np.float64)[:, None]
    lpx = _log_normal(xn, mu_x, var_x)
    lpz = _log_normal(z, 0.0, 1.0)
    lqz = _log_normal(z, mu[:, None], np.exp(logvar)[:, None])
    kl = -(logsumexp(lpz - lqz, axis=1) - np.log(n_samples))
    rec = -(logsumexp(lpx, axis=1) - np.log(n_samples))
    np.testing.assert_allclose(scores[:, 1], kl, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scores[:, 2], rec, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scores[:, 0], kl + rec, rtol=1e-4, atol=1e-4)
    if n_samples == 1:  # one draw: the negative single-sample ELBO
        np.testing.assert_allclose(scores[:, 0], -(lpx + lpz - lqz)[:, 0], rtol=1e-4,
                                   atol=1e-4)


def test_a_very_narrow_posterior_scores_finite_and_exact(monkeypatch):
    """Trained encoders reach log σ² = −137 on real pixels (abu-urban-2): (z − μ)²/σ² in
    float32 was 0·∞ there, and those pixels scored NaN. log q(z|x) comes from ε itself."""
    det, _ = _model(n_samples=4)
    enc = det.networks_["encoder"]
    for module in det.networks_.values():
        module.eval()
    x, keys = _batch(12), np.arange(12)
    with torch.no_grad():
        mu, _ = enc(x)
    monkeypatch.setattr(enc, "forward", lambda x: (mu, torch.full_like(mu, -137.0)))
    with torch.no_grad():
        scores = det._score(x, PixelNoise(det.seed, keys)).numpy().astype(np.float64)
    assert np.isfinite(scores).all()
    # z = μ (σ ≈ 1e-30): log q = −½ Σ (log 2π − 137 + ε²) exactly, and log p(z) = log N(μ; 0, I)
    eps = PixelNoise(det.seed, keys).normal(4 * 3).numpy().reshape(12, 4, 3).astype(np.float64)
    lqz = -0.5 * (np.log(2 * np.pi) - 137.0 + eps ** 2).sum(axis=-1)
    lpz = _log_normal(mu.numpy().astype(np.float64)[:, None], 0.0, 1.0)
    kl = -(logsumexp(lpz - lqz, axis=1) - np.log(4))
    np.testing.assert_allclose(scores[:, 1], kl, rtol=1e-5)


def test_a_pixels_draws_follow_its_position_not_its_batch():
    det, _ = _model()
    for module in det.networks_.values():
        module.eval()
    x, keys = _batch(20), np.arange(20) * 7
    with torch.no_grad():
        full = det._score(x, PixelNoise(0, keys))
        order = np.random.default_rng(0).permutation(20)
        shuffled = det._score(x[order], PixelNoise(0, keys[order]))
        part = det._score(x[5:9], PixelNoise(0, keys[5:9]))
        elsewhere = det._score(x, PixelNoise(0, keys + 1))
    torch.testing.assert_close(shuffled, full[order], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(part, full[5:9], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(elsewhere, full)  # other positions, other draws


def _cube(chunks):
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(20, 18, 6)) @ rng.normal(size=(6, 10)) + 20.0).astype(np.float32)
    data[4, 5] = -9999.0
    return make_cube(data, nodata=-9999.0).chunk({"y": chunks[0], "x": chunks[1]})


@pytest.mark.parametrize("input_", ["pixel", "patch"])
def test_map_does_not_depend_on_tiling_or_batch_size(monkeypatch, input_):
    det = detectors.get("vae", **TINY, input=input_, seed=5)
    whole = _cube((20, 18))
    det.fit(whole)
    names = ("score", "kl", "reconstruction", "d_spectral")
    ref = {n: det.set_params(output=n).score(whole).values for n in names}
    monkeypatch.setattr(neural_tiles, "INFER_BATCH", 7)  # batches split inside the tiles too
    tiled = _cube((7, 5))
    for name in names:
        a, b = ref[name], det.set_params(output=name).score(tiled).values
        assert np.isnan(a[4, 5]) and np.isfinite(np.delete(a.ravel(), 4 * 18 + 5)).all()
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    # a different seed draws other samples: the map changes
    other = det.set_params(seed=6, output="score").score(whole).values
    assert not np.allclose(other, ref["score"], equal_nan=True)
