"""Click options shared by several commands."""

from __future__ import annotations

import click

chunks_option = click.option(
    "--chunks", type=click.IntRange(min=16), default=None,
    help="Tile size in pixels along y and x (all bands stay together).",
)
seed_option = click.option("--seed", type=int, default=None,
                           help="Random seed (neural detectors; CPU runs are deterministic).")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                             default=None, help="Torch device for neural detectors.")
