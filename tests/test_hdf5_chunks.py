"""Deflated HDF5 chunks inflated outside h5py's lock (hsad.io.hdf5_chunks): every window
equals HDF5's own reading of it, for any chunk shape, byte order, shuffle, a chunk left
unwritten, or a filter skipped; the sample's small windows reuse a thread's chunks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hsad.errors import TruncatedFileError
from hsad.io import hdf5_chunks, kept_open
from hsad.io.hdf5_chunks import inflatable, inflated, small_window, stored_chunks


@pytest.fixture(autouse=True)
def _small_chunks_too(monkeypatch):
    """The tests' chunks are small: inflate them here all the same."""
    monkeypatch.setattr(hdf5_chunks, "MIN_CHUNK_BYTES", 0)


class _Owner:
    """A reader's part in a small window: its path and stamp."""

    def __init__(self, path):
        self.path, self.stamp = str(path), (0, 0, 0, 0)


def _dataset(path, data, chunks, dtype, shuffle, unwritten=False):
    with h5py.File(path, "w") as f:
        d = f.create_dataset("cube", shape=data.shape, dtype=dtype, chunks=chunks,
                             compression="gzip", shuffle=shuffle, fillvalue=7)
        if unwritten:  # the last chunk along axis 0 never written
            d[:chunks[0]] = data[:chunks[0]]
        else:
            d[...] = data
    return path


@pytest.mark.parametrize("seed", range(12))
def test_windows_equal_hdf5s_reading(tmp_path, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(5, 23, 3))
    chunks = tuple(int(rng.integers(1, n + 1)) for n in shape)
    dtype = np.dtype(["<i2", ">i2", "<f4", ">f8", "u1"][seed % 5])
    data = (rng.normal(size=shape) * 50).astype(dtype)
    path = _dataset(tmp_path / "c.h5", data, chunks, dtype, shuffle=bool(seed % 2),
                    unwritten=seed % 3 == 0)
    owner = _Owner(path)
    with h5py.File(path, "r") as f:
        ds = f["cube"]
        assert inflatable(ds)
        for _ in range(20):
            starts = [int(rng.integers(0, n)) for n in shape]
            sel = tuple(slice(a, int(rng.integers(a + 1, n + 1)))
                        for a, n in zip(starts, shape, strict=True))
            deferred = stored_chunks(ds, sel, str(path))
            if deferred is not None:  # a window of at least one chunk a side
                got = inflated(deferred, threads=1 + seed % 3)  # chunks in threads
                assert got.dtype == dtype.newbyteorder("=")
                np.testing.assert_array_equal(got, ds[sel])
            with kept_open.session():
                for again in (False, True):  # the second from the chunks the thread holds
                    small = small_window(ds, sel, owner)
                    assert again == all(isinstance(p, np.ndarray) for _, p in small.pieces)
                    np.testing.assert_array_equal(inflated(small), ds[sel])
        assert small_window(ds, sel, owner) is None  # outside a session: HDF5's


def test_a_chunk_stored_unfiltered_is_read_as_stored(tmp_path):
    """HDF5 stores a chunk that deflate would make larger as it is, and says so in the
    chunk's filter mask."""
    data = np.arange(4 * 6 * 3, dtype=np.int16).reshape(4, 6, 3)
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("cube", shape=data.shape, dtype=data.dtype, chunks=(2, 6, 3),
                             compression="gzip", shuffle=True)
        d.id.write_direct_chunk((0, 0, 0), data[:2].tobytes(), filter_mask=0b11)
        d[2:] = data[2:]
    with h5py.File(path, "r") as f:
        whole = stored_chunks(f["cube"], np.s_[:, :, :], str(path))
        np.testing.assert_array_equal(inflated(whole), data)


def test_only_deflate_and_shuffle_then_deflate_are_inflated_here(tmp_path, monkeypatch):
    with h5py.File(tmp_path / "c.h5", "w") as f:
        plain = f.create_dataset("plain", data=np.zeros((4, 4, 2)))
        checked = f.create_dataset("checked", data=np.zeros((4, 4, 2)), chunks=(2, 2, 2),
                                   compression="gzip", fletcher32=True)
        lzf = f.create_dataset("lzf", data=np.zeros((4, 4, 2)), chunks=(2, 2, 2),
                               compression="lzf")
        gzip = f.create_dataset("gzip", data=np.zeros((4, 4, 2)), chunks=(2, 2, 2),
                                compression="gzip")
        assert [inflatable(d) for d in (plain, checked, lzf, gzip)] == [False] * 3 + [True]


def test_a_damaged_chunk_is_an_error_naming_the_file(tmp_path):
    data = np.arange(8 * 8 * 2, dtype=np.float32).reshape(8, 8, 2)
    path = _dataset(tmp_path / "c.h5", data, (4, 4, 2), data.dtype, shuffle=False)
    with h5py.File(path, "r") as f:
        offset = f["cube"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\x00" * 8)
    with h5py.File(path, "r") as f, pytest.raises(TruncatedFileError,
                                                  match="c.h5.*does not inflate"):
        inflated(stored_chunks(f["cube"], np.s_[:, :, :], str(path)))


def test_a_session_keeps_the_newest_chunks_and_drops_them_at_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(hdf5_chunks, "HELD_BYTES", 3 * 4 * 4 * 2 * 4)  # three chunks
    data = np.arange(16 * 16 * 2, dtype=np.float32).reshape(16, 16, 2)
    path = _dataset(tmp_path / "c.h5", data, (4, 4, 2), data.dtype, shuffle=False)
    owner = _Owner(path)
    with h5py.File(path, "r") as f:
        ds = f["cube"]
        with kept_open.session():
            for r in range(4):  # a row of four chunks: the oldest dropped
                window = small_window(ds, np.s_[r:r + 1, 0:16, :], owner)
                np.testing.assert_array_equal(inflated(window), data[r:r + 1])
                assert sum(isinstance(p, np.ndarray) for _, p in window.pieces) == \
                    (0 if r == 0 else 3)  # held: the three newest of the row
            assert len(kept_open.held()[hdf5_chunks.__name__].chunks) == 3
        assert kept_open.held() is None


def test_deflate_before_shuffle_and_small_chunks_are_left_to_hdf5(tmp_path, monkeypatch):
    """A pipeline of deflate then shuffle (valid HDF5, undone in the other order) and
    chunks under MIN_CHUNK_BYTES (finding each costs more than inflating it) are read by
    HDF5, to the same values."""
    data = np.arange(64 * 64 * 4, dtype=np.float32).reshape(64, 64, 4)
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        space = h5py.h5s.create_simple(data.shape)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((16, 16, 4))
        dcpl.set_deflate(4)
        dcpl.set_shuffle()
        h5py.h5d.create(f.id, b"backwards", h5py.h5t.NATIVE_FLOAT, space, dcpl=dcpl)
        f["backwards"][...] = data
        f.create_dataset("fine", data=data, chunks=(16, 16, 4), compression="gzip",
                         shuffle=True)
    with h5py.File(path, "r") as f:
        assert not inflatable(f["backwards"]) and inflatable(f["fine"])
        monkeypatch.setattr(hdf5_chunks, "MIN_CHUNK_BYTES", 16 * 16 * 4 * 4 + 1)
        assert not inflatable(f["fine"])


def test_a_chunk_larger_than_what_a_session_holds_stays_for_the_next_window(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(hdf5_chunks, "HELD_BYTES", 100)  # less than one chunk
    data = np.arange(16 * 16 * 2, dtype=np.float32).reshape(16, 16, 2)
    path = _dataset(tmp_path / "c.h5", data, (8, 8, 2), data.dtype, shuffle=False)
    owner = _Owner(path)
    with h5py.File(path, "r") as f, kept_open.session():
        ds = f["cube"]
        for r in (1, 3, 12):  # the first chunk, again, then the one below it
            window = small_window(ds, np.s_[r:r + 2, 2:4, :], owner)
            np.testing.assert_array_equal(inflated(window), data[r:r + 2, 2:4])
            assert isinstance(window.pieces[0][1], np.ndarray) == (r == 3)
        assert len(kept_open.held()[hdf5_chunks.__name__].chunks) == 1
