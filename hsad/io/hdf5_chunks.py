"""Windows of deflated HDF5 chunks, inflated outside h5py's lock.

h5py runs one call at a time, and HDF5 inflates a window's chunks inside that call: two
dask threads reading two tiles of a gzip-compressed cube took turns, so a pass over a
NEON line in 424 × 27 × 14 chunks ran on one core (7.8 s for 0.9 GB). For a dataset whose
only filters are deflate and shuffle, a window as large as its chunks is read here in two
steps: :func:`stored_chunks` takes each chunk's bytes as stored (``read_direct_chunk``,
with the reader's lock held: a copy of the compressed bytes), and :meth:`Deferred.values`
inflates them (:mod:`zlib` lets go of the GIL) and places them, without the lock, so
threads inflate side by side. Smaller windows (the sample's 8 × 8) take the chunks around
them the same way inside a :func:`hsad.io.kept_open.session`, and the thread keeps the
last :data:`HELD_BYTES` it inflated for its next windows (:func:`small_window`); outside
one, HDF5 reads them through its chunk cache. A chunk never written reads as the dataset's
fill value.
"""

from __future__ import annotations

import itertools
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from hsad.errors import TruncatedFileError

#: the most inflated chunks a thread keeps for its next small windows within a session
HELD_BYTES = 32 * 1024 ** 2


#: chunks smaller than this are left to HDF5: per chunk, finding and placing it here costs
#: more than inflating it (a 1024² × 30 file in 8 × 8 × 30 chunks, 16 384 of them)
MIN_CHUNK_BYTES = 64 * 1024


def _filters(ds: h5py.Dataset) -> list[int]:
    """The codes of ``ds``'s filter pipeline, in the order they were applied."""
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def inflatable(ds: h5py.Dataset) -> bool:
    """Whether ``ds`` is chunked in chunks of at least :data:`MIN_CHUNK_BYTES`, of a plain
    numeric type, and filtered by deflate alone or by shuffle then deflate (no checksum,
    scale-offset or other codec; deflate then shuffle is left to HDF5 too)."""
    if ds.chunks is None or ds.dtype.kind not in "iuf" or \
            int(np.prod(ds.chunks)) * ds.dtype.itemsize < MIN_CHUNK_BYTES:
        return False
    return _filters(ds) in ([h5py.h5z.FILTER_DEFLATE],
                            [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE])


class Deferred:
    """A window of a dataset as the stored bytes of its chunks, to inflate and place
    (:meth:`values`) without the lock."""

    def __init__(self, ds: h5py.Dataset, starts, stops, pieces, path: str):
        """``pieces``: ``(origin, (filter mask, bytes) or None)`` for each chunk the window
        ``starts:stops`` reaches (None: never written); ``path``: the file, for errors."""
        self.dtype, self.chunks, self.fill = ds.dtype, ds.chunks, ds.fillvalue
        self.path, self.name = path, ds.name
        # a chunk's mask has bit i set where filter i of the pipeline was skipped
        self.bits = {code: 1 << i for i, code in enumerate(_filters(ds))}
        self.starts, self.stops, self.pieces = starts, stops, pieces
        self.keep = None  # where a session keeps each chunk inflated (small_window)

    def _chunk(self, origin, mask: int, raw: bytes) -> np.ndarray:
        """The values of the chunk at ``origin`` from its stored bytes and filter
        ``mask``."""
        deflated = not mask & self.bits[h5py.h5z.FILTER_DEFLATE]
        shuffled = h5py.h5z.FILTER_SHUFFLE in self.bits and \
            not mask & self.bits[h5py.h5z.FILTER_SHUFFLE]
        try:
            plain = zlib.decompress(raw) if deflated else raw
        except zlib.error as exc:
            raise TruncatedFileError(f"the chunk at {tuple(origin)} of {self.name!r} does not "
                                     f"inflate ({exc})", self.path) from None
        size = int(np.prod(self.chunks)) * self.dtype.itemsize
        if len(plain) != size:
            raise TruncatedFileError(f"the chunk at {tuple(origin)} of {self.name!r} holds "
                                     f"{len(plain)} bytes, not {size}", self.path)
        data = np.frombuffer(plain, np.uint8)
        if shuffled:  # the bytes were grouped by their place in each value
            data = data.reshape(self.dtype.itemsize, -1).T
        return np.ascontiguousarray(data).view(self.dtype).reshape(self.chunks)

    def values(self, threads: int = 1) -> np.ndarray:
        """The window, inflated (its chunks by ``threads`` threads), in the stored type
        (native byte order)."""
        shape = tuple(b - a for a, b in zip(self.starts, self.stops, strict=True))
        out = np.empty(shape, self.dtype.newbyteorder("="))

        def place(piece) -> None:  # each chunk to its own part of out
            origin, stored = piece
            if isinstance(stored, np.ndarray):  # held by the thread's session
                chunk = stored
            else:
                chunk = (np.full(self.chunks, self.fill, self.dtype) if stored is None
                         else self._chunk(origin, *stored))
                if self.keep is not None:
                    self.keep(origin, chunk)
            spans = [(max(a, o), min(b, o + c)) for a, b, o, c in
                     zip(self.starts, self.stops, origin, self.chunks, strict=True)]
            out[tuple(slice(lo - a, hi - a) for (lo, hi), a in zip(spans, self.starts,
                                                                      strict=True))] = \
                chunk[tuple(slice(lo - o, hi - o) for (lo, hi), o in zip(spans, origin,
                                                                        strict=True))]

        if threads > 1 and len(self.pieces) > 1 and self.keep is None:
            with ThreadPoolExecutor(min(threads, len(self.pieces))) as pool:
                list(pool.map(place, self.pieces))
        else:
            for piece in self.pieces:
                place(piece)
        return out


class _Held:
    """The chunks a thread's session keeps (under this module's name in its
    :func:`hsad.io.kept_open.held`), oldest first, at most :data:`HELD_BYTES` beside the
    newest (which stays, however large: the sample's next windows are in it)."""

    def __init__(self):
        self.chunks: dict = {}
        self.nbytes = 0

    def take(self, name) -> np.ndarray | None:
        """The chunk ``name``, now the newest; None when not held."""
        chunk = self.chunks.pop(name, None)
        if chunk is not None:
            self.chunks[name] = chunk
        return chunk

    def keep(self, name, chunk: np.ndarray) -> None:
        """Hold ``chunk`` as the newest, the oldest dropped beyond :data:`HELD_BYTES`."""
        self.nbytes += chunk.nbytes - getattr(self.chunks.pop(name, None), "nbytes", 0)
        self.chunks[name] = chunk
        while self.nbytes > HELD_BYTES and len(self.chunks) > 1:
            self.nbytes -= self.chunks.pop(next(iter(self.chunks))).nbytes


def small_window(ds: h5py.Dataset, selection: tuple[slice, ...], owner) -> Deferred | None:
    """Inside a :func:`hsad.io.kept_open.session`, a window of ``ds`` smaller than its
    chunks (the even sample's), as a :class:`Deferred` whose chunks are the thread's held
    ones where it has them, the stored bytes of the others (kept once inflated); None
    outside a session (HDF5 reads it, through its cache). ``owner``: the reader, whose
    ``path`` and ``stamp`` (:func:`hsad.io.hdf5_file.file_stamp`) tell its chunks from
    another file's."""
    from hsad.io.kept_open import held

    memo = held()
    if memo is None:
        return None
    chunks = memo.setdefault(__name__, _Held())

    def name(origin) -> tuple:  # the file as it was opened (its stamp), not the reader
        return owner.path, owner.stamp, ds.name, origin

    deferred = stored_chunks(ds, selection, owner.path, whole=True,
                             held=lambda origin: chunks.take(name(origin)))
    deferred.keep = lambda origin, chunk: chunks.keep(name(origin), chunk)
    return deferred


def inflated(stored, threads: int = 1):
    """``stored`` (what a reader's ``_stored`` took: an array, a :class:`Deferred` or a
    list of them) with every :class:`Deferred` inflated, by ``threads`` threads."""
    if isinstance(stored, Deferred):
        return stored.values(threads)
    if isinstance(stored, list):
        return [inflated(part, threads) for part in stored]
    return stored


def stored_chunks(ds: h5py.Dataset, selection: tuple[slice, ...], path: str,
                  whole: bool = False, held=None) -> Deferred | None:
    """The stored bytes of every chunk of ``ds`` that ``selection`` (one slice an axis,
    step 1) reaches, when the window spans at least one whole chunk along each axis (a
    tile of whole chunks; smaller windows are read by HDF5, through its cache, or
    :func:`small_window`) or ``whole``; None otherwise. ``held(origin)``: a chunk already
    inflated, or None; ``path``: the file, for errors. Call with the reader's lock held."""
    chunks = ds.chunks
    bounds = [s.indices(n)[:2] for s, n in zip(selection, ds.shape, strict=True)]
    if not whole and any(b - a < min(c, n) for (a, b), c, n in zip(bounds, chunks, ds.shape,
                                                                   strict=True)):
        return None
    grid = [range(a // c * c, b, c) for (a, b), c in zip(bounds, chunks, strict=True)]
    pieces = []
    for origin in itertools.product(*grid):
        kept = None if held is None else held(origin)
        if kept is not None:
            pieces.append((origin, kept))
            continue
        try:
            pieces.append((origin, ds.id.read_direct_chunk(origin)))
        except RuntimeError:  # asked only then (HDF5 2.0 searches every chunk for it)
            if ds.id.get_chunk_info_by_coord(origin).byte_offset is not None:
                raise
            pieces.append((origin, None))  # never written: the fill value
    return Deferred(ds, [a for a, _ in bounds], [b for _, b in bounds], pieces, path)


__all__ = ["HELD_BYTES", "MIN_CHUNK_BYTES", "Deferred", "inflatable", "inflated",
           "small_window", "stored_chunks"]
