"""Grey-level area opening and closing (4-connectivity), the attribute filters of the
fusion stage.

DIPlib's union-find implementation (``diplib.AreaOpening``) is used when it is installed:
it gives the same images as ``skimage.morphology.area_opening``/``area_closing`` and runs
in linear time, whereas scikit-image's max-tree slows down super-linearly on quantised
images with large flat zones (512 × 512 uint8: 0.04 s against 2.3 s; 1024 × 1024: 76 s
for scikit-image). scikit-image is the fallback.
"""

from __future__ import annotations

import numpy as np

try:
    import diplib as _dip
except ImportError:  # pragma: no cover - exercised by the fallback test
    _dip = None


def _skimage(image: np.ndarray, area: int, polarity: str) -> np.ndarray:
    from skimage.morphology import area_closing, area_opening

    op = area_opening if polarity == "opening" else area_closing
    return op(image, area_threshold=area, connectivity=1)


def _diplib(image: np.ndarray, area: int, polarity: str) -> np.ndarray:
    out = _dip.AreaOpening(np.ascontiguousarray(image), None, int(area), 1, polarity)
    return np.asarray(out).astype(image.dtype, copy=False).reshape(image.shape)


def area_filter(image: np.ndarray, area: int, polarity: str = "opening", *,
                backend: str | None = None) -> np.ndarray:
    """Area opening (``polarity="opening"``) or closing of a 2-D image, 4-connectivity.

    The opening removes bright connected structures of fewer than ``area`` pixels (the
    closing, dark ones), as ``skimage.morphology.area_opening(image, area, 1)`` does.
    ``backend``: ``"diplib"``, ``"skimage"`` or ``None`` (DIPlib when installed).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"area_filter needs a 2-D image, got shape {image.shape}")
    if polarity not in ("opening", "closing"):
        raise ValueError(f"polarity must be 'opening' or 'closing', not {polarity!r}")
    backend = backend or ("diplib" if _dip is not None else "skimage")
    if backend == "diplib" and _dip is None:
        raise ImportError("diplib is not installed")
    if area <= 1 or image.size == 0:
        return image.copy()
    if backend == "diplib":
        return _diplib(image, area, polarity)
    if backend == "skimage":
        return _skimage(image, area, polarity)
    raise ValueError(f"backend must be 'diplib' or 'skimage', not {backend!r}")
