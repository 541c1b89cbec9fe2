"""Windows of a pixel-interleaved ``(row, col, band)`` byte range of a file, read with
positional reads: nothing is mapped, so a small window costs a few system calls, not a
mapping of its whole rows (ENVI BIP files, the unpacked band groups of an HDF5 cube).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np


def pread_into(handle, view: memoryview, offset: int, lock=None) -> None:
    """Fill ``view`` with the bytes of the open file ``handle`` from byte ``offset``:
    ``preadv`` where the system has it (threads may share the handle), else a seek and a
    read (under ``lock`` when one is given). EOFError when the file ends first."""
    if not hasattr(os, "preadv"):
        with lock if lock is not None else contextlib.nullcontext():
            handle.seek(offset)
            while len(view):  # one read returns at most about 2 GiB
                n = handle.readinto(view)
                if not n:
                    raise EOFError(f"the file ends before byte {offset + len(view)}")
                view, offset = view[n:], offset + n
        return
    while len(view):
        n = os.preadv(handle.fileno(), [view], offset)
        if n <= 0:
            raise EOFError(f"the file ends before byte {offset + len(view)}")
        view, offset = view[n:], offset + n


def read_interleaved(handle, offset: int, cols: int, bands: int, dtype, rows: slice,
                     columns: slice, lock=None, out: np.ndarray | None = None) -> np.ndarray:
    """``(rows, columns, bands)`` of the ``(·, cols, bands)`` pixel-interleaved array of
    ``dtype`` that starts at byte ``offset`` of ``handle`` (slices with step 1), into
    ``out`` (C-ordered, that shape) or a new array: one read when the window spans whole
    rows, else one read per row."""
    r0, r1, c0, c1 = rows.start, rows.stop, columns.start, columns.stop
    if out is None:
        out = np.empty((max(0, r1 - r0), max(0, c1 - c0), bands), dtype)
    if not out.size:
        return out
    pixel = bands * out.dtype.itemsize
    if c0 == 0 and c1 == cols:
        pread_into(handle, memoryview(out).cast("B"), offset + r0 * cols * pixel, lock)
        return out
    for i, r in enumerate(range(r0, r1)):
        pread_into(handle, memoryview(out[i]).cast("B"), offset + (r * cols + c0) * pixel, lock)
    return out


def read_bands(handle, offset: int, cols: int, bands: int, dtype, rows: slice,
               columns: slice, keep: slice, block_bytes: int, lock=None,
               out: np.ndarray | None = None) -> np.ndarray:
    """The bands ``keep`` of :func:`read_interleaved`'s window, into ``out`` (any view of
    that shape) or a new array: the pixels are read ``block_bytes`` of rows at a time into
    one buffer and only those bands kept, so memory follows the bands kept."""
    r0, r1 = rows.start, rows.stop
    width = max(0, columns.stop - columns.start)
    kept = len(range(*keep.indices(bands)))
    if out is None:
        out = np.empty((max(0, r1 - r0), width, kept), dtype)
    if not out.size:
        return out
    step = max(1, block_bytes // (width * bands * np.dtype(dtype).itemsize))
    buf = np.empty((min(step, r1 - r0), width, bands), dtype)
    for b0 in range(r0, r1, step):
        b1 = min(b0 + step, r1)
        got = read_interleaved(handle, offset, cols, bands, dtype, slice(b0, b1), columns,
                               lock, out=buf[: b1 - b0])
        out[b0 - r0:b1 - r0] = got[:, :, keep]
    return out
