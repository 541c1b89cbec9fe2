"""EnMAP products laid out as DLR delivers them, for the tests: a folder of files named by
one prefix, a ``METADATA.XML`` with a ``level_X`` root (band characterisation with gains,
band statistics, the detectors' channel lists, cover percentages), the ``SPECTRAL_IMAGE``
as a GeoTIFF or ENVI BSQ, and the quality layers on the same grid (docs/formats.md,
"EnMAP products")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

#: band centres of the two detectors (a real product has 91 and 133; fewer here)
VNIR_WL = np.linspace(420.0, 990.0, 30).round(3)
SWIR_WL = np.linspace(905.0, 2440.0, 40).round(3)
EPSG = 32633
TRANSFORM = Affine(30.0, 0.0, 399_985.0, 0.0, -30.0, 5_000_015.0)
PREFIX = "ENMAP01-____L2A-DT0000001234_20230625T102345Z_002_V010402_20230626T101010Z"
LAYERS = ("CLOUD", "CLOUDSHADOW", "HAZE", "CIRRUS", "SNOW", "CLASSES", "TESTFLAGS")


def band_table(order: str = "wavelength"):
    """File band order: ``(wavelength, detector)`` sorted by wavelength (the detectors
    interleaved in their overlap), or the VNIR's then the SWIR's (``order="detector"``)."""
    wl = np.r_[VNIR_WL, SWIR_WL]
    det = np.r_[np.zeros(VNIR_WL.size, int), np.ones(SWIR_WL.size, int)]
    at = np.argsort(wl, kind="stable") if order == "wavelength" else np.arange(wl.size)
    return wl[at], det[at]


def metadata_xml(level: str, wl, det, gain, offset, empty, cover, background) -> str:
    bands = "\n".join(
        f'      <bandID number="{i + 1}"><wavelengthCenterOfBand>{w:.3f}</wavelengthCenterOfBand>'
        f"<FWHMOfBand>{7.5 if d == 0 else 9.0}</FWHMOfBand><GainOfBand>{g:.8g}</GainOfBand>"
        f"<OffsetOfBand>{o:.8g}</OffsetOfBand></bandID>"
        for i, (w, d, g, o) in enumerate(zip(wl, det, gain, offset, strict=True)))
    stats = "\n".join(
        f'      <bandID number="{i + 1}"><mean>{-1000000 if e else 1234.5}</mean>'
        f"<stdDeviation>{0 if e else 321.0}</stdDeviation></bandID>"
        for i, e in enumerate(empty))
    channels = {k: ",".join(str(i + 1) for i in np.flatnonzero(det == d))
                for k, d in (("vnir", 0), ("swir", 1))}
    covers = "".join(f"<{tag}>{value}</{tag}>" for tag, value in cover.items())
    back = "" if background is None else f"<backgroundValue>{background}</backgroundValue>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- EnMAP product metadata, written for the tests -->
<level_X xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <metadata><name>{PREFIX}-METADATA.XML</name></metadata>
  <base><level>{level}</level>
    <temporalCoverage><startTime>2023-06-25T10:23:45.123456Z</startTime></temporalCoverage>
  </base>
  <processing><productFormat>GeoTIFF+Metadata</productFormat></processing>
  <product>
    <quality>{covers}</quality>
    <bandStatistics>
{stats}
    </bandStatistics>
  </product>
  <specific>
    {back}
    <vnirProductQuality><expectedChannelsList>{channels['vnir']}</expectedChannelsList>
      <numChannelsExpected>{int((det == 0).sum())}</numChannelsExpected></vnirProductQuality>
    <swirProductQuality><expectedChannelsList>{channels['swir']}</expectedChannelsList>
      <numChannelsExpected>{int((det == 1).sum())}</numChannelsExpected></swirProductQuality>
    <bandCharacterisation>
{bands}
    </bandCharacterisation>
  </specific>
</level_X>
"""


def write_enmap(folder, level: str = "L2A", rows: int = 20, cols: int = 24, *, seed: int = 0,
                order: str = "wavelength", fmt: str = "tif", nodata_tag: bool = True,
                empty=(), cover=None, background=None, flags=None, cog: bool = False):
    """An EnMAP product in ``folder``; returns ``(xml path, DN (rows, cols, bands) as stored,
    gains, offsets, file wavelengths, file detectors)``. The DN are random, a frame of 2
    pixels along the top and left holds the background value (−32768 for L2A, 0 for L1C)
    in every band; ``empty`` bands hold it everywhere and say so in their statistics.
    ``flags``: quality layer name → (rows, cols) uint8 values (default all 0, classes 1).
    ``nodata_tag``: the GeoTIFF's nodata tag set; ``fmt``: ``tif`` or ``bsq`` (ENVI)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wl, det = band_table(order)
    n = wl.size
    fill = -32768 if level == "L2A" else 0
    dtype = np.int16 if level == "L2A" else np.uint16
    dn = rng.integers(1, 10000, (rows, cols, n)).astype(dtype)
    dn[:2] = fill
    dn[:, :2] = fill
    empty = np.isin(np.arange(n), list(empty))
    dn[:, :, empty] = fill
    gain = (np.full(n, 1e-4) if level == "L2A"
            else np.round(rng.uniform(0.001, 0.01, n), 6))
    offset = np.zeros(n) if level == "L2A" else np.round(rng.uniform(-0.5, 0.5, n), 4)
    cog_part = "_COG" if cog else ""
    xml = folder / f"{PREFIX.replace('L2A', level)}-METADATA.XML"
    xml.write_text(metadata_xml(level, wl, det, gain, offset, empty, cover or {}, background))
    stem = folder / f"{PREFIX.replace('L2A', level)}-SPECTRAL_IMAGE{cog_part}"
    nodata = fill if nodata_tag else None
    if fmt == "tif":
        _write_tif(stem.with_suffix(".TIF"), np.moveaxis(dn, -1, 0), nodata)
    else:
        np.ascontiguousarray(np.moveaxis(dn, -1, 0)).tofile(stem.with_suffix(".BSQ"))
        (stem.parent / (stem.name + ".HDR")).write_text(
            f"ENVI\nsamples = {cols}\nlines = {rows}\nbands = {n}\nheader offset = 0\n"
            f"file type = ENVI Standard\ndata type = {2 if level == 'L2A' else 12}\n"
            "interleave = bsq\nbyte order = 0\n"
            f"map info = {{UTM, 1, 1, {TRANSFORM.c}, {TRANSFORM.f}, 30, 30, 33, North, "
            "WGS-84}\n" + (f"data ignore value = {fill}\n" if nodata_tag else ""))
    flags = dict(flags or {})
    for name in LAYERS:
        values = flags.get(name)
        if values is None:
            values = np.full((rows, cols), 1 if name == "CLASSES" else 0, np.uint8)
            if name == "CLASSES":
                values[:2] = 3
                values[:, :2] = 3
        path = folder / f"{PREFIX.replace('L2A', level)}-QL_QUALITY_{name}{cog_part}.TIF"
        _write_tif(path, np.asarray(values, np.uint8)[None], None)
    return xml, dn, gain, offset, wl, det


def _write_tif(path: Path, bands: np.ndarray, nodata) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
                       count=bands.shape[0], dtype=bands.dtype, crs=f"EPSG:{EPSG}",
                       transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(bands)
