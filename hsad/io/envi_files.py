"""An ENVI file's two parts found from either: :func:`find_header` for a data file
(``scene.img.hdr`` or ``scene.hdr``) and :func:`find_data` for a header (``scene``,
``scene.img``, ``scene.bil``...), names matched case-insensitively."""

from __future__ import annotations

import os
from pathlib import Path

#: Data-file extensions tried (after the bare name) when only the header is given.
DATA_EXTENSIONS = (".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".sli", ".bin")


def _ci_sibling(directory: Path, name: str) -> Path | None:
    """``directory/name`` if it exists as a file, matching the name case-insensitively."""
    exact = directory / name
    if exact.is_file():
        return exact
    try:
        entries = os.listdir(directory)
    except OSError:
        return None
    low = name.lower()
    for entry in sorted(entries):
        if entry.lower() == low and (directory / entry).is_file():
            return directory / entry
    return None


def header_candidates(data_path: Path) -> list[str]:
    """Header names tried for a data file: ``<name>.hdr`` then ``<stem>.hdr``."""
    names = [data_path.name + ".hdr"]
    if data_path.suffix:
        names.append(data_path.stem + ".hdr")
    return names


def find_header(data_path: str | os.PathLike) -> Path | None:
    """Return the ENVI header of a data file (``scene.img.hdr`` or ``scene.hdr``), or None.

    Extensions match case-insensitively (``SCENE.HDR``).
    """
    p = Path(data_path)
    if p.suffix.lower() == ".hdr":
        return None
    for name in header_candidates(p):
        found = _ci_sibling(p.parent, name)
        if found is not None and found != p:
            return found
    return None


def data_candidates(header_path: Path, interleave: str | None = None) -> list[str]:
    """Data-file names tried for a header: the bare name, then the usual extensions."""
    base = header_path.stem if header_path.suffix.lower() == ".hdr" else header_path.name
    exts = list(DATA_EXTENSIONS)
    if interleave and "." + interleave in exts:
        exts.remove("." + interleave)
        exts.insert(0, "." + interleave)
    return [base] + [base + ext for ext in exts]


def find_data(header_path: str | os.PathLike, interleave: str | None = None) -> Path | None:
    """Return the data file of a header (``scene``, ``scene.img``, ``scene.bil``...), or None."""
    h = Path(header_path)
    for name in data_candidates(h, interleave):
        found = _ci_sibling(h.parent, name)
        if found is not None and found != h:
            return found
    return None


__all__ = ["DATA_EXTENSIONS", "data_candidates", "find_data", "find_header", "header_candidates"]
