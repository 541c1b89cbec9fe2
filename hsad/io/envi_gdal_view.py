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
- reading stops at a line of :data:`MAX_LINE` characters or more (inside a braced value
  such a line only ends the value);
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
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

#: GDAL stops reading a header at a line this long or longer (``CPLReadLine2L``'s limit)
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
        if len(line) >= MAX_LINE:
            break
        line = line.lstrip(" ")
        if "=" not in line:
            continue
        working = line
        if "{" in working and "}" not in working:
            for more in lines:
                if len(more) >= MAX_LINE:  # ends the value; reading goes on after it
                    break
                working += more
                if "}" in more:
                    break
        key, value = working.split("=", 1)
        key = key.rstrip(" \t")
        if key:
            fields[key.replace(" ", "_").lower()] = value.lstrip(" \t")
    return fields


def why_unread(text: str, key: str) -> str:
    """Why GDAL's reader (:func:`gdal_fields`) does not see ``key`` (hsad's spelling:
    lower case, single spaces) in a header's ``text``: its line or its name, as written,
    or what stops the reading before it."""
    for line in _LINE_BREAK.split(text)[1:]:
        name = line.split("=", 1)[0]
        if "=" not in line or " ".join(name.lower().replace("_", " ").split()) != key:
            continue
        if line.lstrip(" ").startswith("\t"):
            return "its line starts with a tab"
        if name.strip() != " ".join(name.split()):
            return "its name is written with a tab or more than one space in it"
        break
    return f"a line over {MAX_LINE:,} characters, or a '{{' left open, before it"


#: the keys that lay out a file's pixels, as hsad spells them and as GDAL does
LAYOUT_KEYS = {"byte order": "byte_order", "interleave": "interleave",
               "header offset": "header_offset"}


def gdal_list(text: str) -> list[str]:
    """A ``{a, b, c}`` value split as GDAL's ``ENVIDataset::SplitList`` splits it: nothing
    without the leading ``{``; items up to the first ``}``, blanks around them removed, a
    trailing comma before ``}`` giving no item, and an item never ended dropped."""
    if not text.startswith("{"):
        return []
    items, i = [], 1
    while i < len(text) and text[i] != "}":
        start = i
        while start < len(text) and text[start] == " ":
            start += 1
        end = start
        while end < len(text) and text[end] not in ",}":
            end += 1
        if end == len(text):
            break
        items.append(text[start:end].rstrip(" "))
        i = end + 1
    return items


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
    """``text`` as C's ``atoi`` reads it on a 64-bit machine: the leading integer (0 when
    there is none), clamped to a C ``long`` and then wrapped to a 32-bit ``int``."""
    match = _LEADING_INTEGER.match(text)
    value = max(-2**63, min(2**63 - 1, int(match.group(1)))) if match else 0
    return (value + 2**31) % 2**32 - 2**31


#: a PAM sidecar larger than this is not read (no real one comes near)
MAX_PAM_BYTES = 16 * 2**20


def pam_bytes(data_path: str | Path) -> bytes | None:
    """The data file's ``.aux.xml`` sidecar (GDAL's PAM), or None without one, or when it is
    larger than :data:`MAX_PAM_BYTES` or unreadable."""
    path = Path(str(data_path) + ".aux.xml")
    try:
        if not path.is_file() or path.stat().st_size > MAX_PAM_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def pam_nodata(data_path: str | Path, bands: int) -> dict[int, float]:
    """``{band index (0-based): nodata}`` that the data file's ``.aux.xml`` sidecar sets,
    as GDAL applies them over the header's; {} without a readable sidecar."""
    text = pam_bytes(data_path)
    if text is None:
        return {}
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return {}
    values = {}
    for band in root.iter("PAMRasterBand"):
        node = band.find("NoDataValue")
        number = gdal_integer(band.get("band", ""))
        if node is None or not (node.text or "").strip() or not 1 <= number <= bands:
            continue  # an empty value leaves the header's
        exact = _le_hex_double(node.get("le_hex_equiv"))
        values[number - 1] = gdal_number(node.text.strip()) if exact is None else exact
    return values


def _le_hex_double(text: str | None) -> float | None:
    """A PAM ``le_hex_equiv``: the nodata's 8 bytes, little-endian, which GDAL prefers to
    the text; None unless it is exactly 8 bytes of hexadecimal."""
    try:
        raw = bytes.fromhex(text or "")
    except ValueError:
        return None
    return struct.unpack("<d", raw)[0] if len(raw) == 8 else None
