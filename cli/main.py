"""Entry point of the ``hsad`` command.

Errors a user can cause print one line, ``error: <file>: <problem>``, and exit with
status 2: never a traceback. Ctrl-C (SIGINT) prints ``error: interrupted`` and exits with
130, SIGTERM ``error: terminated`` and 143, SIGHUP (a closed terminal or ssh session)
``error: hung up`` and 129; temporary files are removed on the way out.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import sys
import threading
import warnings

import click

from hsad import __version__
from hsad.cli.options import echo
from hsad.errors import HsadError

#: Sub-command modules of hsad.cli; each defines a click command named ``command``.
_COMMANDS = (
    "info", "convert", "datasets", "detect", "evaluate", "methods", "benchmark", "demo", "train",
)
#: Exit statuses of a command stopped by a signal (128 + signal number, as shells report).
INTERRUPTED, TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM
#: SIGHUP (a terminal or ssh session closed; Windows has none)
SIGHUP = getattr(signal, "SIGHUP", None)
HUNG_UP = 128 + (SIGHUP or 1)
#: Exit status when the reader of the output went away (``hsad methods | head``), as a
#: shell reports a tool that SIGPIPE stopped.
BROKEN_PIPE = 128 + getattr(signal, "SIGPIPE", 13)  # Windows has no SIGPIPE


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM or SIGHUP, so that it unwinds like Ctrl-C."""

    def __init__(self, word: str = "terminated", status: int = TERMINATED):
        super().__init__(word)
        self.word, self.status = word, status


class _Stopped(Exception):
    """A KeyboardInterrupt that has unwound the command (click would turn it into Abort)."""

    def __init__(self, word: str, status: int):
        super().__init__(word)
        self.word, self.status = word, status


class _Group(click.Group):
    """The ``hsad`` group: its subcommands' modules are imported when first asked for, as
    the command runs (a Ctrl-C while dask and numpy load is ``error: interrupted``, not an
    import's traceback, and a command loads only its own module)."""

    def list_commands(self, ctx):
        return sorted(set(_COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in _COMMANDS and name not in self.commands:
            self.add_command(importlib.import_module(f"hsad.cli.{name}").command, name)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Terminated as exc:
            raise _Stopped(exc.word, exc.status) from None
        except KeyboardInterrupt:
            raise _Stopped("interrupted", INTERRUPTED) from None
        except BrokenPipeError:  # the reader of stdout went away (`hsad methods | head`)
            raise _ClosedPipe from None


class _ClosedPipe(Exception):
    """Standard output's reader went away before the command finished writing."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hsad")
def cli() -> None:
    """hsad: hyperspectral anomaly detection for remote sensing.

    Exit status: 0 success, 1 a failed check (datasets list --verify), 2 a user error (one
    line `error: [<file>: ]<problem>`), 130 interrupted (Ctrl-C), 141 output pipe closed
    (`hsad methods | head`), 143 terminated (SIGTERM), 129 hung up (SIGHUP).
    Commands that write files create missing folders and refuse existing files unless
    --overwrite is given; outputs appear whole or not at all.
    """


def _fail(message: str, status: int = 2) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a terminal gone (SIGHUP)
        echo(f"error: {message}", err=True)
    sys.exit(status)


def _stop_work() -> None:
    """Drop the area filters not yet begun and end the torch inference under way at its
    next batch (:func:`hsad.stopping.stop_work`): the interpreter waits for the worker
    threads on its way out."""
    from hsad.stopping import stop_work

    stop_work()


def _quiet_shutdown() -> None:
    """After Ctrl-C or SIGTERM, the dask.distributed cluster's teardown (its atexit hook, its
    event loop's pending tasks) can only print tracebacks about the interruption: silence
    them, so that the one line ``error: interrupted`` is all a user sees."""
    scheduler = sys.modules.get("hsad.engine.scheduler")  # loaded when a cluster may be
    if scheduler is not None:
        scheduler.silence_cluster_logs()
    if "distributed" in sys.modules:
        sys.unraisablehook = lambda unraisable: None


def _on_signal(signum, frame):
    from hsad.stopping import signalled

    if signum == signal.SIGINT:
        raise signalled(KeyboardInterrupt())
    if signum == SIGHUP:
        raise signalled(Terminated("hung up", HUNG_UP))
    raise signalled(Terminated())


def _unraisable(previous):
    """An unraisable-exception hook that drops the signal :func:`_on_signal` raised where
    Python can only print it (a finaliser, a weakref callback): it is recorded and raised
    again where the work checks for stops (:func:`hsad.stopping.signalled`), and the one
    line ``error: interrupted`` says it."""
    from hsad.stopping import pending_signal

    def hook(unraisable):
        if unraisable.exc_value is None or unraisable.exc_value is not pending_signal():
            previous(unraisable)
        else:  # the frames where it landed, and their locals (tiles), are not kept
            unraisable.exc_value.__traceback__ = None

    return hook


@contextlib.contextmanager
def _sigterm_unwinds():
    """Ctrl-C, SIGTERM and SIGHUP raise in the main thread while the command runs
    (:class:`Terminated` for the last two), and are recorded
    (:func:`hsad.stopping.signalled`), so that one Python could only print still stops the
    command; a signal the process was started ignoring (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from hsad.stopping import clear_signalled, pending_signal

    clear_signalled()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, SIGHUP):
        if sig is not None and signal.getsignal(sig) not in (signal.SIG_IGN, None):
            previous[sig] = signal.signal(sig, _on_signal)
    hook, sys.unraisablehook = sys.unraisablehook, _unraisable(sys.unraisablehook)
    try:
        yield
    except Exception:  # what a recorded signal stopped (the area filters, the inference)
        stop = pending_signal()
        if stop is None:
            raise
        raise stop from None
    finally:
        sys.unraisablehook = hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        clear_signalled()  # a later write in this process (a Python caller) is not stopped


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning is one line, ``warning: <message>``, like an error (no source line)."""
    echo(f"warning: {message}", err=True)


def _names_print() -> None:
    """A file name that is not UTF-8 (Latin-1 bytes from an old share) is printed, not a
    crash: a stream that would refuse it (``strict``) writes its bytes back as they were
    (UTF-8 standard output) or escapes what it cannot encode (``\\udcfc``: standard error,
    other encodings; click writes an ASCII stream with ``?`` for them); a handler the user
    chose (``PYTHONIOENCODING=latin-1:replace``) is kept."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) != "strict":
            continue
        utf8 = str(getattr(stream, "encoding", "")).lower().replace("-", "") == "utf8"
        raw = utf8 and stream is sys.stdout  # errors are escaped, as Python's stderr does
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="surrogateescape" if raw else "backslashreplace")


def _writable_folder(path) -> bool:
    """Whether ``path`` is a folder one can write in, or could be made as one."""
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)
    return False


def _matplotlib_folder() -> None:
    """Where matplotlib cannot keep its configuration and font cache (a read-only or missing
    HOME: a service account, a container), it prints two lines of its own at every run and
    rebuilds its cache: give it a private folder in the temporary directory instead, kept
    between runs (as matplotlib's own fallback is not), unless MPLCONFIGDIR is set."""
    import tempfile
    from pathlib import Path

    if os.environ.get("MPLCONFIGDIR") or "matplotlib" in sys.modules:
        return
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        home = None
    if home is not None and all(
            _writable_folder(Path(os.environ.get(var) or home / dot) / "matplotlib")
            for var, dot in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"))):
        return
    uid = os.getuid() if hasattr(os, "getuid") else None
    with contextlib.suppress(OSError):  # no temporary folder either: matplotlib's own way
        private = Path(tempfile.gettempdir()) / f"hsad-matplotlib-{uid or 0}"
        private.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(private)  # ours, not a link another user planted
        if not os.path.islink(private) and (uid is None or st.st_uid == uid) \
                and os.access(private, os.W_OK | os.X_OK):
            os.environ["MPLCONFIGDIR"] = str(private)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning user errors into one line and exit status 2."""
    from hsad import stopping
    from hsad.io import atomic

    atomic.QUIET_LIBTIFF = True  # a failed write is one line of ours, not libtiff's too
    _names_print()
    _matplotlib_folder()
    try:
        with _sigterm_unwinds(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            rv = cli.main(args=argv, prog_name="hsad", standalone_mode=False)
            stopping.raise_if_signalled()  # a signal Python printed and went on from
    except _Stopped as exc:
        _stop_work()
        _quiet_shutdown()
        _fail(exc.word, exc.status)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        _stop_work()
        _quiet_shutdown()
        # outside a command (while click parses), click wraps the signal into Abort
        for stop in (exc, exc.__context__):
            if isinstance(stop, Terminated):
                _fail(stop.word, stop.status)
        _fail("interrupted", INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:  # `hsad`, `hsad datasets`: the help
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # a bad option or argument: one line, like every error
        ctx = exc.ctx
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(" ".join(exc.format_message().split()) + hint, exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except _ClosedPipe:
        # nothing more reaches the reader; stdout to /dev/null, so that the interpreter's
        # last flush does not fail again on its way out
        with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real file
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(BROKEN_PIPE)
    except Exception as exc:
        problem = user_problem(exc, sys.argv[1:] if argv is None else argv)
        if problem is None:
            raise
        _fail(problem)
    sys.exit(rv if isinstance(rv, int) else 0)


#: what each command can be asked to do with less memory
_LESS_MEMORY = {"detect": "a smaller --chunks or --memory-limit", "train": "a smaller --chunks",
                "convert": "a smaller --chunks"}


def _command_input(args) -> tuple[str | None, str | None]:
    """The command of a command line (after ``hsad``) and its first input (the value of its
    first argument, as click parses it; option values are never taken for it), or None."""
    import warnings

    try:
        ctx = cli.make_context("hsad", [str(a) for a in args or ()], resilient_parsing=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # click 8.2+: all in args
            rest = list(getattr(ctx, "protected_args", [])) + list(ctx.args)
        name, command, rest = cli.resolve_command(ctx, rest)
        parsed = command.make_context(name, rest, parent=ctx, resilient_parsing=True).params
        value = next((parsed.get(p.name) for p in command.params
                      if isinstance(p, click.Argument)), None)
        if isinstance(value, (tuple, list)):
            value = value[0] if value else None
        return name, None if value is None else str(value)
    except Exception:  # noqa: BLE001  (a line that does not parse: name nothing)
        return None, None


def _out_of_memory(args, networks: bool) -> str:
    """The out-of-memory line: the command's input and what that command can be asked to
    do with less (``info`` has no --chunks to suggest)."""
    command, given = _command_input(args)
    ways = [w for w in (_LESS_MEMORY.get(command),
                        "smaller hyperparameters (hidden, batch_size, sample_size, n_samples)"
                        if networks else None) if w]
    advice = f": try {', or '.join(ways)}" if ways else (
        ": it needs more memory than this machine has" if given else "")
    return f"{given + ': ' if given else ''}out of memory{advice}"


def user_problem(exc: Exception, args=None) -> str | None:
    """The one line that ``exc`` is for a user (a bad input, a file system error, memory
    run out), or None for a bug (its traceback is shown); ``args``: the command line
    after ``hsad``, whose input an out-of-memory line names."""
    if isinstance(exc, HsadError):
        return str(exc)
    if type(exc) is Exception and (relayed := _relayed_problem(exc)) is not None:
        return relayed
    if isinstance(exc, OSError):
        problem = exc.strerror.lower() if exc.strerror else str(exc)  # names keep their case
        if _from_stdout(exc):
            return f"cannot write to standard output: {problem}"
        return f"{exc.filename}: {problem}" if exc.filename else problem
    if isinstance(exc, MemoryError):
        return _out_of_memory(args, networks=False)
    text = str(exc).lower()  # torch's allocators raise RuntimeError, not MemoryError
    if isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                          or "out of memory" in text):
        return _out_of_memory(args, networks=True)
    return None


def _from_stdout(exc: OSError) -> bool:
    """Whether ``exc`` came from click writing to standard output itself (the help, the
    version; the commands' own lines name it in :func:`~hsad.cli.options.put`): ``hsad
    --help > /dev/full`` said "no space left on device" as if of an output file."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is click.utils.echo.__code__ and not frame.f_locals.get("err"):
            try:
                return frame.f_locals["file"].fileno() == sys.__stdout__.fileno()
            except (KeyError, AttributeError, OSError, ValueError):
                return False
        tb = tb.tb_next
    return False


def _relayed_problem(exc: Exception) -> str | None:
    """The message of an hsad error that dask.distributed relayed from a worker as a plain
    ``Exception`` holding the error's repr (it does so when the error's cause, e.g. a GDAL
    error, does not survive pickling), or None."""
    import ast
    import re

    from hsad import errors

    found = re.fullmatch(r"(\w+)\((.*)\)", str(exc), re.S)
    kind = getattr(errors, found.group(1), None) if found else None
    if not (isinstance(kind, type) and issubclass(kind, HsadError)):
        return None
    try:
        text = ast.literal_eval(found.group(2))
    except (ValueError, SyntaxError):
        return None
    return text if isinstance(text, str) else None


if __name__ == "__main__":
    main()
