"""Target-level figures (``hsad evaluate --targets``): targets found at false-alarm rates,
each target's least false-alarm rate, and the target AUC, against counts made by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hsad.errors import ParameterError
from hsad.outputs.targets import format_targets, target_report


def _map():
    """1000 background pixels scoring 0 … 999 (shuffled), three targets: a diagonal pair
    (one target, 8-connected) peaking at 999.5, a pixel at 994.5 and a 2 x 2 block whose
    best pixel is 500.5; a target pixel without a score (a fourth target, missed); one
    unlabelled pixel scoring 1e9, left out."""
    scores = np.full((34, 34), np.nan)
    truth = np.full((34, 34), np.nan)
    rng = np.random.default_rng(0)
    flat = rng.permutation(1000).astype(float)
    scores.ravel()[:1000], truth.ravel()[:1000] = flat, 0.0
    scores[30, 0], scores[31, 1], truth[30, 0], truth[31, 1] = 999.5, 3.0, 1, 1
    scores[30, 5], truth[30, 5] = 994.5, 1
    scores[32:34, 10:12], truth[32:34, 10:12] = [[500.5, 1.0], [2.0, 0.5]], 1
    scores[33, 20], truth[33, 20] = 1e9, np.nan  # unlabelled
    scores[33, 30], truth[33, 30] = np.nan, 1  # a target without a score
    return scores, truth


def test_found_counts_least_rates_and_auc_by_hand():
    report = target_report(*_map())
    assert (report.n_targets, report.n_unscored, report.n_background) == (4, 1, 1000)
    assert [t["pixels"] for t in report.targets] == [2, 1, 4, 1]
    # background pixels scoring at least each peak: 0, 5 (995…999), 499 (501…999), all
    np.testing.assert_allclose([t["far"] for t in report.targets], [0.0, 0.005, 0.499, 1.0])
    assert report.targets[3]["peak"] is None
    assert report.found == {1e-4: 1, 1e-3: 1, 1e-2: 2}
    np.testing.assert_allclose(report.auc, np.mean([1.0, 0.995, 0.501, 0.0]))
    assert "4 (1 without a score, missed)" in report.summary()
    assert report.targets[0]["row"] == 30.5 and report.targets[0]["col"] == 0.5


def test_ties_count_half_and_no_target_is_an_error():
    scores = np.zeros((10, 10))
    truth = np.zeros((10, 10))
    truth[5, 5] = 1  # scores 0 like every background pixel: half of them "beaten"
    assert target_report(scores, truth).auc == pytest.approx(0.5)
    assert target_report(scores, truth).targets[0]["far"] == 1.0
    with pytest.raises(ParameterError, match="no target"):
        target_report(scores, np.zeros((10, 10)))


def test_the_table_of_several_maps():
    scores, truth = _map()
    text = format_targets({"a": target_report(scores, truth),
                           "b": target_report(-scores, truth)})
    assert "| a | 4 | 1 | 1 | 2 | 0.6240 |" in text and text.count("\n") == 3


def test_evaluate_prints_and_writes_the_target_figures(tmp_path, capsys):
    from hsad.cli.main import main
    from hsad.cube import make_cube, map_like
    from hsad.io.geotiff_writer import write_geotiff, write_mask

    scores, truth = _map()
    grid = make_cube(np.zeros((34, 34, 1), np.float32))
    write_geotiff(map_like(grid, scores.astype(np.float32)), tmp_path / "s.tif")
    write_mask(map_like(grid, np.nan_to_num(truth, nan=0).astype(bool)), tmp_path / "t.tif")
    capsys_text = []
    for args in (["--targets"], ["--targets", "--json"]):
        with pytest.raises(SystemExit) as exc:
            main(["evaluate", str(tmp_path / "s.tif"), "--truth", str(tmp_path / "t.tif"),
                  *args])
        out = capsys.readouterr().out
        capsys_text.append(out)
        assert exc.value.code == 0
    found = json.loads(out)["targets"]
    # the unlabelled pixel is background in the written mask: 1001 background pixels, the
    # first at 1e9 above every target
    assert found["n_targets"] == 4 and found["n_background"] == 1001
    assert found["found"] == {"0.0001": 0, "0.001": 1, "0.01": 2}
    assert ("targets (8-connected groups of truth pixels): 4 (1 without a score, missed); "
            "found at P_F 0.0001: 0 of 4") in capsys_text[0]
