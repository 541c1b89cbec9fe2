"""``hsad methods``: list the detectors and their hyperparameters."""

from __future__ import annotations

import click


@click.command("methods")
def command():
    """List the available detectors with their hyperparameters and defaults."""
    from hsad import detectors

    for name, cls in detectors.available().items():
        click.echo(f"{name:10s} {cls.summary}")
        for param, default in cls.param_defaults().items():
            click.echo(f"    {param} = {default!r}")
