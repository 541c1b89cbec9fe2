"""Write-then-rename, so that a failed or interrupted write leaves nothing behind.

Temporary files sit beside their target as ``.<name>.<host>-<pid>.<random><suffix>.part``
(a name too long to fit: its start and a hash).
One left by a killed process (SIGKILL, power loss) never blocks a later write: each
write picks a fresh name, and the next write of the same target deletes those whose
process, on this host, no longer runs and whose ``flock`` is free (a writer holds one on
its temporary file, so a live writer in another PID namespace is never taken for dead). A
file whose write fails because the disk is full is removed and reported as
:class:`~hsad.errors.OutputError`.

Every temporary file this process creates is registered until it is placed or removed,
and SIGINT/SIGTERM wait while one is being created: a signal at any moment, even before
the writer's ``try`` block is entered, leaves nothing behind once the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import errno
import functools
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hsad import stopping
from hsad.errors import OutputError
from hsad.io.temp_names import HOST, SUFFIX_MAX, fcntl, remove_stale, temp_tag
from hsad.lazy_modules import moved_names

#: errno values that mean "no room for the output" (disk full, quota, file-size limit).
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

_KEEP_EXISTING: contextvars.ContextVar[bool] = contextvars.ContextVar("hsad_keep_existing",
                                                                      default=False)
_PLACED: contextvars.ContextVar[list | None] = contextvars.ContextVar("hsad_placed",
                                                                     default=None)
#: Temporary files of this process not yet placed or removed (removed at exit).
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """In the main thread, SIGINT, SIGTERM and SIGHUP received inside the block act when it
    ends (Python runs signal handlers only there); elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        handler = None if sig is None else signal.getsignal(sig)
        if handler is not None:  # None: set outside Python, cannot be restored
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in pending:
            signal.raise_signal(sig)


def remove_temp(path: str | os.PathLike) -> None:
    """Delete a temporary file made by :func:`temp_file` (if still there) and forget it."""
    path = os.fspath(path)
    for leftover in (path, f"{path}.aux.xml"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    with _LIVE_LOCK:
        _LIVE.discard(path)


@atexit.register
def _remove_live() -> None:
    """At exit (also after Ctrl-C or SIGTERM), remove temporaries that were never placed."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for path in live:
        remove_temp(path)


def _umask_now() -> int:
    """The umask, set and set back: only at import, before any thread writes files."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


#: the umask at import, where /proc cannot tell it later (macOS, Windows)
_UMASK_AT_IMPORT = None if os.path.exists("/proc/self/status") else _umask_now()


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with threads);
    without /proc, the umask at import."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022 if _UMASK_AT_IMPORT is None else _UMASK_AT_IMPORT


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


def _record(target: Path, st: os.stat_result) -> None:
    """Note ``target`` as placed, with the inode of our temporary file (taken before the
    rename: another process may replace the target right after it)."""
    placed = _PLACED.get()
    if placed is not None:
        placed.append((target, st.st_dev, st.st_ino))


#: set by the command line, which reports a failed write in one line itself: libtiff's
#: global error handler is then silenced before the first write (:func:`quiet_libtiff`)
QUIET_LIBTIFF = False


@functools.cache
def quiet_libtiff() -> bool:
    """Silence the global error handler of the libtiff that rasterio's GDAL uses: on a full
    disk it prints "_tiffWriteProc: No space left on device." to stderr for every block,
    outside GDAL's error handling (which still raises the failed write). True when done;
    False where that libtiff is not found (a GDAL not from the rasterio wheel)."""
    import ctypes
    import glob

    import rasterio

    for path in sorted(glob.glob(os.path.join(os.path.dirname(rasterio.__file__) + ".libs",
                                              "libtiff*.so*"))):
        try:
            set_handler = ctypes.CDLL(path).TIFFSetErrorHandler
        except (OSError, AttributeError):
            continue
        set_handler.restype = ctypes.c_void_p
        set_handler.argtypes = [ctypes.c_void_p]
        set_handler(None)
        return True
    return False


def temp_file(target: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create an empty temporary file beside ``target`` (usual permissions) and return it;
    ``suffix`` (default: the target's) goes before ``.part``. Removes stale ones first."""
    if QUIET_LIBTIFF:
        quiet_libtiff()
    target = Path(target)
    remove_stale(target)
    with signals_held():
        ending = target.suffix if suffix is None else suffix
        if len(os.fsencode(ending)) > SUFFIX_MAX:  # no extension GDAL picks a driver by
            ending = ""  # (an ENVI name with dots: "x.v1_reflectance_subset")
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{temp_tag(target)}.{HOST}-{os.getpid()}.", suffix=ending + ".part",
                dir=target.parent,
            )
        except OSError as exc:  # named as the output the user gave, not its temporary
            raise OSError(exc.errno, exc.strerror, os.fspath(target)) from None
        with _LIVE_LOCK:
            _LIVE.add(tmp)
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
    def says_write(e: BaseException) -> bool:  # in the message, not in a path it names
        text = re.sub(r"'[^']*'|\"[^\"]*\"", "", str(e).lower())  # quoted file names
        return "write" in text.replace(str(target.parent).lower(), "")

    if not any(type(e).__module__.startswith("rasterio") and says_write(e) for e in chain):
        return None
    return disk_full(target) or f"write failed (disk full?): {chain[-1]}"


def disk_full(target: str | os.PathLike) -> str | None:
    """"no space left on device" when the folder of ``target`` has less than 1 MiB free
    (a library that failed a write without saying why), else None."""
    with contextlib.suppress(OSError):
        if shutil.disk_usage(Path(target).parent).free < 2**20:
            return os.strerror(errno.ENOSPC).lower()
    return None


def _place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; under :func:`keep_existing`, only if it is absent.
    SQLite journals of the file replaced (:data:`JOURNALS`) go first. The file gets the
    usual permissions of a new file (a library that made it anew, as OGR makes a
    GeoPackage, may have given it others)."""
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o666 & ~_umask())
    st = os.stat(tmp)
    if not _KEEP_EXISTING.get():
        _remove_companions(target, JOURNALS)  # the old file's: SQLite would apply them to ours
        os.replace(tmp, target)
        _record(target, st)
        return
    appeared = OutputError("appeared while hsad was writing it and was left as it is "
                           "(give --overwrite to replace it)", target)
    if not os.path.lexists(target):
        _remove_companions(target, JOURNALS)  # left by a file deleted since
    try:
        os.link(tmp, target)  # atomic, and fails if the target exists
    except FileExistsError:
        raise appeared from None
    except OSError:  # no hard links on this file system: check, then rename
        if os.path.lexists(target):
            raise appeared from None
        os.replace(tmp, target)
        _record(target, st)
        return
    os.unlink(tmp)
    _record(target, st)


def unexpanded_home(path: str | os.PathLike) -> str | None:
    """The leading folder ``~`` or ``~user`` of ``path`` where no folder of that name exists
    here: a home folder Python does not expand (a shell does), else None. A file named
    ``~draft.tif`` is a file's name, not a home folder."""
    parts = Path(path).parts
    if len(parts) > 1 and parts[0].startswith("~") and not os.path.exists(parts[0]):
        return parts[0]
    return None


def refuse_unexpanded_home(path: str | os.PathLike, error: type) -> None:
    """``error`` naming ``path`` where it begins with a home folder Python does not expand
    (:func:`unexpanded_home`): what a reader says instead of a bare "no such file"."""
    if (home := unexpanded_home(path)) is not None:
        raise error(f"no such file: {home!r} is expanded by a shell, not by Python (give the "
                    "full path, os.path.expanduser)", path)


class _Temp:
    """A locked temporary file for ``target``: placed onto it, or discarded."""

    def __init__(self, path: str | os.PathLike, suffix: str | None = None):
        self.target = Path(path)
        if (home := unexpanded_home(path)) is not None:  # no ./~ folder made in silence
            raise OutputError(f"begins with {home!r}, which only a shell expands: a folder "
                              "named so would be made here; give the full path "
                              "(os.path.expanduser)", self.target)
        if self.target.is_symlink() and self.target.is_file():
            # a link to a file is written through, as `cp` and a shell's `>` write: the
            # file it names is replaced, the link stays; never a file of another kind (a
            # dangling link is replaced by the file)
            real = Path(os.path.realpath(self.target))
            if real.suffix.lower() != self.target.suffix.lower():
                raise OutputError(f"is a link to {real}, a file of another kind: not written "
                                  "through (remove the link, or name the file itself)",
                                  self.target)
            self.target = real
        if self.target.is_dir():
            raise OutputError("is a folder: give a file name in it", self.target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.existed = os.path.lexists(self.target)
        self.path = temp_file(self.target, suffix)
        self._lock = None  # no lock where there is no flock (Windows: see the import)
        try:
            if fcntl is not None:
                self._lock = os.open(self.path, os.O_RDONLY)
                fcntl.flock(self._lock, fcntl.LOCK_EX)  # tells remove_stale: a live write
        except BaseException:
            if self._lock is not None:
                os.close(self._lock)
            remove_temp(self.path)
            raise
        self.inode: tuple[int, int] | None = None

    def place(self) -> None:
        st = os.stat(self.path)
        _place(self.path, self.target)
        self.inode = (st.st_dev, st.st_ino)
        _move_sidecar(self.path, self.target)
        _remove_companions(self.target, STALE_SIDECARS, any_case=True)

    def unplace(self) -> None:
        """Remove the placed target again if it is new and still ours."""
        if self.inode is None or self.existed:
            return
        with contextlib.suppress(OSError):
            st = os.stat(self.target)
            if (st.st_dev, st.st_ino) == self.inode:
                os.unlink(self.target)

    def close(self) -> None:
        remove_temp(self.path)
        if self._lock is not None:
            os.close(self._lock)


#: Files GDAL and QGIS keep beside a raster that describe its pixels: external overviews
#: (``gdaladdo -ro``, QGIS's "Build pyramids") and an external mask. A file replaced takes
#: its own with it: left, they would be drawn or applied over the new file's values.
STALE_SIDECARS = (".ovr", ".msk")
#: SQLite's journals beside a database (a GeoPackage QGIS has open, or left by a crash):
#: beside a new file of the same name, SQLite would apply them to it and corrupt it.
JOURNALS = ("-wal", "-shm", "-journal")


def _remove_companions(target: Path, suffixes: tuple[str, ...], any_case: bool = False
                       ) -> None:
    """Delete ``target`` + each of ``suffixes`` where there is one (``any_case``: in any
    letter case, as GDAL finds a raster's sidecars: ``x.tif.OVR``)."""
    names = {f"{target.name}{suffix}" for suffix in suffixes}
    if any_case:
        with contextlib.suppress(OSError):
            lower = {n.lower() for n in names}
            names |= {e.name for e in os.scandir(target.parent) if e.name.lower() in lower}
    for name in names:
        with contextlib.suppress(OSError):  # none there, or a name too long to have one
            os.unlink(target.parent / name)


def _move_sidecar(tmp: Path, target: Path) -> None:
    """GDAL's ``.aux.xml`` of the temporary file (auxiliary metadata) goes with the file;
    without one, the target's old ``.aux.xml`` goes: it described the file replaced (GDAL
    and QGIS would show its statistics and metadata over the new file's)."""
    aux = Path(f"{tmp}.aux.xml")
    if aux.exists():
        os.replace(aux, f"{target}.aux.xml")
    else:
        with contextlib.suppress(OSError):  # none there, or a name too long to have one
            os.unlink(f"{target}.aux.xml")


def _failed(exc: BaseException, target: Path) -> None:
    """Raise the interrupt behind ``exc`` if there is one (a library may turn Ctrl-C
    into its own error), OutputError for a full disk (chained to ``exc``); otherwise
    return."""
    for e in _chain(exc):
        if isinstance(e, KeyboardInterrupt) and e is not exc:
            raise e from None
    reason = write_failure(exc, target)
    if reason:
        raise OutputError(f"cannot write: {reason}; nothing was written", target) from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception, KeyboardInterrupt included, the temporary file is removed and
    ``path`` is untouched (a signal the command line's handler raised where Python could
    only print it, :func:`hsad.stopping.signalled`, is raised here, before the rename); a
    full disk (ENOSPC, EDQUOT, EFBIG) becomes an :class:`OutputError` naming ``path``.
    ``suffix`` defaults to the target's suffix (GDAL picks drivers by it). Missing parent
    folders are created.
    """
    temp = _Temp(path, suffix)
    try:
        yield temp.path
        stopping.raise_if_signalled()  # a Ctrl-C Python printed and went on from
        temp.place()
    except BaseException as exc:
        _failed(exc, temp.target)
        raise
    finally:
        temp.close()


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` for the block (waiting for another process's:
    its renames take milliseconds); none where the system has no such locks."""
    fd = None
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # the lock goes with it


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for files that belong together (ENVI data + header).

    They are renamed into place in the order given, and only after the block succeeds: the
    data before its header, so that a reader never finds a new header without its data.
    If one cannot be placed, those this call already placed as new files are removed. The
    renames hold a lock on the first file's folder (:func:`_folder_locked`): two runs
    writing the same pair at once had left one's data under the other's header.
    """
    temps: list[_Temp] = []
    try:
        for p in paths:
            temps.append(_Temp(p))
        yield [t.path for t in temps]
        with _folder_locked(temps[0].target.parent):  # one run's pair at a time
            for t in temps:
                stopping.raise_if_signalled()  # those placed are removed again, below
                t.place()
    except BaseException as exc:
        for t in temps:
            t.unplace()
        _failed(exc, Path(paths[0]))  # the first file (ENVI: the data) names the failure
        raise
    finally:
        for t in temps:
            t.close()


#: names moved to :mod:`hsad.io.temp_names` in 0.3.1, still served here (no warning)
MOVED = {n: "hsad.io.temp_names" for n in ("TAG_MAX", "lock_now")}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.io.temp_names import TAG_MAX as TAG_MAX
    from hsad.io.temp_names import lock_now as lock_now

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "FULL", "HOST", "JOURNALS", "QUIET_LIBTIFF", "STALE_SIDECARS", "SUFFIX_MAX",
           "atomic_path", "atomic_paths", "disk_full", "keep_existing", "quiet_libtiff",
           "refuse_unexpanded_home", "remove_stale", "remove_temp", "temp_file",
           "unexpanded_home", "write_failure"]
