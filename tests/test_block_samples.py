"""Files read in blocks decoded whole (a compressed, tiled GeoTIFF): the scene checks' even
samples read their windows block by block, in threads, both in one pass and once per
call; tiles hold whole blocks."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import hsad.engine.sampling as sampling
import hsad.io.geotiff as geotiff
from hsad import open_cube
from hsad.cube import source_of
from hsad.engine.sampling import even_sample, sample_windows, shared_samples
from hsad.engine.tiles import open_tiled
from hsad.io.geotiff import block_chunks
from hsad.io.window import WindowView, decode_grid


def test_block_chunks_hold_whole_blocks_within_the_budget():
    assert block_chunks(512, 512, (256, 256), (2048, 2048)) == (512, 512)
    assert block_chunks(480, 480, (256, 256), (2048, 2048)) == (256, 768)
    assert block_chunks(512, 512, (1, 2048), (2048, 2048)) == (128, 2048)  # strips
    assert block_chunks(200, 200, (256, 256), (2048, 2048)) == (200, 200)  # no block fits
    assert block_chunks(512, 512, None, (2048, 2048)) == (512, 512)
    assert block_chunks(1000, 900, (128, 512), (1000, 900)) == (1000, 900)  # one tile
    assert block_chunks(3000, 10, (256, 256), (2048, 2048)) == (2048, 10)  # capped
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows, cols = (int(v) for v in rng.integers(32, 1200, 2))
        blocks = (int(rng.choice([1, 16, 64, 128, 256, 512])), int(rng.integers(64, 600)))
        shape = (int(rng.integers(100, 5000)), int(rng.integers(100, 5000)))
        cy, cx = block_chunks(rows, cols, blocks, shape)
        bh, bw = min(blocks[0], shape[0]), min(blocks[1], shape[1])
        if bh * bw <= rows * cols:  # whole blocks, no more pixels than asked
            assert cy * cx <= rows * cols
            assert cy % bh == 0 or cy == shape[0]
            assert cx % bw == 0 or cx == shape[1]
        else:
            assert (cy, cx) == (min(rows, shape[0]), min(cols, shape[1]))


@pytest.fixture
def deflated(tmp_path):
    """A deflated float32 GeoTIFF of 64² blocks over 520 × 600 pixels, and its values."""
    values = np.random.default_rng(3).normal(100, 10, (520, 600, 30)).astype(np.float32)
    path = tmp_path / "deflated.tif"
    with rasterio.open(path, "w", driver="GTiff", width=600, height=520, count=30,
                       dtype="float32", tiled=True, blockxsize=64, blockysize=64,
                       compress="deflate", crs="EPSG:32633",
                       transform=from_origin(5e5, 4e6, 30, 30)) as dst:
        dst.write(np.moveaxis(values, -1, 0))
    return path, values


def test_a_deflated_geotiff_is_sampled_block_by_block_once_per_call(deflated, monkeypatch):
    """numpy's windows, read block after block (each decoded once per thread while the
    file stays open); the level check's smaller sample read in the same pass, and
    nothing read twice in a call."""
    import hsad.engine.scheduler as scheduler

    path, values = deflated
    cube = open_cube(path)
    assert decode_grid(source_of(cube.data)) == (64, 64, 0, 0)
    reads = []
    real = geotiff.WindowReader._read
    monkeypatch.setattr(geotiff.WindowReader, "_read",
                        lambda self, *a: reads.append(a) or real(self, *a))
    monkeypatch.setattr(sampling, "ONE_PASS_BYTES", 0)  # as for a large scene
    monkeypatch.setattr(scheduler, "concurrency", lambda: 1)
    with shared_samples():
        sample = even_sample(cube.data, 65536)
        seen = len(reads)
        small = even_sample(cube.data, 4096)
        again = even_sample(cube.data, 65536)
    assert len(reads) == seen  # the other samples: no read
    np.testing.assert_array_equal(sample, even_sample(values, 65536))
    np.testing.assert_array_equal(small, even_sample(values, 4096))
    np.testing.assert_array_equal(again, sample)
    blocks = [(r0 // 64, c0 // 64) for r0, r1, c0, c1, *_ in reads]
    runs = [b for i, b in enumerate(blocks) if i == 0 or b != blocks[i - 1]]
    assert len(runs) == len(set(blocks))  # each block's windows one after the other
    reads.clear()
    with shared_samples():  # a smaller sample alone reads only its own windows
        even_sample(cube.data, 4096)
    assert len(reads) == len(sample_windows(values.shape, 4096))


def test_a_small_deep_geotiff_is_sampled_whole(tmp_path, monkeypatch):
    """A scene of fewer pixels than the sample but more bytes than ONE_PASS_BYTES (a
    150 × 150 chip of 188 bands): read whole through its reader."""
    values = np.random.default_rng(5).normal(100, 10, (250, 250, 80)).astype(np.float32)
    assert values.nbytes > sampling.ONE_PASS_BYTES
    path = tmp_path / "deep.tif"
    with rasterio.open(path, "w", driver="GTiff", width=250, height=250, count=80,
                       dtype="float32") as dst:
        dst.write(np.moveaxis(values, -1, 0))
    cube = open_cube(path)
    np.testing.assert_array_equal(even_sample(cube.data, 65536), values.reshape(-1, 80))


def test_the_sample_read_in_threads_equals_the_sample_read_in_one(deflated, monkeypatch):
    import hsad.engine.scheduler as scheduler

    path, values = deflated
    monkeypatch.setattr(sampling, "ONE_PASS_BYTES", 0)
    cube = open_cube(path)
    samples = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(scheduler, "concurrency", lambda n=threads: n)
        samples.append(even_sample(cube.data, 65536))
    for other in samples[1:]:
        np.testing.assert_array_equal(samples[0], other)


def test_a_window_of_a_blocked_file_keeps_its_blocks_where_they_lie(deflated):
    """A view from row 100, column 30: its blocks start 28 rows and 34 columns in; its
    sample holds the numpy window's pixels."""
    path, values = deflated
    reader = source_of(open_cube(path).data)
    view = WindowView(reader, 100, 30, 400, 500)
    assert decode_grid(view) == (64, 64, 28, 34)
    assert decode_grid(values) is None
    np.testing.assert_array_equal(
        sampling._read_windows(view, sample_windows(view.shape, 4096), decode_grid(view)),
        [values[100:500, 30:530][r, c] for r, c in sample_windows(view.shape, 4096)])


def test_tiles_of_a_blocked_file_hold_whole_blocks(deflated):
    path, _ = deflated
    cube = open_tiled(path, "32MB", workers=1)
    rows, cols = cube.data.chunksize[:2]
    assert rows % 64 == 0 or rows == 520
    assert cols % 64 == 0 or cols == 600
    assert max(open_cube(path).data.chunksize[:2]) <= 512


def test_a_call_holds_copies_of_a_numpy_scene_s_windows():
    """Within one call a numpy scene's sample is read once and held as a copy: changed in
    place during the call, the checks that follow see what the first one saw."""
    from hsad.cube import make_cube

    data = np.full((40, 30, 5), 100.0, np.float32)
    cube = make_cube(data)
    with shared_samples():
        first = even_sample(cube.data, 65536)
        data[...] = 0.0
        again = even_sample(cube.data, 65536)
    np.testing.assert_array_equal(again, first)
    assert (first == 100.0).all()
    assert (even_sample(cube.data, 65536) == 0.0).all()  # a new call reads it again


def test_the_level_sample_is_held_first_when_the_budget_holds_part(deflated, monkeypatch):
    """Windows both samples share are held before the larger sample's others: with room
    for the 4 096-pixel sample only, it is read in the 65 536-pixel one's pass, whole."""
    path, values = deflated
    monkeypatch.setattr(sampling, "ONE_PASS_BYTES", 0)
    monkeypatch.setattr(sampling, "SHARED_BYTES", 2**20)  # 65 536 pixels: 7.5 MiB
    cube = open_cube(path)
    reads = []
    real = geotiff.WindowReader._read
    monkeypatch.setattr(geotiff.WindowReader, "_read",
                        lambda self, *a: reads.append(a) or real(self, *a))
    with shared_samples():
        even_sample(cube.data, 65536)
        reads.clear()
        small = even_sample(cube.data, 4096)
    assert reads == []
    np.testing.assert_array_equal(small, even_sample(values, 4096))


def test_a_block_larger_than_the_cache_stays_open_for_its_windows(deflated, monkeypatch):
    """A session keeps the file open while its windows stay within the blocks it decoded,
    however large they are; a window in another block past the cache opens it anew."""
    import hsad.io.kept_open as kept_open

    path, values = deflated
    monkeypatch.setattr(kept_open, "CACHE_BYTES", 1000)  # less than one 64² block
    reader = source_of(open_cube(path).data)
    opened = []
    real = kept_open.rasterio.open
    monkeypatch.setattr(kept_open.rasterio, "open", lambda p, *a, **k: opened.append(p)
                        or real(p, *a, **k))
    with kept_open.session():
        for r, c in ((0, 0), (8, 8), (40, 16), (56, 56)):  # block (0, 0)
            np.testing.assert_array_equal(reader[r:r + 8, c:c + 8], values[r:r + 8, c:c + 8])
        assert len(opened) == 1
        np.testing.assert_array_equal(reader[0:8, 64:72], values[0:8, 64:72])
        assert len(opened) == 2  # block (0, 1): opened anew, (0, 0) left GDAL's cache


@pytest.mark.parametrize("damaged", ["first", "second"])  # the run whose blocks fail
def test_a_failed_window_ends_the_other_threads_reads(monkeypatch, damaged):
    """One thread's read fails (a damaged block; Ctrl-C and SIGTERM reach the caller
    as such a failure does): the other threads read no further window, and the error
    goes up."""
    import threading
    import time

    import hsad.engine.scheduler as scheduler

    monkeypatch.setattr(scheduler, "concurrency", lambda: 2)
    monkeypatch.setattr(scheduler, "cpu_count", lambda: 2)
    reads = []

    class Slow:
        shape, dtype = (512, 512, 3), np.dtype(np.float32)

        def __getitem__(self, key):
            rows = key[0]
            if (rows.start < 256) == (damaged == "first") \
                    and threading.current_thread() is not threading.main_thread():
                time.sleep(0.05)
                raise OSError("damaged block")
            reads.append(rows.start)
            time.sleep(0.01)
            return np.zeros((8, 8, 3), np.float32)

    windows = sample_windows((512, 512, 3), 65536)  # 1 024 windows, two runs of 512
    # (rows 0–255, 256–511)
    with pytest.raises(OSError, match="damaged block"):
        sampling._read_windows(Slow(), windows, (64, 64, 0, 0))
    time.sleep(0.1)
    assert len(reads) < 100  # not the 512 of the other run
