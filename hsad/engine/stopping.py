"""Stopping torch inference under way (Ctrl-C, SIGTERM).

A signal reaches only the main thread; the batches of a scene's tiles run in the
scheduler's worker threads, which the interpreter waits for on its way out. Their loops
(:func:`hsad.engine.tiles.infer_batches`, :func:`hsad.nn.latent_search.latent_search`)
take a :func:`mark` when they start and :func:`check` it between batches or steps, so that
after :func:`stop_inference` they end within one batch instead of finishing their tile.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_stops = 0  # how many times stop_inference was called


class InferenceStopped(RuntimeError):
    """Inference begun before :func:`stop_inference` was called."""


def stop_inference() -> None:
    """Stop every inference loop under way at its next batch; later ones run normally."""
    global _stops
    with _lock:
        _stops += 1


def mark() -> int:
    """The current stop count, taken when a loop starts."""
    return _stops


def check(since: int) -> None:
    """Raise :class:`InferenceStopped` if :func:`stop_inference` was called since
    :func:`mark` returned ``since``."""
    if _stops != since:
        raise InferenceStopped("inference stopped (interrupted)")


__all__ = ["InferenceStopped", "check", "mark", "stop_inference"]
