"""Progress bars: when to draw them, and how, on a terminal and in a log file.

``progress=None`` (every default): a bar when stderr is a terminal; ``True``: always, into
a log file or a notebook too (``--progress``); ``False``: never. On a terminal a bar
is redrawn as tqdm does and erased when done; into a file or a pipe each bar keeps its
last line and is redrawn at most every :data:`LOG_INTERVAL` seconds, so that ``tail -f``
on a log shows where a long run is. Nothing is drawn where stderr is closed (``2>&-``).
"""

from __future__ import annotations

import sys

#: into a file or a pipe, a bar is redrawn at most every this many seconds
LOG_INTERVAL = 10.0


def stderr_is_terminal() -> bool:
    """Whether stderr is open and a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return callable(isatty) and bool(isatty())
    except (ValueError, OSError):  # closed
        return False


def wanted(progress: bool | None) -> bool:
    """Whether to draw a bar for the ``progress`` asked (see the module's docstring)."""
    if sys.stderr is None or getattr(sys.stderr, "closed", False):
        return False
    return stderr_is_terminal() if progress is None else bool(progress)


def bar_style() -> dict:
    """tqdm keywords for a bar drawn now: transient on a terminal; into a log, its last
    line kept and redrawn every :data:`LOG_INTERVAL` seconds at most."""
    if stderr_is_terminal():
        return {"leave": False, "dynamic_ncols": True}
    return {"leave": True, "mininterval": LOG_INTERVAL, "file": LogStream(sys.stderr)}


class LogStream:
    """Standard error for the bars drawn into a log: a write it refuses (a full disk behind
    ``2>log``) stops the drawing, not the run, whose finished outputs had been removed
    (tqdm itself passes over a terminal's input/output errors only)."""

    def __init__(self, stream):
        self._stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # full, or closed meanwhile
                self.failed = True
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.failed = True

    def __getattr__(self, name):
        return getattr(self._stream, name)


__all__ = ["LOG_INTERVAL", "LogStream", "bar_style", "stderr_is_terminal", "wanted"]
