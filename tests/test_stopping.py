"""Ctrl-C and SIGTERM end torch inference under way within a batch (hsad.stopping):
the scene's tiles run in worker threads, which a signal does not reach and which the
interpreter waits for on its way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from hsad import stopping
from hsad.engine.inference import infer_batches
from hsad.nn.latent_search import latent_search


def _in_a_thread(work):
    """Run ``work()`` in a thread; return (thread, box holding its exception)."""
    box = {}

    def run():
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def _stop_once(calls, stopped, at=3):
    """Once ``at`` batches have run, stop the inference and let the loop go on."""
    deadline = time.monotonic() + 60
    while calls[0] < at and time.monotonic() < deadline:
        time.sleep(0.005)
    stopping.stop_inference()
    stopped.set()


def _held_after(at, calls, stopped):
    """A step that, from its ``at``-th call on, waits until the stop was sent (so the test
    does not depend on how fast either thread runs)."""
    calls[0] += 1
    if calls[0] >= at:
        stopped.wait(60)


def test_infer_batches_ends_at_the_next_batch_and_later_runs_are_unaffected():
    calls, stopped = [0], threading.Event()

    def forward(x):
        _held_after(3, calls, stopped)
        return x

    inputs = np.zeros((100, 3), np.float32)  # 100 batches of one row
    thread, box = _in_a_thread(lambda: infer_batches(forward, inputs, batch=1))
    _stop_once(calls, stopped)
    thread.join(60)
    assert isinstance(box.get("error"), stopping.InferenceStopped)
    assert calls[0] == 3  # the batch under way when the stop came was the last
    # a run begun after the stop runs whole
    np.testing.assert_array_equal(infer_batches(lambda x: x + 1, inputs, batch=7), inputs + 1)


def test_a_latent_search_ends_at_the_next_step():
    calls, stopped = [0], threading.Event()

    def objective(z):
        _held_after(3, calls, stopped)
        return (z ** 2).sum(dim=1)

    z0 = torch.ones(4, 2)
    thread, box = _in_a_thread(lambda: latent_search(objective, z0, steps=100_000))
    _stop_once(calls, stopped)
    thread.join(60)
    assert isinstance(box.get("error"), stopping.InferenceStopped)
    assert calls[0] == 3
    z, loss = latent_search(lambda z: (z ** 2).sum(dim=1), z0, steps=50, lr=0.1)
    assert float(loss.max()) < float((z0 ** 2).sum(dim=1).min())


def test_ctrl_c_in_a_detector_method_stops_its_worker_threads():
    """A Python user's Ctrl-C (a notebook's "interrupt") raises KeyboardInterrupt in the main
    thread only. Every detector method then stops the inference its worker threads are
    running, which would otherwise compute on in the background (AnoGAN: a core busy for
    40 s after the interrupt, measured before the change)."""
    from hsad.detectors.base import BaseDetector

    calls, started, box = [0], threading.Event(), {}

    def forward(x):
        calls[0] += 1
        started.set()
        time.sleep(0.001)
        return x

    class Busy(BaseDetector):
        def score(self, cube):
            inputs = np.zeros((10_000, 3), np.float32)  # about 10 s of batches of one row
            box["thread"], box["result"] = _in_a_thread(
                lambda: infer_batches(forward, inputs, batch=1))
            started.wait(60)
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    with pytest.raises(KeyboardInterrupt):
        Busy().score(np.zeros((2, 2, 3), np.float32))
    box["thread"].join(60)
    assert isinstance(box["result"].get("error"), stopping.InferenceStopped)
    assert calls[0] < 10_000


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_ends_a_long_latent_search_without_waiting_for_the_tile(tmp_path):
    """AnoGAN at its longest search (10,000 steps per pixel) on a 96 x 96 scene: about a
    minute of scoring on 2 cores after a second of training. SIGTERM 8 s after the start
    (start-up and training done, the search under way) ends the run with 143 and the one
    line within seconds, leaving no file; before, the run went on until the search of its
    tile was done."""
    from test_cli_interrupts import _scene, temporaries

    scene = _scene(tmp_path, 96)
    out = tmp_path / "out" / "a.tif"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "hsad.cli.main", "detect", str(scene), "-m", "anogan",
           "-p", "epochs=1", "-p", "hidden=8", "-p", "search_steps=10000", "-p",
           "sample_size=256", "--device", "cpu", "--no-progress", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    waited = time.monotonic() - sent
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "error: terminated", err
    assert waited < 20, waited
    assert not out.exists() and temporaries(out.parent) == []


def test_stop_work_stops_the_area_filters_and_the_inference():
    from hsad.engine import morphology

    filters, inference = morphology._stops.mark(), stopping.mark()
    stopping.stop_work()
    assert morphology._stops.stopped_since(filters)
    with pytest.raises(stopping.InferenceStopped):
        stopping.check(inference)


def test_a_recorded_signal_stops_the_loops_that_check_for_stops():
    """A signal the command line recorded (:func:`hsad.stopping.signalled`) but Python could
    not raise stops what checks for stops: the inference's batches, the area filters'
    jobs, and the tile sweeps run under a tile bar; cleared, they run again."""
    import dask.array as da

    from hsad.engine.scheduler import TileProgress

    counter = stopping.StopCounter()
    begun = counter.mark()
    stopping.signalled(KeyboardInterrupt())
    try:
        assert counter.stopped_since(begun)
        with pytest.raises(stopping.InferenceStopped):
            stopping.check(stopping.mark())
        with pytest.raises(KeyboardInterrupt), TileProgress(disable=True):
            da.ones(10, chunks=2).sum().compute(scheduler="sync")
    finally:
        stopping.clear_signalled()
    assert not counter.stopped_since(begun)
    with TileProgress(disable=True):
        assert da.ones(10, chunks=2).sum().compute(scheduler="sync") == 10


def test_a_recorded_signal_stops_training_at_its_next_batch():
    """Training checks for a signal Python could not raise between batches."""
    import torch

    from hsad.nn.trainer import Trainer

    steps = []
    trainer = Trainer(epochs=3, batch_size=4, progress=False)
    stopping.signalled(KeyboardInterrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit(lambda batch: steps.append(1) or {"loss": 0.0}, torch.zeros(16, 2))
    finally:
        stopping.clear_signalled()
    assert steps == []
    trainer.fit(lambda batch: steps.append(1) or {"loss": 0.0}, torch.zeros(16, 2))
    assert len(steps) == 12
