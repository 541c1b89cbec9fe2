"""Several scenes in one ``hsad detect``: the paths of each scene's files from templates
holding ``{stem}``, checked before any work, then one scene after another."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from hsad.cli.detect_plan import changed_since, made_otherwise, planned
from hsad.cli.options import echo, say
from hsad.cli.outputs import path_key
from hsad.errors import HsadError, ParameterError

#: the placeholder of a scene's name in the path options
STEM = "{stem}"
#: options naming files a detection writes (a folder for --save-stages)
WRITTEN = ("output", "mask_path", "polygons_path", "spectra_path", "spectra_png", "png_path",
           "stages_dir", "stages_png")
#: options naming a scene's own input files, which may hold the placeholder too
PER_SCENE = ("truth", "valid_mask", "background", "labels")
#: options naming one input for every scene
SHARED = ("config_path", "model", "library_path", "wavelength_file")
_FLAGS = {"output": "-o", "mask_path": "--mask", "polygons_path": "--polygons",
          "spectra_path": "--spectra", "spectra_png": "--spectra-png", "png_path": "--png",
          "stages_dir": "--save-stages", "stages_png": "--stages-png",
          "config_path": "--config", "model": "--model", "library_path": "--library",
          "wavelength_file": "--wavelength-file"}


#: what ends a file name as its extension: a letter and at most four letters or digits
#: (``.img``, ``.tiff``, ``.he5``); ``f.v1_rfl_subset`` or ``flight.001`` have none
EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}")


def stem_of(scene: str | os.PathLike) -> str:
    """A scene's name in output paths: the file name without its extension (an EnMAP
    product's folder: the folder's name, also given as ``.``; ``x.img.hdr``: ``x``; an
    ENVI data file without extension keeps its dots: ``f.v1_rfl_subset``)."""
    name = Path(os.path.abspath(scene)).name
    for suffix in (".hdr", ".HDR"):
        name = name.removesuffix(suffix)
    stem, dot, suffix = name.rpartition(".")
    return stem if stem and EXTENSION.fullmatch(dot + suffix) else name


#: a placeholder in an output path: only ``{stem}`` is one
PLACEHOLDER = re.compile(r"\{[^{}/\\]*\}")


def fill(template, scene) -> str | None:
    """``template`` with ``{stem}`` replaced by the scene's stem (None stays None)."""
    return None if template is None else str(template).replace(STEM, stem_of(scene))


def distinct_scenes(scenes) -> tuple[str, ...]:
    """The scenes, each once: one path named twice (``./x.tif``), or an ENVI header given
    beside the data file it describes (``x.hdr``, ``x.img``: a ``lines/*`` glob), is one
    scene; anything else stays apart (``x.bil`` with its own ``x.bil.hdr`` is not the
    scene of ``x.hdr``)."""
    unique: dict[str, str] = {}
    for scene in scenes:
        unique.setdefault(_scene_key(scene), scene)
    return tuple(unique.values())


def _scene_key(scene) -> str:
    """An ENVI scene's header (the file a data file is read with), else the path itself."""
    from hsad.io import detect_format
    from hsad.io.envi_files import find_header

    if str(scene).lower().endswith(".hdr"):
        return path_key(scene)
    try:
        header = find_header(scene) if detect_format(scene) == "envi" else None
    except (OSError, HsadError):
        header = None
    return path_key(header if header is not None else scene)


def scene_jobs(scenes: tuple[str, ...], options: dict) -> list[tuple[str, dict]]:
    """``(scene, options)`` for each distinct scene, every ``{stem}`` filled;
    ParameterError before any work when the outputs are not named per scene."""
    for key in WRITTEN:
        if options.get(key) is not None and str(options[key]).strip() == "":
            raise ParameterError(f"{_FLAGS[key]} is an empty path")
    for key in SHARED:
        if STEM in str(options.get(key) or ""):
            raise ParameterError(f"{_FLAGS[key]} {options[key]}: one file for every scene; "
                                 f"{STEM} applies to the outputs and to --truth, "
                                 "--valid-mask, --background and --labels")
    for key in WRITTEN + PER_SCENE:
        unknown = [m for m in PLACEHOLDER.findall(str(options.get(key) or "")) if m != STEM]
        if unknown:
            flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
            raise ParameterError(f"{flag} {options[key]}: unknown placeholder "
                                 f"{unknown[0]} (the one there is: {STEM})")
    scenes = distinct_scenes(scenes)
    if len(scenes) > 1 and STEM not in str(options.get("output")):
        raise ParameterError(f"{len(scenes)} scenes need an output named per scene: put "
                             f"{STEM} in -o (and in every other output), e.g. "
                             f"-o out/{STEM}_rx.tif")
    for key in WRITTEN:
        value = options.get(key)
        if len(scenes) > 1 and value is not None and STEM not in str(value):
            raise ParameterError(f"{_FLAGS[key]} {value}: every scene would write it; put "
                                 f"{STEM} in it")
    if len(scenes) > 1 and options.get("key") is not None:  # for the scenes that take one
        from hsad.io import keys_for

        keys = dict(zip(scenes, keys_for(scenes, options["key"]), strict=True))
    else:
        keys = {scene: options.get("key") for scene in scenes}
    return [(scene, {**options, **{k: fill(options.get(k), scene)
                                   for k in WRITTEN + PER_SCENE if options.get(k) is not None},
                     **({"key": keys[scene]} if "key" in options else {})})
            for scene in scenes]


def batch_inputs(jobs: list[tuple[str, dict]]) -> list[str]:
    """Every input of every scene of a batch: none may be any scene's output."""
    return [str(v) for scene, o in jobs
            for v in (scene, *(o.get(k) for k in PER_SCENE + SHARED)) if v]


def naming(scene, message) -> str:
    """``message`` led by the scene it is about, once: a message that names the scene
    first already (as ``path: …``, the path as given or absolute) keeps its own words."""
    text = str(message)
    names = {os.fspath(scene), os.path.abspath(os.fspath(scene))}
    return text if any(text.startswith(f"{n}:") for n in names) else f"{scene}: {text}"


class SceneSkipped(Exception):
    """A scene of a resumed batch (``--skip-existing``) found done, or being made, when its
    turn came: by another run of the same batch (``elsewhere``: being made, not done)."""

    def __init__(self, reason: str, elsewhere: bool = False):
        super().__init__(reason)
        self.elsewhere = elsewhere


def unfinished_record(output) -> Path:
    """The file beside the map ``output`` that says a run replacing the scene's outputs
    (``--overwrite``) did not end: ``.<name>.hsad-unfinished`` (:attr:`Plan.record
    <hsad.cli.outputs.Plan>`). Its outputs may be of two runs, so the scene is not done.
    A name too long to take the ending is shortened as temporary files' are."""
    from hsad.io.temp_names import temp_tag

    return Path(output).parent / f".{temp_tag(Path(output))}.hsad-unfinished"


def _claim_path(output) -> Path:
    from hsad.io.temp_names import temp_tag

    return Path(output).parent / f".{temp_tag(Path(output))}.hsad-claim"


def drop_stale_claim(output) -> None:
    """Remove the claim beside the map ``output`` (:func:`scene_claim`) when no run holds
    it: one a killed run left, which a run that made the scene whole has no use for (a
    claim this process holds, another open file of it, is kept)."""
    from hsad.io.temp_names import fcntl, lock_now

    path = _claim_path(output)
    if fcntl is None or not path.exists():
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        if lock_now(fd):
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def scene_claim(output) -> Iterator[bool]:
    """Whether this run holds the claim on the scene whose map is ``output`` (a lock file
    beside it, ``.<name>.hsad-claim``, removed after): False while another hsad run holds
    it. Without file locks (Windows) every claim is granted."""
    from hsad.io.temp_names import fcntl, lock_now

    path = _claim_path(output)
    if fcntl is None:
        yield True
        return
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # a folder one cannot write in: the outputs' own check says so
        yield True
        return
    try:
        if not lock_now(fd):
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            for folder in made:  # the folders made for it, if nothing else came in them
                with contextlib.suppress(OSError):
                    folder.rmdir()
    finally:
        os.close(fd)


def without_maps(jobs: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The jobs whose scene is not a map ``hsad detect`` wrote: in a batch (a glob that
    meets the outputs of an earlier run) each such map is skipped with a warning; one map
    alone is detected, with a warning."""
    from hsad.io.maps import written_map

    kept = []
    for scene, filled in jobs:
        what = written_map(scene)
        if what is None:
            kept.append((scene, filled))
            continue
        message = f"a map hsad detect wrote ({what}), not a scene"
        if len(jobs) == 1:
            echo(f"warning: {scene}: {message}: the scene it was made of is what to "
                       "detect in", err=True)
            return jobs
        echo(f"warning: {scene}: {message}: skipped", err=True)
    if not kept:
        raise ParameterError(f"every one of the {len(jobs)} files is a map hsad detect wrote, "
                             "not a scene")
    return kept


def not_done(jobs: list[tuple[str, dict]], quiet: bool = False
              ) -> tuple[list[tuple[str, dict]], list[str]]:
    """The jobs of the scenes not started (--skip-existing): none of their planned files
    there. A scene whose every file is there is skipped; one with some of them (stopped
    part-way, or an output added to a finished batch) is left out with an error naming
    one, the others going on. Returns the jobs to run and the scenes left out so (with
    ``quiet``, nothing is printed, and the scenes left out are their errors)."""
    left, partial = [], []
    for scene, filled in jobs:
        paths = [path for _, path, _ in planned(filled) if path is not None]
        there = [path for path in paths if os.path.lexists(path)]
        problem = None
        if there and unfinished_record(filled["output"]).exists():
            problem = (f"{scene}: an earlier run replacing its outputs (--overwrite) did "
                       f"not end, so they may be of two runs ({there[0]}): run it with "
                       "--overwrite instead of --skip-existing")
        elif len(there) == len(paths) and (bad := damaged(filled)) is not None:
            problem = (f"{scene}: its output {bad}, so the scene is not done: remove the "
                       "scene's outputs to redo it, or run it with --overwrite")
        elif len(there) == len(paths) and (other := made_otherwise(filled)) is not None:
            problem = (f"{scene}: its outputs exist, made with other settings ({other}): "
                       "run it with --overwrite to redo it with these")
        elif len(there) == len(paths):
            if not quiet:
                say(f"skipped {scene}: its outputs exist")
                if (note := changed_since(scene, filled)) is not None:
                    echo(f"warning: {scene}: {note}; its outputs are kept: run it with "
                         "--overwrite if its data changed", err=True)
        elif there:
            problem = (f"{scene}: {len(there)} of its {len(paths)} outputs exist "
                       f"({there[0]}): remove them to redo the scene, or run it with "
                       "--overwrite instead of --skip-existing")
        else:
            left.append((scene, filled))
        if problem is not None:
            if not quiet:
                echo(f"error: {problem}", err=True)
            partial.append(problem if quiet else scene)
    return left, partial


def damaged(filled: dict) -> str | None:
    """The first of a scene's outputs that is not whole (hsad places its files whole, so
    another copy or a failing disk broke it) and how — empty, a GeoTIFF with a tile
    missing or none at all, a PNG without its end — else None. Checked for a scene whose
    outputs all exist, before --skip-existing skips it."""
    from hsad.io.geotiff_writer import incomplete

    for _, path, kind in planned(filled):
        if path is None:
            continue
        try:
            if os.path.getsize(path) == 0:
                return f"{path} is empty"
            if kind == "raster" and (problem := incomplete(path)) is not None:
                return f"{path} is damaged ({problem})"
            if kind == "png":
                with open(path, "rb") as fh:
                    fh.seek(max(0, os.path.getsize(path) - 12))
                    if b"IEND" not in fh.read():
                        return f"{path} is cut short (no PNG end)"
        except OSError as exc:
            return f"{path} cannot be read ({(exc.strerror or str(exc)).lower()})"
    return None


def check_collisions(jobs: list[tuple[str, dict]]) -> None:
    """ParameterError when two scenes would write one file (any of their planned files:
    maps, styles, stage maps, side files)."""
    writers: dict[str, str] = {}
    for scene, filled in jobs:
        for _, path, _ in planned(filled):
            if path is None:
                continue
            other = writers.setdefault(path_key(path), scene)
            if other != scene:
                stem = stem_of(scene)
                same = f" (one stem, {stem!r})" if stem_of(other) == stem else ""
                raise ParameterError(f"{other} and {scene} would both write {path}{same}: "
                                     "give them different names, or run them apart", path)


def run_jobs(jobs: list[tuple[str, dict]], detect_one: Callable[..., None], *,
             skipped: int = 0, left_out: list[str] = ()) -> int:
    """Each scene in turn; a scene's error (one line, as for one scene, out of memory
    included) does not stop the others, and its warnings name it; a scene ``detect_one``
    skips (:class:`SceneSkipped`) is said so. The exit status: 0, or 2 when a scene failed.
    An interrupt stops the batch, naming the scenes done. The summary also counts the
    scenes a resumed batch skipped as done (``skipped``) and names those it left out
    (``left_out``: some of their outputs there, :func:`not_done`)."""
    failed, done, elsewhere = [], [], []
    for i, (scene, options) in enumerate(jobs, 1):
        say(f"scene {i}/{len(jobs)}: {scene}")
        problem = None
        try:
            with warnings.catch_warnings():
                warnings.showwarning = (lambda message, *_, s=scene, **__:
                                        echo(f"warning: {naming(s, message)}", err=True))
                detect_one(scene, **options)
        except SceneSkipped as exc:
            say(f"skipped {scene}: {exc}")
            (elsewhere if exc.elsewhere else done).append(scene)
            continue
        except Exception as exc:  # what the command line reports in one line, per scene
            from hsad.cli.main import user_problem

            problem = user_problem(exc, ["detect", scene])
            if problem is None:
                raise
            problem = naming(scene, problem)
        except KeyboardInterrupt:
            with contextlib.suppress(OSError, ValueError):  # a terminal gone (SIGHUP)
                echo(f"stopped at scene {i}/{len(jobs)}; done: "
                           f"{', '.join(map(str, done)) or 'none'}", err=True)
            raise
        if problem is None:
            done.append(scene)
        else:
            echo(f"error: {problem}", err=True)
            failed.append(scene)
    summary = (f"{len(done)} of {len(jobs)} scenes done"
               + (f"; failed: {', '.join(map(str, failed))}" if failed else "")
               + (f"; left to another hsad run making them: "
                  f"{', '.join(map(str, elsewhere))}" if elsewhere else "")
               + resumed_summary(skipped, left_out))
    # failures and scenes not known done: a result, --quiet or not
    (echo if failed or elsewhere or left_out else say)(summary)
    return 2 if failed else 0


def resumed_summary(skipped: int, left_out) -> str:
    """What a resumed batch's summary adds: the scenes skipped as done before, and those
    left out (the summary had said "1 of 1 scenes done" beside exit status 2)."""
    return ((f"; skipped as done before: {skipped}" if skipped else "")
            + (f"; left out (the errors above say why): {', '.join(map(str, left_out))}"
               if left_out else ""))
