"""An ENVI header as GDAL's ENVI driver reads it (``ENVIDataset::ReadHeader``).

hsad parses headers with its own, stricter reader (:mod:`hsad.io.envi_header`), but the
georeferencing and the nodata value must be GDAL's, so that a map made by hsad lies where
GDAL and QGIS put the scene. GDAL assembles the ``key = value`` fields in its own way, and
some headers read differently under the two rules:

- a line without ``=`` is skipped (``;`` comments too, unless they hold ``=``); leading
  spaces are skipped, tabs are not;
- a value with ``{`` and no ``}`` continues on the following lines, joined without a
  separator, up to the first line holding a ``}`` (whatever braces it opens);
- a key keeps its characters, spaces becoming ``_`` (``map info`` and ``map_info`` are one
  key, ``map  info`` another) and is compared case-insensitively; a later key wins;
- reading stops at a line longer than :data:`MAX_LINE` characters;
- numbers are read as C's ``atof`` reads them: the longest leading number, 0 when there is
  none (``{-9999}``, ``none``), and a few spellings of infinity and NaN
  (:func:`gdal_number`);
- a ``<data file>.aux.xml`` sidecar (GDAL's PAM, written by GDAL tools and QGIS) replaces
  a band's nodata value with its ``NoDataValue`` (:func:`pam_nodata`).

The rules were checked against GDAL itself (rasterio's), case by case, in
``tests/test_conformance_gdal_header.py``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

#: GDAL stops reading a header at a line longer than this (``CPLReadLine2L``'s limit)
MAX_LINE = 10_000

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LEADING_NUMBER = re.compile(
    r"[ \t\n\v\f\r]*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)")
_LEADING_INTEGER = re.compile(r"[ \t\n\v\f\r]*([-+]?[0-9]+)")
_NAN = {"nan", "NaN", "-1.#QNAN", "-1.#IND", "1.#QNAN"}
_INF = {"inf", "INF", "Inf", "Infinity"}


def gdal_fields(text: str) -> dict[str, str]:
    """``{key: value}`` of a header's text as GDAL assembles them: keys lower-case with
    ``_`` for each space, values with their leading blanks removed and braces kept."""
    lines = iter(_LINE_BREAK.split(text)[1:])  # the first line is the "ENVI" signature
    fields: dict[str, str] = {}
    for line in lines:
        if len(line) > MAX_LINE:
            break
        line = line.lstrip(" ")
        if "=" not in line:
            continue
        working, too_long = line, False
        if "{" in working and "}" not in working:
            for more in lines:
                if len(more) > MAX_LINE:
                    too_long = True
                    break
                working += more
                if "}" in more:
                    break
        key, value = working.split("=", 1)
        key = key.rstrip(" \t")
        if key:
            fields[key.replace(" ", "_").lower()] = value.lstrip(" \t")
        if too_long:
            break
    return fields


def gdal_number(text: str) -> float:
    """``text`` as GDAL's ``CPLAtof`` reads it: the longest leading decimal number (no
    hexadecimal), 0.0 when it starts with none; ``inf``, ``NaN`` and a few other exact
    spellings of infinity and NaN; one leading ``+`` is skipped."""
    if text.startswith("+"):
        text = text[1:]
    if text.upper().startswith("-1.#INF"):
        return -math.inf
    if text.upper().startswith("1.#INF"):
        return math.inf
    if text in _NAN:
        return math.nan
    if text in _INF:
        return math.inf
    if text.startswith("-") and text[1:] in _INF:
        return -math.inf
    match = _LEADING_NUMBER.match(text)
    return float(match.group(1)) if match else 0.0


def gdal_integer(text: str) -> int:
    """``text`` as C's ``atoi`` reads it: the leading integer, 0 when there is none."""
    match = _LEADING_INTEGER.match(text)
    return int(match.group(1)) if match else 0


#: a PAM sidecar larger than this is not read (no real one comes near)
MAX_PAM_BYTES = 16 * 2**20


def pam_nodata(data_path: str | Path, bands: int) -> dict[int, float]:
    """``{band index (0-based): nodata}`` that the data file's ``.aux.xml`` sidecar sets,
    as GDAL applies them over the header's; {} without a readable sidecar."""
    path = Path(str(data_path) + ".aux.xml")
    try:
        if not path.is_file() or path.stat().st_size > MAX_PAM_BYTES:
            return {}
        root = ET.fromstring(path.read_bytes())
    except (OSError, ET.ParseError):
        return {}
    values = {}
    for band in root.iter("PAMRasterBand"):
        text = band.findtext("NoDataValue")
        number = gdal_integer(band.get("band", ""))
        if text is not None and 1 <= number <= bands:
            values[number - 1] = gdal_number(text.strip())
    return values
