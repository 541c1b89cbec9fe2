"""Arrays read window by window without dask: hsad.cube.source_of and the even sample of
hsad.engine.sampling, which reads its small windows from a scene's own array or reader."""

from __future__ import annotations

import numpy as np
import pytest

import hsad.engine.sampling as sampling
import hsad.io.envi as envi
from hsad import open_cube
from hsad.cube import make_cube, source_of, wrap_numpy
from hsad.engine.sampling import ONE_PASS_BYTES, SAMPLE_WINDOW, even_sample, shared_samples
from hsad.io.envi_writer import write_envi
from hsad.io.geotiff import WindowReader
from hsad.io.geotiff_writer import write_geotiff_cube


def test_a_copy_of_a_wrapped_array_is_sampled_from_its_own_chunks():
    """A pickled (or deep-copied) array holds the values it was copied with: its sample is
    read from its own graph's chunks, not from the array, which may have changed since."""
    import copy
    import pickle

    data = np.full((40, 30, 5), 100.0, np.float32)
    cube = make_cube(data)
    pickled = pickle.loads(pickle.dumps(cube.data))
    copied = copy.deepcopy(cube.data)  # dask shares the graph: it still views the array
    data[...] = 0.0
    assert pickled.name == cube.data.name
    assert (np.asarray(source_of(pickled)) == 100.0).all()  # its own chunks' values
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
    monkeypatch.setattr(sampling, "source_of", lambda data: None)
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


class _Recording:
    """An array-like (a file's lazy view, as dask's from_array is given one) recording the
    windows it is sliced with."""

    def __init__(self, values):
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, 3
        self.keys = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self.values[key]


def _pixels(key) -> int:
    return int(np.prod([s.stop - s.start for s in key[:2]]))


@pytest.mark.parametrize("options", [{}, {"fancy": False}, {"lock": True},
                                     {"asarray": False}])
def test_an_array_like_given_to_from_array_is_sampled_window_by_window(options,
                                                                     monkeypatch):
    """``dask.array.from_array`` over a lazy view (a file): the sample slices the view
    itself, a window at a time, without a dask graph per window or a read of whole
    chunks, and holds what dask computes; a small scene is read once, whole."""
    import dask.array as da

    values = np.random.default_rng(5).normal(size=(300, 260, 7)).astype(np.float32)
    view = _Recording(values)
    lazy = da.from_array(view, chunks=(128, 128, -1), **options)
    assert source_of(lazy) is not None
    assert values.nbytes <= ONE_PASS_BYTES
    view.keys.clear()
    np.testing.assert_array_equal(even_sample(lazy, 4096), even_sample(values, 4096))
    assert [_pixels(k) for k in view.keys] == [300 * 260]
    monkeypatch.setattr(sampling, "ONE_PASS_BYTES", 0)  # as a scene larger than it is read
    view.keys.clear()
    np.testing.assert_array_equal(even_sample(lazy, 4096), even_sample(values, 4096))
    assert len(view.keys) == 64  # 64 windows of 8 x 8, each one read
    assert max(_pixels(k) for k in view.keys) == SAMPLE_WINDOW ** 2
    if options.get("lock"):
        assert source_of(lazy).lock is not None


def test_a_numpy_array_given_to_from_array_is_sampled_across_its_chunks():
    """``from_array`` over numpy keeps the chunks (views) in its graph: windows across
    chunk borders, with steps, positions, masks and integers read as numpy reads them."""
    import dask.array as da

    values = np.random.default_rng(6).normal(size=(53, 47, 6))
    lazy = da.from_array(values, chunks=(10, 13, 4))
    held = source_of(lazy)
    assert held is not None
    mask = np.array([True, False] * 3)
    cases = [((slice(7, 25), slice(11, 40), slice(None)), values[7:25, 11:40]),
             ((slice(None),) * 3, values), ((slice(50, 60), slice(-5, None), slice(2, 5)),
                                            values[50:, -5:, 2:5]),
             ((slice(3, 3), slice(None), 0), values[3:3, :, 0]),
             ((slice(1, 50, 7), slice(None, None, -3), [5, 0, 3]),
              values[1:50:7, ::-3][:, :, [5, 0, 3]]),  # positions per axis (outer)
             ((4, slice(12, 14), mask), values[4, 12:14][:, mask]),
             ((-1, -1, -1), values[-1, -1, -1]), (Ellipsis, values),
             ((Ellipsis, slice(1, 2)), values[..., 1:2])]
    for key, expected in cases:
        np.testing.assert_array_equal(held[key], expected)
    np.testing.assert_array_equal(even_sample(lazy, 2000), even_sample(values, 2000))
    with pytest.raises(IndexError):
        held[53, 0, 0]


def test_graphs_that_compute_other_values_have_no_source():
    """Anything but dask's own from_array graph (arithmetic, a slice, a masked array, an
    inlined array-like) is read through dask as before."""
    import dask.array as da

    values = np.random.default_rng(8).normal(size=(30, 20, 4)).astype(np.float32)
    lazy = da.from_array(values, chunks=(16, 16, -1))
    masked = da.from_array(np.ma.masked_less(values, 0), chunks=(16, 16, -1))
    inlined = da.from_array(_Recording(values), chunks=(16, 16, -1), inline_array=True)
    for other in (lazy + 1, lazy[:, :, :3], lazy.astype(np.float64), masked, inlined,
                  lazy.rechunk((8, 8, -1))):
        assert source_of(other) is None


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_rioxarray_view_is_sampled_from_the_file_in_bands_last_order(tmp_path):
    """``rioxarray.open_rasterio`` (``(band, y, x)``, chunked one band a chunk or not at
    all) made a cube: its sample is read from xarray's view of the file, reordered, and
    holds the file's values."""
    import rioxarray

    from hsad.cube import as_cube

    values = np.random.default_rng(9).integers(0, 3000, (90, 70, 5)).astype(np.int16)
    write_envi(make_cube(values), tmp_path / "scene.hdr")
    for chunks in (None, True, {"band": -1, "y": 32, "x": 32}):
        view = rioxarray.open_rasterio(tmp_path / "scene", chunks=chunks)
        cube = as_cube(view)
        held = source_of(cube.data)
        assert held is not None and held.shape == values.shape
        np.testing.assert_array_equal(even_sample(cube.data, 1000), even_sample(values, 1000))
        np.testing.assert_array_equal(np.asarray(held[3:9, 60:, [4, 1]]),
                                      values[3:9, 60:][:, :, [4, 1]])
        view.close()


def test_one_detector_call_reads_each_sample_once(tmp_path, monkeypatch):
    """The scene checks of one fit of an integer scene without nodata (the statistics'
    checks, the level the model keeps) take the same even sample: it is read once per
    call (a compressed GeoTIFF decodes its tiles once), and again by the next call."""
    from hsad import detectors

    values = np.random.default_rng(4).integers(0, 5000, (120, 110, 20)).astype(np.int16)
    write_envi(make_cube(values), tmp_path / "int.hdr")
    cube = open_cube(tmp_path / "int.hdr")
    monkeypatch.setattr(sampling, "ONE_PASS_BYTES", 0)  # read window by window
    reads = []
    real = envi.EnviPixels.read_window
    monkeypatch.setattr(envi.EnviPixels, "read_window", lambda self, ys, xs, bs: (
        reads.append(ys.stop - ys.start), real(self, ys, xs, bs))[1])
    for _ in range(2):
        reads.clear()
        detectors.get("rx").fit(cube)
        assert reads.count(SAMPLE_WINDOW) == 64  # 4 096 pixels in 8 x 8 windows, once


def test_a_shared_sample_is_handed_out_as_a_copy_and_dropped_after_the_call():
    values = np.random.default_rng(2).random((60, 50, 4))
    lazy = wrap_numpy(values)
    with shared_samples():
        first = even_sample(lazy, 500)
        first[...] = -1.0  # a check changing its sample changes no other's
        with shared_samples():  # nested: the same samples
            np.testing.assert_array_equal(even_sample(lazy, 500), even_sample(values, 500))
        values *= 2.0
        np.testing.assert_array_equal(even_sample(lazy, 500), even_sample(values / 2, 500))
    np.testing.assert_array_equal(even_sample(lazy, 500), even_sample(values, 500))


def test_a_shared_sample_follows_an_array_assigned_to_and_no_copied_context_keeps_it():
    """A dask array assigned to in place (a new graph under the same object) is read
    again; a context copied inside the call (an asyncio task) holds no sample after it."""
    import contextvars

    import dask.array as da

    lazy = da.from_array(np.ones((40, 40, 3)), chunks=(20, 20, -1))
    with shared_samples():
        assert (even_sample(lazy, 300) == 1.0).all()
        lazy[...] = 7.0
        assert (even_sample(lazy, 300) == 7.0).all()
        copied = contextvars.copy_context()
    lazy[...] = 9.0
    assert (copied.run(even_sample, lazy, 300) == 9.0).all()


class _Calibrated(_Recording):
    """An array-like whose ``value`` attribute is not what slicing it gives."""

    @property
    def value(self):
        return np.zeros(self.shape, self.dtype)


def test_an_array_like_s_value_attribute_is_not_taken_for_it():
    import dask.array as da

    values = np.random.default_rng(10).normal(size=(96, 64, 3)).astype(np.float32)
    lazy = da.from_array(_Calibrated(values), chunks=(32, 32, -1))
    np.testing.assert_array_equal(np.asarray(source_of(lazy)), lazy.compute())


def test_an_array_like_holding_its_own_dask_array_is_freed():
    """A reader that keeps the dask array made over it is freed with it once looked at
    (nothing global holds what was found in its graph)."""
    import gc
    import weakref

    import dask.array as da

    class Reader(_Recording):
        def __init__(self, values):
            super().__init__(values)
            self.lazy = da.from_array(self, chunks=(16, 16, -1))

    reader = Reader(np.ones((40, 40, 2)))
    assert source_of(reader.lazy) is not None
    gone = weakref.ref(reader)
    del reader
    gc.collect()
    assert gone() is None


def test_a_graph_is_looked_at_once_and_a_pickled_copy_again():
    import pickle

    import dask.array as da

    from hsad.io import graph_sources

    zeros = da.zeros((64, 64, 2), chunks=(8, 8, -1))  # not from_array: read through dask
    assert source_of(zeros) is None
    assert getattr(zeros.dask.layers[zeros.name], graph_sources._FOUND).held is None
    lazy = da.from_array(np.arange(48.0).reshape(4, 4, 3), chunks=(2, 2, -1))
    held = source_of(lazy)
    assert source_of(lazy) is held  # found once
    copy = pickle.loads(pickle.dumps(lazy))
    assert source_of(copy) is not held
    np.testing.assert_array_equal(np.asarray(source_of(copy)), np.asarray(held))


@pytest.mark.parametrize("key", [True, np.True_, 1.5, None, "a", [[0, 1]],
                                 np.array([True, False]), (Ellipsis, 0, Ellipsis),
                                 (0, 0, 0, 0)])
def test_a_source_refuses_indices_numpy_would_refuse_or_read_otherwise(key):
    import dask.array as da

    held = source_of(da.from_array(np.zeros((4, 5, 3)), chunks=(2, 2, -1)))
    with pytest.raises(IndexError):
        held[key]


def test_what_was_found_does_not_depend_on_the_graph_around_the_layer():
    """A layer first seen inside a merged graph (an Array made by hand over it) is judged
    by its own dependencies: the plain array keeps its source either way."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    lazy = da.from_array(_Recording(np.ones((16, 16, 2))), chunks=(8, 8, -1))
    merged = da.Array(HighLevelGraph.merge(lazy.dask, da.ones(3, chunks=3).dask), lazy.name,
                      lazy.chunks, lazy.dtype, meta=lazy._meta)
    assert source_of(merged) is not None and source_of(lazy) is not None


def test_a_looked_at_graph_pickles_without_hsad_and_a_transposed_reader_is_freed():
    """What was found is not pickled (a worker without hsad unpickles the graph), and a
    reader holding its own (band, y, x) dask array is freed after ``as_cube``."""
    import gc
    import pickle
    import weakref

    import dask.array as da
    import xarray as xr

    from hsad.cube import as_cube

    lazy = da.from_array(_Recording(np.ones((16, 16, 2))), chunks=(8, 8, -1))
    assert source_of(lazy) is not None
    assert b"hsad.io" not in pickle.dumps(lazy.dask.layers[lazy.name])  # no class of ours

    class Reader(_Recording):
        def __init__(self, values):
            super().__init__(values)
            self.view = xr.DataArray(da.from_array(self, chunks=(1, 16, 16)),
                                     dims=("band", "y", "x"))

    reader = Reader(np.random.default_rng(11).random((3, 16, 20)))
    cube = as_cube(reader.view)
    np.testing.assert_array_equal(np.asarray(source_of(cube.data)),
                                  np.moveaxis(reader.values, 0, -1))
    reader.cube = cube
    gone = weakref.ref(reader)
    del reader, cube
    gc.collect()
    assert gone() is None


def test_an_array_index_before_an_ellipsis():
    import dask.array as da

    values = np.arange(120.0).reshape(4, 5, 6)
    held = source_of(da.from_array(values, chunks=(2, 2, -1)))
    np.testing.assert_array_equal(held[np.array([0, 2]), ...], values[[0, 2]])
    np.testing.assert_array_equal(held[:, np.array([1, 3]), ...], values[:, [1, 3]])


class _Counting(_Recording):
    """A recording array-like that also counts the values it hands out."""

    values_read = 0

    def __getitem__(self, key):
        out = super().__getitem__(key)
        self.values_read += out.size
        return out


@pytest.mark.parametrize("derive", [lambda x: x * 2.0, lambda x: x.rechunk((64, 64, 1)),
                                    lambda x: _where_above_half(x)])
def test_a_cube_computed_from_a_file_is_sampled_in_one_computation(derive, monkeypatch):
    """Arithmetic on a lazy cube (``open_cube(p) / 10000``): a window computed alone
    would compute its whole chunks (RX on a 768² × 60 file divided by 10 000: 40 s
    against 0.4 s), so the windows are computed together, each chunk once."""
    import dask.array as da

    from hsad.io.graph_sources import reads_windows

    values = np.random.default_rng(12).random((256, 192, 5))
    base = _Counting(values)
    plain = da.from_array(base, chunks=(128, 64, -1))
    assert reads_windows(plain)
    lazy = derive(plain)
    assert not reads_windows(lazy) and source_of(lazy) is None
    monkeypatch.setattr(sampling, "ONE_PASS_BYTES", 0)  # as a scene larger than it is read
    base.values_read = 0
    np.testing.assert_array_equal(even_sample(lazy, 4096),
                                  even_sample(np.asarray(lazy.compute()), 4096))
    assert base.values_read <= 2 * values.size  # once for the sample, once to compare


def _where_above_half(x):
    import dask.array as da

    return da.where(x > 0.5, x, np.nan).astype(np.float32)


def test_a_window_of_a_from_array_graph_is_read_alone():
    """A graph that from_array made with dask's getter, without a source found in it (an
    inlined array), still reads each window alone; other getters compute whole chunks."""
    import dask
    import dask.array as da

    from hsad.io.graph_sources import reads_windows

    values = np.ones((64, 64, 2))
    assert reads_windows(da.from_array(_Recording(values), chunks=32, inline_array=True))
    assert not reads_windows(da.from_array(_Recording(values), chunks=32, fancy=False,
                                           inline_array=True))  # dask reads whole chunks
    assert not reads_windows(da.from_array(_Recording(values), chunks=32,
                                           getitem=lambda a, b: a[b]))
    assert not reads_windows(da.from_delayed(dask.delayed(values), values.shape,
                                             values.dtype))


def test_what_was_found_holds_only_over_the_same_layers_below():
    """Two arrays of one name (``name=`` given twice): a graph of the first's layer over
    the second's array computes the second's values, and its source says so."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    first = da.from_array(_Recording(np.zeros((8, 8, 3))), chunks=4, name="same")
    second = da.from_array(_Recording(np.ones((8, 8, 3))), chunks=4, name="same")
    assert (np.asarray(source_of(first)) == 0.0).all()  # found, and kept on its layer
    layers = {"same": first.dask.layers["same"],
              "original-same": second.dask.layers["original-same"]}
    mixed = da.Array(HighLevelGraph(layers, {"same": {"original-same"}, "original-same": set()}),
                     "same", first.chunks, dtype=first.dtype)
    np.testing.assert_array_equal(np.asarray(source_of(mixed)), mixed.compute())
    assert (mixed.compute() == 1.0).all()
    # the same two layers down, under as_cube's transpose of a (band, y, x) view
    import xarray as xr

    from hsad.cube import as_cube

    first = da.from_array(_Recording(np.zeros((3, 8, 8))), chunks=(-1, 4, 4), name="again")
    second = da.from_array(_Recording(np.ones((3, 8, 8))), chunks=(-1, 4, 4), name="again")
    cube = as_cube(xr.DataArray(first, dims=("band", "y", "x"))).data
    assert (np.asarray(source_of(cube)) == 0.0).all()
    layers = {**cube.dask.layers, "original-again": second.dask.layers["original-again"]}
    mixed = da.Array(HighLevelGraph(layers, dict(cube.dask.dependencies)), cube.name,
                     cube.chunks, dtype=cube.dtype, meta=cube._meta)
    held = source_of(mixed)
    assert held is None or (np.asarray(held) == 1.0).all()


def test_hsad_s_own_views_of_a_computed_cube_are_sampled_in_one_computation(monkeypatch):
    """A mask (``--valid-mask``), a band selection (``--bands``) or a mosaic over arithmetic
    on a cube: the view's windows would each compute whole chunks of what it views (27–48 s
    on a 768² × 60 scene), so its sample is one computation too."""
    import dask.array as da

    from hsad.cube.mosaic import training_mosaic
    from hsad.cube.nodata import apply_valid_mask

    values = np.random.default_rng(13).random((256, 192, 5)).astype(np.float32)
    base = _Counting(values)
    plain = make_cube(da.from_array(base, chunks=(128, 64, -1)))
    valid = np.ones((256, 192), bool)
    valid[100:120] = False
    monkeypatch.setattr(sampling, "ONE_PASS_BYTES", 0)
    for view, alone in ((apply_valid_mask(plain * 2.0, valid), False),
                        (apply_valid_mask(plain, valid), True),
                        (training_mosaic([plain * 2.0, plain])[0], False)):
        assert source_of(view.data).reads_windows() is alone
        base.values_read = 0
        expected = even_sample(np.asarray(view.data.compute()), 4096)
        computed = base.values_read
        base.values_read = 0
        np.testing.assert_array_equal(even_sample(view.data, 4096), expected)
        assert base.values_read <= computed  # each chunk at most once


def test_every_array_like_reads_an_index_array_before_an_ellipsis():
    """The readers' views expand ``...`` alike (hsad.io.window.full_key): an index array
    before it is not compared with it."""
    from hsad.io.window import WindowView

    values = np.arange(120.0).reshape(4, 5, 6)
    view = WindowView(values, 1, 1, 3, 4)
    np.testing.assert_array_equal(view[np.array([0, 2]), ...], values[1:4, 1:5][[0, 2]])
    np.testing.assert_array_equal(view[..., 2], values[1:4, 1:5, 2])
