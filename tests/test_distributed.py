"""The engine on dask.distributed: a LocalCluster of 2 worker processes gives the maps of the
threaded scheduler; the CLI connects to a scheduler or starts workers; models travel once."""

from __future__ import annotations

import dask
import dask.array as da
import distributed  # a declared [dev] dependency: its absence is a failure, not a skip
import numpy as np
import pytest
import rasterio

from hsad import detectors, engine, synthetic
from hsad.cli.main import main
from hsad.engine.scheduler import WORKER_BASE, active_client, concurrency, use_scheduler
from hsad.errors import ParameterError


@pytest.fixture(scope="module")
def scene_paths(tmp_path_factory):
    scene = synthetic.make_scene(rows=56, cols=48, bands=12, seed=8)
    return synthetic.write_scene(scene, tmp_path_factory.mktemp("scene"))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as c:
        yield c


def _maps(path, out_dir, tag):
    """RX and LRX maps of the scene (6 bands) on 16-px tiles, written with the engine."""
    cube = engine.open_tiled(path, chunks=16).isel(band=slice(0, 6))
    out = {}
    for method, params in (("rx", {}), ("lrx", {"inner": 1, "outer": 5})):
        det = detectors.get(method, **params).fit(cube)
        target = out_dir / f"{tag}_{method}.tif"
        engine.write_map(det.score(cube), target, like=cube, progress=False)
        with rasterio.open(target) as src:
            out[method] = src.read(1)
    return out


def test_cluster_maps_equal_threaded_maps(cluster, scene_paths, tmp_path):
    threaded = _maps(scene_paths["cube"], tmp_path, "threads")
    with use_scheduler(cluster.scheduler_address) as client:
        assert active_client() is client and concurrency() == 2
        clustered = _maps(scene_paths["cube"], tmp_path, "cluster")
    assert active_client() is None
    # BLAS runs single-threaded on the workers: the same sums in another order
    np.testing.assert_allclose(clustered["rx"], threaded["rx"], rtol=1e-5)
    np.testing.assert_array_equal(clustered["lrx"], threaded["lrx"])


def test_cli_connects_to_a_scheduler_address(cluster, scene_paths, tmp_path, capsys):
    args = ["detect", str(scene_paths["cube"]), "-m", "rx", "--chunks", "24", "--no-progress"]
    for tag, extra in (("threads", []), ("cluster", ["--scheduler", cluster.scheduler_address])):
        with pytest.raises(SystemExit) as exc:
            main([*args, "-o", str(tmp_path / f"{tag}.tif"), *extra])
        assert exc.value.code == 0, capsys.readouterr().err
    with rasterio.open(tmp_path / "threads.tif") as a, rasterio.open(tmp_path / "cluster.tif") as b:
        np.testing.assert_allclose(b.read(1), a.read(1), rtol=1e-5)
        assert a.crs == b.crs and a.transform == b.transform


def test_workers_option_starts_and_stops_a_local_cluster(scene_paths, tmp_path):
    cube = engine.open_tiled(scene_paths["cube"], chunks=32)
    ref = detectors.get("rx").fit(cube).score(cube).values
    with use_scheduler(workers=2, memory_limit="400MB") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
        assert limits == [200_000_000 + WORKER_BASE] * 2
        got = detectors.get("rx").fit(cube).score(cube).values
    assert client.status == "closed"
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_bad_scheduler_options_are_clean_errors(monkeypatch):
    import hsad.engine.scheduler

    monkeypatch.setattr(hsad.engine.scheduler, "CONNECT_TIMEOUT", 1)
    with pytest.raises(ParameterError, match="cannot connect"):
        with use_scheduler("tcp://127.0.0.1:9"):
            pass
    with pytest.raises(ParameterError, match="not both"):
        with use_scheduler("tcp://127.0.0.1:9", workers=2):
            pass


@pytest.fixture
def listener():
    """A local port whose server accepts connections and then sends ``reply`` (None:
    nothing, ever): yields a function of ``reply`` that starts one and gives its address."""
    import socket
    import threading

    servers = []

    def start(reply: bytes | None) -> str:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                if reply is not None:
                    conn.sendall(reply)
                servers.append(conn)

        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{server.getsockname()[1]}"

    yield start
    for s in servers:
        s.close()


def test_a_port_that_does_not_answer_as_a_scheduler_is_refused_in_time(monkeypatch, listener,
                                                                        cluster):
    """A port that accepts and never answers (a stopped scheduler) made the CLI wait
    without end, and one answering with other bytes (an SSH banner) was "out of memory"
    (dask read a frame of 3.5e18 bytes); a worker's address is not a scheduler's."""
    import time

    import hsad.engine.scheduler

    monkeypatch.setattr(hsad.engine.scheduler, "CONNECT_TIMEOUT", 1)
    start = time.monotonic()
    with pytest.raises(ParameterError, match="no answer within 1 s"):
        with use_scheduler(listener(None)):
            pass
    assert time.monotonic() - start < 10
    with pytest.raises(ParameterError, match="does not answer as a dask scheduler"):
        with use_scheduler(listener(b"SSH-2.0-OpenSSH_9.6\r\n" + b"x" * 200)):
            pass
    worker = next(iter(cluster.scheduler_info["workers"]))
    with pytest.raises(ParameterError, match="answers as Worker, not as a scheduler"):
        with use_scheduler(worker):
            pass


def test_ctrl_c_while_the_scheduler_is_asked_exits_at_once(listener, scene_paths):
    """Ctrl-C while a silent address was being asked printed "interrupted" at once, but the
    process lived on until the 30 s deadline (the probe's thread was not a daemon)."""
    import signal
    import subprocess
    import sys
    import time

    def default_sigint():
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    cmd = [sys.executable, "-m", "hsad.cli.main", "detect", str(scene_paths["cube"]), "-m",
           "rx", "-o", str(scene_paths["cube"].parent / "never.tif"), "--no-progress",
           "--scheduler", listener(None)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    time.sleep(4)  # imports done, the probe waiting
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip() == "error: interrupted"
    assert time.monotonic() - start < 10


def test_the_probe_connects_with_the_clients_security(monkeypatch):
    """A TLS scheduler (certificates from dask's config) was refused, "does not answer as a
    dask scheduler (TypeError)": the probe connected without the TLS context a Client takes
    from `Security()`. It now passes the client's connection arguments."""
    import distributed.comm
    import distributed.security

    from hsad.engine.scheduler_address import check_scheduler

    seen = {}

    async def connect(address, timeout=None, **kwargs):
        seen.update(kwargs)
        raise OSError("refused")

    monkeypatch.setattr(distributed.comm, "connect", connect)
    monkeypatch.setattr(distributed.security.Security, "get_connection_args",
                        lambda self, role: {"ssl_context": f"context of the {role}"})
    with pytest.raises(ParameterError, match="tls://127.0.0.1:1': refused"):
        check_scheduler("tls://127.0.0.1:1", 1)
    assert seen == {"ssl_context": "context of the client"}


def test_a_scheduler_lost_mid_run_is_one_line():
    """The scheduler killed mid-run gave 88 lines of tracebacks and exit 1 (the client's
    cancelled futures, its teardown's log): one SchedulerLost line, and the client's log
    records there lose their tracebacks; its "Failed to reconnect to scheduler after 30.00
    seconds, closing client", which hsad's line says, had stayed a second line."""
    import logging

    from distributed.client import FutureCancelledError

    from hsad.engine.scheduler_address import SchedulerLost, scheduler_lost

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("distributed.client")
    keep = Keep()
    log.addHandler(keep)
    try:
        with pytest.raises(SchedulerLost) as lost:
            with scheduler_lost("tcp://10.0.0.1:8786"):
                try:
                    raise RuntimeError("teardown")
                except RuntimeError:
                    log.error("", exc_info=True)
                    log.error("Failed to reconnect to scheduler after 30.00 seconds, "
                              "closing client")
                    log.warning("another line", exc_info=True)
                raise FutureCancelledError("k", reason="scheduler-connection-lost.\nClient "
                                           "lost the connection")
    finally:
        log.removeHandler(keep)
    assert str(lost.value) == ("lost the dask scheduler at 'tcp://10.0.0.1:8786' during the "
                               "run (scheduler-connection-lost)")
    assert [(r.getMessage(), r.exc_info) for r in records] == [("another line", None)]


LOADS = {"n": 0}


class Counted:
    """A stand-in model that counts how often a process unpickles it."""

    def __init__(self, factor: float):
        self.factor = factor

    def __setstate__(self, state):
        LOADS["n"] += 1
        self.__dict__.update(state)

    def apply(self, block):
        return block * self.factor


def test_model_node_reaches_each_worker_once(cluster):
    data = da.arange(256.0, chunks=16).reshape(16, 16).rechunk(4)  # 16 tiles
    with use_scheduler(cluster.scheduler_address) as client:
        client.run(lambda: LOADS.update(n=0))
        node = engine.model_node(Counted(2.0))
        tasks = [dask.delayed(engine.call_model)(node, "apply", b)
                 for b in data.to_delayed().ravel()]
        out = dask.compute(*tasks)
        shared = client.run(lambda: LOADS["n"])
        client.run(lambda: LOADS.update(n=0))
        model = Counted(2.0)
        naive = dask.compute(*[dask.delayed(model.apply)(b) for b in data.to_delayed().ravel()])
        per_task = client.run(lambda: LOADS["n"])
    np.testing.assert_array_equal(np.concatenate([o.ravel() for o in out]),
                                  np.concatenate([o.ravel() for o in naive]))
    assert all(n <= 1 for n in shared.values()) and sum(shared.values()) >= 1
    assert sum(per_task.values()) > sum(shared.values())


def test_hadgan_scores_on_the_cluster_equal_threaded_scores(cluster, scene_paths):
    cube = engine.open_tiled(scene_paths["cube"], chunks=28)  # 2 x 2 tiles
    det = detectors.get("hadgan", epochs=1, hidden=8, depth=1, sample_size=400,
                        progress=False, area=9, radius=1, n_components=2,
                        fusion_norm="minmax", seed=1).fit(cube)
    threaded = det.score(cube).values
    with use_scheduler(cluster.scheduler_address):
        clustered = det.score(cube).values
    assert np.isfinite(threaded).all()
    np.testing.assert_allclose(clustered, threaded, rtol=1e-4, atol=1e-6)


def test_relative_inputs_reach_workers_that_run_in_other_folders(cluster, scene_paths,
                                                                 tmp_path, monkeypatch,
                                                                 capsys):
    """A scheduler's workers resolve paths in their own folders (here: where the cluster
    was started): the CLI gives them absolute ones."""
    import shutil

    from hsad.cube import map_like
    from hsad.io import open_cube
    from hsad.io.geotiff_writer import write_mask

    folder = tmp_path / "here"
    shutil.copytree(scene_paths["cube"].parent, folder)
    cube = open_cube(folder / scene_paths["cube"].name)
    valid = np.ones(cube.shape[:2], bool)
    valid[:5] = False
    write_mask(map_like(cube, valid), folder / "valid.tif")
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit) as exc:
        main(["detect", scene_paths["cube"].name, "-m", "rx", "--chunks", "24",
              "--no-progress", "--valid-mask", "valid.tif", "-o", "rx.tif", "--scheduler",
              cluster.scheduler_address])
    assert exc.value.code == 0, capsys.readouterr().err
    with rasterio.open(folder / "rx.tif") as src:
        scores = src.read(1, masked=True)
    assert scores.mask[:5].all() and not scores.mask[5:].any()


def test_a_read_error_on_a_worker_is_one_line(cluster, scene_paths, tmp_path, capsys):
    """A GDAL error chained to hsad's does not survive the trip back from a worker (the
    client gets a plain Exception): the CLI still says it in one line, exit status 2."""
    from hsad.io import open_cube

    values = np.asarray(open_cube(scene_paths["cube"]).values)
    path = tmp_path / "damaged.tif"
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0],
                       width=values.shape[1], count=values.shape[2], dtype="float32",
                       tiled=True, blockxsize=16, blockysize=16, compress="deflate") as dst:
        dst.write(np.moveaxis(values.astype(np.float32), -1, 0))
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(offset + 10)
        f.write(b"\xff" * 200)
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(path), "-m", "rx", "--no-progress", "-o", str(tmp_path / "s.tif"),
              "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith(f"error: {path}: cannot read rows") and err.count("\n") == 1, err
    assert not (tmp_path / "s.tif").exists()


def test_an_hsad_error_relayed_as_a_plain_exception_is_recognised():
    from hsad.cli.main import _relayed_problem

    assert _relayed_problem(Exception("TruncatedFileError('/a b.tif: cannot read rows 0-16')")) \
        == "/a b.tif: cannot read rows 0-16"
    assert _relayed_problem(Exception('FileFormatError("it\'s broken")')) == "it's broken"
    for other in ("ValueError('x')", "TruncatedFileError(x)", "plain words"):
        assert _relayed_problem(Exception(other)) is None


def test_cluster_workers_start_with_the_terminals_ctrl_c_ignored():
    """A terminal's Ctrl-C reaches the whole process group: the workers, started with
    SIGINT ignored (which a new Python keeps), leave the one-line report to the main
    process. The main process's own handler is back once they are started."""
    import signal
    import subprocess
    import sys

    from hsad.engine.scheduler import _workers_ignore_sigint

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP)
    with _workers_ignore_sigint():  # the closing terminal's SIGHUP too (no tracebacks)
        child = subprocess.run([sys.executable, "-c", "import signal; print(*(int("
                                "signal.getsignal(s) == signal.SIG_IGN) for s in "
                                "(signal.SIGINT, signal.SIGHUP)))"],
                               capture_output=True, text=True, check=True).stdout
    assert child.split() == ["1", "1"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP)) == before


def test_maps_kept_on_the_cluster_show_a_bar(cluster, capsys):
    """A cluster runs no local callback: the blocks persisted there get a bar of their own
    when one is asked for, and none otherwise."""
    from hsad.engine.scheduler import TileProgress

    lazy = da.ones((64, 64), chunks=16) + 1
    with use_scheduler(cluster.scheduler_address):
        with TileProgress(disable=False):
            kept = engine.materialise(lazy, memory_limit="64MB")[0]
        assert "maps (cluster)" in capsys.readouterr().err
        with TileProgress(disable=True):
            engine.materialise(lazy, memory_limit="64MB")
        assert "maps (cluster)" not in capsys.readouterr().err
        np.testing.assert_array_equal(kept.compute(), 2.0)
    assert TileProgress.current() is None


def test_streamed_statistics_on_a_cluster_show_a_bar_and_equal_the_local_ones(cluster, capsys):
    """The statistics' blocks run on the cluster, where no local callback sees them: they
    get a bar of their own when one is asked for, and merge in the same order as locally."""
    from hsad.cube import make_cube
    from hsad.engine.scheduler import TileProgress
    from hsad.engine.stats import cube_moments

    rng = np.random.default_rng(3)
    cube = make_cube(da.from_array(rng.normal(size=(96, 80, 7)).astype(np.float32),
                                   chunks=(32, 16, -1)))
    local = cube_moments(cube)
    with use_scheduler(cluster.scheduler_address):
        with TileProgress(disable=False):
            shown = cube_moments(cube)
        assert "statistics (cluster)" in capsys.readouterr().err
        with TileProgress(disable=True):
            quiet = cube_moments(cube)
        assert "statistics (cluster)" not in capsys.readouterr().err
    for moments in (shown, quiet):
        assert moments.n == local.n == 96 * 80
        np.testing.assert_array_equal(moments.mean, local.mean)
        np.testing.assert_array_equal(moments.scatter, local.scatter)


def test_a_scene_held_in_memory_goes_to_the_cluster_without_distributed_warnings(cluster):
    """A MAT v5 scene is read whole; its graph carries it (12 MB here) without the
    multi-line "Sending large graph" advice, which its user could not follow."""
    import warnings

    values = np.ones((280, 280, 40), np.float32)
    with use_scheduler(cluster.scheduler_address), warnings.catch_warnings():
        warnings.simplefilter("error")
        total = da.from_array(values, chunks=(140, 140, 40)).sum().compute()
    assert total == values.size


def test_a_users_client_gets_one_graph_per_pass_and_the_same_map():
    """With the user's own Client active, every HADGAN score made the scheduler warn twice
    "Detected different `run_spec` for key ('_trim-…') … This can cause failures and
    deadlocks": the maps were persisted, then the reductions of them computed from the
    unpersisted graph, which sent the same keys again, optimised otherwise. One graph
    holds both now; the map is the threaded scheduler's."""
    import logging

    scene = synthetic.make_scene(rows=40, cols=40, bands=10, seed=3).cube
    params = dict(epochs=1, batch_size=64, sample_size=400, hidden=16, latent=3,
                  progress=False, device="cpu", seed=0)
    local = np.asarray(detectors.get("hadgan", **params).fit_score(scene))
    said = []

    class Catch(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    catch = Catch(logging.WARNING)
    logger = logging.getLogger("distributed.scheduler")
    logger.addHandler(catch)
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=":0") as c, distributed.Client(c):
            clustered = np.asarray(detectors.get("hadgan", **params).fit_score(scene))
    finally:
        logger.removeHandler(catch)
    assert not [m for m in said if "different `run_spec`" in m], said[:1]
    np.testing.assert_allclose(clustered, local, rtol=1e-5, atol=1e-6)
