"""A dask scheduler named by its address: asked who it is before a client connects, and its
loss during a run said in one line.

``distributed.Client(address, timeout=…)`` waits without end on a port that accepts the
connection but never answers (a stopped scheduler, an HTTP server), and a port that answers
with something else (an SSH banner) is read as a frame of 3.5e18 bytes: ``MemoryError``.
:func:`check_scheduler` asks the address for its identity first, with one deadline for the
whole exchange; :func:`scheduler_lost` turns the errors of a scheduler gone mid-run into
one line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Iterator

from hsad.errors import HsadError, ParameterError


class SchedulerLost(HsadError):
    """The dask scheduler went away during the run."""


async def _identity(address: str, timeout: float) -> dict:
    from distributed.comm import connect
    from distributed.security import Security

    # the TLS context and the other settings a Client takes from dask's config
    comm = await connect(address, timeout=timeout,
                         **Security().get_connection_args("client"))
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def _ask(address: str, timeout: float) -> dict:
    """The identity ``address`` gives, asked on an event loop of a daemon thread (it works
    where a loop already runs, as in a notebook, and a Ctrl-C meanwhile leaves nothing for
    the interpreter to wait for); raises what the exchange raised."""
    outcome: dict = {}

    def run():
        try:
            outcome["reply"] = asyncio.run(asyncio.wait_for(_identity(address, timeout),
                                                            timeout))
        except BaseException as exc:  # noqa: BLE001  handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="hsad-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if thread.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["reply"]


def check_scheduler(address: str, timeout: float) -> None:
    """ParameterError unless a dask scheduler at ``address`` says who it is within
    ``timeout`` seconds: a port that does not answer, answers with other bytes, or is a
    worker's (or a nanny's)."""
    where = f"cannot connect to the dask scheduler at {address!r}"
    try:
        reply = _ask(address, timeout)
    except (asyncio.TimeoutError, TimeoutError):
        raise ParameterError(f"{where}: no answer within {timeout:g} s (a stopped scheduler, "
                             "or another service on that port?)") from None
    except OSError as exc:  # refused, unreachable, unknown host
        raise ParameterError(f"{where}: {exc}") from None
    except (Exception, MemoryError) as exc:  # noqa: BLE001  whatever another service sends
        raise ParameterError(f"{where}: it does not answer as a dask scheduler "
                             f"({type(exc).__name__})") from None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind is None or kind in ("Worker", "Nanny"):
        raise ParameterError(f"{where}: it answers as {kind or 'something else'}, not as a "
                             "scheduler (give the scheduler's address, port 8786 by default)")


class _OneLine(logging.Filter):
    """Log records without their tracebacks: a record that is only a traceback (the
    client's teardown after its scheduler is gone) is dropped, the others keep their line;
    the client's "Failed to reconnect to scheduler …, closing client" is dropped too, as
    :class:`SchedulerLost`'s line says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.getMessage()).startswith("Failed to reconnect"):
            return False
        if record.exc_info or record.exc_text:
            record.exc_info, record.exc_text = None, None
            return bool(str(record.getMessage()).strip())
        return True


@contextlib.contextmanager
def scheduler_lost(address: str) -> Iterator[None]:
    """The block's errors from a scheduler gone mid-run (its tasks cancelled, its
    connection closed) as one :class:`SchedulerLost` line, and the client's log lines
    meanwhile without tracebacks. Put it around the client's block, so that it covers the
    client's teardown too."""
    import distributed.client
    from distributed.comm import CommClosedError

    cancelled = getattr(distributed.client, "FutureCancelledError",
                        concurrent.futures.CancelledError)  # the name is of 2024 on
    client_log, one_line = logging.getLogger("distributed.client"), _OneLine()
    client_log.addFilter(one_line)
    try:
        yield
    except (cancelled, CommClosedError) as exc:
        said = str(exc).rsplit("reason: ", 1)[-1].strip().splitlines()
        reason = said[0].rstrip(".") if said else type(exc).__name__
        raise SchedulerLost(f"lost the dask scheduler at {address!r} during the run "
                            f"({reason})") from None
    finally:
        client_log.removeFilter(one_line)


__all__ = ["SchedulerLost", "check_scheduler", "scheduler_lost"]
