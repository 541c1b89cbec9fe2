"""Ring statistics of every pixel (local RX): pixel count, mean and second moments of its ring.

A pixel's ring is its ``outer`` window minus its ``inner`` guard window. Summed over a ring,
the per-pixel features ``[valid, x (B), x xᵀ]`` give n, Σx and Σxxᵀ. The sums are kept as
running ring sums, one per output pixel of the current row: moving down one row adds the
horizontal box sums of the rows that enter the outer window or leave the inner one, and
subtracts those of the rows that leave the outer window or enter the inner one.

The products x xᵀ are laid out by *band blocks*: block ``[i0, i1)`` holds the rectangle
``x[i0:i1] ⊗ x[:i1]``, i.e. rows i0…i1−1 of the lower triangle plus a few entries above the
diagonal (unused). Each block goes through the whole row update (products of the entering
and leaving rows as one rank-2 product, their cumulative sums along the row, box sums,
update of the running sums) while its buffers are in cache: the per-pixel features (151 kB
per pixel at 193 bands) are never written to memory, only the running sums are.

The statistics come out as the *bordered second moment* ``G = [[S/n, μ], [μᵀ, 1]]`` (S = Σxxᵀ
over the ring), made a few pixels at a time (:meth:`RingStatistics.moments`); its Schur
complement S/n − μμᵀ is the ring covariance Σ. For a pixel y,
``[y; 1]ᵀ G⁻¹ [y; 1] = 1 + (y − μ)ᵀ Σ⁻¹ (y − μ)``, so a Mahalanobis distance needs G only and
Σ is never formed (it would cost one more pass over B² values per pixel).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: bytes of one band block's products over a strip (its cumulative sums, box sums): a
#: block is as wide as keeps them in cache (4 096 products a pixel for 128-pixel strips)
BLOCK_BYTES = 4 * 2**20
#: a block may be a square of up to this many products (the first bands); later blocks
#: are at most half as tall as wide, which keeps the unused entries near 10 %
SMALL_BLOCK = 256
#: rows summed in one product when the windows fill at a strip's first output row
FILL_ROWS = 8
#: cumulative sums along a strip: ``np.cumsum`` (one call, but a sequential loop) up to
#: this many features, two-level vectorised adds above it (see ``_prefix_sums``)
CUMSUM_FEATURES = 64


def band_blocks(bands: int, products: int | None = None) -> list[tuple[int, int, int, int]]:
    """``(i0, i1, o0, o1)`` per block: bands i0…i1−1, their products at features o0…o1−1
    (features 0…B are the validity and the values).

    Blocks hold at most ``products`` (default: what :data:`BLOCK_BYTES` allows a 128-pixel
    strip) products per pixel, at least one band, and are at most half as tall as wide
    unless they hold no more than :data:`SMALL_BLOCK` products.
    """
    products = BLOCK_BYTES // (8 * 128) if products is None else products
    blocks, i0, o0 = [], 0, 1 + bands
    while i0 < bands:
        i1 = i0 + 1
        while i1 < bands:
            tall, wide = i1 + 1 - i0, i1 + 1
            size = tall * wide
            if size > products or (size > SMALL_BLOCK and 2 * tall > wide):
                break
            i1 += 1
        o1 = o0 + (i1 - i0) * i1
        blocks.append((i0, i1, o0, o1))
        i0, o0 = i1, o1
    return blocks


class _Window:
    """One window (outer or inner) over a strip of ``width`` output pixels: what its rows
    add to the ring sums (``sign`` +1 for the outer window, −1 for the inner one)."""

    def __init__(self, size: int, first_col: int, width: int, sign: float, bands: int):
        self.size = size  # window width (and height) in pixels
        self.first_col = first_col  # first column its boxes reach
        self.cols = width + size - 1  # columns its boxes reach
        self.width = width
        self.apply = np.add if sign > 0 else np.subtract
        rows = max(2, min(size, FILL_ROWS))
        self.signed = np.empty((self.cols, rows, bands + 1))  # [valid, x], leaving rows negated
        self.plain = np.empty((self.cols, bands, rows))  # x of the rows, as columns


class RingStatistics:
    """Ring statistics of the core pixels of a padded float64 block, output row by row.

    ``x`` (rows, cols, B) is zero where ``valid`` (rows, cols; 0/1) is 0; a border of
    h = outer // 2 pixels is context only. Rows, or ends of rows, that hold no valid pixel
    add nothing and are skipped.
    """

    def __init__(self, x: np.ndarray, valid: np.ndarray, inner: int, outer: int,
                 products: int | None = None, max_bytes: int = 256 * 2**20):
        self.x, self.valid = x, valid
        self.rows, cols, self.bands = x.shape
        self.inner, self.outer = inner, outer
        h = outer // 2
        core = cols - 2 * h
        # strips as wide as max_bytes allows the running sums (one per feature and pixel,
        # counting the blocks' unused entries generously) and the windows' row buffers;
        # blocks as wide as BLOCK_BYTES allows for that strip
        per_column = (1 + self.bands + 5 * self.bands * (self.bands + 1) // 8 + SMALL_BLOCK
                      + 4 * FILL_ROWS * (self.bands + 1))
        self.width = max(1, min(core, max_bytes // (8 * per_column)))
        span = self.width + 2 * h
        products = max(1, BLOCK_BYTES // (8 * span)) if products is None else products
        self.blocks = [(0, 0, 0, 1 + self.bands)] + band_blocks(self.bands, products)
        self.k = self.blocks[-1][3]
        # feature of S_ii for each band i: in its block's rectangle, row i − i0, column i
        self._diagonal = np.array([o0 + (i - i0) * i1 + i for i0, i1, o0, _ in self.blocks[1:]
                                   for i in range(i0, i1)], dtype=np.intp)
        live = valid > 0
        any_ = live.any(axis=1)
        self._lo = np.where(any_, live.argmax(axis=1), cols)
        self._hi = np.where(any_, cols - live[:, ::-1].argmax(axis=1), 0)
        self._core = core
        widest = max(o1 - o0 for _, _, o0, o1 in self.blocks)
        # cumulative sums, with room for the two-level prefix's padding rows
        self._cum_rows = span + 2 + int(np.sqrt(span))
        self._cum = np.empty(self._cum_rows * widest)
        self._step = np.empty(self.width * widest)

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        """``(row, col, n, mean, sums)`` per core row and strip of core columns (positions in
        the padded block): ring pixel counts (w,), means (w, B) and the ring sums of every
        feature ((w, k), reused from row to row; :meth:`moments` turns pixels of it into
        bordered second moments)."""
        h, g = self.outer // 2, self.inner // 2
        for c0 in range(0, self._core, self.width):
            w = min(self.width, self._core - c0)
            outer = _Window(2 * h + 1, c0, w, 1.0, self.bands)
            inner = _Window(2 * g + 1, c0 + h - g, w, -1.0, self.bands)
            ring = np.zeros((w, self.k))  # running sums over each output pixel's ring
            for r in range(2 * h, self.rows):
                # output row r − h: outer rows r − 2h … r, inner rows r − h − g … r − h + g
                if r == 2 * h:  # the windows fill: their rows FILL_ROWS at a time
                    for win, rows in ((outer, range(0, 2 * h + 1)),
                                      (inner, range(h - g, h + g + 1))):
                        for i in range(0, len(rows), FILL_ROWS):
                            live = self._live(win, [(q, 1.0) for q in rows[i : i + FILL_ROWS]])
                            for block in self.blocks if live else ():
                                sums = ring[:, block[2] : block[3]]
                                win.apply(sums, self._box_step(win, live, block), out=sums)
                    moves = []
                else:  # a row enters and one leaves each window (buffers: one per window)
                    moves = [(win, live) for win, rows in
                             ((outer, [(r, 1.0), (r - 2 * h - 1, -1.0)]),
                              (inner, [(r - h + g, 1.0), (r - h - g - 1, -1.0)]))
                             if (live := self._live(win, rows))]
                for block in self.blocks:
                    sums = ring[:, block[2] : block[3]]
                    for win, live in moves:
                        win.apply(sums, self._box_step(win, live, block), out=sums)
                n = ring[:, 0].copy()
                with np.errstate(divide="ignore", invalid="ignore"):
                    mean = ring[:, 1 : 1 + self.bands] / n[:, None]
                yield r - h, c0 + h, n, mean, ring

    def trace(self, sums: np.ndarray, pixels, n: np.ndarray) -> np.ndarray:
        """tr(S/n) of ``sums[pixels]`` (S = Σ x xᵀ over each ring)."""
        return np.take(sums, self._diagonal, axis=1)[pixels].sum(axis=1) / n

    def moments(self, sums: np.ndarray, pixels, n: np.ndarray, mean: np.ndarray,
                out: np.ndarray) -> np.ndarray:
        """Bordered second moments G = [[S/n, μ], [μᵀ, 1]] of ``sums[pixels]`` (a slice or
        indices; their ``n`` and ``mean``) in the lower triangle of ``out[:, :B+1, :B+1]``
        (a few entries above the diagonal are written too and mean nothing)."""
        b = self.bands
        out[:, b, :b] = mean
        out[:, b, b] = 1.0
        for i0, i1, o0, o1 in self.blocks[1:]:
            np.divide(sums[pixels, o0:o1].reshape(-1, i1 - i0, i1), n[:, None, None],
                      out=out[:, i0:i1, :i1])
        return out

    def _live(self, win: _Window, rows: list[tuple[int, float]]) -> tuple | None:
        """Of the ``(row, sign)`` entering (+1) and leaving (−1) ``win``, those that hold
        valid pixels in the columns its boxes reach: ``(a, b, plain, signed)`` over their
        common valid extent ``a … b − 1`` (see ``_box_step``); or None."""
        c0, cols = win.first_col, win.cols
        rows = [(r, s) for r, s in rows
                if 0 <= r < self.rows and self._lo[r] < min(self._hi[r], c0 + cols)
                and self._hi[r] > c0]
        if not rows:
            return None
        a = max(c0, min(int(self._lo[r]) for r, _ in rows))
        b = min(c0 + cols, max(int(self._hi[r]) for r, _ in rows))
        signed, plain = win.signed[: b - a, : len(rows)], win.plain[: b - a, :, : len(rows)]
        for j, (r, s) in enumerate(rows):
            plain[:, :, j] = self.x[r, a:b]
            np.multiply(self.x[r, a:b], s, out=signed[:, j, 1:])
            np.multiply(self.valid[r, a:b], s, out=signed[:, j, 0])
        return a, b, plain, signed

    def _box_step(self, win: _Window, live: tuple, block: tuple[int, int, int, int]
                  ) -> np.ndarray:
        """What the rows in ``live`` add to ``win``'s box sums, ``(width, o1 − o0)``, for one
        block of features: their [valid, x] (first block), or Σ_rows ± x[i0:i1] ⊗ x[:i1]
        (one product per pixel, of rank the number of rows)."""
        a, b, plain, signed = live
        i0, i1, o0, o1 = block
        m, fw, many = b - a, o1 - o0, signed.shape[1] > 1
        lead = a - win.first_col
        cum = self._cum[: (win.cols + 1) * fw].reshape(win.cols + 1, fw)
        cum[: lead + 1] = 0.0
        delta = cum[lead + 1 : lead + 1 + m]  # the rows' features, summed in place below
        if i1 == 0:
            np.sum(signed, axis=1, out=delta)
        elif many:  # Σ_rows ± x[i0:i1] ⊗ x[:i1]: a rank-2 (or rank-FILL_ROWS) product
            np.matmul(plain[:, i0:i1], signed[:, :, 1 : 1 + i1],
                      out=delta.reshape(m, i1 - i0, i1))
        else:
            np.multiply(plain[:, i0:i1], signed[:, :, 1 : 1 + i1],
                        out=delta.reshape(m, i1 - i0, i1))
        # cumulative sums over the window's columns: zero before a, flat after b
        self._prefix_sums(lead + 1, m, fw)
        cum[lead + 1 + m :] = cum[lead + m]
        w = win.width
        step = self._step[: w * fw].reshape(w, fw)
        return np.subtract(cum[win.size : win.size + w], cum[:w], out=step)

    def _prefix_sums(self, start: int, m: int, fw: int) -> None:
        """Cumulative sums down rows ``start … start + m − 1`` of the ``(·, fw)`` cumulative
        buffer, in place. Narrow rows: ``np.cumsum``. Wide rows: in about 2·√m numpy calls
        instead of m (each call holds the GIL, which the other tile's thread waits for):
        sums within groups of g rows, one add per row position over all groups at once,
        then each group plus the previous group's total."""
        cum = self._cum[: self._cum_rows * fw].reshape(-1, fw)
        rows = cum[start : start + m]
        if fw <= CUMSUM_FEATURES:
            np.cumsum(rows, axis=0, out=rows)
            return
        g = max(1, int(np.sqrt(m)))
        q = -(-m // g)
        cum[start + m : start + q * g] = 0.0  # padding rows of the last group
        groups = cum[start : start + q * g].reshape(q, g, fw)
        for t in range(1, g):
            np.add(groups[:, t], groups[:, t - 1], out=groups[:, t])
        for i in range(1, q):
            np.add(groups[i], groups[i - 1, g - 1], out=groups[i])

