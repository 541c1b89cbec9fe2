"""The files of a job's inputs, and the refusal of an output that would replace one.

:class:`KnownInputs` looks an input's files up once (an ENVI header's data file, an EnMAP
product's files); the command line's output plan (:mod:`hsad.cli.outputs`) and the Python
writers (:func:`refuse_input_files`: the scene a map or cube was read from, as its attrs
name it) refuse with it an output that is one of them, or that would remove one beside it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hsad.errors import OutputError

#: the attrs in which a cube (and a map, from its cube) names the files it was read from
SOURCE_ATTRS = ("source_path", "header_path", "data_path")


def input_files(path: str | os.PathLike) -> list[Path]:
    """An input and its companions: an ENVI header's data file, a data file's header (only
    when the file is read as ENVI: a MAT or GeoTIFF input's unrelated namesake ``.hdr`` is
    no input), an EnMAP product's files."""
    from hsad.errors import HsadError
    from hsad.io import detect_format
    from hsad.io.enmap import product_files
    from hsad.io.envi_files import find_data, find_header

    p = Path(path)
    out = [p]
    try:
        product = product_files(p)
        if product:
            return out + product
        if p.suffix.lower() == ".hdr":
            other = find_data(p)
        else:
            other = find_header(p) if detect_format(p) == "envi" else None
    except (OSError, HsadError):
        other = None
    if other is not None:
        out.append(other)
    return out


def path_key(p: str | os.PathLike) -> str:
    """A path as compared: absolute, symbolic links resolved, case folded where the system
    folds it. A link loop stays as it is (``Path.resolve`` raised RuntimeError)."""
    return os.path.normcase(os.path.realpath(p))


@dataclass
class KnownInputs:
    """The files of some inputs (:func:`input_files`) and the EnMAP products among them,
    looked up once (a batch of scenes shares them), with their paths and inodes for
    :meth:`find`."""

    products: list[Path]
    keys: dict[str, Path]
    inodes: dict[tuple[int, int], Path]

    @classmethod
    def of(cls, inputs: Iterable[str | os.PathLike | None]) -> KnownInputs:
        from hsad.io.enmap import metadata_of

        given = [p for p in inputs if p is not None]
        keys, inodes = {}, {}
        for source in (f for p in given for f in input_files(p)):
            keys.setdefault(path_key(source), source)
            with contextlib.suppress(OSError):
                st = os.stat(source)
                inodes.setdefault((st.st_dev, st.st_ino), source)
        return cls([xml for p in given if (xml := metadata_of(p)) is not None], keys, inodes)

    def find(self, file: Path) -> Path | None:
        """The input that ``file`` is (by its path, or another name of it), or None."""
        if (hit := self.keys.get(path_key(file))) is not None:
            return hit
        try:
            st = os.stat(file)
        except OSError:
            return None
        return self.inodes.get((st.st_dev, st.st_ino))

    @functools.cached_property
    def _folded(self) -> dict[tuple[str, str], Path]:
        """The inputs by folder and name in lower case, as GDAL finds a raster's sidecars
        (the folder as it is): made once for a batch's every output, not for each."""
        return {(os.path.dirname(k), os.path.basename(k).lower()): v
                for k, v in self.keys.items()}

    def removed_with(self, file: Path) -> Path | None:
        """The input that placing ``file`` would delete, or None: GDAL's
        sidecars of the file replaced (``.aux.xml``, ``.ovr``, ``.msk``, the last two in any
        letter case) and SQLite's journals go with it (:mod:`hsad.io.atomic`)."""
        from hsad.io.atomic import JOURNALS, STALE_SIDECARS

        folded = self._folded
        for suffix in (".aux.xml", *STALE_SIDECARS, *JOURNALS):
            companion = path_key(file.parent / f"{file.name}{suffix}")
            hit = self.find(Path(companion)) or (folded.get(
                (os.path.dirname(companion), os.path.basename(companion).lower()))
                if suffix in STALE_SIDECARS else None)
            if hit is not None:
                return hit
        return None


def source_files(*objs) -> list[str]:
    """The files that ``objs`` (cubes, maps, or anything else: skipped) were read from, as
    their :data:`SOURCE_ATTRS` name them, and a training mosaic's scenes (its ``scenes``
    attr), those that exist: a relative name is taken from the current folder, which
    names no file, or another one, after an ``os.chdir``."""
    found = []
    for obj in objs:
        attrs = getattr(obj, "attrs", None)
        if not isinstance(attrs, dict):
            continue
        scenes = attrs.get("scenes")
        named = [attrs.get(key) for key in SOURCE_ATTRS] + (
            list(scenes) if isinstance(scenes, (list, tuple)) else [])
        found += [os.fspath(value) for value in named if isinstance(value, (str, os.PathLike))
                  and os.fspath(value) and os.path.lexists(value)]
    return found


def refuse_input_files(files: Iterable[str | os.PathLike], *objs) -> None:
    """OutputError when writing ``files`` would replace a file that ``objs`` were read
    from (``write_geotiff(scores, "scene.img", like=cube)``: a typo that destroyed the
    scene), or would remove one as a sidecar of the file it replaces; the output is never
    the input, as on the command line."""
    sources = source_files(*objs)
    if not sources:
        return
    known = KnownInputs.of(sources)
    for file in map(Path, files):
        if (hit := known.find(file)) is not None:
            same = os.path.normcase(os.path.abspath(hit)) == os.path.normcase(
                os.path.abspath(file))
            what = ("is the file" if same else
                    f"would overwrite {hit}, the file")
            raise OutputError(f"{what} the data written was read from; inputs are never "
                              "replaced, give another name", file)
        if (removed := known.removed_with(file)) is not None:
            raise OutputError(f"writing it removes {removed.name} beside it (a sidecar of "
                              "the file it replaces), which the data written was read "
                              "from; give another name", file)


__all__ = ["SOURCE_ATTRS", "KnownInputs", "input_files", "path_key", "refuse_input_files",
           "source_files"]
