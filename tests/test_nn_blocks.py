"""Shared network blocks: coders with features, critics, Gaussian head, penalties, U-Net,
latent search and Grad-CAM attention. Small CPU problems with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from hsad.nn import attention, coders, critics, gaussian, latent_search, penalties, unet
from hsad.nn.blocks import LEAKY_SLOPE, PatchFrontEnd

EPS32 = torch.finfo(torch.float32).eps


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These problems are tiny: one thread avoids contention on shared CPUs (10× faster)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _all_params_get_grad(module: nn.Module, loss: torch.Tensor) -> bool:
    module.zero_grad(set_to_none=True)
    loss.backward()
    return all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def _seeded(factory, seed=0):
    torch.manual_seed(seed)
    return factory()


# ---- coders ------------------------------------------------------------------------------
def test_mlp_coder_is_the_composition_its_features_say():
    torch.manual_seed(0)
    enc = coders.MLPFeatureEncoder(13, [16, 8], 4)
    x = torch.randn(6, 13)
    z, feats = enc(x, return_features=True)
    l1, l2, l3 = enc.hidden[0][0], enc.hidden[1][0], enc.out[0]
    h1 = F.leaky_relu(x @ l1.weight.T + l1.bias, LEAKY_SLOPE)
    h2 = F.leaky_relu(h1 @ l2.weight.T + l2.bias, LEAKY_SLOPE)
    assert l3.bias is None
    torch.testing.assert_close(feats[0], h1)
    torch.testing.assert_close(feats[1], h2)
    torch.testing.assert_close(z, h2 @ l3.weight.T)
    torch.testing.assert_close(enc.features(x), h2)
    assert _all_params_get_grad(enc, z.pow(2).sum())


def test_a_network_without_a_hidden_layer_says_it_has_no_features():
    with pytest.raises(ValueError, match="FeatureMLP has no hidden layer, so no features"):
        coders.FeatureMLP([5, 3]).features(torch.randn(2, 5))


def test_mlp_decoder_gives_spectra_or_patches():
    z = torch.randn(5, 4)
    dec = coders.MLPFeatureDecoder(4, [8, 16], 13, norm="layer")
    out, feats = dec(z, return_features=True)
    assert out.shape == (5, 13) and [f.shape for f in feats] == [(5, 8), (5, 16)]
    patch_dec = coders.MLPFeatureDecoder(4, [8], 6, patch=3)
    assert patch_dec(z).shape == (5, 6, 3, 3)
    assert _all_params_get_grad(patch_dec, patch_dec(z).pow(2).sum())


@pytest.mark.parametrize("n_bands", [7, 102, 205])
def test_conv1d_coders_work_for_any_band_count(n_bands):
    torch.manual_seed(0)
    enc = coders.Conv1dFeatureEncoder(n_bands, [4, 8, 8], 5)
    dec = coders.Conv1dFeatureDecoder(5, [4, 8, 8], n_bands)
    x = torch.randn(3, n_bands)
    z, fe = enc(x, return_features=True)
    out, fd = dec(z, return_features=True)
    lengths = [math.ceil(n_bands / 2**i) for i in (1, 2, 3)]
    assert [f.shape for f in fe] == [(3, c, n) for c, n in zip([4, 8, 8], lengths, strict=True)]
    assert [f.shape[1:] for f in fd] == [(8, lengths[2]), (8, lengths[1]), (4, lengths[0])]
    assert z.shape == (3, 5) and out.shape == (3, n_bands)
    model = nn.ModuleList([enc, dec])
    assert _all_params_get_grad(model, (out - x).pow(2).mean() + fe[-1].pow(2).mean())


def test_patch_encoder_starts_with_the_shared_front_end():
    torch.manual_seed(0)
    enc = coders.patch_encoder(6, 5, [16], 3, channels=8)
    x = torch.randn(4, 6, 5, 5)
    z, feats = enc(x, return_features=True)
    assert isinstance(enc.front, PatchFrontEnd)
    torch.testing.assert_close(feats[0], enc.front(x))
    assert feats[0].shape == (4, 8 * 3 * 3) and feats[1].shape == (4, 16) and z.shape == (4, 3)


def test_coders_are_seeded_and_batch_independent():
    make = lambda: coders.Conv1dFeatureEncoder(30, [4, 8], 3, norm="batch")  # noqa: E731
    a, b = _seeded(make).eval(), _seeded(make).eval()
    x = torch.randn(9, 30)
    assert torch.equal(a(x), b(x))
    torch.testing.assert_close(torch.cat([a(x[:4]), a(x[4:])]), a(x))


# ---- critics -----------------------------------------------------------------------------
def test_critic_x_gives_a_logit_and_its_features():
    torch.manual_seed(0)
    d = critics.CriticX(12, [16, 8])
    x = torch.randn(5, 12)
    out, feats = d(x, return_features=True)
    assert out.shape == (5, 1) and [f.shape for f in feats] == [(5, 16), (5, 8)]
    torch.testing.assert_close(d.features(x), feats[-1])
    front = PatchFrontEnd(6, 3, channels=10)
    dp = critics.CriticX(front.n_features, [8], front=front)
    xp = torch.randn(5, 6, 3, 3)
    assert dp(xp).shape == (5, 1) and dp.features(xp).shape == (5, 8)
    assert _all_params_get_grad(dp, dp(xp).sum())


def test_joint_critic_sees_both_inputs():
    torch.manual_seed(0)
    d = critics.JointCritic(10, 3, [16, 8], hidden_a=[12], hidden_b=[4], dropout=0.2)
    x, z = torch.randn(5, 10, requires_grad=True), torch.randn(5, 3, requires_grad=True)
    out, feats = d(x, z, return_features=True)
    assert out.shape == (5, 1) and feats[-1].shape == (5, 8)
    gx, gz = torch.autograd.grad(out.sum(), [x, z])
    assert gx.abs().sum() > 0 and gz.abs().sum() > 0
    d.eval()  # no dropout: deterministic
    assert torch.equal(d(x, z), d(x, z))
    torch.testing.assert_close(d.features(x, z), d(x, z, return_features=True)[1][-1])
    pair = critics.PairCritic(10, [8])  # D_xx: the concatenation goes straight in
    y = torch.randn(5, 10)
    torch.testing.assert_close(pair(x, y), pair.joint(torch.cat([x, y], dim=1)))
    front = PatchFrontEnd(6, 3, channels=10)  # D(x, z) on patches: x through the front end
    dp = critics.JointCritic(front.n_features, 3, [8], front_a=front, spectral=True)
    xp = torch.randn(5, 6, 3, 3)
    assert dp(xp, z).shape == (5, 1) and dp.features(xp, z).shape == (5, 8)
    assert parametrize.is_parametrized(front.conv[0], "weight")


def test_spectral_norm_makes_the_critic_1_lipschitz():
    torch.manual_seed(0)
    d = critics.CriticX(12, [32, 16], spectral=True)
    dj = critics.JointCritic(12, 4, [16], hidden_a=[16], spectral=True)
    for net in (d, dj):
        layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
        assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    x = torch.randn(64, 12)
    for _ in range(100):  # one power iteration per training-mode call; the estimate of σ_max
        d(x)  # converges like (σ₂/σ₁)^(2t), so 1 % is reached long before t = 100
    d.eval()
    for m in d.modules():
        if isinstance(m, nn.Linear):
            assert torch.linalg.matrix_norm(m.weight, ord=2).item() == pytest.approx(1, abs=1e-2)
    # every layer has σ_max ≈ 1 and LeakyReLU is 1-Lipschitz, so |D(x) − D(y)| ≲ ‖x − y‖
    y = x + 0.5 * torch.randn_like(x)
    gap = (d(x) - d(y)).abs()[:, 0]
    assert (gap <= torch.linalg.vector_norm(x - y, dim=1) * 1.01**3).all()


# ---- Gaussian head -----------------------------------------------------------------------
def test_reparameterisation_moments_gradients_and_seed():
    head = gaussian.GaussianHead(6, 3)
    mu, logvar = head(torch.randn(2, 6))
    assert mu.shape == logvar.shape == (2, 3)
    mu_map, lv_map = gaussian.ConvGaussianHead(8, 2)(torch.randn(2, 8, 3, 3))
    assert mu_map.shape == lv_map.shape == (2, 2, 3, 3)
    assert gaussian.reparameterise(mu_map, lv_map, 4).shape == (4, 2, 2, 3, 3)
    assert gaussian.kl_standard_normal(mu_map, lv_map).shape == (2,)
    mu = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, -1.0, 1.0]], requires_grad=True)
    n = 20_000
    z = gaussian.reparameterise(mu, logvar, n, torch.Generator().manual_seed(1))
    assert z.shape == (n, 1, 3)
    sd = torch.exp(0.5 * logvar.detach())
    # 5 standard errors: of the mean σ/√n, of the standard deviation ≈ σ/√(2n)
    assert ((z.mean(0) - mu).abs() < 5 * sd / math.sqrt(n)).all()
    assert ((z.std(0) - sd).abs() < 5 * sd / math.sqrt(2 * n)).all()
    gmu, glv = torch.autograd.grad(z.sum(), [mu, logvar])
    torch.testing.assert_close(gmu, torch.full_like(gmu, n))
    eps = (z.detach() - mu.detach()) / sd
    torch.testing.assert_close(glv, (0.5 * sd * eps).sum(0), rtol=1e-4, atol=1e-2)
    again = gaussian.reparameterise(mu, logvar, n, torch.Generator().manual_seed(1))
    assert torch.equal(z, again)


def test_kl_and_log_prob_match_torch_distributions():
    torch.manual_seed(0)
    mu, logvar, x = torch.randn(7, 4), torch.randn(7, 4), torch.randn(7, 4)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(4), torch.ones(4))
    kl = torch.distributions.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(gaussian.kl_standard_normal(mu, logvar), kl)
    torch.testing.assert_close(gaussian.gaussian_log_prob(x, mu, logvar), q.log_prob(x).sum(1))
    assert gaussian.kl_standard_normal(torch.zeros(3, 2), torch.zeros(3, 2)).eq(0).all()


def _linear_gaussian_toy(n_x=256, seed=0):
    """p(z) = N(0, I₂), p(x|z) = N(Wz + b, σ²I₅), W with orthogonal columns, so p(z|x) is
    diagonal; q(z|x) shifts each posterior mean by δ posterior sd and scales the sd by c."""
    g = torch.Generator().manual_seed(seed)
    d, n_b, sigma, delta, c = 2, 5, 0.5, 0.5, 1.25
    q_mat, _ = torch.linalg.qr(torch.randn(n_b, d, generator=g, dtype=torch.float64))
    w = q_mat * torch.tensor([1.5, 0.8], dtype=torch.float64)
    b = torch.randn(n_b, generator=g, dtype=torch.float64)
    z_true = torch.randn(n_x, d, generator=g, dtype=torch.float64)
    x = z_true @ w.T + b + sigma * torch.randn(n_x, n_b, generator=g, dtype=torch.float64)
    cov_x = w @ w.T + sigma**2 * torch.eye(n_b, dtype=torch.float64)
    log_px = torch.distributions.MultivariateNormal(b, cov_x).log_prob(x)
    post_var = 1.0 / (1.0 + (w * w).sum(0) / sigma**2)
    post_mu = post_var * ((x - b) @ w) / sigma**2
    mu_q = post_mu + delta * post_var.sqrt()
    logvar_q = torch.log(c**2 * post_var).expand_as(mu_q)
    # KL(q ‖ p(z|x)) per dimension, and E_q[(p(z|x)/q)²] per dimension (Gaussian χ² term)
    kl_post = d * (-math.log(c) + (c**2 + delta**2) / 2 - 0.5)
    chi2 = (c**2 / math.sqrt(2 * c**2 - 1) * math.exp(delta**2 / (2 * c**2 - 1))) ** d - 1

    def decode(z):
        return z @ w.T.float() + b.float(), 2 * math.log(sigma)

    f32 = lambda t: t.float()  # noqa: E731
    return f32(x), f32(mu_q), f32(logvar_q), decode, log_px, kl_post, chi2


def test_iw_estimate_matches_the_analytic_log_likelihood():
    x, mu_q, logvar_q, decode, log_px, kl_post, chi2 = _linear_gaussian_toy()
    n_l = 64
    g = torch.Generator().manual_seed(3)
    iw = gaussian.iw_log_likelihood(x, mu_q, logvar_q, decode, n_l, g).double()
    assert iw.shape == log_px.shape
    # delta method: log p̂ − log p(x) has mean ≈ −ρ²/(2L) and sd ≈ ρ/√L, ρ² = Var(w)/p(x)² =
    # chi2; averaged over N independent x, allow the bias plus 5 standard errors.
    bias, se = chi2 / (2 * n_l), math.sqrt(chi2 / n_l / len(x))
    assert (iw - log_px).mean().abs().item() < bias + 5 * se
    # the ELBO is log p(x) − KL(q ‖ p(z|x)), analytic here; IW sits above it on average
    elbo_exact = log_px - kl_post
    assert (iw - elbo_exact).mean().item() > kl_post - bias - 5 * se > 0
    # the elbo helper (MC in log p(x|z), analytic KL) agrees with the exact ELBO, within 5
    # standard errors estimated from single-draw ELBOs
    el = gaussian.elbo(x, mu_q, logvar_q, decode, 32, g).double()
    single = gaussian.elbo(x, mu_q, logvar_q, decode, 1, g).double() - elbo_exact
    assert (el - elbo_exact).mean().abs() < 5 * single.std() / math.sqrt(32 * len(x))
    lpx, lpz, lqz = gaussian.importance_terms(x, mu_q, logvar_q, decode, 32, g)
    assert lpx.shape == lpz.shape == lqz.shape == (32, len(x))


def test_iw_estimate_is_seeded_and_accepts_patches():
    x, mu_q, logvar_q, decode, *_ = _linear_gaussian_toy(n_x=8)
    a = gaussian.iw_log_likelihood(x, mu_q, logvar_q, decode, 5, torch.Generator().manual_seed(2))
    b = gaussian.iw_log_likelihood(x, mu_q, logvar_q, decode, 5, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    # a patch (N, 1, 2, 2) with event_dims=3 gives the same estimate as its 4 values as a
    # spectrum: the same draws, the same sum over the event's values
    def dec4(z):
        return decode(z)[0][:, :4], torch.zeros(len(z), 4)

    def dec_patch(z):
        mu_x, logvar_x = dec4(z)
        return mu_x.reshape(-1, 1, 2, 2), logvar_x.reshape(-1, 1, 2, 2)

    spec = gaussian.iw_log_likelihood(x[:, :4], mu_q, logvar_q, dec4, 5,
                                      torch.Generator().manual_seed(4))
    patch = gaussian.iw_log_likelihood(x[:, :4].reshape(8, 1, 2, 2), mu_q, logvar_q, dec_patch,
                                       5, torch.Generator().manual_seed(4), event_dims=3)
    torch.testing.assert_close(patch, spec)


# ---- penalties ---------------------------------------------------------------------------
def _linear_critic(weights):
    critic = nn.Linear(len(weights), 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weights]))
    return critic


def test_penalties_on_a_linear_critic_match_hand_values():
    critic = _linear_critic([3.0, 4.0])  # ∇D = w everywhere, ‖w‖ = 5
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gp = penalties.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    r1 = penalties.r1_penalty(critic, real)
    assert gp.item() == pytest.approx(16.0, rel=1e-6)  # (5 − 1)²
    assert r1.item() == pytest.approx(25.0, rel=1e-6)  # 5²
    # the penalties train the critic: ∂GP/∂w = 2(‖w‖ − 1)·w/‖w‖, ∂R1/∂w = 2w
    (g_gp,) = torch.autograd.grad(gp, critic.weight)
    (g_r1,) = torch.autograd.grad(r1, critic.weight)
    torch.testing.assert_close(g_gp, torch.tensor([[4.8, 6.4]]))
    torch.testing.assert_close(g_r1, torch.tensor([[6.0, 8.0]]))


class _Quadratic(nn.Module):
    """D(x) = ½‖x‖², so ∇D(x) = x."""

    def forward(self, x):
        return 0.5 * x.pow(2).sum(1, keepdim=True)


def test_gradient_penalty_is_taken_on_the_seeded_interpolates():
    torch.manual_seed(0)
    real, fake = torch.randn(16, 3), torch.randn(16, 3)
    gp = penalties.gradient_penalty(_Quadratic(), real, fake, torch.Generator().manual_seed(5))
    alpha = torch.rand(16, 1, generator=torch.Generator().manual_seed(5))
    mixed = alpha * real + (1 - alpha) * fake
    expected = ((mixed.norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(gp, expected)
    torch.testing.assert_close(penalties.r1_penalty(_Quadratic(), real), real.pow(2).sum(1).mean())


def test_r1_penalty_on_a_joint_critic_and_under_no_grad():
    critic_x, critic_z = _linear_critic([1.0, 2.0]), _linear_critic([2.0])

    def joint(x, z):  # D(x, z) = w·x + u·z: ‖∇‖² = ‖w‖² + ‖u‖² = 5 + 4
        return critic_x(x) + critic_z(z)

    x, z = torch.randn(4, 2), torch.randn(4, 1)
    with torch.no_grad():
        assert penalties.r1_penalty(joint, x, z).item() == pytest.approx(9.0, rel=1e-6)


# ---- U-Net -------------------------------------------------------------------------------
@pytest.mark.parametrize("n_bands", [7, 102, 205])
def test_unet_keeps_the_shape_for_any_band_count(n_bands):
    torch.manual_seed(0)
    net = unet.SpectralUNet((4, 8, 8))
    x = torch.randn(3, n_bands)
    out, feats = net(x, return_features=True)
    assert out.shape == x.shape
    lengths = [n_bands] + [math.ceil(n_bands / 2**i) for i in (1, 2, 3)]
    assert [f.shape[1:] for f in feats] == [(4, lengths[0]), (8, lengths[1]), (8, lengths[2]),
                                            (8, lengths[3])]
    assert _all_params_get_grad(net, (out - x).pow(2).mean())
    for k in (3, 5):
        pnet = unet.PatchUNet(n_bands, (8, 16))
        xp = torch.randn(2, n_bands, k, k)
        assert pnet(xp).shape == xp.shape
    assert _all_params_get_grad(pnet, pnet(xp).pow(2).mean())


def test_unet_skips_carry_the_input_past_the_bottleneck():
    torch.manual_seed(0)
    net = unet.SpectralUNet((4, 8), norm=None).eval()
    with torch.no_grad():  # cut every upsampling path: only the skips reach the output
        for up in net.up:
            up.weight.zero_()
            up.bias.zero_()
    x = torch.randn(5, 21, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert (grad.abs().sum(0) > 0).all()
    cut = torch.randn(5, 21)
    assert not torch.allclose(net(cut), net(cut + 1.0))


def test_unet_is_seeded_and_batch_independent_in_eval():
    make = lambda: unet.PatchUNet(6, (8, 16))  # noqa: E731
    a, b = _seeded(make).eval(), _seeded(make).eval()
    x = torch.randn(7, 6, 5, 5)
    assert torch.equal(a(x), b(x))
    torch.testing.assert_close(torch.cat([a(x[:3]), a(x[3:])]), a(x))


# ---- latent search -----------------------------------------------------------------------
def _linear_generator(n_bands=8, d=3, seed=0):
    """G(z) = Wz + b with singular values 2, 1.2, 0.5 (κ² = 16)."""
    g = torch.Generator().manual_seed(seed)
    q_mat, _ = torch.linalg.qr(torch.randn(n_bands, d, generator=g))
    gen = nn.Linear(d, n_bands)
    with torch.no_grad():
        gen.weight.copy_(q_mat * torch.tensor([2.0, 1.2, 0.5]))
        gen.bias.copy_(torch.randn(n_bands, generator=g))
    return gen


def test_latent_search_recovers_z_of_a_linear_generator_under_no_grad():
    gen = _linear_generator()
    z_true = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
    x = gen(z_true).detach()
    z0 = latent_search.random_latents(32, 3, torch.Generator().manual_seed(2))

    def objective(z):
        return (x - gen(z)).pow(2).sum(1)

    # GD on ‖x − Wz − b‖² with step 1/(σ₁² + σ₃²) contracts the error by (κ²−1)/(κ²+1) = 15/17
    # per step: 150 steps leave 1e-8, so what remains is float32 rounding, ~κ²·ε·‖z‖ with
    # ‖z‖ < 10 for these draws.
    tol = 16 * EPS32 * 10
    with torch.no_grad():
        z, loss = latent_search.latent_search(objective, z0, steps=150, lr=1 / (4 + 0.25),
                                              method="sgd")
    torch.testing.assert_close(z, z_true, atol=tol, rtol=0)
    assert loss.shape == (32,) and not z.requires_grad
    assert all(p.grad is None for p in gen.parameters())  # only z was differentiated
    z_adam, loss_adam = latent_search.latent_search(objective, z0, steps=300, lr=0.05)
    assert (loss_adam < 1e-6 * objective(z0).detach()).all()
    torch.testing.assert_close(z_adam, z_true, atol=1e-3, rtol=0)


def test_latent_search_does_not_depend_on_batch_splitting():
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 10)).eval()
    x = torch.randn(40, 10)
    ids = torch.arange(1000, 1040)

    def search(rows):
        def objective(z):
            return (x[rows] - gen(z)).abs().sum(1)
        z0 = latent_search.indexed_normal(ids[rows], 4, seed=7)
        return latent_search.latent_search(objective, z0, steps=40, lr=0.05)[0]

    whole = search(slice(0, 40))
    parts = torch.cat([search(slice(0, 7)), search(slice(7, 23)), search(slice(23, 40))])
    # only float32 rounding of the batched matmuls may differ; 40 steps of size ≤ lr
    torch.testing.assert_close(parts, whole, atol=1e-4, rtol=0)


def test_latent_search_refuses_inference_mode():
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        latent_search.latent_search(lambda z: z.pow(2).sum(1), torch.zeros(2, 3))


def test_indexed_normal_depends_only_on_seed_and_index():
    ids = torch.arange(0, 40_000) * 7919 + 2**33  # large, spread-out pixel numbers
    z = latent_search.indexed_normal(ids, 3, seed=11)
    assert z.dtype == torch.float32 and z.shape == (40_000, 3)
    assert torch.equal(latent_search.indexed_normal(ids[100:117], 3, seed=11), z[100:117])
    assert not torch.equal(latent_search.indexed_normal(ids[:50], 3, seed=12), z[:50])
    n = z.shape[0]  # moments of N(0, 1) within 5 standard errors
    assert (z.mean(0).abs() < 5 / math.sqrt(n)).all()
    assert ((z.var(0) - 1).abs() < 5 * math.sqrt(2 / n)).all()
    corr = torch.corrcoef(torch.cat([z[:-1], z[1:]], dim=1).T)  # neighbours and components
    assert (corr - torch.eye(6)).abs().max() < 5 / math.sqrt(n)
    a = latent_search.random_latents(4, 2, torch.Generator().manual_seed(0))
    assert torch.equal(a, latent_search.random_latents(4, 2, torch.Generator().manual_seed(0)))


# ---- Grad-CAM ----------------------------------------------------------------------------
def test_grad_cam_finds_the_region_a_linear_head_rewards():
    # features = the input itself; score = w · GAP(A) with w = (1, −1): α = w / (H·W), so
    # the map is ReLU(A₀ − A₁)/(H·W): positive only where channel 0 is brighter.
    a = torch.zeros(2, 2, 6, 6)
    a[:, 0, 1, 2], a[:, 1, 4, 4], a[1, 0, 3, 0] = 3.0, 5.0, 1.5
    a.requires_grad_(True)
    score = a.mean(dim=(2, 3)) @ torch.tensor([1.0, -1.0])
    raw = attention.grad_cam(a, score, normalise=None)
    torch.testing.assert_close(raw, torch.relu(a[:, 0] - a[:, 1]).detach() / 36)
    cam = attention.grad_cam(a, a.mean(dim=(2, 3)) @ torch.tensor([1.0, -1.0]))
    assert cam.shape == (2, 6, 6) and cam.amax(dim=(1, 2)).eq(1).all()
    assert cam[:, 1, 2].eq(1).all() and cam[:, 4, 4].eq(0).all()
    assert cam[1, 3, 0].item() == pytest.approx(0.5)
    assert (cam[0].flatten().topk(2).values == torch.tensor([1.0, 0.0])).all()


def test_grad_cam_on_a_conv_net_equals_class_activation_mapping():
    torch.manual_seed(0)
    conv, head = nn.Conv1d(1, 4, 3, padding=1), nn.Linear(4, 1)
    x = torch.randn(5, 1, 30)
    feats = torch.relu(conv(x))
    score = head(feats.mean(dim=2))[:, 0]
    cam = attention.grad_cam(feats, score, normalise="max", create_graph=True)
    expected = torch.relu(torch.einsum("k,nkl->nl", head.weight[0], feats))  # CAM
    expected = expected / expected.amax(dim=1, keepdim=True)
    torch.testing.assert_close(cam, expected, rtol=1e-5, atol=1e-6)
    # differentiable: CAVGA's attention-expansion loss mean(1 − A) trains the network
    (g,) = torch.autograd.grad((1 - cam).mean(), conv.weight)
    assert g.abs().sum() > 0
    with pytest.raises(RuntimeError, match="no graph"):
        attention.grad_cam(feats.detach(), score.detach())
