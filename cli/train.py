"""``hsad train``: fit a detector on a scene and save it as a model file (neural networks,
or the statistics of RX, UTD, RXD-UTD, local-mean RX and cluster RX)."""

from __future__ import annotations

import os

import click

from hsad.cli.batch import STEM, distinct_scenes, fill
from hsad.cli.options import (
    background_option,
    band_options,
    band_selection,
    check_agree,
    chunks_option,
    device_option,
    fusion_option,
    key_option,
    labels_option,
    mask_options,
    overwrite_option,
    progress_option,
    quiet_option,
    say,
    seed_option,
    subset_selection,
    train_subset_options,
)
from hsad.cli.outputs import FOLDERS_NOTE, plan_outputs
from hsad.config import parse_params


@click.command("train", epilog=FOLDERS_NOTE)
@click.argument("scenes", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-m", "--method", default="hadgan", show_default=True,
              help="Detector to train (see `hsad methods`): a neural one, or rx, utd, rxd-utd,"
                   " local-mean-rx, cluster-rx (their statistics are saved).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (.hsad or .zip: config.json + model.safetensors).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Hyperparameter, repeatable (e.g. -p lam=0.3 -p input=patch).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs.")
@click.option("--loss-plot", type=click.Path(dir_okay=False),
              help="PNG of the loss curves per epoch (.png).")
@key_option
@click.option("--train-mask", type=click.Path(dir_okay=False),
              help="Train only on the non-zero pixels of this mask (GeoTIFF, ENVI or MAT), or "
                   "inside the polygons of a vector file (GeoPackage, Shapefile, GeoJSON…).")
@click.option("--train-window", metavar="R0,R1,C0,C1",
              help="Train only on rows R0..R1-1 and columns C0..C1-1 (known background; of "
                   "the --srcwin/--projwin window when one is given).")
@progress_option
@band_options
@train_subset_options
@mask_options
@background_option
@labels_option
@fusion_option
@chunks_option
@seed_option
@device_option
@overwrite_option
@quiet_option
def command(scenes, method, output, params, epochs, loss_plot, key, train_mask, train_window,
            progress, wavelengths, exclude_wavelengths, band_indices, drop_bad_bands,
            wavelength_file, srcwin, projwin, projwin_crs, nodata, valid_mask, exclude_quality,
            apply_scale, background, labels, fusion, chunks, seed, device, overwrite):
    """Train METHOD on SCENES (ENVI, GeoTIFF, MAT, EMIT netCDF, PRISMA .he5 or an EnMAP
    product; one or several) and save the fitted model.

    Neural detectors save their networks; RX, UTD, RXD-UTD, local-mean RX and cluster RX
    save their background statistics (mean, covariance, clusters), from the background
    area or training region when given.

    Apply it to another scene with `hsad detect OTHER --model MODEL`. The model records
    the bands it was trained on (after --wavelengths, --bands ...) and reads the same
    wavelengths from OTHER. With --srcwin or --projwin the model is fitted on that window
    of each scene alone, as `hsad detect` analyses it.

    Several scenes (flight lines of one campaign, with the same bands) give one model fitted
    on all their pixels together, each scene weighing by its valid pixels. --valid-mask,
    --train-mask and --background may then hold {stem}, each scene's file name without its
    extension (a background given as polygons applies to every scene it covers).
    """
    from hsad import detectors, open_cube
    from hsad.cube.background import fit_detector
    from hsad.errors import ParameterError
    from hsad.io import keys_for
    from hsad.io.model_archive import save_model
    from hsad.io.quality import check_flags, parse_flags
    from hsad.pipeline import apply_fusion, check_labels, prepare_cube

    merged = parse_params(params)
    check_agree(merged, seed=seed, epochs=epochs)
    quality = parse_flags(exclude_quality)  # a bad flag fails before any work
    bands = band_selection(wavelengths, exclude_wavelengths, band_indices, drop_bad_bands,
                           wavelength_file)
    subset = subset_selection(srcwin, projwin, projwin_crs)
    neural_only = {"--epochs": epochs, "--loss-plot": loss_plot, "--device": device,
                   "--fusion": fusion}
    det = detectors.get(method, **merged)
    check_labels(det, labels)
    neural = callable(getattr(det, "_build", None))
    if not neural and not det.model_state:
        raise ParameterError(f"method {method!r} has no model to train: it fits nothing that "
                             "applies to another scene; use `hsad detect`")
    if not neural:
        given = [k for k, v in neural_only.items() if v is not None]
        if given:
            raise ParameterError(f"{', '.join(given)} applies to neural detectors, not "
                                 f"{det.name}")
        if seed is not None and "seed" in det.get_params():
            det.set_params(seed=seed)
    else:
        for name, value in (("epochs", epochs), ("seed", seed), ("device", device)):
            if value is not None:
                det.set_params(**{name: value})
        if progress is not None:
            det.set_params(progress=progress)
        apply_fusion(det, fusion, merged)
    scenes = distinct_scenes(scenes)
    for scene in scenes:  # a flag of another source's fails before any work too
        check_flags(quality, scene)
    for flag, value in (("-o", output), ("--loss-plot", loss_plot)):
        if STEM in str(value or ""):
            raise ParameterError(f"{flag} {value}: one file for the scenes together; {STEM} "
                                 "names each scene's --valid-mask, --train-mask, --background")
    if len(scenes) == 1:  # {stem} in an input is that scene's name, as in `hsad detect`
        train_mask, valid_mask, background, labels = (
            fill(v, scenes[0]) for v in (train_mask, valid_mask, background, labels))
    else:
        _check_several(scenes, {"--train-window": train_window, "--labels": labels})
    per_scene = (train_mask, valid_mask, background)
    inputs = [labels, wavelength_file, *scenes,
              *(fill(v, s) for v in per_scene for s in scenes)]
    plan = plan_outputs([("-o", output, "model"), ("--loss-plot", loss_plot, "png")],
                        inputs=inputs, overwrite=overwrite)
    keys = dict(zip(scenes, keys_for(scenes, key) if len(scenes) > 1 else [key],
                    strict=True))  # one --key for several scenes: those that take one
    with plan:
        def prepared(scene):
            return prepare_cube(open_cube(scene, chunks=chunks, key=keys[scene],
                                          apply_scale=apply_scale, **subset),
                                bands, nodata=nodata, valid_mask=fill(valid_mask, scene),
                                exclude_quality=quality)

        if len(scenes) > 1:
            cube, region = _mosaic(scenes, prepared, det, train_mask, background)
            background = None  # in the region now, scene by scene
        else:
            cube, region = prepared(scenes[0]), None
            if neural and train_window:  # its own parameter: the model file records it
                det.set_params(train_window=train_window)
                train_window = None
            if train_mask or train_window:
                from hsad.nn.sampling import region_mask

                region = region_mask(cube, mask=train_mask, window=train_window)
        if labels is not None:
            det.fit(cube, train_mask=region, background=background, labels=labels)
        elif neural:
            det.fit(cube, train_mask=region, background=background)
        else:
            if region is not None and background is not None:
                from hsad.cube.background import background_mask

                region = region & background_mask(cube, background)
            fit_detector(det, cube, region if region is not None else background)
        save_model(det, output)
        if loss_plot:
            from hsad.outputs.plots import plot_losses

            where = os.path.basename(scenes[0]) if len(scenes) == 1 else \
                f"{len(scenes)} scenes"
            plot_losses(det.history_.losses, loss_plot, title=f"{det.name} on {where}",
                        stages=det.history_.stages)
    if neural:
        hist = det.history_
        last = ", ".join(f"{k} {v[-1]:.4g}" for k, v in hist.losses.items())
        say(f"{det.name}: trained on {det.n_train_} pixels x {det.n_bands_} bands"
            f"{f' of {len(scenes)} scenes' if len(scenes) > 1 else ''}, "
            f"{_epochs(hist)} in {hist.seconds:.1f} s ({last})")
    else:
        say(f"{det.name}: fitted on {int(det.bands_.sum())} bands"
            + (f" of {len(scenes)} scenes" if len(scenes) > 1 else "")
            + (f" inside {_area_named(train_window, train_mask, background)}"
               if getattr(det, "background_", False) else ""))
    say(f"wrote model: {output}")
    if loss_plot:
        say(f"wrote loss plot: {loss_plot}")


def _area_named(train_window, train_mask, background) -> str:
    """What the statistics were fitted inside, as the options named it."""
    given = [name for name, value in (("--train-window", train_window),
                                      ("--train-mask", train_mask),
                                      ("--background", background)) if value]
    return ("the background area" if given in ([], ["--background"]) else
            f"the area given ({', '.join(given)})")


def _check_several(scenes: tuple[str, ...], one_scene: dict) -> None:
    """ParameterError for the options that apply to one scene only."""
    from hsad.errors import ParameterError

    for flag, value in one_scene.items():
        if value is not None:
            raise ParameterError(f"{flag} applies to one scene; train on {len(scenes)} scenes "
                                 f"with --train-mask or --background (which may hold {STEM})")


def _mosaic(scenes, prepared, det, train_mask, background):
    """The scenes as one cube (:func:`hsad.cube.mosaic.training_mosaic`) and the pixels to learn
    from (each scene's --train-mask and --background; None: every valid pixel)."""
    from hsad.cube.background import background_mask
    from hsad.cube.mosaic import context_of, training_mosaic
    from hsad.errors import ParameterError
    from hsad.nn.sampling import region_mask

    cubes, regions = [], []
    for scene in scenes:
        cube = prepared(scene)
        region = region_mask(cube, mask=fill(train_mask, scene))
        area = background_mask(cube, fill(background, scene), empty_ok=True)
        if area is not None:
            region = area if region is None else region & area
        cubes.append(cube)
        regions.append(region)
    mosaic, region = training_mosaic(cubes, regions, gap=context_of(det))
    if region is not None and not region.any():
        raise ParameterError(f"the training areas hold no pixel of the {len(scenes)} scenes")
    return mosaic, region


def _epochs(history) -> str:
    """"30 epochs", or with several training stages "22 epochs (2 gan, 20 encoder)"."""
    stages = getattr(history, "stages", None) or {}
    if len(stages) <= 1:
        return f"{history.epochs} epochs"
    return (f"{history.epochs} epochs ("
            + ", ".join(f"{run} {name}" for name, (_, run, _) in stages.items()) + ")")
