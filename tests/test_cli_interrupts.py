"""``hsad detect`` stopped part-way (Ctrl-C, SIGTERM, SIGKILL) or run twice at once: no
half-made output, no temporary file left, the next run needs no cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rasterio
from affine import Affine

from hsad.cli.main import main
from hsad.cube import make_cube
from hsad.io.envi_writer import write_envi

#: Tile edge of the runs below: many small tiles make a run last a few seconds.
CHUNKS = "32"


def _scene(folder, size: int):
    """A ``size`` x ``size`` x 32 float32 ENVI scene with a georeference."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(size, size, 32)).astype(np.float32)
    cube = make_cube(data, transform=Affine(30, 0, 500000, 0, -30, 4000000), crs="EPSG:32633")
    return write_envi(cube, folder / "scene.img")


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory):
    """512 x 512 x 32 (32 MB): its map takes seconds to write, time to signal it."""
    return _scene(tmp_path_factory.mktemp("big"), 512)


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):
    return _scene(tmp_path_factory.mktemp("small"), 256)


def command(scene, out, *extra) -> list[str]:
    return [sys.executable, "-m", "hsad.cli.main", "detect", str(scene), "-m", "rx", "-o",
            str(out), "--chunks", CHUNKS, "--no-progress", *extra]


def temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def default_sigint() -> None:
    """In the child before it runs: Ctrl-C and a hang-up act, even when this test process
    inherited them ignored (a shell's background job, nohup), as the child would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start_and_wait_for_a_temporary(cmd, folder, timeout=240) -> subprocess.Popen:
    """Start ``cmd`` and return once it has a temporary output file (it is mid-write)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + timeout
    while not temporaries(folder):
        if proc.poll() is not None:
            pytest.fail(f"hsad ended before it wrote anything: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("hsad wrote no temporary file in time")
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("sig, status, word", [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "terminated"),
    (signal.SIGHUP, 129, "hung up"),  # an ssh session dropped: it left partial outputs
])
def test_a_signal_mid_write_exits_cleanly_and_removes_temporaries(big_scene, tmp_path, sig,
                                                                   status, word):
    out = tmp_path / "rx.tif"
    proc = start_and_wait_for_a_temporary(command(big_scene, out), tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert err.strip().splitlines() == [f"error: {word}"]
    assert list(tmp_path.iterdir()) == []


#: In a fresh interpreter: an hsad command whose signal arrives while Python runs a weakref
#: callback (as the module lock of an import, or a file closed by the collector, runs one),
#: which can only print what the handler raises, then goes on. The signal comes when the
#: first temporary file is made, or after the output named ``{{after}}`` is placed.
SIGNAL_IN_A_CALLBACK = """
import signal, sys, weakref
import hsad.io.atomic as atomic
from hsad.cli.main import main

def fire():
    class Held:
        pass
    held = Held()
    ref = weakref.ref(held, lambda _: signal.raise_signal(signal.SIG{name}))
    del held  # the callback runs here, and the handler inside it

made, place, fired = atomic.temp_file, atomic._Temp.place, []

def temp_file(*args, **kwargs):
    path = made(*args, **kwargs)
    if {after!r} == "" and not fired:
        fired.append(fire())
    return path

def placed(self):
    place(self)
    if {after!r} and self.target.name.endswith({after!r}) and not fired:
        fired.append(fire())

atomic.temp_file, atomic._Temp.place = temp_file, placed
sys.argv = ["hsad", *sys.argv[1:]]
main()
"""


def _signal_in_a_callback(args, name, after=""):
    code = SIGNAL_IN_A_CALLBACK.format(name=name, after=after)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=240, preexec_fn=default_sigint)


@pytest.mark.parametrize("name, status, word", [
    ("INT", 130, "interrupted"), ("TERM", 143, "terminated")])
@pytest.mark.parametrize("after", ["", "rx.tif", ".qml"])
def test_a_signal_python_could_only_print_still_stops_the_command(small_scene, tmp_path,
                                                                   name, status, word, after):
    """A signal whose exception Python printed and went on from ("Exception ignored in:
    <function _get_module_lock.<locals>.cb>": the run wrote its map and exited 0) stops
    the command, whether it came before the first output, between two, or after the last
    was placed: one line, its exit status, nothing left."""
    out = tmp_path / "rx.tif"
    done = _signal_in_a_callback(command(small_scene, out)[3:], name, after)
    assert done.returncode == status, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {word}"]
    assert list(tmp_path.iterdir()) == []


def test_a_signal_python_could_only_print_between_an_envi_files_parts(small_scene,
                                                                       tmp_path):
    """``convert`` places an ENVI file's data, then its header: a signal recorded after
    the data is placed stops it before the header, and the data goes again."""
    done = _signal_in_a_callback(["convert", str(small_scene), str(tmp_path / "out.img")],
                                 "INT", after="out.img")
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == ["error: interrupted"]
    assert list(tmp_path.iterdir()) == []


def test_a_hang_up_under_nohup_is_ignored(big_scene, tmp_path):
    """Started with SIGHUP ignored (nohup), a run goes on when its terminal closes."""
    out = tmp_path / "rx.tif"

    def nohup() -> None:
        default_sigint()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen(command(big_scene, out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=nohup)
    deadline = time.monotonic() + 240
    while not temporaries(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert out.exists() and temporaries(tmp_path) == []


@pytest.mark.parametrize("sig, status, word", [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "terminated"),
    (signal.SIGHUP, 129, "hung up"),
])
def test_a_signal_while_the_area_filters_run_stops_them(tmp_path, capsys, monkeypatch, sig,
                                                         status, word):
    """The fusion's area filters of a large scene run in a pool of threads (four component
    images, two at a time): Ctrl-C or SIGTERM reaching hsad while they run stops it with
    one line and no files, and the filters not yet begun are dropped."""
    from hsad.engine import morphology

    rng = np.random.default_rng(1)
    data = rng.normal(size=(1024, 1024, 8)).astype(np.float32)
    scene = write_envi(make_cube(data), tmp_path / "scene.img")
    out_dir = tmp_path / "out"
    real, began, release = morphology.attribute_response, [], threading.Event()

    def held(image, areas, **kwargs):  # the filters wait until hsad has handled the signal
        began.append(threading.current_thread().name)
        if len(began) == 2:
            os.kill(os.getpid(), sig)
        release.wait(60)
        return real(image, areas, **kwargs)

    monkeypatch.setattr(morphology, "attribute_response", held)
    monkeypatch.setattr(morphology, "_pool", None)  # a pool of exactly two threads
    monkeypatch.setattr(morphology, "_pool_size", 0)
    monkeypatch.setattr("hsad.engine.scheduler.cpu_count", lambda: 2)
    # as a terminal's run has them, even where this test runs in the background or under
    # nohup (SIGINT and SIGHUP inherited ignored: hsad leaves an ignored signal ignored)
    previous = {s: signal.signal(s, signal.default_int_handler if s == signal.SIGINT
                                 else signal.SIG_DFL)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with pytest.raises(SystemExit) as exc:
            main(["detect", str(scene), "-m", "aed", "-o", str(out_dir / "aed.tif"),
                  "--no-progress"])
    finally:
        release.set()
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert exc.value.code == status
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {word}"]
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    time.sleep(1)  # the two held filters finish; the other two must not begin
    assert len(began) == 2 and all(n.startswith("hsad-area-filters") for n in began)


def test_sigkill_leaves_no_target_and_the_next_run_needs_no_cleanup(big_scene, tmp_path):
    out = tmp_path / "rx.tif"
    proc = start_and_wait_for_a_temporary(command(big_scene, out), tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    stale = temporaries(tmp_path)
    assert stale and all(name.startswith(".rx.tif.") for name in stale)
    done = subprocess.run(command(big_scene, out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["rx.qml", "rx.tif"]  # no temporaries left
    with rasterio.open(out) as src:
        assert src.read(1).shape == (512, 512) and np.isfinite(src.read(1)).all()


def test_keyboard_interrupt_in_a_dask_worker_thread(big_scene, tmp_path, capsys, monkeypatch):
    """Ctrl-C as it reaches a tile task in a worker thread (dask re-raises it in the main
    thread): the streaming GeoTIFF writer and atomic_path clean up, exit status 130."""
    import threading

    from hsad.io import geotiff_writer

    real, seen = geotiff_writer._WindowWriter.__setitem__, []

    def interrupted(self, key, block):
        seen.append(threading.current_thread() is threading.main_thread())
        if len(seen) == 2:
            raise KeyboardInterrupt
        real(self, key, block)

    monkeypatch.setattr(geotiff_writer._WindowWriter, "__setitem__", interrupted)
    for extra in ([], ["--cog"]):
        seen.clear()
        with pytest.raises(SystemExit) as exc:
            main(["detect", str(big_scene), "-m", "rx", "-o", str(tmp_path / "rx.tif"),
                  "--chunks", "256", "--no-progress", *extra])
        assert exc.value.code == 130
        assert capsys.readouterr().err.strip().splitlines() == ["error: interrupted"]
        assert False in seen  # the interrupt came from a worker thread
        assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- concurrent runs


def _single_run(scene, folder) -> np.ndarray:
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(scene), "-m", "rx", "-o", str(folder / "ref.tif"), "--chunks",
              CHUNKS, "--no-progress"])
    assert exc.value.code == 0
    with rasterio.open(folder / "ref.tif") as src:
        return src.read(1)


def _both(cmds):
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    return [(p.wait(timeout=600), *p.communicate()) for p in procs]


def test_concurrent_runs_to_different_and_to_the_same_output(small_scene, tmp_path,
                                                             tmp_path_factory):
    ref = _single_run(small_scene, tmp_path_factory.mktemp("ref"))
    # float32 maps of float64 sums: runs may differ by summation order, i.e. in the last
    # float32 digit; a torn or mixed file would differ by far more (or not read at all)
    rtol = 1e-6

    def check(path):
        with rasterio.open(path) as src:
            np.testing.assert_allclose(src.read(1), ref, rtol=rtol)

    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    results = _both([command(small_scene, a), command(small_scene, b)])
    assert [r[0] for r in results] == [0, 0], results
    check(a), check(b)

    same = tmp_path / "same.tif"
    results = _both([command(small_scene, same, "--overwrite")] * 2)
    for code, _, err in results:  # each wins whole, or fails with one line
        assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1), err
    check(same)

    alone = tmp_path / "alone.tif"  # without --overwrite exactly one run may write it
    results = _both([command(small_scene, alone)] * 2)
    assert sorted(r[0] for r in results) == [0, 2], results
    err = next(r[2] for r in results if r[0] == 2)
    assert err.startswith(f"error: {alone}: ") and "--overwrite" in err
    check(alone)
    assert temporaries(tmp_path) == []


def test_a_signal_python_could_only_print_is_not_printed_nor_keeps_its_frames():
    """The unraisable hook drops the recorded signal's traceback (the frames where it
    landed hold tiles) and prints nothing of it; anything else goes to the previous hook."""
    import types

    from hsad.cli.main import _unraisable
    from hsad.stopping import clear_signalled, signalled

    seen = []
    hook = _unraisable(seen.append)
    try:
        raise signalled(KeyboardInterrupt())
    except KeyboardInterrupt as exc:
        stop = exc
    try:
        assert stop.__traceback__ is not None
        hook(types.SimpleNamespace(exc_value=stop))
        assert stop.__traceback__ is None and seen == []
        other = types.SimpleNamespace(exc_value=ValueError("x"))
        hook(other)
        assert seen == [other]
    finally:
        clear_signalled()


def test_a_second_signal_waits_for_the_geotiff_write_under_way():
    """``timeout`` signals the process and its group, so a stopped store can meet a second
    SIGINT/SIGTERM while the writer waits for a worker's write: that signal acts once the
    write ended and later writes are dropped; it had raised in the wait, and the dataset
    was closed under the write (a segfault in GDAL)."""
    from hsad.io.geotiff_writer import _WindowWriter

    events = []
    release = threading.Event()

    class SlowDataset:
        def write(self, *args, **kwargs):
            events.append("write started")
            release.wait(5)
            events.append("write ended")

    writer = _WindowWriter(SlowDataset())
    block = np.zeros((2, 2), np.float32)
    worker = threading.Thread(target=writer.__setitem__, args=((slice(0, 2), slice(0, 2)),
                                                               block))
    worker.start()
    while not events:  # the worker holds the lock, writing
        threading.Event().wait(0.01)

    def second_signal_then_release():
        threading.Event().wait(0.2)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        threading.Event().wait(0.3)
        release.set()

    threading.Thread(target=second_signal_then_release).start()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even in the
    try:  # background or under nohup, where SIGINT is inherited ignored
        with pytest.raises(KeyboardInterrupt):
            writer.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    events.append("closed")
    worker.join(5)
    assert events == ["write started", "write ended", "closed"]
    assert writer.closed
    writer[(slice(0, 2), slice(0, 2))] = block  # after close: dropped, nothing written
    assert events == ["write started", "write ended", "closed"]
