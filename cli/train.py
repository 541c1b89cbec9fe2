"""``hsad train``: fit a neural detector on a scene and save it as a model file."""

from __future__ import annotations

import click

from hsad.cli.options import (
    background_option,
    chunks_option,
    device_option,
    fusion_option,
    overwrite_option,
    seed_option,
)
from hsad.cli.outputs import FOLDERS_NOTE, plan_outputs
from hsad.config import parse_params


@click.command("train", epilog=FOLDERS_NOTE)
@click.argument("scene", type=click.Path(dir_okay=True))
@click.option("-m", "--method", default="hadgan", show_default=True,
              help="Neural detector to train (see `hsad methods`).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (.hsad or .zip: config.json + model.safetensors).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Hyperparameter, repeatable (e.g. -p lam=0.3 -p input=patch).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs.")
@click.option("--loss-plot", type=click.Path(dir_okay=False),
              help="PNG of the loss curves per epoch (.png).")
@click.option("--key", help="Cube variable in a MAT scene.")
@click.option("--train-mask", type=click.Path(dir_okay=False),
              help="Train only on the non-zero pixels of this mask (GeoTIFF, ENVI or MAT).")
@click.option("--train-window", metavar="R0,R1,C0,C1",
              help="Train only on rows R0..R1-1 and columns C0..C1-1 (known background).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@background_option
@fusion_option
@chunks_option
@seed_option
@device_option
@overwrite_option
def command(scene, method, output, params, epochs, loss_plot, key, train_mask, train_window,
            quiet, background, fusion, chunks, seed, device, overwrite):
    """Train METHOD on SCENE (ENVI, GeoTIFF or MAT) and save the fitted model.

    Apply it to another scene with `hsad detect OTHER --model MODEL`.
    """
    from hsad import detectors, open_cube
    from hsad.errors import ParameterError
    from hsad.nn.persistence import save_detector
    from hsad.pipeline import apply_fusion

    merged = parse_params(params)
    for name, value in (("epochs", epochs), ("seed", seed), ("device", device)):
        if value is not None:
            merged[name] = value
    if quiet:
        merged["progress"] = False
    det = detectors.get(method, **merged)
    if not callable(getattr(det, "_build", None)):
        raise ParameterError(f"method {method!r} has no trainable model; use `hsad detect`")
    apply_fusion(det, fusion)
    plan = plan_outputs([("-o", output, "model"), ("--loss-plot", loss_plot, "png")],
                        inputs=[scene, train_mask, background], overwrite=overwrite)
    with plan:
        cube = open_cube(scene, chunks=chunks, key=key)
        if train_mask or train_window:
            from hsad.nn.sampling import region_mask

            det.fit(cube, train_mask=region_mask(cube, mask=train_mask, window=train_window),
                    background=background)
        else:
            det.fit(cube, background=background)
        save_detector(det, output)
        hist = det.history_
        if loss_plot:
            from hsad.outputs.plots import plot_losses

            plot_losses(hist.losses, loss_plot, title=f"{det.name} on {scene}",
                        stages=hist.stages)
    last = ", ".join(f"{k} {v[-1]:.4g}" for k, v in hist.losses.items())
    click.echo(f"{det.name}: trained on {det.n_train_} pixels x {det.n_bands_} bands, "
               f"{hist.epochs} epochs in {hist.seconds:.1f} s ({last})")
    click.echo(f"wrote model: {output}")
    if loss_plot:
        click.echo(f"wrote loss plot: {loss_plot}")

