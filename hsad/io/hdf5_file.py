"""Windows of cubes stored in an HDF5 file (EMIT granules, PRISMA products, MATLAB v7.3
variables), read lazily.

:class:`Hdf5Reader` opens the file once per process, through a Python file object, with a
:data:`CHUNK_CACHE` chunk cache; a subclass says what it reads of a window
(:meth:`Hdf5Reader._stored`, with the lock held) and how that becomes the window
(:meth:`Hdf5Reader._arrange`, without it).
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hsad.errors import FileFormatError, TruncatedFileError
from hsad.io.geotiff import WindowReader

#: the errors h5py raises on a damaged or unexpected file
H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError)

#: HDF5's chunk cache for a cube: a sample of scattered pixels (the statistics' checks) or a
#: block of a map grid (orthorectifying) reads each stored chunk once
CHUNK_CACHE = 256 * 1024 ** 2


def text(value) -> str:
    """An HDF5 attribute (bytes, a one-element array, a number) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return text(value.reshape(-1)[0])
    return str(value)


def number_attr(attrs, name: str, path: str, owner: str) -> float | None:
    """The attribute ``name`` of ``owner`` (a variable, for the error) as one number, None
    without it; a FileFormatError naming it when it is not one number (an empty array, a
    pair, text)."""
    if name not in attrs:
        return None
    value = np.asarray(attrs[name]).reshape(-1)
    try:
        if value.size != 1:
            raise ValueError
        return float(value[0])
    except (TypeError, ValueError):
        raise FileFormatError(f"{owner} attribute {name} is not one number "
                              f"({text(attrs[name])!r})", path) from None


def file_stamp(handle) -> tuple[int, int, int, int]:
    """An open file's inode, size, modification and status-change times (ns): a rewrite in
    place changes them even when it keeps the size and puts the modification time back
    (``cp -p``, ``rsync --inplace -t``), a rename over it its status time. (Not the
    device: each machine of a cluster may number a shared file system's differently.)"""
    st = os.fstat(handle.fileno())
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def chunk_blocks(datasets, rows: int, cols: int) -> tuple[int, int] | None:
    """``(rows, cols)`` of the chunks of the cube stored in ``datasets`` (h5py datasets, the
    axes ``rows`` and ``cols`` of each its image's), the same in every one; None where one
    is stored whole (contiguous: any window reads only its own bytes) or they differ."""
    shapes = {None if ds.chunks is None else (int(ds.chunks[rows]), int(ds.chunks[cols]))
              for ds in datasets}
    return shapes.pop() if len(shapes) == 1 else None


def row_cache(blocks, shape, dtype) -> int:
    """A chunk cache for a cube of ``shape`` (rows, cols, bands) and ``dtype`` stored in
    chunks of ``blocks`` (rows, cols) that holds two rows of its chunks over all bands (the
    sample's windows, taken chunk by chunk, and the tiles reach each chunk again within a
    row of them), from 32 MiB up to :data:`CHUNK_CACHE`: 52 MiB for a 1024² × 100 float32
    MAT file in h5py's 64 × 64 × 7 chunks, where 256 MiB kept the sample's chunks for the
    first pass at twice the peak RSS (docs/performance.md, benchmark 39)."""
    if not blocks:
        return CHUNK_CACHE
    need = 2 * min(int(blocks[0]), int(shape[0])) * int(shape[1]) * int(shape[2]) * \
        np.dtype(dtype).itemsize
    return int(min(CHUNK_CACHE, max(32 * 1024 ** 2, need)))


class Hdf5Reader(WindowReader):
    """Windows of a ``(rows, cols, bands)`` cube stored in an HDF5 file, through the file
    opened once per process (``_file``: the file object, the open HDF5 file and its open
    datasets and maps) with a :data:`CHUNK_CACHE` chunk cache.

    HDF5 is given a Python file object, not the path: it then takes no lock on the file
    and shares no open file with a later ``open_cube`` of the same path, so the file can be
    replaced while a cube of it lives, and a cube opened afterwards reads the new file. The
    live cube's next read is then an error (:meth:`_check`), never bytes read at the old
    offsets."""

    #: what the file is called in errors
    what = "file"

    def __init__(self, path: str, key: str, shape, dtype, stamp: tuple,
                 blocks: tuple[int, int] | None = None):
        """``key``: the cube's dataset; ``stamp``: the file's :func:`file_stamp` when its
        layout was read; ``blocks``: its chunks' rows and columns (:func:`chunk_blocks`),
        which HDF5 decodes whole for any window in one. Chunks so large that the chunk
        cache cannot hold one block of every band (:func:`hsad.io.hdf5_planes.too_large`:
        NEON's one band of the whole scene a chunk) make the reader unpack the cube once,
        on its first read, to a temporary file (:mod:`hsad.io.hdf5_planes`), and read every
        window from there; such a reader reports no blocks."""
        from hsad.io.hdf5_planes import too_large

        self.unpack = too_large(blocks, shape, dtype)
        super().__init__(path, shape, dtype, blocks=None if self.unpack else blocks)
        self.key = key
        self.stamp = stamp
        self.cache_bytes = CHUNK_CACHE  # a subclass may size it (row_cache)
        self._file = None
        self._planes = None
        #: ``(r0, r1, c0, c1)``: the only part of the cube ever read (:meth:`windowed`),
        #: the part unpacking copies; None: the whole cube
        self.extent = None

    def windowed(self, window):
        """A :class:`hsad.io.window.WindowView` of ``window`` (:class:`hsad.cube.subset.Window`),
        the only part this reader will then read: a cube it unpacks is unpacked in that
        part alone (:func:`hsad.io.hdf5_planes.planes_of`)."""
        from hsad.io.window import WindowView

        r0, c0, rows, cols = (int(v) for v in (window.row_off, window.col_off,
                                                 window.height, window.width))
        whole = (r0, c0, rows, cols) == (0, 0, *self.shape[:2])
        self.extent = None if whole else (r0, r0 + rows, c0, c0 + cols)
        return WindowView(self, r0, c0, rows, cols)

    def _check(self, handle) -> None:
        """TruncatedFileError when the open file is not the one whose layout was read, as it
        was: rewritten or truncated in place (its bytes would be read at the old offsets),
        replaced, or its status changed."""
        now = file_stamp(handle)
        if now != self.stamp:
            what = (f"its size {self.stamp[1]:,} -> {now[1]:,} bytes" if now[1] != self.stamp[1]
                    else "another file at its path" if now[0] != self.stamp[0]
                    else "modified, or its status changed")
            raise TruncatedFileError(f"the {self.what} changed on disk after it was opened "
                                     f"({what}); open it again", self.path)

    def __getstate__(self) -> dict:
        """Pickled without the open handle (``dask.distributed``)."""
        state = super().__getstate__()
        state["_file"] = state["_planes"] = None
        return state

    def __del__(self):
        """Close the file this reader opened (when it is collected)."""
        opened = getattr(self, "_file", None)
        if opened is not None:
            try:
                opened[1].close()
            finally:
                opened[0].close()

    def _dataset(self, key: str) -> h5py.Dataset:
        """The dataset ``key`` of the open file, kept open (its chunk cache lives as long as
        it does); call with the lock held."""
        handle, f, datasets = self._file
        if key not in datasets:
            datasets[key] = f[key]
        return datasets[key]

    def _slab(self, key: str, selection) -> np.ndarray:
        """``selection`` of dataset ``key`` (call with the lock held): a view of the file's
        pages where the dataset lies in one uncompressed piece (no copy, no fresh memory:
        for the reader's :meth:`_arrange` to copy from), else read by h5py."""
        datasets = self._file[2]
        if ("mapped", key) not in datasets:
            datasets[("mapped", key)] = self._mapped(key)
        mapped = datasets[("mapped", key)]
        if mapped is not None:
            return mapped[selection]
        try:
            return self._chunked(key, selection)
        except H5_ERRORS as exc:  # :meth:`_read` names the dataset that failed, not the
            exc.hsad_dataset = key  # reader's first (PRISMA's VNIR for its SWIR)
            raise

    def _chunked(self, key: str, selection):
        """``selection`` of dataset ``key`` (call with the lock held), read by HDF5, or,
        for a deflated dataset and a window of whole chunks, as its chunks' stored bytes
        (:class:`hsad.io.hdf5_chunks.Deferred`) that :meth:`_read` inflates without the
        lock."""
        from hsad.io.hdf5_chunks import inflatable, small_window, stored_chunks

        ds, datasets = self._dataset(key), self._file[2]
        if ("inflatable", key) not in datasets:
            datasets[("inflatable", key)] = inflatable(ds)
        if not datasets[("inflatable", key)]:
            return ds[selection]
        # unpacking takes every chunk its part reaches as stored (a window of NEON's
        # whole-band chunks too); a tile's window takes them where it spans whole chunks
        deferred = stored_chunks(ds, selection, self.path, whole=self.unpack)
        if deferred is None:  # smaller than a chunk: the sample's windows, in a session
            deferred = small_window(ds, selection, self)
        return ds[selection] if deferred is None else deferred

    def _mapped(self, key: str) -> np.memmap | None:
        """Dataset ``key`` mapped from the open file, where HDF5 stores it contiguously
        (not chunked, filtered or external, its space allocated) and the map can be made;
        None otherwise."""
        ds = self._dataset(key)
        offset = ds.id.get_offset() if ds.chunks is None and not ds.external else None
        if offset is None or ds.dtype.kind not in "iuf" or ds.size == 0:
            return None
        try:
            return np.memmap(self._file[0], dtype=ds.dtype, mode="r", offset=offset,
                             shape=ds.shape)
        except (OSError, ValueError):  # no address space or descriptor left (ENOMEM,
            return None  # EMFILE), a file shorter than its layout: h5py reads, or says why

    def _stored(self, r0, r1, c0, c1, b0, b1):
        """What the file stores of rows ``r0:r1``, columns ``c0:c1`` and bands ``b0:b1``
        (read with the lock held): here the dataset ``key``'s ``(rows, cols, bands)``."""
        return self._chunked(self.key, np.s_[r0:r1, c0:c1, b0:b1])

    def _arrange(self, stored, r0, r1, c0, c1, b0, b1) -> np.ndarray:
        """The ``(rows, cols, bands)`` window made of what :meth:`_stored` read (without
        the lock, so that threads convert while another reads)."""
        return stored

    def _open_checked(self) -> None:
        """Open the file if this process has not (call with the lock held), and check that
        it is still the one whose layout was read."""
        if self._file is None:  # the file stays open, and with it the chunk cache; the
            # file object is kept beside it, which HDF5 reads through
            handle = open(self.path, "rb")  # noqa: SIM115
            try:
                self._check(handle)
            except TruncatedFileError:
                handle.close()
                raise
            cache = 0 if self.unpack else self.cache_bytes  # unpacking reads each chunk once
            self._file = (handle, h5py.File(handle, "r", rdcc_nbytes=cache,
                                            rdcc_nslots=100_003), {})
        self._check(self._file[0])

    def _read(self, r0, r1, c0, c1, b0, b1) -> np.ndarray:
        try:
            if self.unpack:
                from hsad.io.hdf5_planes import planes_of

                planes = planes_of(self)
                e0, e1, f0, f1 = self.extent or (0, self.shape[0], 0, self.shape[1])
                if not (e0 <= r0 <= r1 <= e1 and f0 <= c0 <= c1 <= f1):
                    raise IndexError(f"rows {r0}-{r1}, cols {c0}-{c1} lie outside the window "
                                     f"this reader was opened for ({self.extent})")
                return planes.window(r0 - e0, r1 - e0, c0 - f0, c1 - f0, b0, b1)
            from hsad.io.hdf5_chunks import inflated

            with self._lock:  # h5py runs one call at a time anyway
                self._open_checked()
                stored = self._stored(r0, r1, c0, c1, b0, b1)
            stored = inflated(stored)  # deflated chunks, by this thread, without the lock
            return np.asarray(self._arrange(stored, r0, r1, c0, c1, b0, b1), dtype=self.dtype)
        except H5_ERRORS as exc:
            key = getattr(exc, "hsad_dataset", self.key)
            raise TruncatedFileError(f"cannot read {key!r} rows {r0}-{r1}, cols "
                                     f"{c0}-{c1}: {exc}", self.path) from exc


__all__ = ["CHUNK_CACHE", "H5_ERRORS", "Hdf5Reader", "chunk_blocks", "file_stamp", "number_attr",
           "row_cache", "text"]
