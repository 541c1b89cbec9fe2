"""The scene engine: memory-sized tiles, exact halo operators, streamed statistics, tiled
fusion, batched inference and streamed GeoTIFF outputs (tiled == whole scene)."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
import torch
from scipy.ndimage import uniform_filter
from tolerance import solve_rtol

from hsad import detectors, engine, synthetic
from hsad.cube import good_band_mask, make_cube
from hsad.engine import spill, tiles
from hsad.engine.morphology import area_filter
from hsad.engine.scheduler import TileProgress, parse_memory
from hsad.errors import ParameterError
from hsad.fusion import Fusion, filter_tiles, spatial_aed, spectral_tophat
from hsad.fusion import tiled as fusion_tiles


@pytest.fixture(scope="module")
def scene():
    return synthetic.make_scene(rows=44, cols=40, bands=16, seed=5)


def _rechunked(cube, chunks):
    return cube.copy(data=da.from_array(cube.values, chunks=(chunks, chunks, -1)))


# ---------------------------------------------------------------- budgets and tiles


def test_parse_memory_reads_sizes_and_refuses_nonsense():
    assert parse_memory("2GB") == 2_000_000_000
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory(64 * 2**20) == 64 * 2**20
    assert 0 < parse_memory("10%") < parse_memory("20%")
    with dask.config.set({"hsad.memory_limit": "300MB"}):
        assert parse_memory(None) == 300_000_000
    for bad in ("lots", "1KB", "-3GB"):
        with pytest.raises(ParameterError):
            parse_memory(bad)


def test_an_operator_with_its_own_bytes_per_pixel_gets_tiles_that_fit_them():
    """The attribute filters' ~77 bytes a pixel (morphology.response_bytes) let a 2048²
    scene of four 8-bit components be filtered whole under 1 GB, two tiles at a time."""
    from hsad.engine.morphology import response_bytes

    shape = (2048, 2048, 4)
    pixel_bytes = 4 * (1 + 4) + 16 + response_bytes(np.uint8, 5)
    own = engine.chunks_for(shape, np.uint8, "1GB", workers=2, halo=224,
                            pixel_bytes=pixel_bytes)
    assert own == (2048, 2048)
    assert engine.chunks_for(shape, np.uint8, "1GB", workers=2, halo=224)[0] < 2048
    ty, _ = engine.chunks_for((8192, 8192, 4), np.uint8, "1GB", workers=2, halo=224,
                              pixel_bytes=pixel_bytes)
    assert (ty + 448) ** 2 * pixel_bytes * 2 <= 1e9


def test_chunks_for_fits_the_budget_and_grows_with_it():
    shape = (4096, 4096, 200)
    small = engine.chunks_for(shape, np.int16, "256MB", workers=2)
    large = engine.chunks_for(shape, np.int16, "4GB", workers=2)
    assert small[0] < large[0] and small[0] % 16 == 0 and small[0] >= 32
    for (ty, tx), budget in ((small, 256e6), (large, 4e9)):
        per_pixel = 200 * (2 * 2 + tiles.WORK_BYTES)
        assert 2 * ty * tx * per_pixel <= budget
    # more workers share the budget: smaller tiles; a halo leaves room for context
    assert engine.chunks_for(shape, np.int16, "1GB", workers=8)[0] < \
        engine.chunks_for(shape, np.int16, "1GB", workers=1)[0]
    ty, _ = engine.chunks_for(shape, np.int16, "1GB", workers=2, halo=40)
    assert (ty + 80) ** 2 * 200 * (4 + tiles.WORK_BYTES) * 2 <= 1e9
    # full-width strips when enough rows fit, small scenes in one tile
    rows, cols = engine.chunks_for(shape, np.int16, "4GB", workers=2, full_rows=True)
    assert cols == 4096 and rows >= tiles.MIN_STRIP
    assert engine.chunks_for((50, 60, 10), np.float32, "1GB") == (50, 60)


def test_tiles_are_sized_for_the_cores_the_process_may_use(monkeypatch):
    """Under `taskset -c 0` (or a SLURM job holding 4 of 64 cores) tiles were sized for the
    machine's cores (`os.cpu_count`), which dask's threads never run at once: 32-pixel
    tiles for 64 cores where a job holding 4 gets 144, lrx 2.7× slower. The cores counted
    are dask's (CPU affinity and cgroup quota)."""
    import dask.system

    from hsad.engine import scheduler

    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr(dask.system, "CPU_COUNT", 4)
    with dask.config.set(num_workers=None, scheduler=None):
        assert scheduler.cpu_count() == 4 and scheduler.concurrency() == 4
        assert engine.chunks_for((4096, 4096, 200), np.int16, "1GB", halo=15) == \
            engine.chunks_for((4096, 4096, 200), np.int16, "1GB", workers=4, halo=15)


@pytest.mark.parametrize("full", ["short", "enospc"])
def test_a_full_temporary_folder_is_named_when_maps_spill(tmp_path, monkeypatch, full):
    """A TMPDIR on a full disk said "…/hsad-spill-x/<hash>.npy: short write", naming
    neither the disk nor TMPDIR; the error names the folder and what to do."""
    import errno

    from hsad.errors import OutputError

    windows = spill.NpyWindows.create(str(tmp_path / "m.npy"), (4, 4), np.float32)

    class Full:
        def write(self, view):
            if full == "short":
                return 0
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(windows, "_views", lambda key, flat, mode: iter([(Full(), flat)]))
    with pytest.raises(OutputError, match=rf"^{tmp_path}: no room left to spill the maps to "
                       r"\(maps beyond 0\.125 of the memory budget are kept on disk\): set "
                       r"TMPDIR to a folder with room, or give a larger --memory-limit$"):
        windows[0:2, 0:4] = np.ones((2, 4), np.float32)


def test_open_tiled_sizes_envi_tiles_from_the_budget(tmp_path):
    scene = synthetic.make_scene(rows=96, cols=80, bands=30, seed=1)
    paths = synthetic.write_scene(scene, tmp_path)
    cube = engine.open_tiled(paths["cube"], "16MB", workers=2)
    want = engine.chunks_for(cube.shape, cube.dtype, "16MB", workers=2, full_rows=True)
    assert (cube.data.chunks[0][0], cube.data.chunks[1][0]) == want
    assert cube.data.chunks[2] == (30,)
    assert engine.open_tiled(paths["cube"], chunks=24).data.chunks[0][0] == 24
    np.testing.assert_array_equal(cube.values, scene.cube.values)


# ---------------------------------------------------------------- halo operators


def test_map_halo_equals_the_whole_scene_for_a_window_filter():
    rng = np.random.default_rng(0)
    image = rng.random((61, 47, 2))

    def box(block):
        return uniform_filter(block, size=(9, 9, 1), mode="reflect")

    tiled = engine.map_halo(box, da.from_array(image, chunks=(10, 9, -1)), 4).compute()
    np.testing.assert_allclose(tiled, box(image), rtol=0, atol=1e-12)
    too_small = engine.map_halo(box, da.from_array(image, chunks=(10, 9, -1)), 2).compute()
    assert np.abs(too_small - box(image)).max() > 1e-3  # a short halo leaves seams
    small = image[:20, :6]  # both axes no longer than the halo: processed as one tile
    tiled = engine.map_halo(box, da.from_array(small, chunks=(7, 4, -1)), 30).compute()
    np.testing.assert_allclose(tiled, box(small), rtol=0, atol=1e-12)
    tiled = engine.map_halo(box, da.from_array(image[:, :6], chunks=(10, 4, -1)), 8).compute()
    np.testing.assert_allclose(tiled, box(image[:, :6]), rtol=0, atol=1e-12)


def _plateaus(shape, seed):
    rng = np.random.default_rng(seed)
    noise = uniform_filter(rng.random(shape), 3)
    return np.round((noise - noise.min()) / np.ptp(noise) * 12).astype(np.uint8)


@pytest.mark.parametrize("area", [5, 25])
def test_area_opening_and_closing_on_tiles_are_exact_with_halo_area_minus_one(area):
    image = _plateaus((90, 70), seed=area)

    def attr(block):
        return (area_filter(block, area, "opening").astype(int)
                - area_filter(block, area, "closing"))

    whole = attr(image)
    lazy = da.from_array(image, chunks=16)
    tiled = engine.map_halo(attr, lazy, filter_tiles.attribute_halo(area), dtype=int).compute()
    np.testing.assert_array_equal(tiled, whole)
    if area > 5:  # half the halo is not enough: components are cut at the seams
        short = engine.map_halo(attr, lazy, area // 4, dtype=int).compute()
        assert (short != whole).any()


# ---------------------------------------------------------------- streamed statistics


def test_nan_median_and_minmax_are_exact():
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(size=(70, 50)), 2)  # many ties
    values[rng.random(values.shape) < 0.1] = np.nan
    lazy = da.from_array(values, chunks=13)
    assert engine.nan_median(lazy) == np.nanmedian(values)
    assert engine.nan_median(lazy, limit=50) == np.nanmedian(values)  # several narrowings
    assert engine.nan_median(lazy[:-1], limit=50) == np.nanmedian(values[:-1])
    assert engine.nan_median(da.full((5, 5), np.nan, chunks=2)) != engine.nan_median(lazy)
    [(lo, hi)] = engine.minmax(lazy)
    assert (lo, hi) == (np.nanmin(values), np.nanmax(values))


@pytest.mark.parametrize("tie, other", [(0.0, None), (0.0, 5e-324), (-2.5, np.nextafter(-2.5, 0))])
def test_a_median_tied_by_more_values_than_the_limit_is_exact(tie, other):
    """More than ``limit`` signed values tied at 0 narrowed the range into subnormals until
    ``np.histogram`` raised ("bins must increase monotonically"); values a float apart
    cannot be binned by 1024 even bins either."""
    import warnings

    rng = np.random.default_rng(0)
    values = rng.normal(size=3000)
    values[:2000] = tie
    if other is not None:
        values[:700] = other
    values[-30:] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = engine.nan_median(da.from_array(values, chunks=400), limit=100)
    assert got == np.nanmedian(values)


def test_materialise_keeps_small_maps_in_memory_and_spills_large_ones():
    rng = np.random.default_rng(1)
    a = da.from_array(rng.random((400, 400)), chunks=64)
    b = a * 2
    kept = engine.materialise(a, b, memory_limit="1GB")  # 960 kB: in memory
    spilled = engine.materialise(a, b, memory_limit="20MB")  # > 1/8 of 20 MB: .npy files
    assert not any(isinstance(v, spill.NpyWindows) for v in kept[0].dask.values())
    assert any(isinstance(v, spill.NpyWindows) for v in spilled[0].dask.values())
    for got in (kept, spilled):
        np.testing.assert_array_equal(got[0].compute(), a.compute())
        np.testing.assert_array_equal(got[1].compute(), 2 * a.compute())
        assert got[0].chunks == a.chunks


@pytest.mark.parametrize("shape", [(37, 23), (37, 23, 5), (11,), (6, 7, 3, 2)])
def test_spill_files_write_and_read_any_window(tmp_path, shape):
    """A spill file written block by block (``pwrite`` of each contiguous run) is the
    array; any window read back (``pread``) is the array's window."""
    rng = np.random.default_rng(len(shape))
    values = rng.normal(size=shape).astype(np.float32)
    store = spill.NpyWindows.create(str(tmp_path / "a.npy"), shape, np.float32)
    cuts = [sorted({0, n, *rng.integers(0, n, 3).tolist()}) for n in shape]
    for block in np.ndindex(*[len(c) - 1 for c in cuts]):
        key = tuple(slice(c[i], c[i + 1]) for c, i in zip(cuts, block, strict=True))
        store[key] = values[key]
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), values)
    for _ in range(40):
        key = tuple(slice(*sorted(rng.integers(0, n + 1, 2).tolist())) for n in shape)
        np.testing.assert_array_equal(store[key], values[key])
    with pytest.raises(IndexError):
        store[::2]
    empty = (slice(2, 2),) + (slice(None),) * (len(shape) - 1)
    store[empty] = values[empty]  # an empty block writes nothing
    assert store[empty].shape == values[empty].shape


def test_a_band_of_a_spill_file_is_read_by_its_index_in_a_run_a_row(tmp_path, monkeypatch):
    """dask fuses ``x[:, :, i]`` of a spilled map into the read: the integer was refused
    (an IndexError through HADGAN's D_SS under a small budget, once the components with
    holes were spilled), and a band read as a slice took a read call a pixel (200 s for a
    1500 x 1500 scene's medians). Integers are read as the numpy index reads them, and a
    band in one run a row of the window."""
    rng = np.random.default_rng(9)
    values = rng.normal(size=(30, 20, 4)).astype(np.float32)
    store = spill.NpyWindows.create(str(tmp_path / "b.npy"), values.shape, np.float32)
    store[:, :, :] = values
    runs = []
    original = spill._runs
    monkeypatch.setattr(spill, "_runs", lambda shape, key: runs.append(
        original(shape, key)[0]) or original(shape, key))
    for key in [(slice(3, 9), slice(None), 2), (slice(None), slice(None), -1), (4,),
                (slice(0, 30), 7, 1), (slice(2, 5), slice(4, 9), slice(1, 3))]:
        np.testing.assert_array_equal(store[key], values[key])
    assert [len(r) for r in runs] == [1, 1, 1, 30, 3]  # at most a run a row, not a pixel
    with pytest.raises(IndexError, match="index 4 is out of bounds for an axis of 4"):
        store[:, :, 4]
    lazy = da.from_array(store, chunks=(8, 20, 4), asarray=False)
    np.testing.assert_array_equal(lazy[:, :, 1].compute(), values[:, :, 1])


def test_d_ss_of_a_scene_with_nodata_is_the_same_spilled():
    """HADGAN's D_SS of a scene with a nodata border, its components spilled to files (a
    small memory budget): the map kept in memory gives, not an IndexError."""
    from hsad import detectors, synthetic
    from hsad.cube import make_cube

    x = np.asarray(synthetic.make_scene(rows=40, cols=48, bands=12, seed=3).cube.values,
                   np.float32).copy()
    x[:, :5] = -9999.0
    cube = make_cube(da.from_array(x, chunks=(16, 48, -1)), nodata=-9999.0)
    det = detectors.get("hadgan", epochs=1, sample_size=500, progress=False).fit(cube)
    want = det.score(cube).values
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spill, "KEEP_SHARE", 0.0)
        got = det.score(cube).values
    np.testing.assert_array_equal(got, want)
    assert np.isnan(want[:, :5]).all() and np.isfinite(want[:, 5:]).all()


def test_spill_files_go_when_nothing_reads_them():
    """A batch of scenes in one process does not pile up its spill files until exit."""
    import gc

    folder = Path(spill._spill_dir())
    before = set(folder.iterdir())
    kept = engine.materialise(da.ones((1000, 1000), chunks=250), memory_limit="16MB")[0]
    assert len(set(folder.iterdir()) - before) == 1
    assert float(kept.sum().compute()) == 1e6
    del kept
    gc.collect()
    assert set(folder.iterdir()) - before == set()


@pytest.mark.parametrize("spilled", [False, True])
def test_windows_of_kept_maps_equal_the_whole_scene(monkeypatch, spilled):
    """:func:`map_windows` over what :func:`keep_with` kept gives the whole scene's
    result, as :func:`map_halo` does, with a tile narrower than the halo (running sums
    round with the window's origin: equal within rounding, not to the bit)."""
    if spilled:
        monkeypatch.setattr(spill, "KEEP_SHARE", 0.0)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 400)), rng.normal(size=(300, 400))

    def op(x, y):
        return uniform_filter(x, 9, mode="reflect") * y

    stores, _ = spill.keep_with([da.from_array(a, chunks=64), da.from_array(b, chunks=64)],
                                memory_limit="1GB")
    assert all(isinstance(s, spill.NpyWindows if spilled else np.ndarray) for s in stores)
    chunks = ((100, 3, 197), (150, 250))
    got = spill.map_windows(op, stores, chunks, 4).compute()
    pair = da.stack([da.from_array(a, chunks=chunks), da.from_array(b, chunks=chunks)], 2)
    want = engine.map_halo(lambda blk: op(blk[:, :, 0], blk[:, :, 1]), pair, 4,
                           drop_axis=2).compute()
    whole = op(a, b)
    np.testing.assert_allclose(got, whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(want, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("memory_limit", ["1GB", "20MB"])  # in memory, spilled
def test_materialise_with_takes_reductions_in_the_same_pass(memory_limit):
    rng = np.random.default_rng(2)
    values = rng.normal(size=(400, 300, 3))
    values[rng.random(values.shape[:2]) < 0.05, 1] = np.nan
    calls = []

    def counted(block):
        calls.append(block.shape)
        return block * 1.0

    a = da.from_array(values, chunks=(64, 64, -1)).map_blocks(counted, meta=np.empty((0, 0, 0)))
    (kept,), (lo, hi) = spill.materialise_with([a], tiles.finite_extremes(a, axis=(0, 1)),
                                               memory_limit=memory_limit)
    assert len(calls) == a.npartitions  # every block computed once, for both
    np.testing.assert_array_equal(kept.compute(), values)
    np.testing.assert_array_equal(lo, np.nanmin(values, axis=(0, 1)))
    np.testing.assert_array_equal(hi, np.nanmax(values, axis=(0, 1)))
    assert np.isnan(tiles.value_range(np.inf, -np.inf)).all()  # the extremes of no value


# ---------------------------------------------------------------- tiled detectors


@pytest.mark.parametrize("method, params", [
    ("rx", {}),
    ("lrx", {"inner": 3, "outer": 7}),
    ("crd", {"inner": 3, "outer": 7}),
])
def test_detectors_on_small_tiles_equal_the_whole_scene(scene, method, params):
    cube = scene.cube.isel(band=slice(0, 8))
    whole = detectors.get(method, **params).fit(_rechunked(cube, 64))
    ref = whole.score(_rechunked(cube, 64)).values
    tiled_cube = _rechunked(cube, 8)  # 6 x 5 tiles, seams every 8 pixels
    tiled = detectors.get(method, **params).fit(tiled_cube).score(tiled_cube)
    assert tiled.data.numblocks[0] > 1 or method != "rx"
    np.testing.assert_allclose(tiled.values, ref, rtol=2e-4, atol=1e-6)


def _residual_like(cube):
    good = np.asarray(cube.values[:, :, good_band_mask(cube)], np.float32)
    good[3:6, 10:13] = np.nan  # nodata: medians fill them, stages keep NaN
    return good, np.abs(good - np.nanmean(good, axis=(0, 1)))


@pytest.mark.parametrize("fusion", [
    Fusion(variant="aed", area=9, radius=2),
    Fusion(variant="paper", norm="rank", area=9, radius=3, eps=0.5),
    Fusion(variant="aed", pc_source="residual", n_components=1, area=5, radius=2),
    Fusion(),  # the library defaults: halo 37 on a 44 x 40 scene of 12-pixel tiles
    Fusion(variant="paper", area=64),  # a halo larger than the scene: one tile
    Fusion(variant="multiscale", area=25, radius=2),  # areas 9 and 25 averaged
    Fusion(variant="multiscale", area=25, radius=2, spectral_tophat=False),
    Fusion(variant="aed", area=9, radius=2, spectral_tophat=True),
])
def test_fusion_on_tiles_equals_the_whole_scene(scene, fusion):
    cube, residual = _residual_like(scene.cube)
    ref = fusion.stages(residual, cube)
    got = fusion_tiles.fusion_stages(fusion, da.from_array(residual, chunks=(12, 12, -1)),
                               da.from_array(cube, chunks=(12, 12, -1)))
    # the stage maps come from float32 products over the bands: tiles change the rounding
    # inside those sums, within √B·u (tests/tolerance.py); D_SS scales each stage by its
    # range (min-max), which turns that relative error into an absolute one of up to
    # 3·rtol·max|map| / range (the value, the minimum and the range each move). D_spectral's
    # area top-hat is computed on the quantised map: whole levels, no rounding to carry.
    rtol = solve_rtol(1.0, residual.shape[2], np.float32)
    f = fusion.resolved()
    scaled = [(f.lam, ref["d_spatial"])] + ([] if f.spectral_tophat else
                                            [(1.0 - f.lam, ref["d_spectral"])])
    atol_ss = sum(3.0 * weight * rtol * np.nanmax(np.abs(m)) / np.ptp(m[np.isfinite(m)])
                  for weight, m in scaled)
    for name, want in ref.items():
        value = got[name].compute()
        np.testing.assert_array_equal(np.isnan(value), np.isnan(want))
        if name == "d_ss":
            np.testing.assert_allclose(value, want, rtol=0, atol=atol_ss, err_msg=name)
        else:
            np.testing.assert_allclose(value, want, rtol=rtol, atol=1e-10, err_msg=name)
    assert atol_ss < 1e-5  # still a check: a wrong tile shifts D_SS by ~1e-2


def _filter_tiles_of_30(monkeypatch, tile_function: str) -> list:
    """Filter tiles capped at 30 pixels; the shapes ``tiled.<tile_function>`` is called
    with are recorded in the list returned."""
    seen, real = [], getattr(filter_tiles, tile_function)

    def recorded(block, **kwargs):
        seen.append(block.shape)
        return real(block, **kwargs)

    monkeypatch.setattr(filter_tiles, tile_function, recorded)
    monkeypatch.setattr(filter_tiles, "FILTER_EDGE", 30)
    return seen


@pytest.mark.parametrize("spilled", [False, True])
def test_multiscale_filters_on_small_tiles_equal_the_whole_scene(monkeypatch, spilled):
    """Filter tiles of 30–34 pixels with the 24-pixel halo of areas 9 and 25 (both areas
    read from one tree per tile), then the guided filter on tiles of its own, reading its
    windows from the guide and responses kept in memory or spilled to files: D_spatial is
    still the whole scene's."""
    if spilled:
        monkeypatch.setattr(spill, "KEEP_SHARE", 0.0)
    rng = np.random.default_rng(8)
    comps = uniform_filter(rng.normal(size=(100, 120, 2)), (3, 3, 1))
    comps[[5, 40], [7, 50]] += 3.0  # bright objects
    comps[30:34, 20:23] -= 2.0  # a dark one
    fusion = Fusion(variant="multiscale", area=25, radius=2, n_components=2).resolved()
    want = spatial_aed(comps, area=(9, 25), radius=2, eps=fusion.eps)
    seen = _filter_tiles_of_30(monkeypatch, "_response_tile")
    monkeypatch.setattr(tiles, "chunks_for", lambda *a, **k: (40, 40))  # guided tiles
    folder = Path(spill._spill_dir())
    before = set(folder.iterdir())
    lazy = filter_tiles.aed_filtered(da.from_array(comps, chunks=(50, 120, 2)), fusion)
    assert lazy.chunks == ((34, 34, 32), (40, 40, 40))
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), want, rtol=1e-9, atol=1e-12)
    assert len(set(folder.iterdir()) - before) == (2 if spilled else 0)  # guide, responses
    shapes = [shape for shape in seen if shape[0] > 1]  # dask's meta calls aside
    assert len(shapes) == 12  # 3 x 4 tiles of 30-34 pixels, each with its halo
    assert max(s[0] for s in shapes) == 34 + 2 * 24 and min(s[1] for s in shapes) == 30 + 24

def test_spectral_tophat_on_small_tiles_equals_the_whole_scene(monkeypatch):
    """The area top-hat of D_spectral on tiles of 30–34 pixels with the 24-pixel halo of
    areas 9 and 25, nodata pixels included: the whole map's, exactly."""
    rng = np.random.default_rng(9)
    d = np.exp(uniform_filter(rng.normal(size=(100, 120)), 3))
    d[[5, 40, 77], [7, 50, 100]] += 4.0
    d[60:80, 10:30] += 2.0  # a structure larger than every area
    d[0, :5] = np.nan
    fusion = Fusion(variant="multiscale", area=25).resolved()
    want = spectral_tophat(d, (9, 25))
    seen = _filter_tiles_of_30(monkeypatch, "_tophat_tile")
    lazy = filter_tiles.tophat_filtered(da.from_array(d, chunks=(50, 120)), fusion)
    got = lazy.compute(scheduler="sync")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert len([s for s in seen if s[0] > 1]) == 12  # 3 x 4 tiles, each with its halo


@pytest.fixture(scope="module")
def hadgan(scene):
    det = detectors.get("hadgan", epochs=1, hidden=16, depth=1, sample_size=600,
                        progress=False, area=9, radius=2, seed=2)
    return det.fit(_rechunked(scene.cube, 64))


def test_hadgan_residual_and_scores_on_tiles_equal_the_whole_scene(scene, hadgan):
    whole, tiled = _rechunked(scene.cube, 64), _rechunked(scene.cube, 8)
    res_whole = hadgan.residual(whole).compute()
    res_tiled = hadgan.residual(tiled).compute()
    np.testing.assert_allclose(res_tiled, res_whole, rtol=1e-5, atol=1e-6)
    a, b = hadgan.score_stages(whole), hadgan.score_stages(tiled)
    for name in ("d_spectral", "d_spatial", "d_ss"):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_training_patches_do_not_depend_on_the_chunking(scene):
    from hsad.nn.sampling import sample_pixels

    values = scene.cube.values.copy()
    values[0:3, 0:40] = -9999
    cubes = [make_cube(da.from_array(values, chunks=(c, c, -1)), nodata=-9999)
             for c in (7, 16, 44)]
    samples = [sample_pixels(c, 150, seed=9, patch=3) for c in cubes]
    for s in samples[1:]:
        np.testing.assert_array_equal(s.rows, samples[0].rows)
        np.testing.assert_array_equal(s.values, samples[0].values)
    assert (samples[0].rows >= 3).all()  # nodata rows never drawn


# ---------------------------------------------------------------- inference


def test_infer_batches_equals_one_forward_pass_and_checks_precision():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x = np.random.default_rng(0).random((1000, 6), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = engine.infer_batches(net, x, batch=77)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # CPU ignores autocast: bf16 asked for, float32 computed
    np.testing.assert_array_equal(engine.infer_batches(net, x, batch=77, precision="bf16"), got)
    doubled = engine.infer_batches(net, x, prepare=lambda b: torch.from_numpy(2 * b), batch=300)
    with torch.no_grad():
        np.testing.assert_allclose(doubled, net(torch.from_numpy(2 * x)).numpy(), atol=1e-6)
    with pytest.raises(ParameterError):
        engine.infer_batches(net, x, precision="int8")


def test_inference_batches_are_larger_on_cuda_and_default_by_device():
    assert engine.batch_for("cpu") == engine.inference.BATCH == 8192
    assert engine.batch_for("cuda") == engine.batch_for("cuda:1") == engine.inference.CUDA_BATCH
    seen = []

    def forward(x):
        seen.append(len(x))
        return x[:, :1]

    x = np.zeros((engine.inference.BATCH + 5, 2), dtype=np.float32)
    assert engine.infer_batches(forward, x).shape == (len(x), 1)
    assert seen == [engine.inference.BATCH, 5]  # the CPU's batch by default


class _Scaler:
    def __init__(self, factor):
        self.factor = factor
        self.calls = 0

    def apply(self, block):
        self.calls += 1
        return block * self.factor


def test_model_node_is_one_key_shared_by_every_tile():
    model = engine.model_node(_Scaler(3.0))
    data = da.arange(64.0, chunks=8).reshape(8, 8).rechunk(2)
    blocks = data.to_delayed()
    tasks = [dask.delayed(engine.call_model)(model, "apply", b) for b in blocks.ravel()]
    graph = dict(dask.delayed(list)(tasks).__dask_graph__())
    model_keys = [k for k in graph if str(k).startswith("model-")]
    assert len(model_keys) == 1
    out = dask.compute(*tasks)
    np.testing.assert_array_equal(np.concatenate([o.ravel() for o in out]),
                                  3 * np.concatenate([b.compute().ravel()
                                                      for b in blocks.ravel()]))


# ---------------------------------------------------------------- streamed outputs


def test_write_map_streams_tiles_keeps_georef_and_writes_valid_cogs(scene, tmp_path):
    cube = _rechunked(scene.cube, 16)
    scores = detectors.get("rx").fit(cube).score(cube)
    computed = []

    class Watch(dask.callbacks.Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if isinstance(result, np.ndarray) and result.ndim == 2:
                computed.append(result.size)

    bar = TileProgress(disable=True)
    with Watch(), bar:
        engine.write_map(scores, tmp_path / "rx.tif", like=cube)
    assert bar.tiles == 1  # one 256-px GeoTIFF tile holds this small map
    assert max(computed) <= 256 * 256
    engine.write_map(scores, tmp_path / "rx_cog.tif", like=cube, cog=True)
    for name in ("rx.tif", "rx_cog.tif"):
        with rasterio.open(tmp_path / name) as src:
            assert src.crs == cube.rio.crs and src.transform == cube.rio.transform()
            np.testing.assert_allclose(src.read(1), scores.values, rtol=1e-6)
    with rasterio.open(tmp_path / "rx_cog.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    back = engine.read_map(tmp_path / "rx.tif", cube)
    assert back.dims == ("y", "x") and np.array_equal(back["x"], cube["x"])


def test_progress_counts_every_tile_of_a_large_map(tmp_path):
    lazy = da.random.RandomState(0).random_sample((600, 530), chunks=(100, 90))
    cube = make_cube(np.zeros((600, 530, 1), np.float32))
    bar = TileProgress(disable=True)
    with bar:
        engine.write_map(cube.isel(band=0).copy(data=lazy), tmp_path / "big.tif", like=cube)
    assert bar.tiles == 3 * 3  # 256-px tiles: 3 x 3
    with rasterio.open(tmp_path / "big.tif") as src:
        np.testing.assert_allclose(src.read(1), lazy.compute().astype(np.float32))


@pytest.mark.parametrize("memory_limit", ["1GB", "16MB"])  # kept in memory, spilled
def test_maps_kept_between_passes_show_one_bar_of_their_own(memory_limit, capsys):
    """The maps kept between passes (a network's pass, the spatial filters) ran most of a
    HADGAN or AED run with no bar: the command's bar counts writes and statistics only.
    Inside a bar asked for they get one, named, and only one (a spilled pass's writes to
    its files are not counted again as the command's "writing"); none when bars are off."""
    lazy = da.random.RandomState(1).random_sample((600, 520), chunks=(200, 260)) + 1
    with TileProgress(disable=False):
        kept = engine.materialise(lazy, memory_limit=memory_limit, desc="network")[0]
    err = capsys.readouterr().err
    assert "network: 100%" in err and "6/6" in err and "writing" not in err, err
    assert "tile/s" in err and err.count("network: 100%") == 1, err
    with TileProgress(disable=True):
        engine.materialise(lazy, memory_limit=memory_limit, desc="network")
    assert "network" not in capsys.readouterr().err
    engine.materialise(lazy, memory_limit=memory_limit, desc="network")  # no bar asked for
    assert "network" not in capsys.readouterr().err
    np.testing.assert_array_equal(kept.compute(), lazy.compute())
    spilled = any(isinstance(v, spill.NpyWindows) for v in kept.dask.values())
    assert spilled == (memory_limit == "16MB")


def test_cli_detect_with_a_memory_limit_and_stages(scene, tmp_path, capsys):
    from hsad.cli.main import main

    paths = synthetic.write_scene(scene, tmp_path / "scene")
    out = tmp_path / "rx.tif"
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(paths["cube"]), "-m", "rx", "-o", str(out), "--memory-limit",
              "20MB", "--no-progress", "--contamination", "0.02", "--mask",
              str(tmp_path / "mask.tif")])
    assert exc.value.code == 0, capsys.readouterr().err
    ref = detectors.get("rx").fit(scene.cube).score(scene.cube).values
    with rasterio.open(out) as src:
        np.testing.assert_allclose(src.read(1), ref, rtol=1e-4)
        assert src.crs == scene.cube.rio.crs
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(paths["cube"]), "-m", "rx", "-o", str(out), "--memory-limit",
              "lots"])
    assert exc.value.code == 2 and "memory limit" in capsys.readouterr().err


def test_a_memory_limit_beyond_the_machine_is_refused_or_warned(monkeypatch):
    import warnings

    from hsad.engine import scheduler

    for bad in ("200%", "0%", "-5%"):
        with pytest.raises(ParameterError, match="a share of RAM lies in"):
            scheduler.parse_memory(bad)
    assert scheduler.parse_memory("100%") == scheduler.total_memory()
    monkeypatch.setattr(scheduler, "total_memory", lambda: 4_000_000_000)
    with pytest.warns(UserWarning, match="exceeds this machine's RAM"):
        with scheduler.use_scheduler(memory_limit="8GB"):
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with scheduler.use_scheduler(memory_limit="2GB"):
            pass


def _rx_in_child(values):
    return np.asarray(detectors.get("rx").fit_score(make_cube(values))).tolist()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX's")
def test_a_forked_child_after_a_dask_computation_makes_its_own_pools():
    """multiprocessing's fork start (Linux's default; joblib's multiprocessing backend)
    after any hsad computation in the parent: the child queued its tasks on the parent's
    thread pools, whose threads it does not have, and waited for ever (dask/dask#8218)."""
    import multiprocessing

    values = np.random.default_rng(0).normal(size=(24, 20, 6)).astype(np.float32) + 5
    here = np.asarray(detectors.get("rx").fit_score(make_cube(da.from_array(values,
                                                                             chunks=8))))
    with multiprocessing.get_context("fork").Pool(1) as pool:
        there = pool.apply_async(_rx_in_child, (values,)).get(timeout=120)
    np.testing.assert_allclose(np.asarray(there), here, rtol=1e-5)
