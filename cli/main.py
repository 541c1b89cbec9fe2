"""Entry point of the ``hsad`` command.

Errors a user can cause print one line, ``error: <file>: <problem>``, and exit with
status 2: never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from hsad import __version__
from hsad.errors import HsadError

#: Sub-command modules of hsad.cli; each defines a click command named ``command``.
_COMMANDS = (
    "info", "convert", "datasets", "detect", "evaluate", "methods", "benchmark", "demo", "train",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hsad")
def cli() -> None:
    """hsad: hyperspectral anomaly detection for remote sensing."""


for _name in _COMMANDS:
    cli.add_command(importlib.import_module(f"hsad.cli.{_name}").command)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning user errors into one line and exit status 2."""
    try:
        rv = cli.main(args=argv, prog_name="hsad", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HsadError as exc:
        _fail(str(exc))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        _fail(f"{exc.filename}: {exc.strerror.lower() if exc.strerror else exc}")
    except MemoryError:
        _fail("out of memory: try a smaller --chunks or --memory-limit")
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
