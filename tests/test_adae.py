"""ADAE: the dual-autoencoder losses and their signs, the score ‖x − D(G(x))‖₂, the residual."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neural_helpers import built

from hsad import detectors
from hsad.detectors.adae import ADAE
from hsad.nn.trainer import apply_update, frozen
from hsad.synthetic import make_scene

TINY = dict(hidden=16, depth=1, latent=3, epochs=3, batch_size=64, sample_size=400,
            progress=False, device="cpu", seed=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(n_bands=6, **params):
    """ADAE's networks and updates on ``n_bands``-band spectra, as ``fit`` builds them."""
    return built(ADAE, n_bands, **{**TINY, **params})


def _step(update, batch):
    """The update's loss on ``batch`` before and after one optimiser step."""
    before = apply_update(update, batch, {})
    with frozen(*update.frozen):
        after = update.loss(batch, {})
    return before, after


@pytest.mark.parametrize("player", [0, 1])
def test_one_step_of_each_player_reduces_its_loss(player):
    det, stages = _model()
    batch = (torch.randn(64, 6, generator=torch.Generator().manual_seed(1)),)
    update = stages[0].updates[player]
    before, after = _step(update, batch)
    assert after[update.minimise].item() < before[update.minimise].item()


def test_losses_are_the_papers_with_their_signs():
    # L_D = |X − D(X)| − |G(X) − D(G(X))|, L_G = |X − G(X)| + |G(X) − D(G(X))|
    det, stages = _model()
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(3))
    gen, disc = det.networks_["generator"], det.networks_["discriminator"]
    d_update, g_update = stages[0].updates
    assert d_update.minimise == "loss_d" and g_update.minimise == "loss_g"
    assert g_update.frozen == (disc,)
    with torch.no_grad():
        losses_d, losses_g = d_update.loss((x,), {}), g_update.loss((x,), {})
        g_x = gen(x)
        real = (x - disc(x)).abs().mean()
        fake = (g_x - disc(g_x)).abs().mean()
        rec = (x - g_x).abs().mean()
    torch.testing.assert_close(losses_d["loss_d"], real - fake)
    torch.testing.assert_close(losses_g["loss_g"], rec + fake)
    # D's update makes D worse at rebuilding G's output: its second term grows
    before, after = _step(d_update, (x,))
    assert after["d_fake"].item() > before["d_fake"].item()


def test_d_update_leaves_the_generator_and_g_update_the_discriminator_unchanged():
    det, stages = _model()
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(4))
    nets = det.networks_
    for update, fixed in zip(stages[0].updates, ("generator", "discriminator"), strict=True):
        saved = [p.detach().clone() for p in nets[fixed].parameters()]
        _step(update, (x,))
        for p, q in zip(nets[fixed].parameters(), saved, strict=True):
            assert torch.equal(p, q)


def test_score_equals_the_formula_by_hand():
    det, _ = _model()
    for net in det.networks_.values():
        net.eval()
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        terms = det._score(x, None).numpy()
        g_x = det.networks_["generator"](x)
        d_g_x = det.networks_["discriminator"](g_x)
    xn = x.numpy().astype(np.float64)
    anomaly = np.sqrt(((xn - d_g_x.numpy()) ** 2).sum(axis=1))
    g_error = np.sqrt(((xn - g_x.numpy()) ** 2).sum(axis=1))
    np.testing.assert_allclose(terms[:, 0], anomaly, rtol=1e-5)
    np.testing.assert_allclose(terms[:, 1], g_error, rtol=1e-5)


@pytest.fixture(scope="module")
def fitted():
    scene = make_scene(rows=24, cols=24, bands=12, n_targets=3, road=False, seed=4)
    cube = scene.cube.persist()
    det = detectors.get("adae", **TINY).fit(cube)
    return det, cube


def test_map_and_residual_are_the_papers_score_of_each_pixel(fitted):
    # the D_SS residual is x − D(G(x)): its Euclidean norm is the paper's score
    det, cube = fitted
    stages = det.score_stages(cube)
    assert {"anomaly", "g_error", "residual", "d_spectral", "d_spatial", "d_ss"} <= set(stages)
    np.testing.assert_array_equal(stages["score"].values, stages["anomaly"].values)
    norm = np.sqrt((stages["residual"].values.astype(np.float64) ** 2).sum(axis=2))
    np.testing.assert_allclose(norm, stages["anomaly"].values, rtol=1e-4, atol=1e-5)
    rows, cols = [2, 11, 20], [5, 0, 17]
    good = cube["good_band"].values
    x = torch.from_numpy(det.scaler_.transform(cube.values[rows, cols][:, good]))
    with torch.no_grad():
        rebuilt = det.networks_["discriminator"](det.networks_["generator"](x))
    by_hand = np.linalg.norm(x.numpy() - rebuilt.numpy(), axis=1)
    np.testing.assert_allclose(stages["anomaly"].values[rows, cols], by_hand, rtol=1e-5)


def test_history_holds_both_players_and_the_fusion_switch(fitted):
    det, cube = fitted
    losses = det.history_.losses
    assert {"loss_d", "d_real", "d_fake", "loss_g", "g_rec"} <= set(losses)
    assert all(len(v) == TINY["epochs"] for v in losses.values())
    assert det.set_fusion("none").output == "anomaly"
    assert det.set_fusion("dss").output == "d_ss"
    det.set_params(output=None)


def test_patch_input_rebuilds_patches_and_scores_the_centre():
    det, _ = _model(input="patch", patch=3)
    x = torch.randn(8, 6, 3, 3, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert det.networks_["generator"](x).shape == (8, 6, 3, 3)
        assert det._reconstruct(x).shape == (8, 6)
        terms = det._score(x, None)
        rebuilt = det.networks_["discriminator"](det.networks_["generator"](x))
    by_hand = torch.linalg.vector_norm(x[:, :, 1, 1] - rebuilt[:, :, 1, 1], dim=1)
    torch.testing.assert_close(terms[:, 0], by_hand)


def test_residual_net_picks_whose_rebuild_feeds_d_ss_and_leaves_the_score_alone():
    det, _ = _model()
    for net in det.networks_.values():
        net.eval()
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        g_x = det.networks_["generator"](x)
        torch.testing.assert_close(det._reconstruct(x), det.networks_["discriminator"](g_x))
        score = det._score(x, None)
        det.set_params(residual_net="generator")
        torch.testing.assert_close(det._reconstruct(x), g_x)
        torch.testing.assert_close(det._score(x, None), score)
    from hsad.errors import ParameterError

    with pytest.raises(ParameterError, match="residual_net must be one of"):
        det.set_params(residual_net="both")._validate()


def test_residual_net_set_after_fit_applies_at_the_next_score():
    """Training never reads residual_net, so, as for every parameter read when scoring, one
    set after fit applies at the next score (it had been refused until a refit): the map is
    the one of a detector fitted with it from the start."""
    cube = make_scene(rows=20, cols=20, bands=6, seed=3).cube
    kw = {**TINY, "output": "d_spectral"}
    late = detectors.get("adae", **kw).fit(cube).set_params(residual_net="generator")
    early = detectors.get("adae", residual_net="generator", **kw).fit(cube)
    np.testing.assert_array_equal(late.score(cube).values, early.score(cube).values)


def test_outputs_stay_within_out_bound_and_none_is_linear():
    det, _ = _model(out_bound=0.5)
    x = 10 * torch.randn(50, 6, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        for name in ("generator", "discriminator"):
            out = det.networks_[name](x)
            assert out.abs().max().item() <= 0.5
            encoder, decoder, _ = det.networks_[name]
            torch.testing.assert_close(out, 0.5 * torch.tanh(decoder(encoder(x)) / 0.5))
        linear, _ = _model(out_bound=None)
        encoder, decoder, _ = linear.networks_["generator"]
        torch.testing.assert_close(linear.networks_["generator"](x), decoder(encoder(x)))
    assert ADAE().out_bound == 3.0


def test_patch_variant_fits_and_scores_a_scene(fitted):
    _, cube = fitted
    det = detectors.get("adae", **{**TINY, "epochs": 1, "input": "patch", "patch": 3})
    scores = det.fit_score(cube).values
    assert scores.shape == cube.shape[:2] and np.isfinite(scores).all()
    assert np.ptp(scores) > 0
