"""The CUDA inference path (skipped without a CUDA GPU).

Run on the project's lent CUDA machine by ``benchmarks/run_on_cuda_machine.sh``. The
tolerances are those of float32 products summed in another order on another processor
(about 1e-6 relative each, over a few hundred terms), not of one machine's rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from hsad import detectors, engine
from hsad.synthetic import make_scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def test_infer_batches_on_cuda_equal_the_cpu_with_either_preparation():
    net = _net()
    gpu = _net().cuda()
    x = np.random.default_rng(0).normal(size=(1000, 6)).astype(np.float32)
    centre, scale = np.float32(0.5), np.float32(2.0)
    keys = np.arange(1000) * 3

    def cpu_prepare(b):
        return (torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)) - centre) / scale

    def forward(net):
        def run(x, k):  # keys reach forward batch by batch
            return net(x) + torch.as_tensor(k, dtype=torch.float32, device=x.device)[:, None]
        return run

    want = engine.infer_batches(forward(net), x, prepare=cpu_prepare, batch=77, keys=keys)
    for kwargs in ({"prepare": cpu_prepare},
                   {"prepare": cpu_prepare, "on_device": lambda t: (t - centre) / scale}):
        got = engine.infer_batches(forward(gpu), x, batch=77, keys=keys, device="cuda",
                                   **kwargs)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # integers are converted in the copy; a reduction keeps only its result per batch
    ints = (x * 100).astype(np.int16)
    summed = engine.infer_batches(gpu, ints, on_device=lambda t: t / 100, batch=300,
                                  device="cuda", reduce=lambda y: y.sum(axis=1, keepdims=True))
    with torch.no_grad():
        ref = net(torch.from_numpy(ints.astype(np.float32)) / 100).sum(dim=1, keepdim=True)
    np.testing.assert_allclose(summed, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_bf16_autocast_runs_in_bf16_on_cuda():
    gpu = _net().cuda()
    x = np.random.default_rng(1).normal(size=(4096, 6)).astype(np.float32)
    fp32 = engine.infer_batches(gpu, x, device="cuda")
    bf16 = engine.infer_batches(gpu, x, device="cuda", precision="bf16")
    assert bf16.dtype == np.float32
    assert not np.array_equal(bf16, fp32)  # autocast took effect
    np.testing.assert_allclose(bf16, fp32, atol=0.05)  # bf16 keeps 8 bits of mantissa


@pytest.fixture(scope="module")
def scene():
    return make_scene(rows=48, cols=48, bands=30, n_targets=6, road=False, seed=3)


def test_normalisation_on_the_gpu_equals_the_cpu(scene):
    det = detectors.get("fanogan", epochs=2, encoder_epochs=2, sample_size=1000,
                        progress=False, device="cpu", seed=0).fit(scene.cube)
    rng = np.random.default_rng(2)
    raw = (0.3 + 0.1 * rng.normal(size=(2000, det.n_bands_))).astype(np.float32)
    raw[::97] = np.nan  # NaN → 0 on both
    raw[5, 3] = 1e12  # clipped on both, with the same warning
    with pytest.warns(Warning, match="spreads from the training sample"):
        cpu = det._prepare(raw).numpy()
    with pytest.warns(Warning, match="spreads from the training sample"):
        gpu = det._normalise(torch.from_numpy(raw).cuda()).cpu().numpy()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=1e-7)  # a subtraction, a division


@pytest.mark.parametrize("name, params", [
    ("fanogan", {"epochs": 3, "encoder_epochs": 3}),
    ("hadgan", {"epochs": 5, "output": "d_spectral"}),
])
def test_a_cpu_trained_model_scores_the_same_on_cuda(scene, name, params):
    det = detectors.get(name, **params, sample_size=1500, progress=False, device="cpu",
                        seed=0).fit(scene.cube)
    on_cpu = det.score(scene.cube).values
    det.set_params(device="cuda")
    on_gpu = det.score(scene.cube).values
    assert det.device_.type == "cuda"
    spread = np.nanstd(on_cpu)
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-4 * spread)
    truth = scene.truth.values.ravel()
    assert abs(roc_auc_score(truth, on_gpu.ravel()) - roc_auc_score(truth, on_cpu.ravel())) \
        < 1e-3
