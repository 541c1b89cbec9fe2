"""f-AnoGAN: WGAN-GP pieces, the frozen encoder stage, the score, training regions, the model."""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from hsad import detectors
from hsad.errors import ParameterError
from hsad.nn.blocks import Discriminator, MLPDecoder, gradient_penalty
from hsad.nn.persistence import load_detector, save_detector
from hsad.nn.trainer import frozen
from hsad.nn.wgan import Critic, anomaly_terms
from hsad.synthetic import make_scene

#: Tiny, fast settings; the defaults are sized for real scenes (docs/fanogan.md).
TINY = dict(hidden=32, depth=1, latent=4, epochs=12, encoder_epochs=12, batch_size=32,
            lr=1e-3, encoder_lr=1e-3, sample_size=600, progress=False, device="cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _make_scene():
    return make_scene(rows=40, cols=40, bands=24, n_targets=4, fraction=(0.5, 0.8), road=False,
                      seed=7)


@pytest.fixture(scope="module")
def scene():
    s = _make_scene()
    return s.cube.persist(), np.asarray(s.truth.values, dtype=bool)


def _nets(n_bands=6, d_z=3, width=8):
    torch.manual_seed(0)
    gen = MLPDecoder(d_z, [width], n_bands)
    critic = Critic(Discriminator(n_bands, [width, width], norm="layer"))
    enc = Critic(Discriminator(n_bands, [width, width], norm="layer"), n_out=d_z, out_act="tanh")
    return gen, critic, enc


# ---- WGAN-GP --------------------------------------------------------------------------
@pytest.mark.parametrize(("w", "expected"), [([0.6, 0.8, 0.0], 0.0), ([3.0, 0.0, 4.0], 16.0)])
def test_gradient_penalty_of_a_linear_critic(w, expected):
    # D(x) = wᵀx has ∇D = w everywhere: the penalty is (‖w‖ − 1)², 0 for a unit vector
    critic = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([w]))
    real, fake = torch.randn(16, 3), torch.randn(16, 3)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(expected, abs=1e-5)


def _stages(objective="izi_f", n_critic=5):
    """f-AnoGAN's two training stages on 6-band spectra, as ``fit`` builds them."""
    from hsad.detectors.fanogan import FAnoGAN

    det = FAnoGAN(hidden=8, depth=1, latent=3, objective=objective, n_critic=n_critic,
                  lr=1e-3, encoder_lr=5e-3, device="cpu", progress=False)
    det.n_bands_ = 6
    torch.manual_seed(0)
    det.networks_ = det._build(6)
    return det.networks_, det._stages()


def _run(stage, x):
    from hsad.nn.trainer import Trainer

    return Trainer(batch_size=32, progress=False, device="cpu").run([stage], x)


def _params(*modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_gradient_penalty_is_positive_for_a_real_critic_and_trains_it():
    gen, critic, _ = _nets()
    assert gradient_penalty(critic, torch.randn(32, 6), torch.randn(32, 6)).item() > 0
    x = torch.randn(64, 6)
    nets, (gan, _) = _stages(n_critic=3)  # 2 batches of 32, 1 epoch: fewer than n_critic
    g_before, d_before = _params(nets["generator"]), _params(nets["critic"])
    gan.epochs = 1
    hist = _run(gan, x)
    # the generator's one step comes on the stage's last step: it had ended untrained
    assert set(hist.losses) == {"loss_d", "wasserstein", "loss_g"}
    assert not _same(g_before, _params(nets["generator"]))
    assert not _same(d_before, _params(nets["critic"]))
    nets, (gan, _) = _stages(n_critic=1)
    g_before = _params(nets["generator"])
    gan.epochs = 1
    assert "loss_g" in _run(gan, x).losses
    assert not _same(g_before, _params(nets["generator"]))
    assert all(p.requires_grad for p in nets["critic"].parameters())


# ---- encoder stage ----------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["izi_f", "izi", "ziz"])
def test_encoder_stage_leaves_generator_and_critic_bitwise_unchanged(objective):
    nets, (_, encoder) = _stages(objective)
    gen, critic, enc = nets["generator"], nets["critic"], nets["encoder"]
    before = {k: v.clone() for m in (gen, critic) for k, v in m.state_dict().items()}
    e_before = _params(enc)
    encoder.epochs = 3
    _run(encoder, torch.randn(64, 6))
    after = {k: v for m in (gen, critic) for k, v in m.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not _same(e_before, _params(enc))
    assert all(p.grad is None for m in (gen, critic) for p in m.parameters())
    assert all(p.requires_grad for m in (gen, critic) for p in m.parameters())


def test_frozen_restores_mixed_requires_grad_flags():
    _, critic, _ = _nets()
    first = next(critic.parameters())
    first.requires_grad_(False)
    with frozen(critic):
        assert not any(p.requires_grad for p in critic.parameters())
    assert not first.requires_grad
    assert all(p.requires_grad for p in list(critic.parameters())[1:])


def test_encoder_has_the_critic_architecture_with_a_tanh_output():
    _, critic, enc = _nets()
    assert [type(m) for m in critic.body] == [type(m) for m in enc.body]
    z = enc(torch.randn(100, 6) * 50)
    assert z.shape == (100, 3) and z.abs().max() < 1


@pytest.mark.parametrize("patch", [3, 5])
def test_patch_front_end_equals_the_convolution(patch):
    from torch.nn import functional as F

    from hsad.nn.blocks import PatchFrontEnd

    torch.manual_seed(0)
    front = PatchFrontEnd(7, patch, 4)
    x = torch.randn(5, 7, patch, patch)
    conv = front.conv[0]
    expected = F.leaky_relu(F.conv2d(x, conv.weight, conv.bias), 0.2).flatten(1)
    torch.testing.assert_close(front(x), expected, rtol=1e-5, atol=1e-6)


# ---- score --------------------------------------------------------------------------------
def test_score_equals_the_formula_by_hand():
    gen, critic, enc = _nets()
    x = torch.randn(10, 6)
    kappa = 0.7
    a, res, feat = anomaly_terms(x, enc, gen, critic, kappa)
    with torch.no_grad():
        xn = x.numpy().astype(np.float64)
        rec = gen(enc(x)).numpy().astype(np.float64)
        f_x = critic.body(x).numpy().astype(np.float64)
        f_r = critic.body(gen(enc(x))).numpy().astype(np.float64)
    by_hand_res = ((xn - rec) ** 2).sum(axis=1) / 6
    by_hand_feat = ((f_x - f_r) ** 2).sum(axis=1) / f_x.shape[1]
    np.testing.assert_allclose(res.numpy(), by_hand_res, rtol=1e-5)
    np.testing.assert_allclose(feat.numpy(), by_hand_feat, rtol=1e-5)
    np.testing.assert_allclose(a.numpy(), by_hand_res + kappa * by_hand_feat, rtol=1e-5)


# ---- the detector ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(scene):
    cube, truth = scene
    background = ~ndimage.binary_dilation(truth, iterations=2)
    det = detectors.get("fanogan", seed=5, kappa=0.5, **TINY)
    det.fit(cube, train_mask=background)
    return det


def test_detector_map_is_the_score_of_each_normalised_pixel(scene, trained):
    cube, _ = scene
    scores = trained.score(cube)
    assert scores.dims == ("y", "x") and scores.shape == cube.shape[:2]
    good = cube["good_band"].values
    pixels = cube.values[[3, 17, 30], [5, 22, 39]][:, good]  # three pixels, raw units
    x = torch.from_numpy(trained.scaler_.transform(pixels))
    net = trained.networks_
    a, _, _ = anomaly_terms(x, net["encoder"], net["generator"], net["critic"], 0.5)
    np.testing.assert_allclose(scores.values[[3, 17, 30], [5, 22, 39]], a.numpy(), rtol=1e-5)


def test_training_on_a_background_region_detects_the_targets(scene, trained):
    cube, truth = scene
    assert roc_auc_score(truth.ravel(), trained.score(cube).values.ravel()) > 0.85
    # a target-free window instead of a mask: the larger band of rows free of targets
    rows = np.flatnonzero(truth.any(axis=1))
    top, bottom = (0, rows[0] - 1), (rows[-1] + 2, truth.shape[0])
    r0, r1 = max(top, bottom, key=lambda w: w[1] - w[0])
    assert r1 - r0 >= 12, "the scene should leave a target-free band of rows"
    det = detectors.get("fanogan", seed=5, train_window=f"{r0},{r1},0,40", **TINY)
    det.fit(cube)
    assert roc_auc_score(truth.ravel(), det.score(cube).values.ravel()) > 0.8


def test_model_trained_on_one_scene_detects_on_another(scene, tmp_path):
    # f-AnoGAN's own setting: learn scene A (the top half), apply the saved model to B
    cube, truth = scene
    scene_a, scene_b = cube.isel(y=slice(0, 20)), cube.isel(y=slice(20, 40))
    assert truth[20:].sum() >= 4
    det = detectors.get("fanogan", seed=5, **TINY).fit(scene_a)
    model = load_detector(save_detector(det, tmp_path / "model.hsad"))
    scores = model.score(scene_b)
    assert scores.shape == (20, 40)
    assert roc_auc_score(truth[20:].ravel(), scores.values.ravel()) > 0.8


def test_history_holds_both_stages(trained):
    losses = trained.history_.losses
    assert {"loss_d", "wasserstein", "loss_g", "loss_e"} <= set(losses)
    assert len(losses["loss_d"]) == len(losses["loss_g"]) == TINY["epochs"]
    assert len(losses["loss_e"]) == TINY["encoder_epochs"]
    assert all(np.isfinite(v).all() for v in losses.values())
    assert trained.history_.epochs == TINY["epochs"] + TINY["encoder_epochs"]


def test_fit_is_deterministic_and_save_load_round_trips(scene, trained, tmp_path):
    cube, truth = scene
    background = ~ndimage.binary_dilation(truth, iterations=2)
    again = detectors.get("fanogan", seed=5, kappa=0.5, **TINY).fit(cube, train_mask=background)
    first = trained.score(cube).values
    np.testing.assert_array_equal(again.score(cube).values, first)
    model = load_detector(save_detector(trained, tmp_path / "m.hsad"))
    assert model.get_params() == trained.get_params()
    np.testing.assert_array_equal(model.score(cube).values, first)


def test_dss_fusion_and_stage_maps(scene, trained):
    cube, truth = scene
    stages = trained.score_stages(cube)
    for name in ("anomaly", "a_residual", "a_feature", "d_spectral", "d_spatial", "d_ss"):
        assert stages[name].shape == cube.shape[:2], name
    assert stages["residual"].shape == (*cube.shape[:2], int(cube["good_band"].sum()))
    np.testing.assert_allclose(stages["anomaly"].values,
                               stages["a_residual"].values + 0.5 * stages["a_feature"].values,
                               rtol=1e-5)
    np.testing.assert_array_equal(stages["score"].values, stages["anomaly"].values)
    trained.set_params(output="d_ss")
    try:
        d_ss = trained.score(cube)
    finally:
        trained.set_params(output=None)
    np.testing.assert_allclose(d_ss.values, stages["d_ss"].values, rtol=1e-6)
    assert np.nanmin(d_ss.values) >= 0 and np.nanmax(d_ss.values) <= 1


@pytest.mark.parametrize("params", [dict(input="patch", patch=3), dict(arch="conv1d")])
def test_patch_and_conv1d_variants_fit_and_score(scene, params):
    cube, truth = scene
    kw = {**TINY, "epochs": 2, "encoder_epochs": 2, "sample_size": 200}
    det = detectors.get("fanogan", objective="izi", **kw, **params).fit(cube)
    scores = det.score(cube).values
    assert scores.shape == truth.shape and np.isfinite(scores).all()


def test_conv1d_with_patches_says_it_is_not_used(scene, tmp_path):
    """arch shapes pixel input only: asked with input='patch' it had been dropped without a
    word; the networks are the patch ones, and fit warns once, at the caller's line (not
    at each network built, nor when the model is loaded)."""
    cube, _ = scene
    kw = {**TINY, "epochs": 1, "encoder_epochs": 1, "sample_size": 100}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = detectors.get("fanogan", input="patch", patch=3, arch="conv1d", **kw).fit(cube)
    said = [w for w in caught if "arch='conv1d' shapes pixel input only" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_detector(save_detector(det, tmp_path / "m.hsad")).score(cube)
    plain = detectors.get("fanogan", input="patch", patch=3, **kw).fit(cube)
    assert [n.shape for n in det.networks_["critic"].state_dict().values()] == \
        [n.shape for n in plain.networks_["critic"].state_dict().values()]


@pytest.mark.parametrize("bad", [dict(objective="zz"), dict(fusion="dss"), dict(arch="rnn"),
                                 dict(train_window="0,50,0,10"), dict(train_window="1,2,3")])
def test_bad_parameters_raise_parameter_error(scene, bad):
    cube, _ = scene
    with pytest.raises(ParameterError):
        detectors.get("fanogan", **{**TINY, **bad}).fit(cube)


def test_bad_training_masks_raise_parameter_error(scene):
    cube, _ = scene
    det = detectors.get("fanogan", **TINY)
    with pytest.raises(ParameterError, match="shape"):
        det.fit(cube, train_mask=np.ones((4, 4), bool))
    with pytest.raises(ParameterError, match="no pixel"):
        det.fit(cube, train_mask=np.zeros(cube.shape[:2], bool))


# ---- command line ----------------------------------------------------------------------------
def _cli(args, capsys):
    from hsad.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_trains_on_a_mask_file_and_detects_with_the_model(tmp_path, capsys):
    from hsad.cube import map_like
    from hsad.io.geotiff_writer import write_mask
    from hsad.synthetic import write_scene

    s = _make_scene()
    files = write_scene(s, tmp_path)
    background = ~ndimage.binary_dilation(np.asarray(s.truth.values), iterations=2)
    mask_file = tmp_path / "background.tif"
    write_mask(map_like(s.cube, background, name="mask"), mask_file)
    model, scores = tmp_path / "f.hsad", tmp_path / "scores.tif"
    # sample_size above the mask's pixel count: the model then reports the mask's size
    params = [a for k, v in {**TINY, "sample_size": 2000}.items()
              if k not in ("epochs", "progress", "device") for a in ("-p", f"{k}={v}")]
    code, out, err = _cli(["train", files["cube"], "-m", "fanogan", "-o", model,
                           "--train-mask", mask_file, "--epochs", 12, "--seed", 5,
                           "--device", "cpu", "--no-progress", *params], capsys)
    assert code == 0, err
    det = load_detector(model)
    assert det.name == "fanogan" and det.n_train_ == int(background.sum())
    code, out, err = _cli(["detect", files["cube"], "--model", model, "-o", scores,
                           "--truth", files["truth"]], capsys)
    assert code == 0, err
    auc = float(out.split("AUC(D,F) = ")[1].split()[0])
    assert auc > 0.85


def test_cli_rejects_a_training_window_outside_the_scene(tmp_path, capsys):
    from hsad.synthetic import write_scene

    files = write_scene(_make_scene(), tmp_path)
    code, _, err = _cli(["train", files["cube"], "-m", "fanogan", "-o", tmp_path / "f.hsad",
                         "--train-window", "0,10,30,60"], capsys)
    assert code == 2
    assert "training window 0,10,30,60" in err and "outside" in err
    assert not (tmp_path / "f.hsad").exists()


def test_cli_training_window_is_recorded_in_the_model(tmp_path, capsys):
    """`hsad train --train-window` became an unrecorded mask: `hsad info` showed
    train_window=None, where docs/fanogan.md says the window is saved with the model."""
    from hsad.synthetic import write_scene

    files = write_scene(_make_scene(), tmp_path)
    args = ["train", files["cube"], "-m", "fanogan", "--epochs", 1, "--device", "cpu",
            "--no-progress", "-p", "sample_size=200"]
    code, _, err = _cli([*args, "-o", tmp_path / "w.hsad", "--train-window", "0,20,0,30"],
                        capsys)
    assert code == 0, err
    model = load_detector(tmp_path / "w.hsad")
    assert model.train_window == "0,20,0,30" and model.n_train_ == 200
    code, _, err = _cli([*args, "-o", tmp_path / "p.hsad", "-p", "train_window=0,20,0,30"],
                        capsys)
    assert code == 0, err
    with zipfile.ZipFile(tmp_path / "w.hsad") as a, zipfile.ZipFile(tmp_path / "p.hsad") as b:
        assert a.read("model.safetensors") == b.read("model.safetensors")  # the same fit


def test_cli_fusion_option_picks_the_plain_or_the_fused_map(tmp_path, capsys):
    import rasterio

    from hsad import open_cube
    from hsad.synthetic import write_scene

    files = write_scene(_make_scene(), tmp_path)
    model = tmp_path / "f.hsad"
    params = [a for k, v in {**TINY, "sample_size": 500}.items()
              if k not in ("epochs", "progress", "device") for a in ("-p", f"{k}={v}")]
    code, _, err = _cli(["train", files["cube"], "-m", "fanogan", "-o", model, "--epochs", 3,
                         "--seed", 1, "--device", "cpu", "--no-progress", "--fusion", "dss",
                         *params], capsys)
    assert code == 0, err
    assert load_detector(model).output == "d_ss"  # stored with the model
    cube = open_cube(files["cube"])
    maps = {}
    for mode in ("none", "dss"):
        out = tmp_path / f"{mode}.tif"
        code, _, err = _cli(["detect", files["cube"], "--model", model, "--fusion", mode,
                             "-o", out], capsys)
        assert code == 0, err
        with rasterio.open(out) as src:
            maps[mode] = src.read(1)
        expected = load_detector(model).set_fusion(mode).score(cube).values
        np.testing.assert_allclose(maps[mode], expected, rtol=1e-5, atol=1e-6)
    assert maps["dss"].max() <= 1 and not np.allclose(maps["none"], maps["dss"])
    code, _, err = _cli(["detect", files["cube"], "-m", "rx", "--fusion", "dss",
                         "-o", tmp_path / "rx.tif"], capsys)
    assert code == 2 and "--fusion applies to the reconstruction detectors" in err
    assert not (tmp_path / "rx.tif").exists()
    # -p output= or -p fusion= naming another map than --fusion: refused, not overridden
    for command, extra, said in (("detect", ["--fusion", "none", "-p", "output=d_ss"],
                                  "-p output=d_ss and --fusion none disagree"),
                                 ("detect", ["--fusion", "aed", "-p", "fusion=multiscale"],
                                  "-p fusion=multiscale and --fusion aed disagree"),
                                 ("train", ["--fusion", "none", "-p", "output=d_ss",
                                            "--epochs", 1], "--fusion none disagree")):
        out = tmp_path / ("x.hsad" if command == "train" else "x.tif")
        code, _, err = _cli([command, files["cube"], "-m", "fanogan", "-o", out,
                             "--no-progress", *extra, *params], capsys)
        assert code == 2 and said in err and not out.exists(), err
    # from a config: named as the config's; an invalid value: the detector's own error
    config = tmp_path / "c.yaml"
    config.write_text("params:\n  output: d_ss\n")
    code, _, err = _cli(["detect", files["cube"], "-m", "fanogan", "-c", config, "--fusion",
                         "none", "-o", tmp_path / "x.tif", *params], capsys)
    assert code == 2 and f"`output: d_ss` in the config {config} and --fusion none" in err
    code, _, err = _cli(["detect", files["cube"], "-m", "fanogan", "--fusion", "dss", "-p",
                         "output=D_SS", "-o", tmp_path / "x.tif", *params], capsys)
    assert code == 2 and "output must be one of" in err and "D_SS" in err, err


def test_set_fusion_on_hadgan_switches_between_d_ss_and_d_spectral():
    det = detectors.get("hadgan")
    assert det.set_fusion("none").output == "d_spectral"
    assert det.set_fusion("dss").output == "d_ss"
    with pytest.raises(ParameterError, match="--fusion must be none, dss or a spatial"):
        det.set_fusion("rank")
    # a variant name fuses with that variant: --fusion paper = -p fusion=paper -p output=d_ss
    fanogan = detectors.get("fanogan").set_fusion("paper")
    assert (fanogan.fusion, fanogan.output) == ("paper", "d_ss")
    assert detectors.get("fanogan").set_fusion("none").output == "anomaly"


def test_fusion_names_the_spatial_variant_in_every_model(scene):
    # one name, one meaning: `fusion` is the D_SS spatial variant, `output` picks the map
    cube, _ = scene
    for name in ("hadgan", "fanogan"):
        with pytest.raises(ParameterError, match="output=d_ss"):
            detectors.get(name, fusion="dss", progress=False, device="cpu").fit(cube)
        assert detectors.get(name, fusion="paper").fusion_().radius == 3
