"""``hsad methods [NAME]``: the detectors, their papers and what their hyperparameters mean."""

from __future__ import annotations

import inspect
import textwrap

import click

from hsad.cli.options import put


def _params(name: str, cls) -> list[tuple[str, object, str]]:
    """``(parameter, default, meaning)`` of a detector, runtime options left out."""
    from hsad.detectors.param_help import RUNTIME, describe

    return [(p, d, describe(name, p, cls) or "") for p, d in cls.param_defaults().items()
            if p not in RUNTIME]


def _detail(name: str, cls) -> str:
    """The full text of one detector: summary, its module's description, parameters."""
    module = inspect.getmodule(cls)
    doc = inspect.cleandoc(module.__doc__ or "") if module else ""
    lines = [f"{name}: {cls.summary}", ""]
    if doc:
        lines += [doc, ""]
    lines.append("Hyperparameters (-p NAME=VALUE; default, meaning):")
    for p, default, meaning in _params(name, cls):
        lines.append(f"  {p} = {default!r}")
        lines += textwrap.wrap(meaning, 88, initial_indent="      ",
                               subsequent_indent="      ")
    lines.append("Runtime options, not hyperparameters: --progress/--no-progress, and "
                 "--device for the neural detectors.")
    return "\n".join(lines)


@click.command("methods")
@click.argument("name", required=False)
def command(name):
    """List the detectors: a line each with its paper, then its hyperparameters, their
    defaults and meanings. With NAME, the full description of one detector."""
    from hsad import detectors

    available = detectors.available()
    if name is not None:
        put(_detail(name, detectors.get(name).__class__))
        return
    for det_name, cls in available.items():
        put(f"{det_name:14s} {cls.summary}")
        for p, default, meaning in _params(det_name, cls):
            put(f"    {p} = {default!r}" + (f" — {meaning}" if meaning else ""))
