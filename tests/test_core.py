"""The cube model, streamed statistics, atomic writes and config parsing."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from affine import Affine

from hsad.config import load_config, parse_params
from hsad.cube import make_cube, map_like, valid_mask, wrap_numpy
from hsad.engine.covariance import mahalanobis, pinv_precision
from hsad.engine.stats import SCATTER_PIECE_PIXELS, cube_moments
from hsad.errors import DegenerateDataWarning, FileFormatError, ParameterError
from hsad.io.atomic import atomic_path, atomic_paths

UTM = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4200000.0)


def _cube(rows=20, cols=24, bands=5, seed=0, **kw):
    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 50, (rows, cols, bands)).astype(np.float32)
    return make_cube(da.from_array(data, chunks=(7, 9, -1)), transform=UTM, crs="EPSG:32633",
                     wavelength=np.linspace(400, 2500, bands), **kw), data


def test_cube_carries_georeference_and_band_coords():
    cube, _ = _cube()
    assert cube.dims == ("y", "x", "band")
    assert cube.rio.crs.to_epsg() == 32633
    assert cube.rio.transform() == UTM
    assert cube["x"].values[0] == pytest.approx(500015.0)
    assert cube["y"].values[0] == pytest.approx(4199985.0)
    assert cube["good_band"].values.all()


def test_numpy_input_is_wrapped_as_views_without_a_copy():
    data = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    lazy = wrap_numpy(data, chunks=(2, 3, -1))
    assert lazy.chunks == ((2, 2, 1), (3, 3, 1), (3,))
    np.testing.assert_array_equal(lazy.compute(), data)
    blocks = list(dict(lazy.__dask_graph__()).values())
    assert len(blocks) == 9 and all(np.shares_memory(b, data) for b in blocks)  # views
    cube = make_cube(data)
    assert cube.data.chunks[2] == (3,)
    assert all(np.shares_memory(b, data) for b in dict(cube.data.__dask_graph__()).values())
    assert wrap_numpy(data[:, :, 0], chunks=(4, 4)).compute().shape == (5, 7)


def test_rotated_transform_survives_on_cube_and_maps():
    rot = Affine.translation(100, 200) @ Affine.rotation(-66) @ Affine.scale(2.7, -2.7)
    cube = make_cube(np.zeros((4, 5, 2), np.float32), transform=rot, crs="EPSG:32612")
    assert cube.rio.transform().almost_equals(rot)
    m = map_like(cube, np.ones((4, 5)))
    assert m.rio.transform().almost_equals(rot) and m.rio.crs == cube.rio.crs


def test_valid_mask_uses_nodata_nan_and_only_good_bands():
    data = np.ones((3, 4, 3), np.float32)
    data[0, 0, :] = -9999
    data[1, 1, 2] = np.nan  # only in a bad band: still valid
    data[2, 3, 0] = np.nan
    cube = make_cube(data, nodata=-9999, good_band=[True, True, False])
    mask = valid_mask(cube).values
    expected = np.ones((3, 4), bool)
    expected[0, 0] = expected[2, 3] = False
    np.testing.assert_array_equal(mask, expected)


def test_streamed_moments_equal_numpy_over_valid_pixels():
    cube, data = _cube(nodata=-1.0)
    data = data.copy()
    data[3, 4] = -1.0
    cube = make_cube(da.from_array(data, chunks=(7, 9, -1)), nodata=-1.0)
    mom = cube_moments(cube)
    flat = data.reshape(-1, data.shape[2]).astype(np.float64)
    flat = flat[~(flat == -1.0).any(axis=1)]
    assert mom.n == flat.shape[0]
    np.testing.assert_allclose(mom.mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(mom.cov, np.cov(flat.T, bias=True), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("nodata", [None, -5.0])
def test_block_moments_screen_non_finite_pixels_in_every_piece(nodata):
    """Pieces after the first are screened from their band sums: a NaN or ±inf anywhere
    in them still drops exactly its pixels (and nodata pixels, by value)."""
    from hsad.engine import stats

    rng = np.random.default_rng(4)
    block = rng.normal(100.0, 3.0, size=(400, 90, 5)).astype(np.float32)  # several pieces
    bad = [(0, 3, 1, np.nan), (150, 7, 0, np.inf), (399, 89, 4, -np.inf), (260, 0, 2, np.nan)]
    for r, c, b, v in bad:
        block[r, c, b] = v
    if nodata is not None:
        block[300, 5, 3] = nodata
    assert block.shape[0] > SCATTER_PIECE_PIXELS // block.shape[1]  # the block has several pieces
    mom = stats.block_moments(block, screen=True, nodata=nodata)
    flat = block.reshape(-1, 5).astype(np.float64)
    keep = np.isfinite(flat).all(axis=1)
    if nodata is not None:
        keep &= ~(flat == nodata).any(axis=1)
    flat = flat[keep]
    assert mom.n == flat.shape[0] == 400 * 90 - 4 - (nodata is not None)
    np.testing.assert_allclose(mom.mean, flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(mom.cov, np.cov(flat.T, bias=True), rtol=1e-9)


def _whitened_error(scatter, exact):
    """‖L⁻¹ (scatter − exact) L⁻ᵀ‖₂ with exact = L Lᵀ: an error as RX sees it."""
    inv = np.linalg.inv(np.linalg.cholesky(exact))
    return np.linalg.norm(inv @ (scatter - exact) @ inv.T, 2)


@pytest.mark.parametrize("case", ["offset", "outlier first"])
def test_block_moments_centre_on_the_block_not_its_first_piece(case):
    """The pieces' scatter is summed about a reference and the block's shift from it
    subtracted once: a reference far from the block's mean (its first piece, here a lone
    outlier or a level 1e6 above the spread) cancels the digits RX needs. Whitened errors
    against a two-pass long-double reference, outlier and offset: 2e-3 and 1e-13 about the
    first piece's mean; 3e-4 and 7e-9 with 0.2.0's per-piece merges; 5e-8 and 1e-13 about
    the block's sampled mean."""
    from hsad.engine import stats

    rng = np.random.default_rng(7)
    block = rng.normal(size=(256, 256, 12)) @ rng.normal(size=(12, 12))
    valid = None
    if case == "offset":
        block = 1e6 + 1e-3 * block
    else:  # the block's first rows masked out but for one outlier
        block = 5.0 + 0.01 * block
        block[3, 3] += 1e4
        valid = np.ones((256, 256), bool)
        valid[:16] = False
        valid[3, 3] = True
    mom = stats.block_moments(block, valid)
    flat = block.reshape(-1, 12)[np.ones(256 * 256, bool) if valid is None
                                 else valid.reshape(-1)].astype(np.longdouble)
    centred = flat - flat.mean(axis=0)
    exact = (centred.T @ centred).astype(np.float64)
    assert mom.n == flat.shape[0]
    assert _whitened_error(mom.scatter, exact) < 1e-6


def test_an_undeclared_fill_at_float64s_limit_is_refused_not_dropped():
    """-1.797e308 (ArcGIS's float64 NoData) in a tile's rows overflowed the tile's centring
    mean, and every pixel of the tile was then dropped as not finite, silently."""
    from hsad.engine.data_checks import scene_moments
    from hsad.errors import ParameterError

    rng = np.random.default_rng(0)
    x = 1000 + rng.normal(size=(128, 96, 6)) @ rng.normal(size=(6, 6))
    x[:24, :, 0] = -np.finfo(np.float64).max
    with pytest.raises(ParameterError, match="fill value"):
        scene_moments(make_cube(x), "RX")


def test_mahalanobis_matches_direct_formula_and_pinv_handles_singular():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    x[:, 3] = x[:, 2]  # singular covariance
    cov = np.cov(x.T, bias=True)
    with pytest.warns(DegenerateDataWarning, match="rank 3 < 4"):
        prec = pinv_precision(cov)
    d = mahalanobis(x, x.mean(0), prec)
    ref = np.array([(v - x.mean(0)) @ np.linalg.pinv(cov) @ (v - x.mean(0)) for v in x])
    np.testing.assert_allclose(d, ref, rtol=1e-8)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths(tmp_path / "a.img", tmp_path / "a.hdr") as (img, hdr):
        img.write_bytes(b"x")
        hdr.write_text("ENVI")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.hdr", "a.img"]


def test_parse_params_types_values_and_rejects_bad_pairs():
    assert parse_params(["inner=3", "ridge=1e-6", "pca=null", "fusion=aed", "w=[1, 2]"]) == {
        "inner": 3, "ridge": 1e-6, "pca": None, "fusion": "aed", "w": [1, 2]}
    with pytest.raises(ParameterError, match="key=value"):
        parse_params(["inner"])


def test_load_config_yaml_toml_and_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("method: lrx\nparams: {inner: 3, outer: 9}\n")
    (tmp_path / "b.toml").write_text('method = "rx"\n[params]\nridge = 0.001\n')
    (tmp_path / "c.yaml").write_text("method: [unclosed\n")
    assert load_config(tmp_path / "a.yaml")["params"] == {"inner": 3, "outer": 9}
    assert load_config(tmp_path / "b.toml")["params"]["ridge"] == 0.001
    with pytest.raises(FileFormatError, match="c.yaml: not a valid YAML/TOML config"):
        load_config(tmp_path / "c.yaml")


def test_names_moved_out_of_stats_still_import_from_it():
    """0.2.7 moved the scene checks and the covariance algebra out of
    ``hsad.engine.stats``; a plugin's old imports keep working, and a name that never
    existed is still an AttributeError."""
    from hsad.engine import covariance, data_checks, stats, windows

    assert stats.scene_moments is data_checks.scene_moments
    assert stats.whitening is covariance.whitening
    assert stats.FILL_MAGNITUDE == data_checks.FILL_MAGNITUDE
    assert stats.PIECE_PIXELS == windows.PIECE_PIXELS  # imported here before 0.3.2
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        stats.no_such_name  # noqa: B018
