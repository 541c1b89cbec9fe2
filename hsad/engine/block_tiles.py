"""Tiles of a file whose blocks hold more pixels than the memory budget's tile.

GDAL decodes a compressed block whole for any window in it. A COG as ``gdal_translate -of
COG`` writes it keeps 512² blocks; with 60 float32 bands under the default 1 GiB budget
the tile is 448², so a tile read every block it touched whole: each block was decoded
four times a pass (RX of a 1024² × 60 file: 5.9 s of scoring, 2.7 s with 512² tiles).

:func:`block_split` plans the other way round: each block is read once, whole (one dask
task), and cut into equal tiles that the detectors work on. The budget then holds, for
each task running at once, one block's raw pixels beside its tile.
"""

from __future__ import annotations

import math

import numpy as np

from hsad.engine.scheduler import concurrency, parse_memory


def _pieces(size: int, block: int, parts: int) -> tuple[int, ...]:
    """Chunk sizes along an axis of ``size`` pixels stored in ``block``-pixel blocks, each
    block cut into ``parts`` near-equal pieces (fewer for a short last block)."""
    sizes: list[int] = []
    for start in range(0, size, block):
        n = min(block, size - start)
        k = min(parts, n)
        q, r = divmod(n, k)
        sizes += [q + 1] * r + [q] * (k - r)
    return tuple(sizes)


def _cuts(bh: int, bw: int, pixels: int, smallest: int) -> tuple[int, int] | None:
    """The fewest (down, across) cuts of a ``bh × bw`` block into pieces of at most
    ``pixels`` pixels, no edge under ``smallest`` (or the block's own); the squarer on a
    tie, then the one that keeps rows whole. None when no cut holds."""
    best = None
    for down in range(1, bh + 1):
        h = -(-bh // down)
        if h < min(smallest, bh):
            break
        if pixels // h < 1:
            continue
        across = -(-bw // (pixels // h))
        w = -(-bw // across)
        if w < min(smallest, bw):
            continue
        key = (down * across, abs(math.log(h / w)), across)  # rows whole: contiguous
        if best is None or key < best[0]:
            best = (key, (down, across))
    return None if best is None else best[1]


def block_split(shape: tuple[int, ...], dtype, blocks, tile: tuple[int, int],
                memory_limit: str | int | None = None, *, workers: int | None = None,
                pixel_bytes: int, smallest: int = 32):
    """``((block rows, cols), tile chunks)`` for a ``(y, x, band)`` scene of ``dtype`` stored in
    ``blocks`` (rows, cols) when a block holds more pixels than ``tile`` (the budget's,
    :func:`hsad.engine.tiles.chunks_for`): reads of whole blocks, and tiles that cut each
    block into near-equal pieces of ``pixel_bytes`` a pixel within what the budget leaves
    each of the ``workers`` tasks beside one block's raw pixels. None where the block is
    no larger than ``tile``, or one block with a tile of ``smallest`` pixels square does
    not fit."""
    if not blocks:
        return None
    rows, cols = int(shape[0]), int(shape[1])
    bands = int(shape[2]) if len(shape) > 2 else 1
    bh, bw = min(int(blocks[0]), rows), min(int(blocks[1]), cols)
    if bh * bw <= tile[0] * tile[1]:
        return None
    tasks = max(1, int(workers) if workers else concurrency())
    left = parse_memory(memory_limit) / tasks - bh * bw * bands * np.dtype(dtype).itemsize
    cuts = _cuts(bh, bw, int(left // pixel_bytes), smallest) if left > 0 else None
    if cuts is None:
        return None
    return (bh, bw), (_pieces(rows, bh, cuts[0]), _pieces(cols, bw, cuts[1]), (bands,))


def split_cube(cube, tiles):
    """``cube`` (its dask chunks whole blocks) cut into ``tiles`` (dask chunk sizes that
    refine them), its source kept for reads of small windows
    (:func:`hsad.cube.keep_source`)."""
    from hsad.cube import keep_source, source_of

    held = source_of(cube.data)
    data = cube.data.rechunk(tiles)
    return cube.copy(data=keep_source(data, held) if held is not None else data)


__all__ = ["block_split", "split_cube"]
