"""Write-then-rename, so that a failed or interrupted write leaves nothing behind.

Temporary files sit beside their target as ``.<name>.<host>-<pid>.<random><suffix>.part``.
One left by a killed process (SIGKILL, power loss) never blocks a later write: each
write picks a fresh name, and the next write of the same target deletes those whose
process, on this host, no longer runs. A file whose write fails because the disk is full
is removed and reported as :class:`~hsad.errors.OutputError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hsad.errors import OutputError

#: errno values that mean "no room for the output" (disk full, quota, file-size limit).
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: Short tag of this host in temporary names (a PID is only meaningful on its own host).
HOST = hashlib.blake2s(socket.gethostname().encode(), digest_size=3).hexdigest()

_KEEP_EXISTING: contextvars.ContextVar[bool] = contextvars.ContextVar("hsad_keep_existing",
                                                                      default=False)
_PLACED: contextvars.ContextVar[list | None] = contextvars.ContextVar("hsad_placed",
                                                                     default=None)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


@contextlib.contextmanager
def keep_existing(keep: bool = True) -> Iterator[list[tuple[Path, int, int]]]:
    """Inside the block, :func:`atomic_path` never replaces a file that exists when it
    renames its result into place (a file created meanwhile by another process): it
    raises :class:`OutputError` instead (``keep=False``: it replaces it). Yields the list
    of ``(path, st_dev, st_ino)`` of the files placed in the block, in order."""
    placed: list[tuple[Path, int, int]] = []
    tokens = _KEEP_EXISTING.set(bool(keep)), _PLACED.set(placed)
    try:
        yield placed
    finally:
        _PLACED.reset(tokens[1])
        _KEEP_EXISTING.reset(tokens[0])


def _record(target: Path) -> None:
    placed = _PLACED.get()
    if placed is not None:
        with contextlib.suppress(OSError):
            st = os.stat(target)
            placed.append((target, st.st_dev, st.st_ino))


def _alive(pid: int) -> bool:
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
    pattern = re.compile(rf"\.{re.escape(target.name)}\.{HOST}-(\d+)\..*\.part(\.aux\.xml)?")
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def temp_file(target: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create an empty temporary file beside ``target`` (usual permissions) and return it;
    ``suffix`` (default: the target's) goes before ``.part``. Removes stale ones first."""
    target = Path(target)
    remove_stale(target)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{HOST}-{os.getpid()}.",
        suffix=(target.suffix if suffix is None else suffix) + ".part", dir=target.parent,
    )
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    return Path(tmp)


def _chain(exc: BaseException) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out and len(out) < 8:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def write_failure(exc: BaseException, target: Path) -> str | None:
    """Why writing ``target`` failed, when ``exc`` says the disk is full or a write failed
    (GDAL reports "Write error" without errno: the free space then tells); else None."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, OSError) and e.errno in FULL:
            return os.strerror(e.errno).lower()
    if not any(type(e).__module__.startswith("rasterio") and "write" in str(e).lower()
               for e in chain):
        return None
    with contextlib.suppress(OSError):
        st = os.statvfs(target.parent)
        if st.f_bavail * st.f_frsize < 2**20:
            return os.strerror(errno.ENOSPC).lower()
    return f"write failed (disk full?): {chain[-1]}"


def _place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; under :func:`keep_existing`, only if it is absent."""
    if not _KEEP_EXISTING.get():
        os.replace(tmp, target)
        _record(target)
        return
    appeared = OutputError("appeared while hsad was writing it and was left as it is "
                           "(give --overwrite to replace it)", target)
    try:
        os.link(tmp, target)  # atomic, and fails if the target exists
    except FileExistsError:
        raise appeared from None
    except OSError:  # no hard links on this file system: check, then rename
        if os.path.lexists(target):
            raise appeared from None
        os.replace(tmp, target)
        _record(target)
        return
    os.unlink(tmp)
    _record(target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception, KeyboardInterrupt included, the temporary file is removed and
    ``path`` is untouched; a full disk (ENOSPC, EDQUOT, EFBIG) becomes an
    :class:`OutputError` naming ``path``. ``suffix`` defaults to the target's suffix (GDAL
    picks drivers by it). Missing parent folders are created.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temp_file(target, suffix)
    try:
        yield tmp_path
        _place(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        reason = write_failure(exc, target)
        if reason:
            raise OutputError(f"cannot write: {reason}; nothing was written", target) from exc
        raise


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for files that belong together (ENVI data + header).

    All are renamed into place only after the block succeeds.
    """
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(p)) for p in paths]
        yield tmps
