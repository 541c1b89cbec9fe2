"""The fusion stage's global statistics estimated from a stratified sample of rows (the
mixin :class:`SampledStatistics`, part of
:class:`~hsad.detectors.reconstruction.ReconstructionDetector`): the network runs on the
sampled rows only, so that scoring a scene runs it once over the scene."""

from __future__ import annotations

from functools import partial

import dask
import dask.array as da
import dask.local
import numpy as np
import xarray as xr

from hsad.cube import float32_or_nan, good_band_mask, good_bands_of
from hsad.detectors.neural_tiles import _tile_and_also
from hsad.engine import model_node
from hsad.engine.stats import Moments, block_moments
from hsad.errors import ParameterError
from hsad.fusion.tiled import Statistics
from hsad.nn.sampling import read_window, stratified_rows

#: Sampled statistics need at least this many valid pixels per band (else: exact ones).
MIN_PIXELS_PER_BAND = 10
#: Sampled rows run through the network together (bounds the sample's memory).
SAMPLE_ROWS_AT_ONCE = 16


class SampledStatistics:
    """``stats_sample``: the residual's and the principal components' moments, sampled."""

    def _check_stats_sample(self) -> int:
        n = self.stats_sample
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ParameterError(f"{self.name}: stats_sample must be an integer ≥ 0 (pixels; "
                                 f"0 = exact statistics), got {n!r}")
        return int(n)

    def fusion_statistics(self, cube: xr.DataArray) -> Statistics | None:
        """The fusion stage's global statistics from a stratified sample of rows holding
        about ``stats_sample`` pixels (:func:`hsad.nn.sampling.stratified_rows`), or None
        when the scene is not larger than that, or the sample holds fewer than
        ``MIN_PIXELS_PER_BAND`` valid pixels per band: then they are computed exactly.

        The network runs on the sampled rows only (each with its patch halo, at its scene
        position, so its residual there is the scene's). With these, scoring a scene runs
        the network once over it, whatever the memory budget.
        """
        height, width = cube.shape[:2]
        rows = stratified_rows(height, width, self._check_stats_sample(), int(self.seed))
        if rows is None:
            return None
        data, good = cube.data, good_band_mask(cube)
        model = model_node(self)
        res_m = src_m = Moments(0, np.zeros(self.n_bands_), np.zeros((self.n_bands_,) * 2))
        for group in np.array_split(rows, -(-len(rows) // SAMPLE_ROWS_AT_ONCE)):
            # one task per row, run in parallel: each reads its row alone (rows of one chunk
            # read in one compute would each read the whole chunk), runs the network on it
            # and returns the row's moments
            tasks = [dask.delayed(_sample_row_moments)(
                model, _Unread(*read_window(data, r, r + 1, 0, width, self.patch_size // 2)),
                good, cube.attrs.get("nodata"), (r, width), self.pc_source == "residual")
                for r in group.tolist()]
            for res, src in dask.compute(*tasks):
                res_m, src_m = res_m.merge(res), src_m.merge(src)
        b = self.n_bands_
        if res_m.n < MIN_PIXELS_PER_BAND * b or src_m.n < MIN_PIXELS_PER_BAND * b:
            return None
        return Statistics(residual=(res_m.mean, res_m.cov), source=(src_m.mean, src_m.cov),
                          energy=res_m.n * res_m.mean)


class _Unread:
    """A lazy window handed to a task unread (dask would read it as a dependency of the
    task otherwise): the task reads it itself, alone."""

    def __init__(self, lazy: da.Array, pads):
        self.lazy, self.pads = lazy, pads


def _sample_row_moments(model, window: _Unread, good: np.ndarray, nodata,
                        row_width: tuple[int, int],
                        pc_from_residual: bool) -> tuple[Moments, Moments]:
    """Moments of one sampled row's residual and of the principal components' source (the
    row's good bands, or the residual): the row is read once, with its patch halo."""
    block = good_bands_of(window.lazy.compute(scheduler=dask.local.get_sync), good)
    row, width = row_width
    out, bands = _tile_and_also(model, partial(float32_or_nan, nodata=nodata),
                                model.patch_size // 2, block, window.pads, nodata, (row, 0),
                                width, True, False)
    res = block_moments(out[:, :, :model.n_bands_], screen=True)
    return res, res if pc_from_residual else block_moments(bands, screen=True)
