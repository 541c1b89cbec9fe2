"""Where dask runs: the threaded scheduler (default), a local process cluster or a remote one.

- :func:`use_scheduler` is the one context that picks it: ``scheduler=None`` → dask's
  threaded scheduler; ``"threads"``/``"sync"`` likewise; ``workers=N`` → a
  ``distributed.LocalCluster`` of N single-threaded worker processes; any other
  ``scheduler`` string is the address of a running ``dask.distributed`` scheduler.
- :func:`parse_memory` reads ``--memory-limit`` values ("2GB", "512MiB", "25%" of RAM).
- :class:`TileProgress` is a tqdm bar over the tiles of a computation (a dask callback).
- :func:`pull_blocks` lets a writer on this machine receive the blocks of an array
  computed on a cluster, one at a time, so that distributed results are streamed too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator

import dask
import dask.array as da
import dask.local
import dask.threaded
import numpy as np
from dask.callbacks import Callback
from dask.utils import parse_bytes

from hsad.errors import ParameterError
from hsad.progress import bar_style, wanted
from hsad.stopping import raise_if_signalled

#: dask's in-process schedulers, given as functions: given by name ("threads"), dask first
#: looks for a dask.distributed client, which imports distributed (0.4 s) when installed
THREADED = dask.threaded.get
SYNCHRONOUS = dask.local.get_sync
#: Default working-memory budget: 1 GiB, or a quarter of RAM on small machines.
DEFAULT_MEMORY = 2**30
#: ``--workers`` above this many a core is refused (each worker is a process)
MAX_WORKERS_PER_CORE = 4
#: Seconds to wait for a remote scheduler or for local workers to come up.
CONNECT_TIMEOUT = 30
#: Memory of a worker process before any tile (interpreter, numpy, torch, …): added to its
#: share of the budget for its dask memory limit, lest dask pause an idle worker.
WORKER_BASE = 768 * 2**20


def total_memory() -> int:
    """Physical memory of this machine in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def default_memory_limit() -> int:
    """The session's budget (dask config ``hsad.memory_limit``, set by ``hsad detect
    --memory-limit``), else 1 GiB, or a quarter of RAM if that is less."""
    configured = dask.config.get("hsad.memory_limit", None)
    if configured is not None:
        return parse_memory(configured)
    return int(min(DEFAULT_MEMORY, total_memory() // 4))


def parse_memory(value: str | int | float | None) -> int:
    """A memory budget in bytes from ``"2GB"``, ``"1.5GiB"``, ``"512MB"``, ``"25%"``
    (of RAM), a number of bytes, or None (the default budget)."""
    if value is None:
        return default_memory_limit()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        n = int(value)
    elif isinstance(value, float) and np.isfinite(value):
        n = int(value)
    else:
        text = str(value).strip()
        not_a_size = ParameterError(
            f"memory limit {value!r} is not a size (examples: 2GB, 512MiB, 25%)")
        try:
            share = float(text[:-1]) if text.endswith("%") else None
        except ValueError as exc:
            raise not_a_size from exc
        if share is not None and not 0 < share <= 100:
            raise ParameterError(f"memory limit {value!r}: a share of RAM lies in (0, 100] %")
        try:
            n = int(parse_bytes(text)) if share is None else int(share / 100 * total_memory())
        except (ValueError, TypeError, OverflowError) as exc:  # 1e400, inf: not a size
            raise not_a_size from exc
    if n < 16_000_000:
        raise ParameterError(f"memory limit {value!r} is too small (at least 16 MB)")
    return n


def active_client():
    """The ``dask.distributed`` client in use, or None (threaded/sync scheduler)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:
        return None
    if dask.config.get("scheduler", None) not in (None, "dask.distributed"):
        return None  # a local scheduler was asked for explicitly inside the client's scope
    return client


def cpu_count() -> int:
    """The cores this process may use: its CPU affinity and cgroup quota (a SLURM job's,
    ``taskset``'s), as dask's threaded scheduler counts them, not the machine's
    (``os.cpu_count``: 64 for a job holding 4, which cut tiles to 32 × 32 and made lrx
    2.7× slower)."""
    from dask.system import CPU_COUNT

    return max(1, int(CPU_COUNT))


def concurrency() -> int:
    """How many tiles are processed at once: cluster threads, or local threads."""
    client = active_client()
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    if dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded",
                                              SYNCHRONOUS):
        return 1
    return int(dask.config.get("num_workers", None) or cpu_count())


#: ``--scheduler`` names that run in this process.
LOCAL_SCHEDULERS = ("threads", "threading", "sync", "synchronous", "single-threaded")


@contextlib.contextmanager
def use_scheduler(scheduler: str | None = None, workers: int | None = None,
                  memory_limit: str | int | None = None) -> Iterator[object]:
    """Run the dask work of the block on the chosen scheduler; yields the client or None.

    ``workers=N`` starts a LocalCluster of N processes with one thread each; each gets
    ``memory_limit / N`` for its tiles plus ``WORKER_BASE`` for itself as its dask memory
    limit (past which dask spills to disk and pauses it); ``scheduler``
    may be ``"threads"``, ``"sync"`` or a scheduler address (``tcp://host:8786``).
    """
    name = (scheduler or "").strip()
    if name in ("", *LOCAL_SCHEDULERS) and memory_limit is not None and \
            parse_memory(memory_limit) > total_memory():
        warnings.warn(f"memory limit {memory_limit} exceeds this machine's RAM "
                      f"({total_memory() / 1e9:.1f} GB): the tiles may not fit", stacklevel=3)
    if name in ("", "threads", "threading"):
        if workers is not None:
            yield from _local_cluster(int(workers), memory_limit)
            return
        with dask.config.set(scheduler=THREADED):
            yield None
        return
    if workers is not None:
        raise ParameterError("give either --workers (start a local cluster) or --scheduler "
                             "ADDRESS (connect to one), not both")
    if name in ("sync", "synchronous", "single-threaded"):
        with dask.config.set(scheduler=SYNCHRONOUS):
            yield None
        return
    yield from _remote(name)


def remote_scheduler(scheduler: str | None) -> bool:
    """Whether ``scheduler`` is the address of a running dask scheduler (not ``threads``
    or ``sync``): its workers may run elsewhere, in other folders."""
    name = (scheduler or "").strip()
    return bool(name) and name not in LOCAL_SCHEDULERS


#: A scene read whole into memory (MAT v5, a numpy cube) travels inside each graph sent to
#: a cluster: distributed's multi-line "Sending large graph" warning (past 10 MB) would
#: advise loading it with dask, which a user of such a file cannot do.
IN_MEMORY_SCENES = {"distributed.admin.large-graph-warning-threshold": "1TiB"}


def _distributed():
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - distributed is a dev dependency
        raise ParameterError("dask.distributed is not installed: pip install "
                             "'hsad[distributed]'") from exc
    return distributed


def _local_cluster(workers: int, memory_limit) -> Iterator[object]:
    if workers < 1:
        raise ParameterError(f"--workers must be ≥ 1, got {workers}")
    cores = cpu_count()
    if workers > MAX_WORKERS_PER_CORE * cores:
        raise ParameterError(f"--workers {workers}: more than {MAX_WORKERS_PER_CORE} worker "
                             f"processes a core ({cores} here), each a Python process of its "
                             "own; for another machine's cores give its scheduler "
                             "(--scheduler ADDRESS)")
    distributed = _distributed()
    per_worker = parse_memory(memory_limit) // workers + WORKER_BASE
    with _workers_ignore_sigint():
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, memory_limit=per_worker,
                                           dashboard_address=":0",
                                           silence_logs=logging.CRITICAL)
    with cluster, distributed.Client(cluster, timeout=CONNECT_TIMEOUT) as client, \
            dask.config.set(IN_MEMORY_SCENES):
        try:
            yield client
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the teardown's reports would only be noise
            silence_cluster_logs()
            raise


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """SIGINT and SIGHUP ignored while the cluster's worker processes (and
    multiprocessing's resource tracker) start, so that they inherit that (a Python started
    with SIGINT ignored keeps it so): a terminal's Ctrl-C, or its closing, reaches the whole
    foreground process group, and the workers would each print a traceback where the main
    process already stops the work in one line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [s for s in (signal.SIGINT, getattr(signal, "SIGHUP", None)) if s is not None]
    before = {s: signal.signal(s, signal.SIG_IGN) for s in signals}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def silence_cluster_logs() -> None:
    """Mute dask.distributed's loggers (and its event loop's): after an interruption they
    can only report the interruption, as tracebacks."""
    for name in ("distributed", "asyncio", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _remote(address: str) -> Iterator[object]:
    from hsad.engine.scheduler_address import check_scheduler, scheduler_lost

    distributed = _distributed()
    check_scheduler(address, CONNECT_TIMEOUT)
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError, MemoryError) as exc:
        raise ParameterError(f"cannot connect to the dask scheduler at {address!r}: {exc}") \
            from None
    with scheduler_lost(address), client, dask.config.set(IN_MEMORY_SCENES):
        yield client


# ---------------------------------------------------------------- progress


def _key_name(key) -> str:
    return str(key[0] if isinstance(key, tuple) else key)


class TileProgress(Callback):
    """A tqdm bar over the tile tasks of each dask computation run inside it.

    Tile tasks are those whose key name starts with one of ``prefixes``: by default the
    writes of :func:`dask.array.store` (one per output tile) and the per-tile statistics
    of :func:`hsad.engine.stats.cube_moments`. Computations without such tasks show no bar.
    Works with the local schedulers; on a cluster the writes run locally (see
    :func:`pull_blocks`), so the bar still counts tiles written, and the maps kept on the
    cluster (:func:`cluster_progress`) and the streamed statistics
    (:func:`hsad.engine.stats.cube_moments`) get bars of their own.
    """

    PREFIXES = ("store-map", "block_moments")
    _active: list[TileProgress] = []  # the bars asked for, innermost last
    LABELS = {"store-map": "writing", "block_moments": "statistics"}

    def __init__(self, prefixes: Iterable[str] = PREFIXES, disable: bool | None = None,
                 desc: str | None = None):
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.disable = not wanted(None if disable is None else not disable)
        self.desc = desc
        self.bar = None
        self.tiles = 0

    def __enter__(self) -> TileProgress:
        TileProgress._active.append(self)
        return super().__enter__()

    def __exit__(self, *args) -> None:
        if self in TileProgress._active:
            TileProgress._active.remove(self)
        super().__exit__(*args)

    @classmethod
    def current(cls) -> TileProgress | None:
        """The innermost bar asked for, or None."""
        return cls._active[-1] if cls._active else None

    def _matches(self, key) -> bool:
        """Tile keys: ``(prefix-…, i, j)``, or a string key naming the prefix (dask renames
        a chain of tasks it fuses, e.g. ``rechunk-merge-store-map-finalize-…``)."""
        if isinstance(key, tuple):
            return str(key[0]).startswith(self.prefixes)
        return any(p in str(key) for p in self.prefixes)

    def _start_state(self, dsk, state) -> None:
        keys = [k for k in dsk if self._matches(k)]
        self.bar = None
        if not keys:
            return
        from tqdm.auto import tqdm

        first = _key_name(keys[0])
        label = self.desc or next((v for k, v in self.LABELS.items() if k in first), "tiles")
        # a bar asked for inside this one shows the pass: this one counts its tiles unseen
        hidden = self.disable or TileProgress.current() not in (None, self)
        self.bar = tqdm(total=len(keys), desc=label, unit="tile", disable=hidden,
                        **(bar_style() if not hidden else {}))

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        raise_if_signalled()  # a signal Python printed and went on from stops the sweep
        if self.bar is not None and self._matches(key):
            self.bar.update(1)
            self.tiles += 1

    def _finish(self, dsk, state, errored) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cluster_progress(collections, desc: str = "tiles") -> None:
    """Wait for collections persisted on a cluster, with a tqdm bar over their blocks
    when a :class:`TileProgress` bar is asked for (a cluster's tasks run no local
    callback: a HADGAN network pass would otherwise run without a bar)."""
    shown = TileProgress.current()
    if shown is None or shown.disable:
        return
    from distributed import as_completed, futures_of
    from tqdm.auto import tqdm

    futures = futures_of(collections)
    if not futures:
        return
    with tqdm(total=len(futures), desc=f"{desc} (cluster)", unit="tile", **bar_style()) as bar:
        for _ in as_completed(futures):
            bar.update(1)


# ---------------------------------------------------------------- cluster → local blocks


class _Remote:
    """Opaque holder of a future: local dask graphs do not look inside it."""

    __slots__ = ("future",)

    def __init__(self, future):
        self.future = future


def _fetch(holder: _Remote) -> np.ndarray:
    future, holder.future = holder.future, None  # drop it: the cluster frees the block
    return np.asarray(future.result())


def pull_blocks(arr: da.Array, client=None) -> da.Array:
    """``arr`` computed on the cluster, as a local dask array of block fetches.

    All blocks are submitted at once (one graph, so overlapping halos are shared); each
    local task waits for one block, which the cluster then forgets. A local writer
    (``dask.array.store`` on the threaded scheduler) thus receives blocks as they are
    ready without the whole array being gathered. Without a client, ``arr`` is returned.
    """
    client = client or active_client()
    if client is None:
        return arr
    blocks = arr.to_delayed(optimize_graph=True)
    futures = client.compute(list(blocks.ravel()))
    name = "pull-" + dask.base.tokenize(arr.name, id(futures))
    graph = {}
    for index, future in zip(np.ndindex(*blocks.shape), futures, strict=True):
        graph[(name, *index)] = (_fetch, _Remote(future))
    return da.Array(graph, name, arr.chunks, dtype=arr.dtype,
                    meta=np.empty((0,) * arr.ndim, arr.dtype))


@contextlib.contextmanager
def local_writes(client=None) -> Iterator[None]:
    """Inside a cluster session: run local (writer) graphs with enough threads to keep
    every cluster thread busy while blocks are fetched."""
    client = client or active_client()
    if client is None:
        yield
        return
    threads = max(cpu_count(), 2 * concurrency())
    with dask.config.set(scheduler=THREADED, num_workers=threads):
        yield


__all__ = ["TileProgress", "active_client", "concurrency", "default_memory_limit",
           "local_writes", "parse_memory", "pull_blocks", "total_memory", "use_scheduler"]
