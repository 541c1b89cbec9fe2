"""Tiles of a file whose blocks hold more pixels than the memory budget's tile.

GDAL decodes a compressed block whole for any window in it. A COG as ``gdal_translate -of
COG`` writes it keeps 512² blocks; with 60 float32 bands under the default 1 GiB budget
the tile is 448², so a tile read every block it touched whole: each block was decoded
four times a pass (RX of a 1024² × 60 file: 5.9 s of scoring, 2.7 s with 512² tiles).

:func:`block_split` plans the other way round: each block is read once, whole (one dask
task), and cut into equal tiles that the detectors work on. The budget then holds, for
each task running at once, one block's raw pixels beside its tile. :func:`plan_tiles` gives
every GeoTIFF's tiles of ``open_tiled``: whole blocks, or blocks cut so, also for a window of
the file (``--srcwin``, ``--projwin``), whose first blocks are partial.
"""

from __future__ import annotations

import math

import numpy as np

from hsad.engine.scheduler import concurrency, parse_memory


def _edges(size: int, block: int, phase: int = 0) -> list[int]:
    """Where blocks begin along an axis of ``size`` pixels whose blocks begin at ``phase``
    (modulo ``block``; a window's first block is partial), with 0 and ``size``."""
    return [0, *range(phase % block or block, size, block), size]


def _pieces(size: int, block: int, parts: int, phase: int = 0) -> tuple[int, ...]:
    """Chunk sizes along an axis of ``size`` pixels stored in ``block``-pixel blocks (from
    ``phase``), each block cut into ``parts`` near-equal pieces; a partial block (a
    window's first or last, the scene's last) into as few as pieces of that size allow,
    not into slivers."""
    edges = _edges(size, block, phase)
    longest = -(-block // parts)
    sizes: list[int] = []
    for start, stop in zip(edges, edges[1:], strict=False):
        n = stop - start
        k = -(-n // longest)
        q, r = divmod(n, k)
        sizes += [q + 1] * r + [q] * (k - r)
    return tuple(sizes)


def _grouped(size: int, block: int, per: int, phase: int = 0) -> tuple[int, ...]:
    """Chunk sizes along an axis of ``size`` pixels of ``per`` whole blocks each (from
    ``phase``)."""
    edges = _edges(size, block, phase)
    cuts = edges[::per] + ([size] if (len(edges) - 1) % per else [])
    return tuple(b - a for a, b in zip(cuts, cuts[1:], strict=False))


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
                pixel_bytes: int, smallest: int = 32, phase: tuple[int, int] = (0, 0)):
    """``((read rows…), (read cols…))`` and the tiles' dask chunks for a ``(y, x, band)`` scene of
    ``dtype`` stored in ``blocks`` (rows, cols; the first beginning at ``phase``) when a
    block holds more pixels than ``tile`` (the budget's,
    :func:`hsad.engine.tiles.chunks_for`): reads of whole blocks, and tiles that cut each
    block into near-equal pieces of ``pixel_bytes`` a pixel within what the budget leaves
    each of the ``workers`` tasks beside one block's raw pixels (at least ``smallest``
    pixels square). Where that leaves no room, the pieces are no larger than ``tile``, and
    the blocks being read take more than the budget: GDAL decodes a block whole, with
    about three times its bytes, for any window of it, so tiles smaller than a block took
    more (and decoded each block once a tile: 51 s against 8 s for RX of a 1024² × 70
    COG under a 140 MB budget). None where the block is no larger than ``tile``."""
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
    if cuts is None:  # no room beside a block: the budget's own tiles, cut from blocks
        cuts = _cuts(bh, bw, tile[0] * tile[1], min(smallest, *tile))
    if cuts is None:
        return None
    (pr, pc), (fh, fw) = phase, (int(blocks[0]), int(blocks[1]))
    read = (_pieces(rows, fh, 1, pr), _pieces(cols, fw, 1, pc))
    return read, (_pieces(rows, fh, cuts[0], pr), _pieces(cols, fw, cuts[1], pc), (bands,))


def plan_tiles(cube, shape: tuple[int, ...], tile: tuple[int, int], window=None,
               memory_limit: str | int | None = None, *, workers: int | None = None,
               pixel_bytes: int):
    """How ``open_tiled`` opens a GeoTIFF ``cube`` (its ``window``, of ``shape``, or the
    whole scene) under the budget's ``tile``: ``(read, tiles)``, the chunks to open it
    with (``(rows, cols)``, or their sizes) and the dask chunks to cut those into (None:
    kept). Blocks larger than the tile are read whole and cut (:func:`block_split`);
    otherwise tiles are made of whole blocks (:func:`hsad.io.geotiff.block_chunks`), in a
    window too, its first blocks partial. None where the file has no block shape."""
    from hsad.io.geotiff import block_chunks

    blocks = cube.attrs.get("block_shape")
    if not blocks:
        return None
    phase = (0, 0) if window is None else (-window.row_off % int(blocks[0]),
                                           -window.col_off % int(blocks[1]))
    split = block_split(shape, cube.dtype, blocks, tile, memory_limit, workers=workers,
                        pixel_bytes=pixel_bytes, phase=phase)
    if split is not None:
        return split
    cy, cx = block_chunks(*tile, blocks, shape[:2])
    if phase == (0, 0):
        return (cy, cx), None
    sizes = []
    for size, block, edge, shift in zip(shape[:2], blocks, (cy, cx), phase, strict=True):
        size, block = int(size), int(block)
        if edge >= size:
            sizes.append((size,))
        elif edge % block == 0:  # whole blocks, the window's first one partial
            sizes.append(_grouped(size, block, edge // block, shift))
        else:  # no block fits a tile: tiles as the budget gives them
            sizes.append((edge,) * (size // edge) + ((size % edge,) if size % edge else ()))
    return tuple(sizes), None


def split_cube(cube, tiles):
    """``cube`` (its dask chunks whole blocks) cut into ``tiles`` (dask chunk sizes that
    refine them), its source kept for reads of small windows
    (:func:`hsad.cube.keep_source`)."""
    from hsad.cube import keep_source, source_of

    held = source_of(cube.data)
    data = cube.data.rechunk(tiles)
    return cube.copy(data=keep_source(data, held) if held is not None else data)


__all__ = ["block_split", "plan_tiles", "split_cube"]
