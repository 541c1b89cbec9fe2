"""HDF5 cubes chunked in whole planes, unpacked once to a temporary file.

Some NEON reflectance files (2022 on) store each band of the scene as one gzip chunk
(``Reflectance_Data`` of 1714 × 719 × 428 int16 in chunks of 1714 × 719 × 1). HDF5
decodes a chunk whole for any window in it, so every window of every band, a tile or an
8 × 8 sample window, decoded the whole cube (1 GB): no chunk cache holds it. Such a
cube is read once, a group of bands at a time (each chunk decoded once), into an
uncompressed file in the temporary directory (``TMPDIR``), each group pixel-interleaved,
and every window is read from there. The file has no name (it is deleted
when opened), so nothing is left behind, whatever ends the process.
"""

from __future__ import annotations

import os
import tempfile
import threading
import weakref

import numpy as np

from hsad.engine.scheduler import concurrency
from hsad.errors import OutputError, TruncatedFileError
from hsad.io.hdf5_chunks import inflated
from hsad.io.pixel_rows import read_bands

#: a cube whose chunks' block (rows × cols) over all its bands holds more than this is
#: unpacked: the chunk cache (:data:`hsad.io.hdf5_file.CHUNK_CACHE`, 256 MiB) could not
#: keep one block's chunks while tiles and sample windows read it
UNPACK_BYTES = 128 * 1024 ** 2


def too_large(blocks, shape, dtype) -> bool:
    """Whether chunks of ``blocks`` (rows, cols; None: contiguous) of a ``(rows, cols,
    bands)`` cube of ``dtype`` hold more than :data:`UNPACK_BYTES` in one block of all
    bands."""
    if not blocks:
        return False
    rows, cols = min(int(blocks[0]), int(shape[0])), min(int(blocks[1]), int(shape[1]))
    return rows * cols * int(shape[2]) * np.dtype(dtype).itemsize > UNPACK_BYTES


#: bytes of a group's pixels read at once from the unpacked copy (a window's rows, a block
#: at a time)
READ_BYTES = 16 * 2**20


class Planes:
    """A cube in a nameless temporary file, as groups of bands one after another, each
    group pixel-interleaved ``(rows, cols, group bands)``: a group is written as it was
    decoded (:meth:`write`, one sequential write), a window read from each group it
    needs (:meth:`window`, ``preadv`` of its rows, a block at a time: nothing mapped)."""

    def __init__(self, shape, dtype, step: int, name: str):
        """Room for a ``(rows, cols, bands)`` cube of ``dtype`` in groups of ``step``
        bands; ``name``: the file unpacked, for the error when the temporary directory
        cannot hold it."""
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        rows, cols, bands = self.shape
        self.groups = [(b0, min(bands, b0 + step)) for b0 in range(0, bands, step)]
        self.offsets = [b0 * rows * cols * self.dtype.itemsize for b0, _ in self.groups]
        nbytes = rows * cols * bands * self.dtype.itemsize
        self._lock = threading.Lock()  # a seek and a read, where preadv is missing
        self._file = tempfile.TemporaryFile(prefix="hsad-unpacked-")  # noqa: SIM115
        # closed when the copy is let go, or when the process ends while one is kept
        # (:data:`_LAST`), not left to the garbage collector's "unclosed file" warning
        weakref.finalize(self, self._file.close)
        why = None
        try:  # the space taken now: a full disk is an error here, not a failed write later
            allocate = getattr(os, "posix_fallocate", None)
            if allocate is not None and nbytes:
                allocate(self._file.fileno(), 0, nbytes)
            else:
                self._file.truncate(nbytes)
        except OSError as exc:
            self._file.close()
            why = exc.strerror or str(exc)
        if why is not None:  # raised here, with no OSError behind it: an output being
            # written is not to blame (hsad.io.atomic reads a full disk from the chain)
            raise OutputError(f"{name}: cannot unpack its {nbytes / 1e9:.1f} GB of large "
                              f"chunks into the temporary directory {tempfile.gettempdir()} "
                              f"({why}); give one with room (TMPDIR)")

    def write(self, index: int, group: np.ndarray) -> None:
        """Group ``index`` of bands, ``(rows, cols, its bands)``."""
        data = np.ascontiguousarray(group, dtype=self.dtype)
        self._file.seek(self.offsets[index])
        self._file.write(memoryview(data).cast("B"))
        self._file.flush()

    def window(self, r0, r1, c0, c1, b0, b1) -> np.ndarray:
        """Rows ``r0:r1``, columns ``c0:c1`` and bands ``b0:b1``, ``(rows, cols, bands)``:
        from each group it needs, :data:`READ_BYTES` of rows at a time."""
        out = np.empty((max(0, r1 - r0), max(0, c1 - c0), max(0, b1 - b0)), self.dtype)
        if not out.size:
            return out
        for (g0, g1), offset in zip(self.groups, self.offsets, strict=True):
            lo, hi = max(b0, g0), min(b1, g1)
            if lo >= hi:
                continue
            try:
                read_bands(self._file, offset, self.shape[1], g1 - g0, self.dtype,
                           slice(r0, r1), slice(c0, c1), slice(lo - g0, hi - g0), READ_BYTES,
                           self._lock, out=out[:, :, lo - b0:hi - b0])
            except EOFError as exc:
                raise OSError(f"unexpected end of the unpacked copy ({exc})") from None
        return out


def _bar(reader, planes: Planes):
    """A progress bar over the bands unpacked, drawn where the run draws its tile bars (a
    :class:`hsad.engine.scheduler.TileProgress` of this process that is not disabled:
    ``detect``, ``convert``); none elsewhere (``train``, worker processes, a Python call
    outside such a bar), nor for one group of bands."""
    from tqdm.auto import tqdm

    from hsad.engine.scheduler import TileProgress
    from hsad.progress import bar_style

    active = TileProgress.current()
    show = active is not None and not active.disable and len(planes.groups) > 1
    return tqdm(total=planes.shape[2], desc=f"unpacking {os.path.basename(reader.path)}",
                unit="band", disable=not show, **(bar_style() if show else {}))


#: the last copy unpacked in this process, by what it holds (:func:`_holds`), kept for the
#: next reader of the same cube: a ``dask.distributed`` worker is sent a fresh reader with
#: each computation (an RX run on two workers unpacked five times); one copy (unpacks take
#: turns), so at most one more cube's worth of the temporary directory stays taken until
#: the process ends, unpacks another, or finds its file changed
_LAST: dict = {}
_LAST_LOCK = threading.Lock()


def _holds(reader) -> tuple:
    """What an unpacked copy of ``reader``'s cube holds: the reader's class and everything
    its pickled state says of what it reads (the file's path and stamp, the datasets and
    how they are arranged, converted and cut: PRISMA's arms, MAT's transposition, the
    window), leaving out its caches and handles (names starting with ``_``)."""
    from dask.base import tokenize

    state = {k: v for k, v in reader.__getstate__().items()
             if not k.startswith("_") and k != "cache_bytes"}
    return type(reader).__module__, type(reader).__qualname__, tokenize(state)


def planes_of(reader) -> Planes:
    """``reader``'s cube (an :class:`hsad.io.hdf5_file.Hdf5Reader`) unpacked, on the first
    call (with the reader's lock: other threads wait for it): its ``extent`` (the window
    it was opened for) or the whole cube, a group of bands of at most :data:`UNPACK_BYTES`
    of whole chunks at a time, or the copy this process last unpacked for a reader that
    reads the same (:data:`_LAST`, :func:`_holds`); every call checks that the file is
    still the one opened."""
    if reader._planes is None:
        # the reader's lock, then the process's: one unpack at a time, so that a second
        # reader of the same cube waits for the first's copy rather than making its own
        with reader._lock, _LAST_LOCK:
            reader._open_checked()
            holds = _holds(reader)
            if reader._planes is None:
                reader._planes = _LAST.get(holds)
            if reader._planes is None:
                rows, cols, bands = reader.shape
                r0, r1, c0, c1 = reader.extent or (0, rows, 0, cols)
                # the chunks inflated span whole bands, whatever part is kept
                step = max(1, UNPACK_BYTES // max(1, rows * cols * reader.dtype.itemsize))
                _LAST.clear()  # the copy kept is let go before this one takes room
                planes = Planes((r1 - r0, c1 - c0, bands), reader.dtype, step, reader.path)
                with _bar(reader, planes) as bar:
                    for index, (b0, b1) in enumerate(planes.groups):
                        # deflated chunks as stored, inflated by zlib in threads (HDF5
                        # inflates one at a time): 17 → 7 s for a 1714 × 719 × 428 line
                        stored = inflated(reader._stored(r0, r1, c0, c1, b0, b1),
                                          threads=concurrency())
                        planes.write(index, reader._arrange(stored, r0, r1, c0, c1, b0, b1))
                        del stored  # one group at a time: not beside the next one's bytes
                        bar.update(b1 - b0)
                reader._planes = _LAST[holds] = planes
    try:
        reader._check(reader._file[0])
    except TruncatedFileError:  # the file changed: no reader will match its copy again
        with _LAST_LOCK:
            if any(p is reader._planes for p in _LAST.values()):
                _LAST.clear()
        raise
    return reader._planes


__all__ = ["UNPACK_BYTES", "Planes", "planes_of", "too_large"]
