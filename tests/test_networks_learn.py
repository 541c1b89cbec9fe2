"""Every network's map comes from what ``fit`` learnt, not from its random initialisation.

The models' other tests check one optimiser step and the formulas of each map, and their
"detects" tests use scenes an untrained network already solves. Here each detector is
trained as ``fit`` trains it and compared with the same detector, same seed, whose
optimisers take no step: a background on a plane in spectral space, with targets moved a
little off it, is found only by a network that has learnt the plane.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hsad import detectors
from hsad.cube import make_cube
from hsad.detectors.neural import NeuralDetector

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import untrained_baseline  # noqa: E402  (a script of the repository: it must import)

# the map each network's training makes detect this scene within a test's budget, and its
# epochs (the defaults but for adae and alad, whose training is longer here); measured over
# seeds 0-7, trained / untrained AUC: 0.876-1.0 / 0.72-0.81, margin ≥ 0.10. The test trains
# at seed 0: over seeds 8-39 anogan fell below 0.85 on 4 of 32, so another seed is not as
# safe; seed 0 itself is stable (input perturbed at float32 rounding, 12 times: anogan
# 0.977-0.981, alad 0.983-0.984), which is what another CPU's kernels amount to
LEARNT_MAP = {
    "ae": ("score", None), "aae": ("score", None), "alae": ("score", None),
    "vae": ("score", None), "cavga": ("error", None), "anogan": ("score", None),
    "adae": ("g_error", 60), "alocc": ("r_error", None), "alad": ("l1", 32),
}
NETWORKS = sorted(n for n in detectors.available()
                  if issubclass(type(detectors.get(n)), NeuralDetector))


def plane_scene(rows=32, cols=32, bands=30, n_targets=40, offset=0.1, seed=0):
    """Background spectra on a plane (mixtures of three smooth endmembers, noise 0.005);
    ``n_targets`` background pixels moved off the plane by ``offset`` rms per band, on
    either side. Each target lies inside the background's range in every band, so a
    network has to learn the plane to find it. Returns (cube, truth)."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, bands)
    endmembers = np.stack([1 + 0.5 * np.sin(2 * np.pi * wl), 1 + 0.5 * np.cos(3 * np.pi * wl),
                           1 + 0.4 * wl])
    cube = rng.dirichlet([1, 1, 1], size=(rows, cols)) @ endmembers
    truth = np.zeros(rows * cols, bool)
    truth[rng.choice(rows * cols, n_targets, replace=False)] = True
    truth = truth.reshape(rows, cols)
    basis, _ = np.linalg.qr(np.c_[endmembers.T, rng.normal(size=(bands, 1))])
    off_plane = basis[:, 3] * np.sqrt(bands)  # orthogonal to the plane, unit rms
    cube[truth] += offset * rng.choice([-1.0, 1.0], (n_targets, 1)) * off_plane
    cube += rng.normal(0, 0.005, cube.shape)
    return make_cube(cube.astype(np.float32), wavelength=400 + 2000 * wl), truth


@pytest.fixture(scope="module")
def scene():
    return plane_scene()


def _maps(name, cube, train=True, epochs=None):
    """The maps of ``name`` fitted on ``cube`` (seed 0); with ``train=False`` its optimisers
    take no step (the benchmark's own switch), so the networks keep their initial weights."""
    params = dict(progress=False, device="cpu", seed=0)
    if epochs is not None:
        params["epochs"] = epochs
    with contextlib.nullcontext() if train else untrained_baseline.no_optimiser_steps():
        return detectors.get(name, **params).fit(cube).score_stages(cube)


def test_every_network_is_tested_here():
    assert set(LEARNT_MAP) | {"hadgan", "fanogan", "egbad", "ganomaly", "skip-ganomaly"} \
        == set(NETWORKS)


@pytest.mark.parametrize("name", sorted(LEARNT_MAP))
def test_training_makes_the_network_find_what_its_initialisation_cannot(name, scene):
    cube, truth = scene
    stage, epochs = LEARNT_MAP[name]
    trained = _maps(name, cube, epochs=epochs)[stage].values
    untrained = _maps(name, cube, train=False, epochs=1)[stage].values
    auc = roc_auc_score(truth.ravel(), trained.ravel())
    auc_untrained = roc_auc_score(truth.ravel(), untrained.ravel())
    assert auc > 0.85 and auc > auc_untrained + 0.08, (auc, auc_untrained)


@pytest.mark.parametrize("name, stage", [("fanogan", "score"), ("egbad", "score"),
                                         ("ganomaly", "score"), ("skip-ganomaly", "score"),
                                         ("hadgan", "d_spectral")])
def test_the_gan_maps_are_those_of_the_trained_networks(name, stage, scene):
    """These GANs do not learn the plane well enough in a test's budget (measured: their
    maps gain < 0.1 AUC, and fanogan's and skip-ganomaly's rank pixels as their untrained
    networks do, rank correlation 0.98-0.998; HADGAN's training is shown by
    ``test_hadgan_beats_rx_on_a_curved_background``), so here the check is that the map is
    the trained networks' and not the initial ones'."""
    cube, _ = scene
    trained = _maps(name, cube)[stage].values
    untrained = _maps(name, cube, train=False)[stage].values
    change = np.median(np.abs(trained - untrained)) / np.median(np.abs(untrained))
    assert change > 0.05, change
