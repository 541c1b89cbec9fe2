"""UTD and RXD-UTD (Chang & Chiang 2002), with μ and K as global RX fits them.

    UTD(r)     = (1 − μ)ᵀ K⁻¹ (r − μ)
    RXD-UTD(r) = (r − 1)ᵀ K⁻¹ (r − μ) = RX(r) − UTD(r)

1 is the vector of ones (the "uniform target"), μ and K the mean and covariance (normalised
by N) streamed over the valid pixels (or the background area), K⁻¹ RX's pseudo-inverse. Both
are streamed tile by tile like RX: UTD is one dot product per pixel, RXD-UTD RX's triangular
product plus that dot product. UTD is a building block: on the benchmark scenes it scores
near chance (AUC 0.10–0.69, mean 0.45), because 1 − μ is no target signature; RXD-UTD is
the detector. Both depend on the data's units (1 is in them), unlike RX: the same scenes
scaled by 1e-4 (DN to reflectance) take RXD-UTD from a mean AUC of 0.89 to 0.42; compare
them only on data in the same units (docs/classic_detectors.md).

Reference: C.-I Chang and S.-S. Chiang, "Anomaly detection and classification for
hyperspectral imagery", IEEE TGRS 40(6), 2002; ENVI's *RX Anomaly Detection* (UTD,
RXD-UTD).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from hsad.detectors.rx import GlobalRX

if TYPE_CHECKING:
    from hsad.cube.array_types import CubeLike


class UTD(GlobalRX):
    """Uniform target detector: ``(1 − μ)ᵀ K⁻¹ (r − μ)``; a building block (near chance
    on real scenes alone). Parameters as ``rx``."""

    name = "utd"
    summary = ("UTD (1-mu)'K^-1(r-mu): uniform-target building block, near chance alone "
               "(Chang & Chiang 2002, ENVI)")

    def _derive(self) -> None:
        """RX's derived state, then the UTD direction ``K⁻¹(1 − μ)``."""
        super()._derive()
        self.direction_ = self.precision_ @ (1.0 - self.mean_)

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map of UTD scores, NaN on nodata pixels."""
        self._check_fitted("direction_")
        return self._streamed(cube, None, self.direction_)

    #: no χ² null, whatever rank the map records
    CHI2_NULL = False

    def null_threshold(self, far: float) -> float | None:
        return None


class RXDUTD(GlobalRX):
    """RXD-UTD: ``(r − 1)ᵀ K⁻¹ (r − μ)`` = RX(r) − UTD(r). Parameters as ``rx``."""

    name = "rxd-utd"
    summary = "RXD-UTD (r-1)'K^-1(r-mu) = RX - UTD (Chang & Chiang 2002, ENVI)"

    def _derive(self) -> None:
        """RX's derived state, then the UTD direction ``K⁻¹(1 − μ)``."""
        super()._derive()
        self.direction_ = self.precision_ @ (1.0 - self.mean_)

    def score(self, cube: CubeLike) -> xr.DataArray:
        """Lazy ``(y, x)`` map of RXD-UTD scores, NaN on nodata pixels."""
        self._check_fitted("direction_")
        return self._streamed(cube, self.triangular_, -np.asarray(self.direction_))

    #: no χ² null, whatever rank the map records
    CHI2_NULL = False

    def null_threshold(self, far: float) -> float | None:
        return None
