"""Arrays read window by window without dask: hsad.cube.source_of and the even sample of
hsad.engine.stats, which reads its small windows from a scene's own array or reader."""

from __future__ import annotations

import numpy as np
import pytest

import hsad.engine.stats as stats
import hsad.io.envi as envi
from hsad import open_cube
from hsad.cube import make_cube, source_of, wrap_numpy
from hsad.engine.stats import ONE_PASS_BYTES, SAMPLE_WINDOW, even_sample
from hsad.io.envi_writer import write_envi
from hsad.io.geotiff import WindowReader
from hsad.io.geotiff_writer import write_geotiff_cube


def test_a_copy_of_a_wrapped_array_has_no_source():
    """A pickled (or deep-copied) array holds the values it was copied with: its sample is
    read through its own graph, not from the array, which may have changed since."""
    import copy
    import pickle

    data = np.full((40, 30, 5), 100.0, np.float32)
    cube = make_cube(data)
    pickled = pickle.loads(pickle.dumps(cube.data))
    copied = copy.deepcopy(cube.data)  # dask shares the graph: it still views the array
    data[...] = 0.0
    assert pickled.name == cube.data.name and source_of(pickled) is None
    assert (even_sample(pickled, 64) == 100.0).all()
    for lazy in (cube.data, copied):  # a sample always holds what the array computes
        np.testing.assert_array_equal(even_sample(lazy, 64),
                                      even_sample(lazy.compute(), 64))
    assert (even_sample(cube.data, 64) == 0.0).all()


def test_sources_live_as_long_as_their_arrays(tmp_path):
    """A view made on the fly (bands last, a window) keeps its source while the cube lives,
    and opening a file again leaves the first cube its own."""
    import gc

    bsq = np.random.default_rng(7).random((6, 40, 30), dtype=np.float32)
    cube = make_cube(np.moveaxis(bsq, 0, -1))
    gc.collect()
    assert source_of(cube.data) is not None
    write_envi(make_cube(np.moveaxis(bsq, 0, -1)), tmp_path / "again.hdr")
    first = open_cube(tmp_path / "again.hdr")
    second = open_cube(tmp_path / "again.hdr")
    assert first.data.name == second.data.name
    assert source_of(first.data) is not None and source_of(second.data) is not None


def test_a_wrapped_array_is_its_own_source_and_a_sliced_one_has_none():
    data = np.random.default_rng(0).random((40, 30, 5), dtype=np.float32)
    lazy = wrap_numpy(data, chunks=(16, 16, -1))
    assert source_of(lazy) is data
    assert source_of(make_cube(data).data) is data
    assert source_of(lazy[:, :, :3]) is None  # another array: read through dask
    assert source_of(lazy.astype(np.float64)) is None
    assert source_of(data) is None  # numpy itself: not a dask array


@pytest.fixture(params=["bip", "bil", "bsq"])
def large_file(request, tmp_path):
    """An ENVI file larger than ONE_PASS_BYTES (which is read whole), and its values."""
    values = np.random.default_rng(1).normal(100, 10, (180, 170, 140)).astype(np.float32)
    assert values.nbytes > ONE_PASS_BYTES
    hdr = tmp_path / f"{request.param}.hdr"
    write_envi(make_cube(values), hdr, interleave=request.param)
    return hdr, values


def test_the_even_sample_of_a_geotiff_is_read_from_its_window_reader_in_one_session(
        tmp_path, monkeypatch):
    """The windows are read while the file stays open (hsad.io.kept_open): opened anew for
    each, GDAL decodes a whole compressed tile per 8 × 8 window."""
    import rasterio

    values = np.random.default_rng(4).normal(100, 10, (180, 170, 140)).astype(np.float32)
    write_geotiff_cube(make_cube(values), tmp_path / "large.tif")
    cube = open_cube(tmp_path / "large.tif")
    assert isinstance(source_of(cube.data), WindowReader)
    opened, real = [], rasterio.open
    monkeypatch.setattr(rasterio, "open", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    sample = even_sample(cube.data, 16 * SAMPLE_WINDOW ** 2)
    assert len(opened) == 1
    np.testing.assert_array_equal(sample, even_sample(values, 16 * SAMPLE_WINDOW ** 2))


def test_the_even_sample_of_a_file_reads_its_windows_from_the_reader(large_file,
                                                                     monkeypatch):
    """The same pixels as through dask, each window read alone from the file (through a
    dask graph per window, 1024 windows cost 1.2 s on a 1024² × 200 file; 0.1 s so)."""
    hdr, values = large_file
    cube = open_cube(hdr, chunks=64)
    assert isinstance(source_of(cube.data), envi.EnviPixels)
    reads = []
    window = envi.EnviPixels.read_window
    monkeypatch.setattr(envi.EnviPixels, "read_window", lambda self, ys, xs, bs: (
        reads.append((ys.stop - ys.start) * (xs.stop - xs.start)) or window(self, ys, xs, bs)))
    sample = even_sample(cube.data, 16 * SAMPLE_WINDOW ** 2)
    assert len(reads) == 16 and max(reads) == SAMPLE_WINDOW ** 2
    monkeypatch.setattr(stats, "source_of", lambda data: None)
    np.testing.assert_array_equal(sample, even_sample(cube.data, 16 * SAMPLE_WINDOW ** 2))
    np.testing.assert_array_equal(sample, even_sample(values, 16 * SAMPLE_WINDOW ** 2))


def test_a_small_tiled_geotiff_is_opened_once_for_its_sample(tmp_path, monkeypatch):
    import rasterio

    values = np.random.default_rng(8).random((200, 190, 12), dtype=np.float32)
    write_geotiff_cube(make_cube(values), tmp_path / "small.tif")
    cube = open_cube(tmp_path / "small.tif", chunks=64)
    opened, real = [], rasterio.open
    monkeypatch.setattr(rasterio, "open", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    sample = even_sample(cube.data, 64 * SAMPLE_WINDOW ** 2)
    assert len(opened) == 1
    np.testing.assert_array_equal(sample, even_sample(values, 64 * SAMPLE_WINDOW ** 2))


def test_a_small_file_is_sampled_whole_from_its_reader(tmp_path):
    values = np.random.default_rng(2).random((5, 4, 3), dtype=np.float32)
    write_envi(make_cube(values), tmp_path / "small.hdr")
    sample = even_sample(open_cube(tmp_path / "small.hdr").data, 1000)
    np.testing.assert_array_equal(sample, values.reshape(-1, 3))


def test_a_file_below_one_pass_bytes_is_read_once_for_its_windows(tmp_path, monkeypatch):
    """1 024 windows of a 16 MB file cost more one by one than one read of it."""
    values = np.random.default_rng(5).random((300, 280, 20), dtype=np.float32)
    assert values.nbytes < ONE_PASS_BYTES
    write_envi(make_cube(values), tmp_path / "mid.hdr", interleave="bil")
    cube = open_cube(tmp_path / "mid.hdr")
    reads = []
    window = envi.EnviPixels.read_window
    monkeypatch.setattr(envi.EnviPixels, "read_window", lambda self, ys, xs, bs: (
        reads.append(1) or window(self, ys, xs, bs)))
    sample = even_sample(cube.data, 1024 * SAMPLE_WINDOW ** 2)
    assert len(reads) <= 4  # the cube's chunks, once
    np.testing.assert_array_equal(sample, even_sample(values, 1024 * SAMPLE_WINDOW ** 2))


def test_a_mat_file_read_whole_is_sampled_from_memory(tmp_path):
    """A MAT v5 cube read at once (``load_mat``, the benchmark scenes' way) is wrapped as
    views, so its sample is sliced from memory (0.8 s through dask for 700² × 30)."""
    import scipy.io

    from hsad.io.matlab import load_mat

    values = np.random.default_rng(6).random((60, 50, 7)).astype(np.float32)
    scipy.io.savemat(tmp_path / "scene.mat", {"data": values, "map": np.zeros((60, 50))})
    cube, _ = load_mat(tmp_path / "scene.mat")
    assert isinstance(source_of(cube.data), np.ndarray)
    np.testing.assert_array_equal(even_sample(cube.data, 256), even_sample(values, 256))


def test_a_scaled_file_is_sampled_through_dask(tmp_path):
    """A cube whose values are computed from the file's (a reflectance scale) has no
    source to slice: its sample holds the scaled values."""
    values = np.random.default_rng(3).integers(0, 10_000, (20, 20, 4)).astype(np.int16)
    hdr = tmp_path / "scaled.hdr"
    write_envi(make_cube(values), hdr)
    hdr.write_text(hdr.read_text() + "reflectance scale factor = 10000\n")
    cube = open_cube(hdr, apply_scale=True)
    assert source_of(cube.data) is None
    sample = even_sample(cube.data, 1000)
    np.testing.assert_allclose(sample, values.reshape(-1, 4) / np.float32(10_000), rtol=1e-6)
