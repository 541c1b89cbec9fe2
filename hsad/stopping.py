"""Stopping work under way (Ctrl-C, SIGTERM), with no dependencies.

A signal reaches only the main thread; a scene's tiles and the area filters run in worker
threads, which the interpreter waits for on its way out. A :class:`StopCounter` counts the
stops asked: a loop takes a :meth:`~StopCounter.mark` when it starts and asks
:meth:`~StopCounter.stopped_since` as it goes, so that later loops run normally.

The networks' inference (:func:`hsad.engine.inference.infer_batches`,
:func:`hsad.nn.latent_search.latent_search`) uses :func:`mark` and :func:`check` between
batches or search steps, so that after :func:`stop_inference` it ends within one batch
instead of finishing its tile; the area filters have their own counter
(:func:`hsad.engine.morphology.stop_filters`). :func:`stop_work` stops both: the command line
calls it on Ctrl-C and SIGTERM, and every detector's ``fit``/``score`` on a
``KeyboardInterrupt``, so that a Python user's Ctrl-C (a notebook's "interrupt") does not
leave worker threads computing in the background.
"""

from __future__ import annotations

import sys
import threading


class StopCounter:
    """How many stops were asked; loops compare it with the count when they began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def stop(self) -> None:
        """Stop every loop under way; loops begun later run normally."""
        with self._lock:
            self._count += 1

    def mark(self) -> int:
        """The current count, taken when a loop starts."""
        return self._count

    def stopped_since(self, mark: int) -> bool:
        """Whether a stop was asked since :meth:`mark` returned ``mark``, or a signal the
        command line received is pending (:func:`signalled`)."""
        return self._count != mark or bool(_SIGNALLED)


class InferenceStopped(RuntimeError):
    """Inference begun before :func:`stop_inference` was called."""


_INFERENCE = StopCounter()


def stop_inference() -> None:
    """Stop every inference loop under way at its next batch; later ones run normally."""
    _INFERENCE.stop()


def mark() -> int:
    """The inference stop count, taken when a loop starts."""
    return _INFERENCE.mark()


def check(since: int) -> None:
    """Raise :class:`InferenceStopped` if :func:`stop_inference` was called since
    :func:`mark` returned ``since``."""
    if _INFERENCE.stopped_since(since):
        raise InferenceStopped("inference stopped (interrupted)")


#: The exception a signal handler of the command line raised (Ctrl-C, SIGTERM, SIGHUP),
#: until the command ends: see :func:`signalled`.
_SIGNALLED: list[BaseException] = []


def signalled(exc: BaseException) -> BaseException:
    """Record ``exc``, which a signal handler is about to raise in the main thread, and
    return it. Raised while that thread runs a finaliser or a weakref callback (an
    import's module lock, a file closed by the garbage collector), it is printed and lost,
    and the work would go on to its end: :func:`raise_if_signalled` raises it again at the
    next tile task under a tile bar, training batch and output placed
    (:mod:`hsad.io.atomic`), and the stop counters (inference batches, area-filter jobs)
    report a stop."""
    _SIGNALLED.append(exc)
    return exc


def pending_signal() -> BaseException | None:
    """The exception recorded by :func:`signalled`, or None."""
    return _SIGNALLED[-1] if _SIGNALLED else None


def raise_if_signalled() -> None:
    """Raise the exception a signal handler raised, if it was recorded and is not cleared."""
    exc = pending_signal()
    if exc is not None:
        raise exc


def clear_signalled() -> None:
    """Forget the recorded signal (a command has ended, or begins)."""
    _SIGNALLED.clear()


def stop_work() -> None:
    """Stop the work under way in worker threads: the torch inference at its next batch,
    and the area filters (:mod:`hsad.engine.morphology`, when loaded) not yet begun."""
    morphology = sys.modules.get("hsad.engine.morphology")
    if morphology is not None:
        morphology.stop_filters()
    stop_inference()


__all__ = ["InferenceStopped", "StopCounter", "check", "clear_signalled", "mark",
           "pending_signal", "raise_if_signalled", "signalled", "stop_inference", "stop_work"]
