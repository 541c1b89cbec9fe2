"""The neural-detector base: declared hyperparameters, gradient-needing scores through the
engine (tiled equals whole), pixel-keyed noise, registration and silent-fallback errors."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors import neural_tiles
from hsad.detectors.neural import NeuralDetector
from hsad.errors import HsadError, ParameterError
from hsad.nn.blocks import MLPDecoder
from hsad.nn.latent_search import latent_search
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update


class LatentSearchToy(NeuralDetector):
    """A toy AnoGAN: a generator fit to the scene, scored by a latent search per pixel."""

    name = "toy"
    score_terms = ("error", "z_norm")
    score_needs_grad = True
    latent = 2
    steps: int = 15

    def _build(self, n_bands):
        return {"generator": MLPDecoder(self.latent_size(n_bands), [8], n_bands)}

    def _stages(self):
        gen = self.networks_["generator"]

        def loss(batch, shared):
            z = torch.zeros(batch[0].shape[0], self.latent_size(self.n_bands_))
            return {"loss": ((gen(z) - batch[0]) ** 2).mean()}

        return [Stage("fit", [Update("loss", loss, torch.optim.Adam(gen.parameters()))],
                      int(self.epochs))]

    def _score(self, x, noise: PixelNoise):
        gen = self.networks_["generator"]
        z0 = noise.normal(self.latent_size(self.n_bands_))
        z, err = latent_search(lambda z: ((x - gen(z)) ** 2).mean(dim=1), z0,
                               steps=int(self.steps), lr=0.05)
        return torch.stack([err, z.norm(dim=1)], dim=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cube(chunks):
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(20, 18, 6)) + 3.0).astype(np.float32)
    data[4, 5] = -9999.0
    return make_cube(data, nodata=-9999.0).chunk({"y": chunks[0], "x": chunks[1]})


def test_a_gradient_score_runs_through_the_engine_and_tiling_does_not_change_it(monkeypatch):
    toy = LatentSearchToy(epochs=2, progress=False, device="cpu", sample_size=500)
    whole = _cube((20, 18))
    toy.fit(whole)
    ref = toy.score_stages(whole)
    monkeypatch.setattr(neural_tiles, "INFER_BATCH", 7)  # batches split inside the tiles too
    tiled = toy.score_stages(_cube((7, 5)))
    for name in ("error", "z_norm"):
        a, b = ref[name].values, tiled[name].values
        assert np.isnan(a[4, 5]) and np.isfinite(np.delete(a.ravel(), 4 * 18 + 5)).all()
        # same draws and the same per-pixel descent; only float32 rounding of the batched
        # matrix products may differ, carried through 15 Adam steps
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    # the search descended: the error at the found z is below the error at the start
    x = toy._prepare(np.asarray(whole.values).reshape(-1, 6)[:3])
    with torch.no_grad():
        start = ((x - toy.networks_["generator"](
            PixelNoise(toy.seed, np.arange(3)).normal(2))) ** 2).mean(dim=1)
    assert (ref["error"].values.ravel()[:3] < start.numpy()).all()


def test_pixel_noise_depends_on_the_pixel_not_the_batch():
    keys = np.arange(40, 60)
    full = PixelNoise(5, keys).normal(3)
    part = PixelNoise(5, keys[7:12]).normal(3)
    torch.testing.assert_close(part, full[7:12], rtol=0, atol=0)
    second = PixelNoise(5, keys)
    assert not torch.equal(second.normal(3), second.normal(3))  # one stream per call
    assert not torch.equal(PixelNoise(6, keys).normal(3), full)


def test_hyperparameters_are_declared_once_and_complete():
    det = LatentSearchToy(steps=3)
    assert det.steps == 3 and det.epochs == NeuralDetector.epochs and det.latent == 2
    assert list(det.get_params())[-1] == "steps"
    with pytest.raises(ParameterError, match="unknown parameter 'stepz'"):
        LatentSearchToy(stepz=3)
    with pytest.raises(TypeError, match="declare hyperparameters"):
        type("Bad", (NeuralDetector,), {"__init__": lambda self: None})
    with pytest.raises(TypeError, match="needs a default"):
        type("Bad", (NeuralDetector,), {"__annotations__": {"width": "int"}})


@pytest.mark.parametrize("name", ["hadgan", "fanogan", "ae"])
@pytest.mark.parametrize(("bad", "message"), [({"latent": 0}, "latent must be ≥ 1"),
                                              ({"hidden": 0}, "hidden must be ≥ 1"),
                                              ({"output": "d_all"}, "output must be one of")])
def test_invalid_sizes_are_errors_not_fallbacks(name, bad, message):
    det = detectors.get(name, progress=False, device="cpu", **bad)
    with pytest.raises(ParameterError, match=message) as err:
        det.fit(_cube((20, 18)))
    assert isinstance(err.value, HsadError)


@pytest.mark.parametrize(("name", "bad", "message"), [
    ("hadgan", {"w_ziz": -2.0}, "w_ziz must be ≥ 0"),
    ("hadgan", {"w_shrink": -5.0}, "w_shrink must be ≥ 0"),
    ("hadgan", {"w_adv_z": -1.0}, "w_adv_z must be ≥ 0"),
    ("hadgan", {"w_adv_i": -1.0}, "w_adv_i must be ≥ 0"),
    ("ae", {"lr": float("inf")}, "lr must be a number > 0 within float32's range"),
    ("ae", {"lr": 1e39}, "lr must be a number > 0 within float32"),  # beyond: torch fails
    ("ae", {"weight_decay": 1e39}, "weight_decay must be a finite number within float32"),
    ("ganomaly", {"w_con": float("inf")}, "w_con must be a finite number within float32"),
    ("ganomaly", {"w_con": np.float32("inf")}, "w_con must be a finite number within"),
])
def test_loss_weights_and_rates_are_checked(name, bad, message):
    with pytest.raises(ParameterError, match=message):
        detectors.get(name, progress=False, device="cpu", **bad).fit(_cube((20, 18)))


def test_the_fusion_stages_eps_may_be_infinite():
    """eps=inf is the guided filter's limit (a box mean): the finite-number rule is the
    networks' rates' and weights', not the fusion stage's."""
    cube = _cube((20, 18))
    boxed = detectors.get("ae", **TINY_AE, fusion="paper", eps=float("inf")).fit_score(cube)
    usual = detectors.get("ae", **TINY_AE, fusion="paper").fit_score(cube)
    np.testing.assert_array_equal(np.isfinite(boxed.values), np.isfinite(usual.values))
    assert np.isfinite(boxed.values).sum() > 0


def test_a_training_whose_last_update_diverges_is_an_error_not_a_model():
    # one batch, one epoch: the only loss is computed before the only (exploding) update
    det = detectors.get("ae", **{**TINY_AE, "lr": 1e12, "epochs": 1, "batch_size": 256})
    with pytest.raises(ParameterError, match="training diverged: .* ended (non-finite|beyond)"):
        det.fit(_cube((20, 18)))


def test_latent_none_is_the_reference_size():
    assert detectors.get("fanogan").latent_size(100) == 11  # int(√100 + 1)
    assert detectors.get("fanogan", latent=3).latent_size(100) == 3


def test_registration_discovers_every_module_and_get_imports_one():
    import pkgutil

    import hsad.detectors as package

    found = detectors.available()
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert {"rx", "lrx", "crd", "hadgan", "fanogan", "ae"} <= set(found)
    assert {cls.__module__ for cls in found.values()} <= {f"hsad.detectors.{m}" for m in modules}
    assert "toy" not in found  # classes outside hsad.detectors join only via register()
    code = ("import sys; from hsad import detectors; detectors.get('rx'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name, scored", [("fanogan", False), ("anogan", True)])
def test_fused_maps_run_the_score_only_when_wanted_or_reused(monkeypatch, name, scored):
    """D_SS alone skips the paper score's networks, unless the residual reuses them
    (AnoGAN's G(z*)); the maps are the same as when every stage is scored."""
    from hsad import synthetic

    cube = synthetic.make_scene(rows=24, cols=24, bands=12, seed=2).cube
    det = detectors.get(name, seed=0, progress=False, device="cpu", epochs=1).fit(cube)
    every = det.score_stages(cube)
    calls = []
    score = type(det)._score
    monkeypatch.setattr(type(det), "_score", lambda self, x, noise: calls.append(1) or
                        score(self, x, noise))
    fused = det._maps(cube, {"d_ss"})
    assert bool(calls) is scored
    np.testing.assert_array_equal(fused["d_ss"].values, every["d_ss"].values)


TINY_AE = dict(hidden=8, epochs=2, sample_size=256, batch_size=64, progress=False,
               device="cpu")


def _scene_with_a_fill_value():
    x = 100 + np.random.default_rng(5).normal(size=(24, 24, 10)).astype(np.float32)
    x[12, 12] = -3.4028235e38  # a float fill value nobody declared as nodata
    return make_cube(x)


NETWORKS = sorted(n for n in detectors.available()
                  if issubclass(detectors.available()[n], NeuralDetector))


@pytest.mark.parametrize("name", NETWORKS)
def test_an_undeclared_fill_value_scores_finite_and_warns(name):
    """Its normalised values are clipped (INPUT_CLIP): before, the networks overflowed and
    the most anomalous pixel scored NaN (hidden by the mask as nodata). The sample covers
    every pixel, so the fill pixel is drawn: it is left out of the training (trained on,
    it made cavga's training diverge; in its neighbours' patches it is NaN, as nodata is),
    and scored highest."""
    from hsad.errors import DegenerateDataWarning

    # ALOCC's own score is its discriminator's output, CAVGA's its attention map: neither
    # ranks a pixel by how far it lies from the data (docs/models/), so their reconstruction
    # errors are scored, as in test_networks_learn.py
    params = {**TINY_AE, "sample_size": 24 * 24}
    params.update({"alocc": {"output": "r_error"}, "cavga": {"output": "error"}}.get(name, {}))
    det = detectors.get(name, **{k: v for k, v in params.items()
                                 if k in detectors.available()[name].param_defaults()})
    with pytest.warns(DegenerateDataWarning, match="beyond.*left out of the training"):
        det.fit(_scene_with_a_fill_value())
    assert det.n_train_ == 24 * 24 - 1
    with pytest.warns(DegenerateDataWarning, match="undeclared fill value.*--nodata"):
        scores = det.score(_scene_with_a_fill_value()).values
    assert np.isfinite(scores).all()
    assert np.unravel_index(np.argmax(scores), scores.shape) == (12, 12)


def test_fill_values_in_the_training_sample_are_replaced_by_other_draws():
    """A scene whose every third pixel holds an undeclared fill value: the sample still has
    ``sample_size`` pixels, none of them fill, and the warning counts those drawn."""
    from hsad.errors import DegenerateDataWarning

    x = 100 + np.random.default_rng(6).normal(size=(30, 30, 10)).astype(np.float32)
    x.reshape(-1, 10)[::3] = -3.4028235e38
    det = detectors.get("ae", **{**TINY_AE, "sample_size": 400})
    with pytest.warns(DegenerateDataWarning, match=r"(\d+) pixels beyond.*others drawn") as rec:
        det.fit(make_cube(x))
    assert det.n_train_ == 400
    said = [str(w.message) for w in rec if "pixels beyond" in str(w.message)]
    drawn = int(re.search(r"(\d+) pixels beyond", said[0]).group(1))
    assert 100 < drawn < 300  # about half of 400 valid ones: a third of the draws
    assert np.isfinite(det.scaler_.centre).all() and (det.scaler_.centre > 90).all()


def test_outputs_that_overflow_are_a_model_error_not_a_silent_map():
    from hsad.errors import ModelError

    det = detectors.get("ae", **TINY_AE).fit(_cube((20, 18)))
    with torch.no_grad():
        for p in det.networks_["decoder"].parameters():
            p.mul_(1e36)  # what a damaged model file would hold (files are refused on load)
    with pytest.raises(ModelError, match="outputs are not finite"):
        det.score(_cube((20, 18))).compute()


@pytest.mark.parametrize("seed", [-1, 2**32, 2**70])
def test_a_seed_out_of_range_is_a_parameter_error(seed):
    with pytest.raises(ParameterError, match="seed must lie in"):
        detectors.get("ae", seed=seed, **TINY_AE).fit(_cube((20, 18)))
