"""Running the ``hsad`` command line inside a test: its exit status and output."""

from __future__ import annotations

import pytest

from hsad.cli.main import main


def run_cli(args, capsys):
    """``(exit status, stdout, stderr)`` of ``hsad ARGS``."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def one_error(args, capsys) -> str:
    """The one ``error:`` line of ``hsad ARGS``, which must exit with status 2."""
    code, _, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]
