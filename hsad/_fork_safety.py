"""A child forked from a process that has computed with dask (``multiprocessing``'s default
``fork`` start on Linux, ``joblib``'s ``multiprocessing`` backend) holds the parent's thread
pools without their threads: its first computation queued its tasks on workers that do not
exist and waited for ever (dask/dask#8218). After a fork the child drops dask's threaded
scheduler's pools (and hsad's own, :mod:`hsad.engine.morphology`), so that it makes its own.
Registered when ``hsad`` is imported; it touches only modules already loaded. A fork while
another thread of the parent computes can still leave the child waiting on a lock that
thread held (dask's, Python's), which no hook can release: docs/detectors.md says so."""

from __future__ import annotations

import os
import sys
import threading


def _fresh_pools_in_child() -> None:
    threaded = sys.modules.get("dask.threaded")
    if threaded is not None:
        threaded.default_pool = None
        threaded.pools.clear()
        threaded.pools_lock = threading.Lock()  # another thread may have held it at the fork
        threaded.main_thread = threading.current_thread()
    morphology = sys.modules.get("hsad.engine.morphology")
    if morphology is not None:
        morphology.forget_pool()


def install() -> None:
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_fresh_pools_in_child)
