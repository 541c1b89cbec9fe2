"""Every output of a command, checked before any work starts: :func:`plan_outputs`.

A command lists its outputs (option, path, kind) and inputs; the plan refuses, with one
:class:`~hsad.errors.OutputError` naming the file:

- an empty path, a folder's (``out/``, ``.``) or a name of blanks;
- an extension that does not name the kind's format (``-o scores.png`` for a GeoTIFF);
- an existing file, unless ``--overwrite`` (an existing folder, always);
- an output that is an input (same resolved path or same file), even with ``--overwrite``;
- two outputs naming the same file;
- a parent folder that cannot be created or written to (missing folders are created later,
  by the writers, once the work succeeded).

Used as a context manager (``with plan:`` around the work), the plan also keeps files that
appear while the command runs (another process writing the same path) unless
``--overwrite`` is given, and if the work fails removes the outputs it created.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hsad.errors import OutputError
from hsad.io.atomic import keep_existing
from hsad.io.input_guard import KnownInputs, path_key
from hsad.stopping import pending_signal, raise_if_signalled

#: Accepted extensions and a description, by kind of output. ``None``: any extension.
FORMATS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "raster": ((".tif", ".tiff"), "a GeoTIFF (.tif or .tiff)"),
    "polygons": ((".geojson", ".json", ".gpkg"), "polygons (.geojson, .json or .gpkg)"),
    "png": ((".png",), "a PNG image (.png)"),
    "spectra": ((".csv", ".sli"), "spectra (.csv table or .sli ENVI spectral library)"),
    "model": ((".hsad", ".zip"), "a model file (.hsad, a zip)"),
    "markdown": ((".md", ".markdown", ".txt"), "a Markdown table (.md or .txt)"),
    "csv": ((".csv", ".txt"), "a CSV table (.csv or .txt)"),
    "cube": (None, "a cube (.tif/.tiff GeoTIFF, .mat MAT, any other name ENVI)"),
    "file": (None, "a file"),
}
#: Extensions a cube output may not have: they name other formats (ENVI takes the rest).
NOT_CUBE = (".hdr", ".png", ".jpg", ".jpeg", ".geojson", ".json", ".gpkg", ".csv", ".md",
            ".txt", ".hsad", ".zip", ".yaml", ".yml", ".toml")

FOLDERS_NOTE = ("Missing output folders are created; existing output files are refused "
                "unless --overwrite is given.")


def cube_files(path: str | os.PathLike) -> list[Path]:
    """Files a cube write creates or replaces: the path, plus ``.hdr`` for ENVI, and the
    headers readers would take before it (``out.img.hdr``, or ``out.HDR``, in any case:
    the writer removes them, so an existing one needs ``--overwrite``)."""
    from hsad.io.envi_writer import stale_headers

    p = Path(path)
    if p.suffix.lower() in (".tif", ".tiff", ".mat"):
        return [p]
    header = p.with_suffix(".hdr") if p.suffix else p.with_name(p.name + ".hdr")
    return [p, header, *stale_headers(p, header)]


def check_name(option: str, path: str | os.PathLike) -> None:
    """OutputError for a path that names no file: empty (``--plot ''`` was dropped
    unsaid), a folder (``out/``, ``.``: the file was written without the slash), or a
    name of blanks."""
    text = os.fspath(path)
    if text.strip() == "":
        raise OutputError(f"{option} is an empty path")
    name = os.path.basename(text)  # as written: Path("x/.").name is "x"
    if text.endswith(("/", os.sep)) or name in ("", ".", ".."):
        raise OutputError(f"{option} names a folder, not a file: give a file name", text)
    if name.strip() == "":
        raise OutputError(f"{option}: a file name of blanks only", text)


def _check_format(option: str, path: Path, kind: str) -> None:
    suffixes, what = FORMATS[kind]
    ext = path.suffix.lower()
    if suffixes is not None and ext not in suffixes:
        if path.suffix:
            got = f", not '{path.suffix}'"
        elif path.is_dir():
            got = ": give a file name in that folder, not the folder"
        else:
            got = ": give a file name with its extension"
        raise OutputError(f"{option} writes {what}{got}", path)
    if kind == "cube" and ext in NOT_CUBE:
        raise OutputError(f"{option} writes {what}, not '{path.suffix}'", path)


def _check_folder(path: Path) -> None:
    """The first existing ancestor must be a folder this process can write to, and each
    name still to be made no longer than its file system allows (a missing folder would
    otherwise let the writer fail on its temporary file's name)."""
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows): NTFS's
        longest = 255
    for part in path.relative_to(folder).parts:
        if len(os.fsencode(part)) > longest:
            raise OutputError(f"file name too long ({len(os.fsencode(part))} bytes, at most "
                              f"{longest} here)", path)
    if not folder.is_dir():
        raise OutputError("is not a folder, so the output cannot go under it", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError("folder is not writable", folder)


@dataclass
class Plan:
    """The checked output files. ``with plan:`` keeps files that appear meanwhile and, if
    the block fails, removes the outputs it created and the folders made for them (files
    replaced under ``--overwrite`` are whole new versions and stay). ``record``: a file
    kept while the block replaces files that exist, so that a block that fails or is
    killed after replacing some of them leaves it beside outputs of two runs (removed
    when a block ends well, or fails having replaced none or all of them)."""

    files: list[Path] = field(default_factory=list)
    overwrite: bool = False
    new: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    record: Path | None = None

    def add(self, file: Path) -> None:
        self.files.append(file)
        if not os.path.lexists(file):
            self.new.append(file)
        folder = file.parent
        while not os.path.lexists(folder) and folder != folder.parent:
            if folder not in self.folders:
                self.folders.append(folder)
            folder = folder.parent

    def __enter__(self) -> Plan:
        new = {path_key(f) for f in self.new}
        if self.record is not None and any(path_key(f) not in new for f in self.files):
            with contextlib.suppress(OSError):  # beside the map, in a folder maybe new
                self.record.parent.mkdir(parents=True, exist_ok=True)  # (removed if empty)
                self.record.write_text("hsad: this run replaced some of the outputs beside "
                                       "this file and did not end; they are of two runs\n")
        self._ctx = keep_existing(not self.overwrite)
        self._placed = self._ctx.__enter__()
        return self

    def __exit__(self, kind, exc, tb) -> None:
        self._ctx.__exit__(kind, exc, tb)
        new = {path_key(f) for f in self.new}
        ended = kind is None and pending_signal() is None
        older = {path_key(f) for f in self.files} - new
        replaced = {path_key(f) for f, _, _ in self._placed} & older
        if self.record is not None and (ended or not replaced or replaced == older):
            with contextlib.suppress(OSError):  # whole; or no older output replaced, or
                self.record.unlink()  # every one (the rest, this run's, removed below)
        if ended:
            return
        for file, dev, ino in self._placed:
            with contextlib.suppress(OSError):
                st = os.stat(file)
                if path_key(file) in new and (st.st_dev, st.st_ino) == (dev, ino):
                    file.unlink()  # ours, not one another process wrote since
        for folder in sorted(self.folders, key=lambda f: len(f.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        raise_if_signalled()  # the block ended, but a signal Python printed came meanwhile


def plan_outputs(outputs: Iterable[tuple[str, str | os.PathLike | None, str]], *,
                 inputs: Iterable[str | os.PathLike | None] | KnownInputs = (),
                 overwrite: bool = False, record: str | os.PathLike | None = None) -> Plan:
    """Check ``outputs`` — ``(option, path or None, kind)`` with ``kind`` a key of
    :data:`FORMATS` — against ``inputs`` (paths, or :class:`KnownInputs`) before any work;
    raise OutputError or return the :class:`Plan` of the files to be written (``record``:
    its :attr:`Plan.record`)."""
    from hsad.io.enmap import is_product_name

    known = inputs if isinstance(inputs, KnownInputs) else KnownInputs.of(inputs)
    products = known.products
    plan, seen = Plan(overwrite=overwrite, record=None if record is None else Path(record)), {}
    for option, path, kind in outputs:
        if path is None:
            continue
        check_name(option, path)
        path = Path(path)
        _check_format(option, path, kind)
        if kind in ("raster", "polygons") or (kind == "cube" and path.suffix.lower() in (
                ".tif", ".tiff")):  # written by GDAL
            from hsad.io import gdal_name_problem

            if (problem := gdal_name_problem(path)) is not None:
                raise OutputError(f"{option}: {problem.replace('open', 'write')}", path)
        for file in cube_files(path) if kind == "cube" else [path]:
            if file.is_dir():
                raise OutputError(f"{option}: is a folder, not a file", file)
            if file.exists() and not file.is_symlink() and not file.is_file():  # /dev/null,
                # a pipe, a socket (a symbolic link is replaced, not what it points to)
                raise OutputError(f"{option}: not a regular file (a device, pipe or socket, "
                                  "which the rename into place would replace); hsad writes "
                                  "files only", file)
            hit = known.find(file)
            if hit is not None:
                raise OutputError(f"{option} would overwrite the input {hit}; inputs are never "
                                  f"replaced, even with --overwrite", file)
            if (removed := known.removed_with(file)) is not None:
                raise OutputError(f"{option}: writing it removes {removed.name} beside it "
                                  "(a sidecar of the file it replaces), which is an input; "
                                  "give another name", file)
            xml = next((x for x in products if is_product_name(file, x)), None)
            if xml is not None:
                raise OutputError(f"{option} is named as a file of the input EnMAP product "
                                  f"{xml.name[:-len('-METADATA.XML')]}, which would then "
                                  "read it; give another name", file)
            if os.path.lexists(file) and not overwrite:
                raise OutputError("exists; give --overwrite to replace it", file)
            _check_folder(file)
            key = path_key(file)
            if key in seen:
                raise OutputError(f"{seen[key]} and {option} name the same file", file)
            seen[key] = option
            plan.add(file)
    return plan


__all__ = ["FOLDERS_NOTE", "FORMATS", "KnownInputs", "Plan", "check_name", "path_key",
           "plan_outputs"]
