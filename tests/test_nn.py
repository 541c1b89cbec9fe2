"""Shared neural-network pieces: blocks, trainer, normalisation, sampling, persistence."""

from __future__ import annotations

import threading
import zipfile

import dask.array as da
import numpy as np
import pytest
import torch

from hsad.cube import make_cube
from hsad.errors import DegenerateDataWarning, ModelError, ParameterError
from hsad.nn import blocks
from hsad.nn.normalise import BandScaler
from hsad.nn.persistence import load_detector, read_model
from hsad.nn.sampling import sample_pixels
from hsad.nn.trainer import Trainer, resolve_device


# ---- blocks -----------------------------------------------------------------------------
def test_encoders_and_decoders_have_the_right_shapes():
    x = torch.randn(7, 50)
    z = blocks.MLPEncoder(50, [32, 32], 6)(x)
    assert z.shape == (7, 6)
    assert blocks.MLPDecoder(6, [32], 50)(z).shape == (7, 50)
    z1 = blocks.Conv1dEncoder(50, [4, 8], 6)(x)
    assert z1.shape == (7, 6)
    for n_bands in (50, 51):
        assert blocks.Conv1dDecoder(6, [4, 8], n_bands)(z1).shape == (7, n_bands)
    p = torch.randn(7, 20, 5, 5)
    zp = blocks.PatchEncoder(20, 5, [16], 4)(p)
    assert zp.shape == (7, 4)
    assert blocks.PatchDecoder(4, [16], 20, 5)(zp).shape == (7, 20, 5, 5)


def test_latent_layer_has_no_bias_and_mlp_options_apply():
    enc = blocks.MLPEncoder(10, [8], 3)
    assert enc.net[-1].bias is None
    net = blocks.mlp([10, 8, 4], norm="layer", last_act="tanh")
    assert isinstance(net[1], torch.nn.LayerNorm) and isinstance(net[-1], torch.nn.Tanh)
    with pytest.raises(ValueError):
        blocks.activation("swish-ish")


def test_discriminator_features_and_spectral_norm():
    d = blocks.Discriminator(12, [16, 8], spectral=True)
    x = torch.randn(5, 12)
    assert d.features(x).shape == (5, 8) and d(x).shape == (5, 1)
    # spectral normalisation keeps each weight's largest singular value near 1
    for _ in range(20):
        d(x)
    w = d.head.weight
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.1)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    critic = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight[:] = torch.tensor([[0.6, 0.8, 0.0, 0.0]])  # ‖∇‖ = 1 everywhere
    real, fake = torch.randn(16, 4), torch.randn(16, 4)
    assert blocks.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        critic.weight[:] = torch.tensor([[3.0, 0.0, 0.0, 4.0]])  # ‖∇‖ = 5
    gp = blocks.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx(16.0)
    gp.backward()  # differentiable w.r.t. the critic
    assert critic.weight.grad is not None


# ---- trainer ----------------------------------------------------------------------------
def _train_once(seed: int, epochs: int = 3):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))

    def step(batch):
        (y,) = batch
        loss = ((net(y) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    hist = Trainer(epochs=epochs, batch_size=64, seed=seed, progress=False, device="cpu").fit(
        step, x)
    return hist, torch.cat([p.detach().flatten() for p in net.parameters()])


def test_trainer_is_deterministic_for_a_seed():
    h1, w1 = _train_once(4)
    h2, w2 = _train_once(4)
    h3, w3 = _train_once(5)
    assert h1.losses == h2.losses and torch.equal(w1, w2)
    assert not torch.equal(w1, w3)
    assert h1.epochs == 3 and len(h1.losses["loss"]) == 3
    assert h1.losses["loss"][-1] < h1.losses["loss"][0]


def test_trainer_stops_early_when_the_loss_stalls():
    calls = []

    def step(batch):
        calls.append(len(batch[0]))
        return {"loss": 1.0}

    hist = Trainer(epochs=50, batch_size=10, progress=False, early_stopping=3,
                   device="cpu").fit(step, torch.zeros(25, 2))
    assert hist.stopped_early and hist.epochs == 4  # best at epoch 1, then 3 stale epochs
    assert calls[:3] == [10, 10, 5]


def test_trainer_refuses_a_diverged_loss():
    with pytest.raises(ParameterError, match="diverged"):
        Trainer(epochs=2, progress=False, device="cpu").fit(
            lambda b: {"loss": float("nan")}, torch.zeros(4, 2))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParameterError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError):
            resolve_device("cuda")


# ---- normalisation ----------------------------------------------------------------------
def test_band_scaler_is_robust_to_outliers_and_constant_bands():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=(4000, 3))
    x[:40, 0] = 1e6  # 1 % gross outliers
    x[:, 2] = 5.0  # a constant band
    with pytest.warns(DegenerateDataWarning, match=r"1 bands are constant .*1-based: 3\)"):
        s = BandScaler.fit(x, "iqr")
    assert s.centre[0] == pytest.approx(10.0, abs=0.2) and s.scale[0] == pytest.approx(2, rel=.1)
    # a constant band takes the others' typical spread, not 1 raw unit
    assert s.scale[2] == pytest.approx(np.median(s.scale[:2])) and np.isfinite(
        s.transform(x)).all()
    with pytest.warns(DegenerateDataWarning):
        std = BandScaler.fit(x, "std")
    assert std.scale[0] > 1e4  # the plain standard deviation is ruined by the outliers
    with pytest.warns(DegenerateDataWarning):
        p = BandScaler.fit(x, "percentile")
    assert p.scale[1] == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(s.inverse(s.transform(x[:5])), x[:5], rtol=1e-5)
    with pytest.raises(ParameterError):
        BandScaler.fit(x, "minmax")


# ---- sampling ---------------------------------------------------------------------------
def _cube(rows=60, cols=50, bands=4, chunks=16, nodata_rows=()):
    data = np.arange(rows * cols * bands, dtype=np.float32).reshape(rows, cols, bands)
    for r in nodata_rows:
        data[r] = -9999
    return make_cube(da.from_array(data, chunks=(chunks, chunks, -1)), nodata=-9999), data


def test_sample_is_reproducible_uniform_and_independent_of_chunking():
    cube_a, data = _cube(chunks=16)
    cube_b, _ = _cube(chunks=25)
    s1 = sample_pixels(cube_a, 200, seed=3)
    s2 = sample_pixels(cube_a, 200, seed=3)
    s3 = sample_pixels(cube_b, 200, seed=3)
    s4 = sample_pixels(cube_a, 200, seed=4)
    np.testing.assert_array_equal(s1.values, s2.values)
    np.testing.assert_array_equal(s1.values, s3.values)
    assert not np.array_equal(s1.values, s4.values)
    np.testing.assert_array_equal(s1.values, data[s1.rows, s1.cols])
    assert len(set(zip(s1.rows.tolist(), s1.cols.tolist(), strict=True))) == 200
    # spread over the scene, not one corner
    assert s1.rows.min() < 10 and s1.rows.max() > 50 and s1.cols.max() > 40


def test_sample_skips_nodata_and_returns_all_valid_pixels_when_asked_for_more():
    cube, data = _cube(rows=20, cols=10, nodata_rows=range(0, 20, 2))
    s = sample_pixels(cube, 60, seed=0)
    assert len(s.rows) == 60 and (s.rows % 2 == 1).all()
    everything = sample_pixels(cube, 10_000, seed=0)
    assert len(everything.rows) == 100  # the 10 valid rows × 10 columns
    assert (everything.values != -9999).all()


def test_sampling_reads_only_the_chunks_it_needs():
    chunk = 20  # a 200 x 200 scene in 100 chunks
    computed: list[tuple] = []
    lock = threading.Lock()

    def make_block(block_info=None):
        loc = block_info[None]["array-location"]
        with lock:
            computed.append(tuple(loc[0]) + tuple(loc[1]))
        (y0, y1), (x0, x1) = loc[0], loc[1]
        yy, xx = np.mgrid[y0:y1, x0:x1]
        return np.stack([yy, xx, yy + xx], axis=-1).astype(np.float32)

    lazy = da.map_blocks(make_block, chunks=((chunk,) * 10, (chunk,) * 10, (3,)),
                         dtype=np.float32)
    cube = make_cube(lazy)
    s = sample_pixels(cube, 12, seed=1)
    np.testing.assert_array_equal(s.values[:, 0], s.rows)
    np.testing.assert_array_equal(s.values[:, 1], s.cols)
    assert 0 < len(computed) <= 12  # only chunks holding a drawn pixel, never all 100
    assert len(set(computed)) == len(computed)  # each chunk read once


def test_patch_sample_matches_reflected_neighbourhoods():
    cube, data = _cube(rows=30, cols=30, bands=3, chunks=7)
    s = sample_pixels(cube, 900, seed=2, patch=5)
    assert s.values.shape == (900, 3, 5, 5)
    padded = np.pad(data, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    ref = np.stack([padded[r:r + 5, c:c + 5].transpose(2, 0, 1) for r, c in zip(s.rows, s.cols,
                                                                             strict=True)])
    np.testing.assert_array_equal(s.values, ref)


def test_fill_values_are_redrawn_centres_and_nan_neighbours():
    """``fill_limit``: a pixel beyond it is never a centre (others are drawn, counted in
    ``fill``) and is NaN in its neighbours' patches, as nodata is; without it, nothing
    changes: the same draw as before."""
    cube, data = _cube(rows=30, cols=30, bands=3, chunks=7)
    filled = data.copy()
    filled[::4, ::3] = -3.4e38
    lazy = make_cube(da.from_array(filled, chunks=(7, 7, 3)))
    s = sample_pixels(lazy, 500, seed=2, patch=3, fill_limit=1e20)
    assert len(s.rows) == 500 and s.fill > 0
    assert not ((s.rows % 4 == 0) & (s.cols % 3 == 0)).any()
    centres = s.values[:, :, 1, 1]
    np.testing.assert_array_equal(centres, data[s.rows, s.cols])
    assert np.isnan(s.values).any() and not (np.abs(np.nan_to_num(s.values)) > 1e20).any()
    plain = sample_pixels(cube, 500, seed=2, patch=3)
    same = sample_pixels(cube, 500, seed=2, patch=3, fill_limit=1e20)
    assert plain.fill == same.fill == 0
    np.testing.assert_array_equal(plain.values, same.values)
    # float16 holds no value beyond the limit: no fill, and no overflow warning casting it
    half = make_cube(data.astype(np.float16))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sample_pixels(half, 500, seed=2, patch=3, fill_limit=1e20)
    assert s.fill == 0 and np.isfinite(s.values).all()


def test_sampling_rejects_bad_arguments_and_empty_scenes():
    cube, _ = _cube(rows=4, cols=4, nodata_rows=range(4))
    with pytest.raises(ParameterError, match="nodata"):
        sample_pixels(cube, 5)
    with pytest.raises(ParameterError):
        sample_pixels(cube, 0)
    with pytest.raises(ParameterError):
        sample_pixels(cube, 5, patch=4)


# ---- persistence errors (round trips are in test_hadgan.py) -------------------------------
def test_load_detector_reports_bad_model_files(tmp_path):
    missing = tmp_path / "none.hsad"
    with pytest.raises(ModelError, match="no such model"):
        load_detector(missing)
    junk = tmp_path / "junk.hsad"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not an hsad model"):
        load_detector(junk)
    partial = tmp_path / "partial.hsad"
    with zipfile.ZipFile(partial, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ModelError, match="lacks model.safetensors"):
        read_model(partial)
    badjson = tmp_path / "badjson.hsad"
    with zipfile.ZipFile(badjson, "w") as zf:
        zf.writestr("config.json", "{oops")
        zf.writestr("model.safetensors", b"")
    with pytest.raises(ModelError, match="not valid JSON"):
        read_model(badjson)
    folder = tmp_path / "folder.hsad"
    folder.mkdir()
    with pytest.raises(ModelError, match="lacks config.json"):
        read_model(folder)
    assert str(folder) in str(pytest.raises(ModelError, read_model, folder).value)


# ---- staged trainer ---------------------------------------------------------------------
def _players():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)


def test_alternating_updates_run_every_kth_step_with_the_other_player_frozen():
    from hsad.nn.trainer import Stage, Update

    critic, gen = _players()
    calls = {"critic": 0, "gen": 0}
    seen_frozen = []

    def critic_loss(batch, shared):
        calls["critic"] += 1
        shared["out"] = critic(batch[0]).mean()
        return {"loss_d": shared["out"]}

    def gen_loss(batch, shared):
        calls["gen"] += 1
        seen_frozen.append(not any(p.requires_grad for p in critic.parameters()))
        assert "out" in shared  # the critic's update of this step ran first
        return {"loss_g": -critic(gen(batch[0]) * batch[0]).mean()}

    stage = Stage("gan", [Update("loss_d", critic_loss, torch.optim.SGD(critic.parameters(), 0.1)),
                          Update("loss_g", gen_loss, torch.optim.SGD(gen.parameters(), 0.1),
                                 every=3, frozen=(critic,))], epochs=2)
    hist = Trainer(batch_size=10, progress=False, device="cpu").run([stage], torch.ones(40, 3))
    assert calls == {"critic": 8, "gen": 2}  # 4 batches × 2 epochs; steps 3 and 6
    assert all(seen_frozen) and all(p.requires_grad for p in critic.parameters())
    assert len(hist.losses["loss_d"]) == len(hist.losses["loss_g"]) == 2


def test_an_update_rarer_than_the_stage_runs_once_on_its_last_step():
    """AnoGAN at epochs=1 on 400 pixels had 4 critic steps and no generator step (n_critic 5):
    the generator ended training as it started, in silence."""
    from hsad.nn.trainer import Stage, Update

    critic, gen = _players()
    calls = []

    def critic_loss(batch, shared):
        calls.append("critic")
        return {"loss_d": critic(batch[0]).mean()}

    def gen_loss(batch, shared):
        calls.append("gen")
        return {"loss_g": -critic(gen(batch[0]) * batch[0]).mean()}

    before = [p.detach().clone() for p in gen.parameters()]
    stage = Stage("gan", [Update("loss_d", critic_loss, torch.optim.SGD(critic.parameters(), 0.1)),
                          Update("loss_g", gen_loss, torch.optim.SGD(gen.parameters(), 0.1),
                                 every=5, frozen=(critic,))], epochs=1, monitor="loss_g")
    hist = Trainer(batch_size=10, progress=False, device="cpu").run([stage], torch.ones(41, 3))
    assert calls == ["critic"] * 4 + ["gen"]  # 4 batches (the last of 11), the generator last
    assert not all(torch.equal(p, q) for p, q in zip(gen.parameters(), before, strict=True))
    assert len(hist.losses["loss_g"]) == 1


def test_stages_run_in_sequence_into_one_history():
    from hsad.nn.trainer import History, Stage, Update

    a, b = _players()
    b_before = [p.detach().clone() for p in b.parameters()]

    def loss_a(batch, shared):
        return {"loss_a": (a(batch[0]) ** 2).mean()}

    def loss_b(batch, shared):
        return {"loss_b": (b(batch[0]) ** 2).mean()}

    stages = [Stage("first", [Update("loss_a", loss_a, torch.optim.SGD(a.parameters(), 0.1))], 3),
              Stage("second", [Update("loss_b", loss_b, torch.optim.SGD(b.parameters(), 0.1))],
                    2, frozen=(a,))]
    hist = Trainer(batch_size=8, progress=False, device="cpu").run(stages, torch.ones(16, 3))
    assert hist.epochs == 5 and hist.stages == {"first": [0, 3, ["loss_a"]],
                                                "second": [3, 2, ["loss_b"]]}
    assert hist.stage_losses("second") == {"loss_b": hist.losses["loss_b"]}
    assert not all(torch.equal(p, q) for p, q in zip(b.parameters(), b_before, strict=True))
    assert History.from_dict(hist.to_dict()).stages == hist.stages
    with pytest.raises(ParameterError, match="a loss of an earlier stage"):
        Trainer(batch_size=8, progress=False, device="cpu").run(
            [stages[0], Stage("again", stages[0].updates, 1)], torch.ones(16, 3))


def test_early_stopping_needs_the_monitored_loss():
    from hsad.nn.trainer import Stage, Update

    net, _ = _players()
    stage = Stage("s", [Update("loss", lambda b, s: {"loss": net(b[0]).mean() * 0},
                               torch.optim.SGD(net.parameters(), 0.1))], 50, monitor="loss_r")
    with pytest.raises(ParameterError, match="monitors 'loss_r'"):
        Trainer(progress=False, early_stopping=2, device="cpu").run([stage], torch.ones(4, 3))
    stage.monitor = "loss"
    hist = Trainer(progress=False, early_stopping=2, device="cpu").run([stage], torch.ones(4, 3))
    assert hist.stopped_early and hist.epochs == 3


def test_a_monitor_the_stage_does_not_report_is_an_error_without_early_stopping_too():
    from hsad.nn.trainer import Stage, Update

    net, _ = _players()
    stage = Stage("s", [Update("loss", lambda b, s: {"loss": net(b[0]).mean()},
                               torch.optim.SGD(net.parameters(), 0.1))], 3, monitor="lossx")
    with pytest.raises(ParameterError, match="stage 's' monitors 'lossx', which it does not "
                                             "report \\(it reports loss\\)"):
        Trainer(progress=False, device="cpu").run([stage], torch.ones(4, 3))
    # an update that runs every 4th step reports its loss from its first run on
    rare = Update("loss_r", lambda b, s: {"loss_r": net(b[0]).mean()},
                  torch.optim.SGD(net.parameters(), 0.1), every=4)
    hist = Trainer(batch_size=4, progress=False, device="cpu").run(
        [Stage("r", [stage.updates[0], rare], 4, monitor="loss_r")], torch.ones(4, 3))
    assert len(hist.losses["loss_r"]) == 1  # epochs 4 on: its first run was the 4th step
    # with early stopping too: judged from the epoch it first reports on
    hist = Trainer(batch_size=4, progress=False, device="cpu", early_stopping=3).run(
        [Stage("r2", [stage.updates[0], rare], 4, monitor="loss_r")], torch.ones(4, 3))
    assert hist.epochs == 4


def test_a_step_function_need_not_report_loss_without_early_stopping():
    net = torch.nn.Linear(4, 4)
    opt = torch.optim.Adam(net.parameters())

    def step(batch):
        loss = ((net(batch[0]) - batch[0]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"mse": loss}

    hist = Trainer(epochs=2, batch_size=16, progress=False, device="cpu").fit(
        step, torch.randn(64, 4))
    assert len(hist.losses["mse"]) == 2
    with pytest.raises(ParameterError, match="monitors 'loss'"):
        Trainer(epochs=2, batch_size=16, progress=False, device="cpu",
                early_stopping=1).fit(step, torch.randn(64, 4))


def test_an_update_minimising_a_loss_it_does_not_return_is_an_error():
    from hsad.nn.trainer import Stage, Update

    net, _ = _players()
    stage = Stage("s", [Update("nope", lambda b, s: {"loss": net(b[0]).mean()},
                               torch.optim.SGD(net.parameters(), 0.1))], 1)
    with pytest.raises(ParameterError, match="minimises 'nope', which its loss function does "
                                             "not return \\(it returns 'loss'\\)"):
        Trainer(progress=False, device="cpu").run([stage], torch.ones(4, 3))


def test_progress_bars_by_default_only_on_a_terminal(monkeypatch):
    import io

    from hsad.nn.trainer import show_progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert show_progress(True) and not show_progress(None) and not show_progress(False)
    monkeypatch.setattr("sys.stderr", Terminal())
    assert show_progress(True) and show_progress(None) and not show_progress(False)
    monkeypatch.setattr("sys.stderr", None)  # 2>&-
    assert not show_progress(True) and not show_progress(None)


def test_detect_no_progress_silences_the_training_bar(tmp_path, monkeypatch):
    import io

    from hsad.cli.main import main
    from hsad.synthetic import make_scene, write_scene

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    scene = write_scene(make_scene(rows=16, cols=16, bands=8, n_targets=2, seed=1), tmp_path)
    for flag, shown in (("--no-progress", False), ("--progress", True)):
        err = Terminal()
        monkeypatch.setattr("sys.stderr", err)
        with pytest.raises(SystemExit) as exc:
            main(["detect", str(scene["cube"]), "-m", "hadgan", "-p", "epochs=2", "-p",
                  "hidden=8", "--device", "cpu", flag, "-o", str(tmp_path / "s.tif"),
                  "--overwrite"])
        assert exc.value.code == 0
        assert ("hadgan training" in err.getvalue()) is shown, flag


# ---- the host's random generators --------------------------------------------------------
def _tiny_model(tmp_path):
    from hsad import detectors
    from hsad.io.model_archive import save_model
    from hsad.synthetic import make_scene

    cube = make_scene(rows=24, cols=24, bands=12, seed=1).cube.load()
    path = tmp_path / "vae.hsad"
    save_model(detectors.get("vae", epochs=1, hidden=8, sample_size=200, seed=0).fit(cube),
               path)
    return cube, path


def test_loading_or_unpickling_a_model_draws_nothing_from_the_hosts_generator(tmp_path):
    """load_model initialised networks only to overwrite them, from torch's global
    generator: a host seeding torch for its own work drew other numbers after loading one
    (unpickling held its draws in ``fork_rng``, which from another thread wrote an old
    state over a fit's). Networks for loaded weights are built without drawing."""
    import copy
    import pickle

    from hsad.io.model_archive import load_model

    cube, path = _tiny_model(tmp_path)
    torch.manual_seed(7)
    want = torch.rand(3)
    torch.manual_seed(7)
    loaded = load_model(path)
    copied = copy.deepcopy(loaded)
    pickle.loads(pickle.dumps(loaded))
    torch.testing.assert_close(torch.rand(3), want, rtol=0, atol=0)
    np.testing.assert_array_equal(copied.score(cube).values, loaded.score(cube).values)


def test_a_fit_gives_its_own_model_while_another_thread_loads_models(tmp_path):
    """api.md: fits in several threads each give the model they give alone. A fit beside a
    thread loading or copying models gave another one (3 in 3 runs)."""
    import copy

    from hsad import detectors
    from hsad.io.model_archive import load_model

    cube, path = _tiny_model(tmp_path)
    params = {"epochs": 6, "hidden": 8, "sample_size": 1000, "seed": 3}
    alone = detectors.get("vae", **params).fit(cube).score(cube).values
    stop, loads = threading.Event(), [0]

    def load_and_copy():
        while not stop.is_set():
            copy.deepcopy(load_model(path))
            loads[0] += 1

    other = threading.Thread(target=load_and_copy)
    other.start()
    try:
        beside = detectors.get("vae", **params).fit(cube).score(cube).values
    finally:
        stop.set()
        other.join()
    assert loads[0] > 0
    np.testing.assert_array_equal(beside, alone)
