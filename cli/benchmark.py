"""``hsad benchmark``: detectors × labelled benchmark scenes → tables of AUC and runtime."""

from __future__ import annotations

import os

import click

from hsad.cli.options import echo, overwrite_option, put
from hsad.cli.outputs import FOLDERS_NOTE, plan_outputs
from hsad.config import parse_params
from hsad.errors import ParameterError


@click.command("benchmark", epilog=FOLDERS_NOTE)
@click.option("-m", "--methods", default="rx,lrx,crd", show_default=True,
              help="Comma-separated detector names.")
@click.option("--datasets", "scene_names", default="all", show_default=True,
              help="Comma-separated scene names, 'all' (the development scenes) or "
                   "'held-out' (the scenes no default was chosen on; see `hsad datasets "
                   "list`); also labelled MAT files of your own (cube and ground truth "
                   "inside), or folders of them (./all for a folder named like a group).")
@click.option("-p", "--param", "params", multiple=True, metavar="METHOD.KEY=VALUE",
              help="Hyperparameter for one method, e.g. -p lrx.inner=5.")
@click.option("--stages", is_flag=True, help="Also score each stage of staged detectors.")
@click.option("-o", "--output", type=click.Path(),
              help="Markdown file for the tables (.md or .txt).")
@click.option("--csv", "csv_path", type=click.Path(),
              help="CSV file, one row per run (.csv or .txt).")
@click.option("--plot", "plot_path", type=click.Path(),
              help="PNG (.png) of the AUC(D,F) and runtime of each method on each scene, "
                   "with their means.")
@overwrite_option
def command(methods, scene_names, params, stages, output, csv_path, plot_path, overwrite):
    """Run detectors on labelled benchmark scenes and tabulate AUC(D,F), AUC(F,τ) and time.

    Every scene is checked first (there, loading, a ground truth with both classes); a
    scene a detector then fails on is left out of the tables, named, and the exit status
    is 2."""
    from hsad import datasets, detectors
    from hsad.io.atomic import atomic_path
    from hsad.outputs import benchmark

    method_list = list(dict.fromkeys(m.strip().lower() for m in methods.split(",")
                                     if m.strip()))
    if not method_list:
        raise ParameterError("no method given (-m)")
    for m in method_list:
        detectors.get(m)  # fail early on unknown names
    per_method: dict[str, dict] = {}
    for key, value in parse_params(params).items():
        method, dot, name = key.partition(".")
        if not dot or method.lower() not in method_list:
            raise ParameterError(f"--param {key}: expected METHOD.KEY with METHOD one of "
                                 f"{', '.join(method_list)}")
        per_method.setdefault(method.lower(), {})[name] = value
    for m in method_list:  # every method's parameters, before the first scene is run
        detectors.get(m, **per_method.get(m, {})).check_params()
    scenes = datasets.scene_files(s.strip() for s in scene_names.split(",") if s.strip())
    plan = plan_outputs([("-o", output, "markdown"), ("--csv", csv_path, "csv"),
                         ("--plot", plot_path, "png")], overwrite=overwrite,
                        inputs=[s for s in scenes if os.path.exists(s)])  # files given

    failed: list[tuple[str, str]] = []
    with plan:
        rows = benchmark.run(method_list, scenes, per_method, stages=stages,
                             progress=lambda line: echo(line, err=True), failed=failed)
        if not rows:
            raise ParameterError("no scene could be run: " + "; ".join(
                f"{scene}: {problem}" for scene, problem in failed))
        text = benchmark.to_markdown(rows)
        put(text)
        figure = None
        if plot_path:  # drawn before any file is written: a picture that cannot be drawn
            # fails the command before it writes anything (the tables are printed above)
            from hsad.outputs.benchmark_plot import plot_benchmark

            figure = plot_benchmark(rows)
        for path, content in ((output, text), (csv_path, benchmark.to_csv(rows))):
            if path:
                with atomic_path(path) as tmp:
                    tmp.write_text(content, encoding="utf-8", newline="")  # CSV: its own \r\n
        if figure is not None:
            from hsad.outputs.plots import save_figure

            save_figure(figure, plot_path)
    for scene, problem in failed:  # the others' tables are written: say what is missing
        echo(f"error: {scene}: {problem} (left out of the tables)", err=True)
    return 2 if failed else 0
