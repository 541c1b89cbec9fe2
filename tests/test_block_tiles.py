"""Files whose blocks hold more pixels than the memory budget's tile (a COG's 512² blocks
of many bands): each block read once, whole, and cut into tiles."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from cli_helpers import run_cli
from rasterio.transform import from_origin

import hsad.io.geotiff as geotiff
from hsad import detectors
from hsad.cube import source_of
from hsad.engine.block_tiles import _cuts, _edges, _grouped, _pieces, block_split
from hsad.engine.tiles import chunks_for, open_tiled

BLOCK, BANDS = 128, 60
#: 32 MiB for one task: a 112² tile; a 128² block of 60 float32 bands (3.75 MiB) beside
#: a tile of at most 11 221 pixels (60 · 44 bytes each)
BUDGET = 32 * 2**20


@pytest.fixture
def big_blocks(tmp_path):
    """A deflated, pixel-interleaved float32 GeoTIFF in 128² blocks over 300 × 330 pixels
    (short last blocks), and its values."""
    rng = np.random.default_rng(7)
    values = rng.normal(100, 10, (300, 330, BANDS)).astype(np.float32)
    values[:, :, 1:] += values[:, :, :1] * 0.5  # correlated bands, as a scene's
    path = tmp_path / "big_blocks.tif"
    with rasterio.open(path, "w", driver="GTiff", width=330, height=300, count=BANDS,
                       dtype="float32", tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
                       compress="deflate", interleave="pixel", crs="EPSG:32633",
                       transform=from_origin(5e5, 4e6, 30, 30)) as dst:
        dst.write(np.moveaxis(values, -1, 0))
    return path, values


def test_pieces_cut_each_block_and_nothing_across_blocks():
    assert _pieces(300, 128, 2) == (64, 64, 64, 64, 44)  # a short block: no slivers
    assert _pieces(300, 128, 1) == (128, 128, 44)
    assert _pieces(5, 128, 3) == (5,)
    assert _pieces(300, 128, 4, 1) == (1, 32, 32, 32, 32, 32, 32, 32, 32, 22, 21)
    rng = np.random.default_rng(0)
    for _ in range(300):
        size, block = int(rng.integers(1, 3000)), int(rng.integers(1, 700))
        parts = int(rng.integers(1, 9))
        sizes = _pieces(size, block, parts)
        assert sum(sizes) == size and min(sizes) >= 1
        edges = set(np.cumsum((0, *sizes)).tolist())
        assert set(range(0, size, block)) <= edges  # every block starts a piece
        longest = -(-block // parts)
        assert max(sizes) <= longest
        edges = sorted(set(range(0, size, block)) | {size})  # as few pieces as allowed
        for start, stop in zip(edges, edges[1:], strict=False):
            assert sum(1 for e in np.cumsum((0, *sizes)) if start <= e < stop) == \
                -(-(stop - start) // longest)


def test_a_window_s_blocks_begin_where_the_file_s_do():
    """A window from row 28 of a file in 128-row blocks: its blocks begin at its rows 100,
    228; whole blocks are grouped, or cut, from there."""
    assert _edges(300, 128, 100) == [0, 100, 228, 300]
    assert _edges(300, 128, 0) == [0, 128, 256, 300]
    assert _edges(90, 128, 100) == [0, 90]  # no block edge within it
    assert _grouped(300, 128, 2, 100) == (228, 72)
    assert _grouped(300, 128, 1, 100) == (100, 128, 72)
    assert _grouped(300, 128, 3, 0) == (300,)
    assert _pieces(300, 128, 2, 100) == (50, 50, 64, 64, 36, 36)
    assert _pieces(300, 128, 4, 120) == (30, 30, 30, 30, 32, 32, 32, 32, 26, 26)


def test_cuts_are_the_fewest_within_the_pixels():
    assert _cuts(512, 512, 512 * 256, 32) == (2, 1)
    assert _cuts(512, 512, 200_000, 32) == (2, 1)
    assert _cuts(512, 512, 30_000, 32) == (3, 3)
    assert _cuts(512, 512, 500, 32) is None  # no piece of 32² fits
    rng = np.random.default_rng(1)
    for _ in range(300):
        bh, bw = (int(v) for v in rng.integers(16, 1100, 2))
        pixels = int(rng.integers(1024, bh * bw + 1))
        down, across = _cuts(bh, bw, pixels, 32)
        h, w = -(-bh // down), -(-bw // across)
        assert h * w <= pixels
        assert h >= min(32, bh) and w >= min(32, bw)
        if down * across > 1:  # no fewer pieces would do
            assert not any(-(-bh // d) * -(-bw // a) <= pixels and
                           -(-bh // d) >= min(32, bh) and -(-bw // a) >= min(32, bw)
                           for d in range(1, down + 1) for a in range(1, across + 1)
                           if d * a < down * across)


def test_a_block_no_larger_than_the_tile_is_not_split():
    shape = (2048, 2048, 60)
    assert block_split(shape, np.float32, (256, 256), (448, 448), "1GiB", workers=2,
                       pixel_bytes=60 * 44) is None
    assert block_split(shape, np.float32, None, (448, 448), "1GiB", workers=2,
                       pixel_bytes=60 * 44) is None
    blocks, tiles = block_split(shape, np.float32, (512, 512), (448, 448), "1GiB",
                                workers=2, pixel_bytes=60 * 44)
    assert blocks == ((512,) * 4, (512,) * 4)
    assert set(tiles[0]) == {256} and set(tiles[1]) == {512}
    # a block whose raw pixels leave no room for a tile beside them (2 GB of 2 000 bands,
    # or 16 tasks): still read whole, cut into the budget's own tiles
    for shape, tasks, tile in (((1024, 1024, 2000), 2, (64, 64)),
                               ((1024, 1024, 224), 16, (96, 96))):
        blocks, tiles = block_split(shape, np.float32, (512, 512), tile, "1GiB",
                                    workers=tasks, pixel_bytes=shape[2] * 44)
        assert blocks == ((512,) * 2, (512,) * 2)
        assert max(tiles[0]) * max(tiles[1]) <= tile[0] * tile[1]
        assert 512 in np.cumsum(tiles[0]) and 512 in np.cumsum(tiles[1])


def test_tiles_cut_whole_blocks_within_the_budget(big_blocks):
    path, values = big_blocks
    plain = chunks_for(values.shape, np.float32, BUDGET, workers=1)
    assert plain == (112, 112)  # smaller than a block
    cube = open_tiled(path, BUDGET, workers=1)
    rows, cols = cube.data.chunks[:2]
    assert set(range(0, 300, BLOCK)) <= set(np.cumsum((0, *rows)).tolist())
    assert set(range(0, 330, BLOCK)) <= set(np.cumsum((0, *cols)).tolist())
    block_bytes = BLOCK * BLOCK * BANDS * 4
    assert max(rows) * max(cols) * BANDS * 44 + block_bytes <= BUDGET
    assert source_of(cube.data) is not None  # small windows still read without dask
    np.testing.assert_array_equal(cube.values, values)


def test_each_block_is_read_once_whole_in_a_pass(big_blocks, monkeypatch):
    path, values = big_blocks
    cube = open_tiled(path, BUDGET, workers=1)
    reads = []
    real = geotiff.WindowReader._read
    monkeypatch.setattr(geotiff.WindowReader, "_read",
                        lambda self, *a: reads.append(a[:4]) or real(self, *a))
    total = cube.data.sum(axis=(0, 1)).compute()
    np.testing.assert_allclose(total, values.sum(axis=(0, 1), dtype=np.float64), rtol=1e-5)
    expected = {(r, min(r + BLOCK, 300), c, min(c + BLOCK, 330))
                for r in range(0, 300, BLOCK) for c in range(0, 330, BLOCK)}
    assert sorted(reads) == sorted(expected)


def test_rx_of_split_tiles_equals_rx_of_the_whole_scene(big_blocks, tmp_path, capsys):
    """The map, from Python and from ``hsad detect`` under the small budget, is RX of the
    values in memory (up to float32 rounding of the streamed statistics)."""
    path, values = big_blocks
    expected = np.asarray(detectors.get("rx").fit_score(values).values)
    split = np.asarray(detectors.get("rx").fit_score(open_tiled(path, BUDGET,
                                                                workers=1)).values)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(split, expected, rtol=0, atol=1e-4 * scale)
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", out, "--memory-limit", "32MiB",
                            "--no-progress", "--scheduler", "sync"], capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        written = src.read(1)
    np.testing.assert_allclose(written, expected, rtol=0, atol=1e-4 * scale)


def _read_bounds(monkeypatch):
    """The (row0, row1, col0, col1) of every read of a GeoTIFF file, in its pixels."""
    reads = []
    real = geotiff.WindowReader._read
    monkeypatch.setattr(geotiff.WindowReader, "_read",
                        lambda self, *a: reads.append(a[:4]) or real(self, *a))
    return reads


@pytest.mark.parametrize("budget", [BUDGET, 128 * 2**20])  # cut blocks; whole blocks
def test_a_window_s_tiles_begin_and_end_on_the_file_s_blocks(big_blocks, monkeypatch,
                                                            budget):
    """``--srcwin`` of rows 28–288, columns 50–300: every read begins and ends on a block
    edge of the file (or the window's), and reads each pixel once a pass; where a block is
    larger than the tile, a read is one block, whole."""
    path, values = big_blocks
    cube = open_tiled(path, budget, workers=1, subset={"srcwin": (50, 28, 250, 260)})
    np.testing.assert_array_equal(cube.values, values[28:288, 50:300])
    reads = _read_bounds(monkeypatch)
    cube.data.sum(axis=(0, 1)).compute()
    covered = np.zeros((300, 330), int)
    for r0, r1, c0, c1 in reads:
        assert r0 in (28, 128, 256) and r1 in (128, 256, 288)
        assert c0 in (50, 128, 256) and c1 in (128, 256, 300)
        if budget == BUDGET:  # a block larger than the tile: one block a read
            assert r0 // BLOCK == (r1 - 1) // BLOCK and c0 // BLOCK == (c1 - 1) // BLOCK
        covered[r0:r1, c0:c1] += 1
    assert (covered[28:288, 50:300] == 1).all() and covered.sum() == 260 * 250
    assert {100, 228} <= set(np.cumsum((0, *cube.data.chunks[0])).tolist())


def test_rx_of_a_window_in_cut_blocks_equals_rx_of_its_values(big_blocks, tmp_path, capsys):
    path, values = big_blocks
    expected = np.asarray(detectors.get("rx").fit_score(values[28:288, 50:300]).values)
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", out, "--memory-limit", "32MiB",
                            "--no-progress", "--scheduler", "sync",
                            "--srcwin", 50, 28, 250, 260], capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        written = src.read(1)
    np.testing.assert_allclose(written, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
