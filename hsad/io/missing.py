"""Why a path holds no file to read: :func:`no_file`."""

from __future__ import annotations

import errno
import os


def no_file(path: str | os.PathLike) -> str:
    """What a reader says of a ``path`` it found no file at: ``"symbolic link loop"`` where
    the path's links go round (``ln -s a a``), else ``"no such file"``."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
    except ValueError:  # a NUL byte: no file can have that name
        pass
    return "no such file"


__all__ = ["no_file"]
