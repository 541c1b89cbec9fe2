"""Raster files kept open per thread between window reads.

GDAL keeps a file's decoded blocks in its cache only while the file is open. A reader
that opens the file for each window (:class:`hsad.io.geotiff.WindowReader`) decodes a
compressed tile again for every small window in it: the scene checks' 128 windows of
8 × 8 pixels cost RX on a tiled GeoTIFF six times its time on the same data as ENVI.
Each thread keeps its last :data:`KEPT` files open, each until the file changes (another
inode, size or modification time: a file replaced or rewritten is opened anew).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import rasterio

#: files kept open per thread
KEPT = 4

_local = threading.local()


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # rasterio.open says what is wrong
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def dataset(path: str):
    """This thread's open rasterio dataset of ``path``: the one kept while the file is
    unchanged, else a new one."""
    kept = getattr(_local, "kept", None)
    if kept is None:
        kept = _local.kept = OrderedDict()
    signature = _signature(path)
    entry = kept.pop(path, None)
    if entry is not None:
        if signature is not None and entry[0] == signature and not entry[1].closed:
            kept[path] = entry
            return entry[1]
        entry[1].close()
    src = rasterio.open(path)
    kept[path] = (signature, src)
    while len(kept) > KEPT:
        kept.popitem(last=False)[1][1].close()
    return src


def forget(path: str) -> None:
    """Close this thread's kept dataset of ``path`` (after a failed read)."""
    kept = getattr(_local, "kept", None)
    entry = kept.pop(path, None) if kept is not None else None
    if entry is not None:
        entry[1].close()


__all__ = ["KEPT", "dataset", "forget"]
