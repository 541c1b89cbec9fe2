"""Robust per-band normalisation of spectra, learned from a training sample.

``x' = (x − centre) / scale`` per band. Methods:

- ``iqr``: centre = median, scale = IQR / 1.349 (the normal-consistent IQR).
- ``percentile``: centre = median, scale = (p98 − p2) / 4.107 (normal-consistent too).
- ``std``: mean and standard deviation (not robust; for comparison).

A band whose robust scale is zero (e.g. a saturated or quantised band) falls back to its
standard deviation; a band constant in the sample, to the median scale of the other bands
(not 1 raw unit, which let such a band's values on another scene outweigh every other
band), with a warning; so no division by zero ever happens. The statistics are
stored with a model, so a scene is normalised exactly as its training sample was.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from hsad.errors import DegenerateDataWarning, ParameterError

METHODS = ("iqr", "percentile", "std")
_IQR_SIGMA = 1.349  # IQR of N(0, 1)
_P2_P98_SIGMA = 4.107  # p98 − p2 of N(0, 1)


@dataclass
class BandScaler:
    """Per-band centre and scale (float32 vectors of length B)."""

    method: str
    centre: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, method: str = "iqr") -> BandScaler:
        """Learn centre and scale from the finite rows of ``x`` (N, B)."""
        if method not in METHODS:
            raise ParameterError(f"unknown normalisation {method!r} (choose from {METHODS})")
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        if x.shape[0] < 2:
            raise ParameterError("normalisation needs at least 2 valid pixels")
        std = x.std(axis=0)
        if method == "std":
            centre, scale = x.mean(axis=0), std
        else:
            lo, med, hi = np.percentile(x, [25, 50, 75] if method == "iqr" else [2, 50, 98],
                                        axis=0)
            centre = med
            scale = (hi - lo) / (_IQR_SIGMA if method == "iqr" else _P2_P98_SIGMA)
        tiny = 1e-12 * max(float(np.abs(x).max()), 1e-30)
        scale = np.where(scale > tiny, scale, std)
        constant = ~(scale > tiny)
        if constant.any():  # no spread to learn: the other bands' typical one, not 1 unit
            spread = scale[~constant]
            scale = np.where(constant, float(np.median(spread)) if spread.size else 1.0, scale)
            which = ", ".join(str(b + 1) for b in np.flatnonzero(constant)[:5])
            warnings.warn(f"{int(constant.sum())} bands are constant in the training sample "
                          f"(1-based: {which}{', …' if constant.sum() > 5 else ''}): they "
                          "carry nothing to learn, and another scene's values in them count "
                          "against the other bands' typical spread; drop them (--bands, "
                          "--exclude-wavelengths) or mark them bad", DegenerateDataWarning,
                          stacklevel=3)
        return cls(method, centre.astype(np.float32), scale.astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Normalised copy of ``x`` (…, B) as float32."""
        return ((np.asarray(x, dtype=np.float32) - self.centre) / self.scale).astype(np.float32)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """Back to the original units."""
        return np.asarray(x, dtype=np.float32) * self.scale + self.centre

    def tensors(self) -> dict[str, np.ndarray]:
        """Arrays to store with a model (safetensors)."""
        return {"norm.centre": self.centre, "norm.scale": self.scale}

    @classmethod
    def from_tensors(cls, method: str, tensors: dict) -> BandScaler:
        return cls(method, np.asarray(tensors["norm.centre"], dtype=np.float32),
                   np.asarray(tensors["norm.scale"], dtype=np.float32))
