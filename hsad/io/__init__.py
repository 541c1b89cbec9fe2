"""Readers and writers. ``open_cube`` picks the reader from the file itself."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from hsad.errors import FileFormatError, HsadError, ParameterError, UnsupportedError
from hsad.io.missing import no_file
from hsad.lazy_modules import lazy_package

if TYPE_CHECKING:  # xarray is loaded by the readers, not by `import hsad.io`
    import xarray as xr

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise FileFormatError(no_file(path), path)
    if path.is_dir():
        raise FileFormatError("is a directory, not a file" + _products_inside(path), path)
    if not os.access(path, os.R_OK):
        raise FileFormatError("permission denied (file is not readable)", path)


def _products_inside(folder: Path) -> str:
    """``": it holds the EnMAP product folder <name>: give that"`` when product folders lie
    one level down (a delivery unpacked into a folder of its own), else ""."""
    from hsad.io.enmap import metadata_of

    try:
        products = sorted(e for e in folder.iterdir() if e.is_dir() and metadata_of(e))
    except OSError:
        return ""
    if not products:
        return ""
    if len(products) == 1:
        return f": it holds the EnMAP product folder {products[0].name}: give that"
    named = ", ".join(p.name for p in products[:3]) + (", …" if len(products) > 3 else "")
    return f": it holds {len(products)} EnMAP product folders ({named}): give one"


def check_regular(path: str | os.PathLike) -> None:
    """FileFormatError when ``path`` exists but is not a regular file or folder: reading a
    named pipe, a device or a socket would wait for a writer, or read without end."""
    mode = os.stat(path).st_mode if os.path.exists(path) else None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise FileFormatError("not a regular file (a named pipe, device or socket): give "
                              "the file itself", path)


def check_input(path: str | os.PathLike, what: str, error: type = FileFormatError) -> None:
    """``error`` naming ``path`` unless it is a file ("<what> file not found"); a named pipe,
    device or socket refused as :func:`check_regular` refuses it."""
    check_regular(path)
    if not os.path.isfile(path):
        raise error(f"{what} file not found", path)


def gdal_name_problem(path: str | os.PathLike) -> str | None:
    """Why GDAL cannot open or create ``path`` by name, or None: a name that is not UTF-8
    (the bytes of another encoding, from an old Windows share), which GDAL's UTF-8 API
    cannot be given."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return ("its name is not valid UTF-8 (bytes of another encoding), which GDAL cannot "
                "open; rename it")
    return None


def printable(text: str | os.PathLike) -> str:
    """A path or name as text any UTF-8 writer takes: the odd bytes of a name that is not
    UTF-8 (Latin-1 from an old share, held by Python as surrogates) written ``\xfc``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _hdf5_signature(fh) -> bool:
    """Whether the open file holds HDF5's signature where HDF5 looks for it: at byte 0, or
    after a user block of 512, 1024, 2048 … bytes (a MATLAB v7.3 file's 512; up to 1 MiB
    here)."""
    for offset in (0, *(512 << k for k in range(12))):
        fh.seek(offset)
        if fh.read(8) == _HDF5_MAGIC:
            return True
    return False


def detect_format(path: str | os.PathLike, what: str = "cube") -> str:
    """Return ``"envi"``, ``"geotiff"``, ``"mat"``, ``"emit"``, ``"prisma"``, ``"neon"`` or
    ``"enmap"``
    for ``path``, sniffing its bytes (``what`` the file is meant to be, for the error when it
    is none of them). An EnMAP product is named by its folder, its ``METADATA.XML`` or its
    ``SPECTRAL_IMAGE`` file."""
    p = Path(path)
    check_regular(p)
    if what == "cube" and p.exists():
        from hsad.io.enmap import is_enmap, why_not_enmap

        if is_enmap(p):
            return "enmap"
        problem = why_not_enmap(p)
        if problem is not None:
            raise FileFormatError(problem, p)
    _check_readable(p)
    with open(p, "rb") as fh:
        head = fh.read(512)
        hdf5 = _hdf5_signature(fh)
    suffix = p.suffix.lower()
    if not head:
        raise FileFormatError("empty file (0 bytes)", p)
    if head[:4] in _TIFF_MAGIC:
        if (problem := gdal_name_problem(p)) is not None:
            raise FileFormatError(problem, p)
        return "geotiff"
    mat_marks = head.startswith(b"MATLAB") or hdf5
    if suffix == ".mat" and mat_marks:
        return "mat"
    if head.lstrip(b"\xef\xbb\xbf").lstrip().upper().startswith(b"ENVI"):
        return "envi"
    from hsad.io.envi_files import find_header

    # a data file beside its header is ENVI whatever its first bytes (raw pixels can spell
    # "MATLAB"), as GDAL reads it
    if suffix != ".hdr" and find_header(p) is not None:
        return "envi"
    if head.startswith(b"MATLAB") or suffix == ".mat":
        return "mat"
    if mat_marks:  # HDF5 that is not MATLAB's: EMIT netCDF-4, PRISMA .he5, other products
        from hsad.io.emit import is_emit, why_not_emit
        from hsad.io.neon import is_neon, why_not_neon
        from hsad.io.prisma import is_prisma, why_not_prisma

        if is_emit(p):
            return "emit"
        if is_prisma(p):
            return "prisma"
        if is_neon(p):
            return "neon"
        problem = why_not_emit(p) or why_not_prisma(p) or why_not_neon(p)
        if problem is not None:
            raise FileFormatError(problem, p)
        raise UnsupportedError(
            "an HDF5 file that is not an EMIT granule, a PRISMA product or a NEON reflectance "
            "file: hsad reads ENVI, GeoTIFF, MAT, EMIT netCDF, PRISMA .he5 and NEON "
            "reflectance .h5; export the cube first, e.g. "
            f"gdal_translate 'HDF5:\"{p.name}\"://<path>/<cube>' cube.tif (`gdalinfo` lists "
            "the cubes), and give its wavelengths", p)
    if suffix in (".tif", ".tiff"):
        return "geotiff"
    if head[:4] in (b"CDF\x01", b"CDF\x02", b"CDF\x05"):
        raise UnsupportedError("a netCDF-3 (classic) file: hsad reads netCDF-4 EMIT granules; "
                               "export the cube first, e.g. gdal_translate NETCDF:file:var "
                               "out.tif", p)
    archive = _archive_kind(head)
    if archive is not None:
        raise UnsupportedError(_archive_advice(p, archive), p)
    if (driver := _gdal_driver(p)) == "GTiff":  # a GeoTIFF named otherwise (scene.gtif)
        return "geotiff"
    if driver is not None:  # a VRT stack, a JPEG 2000, an Erdas .img
        raise UnsupportedError(
            f"a raster GDAL reads as {driver}, which hsad does not read: make it a GeoTIFF "
            f"first, e.g. gdal_translate {shlex.quote(p.name)} cube.tif (a `gdalbuildvrt "
            "-separate` stack becomes one multi-band file), then give cube.tif", p)
    raise FileFormatError(
        f"not a recognised {what} (expected an ENVI header or data file, a GeoTIFF, a MAT "
        "file, an EMIT netCDF-4 granule, a PRISMA .he5 product, a NEON reflectance .h5 file "
        "or an EnMAP product's folder or METADATA.XML)", p)


def _gdal_driver(p: Path) -> str | None:
    """The GDAL driver that opens ``p`` as a raster (``VRT``, ``JP2OpenJPEG``, ``HFA``), or
    None: a format hsad does not read, named in its error with the way to convert it."""
    try:
        import rasterio
        from rasterio.errors import RasterioError

        from hsad.io.geotiff import quiet_gdal
    except ImportError:
        return None
    try:
        with quiet_gdal(), rasterio.open(p) as src:
            return str(src.driver) if src.count else None
    except (RasterioError, OSError, ValueError):
        return None


def _archive_kind(head: bytes) -> str | None:
    """What archive or compressed file a file's first 512 bytes show, or None."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "a ZIP archive"
    if head[257:262] == b"ustar":
        return "a tar archive"
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "a 7z archive"
    if head[:2] == b"\x1f\x8b":
        return "a gzip-compressed file"
    if head[:3] == b"BZh":
        return "a bzip2-compressed file"
    return None


def _archive_advice(p: Path, kind: str) -> str:
    """What to do with an archive given as a cube: unpack it, and what to give then (an
    EnMAP product archive, as delivered, named as such)."""
    advice = "unpack it first and give the cube inside"
    if kind == "a ZIP archive":
        import zipfile

        from hsad.io.model_archive import is_model_file

        if is_model_file(p):
            return ("an hsad model file, not a cube: give it to --model (hsad detect SCENE "
                    "--model FILE); hsad info describes it")
        try:
            with zipfile.ZipFile(p) as z:
                names = [n.upper() for n in z.namelist()]
        except (OSError, zipfile.BadZipFile):
            names = []
        if any(n.endswith("-METADATA.XML") and "ENMAP" in n for n in names):
            kind += " holding an EnMAP product"
            advice = "unpack it and give the product's folder or its METADATA.XML"
        elif any(n.endswith(".ZIP") and "ENMAP" in n for n in names):
            kind += " of EnMAP product archives"
            advice = ("unpack it, then each product's archive, and give a product's folder or "
                      "its METADATA.XML")
    return f"{kind}: {advice} (hsad does not read archives)"


def open_cube(
    path: str | os.PathLike,
    chunks: int | tuple | None = None,
    *,
    key: str | None = None,
    apply_scale: bool = False,
    srcwin=None,
    projwin=None,
    projwin_crs=None,
    window=None,
) -> xr.DataArray:
    """Open an ENVI, GeoTIFF, MATLAB, EMIT, PRISMA, NEON or EnMAP cube lazily as a
    ``(y, x, band)`` DataArray.

    ``chunks`` is the tile size along y and x (all bands stay together); ``key`` names
    the cube variable in a MAT file or EMIT granule (:mod:`hsad.io.emit`), or a PRISMA or
    EnMAP product's spectrometers (:mod:`hsad.io.prisma`, :mod:`hsad.io.enmap`); ``apply_scale``
    divides ENVI data by its ``reflectance scale factor`` and NEON data by its
    ``Scale_Factor``, and applies a GeoTIFF's band scales and offsets (which ``hsad
    convert`` writes such a factor into); the other readers give physical units already
    (EMIT, PRISMA, EnMAP). ``srcwin`` (xoff,
    yoff, xsize, ysize) or ``projwin`` (ulx, uly, lrx, lry, in ``projwin_crs``; default
    the file's CRS; for an EMIT granule its map grid's, :mod:`hsad.io.glt`) open only that window,
    as ``gdal_translate`` cuts it (:mod:`hsad.cube.subset`; ``window``: a
    :class:`hsad.cube.subset.Window` already computed), and read only its pixels.
    """
    from hsad.io.atomic import refuse_unexpanded_home

    refuse_unexpanded_home(path, FileFormatError)
    if window is not None and not hasattr(window, "row_off"):
        raise ParameterError(f"window= takes a hsad.cube.subset.Window, got {window!r}: give "
                             "srcwin=(xoff, yoff, xsize, ysize) for a window in pixels")
    fmt = detect_format(path)
    if window is None and srcwin is None and projwin is None and projwin_crs is None:
        return _open_format(fmt, path, chunks, key, apply_scale, None)
    if window is None:  # the window's numbers need the file's shape (and georeference)
        from hsad.cube.subset import window_for

        whole = _open_format(fmt, path, None, key, apply_scale, None)
        window = window_for(whole, srcwin, projwin, projwin_crs)
    return _open_format(fmt, path, chunks, key, apply_scale, window)


#: the formats whose files hold several cubes or variables, one named by ``key``
KEYED_FORMATS = ("mat", "emit", "prisma", "enmap")


def keys_for(paths, key: str | None) -> list[str | None]:
    """``key`` for each of ``paths`` (one ``--key`` given for several files) where its format
    takes one, None for the others (ENVI files, GeoTIFFs: one cube each); a
    ParameterError when none of them takes one."""
    if key is None:
        return [None] * len(paths)

    def takes_one(path) -> bool | None:
        try:
            return detect_format(path) in KEYED_FORMATS
        except HsadError:  # unreadable: its own job reports why
            return None

    keyed = [takes_one(p) for p in paths]
    if not any(k is not False for k in keyed):
        raise ParameterError(_KEY_NAMES.format(key=key) + "none of the files given is one")
    return [None if k is False else key for k in keyed]


#: what a key names, the start of both refusals of one
_KEY_NAMES = ("key {key!r} (--key) names a variable of a MAT file or an EMIT granule, or a "
              "PRISMA or EnMAP product's spectrometers; ")


def _open_format(fmt: str, path, chunks, key, apply_scale: bool, window) -> xr.DataArray:
    """The reader of format ``fmt`` on ``path`` (``window``: only that window)."""
    if key is not None and fmt in ("envi", "geotiff", "neon"):  # refused, not ignored
        kind = {"envi": "an ENVI file", "geotiff": "a GeoTIFF", "neon": "a NEON file"}[fmt]
        raise ParameterError(_KEY_NAMES.format(key=key) + f"this is {kind}, which has one "
                             "cube", path)
    if fmt == "envi":
        from hsad.io.envi import open_envi

        return open_envi(path, chunks=chunks, apply_scale=apply_scale, window=window)
    if fmt == "geotiff":
        from hsad.io.geotiff import open_geotiff

        return open_geotiff(path, chunks=chunks, window=window, apply_scale=apply_scale)
    if fmt == "emit":
        from hsad.io.emit import open_emit

        return open_emit(path, chunks=chunks, key=key, window=window)
    if fmt == "prisma":
        from hsad.io.prisma import open_prisma

        return open_prisma(path, chunks=chunks, key=key, window=window)
    if fmt == "neon":
        from hsad.io.neon import open_neon

        return open_neon(path, chunks=chunks, window=window, apply_scale=apply_scale)
    if fmt == "enmap":
        from hsad.io.enmap import open_enmap

        return open_enmap(path, chunks=chunks, key=key, window=window)
    from hsad.io.matlab import open_mat

    return open_mat(path, chunks=chunks, key=key, window=window)


#: the package's modules load on first use, and dir() lists them before they do
__getattr__, __dir__ = lazy_package(__name__)


__all__ = ["detect_format", "open_cube"]
