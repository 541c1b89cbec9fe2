"""Raster files kept open while a thread reads many small windows of them.

GDAL keeps a file's decoded blocks in its cache only while the file is open. A reader that
opens the file for each window (:class:`hsad.io.geotiff.WindowReader`) decodes a
compressed tile again for every small window in it: the scene checks' 128 windows of 8 × 8
pixels cost RX on a tiled GeoTIFF six times its time on the same data as ENVI. Inside
:func:`session` (the even sample's windows, :func:`hsad.engine.sampling.even_sample`) the
thread keeps each file it reads open until the session ends, or until a window needs new
blocks beyond :data:`CACHE_BYTES` of decoded ones (one larger block stays for all its
windows; a file that changes on disk meanwhile, by inode, size or modification time, is
opened anew); outside one every read opens and closes its file, so
that no file stays open, no block stays in GDAL's cache beyond a read, and no handle
outlives a session into a forked process. A session also holds what readers keep for
their next windows (:func:`held`: an HDF5 cube's inflated chunks,
:mod:`hsad.io.hdf5_chunks`), dropped when it ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import numpy as np
import rasterio

#: the most bytes of decoded blocks a kept file may leave in GDAL's cache: beyond it the
#: file is opened anew (so a session holds about this much, whatever GDAL_CACHEMAX is)
CACHE_BYTES = 64 * 2**20

_local = threading.local()


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # rasterio.open says what is wrong
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Keep the files this thread reads through :func:`opened` open until the end, and
    what readers keep in :func:`held` (an HDF5 reader's inflated chunks)."""
    if getattr(_local, "kept", None) is not None:  # nested: the outer session keeps them
        yield
        return
    _local.kept, _local.held = {}, {}
    try:
        yield
    finally:
        kept, _local.kept, _local.held = getattr(_local, "kept", None) or {}, None, None
        for entry in kept.values():
            entry[1].close()


def held() -> dict | None:
    """What this thread's :func:`session` keeps for the readers, by their own keys (dropped
    when the session ends); None outside a session."""
    return getattr(_local, "held", None)


def _tiles(src, window, bands: int) -> tuple[set, int]:
    """The blocks a read of ``window`` decodes, and the bytes each holds in GDAL's cache."""
    bh, bw = src.block_shapes[0]
    rows = range(window.row_off // bh, (window.row_off + window.height - 1) // bh + 1)
    cols = range(window.col_off // bw, (window.col_off + window.width - 1) // bw + 1)
    pixel = str(getattr(src, "interleaving", "")).lower().endswith("pixel")
    per = bh * bw * np.dtype(src.dtypes[0]).itemsize * (src.count if pixel else bands)
    return {(r, c) for r in rows for c in cols}, per


@contextlib.contextmanager
def opened(path: str, window=None, bands: int = 1) -> Iterator:
    """An open rasterio dataset of ``path`` for a read of ``window`` (``bands`` of them):
    this thread's kept one inside a :func:`session` (while the file is unchanged, and
    opened anew once the blocks it decoded would pass :data:`CACHE_BYTES` in GDAL's
    cache), else one opened for this read alone."""
    kept = getattr(_local, "kept", None)
    if kept is None or window is None:
        with rasterio.open(path) as src:
            yield src
        return
    signature = _signature(path)
    entry = kept.pop(path, None)
    if entry is not None and (signature is None or entry[0] != signature):
        entry[1].close()
        entry = None
    if entry is not None:
        tiles, per = _tiles(entry[1], window, bands)
        new = len(tiles - entry[2])
        if new and entry[3] + new * per > CACHE_BYTES:
            # its blocks leave GDAL's cache with it; a window within blocks it decoded
            # keeps it, however large they are (a 512² block of 224 float32 bands holds
            # 235 MB: reopened for each window, each of the two samples' 1 088 windows
            # decoded its block again)
            entry[1].close()
            entry = None
    if entry is None:
        entry = [signature, rasterio.open(path), set(), 0]
    tiles, per = _tiles(entry[1], window, bands)
    entry[3] += len(tiles - entry[2]) * per
    entry[2] |= tiles
    kept[path] = entry
    try:
        yield entry[1]
    except BaseException:
        kept.pop(path, None)  # a failed read: not kept
        entry[1].close()
        raise


def _forget_in_child() -> None:
    """After a fork, the child drops the parent's handles (they share its file offsets)."""
    _local.__dict__.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


__all__ = ["CACHE_BYTES", "held", "opened", "session"]
