"""The names of hsad's temporary files (``.<target>.<host>-<pid>.<random><suffix>.part``
beside the target), and the removal of those that dead processes of this host left
behind: a live writer holds its file's lock (:func:`lock_now`), so a file whose lock is
free and whose process is gone is stale."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX: a writer's lock tells remove_stale its temporary file is live
    import fcntl
except ImportError:  # Windows: no flock, and an open file cannot be renamed there
    fcntl = None


#: Short tag of this host in temporary names (a PID is only meaningful on its own host).
HOST = hashlib.blake2s(socket.gethostname().encode(), digest_size=3).hexdigest()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (on Windows, where ``os.kill(pid, 0)``
    sends a Ctrl-C or ends the process, any PID counts as running: nothing is removed)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(target: str | os.PathLike) -> list[Path]:
    """Delete temporary files of ``target`` left by dead processes of this host; return them.

    Files of running processes (a concurrent write of the same target) are kept.
    """
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(temp_tag(target))}\.{HOST}-(\d+)\..*\.part(\.aux\.xml)?")
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError), _unlocked(entry.path) as free:
                if free:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def lock_now(fd: int) -> bool:
    """Take the exclusive lock of the open file ``fd`` if nobody holds it (no waiting)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def _unlocked(path: str) -> Iterator[bool]:
    """Whether nobody holds the write lock of ``path`` (held by us inside the block)."""
    if fcntl is None:  # no locks to ask (and _alive keeps every file there)
        yield False
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        yield lock_now(fd)
    finally:
        os.close(fd)


#: the longest target name a temporary name holds whole: with the host, PID, random part,
#: a suffix of up to 18 characters, ``.part`` and GDAL's ``.aux.xml`` it stays within the
#: 255 bytes a file name may have
TAG_MAX = 199
#: the longest suffix a temporary name keeps (longer ones are no file extension)
SUFFIX_MAX = 18


def temp_tag(target: Path) -> str:
    """The target's name in its temporary names: whole, or when that would make them too
    long for a file name, its start and a hash of the whole."""
    name = target.name
    if len(os.fsencode(name)) <= TAG_MAX:
        return name
    digest = hashlib.blake2s(os.fsencode(name), digest_size=4).hexdigest()
    start = os.fsencode(name)[:TAG_MAX - 9].decode(errors="ignore")
    return f"{start}~{digest}"


__all__ = ["HOST", "SUFFIX_MAX", "TAG_MAX", "fcntl", "lock_now", "remove_stale", "temp_tag"]
