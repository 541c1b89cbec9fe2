"""Local-mean RX (ENVI's *local mean* option): global covariance, mean of a k×k kernel.

    LMRX(r) = (r − m_k(r))ᵀ K⁻¹ (r − m_k(r))

m_k(r) is the mean of the valid pixels of the ``kernel`` × ``kernel`` window centred on r
(the pixel included, clipped at the image edge), a box filter; K and its pseudo-inverse are
global RX's (streamed over the valid pixels or the background area). Scoring runs on halo
tiles (``kernel // 2`` pixels of context from the neighbours, none beyond the image edge), so
tiled and whole-scene maps are equal to rounding (docs/classic_detectors.md: the box
sums restart at each tile) and scenes larger than RAM stream.

Reference: ENVI *RX Anomaly Detection* (Mean Source: local, Kernel Size); I. S. Reed and
X. Yu, IEEE TASSP 38(10), 1990 (RX with a local mean).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage

from hsad.cube import map_like
from hsad.detectors.rx import GlobalRX, rx_block
from hsad.engine import map_halo
from hsad.engine.blas import working_scale
from hsad.engine.stats import valid_rows
from hsad.engine.windows import MAX_WINDOW, check_dtype, single_threaded_linalg
from hsad.errors import ParameterError

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


def local_mean_block(block: np.ndarray, mean: np.ndarray, tri: np.ndarray, kernel: int,
                     nodata: float | None = None, scale: float = 1.0) -> np.ndarray:
    """Local-mean RX of a ``(rows, cols, B)`` block of raw data, its halo included.

    Data are centred on the global mean (in float64 when the input needs it) and cast to the
    working dtype (``tri``'s); box means come from ``ndimage.uniform_filter`` (float64
    running sums), zeros standing in for off-data pixels, divided by the box's share of
    valid pixels. Off-data pixels (non-finite, a band at ``nodata``) score NaN. ``scale``
    (:func:`hsad.engine.blas.working_scale`): ``tri`` is ``R / scale`` and the centred
    values are multiplied by ``scale`` in float64 before the cast, as in ``rx_block``.
    """
    dtype = tri.dtype
    ok = valid_rows(block, nodata)
    valid = np.ones(block.shape[:2], bool) if ok is None else ok.reshape(block.shape[:2])
    if scale != 1.0:  # data near float32's extremes: centred and scaled in float64
        centred = np.multiply(np.subtract(block, np.asarray(mean, np.float64)), scale)
    else:
        centred = np.subtract(block, np.asarray(mean, np.result_type(block.dtype, dtype)))
    centred = centred.astype(dtype, copy=False)
    centred[~valid] = 0
    with single_threaded_linalg():  # float64 box sums: the same means whatever the tile
        sums = ndimage.uniform_filter(centred, size=(kernel, kernel, 1), mode="constant",
                                      cval=0.0, output=np.float64)
        share = ndimage.uniform_filter(valid.astype(np.float64), size=kernel,
                                       mode="constant", cval=0.0)
        # a pixel with data has share ≥ 1/k²; the tiny shares (rounding) are pixels without
        # data, whose overflowing means are replaced by NaN below
        with np.errstate(over="ignore", invalid="ignore"):
            np.divide(sums, np.maximum(share, 1e-300)[..., None], out=sums)
            np.subtract(centred, sums, out=centred, casting="unsafe")
    centred[~valid] = np.nan
    return rx_block(centred, np.zeros(block.shape[-1], dtype), tri)


class LocalMeanRX(GlobalRX):
    """RX against a local k×k mean with the global covariance.

    Parameters
    ----------
    kernel : odd kernel width in pixels (the mean's window, the pixel included).
    ridge, dtype : as ``rx``.
    """

    #: read when scoring (the local mean's kernel, the precision's type)
    score_params = frozenset({"kernel", "dtype"})

    name = "local-mean-rx"
    summary = ("Local-mean RX: global covariance, k x k box-filter mean (ENVI local mean; "
               "Reed-Yu 1990)")

    def __init__(self, kernel: int = 31, ridge: float = 0.0, dtype: str = "float32"):
        self.kernel = kernel
        self.ridge = ridge
        self.dtype = dtype

    def check_params(self) -> LocalMeanRX:
        """Global RX's checks, and the kernel's."""
        super().check_params()
        self._kernel()
        return self

    def _kernel(self) -> int:
        k = self.kernel
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 3 or k % 2 == 0 \
                or k > MAX_WINDOW:
            raise ParameterError(f"{self.name}: kernel must be an odd integer from 3 to "
                                 f"{MAX_WINDOW}, got {k!r}")
        return int(k)

    def fit(self, cube: CubeLike, background=None) -> Self:
        """Global RX's statistics (inside ``background`` when given)."""
        self._kernel()
        return super().fit(cube, background=background)

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map on halo tiles, NaN on nodata pixels."""
        data = self._fitted_bands(cube, "triangular_")
        k = self._kernel()
        dtype = check_dtype(self.name, self.dtype)
        scale = working_scale(self.triangular_)  # 1 for data on any ordinary scale
        tri = np.asfortranarray(self.triangular_ / scale, dtype=dtype)
        scores = map_halo(local_mean_block, data, k // 2, dtype=dtype, drop_axis=2,
                          mean=self.mean_, tri=tri, kernel=k, nodata=cube.attrs.get("nodata"),
                          scale=scale)
        if isinstance(cube.data, da.Array):  # tiles below the halo were merged: the cube's
            scores = scores.rechunk(cube.data.chunks[:2])
        return map_like(cube, scores, name="score", attrs={"method": self.name})

    def null_threshold(self, far: float) -> float | None:
        return None

