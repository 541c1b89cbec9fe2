"""Several scenes in one ``hsad detect``: the paths of each scene's files from templates
holding ``{stem}``, checked before any work, then one scene after another."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click

from hsad.errors import HsadError, ParameterError

#: the placeholder of a scene's name in the path options
STEM = "{stem}"
#: options naming files a detection writes (a folder for --save-stages)
WRITTEN = ("output", "mask_path", "polygons_path", "spectra_path", "png_path", "stages_dir")
#: options naming a scene's own input files, which may hold the placeholder too
PER_SCENE = ("truth", "valid_mask", "background", "labels")


def stem_of(scene: str | os.PathLike) -> str:
    """A scene's name in output paths: the file name without its extension (an EnMAP
    product's folder: the folder's name; ``x.img.hdr``: ``x``)."""
    name = Path(scene).name
    for suffix in (".hdr", ".HDR"):
        name = name.removesuffix(suffix)
    return Path(name).stem if "." in name else name


def fill(template, scene) -> str | None:
    """``template`` with ``{stem}`` replaced by the scene's stem (None stays None)."""
    return None if template is None else str(template).replace(STEM, stem_of(scene))


def scene_jobs(scenes: tuple[str, ...], options: dict) -> list[tuple[str, dict]]:
    """``(scene, options)`` for each scene, every ``{stem}`` filled; ParameterError before
    any work when several scenes would write one file, or the output names no scene."""
    if len(scenes) > 1 and STEM not in str(options.get("output")):
        raise ParameterError(f"{len(scenes)} scenes need an output named per scene: put "
                             f"{STEM} in -o (and in every other output), e.g. "
                             f"-o out/{STEM}_rx.tif")
    for key in WRITTEN:
        value = options.get(key)
        if len(scenes) > 1 and value is not None and STEM not in str(value):
            raise ParameterError(f"--{_flag(key)} {value}: every scene would write it; put "
                                 f"{STEM} in it")
    jobs = [(scene, {**options, **{k: fill(options.get(k), scene)
                                  for k in WRITTEN + PER_SCENE if options.get(k) is not None}})
            for scene in dict.fromkeys(scenes)]
    writers: dict[str, str] = {}
    inputs = {_key(scene): scene for scene, _ in jobs} if len(jobs) > 1 else {}
    for scene, filled in jobs:
        for key in WRITTEN:
            if filled.get(key) is None:
                continue
            target = _key(filled[key])
            if target in inputs:  # another scene of the batch, read after this one writes
                raise ParameterError(f"the output of {scene} would replace the scene "
                                     f"{inputs[target]}: name the outputs apart from the "
                                     "scenes (another folder, or a suffix after {stem})",
                                     filled[key])
            other = writers.setdefault(target, scene)
            if other != scene:
                raise ParameterError(f"{other} and {scene} would both write {filled[key]} "
                                     f"(one stem, {stem_of(scene)!r}): give them different "
                                     "names, or run them apart")
            if (len(jobs) > 1 and key != "stages_dir" and not options.get("overwrite")
                    and os.path.lexists(filled[key])):  # refused before the first scene
                raise ParameterError("exists; give --overwrite to replace it", filled[key])
    return jobs


def _key(path) -> str:
    """A path as compared: absolute, symbolic links resolved, case folded where the system
    folds it."""
    return os.path.normcase(os.path.realpath(path))


def _flag(key: str) -> str:
    return {"output": "output", "mask_path": "mask", "polygons_path": "polygons",
            "spectra_path": "spectra", "png_path": "png", "stages_dir": "save-stages"}[key]


def run_jobs(jobs: list[tuple[str, dict]], detect_one: Callable[..., None]) -> int:
    """Each scene in turn; a scene's user error (one line, as for one scene) does not stop
    the others. The exit status: 0, or 2 when a scene failed."""
    failed = []
    for i, (scene, options) in enumerate(jobs, 1):
        click.echo(f"scene {i}/{len(jobs)}: {scene}")
        try:
            detect_one(scene, **options)
        except HsadError as exc:
            click.echo(f"error: {exc}", err=True)
            failed.append(scene)
        except OSError as exc:
            problem = (exc.strerror or str(exc)).lower()
            click.echo(f"error: {exc.filename}: {problem}" if exc.filename
                       else f"error: {problem}", err=True)
            failed.append(scene)
    done = len(jobs) - len(failed)
    click.echo(f"{done} of {len(jobs)} scenes done"
               + (f"; failed: {', '.join(map(str, failed))}" if failed else ""))
    return 2 if failed else 0
