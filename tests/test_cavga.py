"""CAVGA (Venkataramanan et al. 2020): one training step, the attention expansion loss and
the score by hand, tiling, and the weakly supervised variant (``labels``, ``--labels``)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from neural_helpers import built

from hsad import open_cube
from hsad.cli.main import main
from hsad.detectors.cavga import CAVGA
from hsad.errors import ParameterError
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import apply_update
from hsad.synthetic import make_scene, write_scene

TINY = dict(hidden=8, depth=2, latent=3, patch=3, batch_size=32, sample_size=300, epochs=2,
            progress=False, device="cpu", seed=1)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(n=32, n_bands=6, k=3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, n_bands, k, k, generator=g)


def _loss(update, x):
    torch.manual_seed(3)  # the same reparameterisation draws before and after the step
    return update.loss((x,), {})


@pytest.fixture(scope="module")
def scene():
    return make_scene(rows=24, cols=24, bands=10, n_targets=3, road=False, seed=2)


@pytest.fixture(scope="module")
def scene_files(scene, tmp_path_factory):
    return write_scene(scene, tmp_path_factory.mktemp("cavga"))


def test_one_step_lowers_the_vae_loss_and_the_discriminator_loss():
    det, (stage,) = built(CAVGA, 6, **{**TINY, "lr": 1e-2})
    vae, disc = stage.updates
    x = _batch()
    before = _loss(vae, x)
    apply_update(vae, (x,), {})
    assert _loss(vae, x)["loss"].item() < before["loss"].item()
    shared = {"fake": before["loss"].new_zeros(x.shape) + 0.5}
    d_before = disc.loss((x,), shared)["adv_d"].item()
    apply_update(disc, (x,), shared)
    assert disc.loss((x,), shared)["adv_d"].item() < d_before


def _attention_by_hand(det, x):
    """1 − A: A = ReLU(Σ_k α_k F_k), α_k = mean_ij ∂(Σ μ)/∂F_kij, divided by its maximum."""
    enc = det.networks_["encoder"]
    f = enc.body(x).detach()
    w = enc.head.mu.weight[:, :, 0, 0]  # (c_z, C): ∂Σμ/∂F_k = Σ_c W_ck at every position
    alpha = w.sum(dim=0)
    cam = torch.relu(torch.einsum("k,nkij->nij", alpha, f))
    # the same map from the latent itself: Σ_k α_k F_k = Σ_c (μ_c − b_c)
    mu = enc.head(f)[0]
    other = torch.relu((mu - enc.head.mu.bias[None, :, None, None]).sum(dim=1))
    torch.testing.assert_close(cam, other, rtol=1e-5, atol=1e-5)
    top = cam.flatten(1).max(dim=1).values.clamp_min(1e-8)
    return 1 - cam / top[:, None, None]


def test_attention_expansion_loss_and_score_equal_the_paper_by_hand():
    det, (stage,) = built(CAVGA, 6, **TINY)
    for module in det.networks_.values():
        module.eval()
    x = _batch(8)
    expected = _attention_by_hand(det, x)
    with torch.no_grad():
        torch.testing.assert_close(det.attention(x), expected, rtol=1e-5, atol=1e-5)
    losses = _loss(stage.updates[0], x)
    torch.testing.assert_close(losses["ae"].detach(), expected.mean(), rtol=1e-5, atol=1e-5)
    det.seed = 0
    score = det._score(x, PixelNoise(0, np.arange(8), x.device)).detach()
    with torch.no_grad():
        xh = det.networks_["decoder"](det.networks_["encoder"](x)[0])
    error = ((x[:, :, 1, 1] - xh[:, :, 1, 1]) ** 2).mean(dim=1)
    torch.testing.assert_close(score[:, 0], expected[:, 1, 1])
    torch.testing.assert_close(score[:, 1], error)


def test_weak_score_is_the_grad_cam_of_the_anomalous_logit():
    det, _ = built(CAVGA, 6, **TINY)
    clf, enc = det.networks_["classifier"], det.networks_["encoder"]
    clf.weak.fill_(1.0)
    x = _batch(8)
    f = enc.body(x).detach().requires_grad_(True)
    logit = clf(enc.head(f)[0])[:, 1]
    (grads,) = torch.autograd.grad(logit.sum(), f)
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * f).sum(dim=1)).detach()
    expected = cam / cam.flatten(1).max(dim=1).values.clamp_min(1e-8)[:, None, None]
    torch.testing.assert_close(det.attention(x), expected, rtol=1e-5, atol=1e-6)


def test_tiled_map_equals_the_whole_scene_map(scene):
    cube = scene.cube.persist()
    det = CAVGA(**TINY).fit(cube)
    whole = det.score_stages(cube)
    tiled = det.score_stages(cube.chunk({"y": 7, "x": 10}))
    for name in ("attention", "error", "d_ss"):
        np.testing.assert_allclose(tiled[name].values, whole[name].values, rtol=1e-5,
                                   atol=1e-6)


def test_labels_train_the_weakly_supervised_variant(scene):
    cube = scene.cube.persist()
    truth = np.asarray(scene.truth.values) != 0
    every = {**TINY, "sample_size": 1000}  # the whole 24×24 scene
    plain = CAVGA(**every).fit(cube)
    weak = CAVGA(**every).fit(cube, labels=truth)
    assert plain.networks_["classifier"].weak.item() == 0
    assert weak.networks_["classifier"].weak.item() == 1
    assert "cga" in weak.history_.losses and "ae" not in weak.history_.losses
    assert "bce" in weak.history_.losses
    assert weak.n_train_ == plain.n_train_ - int(truth.sum())  # labelled pixels left out
    assert not np.array_equal(weak.score(cube).values, plain.score(cube).values)
    with pytest.raises(ParameterError, match="label mask shape"):
        CAVGA(**TINY).fit(cube, labels=truth[:5])
    with pytest.raises(ParameterError, match="no anomaly pixel"):
        CAVGA(**TINY).fit(cube, labels=np.zeros_like(truth))


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_labels(scene_files, scene, tmp_path, capsys):
    params = [a for k, v in TINY.items() for a in ("-p", f"{k}={v}")]
    labels = scene_files["truth"]
    code, _, err = _cli(["detect", scene_files["cube"], "-m", "cavga", *params, "--labels",
                         labels, "--no-progress", "-o", tmp_path / "weak.tif"], capsys)
    assert code == 0, err
    code, _, err = _cli(["train", scene_files["cube"], "-m", "cavga", *params, "--labels",
                         labels, "-o", tmp_path / "weak.hsad"], capsys)
    assert code == 0, err
    code, _, err = _cli(["detect", scene_files["cube"], "--model", tmp_path / "weak.hsad",
                         "--no-progress", "-o", tmp_path / "model.tif"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "weak.tif") as a, rasterio.open(tmp_path / "model.tif") as b:
        weak_map = a.read(1)
        np.testing.assert_array_equal(weak_map, b.read(1))
    truth = np.asarray(scene.truth.values) != 0
    api = CAVGA(**TINY).fit(open_cube(scene_files["cube"]), labels=truth)
    np.testing.assert_allclose(weak_map, api.score(open_cube(scene_files["cube"])).values,
                               rtol=1e-5, atol=1e-6)
    # refused: a detector without labels, a saved model, a raster off the scene's grid
    code, _, err = _cli(["detect", scene_files["cube"], "-m", "rx", "--labels", labels,
                         "-o", tmp_path / "rx.tif"], capsys)
    assert code == 2 and "--labels applies to detectors that learn" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _cli(["train", scene_files["cube"], "-m", "hadgan", "--labels", labels,
                         "-o", tmp_path / "h.hsad"], capsys)
    assert code == 2 and "not hadgan" in err
    code, _, err = _cli(["detect", scene_files["cube"], "--model", tmp_path / "weak.hsad",
                         "--labels", labels, "-o", tmp_path / "again.tif"], capsys)
    assert code == 2 and "applies when fitting" in err
    small = make_scene(rows=16, cols=20, bands=10, n_targets=1, road=False, seed=4)
    other = write_scene(small, tmp_path / "small")["truth"]
    code, _, err = _cli(["train", scene_files["cube"], "-m", "cavga", *params, "--labels",
                         other, "-o", tmp_path / "bad.hsad"], capsys)
    assert code == 2 and "label mask is 16x20" in err and "small" in err
