"""Click options shared by several commands."""

from __future__ import annotations

import contextvars
import re
import sys

import click


def check_truth_key(truth, truth_key) -> None:
    """``--truth-key`` names a MAT file's variable: refused where the ground truth is no
    MAT file (a raster, a vector file), rather than ignored."""
    if truth_key is None:
        return
    from hsad.cube.vector_masks import is_vector
    from hsad.errors import ParameterError
    from hsad.io import detect_format

    if is_vector(truth) or detect_format(truth, "ground truth") != "mat":
        raise ParameterError("--truth-key names a variable of a MAT file, and the ground "
                             "truth is not one", truth)


def check_agree(params: dict, **options) -> None:
    """Refuse an option given twice with different values, as ``-p NAME=`` and as its own
    option (``--seed``, ``--epochs``): neither silently wins."""
    from hsad.errors import ParameterError

    for name, value in options.items():
        if value is not None and name in params and params[name] != value:
            raise ParameterError(f"-p {name}={params[name]} and --{name} {value} disagree: "
                                 f"give one")


key_option = click.option(
    "--key", help="Cube variable in a MAT file or EMIT granule; a PRISMA or EnMAP "
                  "product's full (default), vnir or swir cube.")
chunks_option = click.option(
    "--chunks", type=click.IntRange(min=16), default=None,
    help="Tile size in pixels along y and x (all bands stay together).",
)
seed_option = click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None,
                           help="Random seed (neural detectors; CPU runs are deterministic).")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                             default=None, help="Torch device for neural detectors (auto: "
                             "CUDA when available, else the CPU).")
fusion_option = click.option(
    "--fusion", type=click.Choice(["none", "dss", "multiscale", "aed", "paper"]),
    default=None,
    help="Reconstruction detectors (hadgan, fanogan, the seed models): score with the "
         "fused map D_SS (dss: with the model's spatial variant, the parameter `fusion`; "
         "multiscale, aed or paper: with that variant, as -p fusion=NAME -p output=d_ss) "
         "or the plain score (none: the paper's score; HADGAN's D_spectral). Default: the "
         "method's own (hadgan dss, the others none).",
)
memory_option = click.option(
    "--memory-limit", default=None, metavar="SIZE",
    help="Working-memory budget for the tiles in flight, e.g. 2GB, 512MiB or 25% of RAM "
         "(default 1 GiB or a quarter of RAM); sets the tile size unless --chunks is given "
         "(on a GPU, a larger budget keeps it busy: bigger tiles).",
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
#: set by ``-q/--quiet`` for the command under way (:func:`say`)
QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("hsad_quiet", default=False)


#: control characters (C0, DEL, C1) a file name can hold: a newline forged a second
#: ``error:`` line, an escape sequence reached the terminal
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """``text`` with its control characters written as Python escapes (``\\n``,
    ``\\x1b``): a name holding them stays on its one line and draws nothing."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], str(text))


def echo(message: str, err: bool = False) -> None:
    """A line on standard output (or error, ``err``), its names' control characters
    escaped (:func:`shown`): a result, an error or a warning, --quiet or not. A standard
    output that cannot be written (a full disk behind a redirect) is named as such: its
    error had read as the outputs' ("no space left on device"). A closed pipe (exit
    status 141) is left to the caller, and so are a terminal's failures on standard error
    (a terminal gone: the callers' hang-up handling); a log file's (a full disk behind
    ``2>log``) lose the line, not the run's finished outputs."""
    if err:
        try:
            click.echo(shown(message), err=True)
        except OSError:
            from hsad.progress import stderr_is_terminal

            if stderr_is_terminal():
                raise
        return
    put(shown(message))


def put(text: str) -> None:
    """``text`` (a report, a table, JSON: as it is) on standard output; one that cannot be
    written (a full disk behind a redirect) is named as such, its error had read as the
    outputs' ("no space left on device"), and so is a closed one (``>&-``: click drops the
    lines, an AUC or JSON asked for was lost with exit status 0); a closed pipe is left to
    the caller."""
    if sys.stdout is None:
        from hsad.errors import OutputError

        raise OutputError("cannot write to standard output: it is closed")
    try:
        click.echo(text)
    except BrokenPipeError:
        raise
    except OSError as exc:
        from hsad.errors import OutputError

        raise OutputError(f"cannot write to standard output: "
                          f"{(exc.strerror or str(exc)).lower()}") from None


def say(message: str) -> None:
    """A report line on standard output (``wrote …``, ``scene 2/5 …``), unless ``--quiet``;
    results (an AUC asked for with --truth, a batch's failures) are echoed as they are."""
    if not QUIET.get():
        echo(message)


def quiet_option(func):
    """``-q/--quiet``: no progress bars and none of the command's report lines (:func:`say`);
    results, warnings and errors are still printed."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, quiet: bool = False, **kwargs):
        if not quiet:
            return func(*args, **kwargs)
        if "progress" in kwargs:
            kwargs["progress"] = False
        token = QUIET.set(True)
        try:
            return func(*args, **kwargs)
        finally:
            QUIET.reset(token)

    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bars and no report lines (wrote …, scene 2/5 …); "
                             "results, warnings and errors are still printed.")(wrapper)


progress_option = click.option(
    "--progress/--no-progress", default=None,
    help="Progress bars (training epochs, tiles); default: when stderr is a terminal. "
         "--progress draws them into a log file too (each bar's last line kept).",
)


def engine_options(func):
    """All options of the scene engine: memory budget, scheduler, precision, progress."""
    for option in (progress_option, precision_option, scheduler_option, workers_option,
                   memory_option):
        func = option(func)
    return func


background_option = click.option(
    "--background", type=click.Path(dir_okay=False), default=None,
    help="Background area the statistics come from: polygons (.gpkg, .geojson, .json, .shp, "
         ".kml, .kmz, .gml, .fgb, .tab; "
         "any CRS, reprojected to the scene; one layer of several as 'areas.gpkg|layername="
         "water' or '|layerid=1', as QGIS writes it) or a raster mask on the scene grid "
         "(non-zero = background). For rx, utd, rxd-utd, local-mean-rx, cluster-rx and the neural "
         "detectors' training sample; lrx and crd are local and refuse it.",
)
labels_option = click.option(
    "--labels", type=click.Path(dir_okay=False), default=None,
    help="Raster of a few labelled anomaly pixels on the scene grid (GeoTIFF, ENVI or MAT; "
         "non-zero = anomaly) for detectors that learn from them (cavga: its weakly "
         "supervised variant); other detectors refuse it.",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="Replace output files that exist (never an input of the command). Without it an "
         "existing output is refused before any work starts.",
)


def band_options(func):
    """--wavelengths, --exclude-wavelengths, --bands, --drop-bad-bands, --wavelength-file
    (hsad.select_bands)."""
    for option in (
        click.option("--wavelength-file", type=click.Path(), metavar="FILE",
                     help="Band wavelengths (nm or µm) to use instead of the file's, one "
                          "band per line (wavelength[,fwhm]): for products whose wavelengths "
                          "hsad cannot read (a PRISMA cube exported to GeoTIFF)."),
        click.option("--drop-bad-bands", is_flag=True,
                     help="Remove the bands the header's bad-band list (bbl) marks bad. "
                          "Without it they stay in the cube (and in convert's output); "
                          "detectors skip them anyway."),
        click.option("--bands", "band_indices", metavar="LIST",
                     help="Keep these bands by position: 0-based, LO:HI stops before HI as "
                          "in Python slices (5:180 = bands 5 to 179); e.g. 3,5,10:20."),
        click.option("--exclude-wavelengths", metavar="RANGES",
                     help="Drop bands inside these ranges, nm, ends included, e.g. "
                          "1340:1450,1790:1960."),
        click.option("--wavelengths", metavar="RANGES",
                     help="Keep bands inside these ranges, nm, ends included; open ends "
                          "allowed: 400:2400, :900, 2000:."),
    ):
        func = option(func)
    return func


def band_selection(wavelengths, exclude_wavelengths, band_indices, drop_bad_bands,
                   wavelength_file=None) -> dict:
    """The band options as :func:`hsad.select_bands` keywords, checked before any work."""
    from hsad.cube.bands import parse_indices, parse_ranges, read_wavelength_file

    parse_ranges(wavelengths, "--wavelengths")
    parse_ranges(exclude_wavelengths, "--exclude-wavelengths")
    parse_indices(band_indices, name="--bands")
    if wavelength_file is not None:
        read_wavelength_file(wavelength_file)
    return {"wavelengths": wavelengths, "exclude_wavelengths": exclude_wavelengths,
            "bands": band_indices, "drop_bad_bands": drop_bad_bands,
            "wavelength_file": wavelength_file}


def subset_options(func, verb: str = "Analyse",
                   cut: str = "; rasters on the whole scene's grid (--valid-mask, --truth…) "
                              "are cut to it"):
    """--srcwin, --projwin and --projwin-srs: a spatial subset, as gdal_translate cuts it
    (hsad.cube.subset); ``verb`` says what the command does with it, ``cut`` what follows."""
    for option in (
        click.option("--projwin-srs", "projwin_crs", metavar="CRS",
                     help="CRS of the --projwin coordinates (EPSG:4326, a WKT, a PROJ "
                          "string; default: the scene's)."),
        click.option("--projwin", nargs=4, type=float, default=None,
                     metavar="ULX ULY LRX LRY",
                     help=f"{verb} only this window, in map coordinates (upper-left x and "
                          "y, lower-right x and y), rounded to whole pixels as gdal_translate "
                          "-projwin rounds them; cut to the scene with a warning where it "
                          "reaches beyond."),
        click.option("--srcwin", nargs=4, type=int, default=None,
                     metavar="XOFF YOFF XSIZE YSIZE",
                     help=f"{verb} only this pixel window: column and row offsets "
                          f"(0-based), width and height, as gdal_translate -srcwin{cut}."),
    ):
        func = option(func)
    return func


def train_subset_options(func):
    """:func:`subset_options` for ``hsad train``, whose rasters are its masks."""
    return subset_options(func, verb="Train on", cut="; rasters on the whole scene's grid "
                          "(--valid-mask, --train-mask, --background) are cut to it")


def copy_subset_options(func):
    """:func:`subset_options` for ``hsad convert``, which copies the window."""
    return subset_options(func, verb="Copy", cut="")


def subset_selection(srcwin, projwin, projwin_crs) -> dict:
    """The subset options as :func:`hsad.cube.subset.spatial_subset` keywords, checked before any
    work (each excludes the other; a CRS must parse)."""
    from hsad.cube.subset import check_choice, projwin_srs

    check_choice(srcwin, projwin, projwin_crs)
    if projwin_crs is not None:
        projwin_srs(projwin_crs)
    return {"srcwin": srcwin, "projwin": projwin, "projwin_crs": projwin_crs}


#: --apply-scale: a reflectance scale factor applied as the scene is read
apply_scale_option = click.option(
    "--apply-scale", is_flag=True,
    help="Divide the values by the file's reflectance scale factor (ENVI 'reflectance "
         "scale factor', NEON's scale factor; a GeoTIFF's band scale and offset, ENVI's "
         "data gain and offset values, are applied) as they are read: reflectance 0-1 "
         "from a x10000 product, to match a model trained on reflectance.")


def mask_options(func):
    """--nodata, --valid-mask (hsad.cube.nodata), --exclude-quality (hsad.io.quality) and
    --apply-scale (the readers' ``apply_scale``)."""
    for option in (
        apply_scale_option,
        click.option("--exclude-quality", metavar="FLAGS", default=None,
                     help="EnMAP products: leave out the pixels the product's quality layers "
                          "flag as any of cloud, cloudshadow, haze, cirrus, snow, water, "
                          "saturated (e.g. cloud,cloudshadow). NEON files: partlycloudy, "
                          "mostlycloudy (flown under 10-50 % or more than 50 % cloud cover). "
                          "none keeps all, without the cloud-cover warning."),
        click.option("--valid-mask", type=click.Path(dir_okay=False), default=None,
                     help="Raster on the scene grid (GeoTIFF, ENVI or MAT): only its non-zero "
                          "pixels are analysed; the others enter no statistics and score "
                          "NaN. An EMIT L2A MASK granule or an EnMAP quality layer leaves "
                          "out the pixels it flags."),
        click.option("--nodata", type=float, default=None, metavar="VALUE",
                     help="Nodata value of the scene, replacing the header's, in the "
                          "file's stored units (also with --apply-scale)."),
    ):
        func = option(func)
    return func
