"""Figures: ROC curves, the 3D ROC, scene quicklooks and training losses.

Every function builds a ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot, no
display, no global figure registry), returns it, and writes a PNG atomically when given
``path``. The figures live in modules of one job each, all reachable from here:
:mod:`~hsad.outputs.figures` (the common ground), :mod:`~hsad.outputs.roc_plots`,
:mod:`~hsad.outputs.quicklook` and :mod:`~hsad.outputs.loss_plot`.
"""

from __future__ import annotations

from hsad.outputs.figures import (
    LINE_STYLES,
    MARKERS,
    MATH_TEXTS,
    colours,
    finish,
    new_figure,
    save_figure,
    wrapped,
)
from hsad.outputs.loss_plot import plot_losses
from hsad.outputs.quicklook import (
    NODATA_GREY,
    OUTLINE_SPLITS,
    RGB_FALLBACK,
    RGB_TOLERANCE,
    RGB_WAVELENGTHS,
    crs_name,
    drawn_pixels,
    panel_size,
    quicklook,
    rgb_bands,
    strip_aspect,
)
from hsad.outputs.roc_plots import MAX_CURVE_POINTS, plot_roc, plot_roc3d, roc_curves

__all__ = [
    "LINE_STYLES", "MARKERS", "MATH_TEXTS", "MAX_CURVE_POINTS", "NODATA_GREY",
    "OUTLINE_SPLITS", "RGB_FALLBACK", "RGB_TOLERANCE", "RGB_WAVELENGTHS", "colours",
    "crs_name", "drawn_pixels", "finish", "new_figure", "panel_size", "plot_losses",
    "plot_roc", "plot_roc3d", "quicklook", "rgb_bands", "roc_curves", "save_figure",
    "strip_aspect", "wrapped",
]
