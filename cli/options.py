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
fusion_option = click.option(
    "--fusion", type=click.Choice(["none", "dss"]), default=None,
    help="Reconstruction detectors (hadgan, fanogan): score with the fused D_SS map (dss) or "
         "the plain score (none: f-AnoGAN's A(x), HADGAN's D_spectral). Default: the "
         "method's own (hadgan dss, fanogan none).",
)
memory_option = click.option(
    "--memory-limit", default=None, metavar="SIZE",
    help="Working-memory budget for the tiles in flight, e.g. 2GB, 512MiB or 25% of RAM "
         "(default 1 GiB or a quarter of RAM); sets the tile size unless --chunks is given.",
)
workers_option = click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Run on a local dask.distributed cluster of N worker processes.",
)
scheduler_option = click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="dask.distributed scheduler to connect to (tcp://host:8786); 'threads' (default) "
         "or 'sync' run in this process.",
)
precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
    help="Neural inference precision on CUDA (autocast); the CPU always uses fp32.",
)
progress_option = click.option(
    "--progress/--no-progress", default=None,
    help="Progress bar over the tiles (default: when stderr is a terminal).",
)


def engine_options(func):
    """All options of the scene engine: memory budget, scheduler, precision, progress."""
    for option in (progress_option, precision_option, scheduler_option, workers_option,
                   memory_option):
        func = option(func)
    return func


background_option = click.option(
    "--background", type=click.Path(dir_okay=False), default=None,
    help="Background area the statistics come from: polygons (.gpkg, .geojson, .json, .shp; "
         "any CRS, reprojected to the scene; one layer of several as 'areas.gpkg|layername="
         "water', as QGIS writes it) or a raster mask on the scene grid (non-zero = "
         "background). For rx, utd, rxd-utd, local-mean-rx, cluster-rx and the neural "
         "detectors' training sample; lrx and crd are local and refuse it.",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="Replace output files that exist (never an input of the command). Without it an "
         "existing output is refused before any work starts.",
)
