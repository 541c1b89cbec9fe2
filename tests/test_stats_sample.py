"""Sampled fusion statistics (``stats_sample``): one network pass over large scenes."""

import threading

import dask.array as da
import numpy as np
import pytest

from hsad import detectors, synthetic
from hsad.cube import good_band_mask
from hsad.detectors import reconstruction
from hsad.errors import ParameterError
from hsad.fusion.tiled import components_map, finite_moments, spectral_map
from hsad.io import envi, envi_writer, open_cube
from hsad.nn.sampling import stratified_rows


@pytest.fixture(scope="module")
def scene():
    s = synthetic.make_scene(rows=60, cols=36, bands=12, seed=3)
    return s.cube.copy(data=da.from_array(s.cube.values, chunks=(16, 16, -1))), s.truth


def _fitted(cube, **params):
    det = detectors.get("hadgan", epochs=1, hidden=16, depth=1, sample_size=500,
                        progress=False, area=9, radius=2, seed=4, **params)
    return det.fit(cube)


def test_stratified_rows_draw_one_row_per_stratum():
    rows = stratified_rows(100, 10, 200, seed=1)  # 20 strata of 5 rows
    assert rows.shape == (20,)
    assert np.array_equal(rows // 5, np.arange(20))
    assert np.array_equal(rows, stratified_rows(100, 10, 200, seed=1))
    assert not np.array_equal(rows, stratified_rows(100, 10, 200, seed=2))
    assert stratified_rows(100, 10, 0) is None  # 0: exact statistics
    assert stratified_rows(100, 10, 1000) is None  # every row needed
    assert stratified_rows(100, 10, 981).size == 99  # 99 strata of ~1 row still sample
    uneven = stratified_rows(10, 4, 12, seed=0)  # 3 strata over 10 rows
    assert np.all(np.diff(uneven) > 0) and uneven.max() < 10


@pytest.mark.parametrize("params", [{}, {"input": "patch", "patch": 3}])
def test_sampled_statistics_are_those_of_the_scene_residual_on_the_sampled_rows(scene, params):
    cube, _ = scene
    det = _fitted(cube, stats_sample=36 * 20, **params)  # 20 rows of 36 pixels
    stats = det.fusion_statistics(cube)
    rows = stratified_rows(60, 36, 36 * 20, seed=4)
    residual = det.residual(cube).compute()[rows]
    mean, cov = finite_moments(residual)
    np.testing.assert_allclose(stats.residual[0], mean, rtol=1e-6)
    np.testing.assert_allclose(stats.residual[1], cov, rtol=1e-5, atol=1e-12)
    good = good_band_mask(cube)
    bands = np.asarray(cube.values[rows][:, :, good], np.float64).reshape(-1, good.sum())
    np.testing.assert_allclose(stats.source[0], bands.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.energy, residual.sum(axis=(0, 1)), rtol=1e-5)


def test_small_scenes_and_stats_sample_0_use_exact_statistics(scene):
    cube, _ = scene
    assert _fitted(cube).fusion_statistics(cube) is None  # 2160 pixels < 262144
    assert _fitted(cube, stats_sample=0).fusion_statistics(cube) is None
    # a sample too small for the bands' statistics: exact ones instead
    assert _fitted(cube, stats_sample=36).fusion_statistics(cube) is None


def _pixels_through_the_network(det, cube, monkeypatch) -> int:
    count, lock = [0], threading.Lock()
    tile = type(det)._tile

    def counted(self, *args, **kwargs):
        out = tile(self, *args, **kwargs)
        with lock:
            count[0] += out.shape[0] * out.shape[1]
        return out

    monkeypatch.setattr(type(det), "_tile", counted)
    monkeypatch.setattr(reconstruction, "RESIDUAL_MEMORY", 1)  # the residual never fits
    det.score_stages(cube)
    return count[0]


def test_the_network_runs_once_over_the_scene_with_sampled_statistics(scene, monkeypatch):
    cube, _ = scene
    n = 60 * 36
    sampled = _fitted(cube, stats_sample=36 * 20)
    assert _pixels_through_the_network(sampled, cube, monkeypatch) == n + 36 * 20
    exact = _fitted(cube, stats_sample=0)  # residual statistics need a pass of their own
    assert _pixels_through_the_network(exact, cube, monkeypatch) == 2 * n


@pytest.mark.parametrize("output", ["d_ss", "d_spectral"])
def test_d_spectral_scored_batch_by_batch_is_the_residual_s_rx(scene, output):
    """With sampled statistics the sweep scores D_spectral batch by batch and never holds
    the residual: the map is the residual's RX against the sampled statistics, as the
    residual map (computed on request) gives it."""
    cube, _ = scene
    det = _fitted(cube, stats_sample=36 * 20, output=output)
    stats = det.fusion_statistics(cube)
    maps = det.score_stages(cube)
    expected = spectral_map(maps["residual"].data, stats.residual).compute()
    # the same float32 arithmetic on other groupings of the pixels: a BLAS kernel may
    # round a column differently by where it falls (docs/reliability.md, float32 rtol)
    np.testing.assert_allclose(maps["d_spectral"].values, expected, rtol=1e-5)


def test_sampled_statistics_give_nearly_the_exact_maps(scene):
    cube, truth = scene
    det = _fitted(cube, stats_sample=36 * 30)
    sampled = det.score_stages(cube)
    exact = det.set_params(stats_sample=0).score_stages(cube)
    for name in ("d_spectral", "d_spatial", "d_ss"):
        a, b = exact[name].values.ravel(), sampled[name].values.ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.95, name


@pytest.mark.parametrize("bad", [-1, 2.5, "many", True])
def test_stats_sample_must_be_a_count(scene, bad):
    cube, _ = scene
    with pytest.raises(ParameterError, match="stats_sample"):
        detectors.get("hadgan", stats_sample=bad, epochs=1).fit(cube)
    fitted = _fitted(cube)
    with pytest.raises(ParameterError, match="stats_sample"):
        fitted.set_params(stats_sample=bad).score_stages(cube)


def _on_file(cube, folder):
    """The scene as a BIL ENVI file, opened in tiles of 20 rows."""
    envi_writer.write_envi(cube, folder / "s.hdr", interleave="bil")
    return open_cube(folder / "s.hdr", chunks=(20, 36))


def _rows_read(monkeypatch) -> list[int]:
    """A list that gets the number of rows of every read from an ENVI file."""
    read = []
    transpose = envi.EnviPixels._transpose_lines

    def counted(planes, dst, buf, band_axis_first):
        read.append(dst.shape[0])
        return transpose(planes, dst, buf, band_axis_first)

    monkeypatch.setattr(envi.EnviPixels, "_transpose_lines", staticmethod(counted))
    return read


def test_sampled_statistics_read_only_the_sampled_rows_from_the_file(scene, tmp_path,
                                                                      monkeypatch):
    """Rows read in one dask call made dask read every chunk they lie in, whole."""
    on_file = _on_file(scene[0], tmp_path)
    det = _fitted(on_file, stats_sample=36 * 10)  # 10 rows, 3 chunks of 20 rows
    read = _rows_read(monkeypatch)
    assert det.fusion_statistics(on_file) is not None
    assert sum(read) == 10


@pytest.mark.parametrize("params", [{}, {"input": "patch", "patch": 3}])
def test_with_sampled_statistics_the_scene_is_read_once_for_the_network_and_the_pcs(
        scene, tmp_path, monkeypatch, params):
    """D_SS with sampled statistics reads the sampled rows, then every row once: the
    principal components come from the network's read of each window, equal to those of
    the cube's own read."""
    on_file = _on_file(scene[0], tmp_path)
    det = _fitted(on_file, stats_sample=36 * 10, **params)
    reference = det.score_stages(on_file)  # before counting: the networks' first run
    # the scale check's own sample (a whole scene this small; a few windows of a large one,
    # test_scene_level.py) is not one of the passes counted here
    monkeypatch.setattr(type(det), "_check_level", lambda self, cube, bands, values=None: None)
    read = _rows_read(monkeypatch)
    stages = det.score_stages(on_file)
    halo = 1 if params else 0  # a patch model also reads each window's halo rows
    assert sum(read) <= 10 * (1 + 2 * halo) + 60 + 2 * 2 * halo
    np.testing.assert_array_equal(stages["d_ss"].values, reference["d_ss"].values)

    stats = det.fusion_statistics(on_file)
    mean, basis = reconstruction.pc_basis(*stats.source, 4)
    also = (4, lambda block: reconstruction._window_components(
        block, nodata=on_file.attrs.get("nodata"), mean=mean, basis=basis))
    _, shared = det._per_pixel(on_file, residual=True, terms=False, also=also)
    own = components_map(det._scene_good_bands(on_file), 4, moments=stats.source)
    np.testing.assert_array_equal(shared.compute(), own.compute())


@pytest.mark.parametrize("output", ["d_ss", "d_spectral"])
def test_a_residual_that_reuses_the_score_gives_maps_with_sampled_statistics(scene, output):
    """AnoGAN's residual comes out of its score's latent search: a sweep that needs only
    the residual computes the score terms without returning them (they once came back as
    extra residual bands, and the residual's RX failed to broadcast)."""
    cube, _ = scene
    det = detectors.get("anogan", epochs=1, hidden=16, depth=1, latent=3, sample_size=500,
                        search_steps=3, progress=False, area=9, radius=2, seed=4,
                        output=output, stats_sample=36 * 20).fit(cube)
    n_bands = int(good_band_mask(cube).sum())
    assert det.residual(cube).shape == (60, 36, n_bands)
    sampled = det.score(cube).values  # the output alone: D_spectral batch by batch
    exact = det.set_params(stats_sample=0).score(cube).values
    assert np.isfinite(sampled).all()
    assert np.corrcoef(exact.ravel(), sampled.ravel())[0, 1] > 0.95
