"""GDAL through rasterio, quietly and checked.

:func:`quiet_gdal` silences rasterio's warning for files on a plain pixel grid and records
the GDAL messages rasterio cannot decode; :func:`damage_check` turns those, and libtiff's
warnings about block tags it had to ignore, into a :class:`~hsad.errors.FileFormatError`;
:func:`check_last_block` makes a truncated GeoTIFF fail at open; :func:`gdal_reason` is the
message a user should read of a rasterio error; :func:`nodata_read_back` is the nodata value
a GeoTIFF written with one gives back.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings

import numpy as np
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from hsad.errors import FileFormatError, TruncatedFileError


@contextlib.contextmanager
def quiet_gdal():
    """Silence rasterio's warning for files on a plain pixel grid (common for cubes).

    The ``ignore`` filter is installed while any thread is inside (``catch_warnings``,
    which saves and restores the whole filter list, is not thread safe: threads leaving
    out of order left it installed, or dropped another's filter), and is removed when the
    last one leaves; a filter the user installed is left as it is.
    """
    _filter_undecodable_gdal_messages()
    _IN_GDAL.depth = getattr(_IN_GDAL, "depth", 0) + 1
    _hold_quiet()
    try:
        yield
    finally:
        _release_quiet()
        _IN_GDAL.depth -= 1


#: the threads inside :func:`quiet_gdal`, and the filter they installed (None: none, or the
#: user's own was there)
_QUIET_LOCK = threading.Lock()
_QUIET = {"users": 0, "installed": None}


def _hold_quiet() -> None:
    with _QUIET_LOCK:
        _QUIET["users"] += 1
        # none yet, or a catch_warnings block of another thread restored a list without it
        if ("ignore", None, NotGeoreferencedWarning, None, 0) not in warnings.filters:
            warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
            _QUIET["installed"] = warnings.filters[0]


def _release_quiet() -> None:
    with _QUIET_LOCK:
        _QUIET["users"] -= 1
        entry = _QUIET["installed"]
        if _QUIET["users"] or entry is None:
            return
        _QUIET["installed"] = None
        with contextlib.suppress(ValueError):  # gone: a catch_warnings block restored
            warnings.filters.remove(entry)
            getattr(warnings, "_filters_mutated", lambda: None)()


#: Per thread: ``depth > 0`` while inside :func:`quiet_gdal` (calling GDAL through rasterio);
#: ``undecodable``: GDAL messages about this file that rasterio could not decode.
_IN_GDAL = threading.local()


def _undecodable_gdal_message(exc) -> bool:
    return isinstance(exc, UnicodeDecodeError) and getattr(_IN_GDAL, "depth", 0) > 0


def _filter_undecodable_gdal_messages() -> None:
    """Install (once) filters for rasterio's GDAL message callback failing to decode.

    A GDAL message quoting damaged, non-UTF-8 metadata makes rasterio's callback raise
    ``UnicodeDecodeError``, which Python can only print (through ``sys.excepthook`` and
    ``sys.unraisablehook``) as a traceback on stderr. While hsad calls GDAL, the filters
    record it instead (:func:`damage_check` turns it into a FileFormatError); anything else
    goes to the previous hooks.
    """
    if not getattr(sys.unraisablehook, "_hsad_gdal_filter", False):
        previous_unraisable = sys.unraisablehook

        def unraisable(info):
            if _undecodable_gdal_message(info.exc_value) and "rasterio" in str(info.object):
                if not getattr(_IN_GDAL, "undecodable", None):  # keep the first only
                    _IN_GDAL.undecodable = [info.exc_value]
                return
            previous_unraisable(info)

        unraisable._hsad_gdal_filter = True
        sys.unraisablehook = unraisable
    if not getattr(sys.excepthook, "_hsad_gdal_filter", False):
        previous_except = sys.excepthook

        def excepthook(kind, value, tb):
            if tb is None and _undecodable_gdal_message(value):
                return  # the same message, printed first by Cython; recorded above
            previous_except(kind, value, tb)

        excepthook._hsad_gdal_filter = True
        sys.excepthook = excepthook


def gdal_reason(exc: BaseException) -> str:
    """The message of a rasterio error, or of the GDAL error behind it where rasterio only
    says "See previous exception for details" (which a user never sees)."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if "previous exception" in text and cause is not None:
        return str(cause)
    return text


def check_last_block(src, path: str) -> None:
    """Read the file's last block so that a truncated GeoTIFF fails at open, not later."""
    h, w = src.block_shapes[-1]
    i, j = (src.height - 1) // h, (src.width - 1) // w
    try:
        src.read(src.count, window=src.block_window(src.count, i, j))
    except RasterioError as exc:
        raise TruncatedFileError(f"GeoTIFF data is truncated or corrupt: {gdal_reason(exc)}",
                                 path) from exc


#: libtiff warns about these tags when the file cannot say where its pixels are; GDAL then
#: reads the blocks it cannot locate as nodata, silently.
_BLOCK_TAGS = ("StripOffsets", "StripByteCounts", "TileOffsets", "TileByteCounts")


class _ThreadRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread, self.messages = threading.get_ident(), []

    def emit(self, record):
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def damage_check(path: str):
    """FileFormatError for a GeoTIFF that GDAL opens although it is damaged: metadata that
    is not UTF-8 text, or block offset/size tags that libtiff had to ignore (GDAL would
    read the blocks it cannot locate as nodata)."""
    handler = _ThreadRecords()
    logger = logging.getLogger("rasterio")
    logger.addHandler(handler)
    _IN_GDAL.undecodable = []
    try:
        yield
    except UnicodeDecodeError as exc:  # rasterio decoding a damaged tag or description
        raise FileFormatError(f"GeoTIFF metadata is damaged (not UTF-8 text: {exc})",
                              path) from None
    finally:
        logger.removeHandler(handler)
    if _IN_GDAL.undecodable:
        raise FileFormatError("GeoTIFF metadata is damaged (GDAL reported text that is not "
                              f"UTF-8: {_IN_GDAL.undecodable[0]})", path)
    for message in handler.messages:
        if any(tag in message for tag in _BLOCK_TAGS):
            raise FileFormatError(f"GeoTIFF is corrupt: {message}", path)


def nodata_read_back(dtype, nodata: float) -> float:
    """The nodata value GDAL reads back from a GeoTIFF of ``dtype`` written with ``nodata``
    (through a 1 × 1 file in memory). rasterio sets it as a double and GDAL writes the tag
    in ``%.17g``: a value of 1e17 or more in magnitude comes out in exponent form, which
    GDAL reads back, for a 64-bit integer type, as an integer up to the point (−2⁶³ as
    −9)."""
    with quiet_gdal(), MemoryFile() as mem:
        with mem.open(driver="GTiff", height=1, width=1, count=1, dtype=np.dtype(dtype).name,
                      nodata=nodata) as dst:
            dst.write(np.zeros((1, 1, 1), dtype))
        with mem.open() as src:
            return src.nodata


__all__ = ["check_last_block", "damage_check", "gdal_reason", "nodata_read_back",
           "quiet_gdal"]

