"""The pixels of an ENVI data file, a window at a time, through memory-mapped rows.

:class:`EnviPixels` reads ``(y, x, band)`` windows of any interleave and byte order: a
native-endian BIP window is a copy-on-write view of its rows (at most :data:`_LIVE_VIEWS`
views of :data:`_LIVE_VIEW_BYTES` together), a BIP window that is copied is read with
positional reads (nothing mapped), any other window is copied into a native-endian
array a block of :data:`_BLOCK_BYTES` at a time. :class:`EnviWindowWriter`
writes windows through the same access (``dask.array.store``).
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from hsad.errors import FileFormatError, TruncatedFileError
from hsad.io.pixel_rows import read_bands, read_interleaved
from hsad.io.window import full_key

#: Bytes of file rows mapped at once while copying a window (bounds mapped memory).
_BLOCK_BYTES = 16 * 2**20
#: Windows read as views of the mapped file at once (each mapping holds a descriptor), and
#: the bytes they may map together (address space, which ``ulimit -v`` bounds): enough for
#: the chunks a sweep holds at once, far below what a persisted cube would need
_LIVE_VIEWS = 16
_LIVE_VIEW_BYTES = 2**30
#: a view maps whole file rows: a window narrower than 1/this of them is copied instead
_VIEW_SPAN = 4
_live_views = 0
_live_view_bytes = 0
_views_lock = threading.Lock()


def _view_closed(nbytes: int) -> None:
    global _live_views, _live_view_bytes
    with _views_lock:
        _live_views -= 1
        _live_view_bytes -= nbytes


def _map_data(source, dtype: np.dtype, offset: int, count: int, mode: str = "r") -> np.ndarray:
    """A 1-D view of ``count`` items at byte ``offset`` of a file (memory-mapped) or buffer."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return np.frombuffer(source, dtype=dtype, count=count, offset=offset)
    try:
        return np.memmap(source, dtype=dtype, mode=mode, offset=offset, shape=(count,))
    except ValueError as exc:  # the file shrank after opening
        raise TruncatedFileError(f"data file is shorter than its header says ({exc})",
                                 source) from None
    except OSError as exc:
        raise FileFormatError(f"cannot map data file: {exc.strerror or exc}", source) from None


def _axis_slice(key, n: int) -> tuple[slice, object]:
    """Normalise an index along one axis to a slice with explicit bounds, plus what to do
    after reading it: ``"int"`` (drop the axis), ``None`` or an index array to take."""
    if isinstance(key, (int, np.integer)):
        k = int(key) + (n if key < 0 else 0)
        if not 0 <= k < n:
            raise IndexError(f"index {int(key)} out of range for size {n}")
        return slice(k, k + 1, 1), "int"
    if isinstance(key, slice):
        start, stop, step = key.indices(n)
        if step < 0 and stop < 0:
            stop = None
        return slice(start, stop, step), None
    idx = np.asarray(key)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError(f"unsupported index {key!r}")
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"index out of range for size {n}")
    if not idx.size:
        return slice(0, 0, 1), idx
    lo = int(idx.min())
    return slice(lo, int(idx.max()) + 1, 1), idx - lo


class EnviPixels:
    """Read-only array-like over an ENVI data file, indexed in ``(y, x, band)`` order.

    ``source`` is the data file path, or a bytes buffer (decompressed gzip payload).
    ``__getitem__`` returns the window as a native-endian numpy array: a copy-on-write view
    of the file for a native-endian BIP file (:meth:`_mapped_window`), else a new array.
    """

    ndim = 3

    def __init__(self, source, file_dtype: np.dtype, shape: tuple[int, int, int],
                 interleave: str, offset: int, frame: tuple[int, int] = (0, 0)):
        self.source = source
        self.file_dtype = np.dtype(file_dtype)
        self.dtype = self.file_dtype.newbyteorder("=")
        self.shape = tuple(int(s) for s in shape)
        self.interleave = interleave
        #: ``major frame offsets``: bytes before and after each line (GDAL's reading: the
        #: first line starts ``before`` bytes later, lines lie ``before + after`` apart,
        #: and a BSQ file's bands keep their unpadded spacing)
        self.frame = (int(frame[0]), int(frame[1]))
        self.offset = int(offset) + self.frame[0]

    def _line_bytes(self) -> int:
        """Bytes from one file line to the next (a BSQ band's row, else a row of all
        bands), the frame bytes included."""
        rows, cols, bands = self.shape
        per_line = cols * self.file_dtype.itemsize * (1 if self.interleave == "bsq" else bands)
        return per_line + sum(self.frame)

    def span(self, rows: int | None = None) -> int:
        """Bytes from the start of a run of ``rows`` file rows (default: all, from
        :attr:`offset`) to the end of its last pixel."""
        n = self.shape[0] if rows is None else rows
        total_rows, cols, bands = self.shape
        last = n * self._line_bytes() - sum(self.frame)  # no frame bytes after the last
        if self.interleave == "bsq":  # the bands' planes keep their unpadded spacing
            last += (bands - 1) * total_rows * cols * self.file_dtype.itemsize
        return last

    def __getitem__(self, key) -> np.ndarray:
        parts = [_axis_slice(k, n) for k, n in zip(full_key(key, 3), self.shape,
                                                   strict=True)]
        out = self.read_window(*(s for s, _ in parts))
        for axis, (_, then) in enumerate(parts):
            if isinstance(then, np.ndarray):
                out = np.take(out, then, axis=axis)
        drop = tuple(axis for axis, (_, then) in enumerate(parts) if isinstance(then, str))
        return out.squeeze(axis=drop) if drop else out

    # -- layout ---------------------------------------------------------------------------

    def _rows_view(self, r0: int, r1: int, mode: str = "r") -> np.ndarray:
        """Native-layout view of file rows ``r0:r1``.

        Axes: bip (y, x, band), bil (y, band, x), bsq (band, y, x).
        """
        rows, cols, bands = self.shape
        item = self.file_dtype.itemsize
        n = r1 - r0
        if any(self.frame):
            return self._framed_rows_view(r0, r1, mode)
        if self.interleave == "bsq":
            start = self.offset + r0 * cols * item
            count = ((bands - 1) * rows + r1 - r0) * cols
            flat = _map_data(self.source, self.file_dtype, start, count, mode)
            strides = (rows * cols * item, cols * item, item)
            return np.lib.stride_tricks.as_strided(flat, (bands, n, cols), strides,
                                                   writeable=mode != "r")
        line = cols * bands
        flat = _map_data(self.source, self.file_dtype, self.offset + r0 * line * item,
                         n * line, mode)
        shape = (n, cols, bands) if self.interleave == "bip" else (n, bands, cols)
        return flat.reshape(shape)

    def _framed_rows_view(self, r0: int, r1: int, mode: str) -> np.ndarray:
        """:meth:`_rows_view` of a file whose lines are framed by extra bytes."""
        rows, cols, bands = self.shape
        item = self.file_dtype.itemsize
        n, line = r1 - r0, self._line_bytes()
        if self.interleave == "bsq":
            shape, strides = (bands, n, cols), (rows * cols * item, line, item)
        else:
            shape, strides = ((n, cols, bands), (line, bands * item, item)) \
                if self.interleave == "bip" else ((n, bands, cols), (line, cols * item, item))
        raw = _map_data(self.source, np.dtype(np.uint8), self.offset + r0 * line, self.span(n),
                        mode)
        return np.ndarray(shape, dtype=self.file_dtype, buffer=raw, strides=strides)

    def _row_blocks(self, ys: slice):
        """``(r0, r1, out_start)`` blocks covering the selected rows."""
        rows, cols, bands = self.shape
        if ys.step == 1:
            per_block = max(1, _BLOCK_BYTES // (cols * bands * self.file_dtype.itemsize))
            for r0 in range(ys.start, ys.stop, per_block):
                yield r0, min(r0 + per_block, ys.stop), r0 - ys.start
        else:
            for i, r in enumerate(range(*ys.indices(rows))):
                yield r, r + 1, i

    # -- reading --------------------------------------------------------------------------

    def _mapped_window(self, ys: slice, xs: slice, bs: slice, nx: int, nb: int,
                       ) -> np.ndarray | None:
        """The window (``nx`` columns, ``nb`` bands) as a view of the file's pages, or None
        when it needs a copy.

        Only a native-endian BIP file without line frames is stored in ``(y, x, band)``
        order: its window is then returned with no copy (the pages stay in the page cache,
        shared with every other reader), which saves a pass through memory on every read.
        The view maps the window's rows only, for as long as the chunk lives, and is
        copy-on-write: writing to a chunk never reaches the file. Each live mapping holds a
        file descriptor and the address space of whole rows, so at most :data:`_LIVE_VIEWS`
        views of :data:`_LIVE_VIEW_BYTES` together exist at once, and a window narrower
        than 1/:data:`_VIEW_SPAN` of its rows is copied; beyond these, or when the system
        refuses a mapping, the window is copied (as a persisted cube's chunks mostly are).
        """
        global _live_views, _live_view_bytes
        if (self.interleave != "bip" or any(self.frame) or ys.step != 1
                or isinstance(self.source, (bytes, bytearray, memoryview))
                or self.file_dtype != self.dtype):
            return None
        nbytes = (ys.stop - ys.start) * self.shape[1] * self.shape[2] * self.dtype.itemsize
        if nbytes > _VIEW_SPAN * (ys.stop - ys.start) * nx * nb * self.dtype.itemsize:
            return None
        with _views_lock:
            if _live_views >= _LIVE_VIEWS or _live_view_bytes + nbytes > _LIVE_VIEW_BYTES:
                return None
            _live_views += 1
            _live_view_bytes += nbytes
        try:
            rows = self._rows_view(ys.start, ys.stop, mode="c")
        except FileFormatError:  # EMFILE, ENOMEM: the 16 MiB blocks of a copy may still map
            _view_closed(nbytes)
            return None
        except BaseException:
            _view_closed(nbytes)
            raise
        owner = rows
        while isinstance(owner, np.ndarray):  # the mmap object: closed with its last view
            owner = owner.base
        weakref.finalize(owner, _view_closed, nbytes)
        return np.asarray(rows[:, xs, bs])

    def _read_bip(self, ys: slice, xs: slice, bs: slice) -> np.ndarray | None:
        """The window of a BIP file without line frames, copied by positional reads (one
        per row, or one for whole rows: :func:`hsad.io.pixel_rows.read_interleaved`), or
        None for other layouts. Some of the bands: the pixels of :data:`_BLOCK_BYTES` of
        rows at a time, the bands kept (memory follows the bands asked for). Mapping a
        window's whole rows to copy a few pixels of them cost about three times as much
        (docs/performance.md, benchmark 41)."""
        if (self.interleave != "bip" or any(self.frame) or ys.step != 1 or xs.step != 1
                or isinstance(self.source, (bytes, bytearray, memoryview))):
            return None
        rows, cols, bands = self.shape
        try:
            with open(self.source, "rb", buffering=0) as handle:
                if (bs.start, bs.stop, bs.step) == (0, bands, 1):  # read in place, whole
                    out = read_interleaved(handle, self.offset, cols, bands, self.dtype, ys, xs)
                else:
                    out = read_bands(handle, self.offset, cols, bands, self.dtype, ys, xs, bs,
                                     _BLOCK_BYTES)
        except EOFError as exc:
            raise TruncatedFileError(f"data file is shorter than its header says ({exc})",
                                     self.source) from None
        except OSError as exc:
            raise FileFormatError(f"cannot read data file: {exc.strerror or exc}",
                                  self.source) from None
        if self.file_dtype != self.dtype:  # the file's byte order: swapped in place
            out.byteswap(inplace=True)
        return out

    def read_window(self, ys: slice, xs: slice, bs: slice) -> np.ndarray:
        """Rows ``ys``, columns ``xs`` and bands ``bs`` as a (y, x, band) array: a view of
        the mapped file where the layout allows (:meth:`_mapped_window`), else a copy."""
        sel = zip((ys, xs, bs), self.shape, strict=True)
        ny, nx, nb = (len(range(*s.indices(n))) for s, n in sel)
        if ny and nx and nb:
            view = self._mapped_window(ys, xs, bs, nx, nb)
            if view is not None:
                return view
        if ny and nx and nb:
            read = self._read_bip(ys, xs, bs)
            if read is not None:
                return read
        out = np.empty((ny, nx, nb), dtype=self.dtype)
        if out.size == 0:
            return out
        # padded buffer for the band<->column transpose: avoids cache-set aliasing
        pad = 64 // self.dtype.itemsize
        buf = np.empty((nb, nx + pad), dtype=self.dtype) if self.interleave != "bip" else None
        for r0, r1, o0 in self._row_blocks(ys):
            src = self._rows_view(r0, r1)
            dst = out[o0:o0 + (r1 - r0)]
            if self.interleave == "bip":
                dst[...] = src[:, xs, bs]
            else:
                planes = src[:, bs, xs] if self.interleave == "bil" else src[bs, :, xs]
                self._transpose_lines(planes, dst, buf, band_axis_first=self.interleave == "bsq")
            del src
        return out

    @staticmethod
    def _transpose_lines(planes, dst, buf, band_axis_first: bool) -> None:
        """Copy (y, b, x) [bil] or (b, y, x) [bsq] ``planes`` into (y, x, b) ``dst``."""
        ny, nx, nb = dst.shape
        if nb == 1:
            dst[:, :, 0] = planes[0] if band_axis_first else planes[:, 0]
            return
        if nx < 64:  # short lines: one vectorised copy beats a Python loop over lines
            dst[...] = planes.transpose(1, 2, 0) if band_axis_first else planes.transpose(0, 2, 1)
            return
        work = buf[:, :nx]
        for i in range(ny):
            work[...] = planes[:, i] if band_axis_first else planes[i]
            dst[i] = work.T


class EnviWindowWriter:
    """``da.store`` target writing (y, x, band) windows into an ENVI data file."""

    def __init__(self, pixels: EnviPixels):
        self.pixels = pixels

    def __setitem__(self, key, value) -> None:
        ys, xs, bs = (_axis_slice(k, n)[0] for k, n in zip(key, self.pixels.shape, strict=True))
        value = np.asarray(value)
        for r0, r1, o0 in self.pixels._row_blocks(ys):
            dst = self.pixels._rows_view(r0, r1, mode="r+")
            block = value[o0:o0 + (r1 - r0)]
            if self.pixels.interleave == "bip":
                dst[:, xs, bs] = block
            elif self.pixels.interleave == "bil":
                dst[:, bs, xs] = block.transpose(0, 2, 1)
            else:
                dst[bs, :, xs] = block.transpose(2, 0, 1)
            del dst
