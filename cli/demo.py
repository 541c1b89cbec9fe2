"""``hsad demo``: the whole job on a built-in synthetic scene, end to end."""

from __future__ import annotations

from pathlib import Path

import click

from hsad.cli.options import device_option, overwrite_option, put, seed_option
from hsad.cli.outputs import plan_outputs
from hsad.errors import OutputError

#: Marks a folder written by ``hsad demo``: a later demo replaces its files there.
MARKER = ".hsad-demo"


def _outputs(out: Path, method: str) -> list[tuple[str, Path, str]]:
    return [("--out", out / MARKER, "file"), ("--out", out / "scene" / "scene.img", "cube"),
            ("--out", out / "scene" / "scene_truth.tif", "raster"),
            ("--out", out / f"{method}_scores.tif", "raster"),
            ("--out", out / f"{method}_scores.qml", "file"),
            ("--out", out / f"{method}_mask.tif", "raster"),
            ("--out", out / f"{method}_mask.qml", "file"),
            ("--out", out / f"{method}_anomalies.gpkg", "polygons"),
            ("--out", out / f"{method}_quicklook.png", "png"), ("--out", out / "roc.png", "png")]


@click.command("demo", epilog="The folder is created if missing. A later demo replaces the "
               "files of an earlier one in it (marked by a .hsad-demo file); any other "
               "non-empty folder is refused unless --overwrite is given.")
@click.option("--out", "out_dir", default="demo_output", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the scene and the outputs.")
@click.option("-m", "--method", default=None,
              help="Detector (default: hadgan when available, else rx).")
@click.option("--size", default=128, show_default=True, type=click.IntRange(32, 4096),
              help="Scene rows and columns.")
@seed_option
@device_option
@overwrite_option
def command(out_dir, method, size, seed, device, overwrite):
    """Write a synthetic ENVI scene, detect anomalies, export GeoTIFF/PNG/polygons, print AUC."""
    from hsad import detectors

    out = Path(out_dir)
    method = method or ("hadgan" if "hadgan" in detectors.available() else "rx")
    det = detectors.get(method)
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not overwrite:
        raise OutputError("folder is not empty and was not written by `hsad demo`; give "
                          "--overwrite or another --out", out)
    with plan_outputs(_outputs(out, method), overwrite=True):
        _run(out, det, method, size, seed, device)


def _run(out: Path, det, method: str, size: int, seed, device) -> None:
    import numpy as np

    from hsad import detectors, open_cube, pipeline, synthetic
    from hsad.io.atomic import atomic_path
    from hsad.outputs.metrics import evaluate
    from hsad.outputs.plots import plot_roc

    with atomic_path(out / MARKER) as tmp:
        tmp.write_text("written by `hsad demo`, which replaces its own files here\n",
                       encoding="utf-8")
    seed = 0 if seed is None else seed
    scene = synthetic.make_scene(rows=size, cols=size, seed=seed)
    paths = synthetic.write_scene(scene, out / "scene")
    put(f"wrote demo scene {paths['cube']} ({size}x{size}x{scene.cube.shape[2]}, "
        f"{int(scene.truth.sum())} target pixels, {scene.cube.rio.crs})")

    cube = open_cube(paths["cube"])
    for name, val in (("seed", seed), ("device", device)):
        if val is not None and name in det.get_params():
            det.set_params(**{name: val})
    truth = scene.truth.values if hasattr(scene.truth, "values") else scene.truth
    result = pipeline.run_detector(det, cube)
    mask = pipeline.threshold(result)  # the default rule: no ground truth used
    written = pipeline.export(result, cube, scores_path=out / f"{method}_scores.tif", cog=True,
                              mask_path=out / f"{method}_mask.tif",
                              polygons_path=out / f"{method}_anomalies.gpkg",
                              png_path=out / f"{method}_quicklook.png", truth=truth)
    maps = {method: result.scores.values}
    if method != "rx":
        maps["rx"] = detectors.get("rx").fit_score(cube).values
    plot_roc(maps, truth, path=out / "roc.png")
    written["roc"] = out / "roc.png"
    for what, path in written.items():
        put(f"wrote {what.replace(':', ' ')}: {path}")  # "style:mask" as "style mask"
    for name, smap in maps.items():
        m = evaluate(smap, truth)
        put(f"{name:8s} AUC(D,F) = {m['auc_df']:.4f}   AUC(F,tau) = {m['auc_ft']:.4f}")
    flagged = np.asarray(mask.values, dtype=bool)
    target = np.asarray(truth, dtype=bool)
    put(f"mask at the default threshold {mask.attrs['threshold']:.4g} (no ground truth "
        f"used; `hsad detect --help`), checked against the truth: "
        f"{int((flagged & target).sum())} of {int(target.sum())} target pixels found, "
        f"{int((flagged & ~target).sum())} false alarms (rate "
        f"{(flagged & ~target).sum() / max((~target).sum(), 1):.4f})")
    put(f"{method} took {result.seconds:.1f} s; open {written['scores']} in QGIS.")
