"""Collaborative-representation detector (CRD; Li & Du, IEEE TGRS 53(3), 2015).

Each pixel y (B bands) is represented by the n pixels x_k of its ring (``outer`` window minus
the ``inner`` guard window, clipped at the image edge, nodata left out), the columns of X_s:

    Γ = diag(‖y − x_1‖₂, …, ‖y − x_n‖₂)
    w = (X_sᵀ X_s + λ ΓᵀΓ)⁻¹ X_sᵀ y,        CRD(y) = ‖y − X_s w‖₂

Both X_sᵀX_s and ΓᵀΓ scale with the square of the data, so λ is scale-free and the data are
used as they are (no normalisation). Since D = λΓᵀΓ is diagonal, the residual is
y − X_s w = (I + X_s D⁻¹X_sᵀ)⁻¹ y: one B×B system per pixel instead of n×n, all pixels of a
row solved together. With ``pca=k`` the pixels are
first projected on the k leading principal directions of the scene covariance (x ↦ Vₖᵀx,
not centred, so the representation still sees the pixels' offset), which makes B = k.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad.cube import map_like
from hsad.detectors.base import BaseDetector
from hsad.detectors.crd_rows import crd_block
from hsad.engine.covariance import check_scales
from hsad.engine.data_checks import scene_moments
from hsad.engine.windows import (
    check_dtype,
    check_nonnegative,
    check_pca,
    check_rings,
    check_windows,
    map_windows,
    nan_filled,
    projected,
)
from hsad.errors import DegenerateDataWarning

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


class CRD(BaseDetector):
    """Collaborative-representation anomaly detector (Li & Du 2015).

    Defaults (5, 15), ``pca=20``, ``lam=0.1`` were chosen by leave-one-scene-out over the 10
    benchmark scenes (``benchmarks/loo_local_defaults.py``, docs/detectors.md).

    Parameters
    ----------
    inner, outer : odd widths in pixels of the guard and outer windows (inner < outer ≤ 2001).
    lam : the regularisation λ of the distance-weighted Tikhonov term.
    pca : number of leading principal directions to project the pixels on first
        (None = all good bands; all of them when the scene has fewer good bands).
    dtype : dtype of the returned map; Gram matrices and solves always run in float64.
    """

    #: read when scoring (``pca`` shapes the fitted projection: fit again after it)
    score_params = frozenset({"inner", "outer", "lam", "dtype"})

    name = "crd"
    summary = "Collaborative representation detector: residual of each pixel from its ring"

    def __init__(self, inner: int = 5, outer: int = 15, lam: float = 0.1,
                 pca: int | None = 20, dtype="float32"):
        self.inner = inner
        self.outer = outer
        self.lam = lam
        self.pca = pca
        self.dtype = dtype

    def check_params(self) -> CRD:
        super().check_params()
        self._validate()
        return self

    def _validate(self) -> tuple[int, int]:
        inner, outer = check_windows(self.name, self.inner, self.outer)
        check_nonnegative(self.name, "lam", self.lam, positive=True)
        check_dtype(self.name, self.dtype)
        check_pca(self.name, self.pca)
        return inner, outer

    def fit(self, cube: CubeLike) -> Self:
        """Validate the hyperparameters, record the band layout and check, in one pass over
        the scene, that it holds distinct valid pixels (CRD learns nothing else)."""
        self._remember_bands(cube)  # its bands and wavelengths, checked at score
        self._validate()
        path = cube.attrs.get("source_path")
        moments = scene_moments(cube, self.name)  # no data, or every pixel alike: refused
        check_scales(np.diag(moments.cov), self.name, path)  # PCA leaves them out too
        if self.pca is None:
            self.components_ = None
        else:
            lam, vec = np.linalg.eigh(moments.cov)
            k = min(int(self.pca), lam.size)
            self.components_ = vec[:, ::-1][:, :k]
            self.explained_variance_ = lam[::-1][:k]
        spread = np.trace(moments.cov)
        if moments.mean @ moments.mean > 1e10 * spread:
            warnings.warn(f"{self.name}: the data sit on an offset 1e5 times their spread "
                          "(σ): the Gram matrices of raw pixels cannot resolve them in float64; "
                          "subtract a constant offset first", DegenerateDataWarning, stacklevel=2)
        check_rings(cube, self.inner, self.outer, self.name)
        return self

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map of CRD residual norms, NaN on nodata pixels."""
        self._check_fitted("bands_")
        self._check_layout(cube)
        inner, outer = self._validate()
        if self.components_ is None:
            data = nan_filled(cube, self.bands_)
        else:  # uncentred, as the components were fitted
            basis = self.components_
            data = projected(cube, self.bands_, np.zeros(basis.shape[0]), basis)
        scores = map_windows(
            data,
            crd_block,
            outer // 2,
            dtype=check_dtype(self.name, self.dtype),
            inner=inner,
            outer=outer,
            lam=float(self.lam),
        )
        dim = int(self.bands_.sum()) if self.components_ is None else self.components_.shape[1]
        return map_like(cube, scores, name="score",
                        attrs={"method": self.name, "hsad_dimension": dim})
