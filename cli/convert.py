"""``hsad convert``: copy a cube between MAT, ENVI and GeoTIFF (or out of an EMIT granule,
orthorectified), keeping georef and wavelengths."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hsad.cli.options import (
    apply_scale_option,
    band_options,
    band_selection,
    chunks_option,
    copy_subset_options,
    key_option,
    overwrite_option,
    progress_option,
    quiet_option,
    say,
    subset_selection,
)
from hsad.cli.outputs import FOLDERS_NOTE, plan_outputs
from hsad.errors import ParameterError

DTYPES = ("uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")
GEOTIFF_SUFFIXES = (".tif", ".tiff")


def output_format(path: str | os.PathLike) -> str:
    """``"geotiff"`` (.tif/.tiff), ``"mat"`` (.mat) or ``"envi"`` (anything else)."""
    suffix = Path(path).suffix.lower()
    if suffix in GEOTIFF_SUFFIXES:
        return "geotiff"
    return "mat" if suffix == ".mat" else "envi"


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _check_paths(src: Path, dst: Path, src_format: str, kind: str) -> None:
    """Refuse outputs that would overwrite the input (data file or ENVI header)."""
    if dst.suffix.lower() == ".hdr":
        raise ParameterError("give the ENVI data file name, not the header", dst)
    inputs = [src]
    if src_format == "envi":
        inputs += [h for h in (src.with_suffix(".hdr"), Path(f"{src}.hdr")) if h.exists()]
    if src_format == "enmap":
        from hsad.io.enmap import product_files

        inputs += product_files(src)
    outputs = [dst] + ([dst.with_suffix(".hdr"), Path(f"{dst}.hdr")] if kind == "envi" else [])
    for o in outputs:
        if any(os.path.realpath(o) == os.path.realpath(i) or _same_file(o, i) for i in inputs):
            raise ParameterError(f"output would overwrite the input file {o}", dst)


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, interleave: str | None = None,
            dtype: str | None = None, key: str | None = None, cog: bool = False,
            chunks=None, bands: dict | None = None, subset: dict | None = None,
            progress: bool | None = None, apply_scale: bool = False) -> Path:
    """Convert cube ``src`` to ``dst``; the output format follows ``dst``'s extension.

    ``interleave`` (bsq/bil/bip) applies to ENVI and, as band/pixel, to GeoTIFF; ``dtype``
    casts (float to int rounds and clips); ``cog`` writes a Cloud-Optimized GeoTIFF. A
    MAT input's ground truth is kept when writing MAT. ``bands``: the bands to keep, as
    :func:`hsad.select_bands` keywords; ``subset``: the window to keep, as
    :func:`hsad.cube.subset.spatial_subset` keywords (a MAT ground truth is cut with it). An
    EMIT granule is written on its lookup table's map grid (:func:`hsad.io.glt.orthorectify_cube`;
    a window is one of its instrument pixels). ``apply_scale``: as
    :func:`hsad.io.open_cube`'s (the values divided by a reflectance scale factor).
    """
    from hsad.cube.bands import select_bands
    from hsad.io import detect_format, open_cube
    from hsad.io.casting import CastTally, cast_cube
    from hsad.io.geotiff_writer import write_geotiff_cube
    from hsad.io.glt import orthorectify_cube
    from hsad.io.mat_writer import write_mat
    from hsad.io.matlab import load_mat

    src, dst = Path(src), Path(dst)
    kind = output_format(dst)
    if cog and kind != "geotiff":
        raise ParameterError("--cog needs a .tif or .tiff output", dst)
    if kind == "geotiff" and interleave == "bil":
        raise ParameterError("GeoTIFF has no bil interleave: use bsq or bip", dst)
    if kind == "mat" and interleave is not None:
        raise ParameterError("MAT files have no interleave option", dst)
    fmt = detect_format(src)
    _check_paths(src, dst, fmt, kind)
    window = None
    if subset and any(v is not None for v in subset.values()):
        from hsad.cube.subset import window_for

        # lazy: the file's shape
        window = window_for(open_cube(src, key=key, apply_scale=apply_scale), **subset)
    gt = None
    if fmt == "mat":
        cube, gt = load_mat(src, key=key, chunks=chunks, window=window)
    else:
        cube = open_cube(src, chunks=chunks, key=key, window=window, apply_scale=apply_scale)
    cube = orthorectify_cube(select_bands(cube, **(bands or {})))  # an EMIT granule: its grid
    if cube.attrs.get("file_mask") and cube.attrs.get("nodata") is None:
        # the pixels outside the file's own mask were read as NaN: name NaN the nodata
        # value, so that GDAL masks them in the output too
        cube.attrs["nodata"] = float("nan")
    tally = CastTally()
    if dtype is not None:
        cube = cast_cube(cube, dtype, tally)
    if kind == "geotiff":
        out = write_geotiff_cube(cube, dst, cog=cog,
                                 interleave="pixel" if interleave == "bip" else "band")
    elif kind == "mat":
        out = write_mat(cube, dst, gt=gt, progress=progress)
    else:
        from hsad.io.envi_writer import write_envi

        write_envi(cube, dst, interleave=interleave or "bsq")
        out = dst
    tally.warn(out, cube.dtype)
    return Path(out)


@click.command("convert", epilog=FOLDERS_NOTE)
@click.argument("src", metavar="IN", type=click.Path())
@click.argument("dst", metavar="OUT", type=click.Path())
@click.option("--interleave", type=click.Choice(["bsq", "bil", "bip"]),
              help="Output interleave (ENVI: all three; GeoTIFF: bsq = band, bip = pixel).")
@click.option("--dtype", type=click.Choice(DTYPES), help="Output data type (float to int "
              "rounds and clips to the type's range).")
@key_option
@click.option("--cog", is_flag=True, help="Write a Cloud-Optimized GeoTIFF (.tif output).")
@band_options
@copy_subset_options
@apply_scale_option
@chunks_option
@progress_option
@overwrite_option
@quiet_option
def command(src: str, dst: str, interleave: str | None, dtype: str | None, key: str | None,
            cog: bool, wavelengths: str | None, exclude_wavelengths: str | None,
            band_indices: str | None, drop_bad_bands: bool, wavelength_file: str | None,
            srcwin, projwin, projwin_crs, apply_scale: bool, chunks: int | None,
            progress: bool | None, overwrite: bool) -> None:
    """Convert cube IN to OUT: .tif/.tiff GeoTIFF, .mat MAT v5, anything else ENVI (data
    file OUT plus its .hdr), keeping the bands chosen by the band options (default all) and
    the window chosen by --srcwin or --projwin (default the whole scene). An EMIT granule is
    written orthorectified, on its lookup table's grid."""
    if Path(dst).suffix.lower() == ".hdr":
        raise ParameterError("give the ENVI data file name, not the header", dst)
    bands = band_selection(wavelengths, exclude_wavelengths, band_indices, drop_bad_bands,
                           wavelength_file)
    subset = subset_selection(srcwin, projwin, projwin_crs)
    with plan_outputs([("OUT", dst, "cube")], inputs=[src, wavelength_file],
                      overwrite=overwrite):
        from hsad.engine.scheduler import TileProgress

        with TileProgress(disable=None if progress is None else not progress,
                          desc=f"writing {Path(dst).name}"):
            out = convert(src, dst, interleave=interleave, dtype=dtype, key=key, cog=cog,
                          chunks=chunks, bands=bands, subset=subset, progress=progress,
                          apply_scale=apply_scale)
    say(f"wrote {out}")
