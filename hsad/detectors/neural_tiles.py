"""The tile loop of the neural detectors: the network run over the scene's windows (with
their patch halo), in batches, on the CPU or CUDA, giving the residual |x − x̂|, the score
terms, or a reduction of them per batch. :class:`NetworkTiles` is mixed into
:class:`hsad.detectors.neural.NeuralDetector`."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from hsad.cube import good_band_mask, good_bands_of
from hsad.engine import call_model, infer_batches, model_node
from hsad.engine.inference import CUDA_BATCH
from hsad.errors import ModelError
from hsad.nn.noise import PixelNoise
from hsad.nn.sampling import read_window, window_inputs

#: Pixels per inference batch on the CPU (on CUDA: :data:`hsad.engine.inference.CUDA_BATCH`).
INFER_BATCH = 8192


class NetworkTiles:
    """The network over the scene's windows (methods of every neural detector)."""

    def _checked(self, scores: torch.Tensor, rows: int) -> torch.Tensor:
        """``_score``'s output, refused unless it holds one row per input and one column
        per score term (a plugin's wrong shape would otherwise fill or break the map)."""
        expected = (rows, len(self.score_terms))
        if tuple(scores.shape) != expected:
            raise ModelError(f"{self.name}: _score returned shape {tuple(scores.shape)} for "
                             f"{rows} inputs; expected {expected}, one column per score "
                             f"term ({', '.join(self.score_terms)})")
        return scores

    def _tile(self, block: np.ndarray, pads, nodata, origin: tuple[int, int], width: int,
              residual: bool, terms: bool = True, reduce=None) -> np.ndarray:
        """``(rows, cols, C)`` outputs of one window (``block`` includes the halo): the
        residual |x − x̂| (``n_bands_`` channels, when ``residual``), then the score terms
        (when ``terms``; a residual that reuses the score computes them without returning
        them). ``reduce``: ``(C, func)``, ``func`` mapping each batch's outputs to ``C``
        channels (e.g. D_spectral of the residual: the window's residual is then never
        whole in memory)."""
        inputs, ok, (rows, cols) = window_inputs(block, pads, nodata, self.patch_size)
        score_terms = self._terms_computed(residual, terms)
        channels = self._channels(residual, terms, reduce)
        if not ok.any():
            return np.full((rows, cols, channels), np.nan, dtype=np.float32)
        keys = np.add.outer((origin[0] + np.arange(rows)) * width,
                            origin[1] + np.arange(cols)).ravel()[ok]
        half = self.patch_size // 2

        def forward(x: torch.Tensor, batch_keys: np.ndarray) -> torch.Tensor:
            # the score first: a reconstruction that comes out of the score (AnoGAN's
            # G(z*) from its pixel-keyed latent search) can reuse it
            scored = self._checked(self._score(x, PixelNoise(int(self.seed), batch_keys,
                                                             x.device)), len(x)
                                   ) if score_terms else None
            out = [scored] if terms else []
            if residual:  # |x − x̂| of the (normalised) centre pixel
                centre = x if x.ndim == 2 else x[:, :, half, half]
                out.insert(0, torch.abs(centre - self._reconstruct(x)))
            return torch.cat(out, dim=1) if len(out) > 1 else out[0]

        values = infer_batches(forward, inputs, prepare=self._prepare,
                               on_device=self._normalise,
                               batch=CUDA_BATCH if self.device_.type == "cuda" else INFER_BATCH,
                               device=self.device_, keys=keys,
                               grad=self.score_needs_grad and bool(score_terms),
                               reduce=reduce and reduce[1])
        if not np.isfinite(values).all():
            why = ("(a damaged or foreign model file?)" if getattr(self, "model_format_", None)
                   is not None else "(training diverged, or its _score is not finite)")
            raise ModelError(f"{self.name}: the network's outputs are not finite on pixels "
                             f"with data: its weights or normalisation are out of range {why}")
        if ok.all():
            return values.reshape(rows, cols, channels)
        out = np.full((rows * cols, channels), np.nan, dtype=np.float32)
        out[ok] = values
        return out.reshape(rows, cols, channels)

    def _terms_computed(self, residual: bool, terms: bool) -> tuple[str, ...]:
        """The score terms a window computes: all when ``terms``, or when the residual
        reuses the score (``residual_uses_score``); none otherwise."""
        wanted = terms or (residual and self.residual_uses_score)
        return self.score_terms if wanted else ()

    def _channels(self, residual: bool, terms: bool, reduce=None) -> int:
        """Channels of :meth:`_tile`'s outputs."""
        if reduce:
            return reduce[0]
        return (self.n_bands_ if residual else 0) + (len(self.score_terms) if terms else 0)

    def _per_pixel(self, cube: xr.DataArray, residual: bool = False,
                   terms: bool = True, also=None, reduce=None):
        """Lazy ``(y, x, C)`` float32 outputs of :meth:`_tile` (``reduce`` as there),
        chunked like ``cube``.

        ``also``: ``(channels, func)``; then the pair of that and the lazy ``(y, x,
        channels)`` float64 ``func(window)`` of each window's own pixels (good bands, as
        read), computed from the network's read of the window (one read of the cube)."""
        data, bands = cube.data, good_band_mask(cube)
        nodata = cube.attrs.get("nodata")
        channels = self._channels(residual, terms, reduce)
        ybounds = np.concatenate([[0], np.cumsum(data.chunks[0])])
        xbounds = np.concatenate([[0], np.cumsum(data.chunks[1])])
        model = model_node(self)  # one graph key: sent to each dask worker once
        specs = [(channels, np.float32)] + ([(also[0], np.float64)] if also else [])
        grids = [[] for _ in specs]
        for y0, y1 in zip(ybounds[:-1], ybounds[1:], strict=True):
            rows = [[] for _ in specs]
            for x0, x1 in zip(xbounds[:-1], xbounds[1:], strict=True):
                task = self._window_task(model, data, bands,
                                         (int(y0), int(y1), int(x0), int(x1)), nodata, residual,
                                         terms, also=also and also[1], reduce=reduce)
                outputs = [task[i] for i in range(len(specs))] if also else [task]
                for row, out, (n, dtype) in zip(rows, outputs, specs, strict=True):
                    row.append([da.from_delayed(out, shape=(y1 - y0, x1 - x0, n), dtype=dtype)])
            for grid, row in zip(grids, rows, strict=True):
                grid.append(row)  # [[[…]]]: join y, x, C
        blocks = [da.block(grid) for grid in grids]
        return tuple(blocks) if also else blocks[0]

    def _window_task(self, model, data: da.Array, bands: np.ndarray,
                     bounds: tuple[int, int, int, int], nodata, residual: bool,
                     terms: bool = True, also=None, reduce=None):
        """Delayed :meth:`_tile` of rows ``y0:y1``, columns ``x0:x1`` of the cube's ``data``
        (read with its patch halo), good ``bands`` only, on ``model``
        (:func:`hsad.engine.model_node`). ``also``: a function of the window's own pixels,
        returned with the outputs (a delayed pair).

        The window is cut before the bands are selected (see :func:`good_bands_of`).
        """
        y0, y1, x0, x1 = bounds
        halo = self.patch_size // 2
        lazy, pads = read_window(data, y0, y1, x0, x1, halo)
        lazy = good_bands_of(lazy, bands)
        args = (lazy, pads, nodata, (y0, x0), data.shape[1], residual, terms, reduce)
        if also is None:
            return dask.delayed(call_model)(model, "_tile", *args)
        return dask.delayed(_tile_and_also, nout=2)(model, also, halo, *args)


def _tile_and_also(model, also, halo: int, block, pads, *args):
    """``model._tile(block, pads, *args)`` and ``also`` of the window's own pixels (the
    block without its halo rows and columns)."""
    out = model._tile(block, pads, *args)
    top, left = halo - pads[0][0], halo - pads[1][0]
    rows, cols = out.shape[:2]
    return out, also(block[top:top + rows, left:left + cols])
