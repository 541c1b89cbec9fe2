"""QGIS layer styles (``.qml``) written beside the rasters, so a map opens ready to read.

QGIS loads ``scores.qml`` automatically when it opens ``scores.tif``. A score map gets a
single-band pseudocolour renderer: the ``inferno`` ramp (the quicklook's) stretched from the
1st to the 99.9th percentile of the map's valid values, so the background is dark and the
anomalies bright; values above the top are drawn in the brightest colour. A mask gets a
palette: anomaly red, background and nodata transparent.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from hsad.io.atomic import atomic_path

#: Percentiles of the valid values that the colour ramp spans.
STRETCH = (1.0, 99.9)
#: Stops of the colour ramp.
N_STOPS = 9
#: Most pixels read to set the stretch (the file is read decimated beyond that).
SAMPLE = 1 << 20


def style_path(raster) -> Path:
    """Where the style of ``raster`` goes: same name, ``.qml``."""
    return Path(raster).with_suffix(".qml")


def sampled_values(path) -> np.ndarray:
    """The valid values of band 1 of ``path``, read decimated to about :data:`SAMPLE`."""
    import rasterio

    from hsad.io.gdal_checks import quiet_gdal

    with quiet_gdal(), rasterio.open(path) as src:
        step = max(1, int(np.ceil(np.sqrt(src.height * src.width / SAMPLE))))
        shape = (max(1, src.height // step), max(1, src.width // step))
        values = src.read(1, out_shape=shape, masked=True).astype(np.float64)
    values = values.compressed()
    return values[np.isfinite(values)]


def _document(renderer: str) -> str:
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.28" styleCategories="AllStyleCategories">\n <pipe>\n'
            f"{renderer} </pipe>\n <blendMode>0</blendMode>\n</qgis>\n")


def score_style(values: np.ndarray) -> str:
    """The ``.qml`` text of a score map whose valid values are ``values``."""
    from matplotlib import colormaps

    lo, hi = (np.percentile(values, STRETCH) if values.size else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1.0
    ramp = colormaps["inferno"]
    items = []
    for t in np.linspace(0.0, 1.0, N_STOPS):
        r, g, b, _ = (np.asarray(ramp(t)) * 255).round().astype(int)
        value = lo + t * (hi - lo)
        items.append(f'     <item alpha="255" value="{value:.9g}" label={quoteattr(f"{value:.4g}")}'
                     f' color="#{r:02x}{g:02x}{b:02x}"/>\n')
    return _document(
        f'  <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" '
        f'classificationMin="{lo:.9g}" classificationMax="{hi:.9g}" nodataColor="">\n'
        "   <rasterTransparency/>\n   <rastershader>\n"
        f'    <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
        f'minimumValue="{lo:.9g}" maximumValue="{hi:.9g}">\n'
        + "".join(items)
        + "    </colorrampshader>\n   </rastershader>\n  </rasterrenderer>\n")


def mask_style() -> str:
    """The ``.qml`` text of an anomaly mask (1 red, 0 and 255 transparent)."""
    return _document(
        '  <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" '
        'nodataColor="">\n   <rasterTransparency/>\n   <colorPalette>\n'
        '    <paletteEntry value="0" color="#000000" alpha="0" label="background"/>\n'
        '    <paletteEntry value="1" color="#ff2020" alpha="255" label="anomaly"/>\n'
        '   </colorPalette>\n  </rasterrenderer>\n')


def write_style(raster, kind: str = "score", values: np.ndarray | None = None) -> Path:
    """Write the style of the GeoTIFF ``raster`` (``kind`` ``score`` or ``mask``) beside it,
    atomically; return its path. ``values``: a score map's :func:`sampled_values`, read
    already."""
    if kind == "score":
        text = score_style(sampled_values(raster) if values is None else values)
    else:
        text = mask_style()
    target = style_path(raster)
    with atomic_path(target) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return target


__all__ = ["mask_style", "sampled_values", "score_style", "style_path", "write_style"]
