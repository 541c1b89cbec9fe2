"""``hsad evaluate``: detection metrics (AUC(D,F), 3D-ROC measures) of a score map.

The work is done by :func:`hsad.outputs.evaluation.evaluate_files`, so Python users get the same
behaviour as the command.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from hsad.cli.options import overwrite_option, put, shown
from hsad.cli.outputs import FOLDERS_NOTE, plan_outputs


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


@click.command("evaluate", epilog=FOLDERS_NOTE)
@click.argument("scores", nargs=-1, required=True, type=click.Path())
@click.option("--truth", required=True, type=click.Path(),
              help="Ground truth: GeoTIFF/ENVI mask (nonzero = anomaly), MAT file, or the "
                   "targets' polygons or points (GeoPackage, GeoJSON, Shapefile, KML, GML, "
                   "FlatGeobuf; "
                   "'file.gpkg|layername=x' or '|layerid=1').")
@click.option("--truth-key", help="Ground-truth variable in a MAT file.")
@click.option("--scores-key", help="Score variable in a MAT file.")
@click.option("--plot", "roc_path", type=click.Path(dir_okay=False),
              help="Write the ROC curve P_D(P_F) as PNG.")
@click.option("--plot3d", "roc3d_path", type=click.Path(dir_okay=False),
              help="Write the 3D ROC and its three projections as PNG.")
@click.option("--log-far", is_flag=True, help="Log-scaled false-alarm axis in --plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--targets", is_flag=True,
              help="Also count targets (8-connected groups of truth pixels) found at "
                   "P_F 1e-4, 1e-3 and 1e-2, and the target AUC(D,F).")
@click.option("--common-pixels", is_flag=True,
              help="With several maps: judge each on the pixels every map scores (without "
                   "it, each on its own, with a warning when they differ).")
@overwrite_option
def command(scores, truth, truth_key, scores_key, roc_path, roc3d_path, log_far, as_json,
            targets, common_pixels, overwrite):
    """Print AUC(D,F), AUC(D,tau), AUC(F,tau), TD, BS, TDBS, OD, ODP and SNPR of SCORES.

    Several score maps (detectors of one scene) give one table, a row per map with each
    column's best marked *, and their ROC curves in one plot.
    """
    plan = plan_outputs([("--plot", roc_path, "png"), ("--plot3d", roc3d_path, "png")],
                        inputs=[*scores, truth], overwrite=overwrite)
    with plan:
        _check_keys(scores, truth, scores_key, truth_key)
        if log_far and not roc_path:
            from hsad.errors import ParameterError

            raise ParameterError("--log-far sets the false-alarm axis of --plot, and no "
                                 "--plot is given")
        if len(scores) == 1:
            if common_pixels:
                from hsad.errors import ParameterError

                raise ParameterError("--common-pixels compares several score maps; one is "
                                     "given")
            text = _evaluate(scores[0], truth, truth_key, scores_key, roc_path, roc3d_path,
                             log_far, as_json, targets)
        else:
            text = _compare(scores, truth, truth_key, scores_key, roc_path, roc3d_path,
                            log_far, as_json, common_pixels, targets)
    put(text)  # once the plots are in place: a reader gone early cannot undo them


def _check_keys(scores, truth, scores_key, truth_key) -> None:
    """--scores-key and --truth-key name a MAT file's variables: refused where no such file
    is given, rather than ignored."""
    from hsad.cli.options import check_truth_key
    from hsad.errors import ParameterError
    from hsad.io import detect_format

    check_truth_key(truth, truth_key)
    if scores_key is not None and not any(detect_format(p, "score map") == "mat"
                                          for p in scores):
        raise ParameterError("--scores-key names a variable of a MAT file, and no score map "
                             "is one")


def _evaluate(scores, truth, truth_key, scores_key, roc_path, roc3d_path, log_far,
              as_json, targets=False) -> str:
    """The report of one map (text or JSON), its plots written."""
    from hsad.outputs.evaluation import evaluate_files
    from hsad.outputs.metrics import format_table
    from hsad.outputs.targets import target_report

    result, score_map, truth_map = evaluate_files(scores, truth, scores_key, truth_key)
    found = target_report(score_map, truth_map) if targets else None
    plots = _plots({Path(scores).stem: score_map}, truth_map, roc_path, roc3d_path, log_far,
                   truth)
    if as_json:
        doc = {"scores": str(scores), "truth": str(truth)}
        doc.update({k: _json_value(v) for k, v in result.to_dict().items()})
        if found is not None:
            doc["targets"] = found.to_dict()
        doc["plots"] = plots
        return json.dumps(doc, indent=2, allow_nan=False)
    return "\n".join([f"scores: {shown(scores)}\ntruth:  {shown(truth)}\n", format_table(result),
                      *([f"\n{found.summary()}"] if found is not None else []),
                      *(f"wrote {what}: {shown(path)}" for what, path in plots.items())])


def _plots(maps, truth_map, roc_path, roc3d_path, log_far, truth) -> dict:
    """The ROC and 3D ROC plots asked for, of every map: ``{"roc": path, ...}``; titled
    with the ground truth's file name (which scene, when several plots lie together)."""
    plots = {}
    against = f"against {Path(truth).name}"
    if not (roc_path or roc3d_path):
        return plots
    from hsad.outputs.plots import plot_roc, plot_roc3d, roc_curves

    curves = roc_curves(maps, truth_map)  # once for both plots
    if roc_path:
        plot_roc(maps, truth_map, path=roc_path, log_far=log_far, title=f"ROC {against}",
                 curves=curves)
        plots["roc"] = str(roc_path)
    if roc3d_path:
        plot_roc3d(maps, truth_map, path=roc3d_path, title=f"3D ROC {against}",
                   curves=curves)
        plots["roc3d"] = str(roc3d_path)
    return plots


def _compare(scores, truth, truth_key, scores_key, roc_path, roc3d_path, log_far, as_json,
             common, targets=False) -> str:
    """The report of several maps (text or JSON), their plots written."""
    from hsad.outputs.evaluation import compare_files
    from hsad.outputs.metrics import format_comparison
    from hsad.outputs.targets import format_targets, target_report

    results, maps, truth_map = compare_files(list(scores), truth, scores_key, truth_key,
                                             common=common)
    found = ({name: target_report(m, truth_map) for name, m in maps.items()} if targets
             else None)
    plots = _plots(maps, truth_map, roc_path, roc3d_path, log_far, truth)
    if as_json:
        doc = {"truth": str(truth), "common_pixels": bool(common), "maps": [
            {"scores": str(path), "name": name,
             **{k: _json_value(v) for k, v in result.to_dict().items()},
             **({"targets": found[name].to_dict()} if found else {})}
            for path, (name, result) in zip(scores, results.items(), strict=True)],
            "plots": plots}
        return json.dumps(doc, indent=2, allow_nan=False)
    return "\n".join([f"truth: {shown(truth)}" + ("  (pixels every map scores)" if common else "")
                      + "\n", format_comparison(results),
                      *([f"\ntargets (8-connected groups of truth pixels):\n"
                         f"{format_targets(found)}"] if found else []),
                      *(f"wrote {what}: {shown(path)}" for what, path in plots.items())])
