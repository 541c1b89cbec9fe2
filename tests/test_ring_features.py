"""Ring statistics for local RX: band blocks and running box sums against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from hsad.engine import ring_features
from hsad.engine.ring_features import RingStatistics, band_blocks
from hsad.engine.windows import padded


@pytest.mark.parametrize("bands", [1, 2, 5, 31, 193, 425])
def test_band_blocks_cover_the_lower_triangle_once_within_their_size(bands):
    products = 4096
    blocks = band_blocks(bands, products)
    assert blocks[0][0] == 0 and blocks[-1][1] == bands
    assert blocks[0][2] == 1 + bands  # features 0…B: validity and values
    needed = bands * (bands + 1) // 2
    stored = 0
    for (i0, i1, o0, o1), nxt in zip(blocks, blocks[1:] + [None], strict=True):
        assert o1 - o0 == (i1 - i0) * i1
        tall, wide = i1 - i0, i1
        size = tall * wide
        assert size <= products or tall == 1
        assert size <= ring_features.SMALL_BLOCK or 2 * tall <= wide or tall == 1
        if nxt is not None:
            assert nxt[0] == i1 and nxt[2] == o1
        stored += size
    assert stored - needed <= max(0.2 * needed, ring_features.SMALL_BLOCK)


def _brute(x, valid, inner, outer, r, c):
    h, g = outer // 2, inner // 2
    box = np.zeros(x.shape[:2], bool)
    box[r - h:r + h + 1, c - h:c + h + 1] = True
    box[r - g:r + g + 1, c - g:c + g + 1] = False
    box &= valid > 0
    ring = x[box]
    return len(ring), ring.sum(axis=0), ring.T @ ring


@pytest.mark.parametrize("products, small, cumsum, max_bytes", [
    (None, None, None, 256 * 2**20),  # defaults: one block, np.cumsum
    (12, 4, 4, 256 * 2**20),  # several blocks, two-level prefix sums
    (12, 4, 4, 8 * 3 * 600),  # and strips narrower than the row
])
@pytest.mark.parametrize("inner, outer", [(1, 3), (3, 7), (1, 9)])
def test_ring_statistics_and_moments_equal_brute_force(monkeypatch, products, small, cumsum,
                                                max_bytes, inner, outer):
    for name, value in (("SMALL_BLOCK", small), ("CUMSUM_FEATURES", cumsum)):
        if value is not None:
            monkeypatch.setattr(ring_features, name, value)
    rng = np.random.default_rng(3)
    block = rng.normal(size=(13, 17, 7)) + 2.0
    block[4, 6] = np.nan  # a nodata pixel, left out of every ring
    block[9, :] = np.nan  # a whole row without data, skipped
    block[:, 15:] = np.nan  # row ends without data
    x, valid = padded(block, 0, outer // 2)
    stats = RingStatistics(x, valid, inner, outer, products=products, max_bytes=max_bytes)
    if products is not None:
        assert len(stats.blocks) > 3
    h = outer // 2
    seen = set()
    for r, c, n, mean, sums in stats:
        with np.errstate(divide="ignore", invalid="ignore"):
            moments = stats.moments(sums, slice(None), n, mean, np.empty((n.size, 9, 9)))
        for j in range(n.shape[0]):
            seen.add((r, c + j))
            count, total, second = _brute(x, valid, inner, outer, r, c + j)
            assert n[j] == pytest.approx(count, abs=1e-9)
            if count == 0:
                continue
            np.testing.assert_allclose(mean[j], total / count, rtol=1e-10, atol=1e-10)
            got = np.tril(moments[j, :7, :7])
            np.testing.assert_allclose(got, np.tril(second / count), rtol=1e-10, atol=1e-10)
            trace = stats.trace(sums, [j], n[j : j + 1])
            np.testing.assert_allclose(trace, np.trace(second) / count, rtol=1e-10)
            np.testing.assert_allclose(moments[j, 7, :7], total / count, rtol=1e-10,
                                       atol=1e-10)
            assert moments[j, 7, 7] == 1.0
    rows, cols = x.shape[:2]
    assert seen == {(r, c) for r in range(h, rows - h) for c in range(h, cols - h)}
