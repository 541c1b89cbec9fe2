"""AnoGAN (Schlegl et al. 2017): its WGAN-GP steps, the batched latent search, the score by
hand from z*, tiled equals whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neural_helpers import built
from sklearn.metrics import roc_auc_score

from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors import neural_tiles
from hsad.detectors.anogan import AnoGAN
from hsad.nn.blocks import LEAKY_SLOPE
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, batch_size=64, sample_size=600, epochs=6,
            search_steps=20, progress=False, device="cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(n_bands=8, **kw):
    det, stages = built(AnoGAN, n_bands, **{**TINY, **kw})
    return det, stages


def _batch(n=64, n_bands=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 2, generator=g) @ torch.randn(2, n_bands, generator=g)


def _loss_with_fresh_draws(det, minimise, x):
    """The loss of update ``minimise`` on ``x`` with the stage's latent generator reset:
    the same z (and GP interpolates) before and after a step."""
    update = next(u for u in det._stages()[0].updates if u.minimise == minimise)
    return update.loss(x, {})[minimise].item()


def test_one_critic_step_and_one_generator_step_lower_their_losses():
    det, (stage,) = _model(lr=1e-3)
    critic_up, gen_up = stage.updates
    assert gen_up.every == det.n_critic and gen_up.frozen == (det.networks_["critic"],)
    x = (_batch(),)
    for name in ("loss_d", "loss_g"):
        before = _loss_with_fresh_draws(det, name, x)
        update = next(u for u in det._stages()[0].updates if u.minimise == name)
        apply_update(update, x, {})
        assert _loss_with_fresh_draws(det, name, x) < before, name


def _np_mlp(mlp, h):
    """A FeatureMLP by hand (Linear → [LayerNorm] → LeakyReLU stages, linear output);
    returns (output, last hidden layer)."""
    h = np.asarray(h, dtype=np.float64)
    for stage in mlp.hidden:
        lin = stage[0]
        h = h @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()
        if isinstance(stage[1], torch.nn.LayerNorm):
            ln = stage[1]
            h = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + ln.eps)
            h = h * ln.weight.detach().double().numpy() + ln.bias.detach().double().numpy()
        h = np.where(h > 0, h, LEAKY_SLOPE * h)
    out = mlp.out[0]
    y = h @ out.weight.detach().double().numpy().T
    return (y + out.bias.detach().double().numpy() if out.bias is not None else y), h


def test_score_is_the_papers_formula_at_the_searched_z_by_hand():
    det, _ = _model(lam_feature=0.1)
    for m in det.networks_.values():
        m.eval().requires_grad_(False)
    x = _batch(12)
    keys = np.arange(100, 112)
    scores = det._score(x, PixelNoise(0, keys)).numpy()
    z0 = PixelNoise(0, keys).normal(3)
    z = det.search(x, z0).numpy()
    gen, critic = det.networks_["generator"], det.networks_["critic"].net
    xn = x.detach().double().numpy()
    fake, _ = _np_mlp(gen, z)
    _, f_x = _np_mlp(critic, xn)
    _, f_fake = _np_mlp(critic, fake)
    residual = np.abs(xn - fake).sum(1)
    feature = np.abs(f_x - f_fake).sum(1)
    np.testing.assert_allclose(scores[:, 1], residual, rtol=1e-4)
    np.testing.assert_allclose(scores[:, 2], feature, rtol=1e-4)
    np.testing.assert_allclose(scores[:, 0], 0.9 * residual + 0.1 * feature, rtol=1e-4)
    # the reconstruction of the batch just scored is G(z*), reused, not searched again
    np.testing.assert_allclose(det._reconstruct(x).numpy(), fake, rtol=1e-4, atol=1e-6)


def test_the_latent_search_lowers_the_objective_for_every_pixel():
    det, (stage,) = _model(lr=1e-3)
    for _ in range(60):  # a little training so that G spans something
        for update in stage.updates:
            apply_update(update, (_batch(),), {})
    for m in det.networks_.values():
        m.eval().requires_grad_(False)
    x = _batch(32)
    z0 = PixelNoise(0, np.arange(32)).normal(3)
    with torch.no_grad():
        start = det.loss_terms(x, z0)[0]
    found = det.loss_terms(x, det.search(x, z0))[0]
    assert (found < start).all()
    more = det.set_params(search_steps=80).loss_terms(x, det.search(x, z0))[0]
    assert more.mean() < found.mean()
    # zero steps: z* = z0
    torch.testing.assert_close(det.set_params(search_steps=0).search(x, z0), z0)


def _scene():
    s = make_scene(rows=24, cols=20, bands=10, n_targets=3, road=False, seed=5)
    data = np.array(s.cube.values)
    data[3, 4] = -9999.0
    return make_cube(data, nodata=-9999.0), np.asarray(s.truth.values, dtype=bool)


@pytest.mark.parametrize("input_", ["pixel", "patch"])
def test_tiled_output_equals_whole_scene_output(monkeypatch, input_):
    cube, truth = _scene()
    det = detectors.get("anogan", **TINY, input=input_, seed=1).fit(cube.chunk({"y": 24}))
    whole = det.score_stages(cube.chunk({"y": 24, "x": 20}))
    monkeypatch.setattr(neural_tiles, "INFER_BATCH", 11)  # batches split inside tiles as well
    tiled = det.score_stages(cube.chunk({"y": 7, "x": 6}))
    for name in ("anomaly", "a_residual", "a_feature", "d_spectral", "d_ss"):
        a, b = whole[name].values, tiled[name].values
        assert np.isnan(a[3, 4]) and np.isnan(b[3, 4])
        # the same pixel-keyed z0 and the same per-pixel Adam path; only float32 rounding of
        # differently blocked matrix products may differ
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    # the residual of D_SS is |x − G(z*)| of the same search: its L1 sum is a_residual
    if input_ == "pixel":
        np.testing.assert_allclose(np.nansum(whole["residual"].values, axis=2)[truth],
                                   whole["a_residual"].values[truth], rtol=1e-4)


def test_fitted_anogan_finds_the_targets_of_a_synthetic_scene():
    s = make_scene(rows=32, cols=32, bands=16, n_targets=4, road=False, seed=4)
    cube, truth = s.cube.persist(), np.asarray(s.truth.values, dtype=bool)
    det = detectors.get("anogan", **{**TINY, "epochs": 20, "lr": 1e-3}, seed=2).fit(cube)
    maps = det.score_stages(cube)
    assert roc_auc_score(truth.ravel(), maps["anomaly"].values.ravel()) > 0.8
    assert {"loss_d", "loss_g", "wasserstein"} <= set(det.history_.losses)
