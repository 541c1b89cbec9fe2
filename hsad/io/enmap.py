"""DLR EnMAP products, L1C (radiance) and L2A (surface reflectance), read as one cube.

A product is a folder of files named ``ENMAP01-____L2A-DT…_V…-<PART>.<ext>``: the
``METADATA.XML`` (root ``level_X``), the ``SPECTRAL_IMAGE`` (GeoTIFF, or ENVI BSQ/BIL/BIP
with its header; ``_COG`` in the names of EOLab's cloud-optimised copies) and the quality
layers ``QL_QUALITY_CLOUD`` … on the same grid. GDAL reads the image as DN; the
wavelengths, the DN-to-physical gains and the detectors' band lists are in the XML alone.

hsad reads the folder, its ``METADATA.XML`` or its ``SPECTRAL_IMAGE`` file as a lazy
``(y, x, band)`` float32 cube, as the EnMAP-Box's import and SNAP's reader read it:

- value = DN · ``GainOfBand`` + ``OffsetOfBand`` of the band; a DN equal to the product's
  background value (the file's nodata, else ``specific/backgroundValue``, else −32768 for
  L2A and 0 for L1C) is NaN;
- bands in ascending wavelength; by default the VNIR's bands below the SWIR's first
  wavelength and all the SWIR's (the EnMAP-Box's default for the 900–1000 nm overlap),
  ``key="vnir"`` or ``"swir"``: one detector whole (``expectedChannelsList``);
- a band the metadata's statistics show as filled with no data (mean −1000000, standard
  deviation 0) is kept as a bad band.

The quality layers are not applied on reading: :func:`hsad.io.enmap_quality.quality_valid`
gives the pixels none of the chosen flags marks (``cloud``, ``cloudshadow``, ``haze``,
``cirrus``, ``snow``, ``water``, ``saturated``), as SNAP's EnMAP reader decodes them. L1B
products (VNIR and SWIR in sensor geometry, not co-registered) are refused.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from dask.base import tokenize

from hsad.errors import FileFormatError, ParameterError, UnsupportedError
from hsad.io.quality import parse_flags, warn_cover  # noqa: F401  (moved there; kept importable)
from hsad.io.sidecar_xml import MAX_XML_BYTES, local_name
from hsad.io.window import ComputedView, array_over
from hsad.lazy_modules import moved_names

#: the product levels read, and what their values (DN · GainOfBand + OffsetOfBand) are
LEVELS = {"L1C": "radiance", "L2A": "surface reflectance"}
#: ``key`` values
KEYS = ("full", "vnir", "swir")
#: background (no-data) DN by level, where neither the file nor the XML gives one
BACKGROUND = {"L1C": 0.0, "L2A": -32768.0}
#: the metadata's cover percentages (of the imaged swath), by flag
COVER_TAGS = {"cloud": "cloudCover", "cloudshadow": "cloudShadow", "haze": "hazeCover",
              "cirrus": "cirrusCover", "snow": "snowCover", "water": "waterCover"}
_IMAGE_EXTS = (".tif", ".tiff", ".bsq", ".bil", ".bip", ".jp2", ".j2k")
#: the parts of a product's file names after its prefix (the files outputs never replace)
_OWN_PARTS = ("METADATA", "SPECTRAL_IMAGE", "QL_", "HISTORY", "LOG", "THUMBNAIL")
_NAMED_LEVEL = re.compile(r"^ENMAP\d*-_*(L1B|L1C|L2A)-", re.IGNORECASE)
_PART = re.compile(r"^(?P<prefix>.+?)-(?P<part>METADATA|SPECTRAL_IMAGE|QL_[A-Z_]+?)"
                   r"(?P<cog>_COG)?(?P<ext>\.[A-Za-z0-9]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Band:
    """The metadata of the product's image bands, in file order."""

    wavelength: np.ndarray
    fwhm: np.ndarray | None
    gain: np.ndarray
    offset: np.ndarray
    empty: np.ndarray  # filled with no data, by the metadata's band statistics


@dataclass(frozen=True)
class Product:
    """An EnMAP product: its metadata file and what it says."""

    xml: Path
    level: str
    bands: Band
    vnir: np.ndarray | None  # 0-based file bands of each detector
    swir: np.ndarray | None
    background: float | None
    started: str | None
    cover: dict

    @property
    def prefix(self) -> str:
        return _PART.match(self.xml.name).group("prefix")

    def layer(self, part: str) -> Path | None:
        """The product's file of ``part`` (``SPECTRAL_IMAGE``, ``QL_QUALITY_CLOUD``…), in
        any delivered format and spelling, or None."""
        found = []
        for entry in self.xml.parent.iterdir():
            m = _PART.match(entry.name)
            if (m and m.group("prefix") == self.prefix and m.group("part").upper() == part
                    and m.group("ext").lower() in _IMAGE_EXTS and entry.is_file()):
                found.append(entry)
        return min(found, key=lambda p: (p.suffix.lower() != ".tif", p.name)) if found else None


def _head(xml: Path) -> bytes:
    """The first 64 KiB of a file (its root element and ``base/level`` lie there)."""
    try:
        with open(xml, "rb") as fh:
            return fh.read(65536)
    except OSError:
        return b""


def _root_tag(head: bytes) -> str | None:
    """The root element's name of an XML document's ``head``, or None."""
    m = re.search(rb"<([A-Za-z_][\w.:-]*)[\s>/]", re.sub(rb"<[?!][^>]*>", b"", head))
    return local_name(m.group(1).decode("ascii", "replace")) if m else None


def _level_hint(xml: Path, head: bytes) -> str | None:
    """The product level the metadata's ``<level>`` or the product's name gives."""
    m = re.search(rb"<(?:\w+:)?level>\s*(\w+)\s*<", head)
    if m:
        return m.group(1).decode("ascii", "replace").upper()
    m = _NAMED_LEVEL.match(xml.name)
    return m.group(1).upper() if m else None


def metadata_of(path: str | os.PathLike) -> Path | None:
    """The ``METADATA.XML`` of the EnMAP product ``path`` names (the folder, the XML, or its
    ``SPECTRAL_IMAGE`` file), or None when ``path`` is none of them (or cannot be listed)."""
    p = Path(path)
    try:
        if p.is_dir():
            found = [e for e in p.iterdir() if _is_metadata(e)]
            return found[0] if len(found) == 1 else None
    except OSError:
        return None
    m = _PART.match(p.name)
    if m is None:
        return None
    part = m.group("part").upper()
    if part == "METADATA":
        return p if _is_metadata(p) else None
    return next((x for x in _metadata_beside(p, m) if _is_metadata(x)), None)


def _metadata_beside(image: Path, m: re.Match) -> list[Path]:
    """The metadata names of the spectral ``image`` (``m``: its name matched by ``_PART``);
    none for another file."""
    if m.group("part").upper() != "SPECTRAL_IMAGE":
        return []
    return [image.with_name(f"{m.group('prefix')}-METADATA{e}") for e in (".XML", ".xml")]


def _is_metadata(p: Path) -> bool:
    """Whether ``p`` is an EnMAP product's metadata: ``…-METADATA.XML``, root ``level_X``,
    a level in it or in the product's name (else a sidecar only, :mod:`hsad.io.sidecar_xml`)."""
    m = _PART.match(p.name)
    if not (m is not None and m.group("part").upper() == "METADATA" and p.is_file()
            and m.group("ext").lower() == ".xml"):
        return False
    head = _head(p)
    return _root_tag(head) == "level_X" and _level_hint(p, head) is not None


def why_not_enmap(path: str | os.PathLike) -> str | None:
    """Why ``path``, meant as an EnMAP product (a folder holding ``ENMAP…-METADATA.XML``, or
    such a file), cannot be read as one; None when it is one or is not meant as one."""
    p = Path(path)
    if p.is_dir():
        named = sorted(e for e in p.iterdir() if _named_metadata(e))
        products = [e for e in named if _is_metadata(e)]
        if len(products) > 1:
            return (f"the folder holds {len(products)} EnMAP products "
                    f"({', '.join(e.name for e in products[:3])}): give one's METADATA.XML")
        if named and not products:
            return f"{named[0].name} is not EnMAP metadata (no level_X root with a level)"
        return None
    if _named_metadata(p) and not _is_metadata(p):
        return "not EnMAP metadata (no level_X root with a level in its first 64 KiB)"
    m = _PART.match(p.name)  # a spectral image whose metadata beside it is broken
    xml = next((x for x in _metadata_beside(p, m) if _named_metadata(x)), None) if m else None
    if xml is not None and not _is_metadata(xml):
        return f"the EnMAP metadata beside it, {xml.name}, is not EnMAP metadata"
    return None


def _named_metadata(p: Path) -> bool:
    """Whether ``p`` is named as an EnMAP product's metadata (``ENMAP…-METADATA.XML``)."""
    m = _PART.match(p.name)
    return (m is not None and m.group("part").upper() == "METADATA"
            and m.group("ext").lower() == ".xml" and p.name.upper().startswith("ENMAP"))


def is_product_name(file: str | os.PathLike, xml: Path) -> bool:
    """Whether ``file`` is named as a file of the product whose metadata is ``xml``: in its
    folder, its prefix, then one of DLR's parts (``METADATA``, ``SPECTRAL_IMAGE…``,
    ``QL_…``, ``HISTORY``, ``LOG``, ``THUMBNAIL``), whether it exists or not."""
    file = Path(file)
    prefix = _PART.match(xml.name).group("prefix") + "-"
    rest = file.name[len(prefix):].upper() if file.name.startswith(prefix) else ""
    return (rest.startswith(_OWN_PARTS)
            and os.path.normcase(os.path.realpath(file.parent))
            == os.path.normcase(os.path.realpath(xml.parent)))


def product_files(path: str | os.PathLike) -> list[Path]:
    """The existing files of the EnMAP product ``path`` names (:func:`is_product_name`)."""
    xml = metadata_of(path)
    if xml is None:
        return []
    return sorted(f for f in xml.parent.iterdir() if is_product_name(f, xml) and f.is_file())


def is_enmap(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an EnMAP product's folder, metadata or spectral image."""
    return metadata_of(path) is not None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None and text.strip() else None
    except ValueError:
        return None


def _band_number(text: str | None) -> int | None:
    """A ``bandID``'s ``number`` attribute as an int; None unless a finite whole number."""
    number = _number(text)
    return int(number) if number is not None and np.isfinite(number) \
        and number == int(number) else None


def _finite(text: str | None, what: str, xml) -> float | None:
    """``text`` as a finite number; None when absent or empty; FileFormatError otherwise."""
    if text is None or not text.strip():
        return None
    value = _number(text)
    if value is None or not np.isfinite(value):
        raise FileFormatError(f"EnMAP {what} is not a finite number: {text.strip()[:40]!r}", xml)
    return value


def _channels(root: ET.Element, detector: str, bands: int, xml) -> np.ndarray | None:
    """0-based file bands of ``detector`` (``vnir``/``swir``) from ``expectedChannelsList``."""
    for element in root.iter():
        if local_name(element.tag) == f"{detector}ProductQuality":
            for child in element:
                if local_name(child.tag) == "expectedChannelsList":
                    text = child.text or ""
                    try:
                        numbers = np.array([int(v) for v in text.split(",") if v.strip()])
                    except ValueError:
                        raise FileFormatError(f"EnMAP {detector} expectedChannelsList is not a "
                                              f"list of band numbers: {text[:60]!r}",
                                              xml) from None
                    if numbers.size == 0:
                        raise FileFormatError(f"EnMAP {detector} expectedChannelsList is empty",
                                              xml)
                    if numbers.min() < 1 or numbers.max() > bands:
                        raise FileFormatError(f"EnMAP {detector} expectedChannelsList names "
                                              f"bands outside 1-{bands}", xml)
                    return numbers - 1
    return None


def read_product(path: str | os.PathLike) -> Product:
    """The metadata of the EnMAP product ``path`` names (folder, XML or spectral image)."""
    xml = metadata_of(path)
    if xml is None:
        raise FileFormatError("not an EnMAP product (no ENMAP…-METADATA.XML with a level_X "
                              "root beside it)", path)
    if xml.stat().st_size > MAX_XML_BYTES:
        raise FileFormatError(f"EnMAP metadata larger than {MAX_XML_BYTES >> 20} MiB", xml)
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise FileFormatError(f"EnMAP metadata is not readable XML ({exc})", xml) from None
    started = background = None
    cover, characterised, statistics = {}, [], {}
    level = _level_of(root)
    for element in root.iter():
        name = local_name(element.tag)
        if name == "startTime" and started is None:
            started = (element.text or "").strip() or None
        elif name == "backgroundValue" and background is None:
            background = _number(element.text)
        elif name in COVER_TAGS.values() and name not in cover:
            cover[name] = _number(element.text)
        elif name == "bandCharacterisation":
            characterised = [b for b in element if local_name(b.tag) == "bandID"]
        elif name == "bandStatistics":
            for b in element:
                number = _band_number(b.get("number"))
                if number is not None:
                    statistics[number] = {local_name(c.tag): _number(c.text) for c in b}
    level = level or _level_hint(xml, b"")
    if level == "L1B":
        raise UnsupportedError(
            "an EnMAP L1B product: its VNIR and SWIR images are in sensor geometry and not "
            "co-registered; hsad reads L1C and L2A products (or open one …-SPECTRAL_IMAGE_VNIR "
            "file itself, as DN without georeference)", xml)
    if level not in LEVELS:
        raise UnsupportedError(f"an EnMAP product of level {level or 'unknown'}: hsad reads "
                               "L1C and L2A", xml)
    bands = _band_table(characterised, statistics, xml)
    n = bands.wavelength.size
    return Product(xml=xml, level=level, bands=bands, vnir=_channels(root, "vnir", n, xml),
                   swir=_channels(root, "swir", n, xml), background=background,
                   started=started,
                   cover={flag: cover[tag] for flag, tag in COVER_TAGS.items()
                          if cover.get(tag) is not None})


def _level_of(root: ET.Element) -> str | None:
    """``base/level`` (any ``level`` element when there is no ``base``), upper case."""
    base = next((c for c in root if local_name(c.tag) == "base"), None)
    for element in (base if base is not None else root.iter()):
        if local_name(element.tag) == "level" and (element.text or "").strip():
            return element.text.strip().upper()
    return None


def _band_table(characterised: list, statistics: dict, xml) -> Band:
    """The bands' wavelength, width, gain, offset and emptiness, in band-number order."""
    if not characterised:
        raise FileFormatError("EnMAP metadata without bandCharacterisation", xml)
    rows = []
    for b in characterised:
        number = _band_number(b.get("number"))
        if number is None:
            raise FileFormatError(f"EnMAP bandCharacterisation has a band numbered "
                                  f"{b.get('number')!r}", xml)
        texts = {local_name(c.tag): c.text for c in b}
        fields = [_finite(texts.get(tag), f"band {number} {tag}", xml) for tag in
                  ("wavelengthCenterOfBand", "FWHMOfBand", "GainOfBand", "OffsetOfBand")]
        rows.append((number, *fields, statistics.get(number, {})))
    numbers = [r[0] for r in rows]
    if sorted(numbers) != list(range(1, len(rows) + 1)):
        raise FileFormatError("EnMAP bandCharacterisation does not number its bands 1 to "
                              f"{len(rows)}", xml)
    rows.sort(key=lambda r: r[0])
    for what, at in (("wavelengthCenterOfBand", 1), ("GainOfBand", 3)):
        bad = [r[0] for r in rows if r[at] is None]
        if bad:
            raise FileFormatError(f"EnMAP band {bad[0]} has no {what}", xml)
    fwhm = [r[2] for r in rows]
    stats = [r[5] for r in rows]
    empty = np.array([s.get("stdDeviation") == 0 and (s.get("mean") or 0) <= -999999
                      for s in stats])
    return Band(wavelength=np.array([r[1] for r in rows]),
                fwhm=None if any(v is None for v in fwhm) else np.array(fwhm),
                gain=np.array([r[3] for r in rows]),
                offset=np.array([r[4] or 0.0 for r in rows]), empty=empty)


def band_order(product: Product, key: str | None) -> np.ndarray:
    """0-based file bands of the cube ``key`` asks for, in ascending wavelength."""
    key = (key or "full").lower()
    if key not in KEYS:
        raise ParameterError(f"an EnMAP product's cube is full, vnir or swir, not {key!r}",
                             product.xml)
    wl = product.bands.wavelength
    if product.vnir is None or product.swir is None:
        if key != "full":
            raise FileFormatError("EnMAP metadata without the detectors' expectedChannelsList: "
                                  f"--key {key} cannot be read", product.xml)
        picked = np.arange(wl.size)
    elif key == "vnir":
        picked = product.vnir
    elif key == "swir":
        picked = product.swir
    else:  # the VNIR below the SWIR's range, then the SWIR
        first = wl[product.swir].min()
        picked = np.concatenate([product.vnir[wl[product.vnir] < first], product.swir])
    picked = np.unique(picked)
    return picked[np.argsort(wl[picked], kind="stable")]


def _open_layer(path: Path, chunks, window) -> xr.DataArray:
    """A product file as its format's reader reads it (GeoTIFF, or ENVI with a header)."""
    from hsad.io.envi_files import find_header

    with open(path, "rb") as fh:
        head = fh.read(4)
    if path.suffix.lower() in (".jp2", ".j2k"):
        raise UnsupportedError("a JPEG2000 delivery: hsad reads EnMAP products delivered as "
                               "GeoTIFF or ENVI; order GeoTIFF, or convert each file with "
                               "gdal_translate to a GeoTIFF of the same name", path)
    if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        from hsad.io.geotiff import open_geotiff

        return open_geotiff(path, chunks=chunks, window=window, sidecar=False)
    if find_header(path) is not None:
        from hsad.io.envi import open_envi

        return open_envi(path, chunks=chunks, window=window)
    raise UnsupportedError("an EnMAP file that is neither a GeoTIFF nor ENVI data with a "
                           "header", path)


class _PhysicalView(ComputedView):
    """The cube of an image's lazy DN ``raw`` (rows, cols, file bands): the file bands
    ``order``, DN · gain + offset (float32), NaN where a DN is the ``background`` value;
    windows read as :class:`hsad.io.window.ComputedView` reads them."""

    dtype = np.dtype(np.float32)

    def __init__(self, raw, order, gain, offset, background):
        self.raw, self.order = raw, np.asarray(order)
        self.gain, self.offset = gain.astype(np.float32), offset.astype(np.float32)
        self.background = background
        self.shape = (raw.shape[0], raw.shape[1], self.order.size)

    def _window(self, rows, cols, bands):
        dn = self._raw(rows, cols, self.order[bands])
        out = np.multiply(dn, self.gain[bands], dtype=np.float32)
        out += self.offset[bands]
        if self.background is not None:
            out[dn == self.background] = np.nan
        return out


def open_enmap(path: str | os.PathLike, chunks=None, key: str | None = None,
               window=None) -> xr.DataArray:
    """An EnMAP product's cube, lazily, in physical units (module docstring); ``key``:
    ``full`` (default), ``vnir`` or ``swir``; ``window`` (a :class:`hsad.cube.subset.Window`)
    reads only that window."""
    from hsad.cube import make_cube
    from hsad.cube.subset import WINDOW_ATTR
    from hsad.io.sensor_georef import ATTR as SENSOR_ATTR

    product = read_product(path)
    image = product.layer("SPECTRAL_IMAGE")
    if image is None:
        raise FileFormatError(f"the EnMAP product's spectral image ({product.prefix}-"
                              "SPECTRAL_IMAGE.TIF or .BSQ/.BIL/.BIP) is missing", product.xml)
    base = _open_layer(image, chunks, window)
    n = product.bands.wavelength.size
    if base.sizes["band"] != n:
        raise FileFormatError(f"has {base.sizes['band']} bands but its metadata describes {n}",
                              image)
    order = band_order(product, key)
    background = base.attrs.get("nodata")
    if background is None or not np.isfinite(background):
        background = (product.background if product.background is not None
                      else BACKGROUND[product.level])
    if np.issubdtype(base.dtype, np.integer):
        info = np.iinfo(base.dtype)
        background = background if info.min <= background <= info.max else None
    b = product.bands
    view = _PhysicalView(base.data, order, b.gain[order], b.offset[order], background)
    data = array_over(view, base.data.chunks[:2] + (order.size,),
                      "enmap-" + tokenize(base.data.name, order, background, view.gain,
                                          view.offset))
    attrs = {k: base.attrs[k] for k in (WINDOW_ATTR, SENSOR_ATTR) if k in base.attrs}
    attrs.update({"enmap_level": product.level, "enmap_key": (key or "full").lower(),
                  "enmap_metadata": str(product.xml), "product": product.prefix,
                  "units": LEVELS[product.level], "enmap_cover": dict(product.cover)})
    if product.started:
        attrs["acquisition_start"] = product.started
    return make_cube(data, transform=base.rio.transform(), crs=base.rio.crs, nodata=np.nan,
                     wavelength=b.wavelength[order],
                     fwhm=None if b.fwhm is None else b.fwhm[order],
                     good_band=~b.empty[order], source_format="enmap",
                     source_path=str(product.xml), attrs=attrs)


def product_part(path: str | os.PathLike) -> str | None:
    """The part of an EnMAP product file's name after its prefix, in capitals
    (``QL_QUALITY_CLOUD``, ``SPECTRAL_IMAGE``); None for a name of no product's file."""
    m = _PART.match(Path(path).name)
    return m.group("part").upper() if m else None


#: names moved to :mod:`hsad.io.enmap_quality` in 0.3.1, still served here (no warning)
MOVED = {n: "hsad.io.enmap_quality" for n in (
    "FLAGS", "clear_values", "cover_note", "is_pixel_mask", "layer_flag", "quality_valid")}


if TYPE_CHECKING:  # for type checkers; at run time __getattr__ serves these names
    from hsad.io.enmap_quality import FLAGS as FLAGS
    from hsad.io.enmap_quality import clear_values as clear_values
    from hsad.io.enmap_quality import cover_note as cover_note
    from hsad.io.enmap_quality import is_pixel_mask as is_pixel_mask
    from hsad.io.enmap_quality import layer_flag as layer_flag
    from hsad.io.enmap_quality import quality_valid as quality_valid

__getattr__ = moved_names(__name__, MOVED)


__all__ = [*MOVED, "KEYS", "LEVELS", "is_enmap", "is_product_name", "metadata_of", "open_enmap",
           "product_files", "product_part", "read_product", "why_not_enmap"]
