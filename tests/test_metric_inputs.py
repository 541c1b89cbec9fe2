"""What the metrics make of the maps they are given (docs/evaluation.md): a DataArray's
declared nodata left out, fill values that no declaration left out said, a one-band
raster as rioxarray reads it, and a misplaced larger truth said to be misplaced."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine

from hsad.cli.main import main
from hsad.outputs.metrics import evaluate
from hsad.outputs.targets import target_report


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((40, 50), np.uint8)
    truth[5:8, 5:8] = 1
    truth[20:22, 30:33] = 1
    scores = rng.random((40, 50)).astype(np.float32)
    scores[truth == 1] += 0.8
    return scores, truth


def test_a_dataarrays_declared_nodata_is_left_out():
    """rioxarray's unmasked read keeps -9999 in the pixels and says so in ``rio.nodata``:
    those pixels counted as background before (AUC(F,tau) 0.914 against 0.438)."""
    import rioxarray  # noqa: F401 - the rio accessor

    scores, truth = _pair()
    filled = scores.copy()
    filled[:, :10] = -9999
    with_nodata = xr.DataArray(filled[None], dims=("band", "y", "x")).rio.write_nodata(-9999)
    masked = np.where(filled == -9999, np.nan, filled)
    assert evaluate(with_nodata, truth).to_dict() == evaluate(masked, truth).to_dict()
    plain = xr.DataArray(filled, dims=("y", "x"))
    assert evaluate(plain, truth).auc_ft != evaluate(masked, truth).auc_ft  # nothing declared


def test_an_undeclared_fill_value_in_a_score_map_is_said():
    scores, truth = _pair()
    scores[0, :20] = -3.4e38
    with pytest.warns(UserWarning, match=r"20 pixels of the score map hold values beyond "
                      r"±1e\+20 \(an undeclared fill value\?\)"):
        evaluate(scores, truth)


def test_a_truth_with_a_fill_value_beside_its_labels_is_said(tmp_path):
    """0/1 with 255 beside: every nonzero value counts as anomaly (AUC 0.51 against 0.97),
    said now; a 0/255 mask (one nonzero value) is a mask, and says nothing."""
    scores, truth = _pair()
    odd = truth.copy()
    odd[:, 45:] = 255
    with pytest.warns(UserWarning, match="holds 255 in 200 pixels beside other nonzero"):
        evaluate(scores, odd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(scores, truth * 255)
    profile = dict(driver="GTiff", height=40, width=50, count=1, crs="EPSG:32633",
                   transform=Affine(30, 0, 500000, 0, -30, 5100000))
    with rasterio.open(tmp_path / "s.tif", "w", dtype="float32", **profile) as ds:
        ds.write(scores, 1)
    with rasterio.open(tmp_path / "gt.tif", "w", dtype="uint8", **profile) as ds:
        ds.write(odd, 1)
    with pytest.warns(UserWarning, match="holds 255 in 200 pixels"):
        from hsad.outputs.evaluation import evaluate_files

        evaluate_files(tmp_path / "s.tif", tmp_path / "gt.tif")


def test_target_report_takes_a_one_band_raster_as_rioxarray_reads_it():
    scores, truth = _pair()
    as_read = xr.DataArray(scores[None], dims=("band", "y", "x"))
    report = target_report(as_read, xr.DataArray(truth[None], dims=("band", "y", "x")))
    assert report.summary() == target_report(scores, truth).summary()
    assert evaluate(as_read, truth).to_dict() == evaluate(scores, truth).to_dict()


def test_a_larger_truth_on_another_grid_is_said_to_be_misplaced(tmp_path, capsys):
    """Half a pixel off: the error said only the sizes."""
    scores, truth = _pair()
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=40, width=50,
                       count=1, dtype="float32", crs="EPSG:32633",
                       transform=Affine(30, 0, 500000, 0, -30, 5100000)) as ds:
        ds.write(scores, 1)
    big = np.zeros((60, 70), np.uint8)
    big[10:50, 10:60] = truth
    with rasterio.open(tmp_path / "gt.tif", "w", driver="GTiff", height=60, width=70,
                       count=1, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(30, 0, 499715, 0, -30, 5100315)) as ds:
        ds.write(big, 1)
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(tmp_path / "s.tif"), "--truth", str(tmp_path / "gt.tif")])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "ground truth is 60x70 but the score map" in err
    assert "the map is no window of its grid: EPSG:32633 (30.0, 0.0, 499715.0" in err


def test_a_truths_declared_nodata_of_zero_is_its_background():
    """QGIS's Rasterize declares 0, the value it does not burn: read as no data, the whole
    background was left out ("no valid background pixel")."""
    import rioxarray  # noqa: F401 - the rio accessor

    scores, truth = _pair()
    declared = xr.DataArray(truth, dims=("y", "x")).rio.write_nodata(0)
    assert evaluate(scores, declared).to_dict() == evaluate(scores, truth).to_dict()


def test_a_fill_value_over_most_of_the_map_is_said_too():
    """A swath's fill may be most of the map: at 60 % the warning was silent."""
    scores, truth = _pair()
    scores[:, :30][truth[:, :30] == 0] = -3.4e38
    with pytest.warns(UserWarning, match="pixels of the score map hold values beyond"):
        evaluate(scores, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(scores.astype(np.float64) * 1e30 + 1e30, truth)  # the map's own scale
