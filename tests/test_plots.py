"""Figures: ROC, 3D ROC, quicklook and loss curves (Agg, PNG written atomically)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from matplotlib.image import imread

from hsad.cube import make_cube
from hsad.errors import ParameterError
from hsad.outputs.metrics import evaluate, roc
from hsad.outputs.plots import plot_losses, plot_roc, plot_roc3d, quicklook, rgb_bands

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_bytes=5_000, max_bytes=2_000_000):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert min_bytes < len(data) < max_bytes
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 200
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".part")] == []
    return image


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    gt = rng.random((50, 60)) < 0.05
    good = rng.normal(size=gt.shape) + 2.5 * gt
    weak = rng.normal(size=gt.shape) + 0.5 * gt
    return gt, {"good": good, "weak": weak}


def test_roc_curves_with_auc_legend(tmp_path, maps):
    gt, m = maps
    path = tmp_path / "roc.png"
    fig = plot_roc(m, gt, path=path)
    _check_png(path)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("false alarm") and "P_D" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for name, scores in m.items():
        assert f"{name} (AUC = {evaluate(scores, gt).auc_df:.4f})" in labels
    assert ax.get_xscale() == "linear"


def test_roc_log_far_axis_starts_at_one_false_alarm(maps):
    gt, m = maps
    fig = plot_roc(m["good"], gt, log_far=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlim()[0] == pytest.approx(1 / (~gt).sum())


def test_roc_log_far_curve_is_drawn_from_one_false_alarm():
    """A large scene's curve is thinned; on a log axis the first decades must stay drawn."""
    rng = np.random.default_rng(1)
    gt = rng.random((700, 700)) < 0.01
    scores = rng.normal(size=gt.shape) + 1.5 * gt
    floor = 1 / (~gt).sum()
    pf = plot_roc(scores, gt, log_far=True).axes[0].lines[0].get_xdata()
    assert pf[pf > 0].min() == pytest.approx(floor)
    decades = np.arange(np.log10(floor), 0.01)
    drawn = np.histogram(np.log10(pf[pf > 0]), bins=decades)[0]
    full = roc(scores, gt).pf
    exist = np.histogram(np.log10(np.unique(full[full > 0])), bins=decades)[0]
    assert (drawn >= np.minimum(exist, 100)).all()


def test_roc3d_has_the_3d_curve_and_three_projections(tmp_path, maps):
    gt, m = maps
    path = tmp_path / "roc3d.png"
    fig = plot_roc3d(m, gt, path=path)
    _check_png(path, min_bytes=20_000)
    assert len(fig.axes) == 4
    ax3d, ax_df, ax_dt, ax_ft = fig.axes
    assert ax3d.name == "3d" and "P_D" in ax3d.get_zlabel() and ax3d.get_ylabel() == "τ"
    assert [a.get_title() for a in (ax_df, ax_dt, ax_ft)] == [
        "ROC(D,F): AUC(D,F)", "ROC(D,τ): AUC(D,τ)", "ROC(F,τ): AUC(F,τ)"]
    r = evaluate(m["good"], gt)
    assert f"good ({r.auc_dt:.4f})" in [t.get_text() for t in ax_dt.get_legend().get_texts()]
    assert f"good ({r.auc_ft:.4f})" in [t.get_text() for t in ax_ft.get_legend().get_texts()]
    # P_D(τ) is drawn from (τ=1, P_D of the top score) down to (τ=0, P_D=1)
    x, y = ax_dt.lines[0].get_data()
    assert x[0] == 1.0 and x[-1] == 0.0 and y[-1] == 1.0


def _cube(rows=40, cols=50, bands=30, wavelength=True, nodata=None):
    rng = np.random.default_rng(1)
    data = rng.random((rows, cols, bands)).astype(np.float32)
    wl = np.linspace(400, 1000, bands) if wavelength else None
    return make_cube(data, wavelength=wl, nodata=nodata)


def test_rgb_bands_from_wavelengths_or_positions():
    cube = _cube()
    wl = cube["wavelength"].values
    (r, g, b), by_wl = rgb_bands(cube)
    assert by_wl
    for i, target in zip((r, g, b), (640, 550, 460), strict=True):
        assert abs(wl[i] - target) == np.abs(wl - target).min()
    assert rgb_bands(_cube(wavelength=False)) == ([22, 15, 7], False)
    # SWIR-only sensor: no band within 50 nm of visible targets -> positions
    swir = make_cube(np.zeros((4, 4, 10)), wavelength=np.linspace(1000, 2500, 10))
    assert rgb_bands(swir) == ([7, 5, 2], False)


def test_quicklook_reads_only_three_bands(tmp_path):
    rows, cols, bands = 30, 40, 12
    rng = np.random.default_rng(2)

    def band(i):
        if i not in (3, 6, 8):
            raise AssertionError(f"band {i} was read")
        return rng.random((rows, cols, 1)).astype(np.float32)

    parts = [da.from_delayed(dask.delayed(band)(i), (rows, cols, 1), np.float32)
             for i in range(bands)]
    cube = make_cube(da.concatenate(parts, axis=2))  # no wavelengths: bands 8, 6, 3 (0-based)
    scores = rng.random((rows, cols))
    truth = np.zeros((rows, cols), bool)
    truth[10:13, 20:22] = True
    path = tmp_path / "quick.png"
    fig = quicklook(cube, scores, truth=truth, path=path)
    _check_png(path)
    ax_rgb, ax_map = fig.axes[:2]
    assert len(fig.axes) == 3  # RGB, map, colour bar
    assert "R band 9" in ax_rgb.get_title() and "B band 4" in ax_rgb.get_title()
    assert ax_rgb.images[0].get_array().shape == (rows, cols, 4)
    assert len(ax_map.collections) >= 1 and len(ax_rgb.collections) >= 1  # truth contours


def test_quicklook_subsamples_keeps_peaks_and_masks_nodata():
    cube = _cube(rows=300, cols=200, bands=20, nodata=-1.0)
    data = cube.values.copy()
    data[:10, :10, :] = -1.0
    cube = make_cube(data, wavelength=cube["wavelength"].values, nodata=-1.0)
    scores = np.zeros((300, 200))
    scores[151, 77] = 9.0  # a single-pixel anomaly
    fig = quicklook(cube, scores, max_size=100)
    rgba = fig.axes[0].images[0].get_array()
    assert rgba.shape == (100, 67, 4)
    assert np.all(rgba[:3, :3, 3] == 0) and np.all(rgba[5:, 5:, 3] == 1)
    shown = fig.axes[1].images[0].get_array()
    assert shown.shape == (100, 67) and shown.max() == 9.0
    with pytest.raises(ParameterError, match="does not match"):
        quicklook(cube, np.zeros((10, 10)))


@pytest.mark.parametrize("rows,cols", [(400, 1), (1, 400), (30, 400)])
def test_a_strip_is_drawn_wide_enough_to_see(rows, cols):
    """A one-column scene (a spectral library stored as an image, a one-pixel --srcwin)
    drew as a line thinner than a pixel: both panels looked empty. A strip longer than 20
    times its width is drawn wider, and the figure says so; other scenes keep their shape."""
    cube = _cube(rows=rows, cols=cols, bands=20)
    flagged = np.zeros((rows, cols), bool)
    flagged.flat[::7] = True  # outlines on a one-pixel side (matplotlib's contour needs 2)
    fig = quicklook(cube, np.arange(rows * cols, dtype=float).reshape(rows, cols),
                    truth=flagged, detections=flagged)
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        box = ax.get_window_extent()
        ratio = max(box.width, box.height) / min(box.width, box.height)
        assert ratio <= 20.5, (rows, cols, ratio)
    note = fig._suptitle.get_text() if fig._suptitle else ""
    if max(rows, cols) / min(rows, cols) > 20:
        assert "than it is" in note and min(box.width, box.height) > 5
    else:
        assert note == "" and fig.axes[0].get_aspect() == 1.0


def test_quicklook_panels_take_the_scenes_shape():
    """A 3:1 flight line used 12 % of a fixed 11 × 5 in figure; the panels now have the
    scene's shape, the longer side 5 in, and the eastings of a narrow panel do not overlap."""
    from affine import Affine

    x = np.random.default_rng(0).random((300, 100, 20)).astype(np.float32)
    cube = make_cube(x, wavelength=np.linspace(400, 1000, 20), crs="EPSG:32633",
                     transform=Affine(30, 0, 500_000, 0, -30, 5_100_000))
    fig = quicklook(cube, x[..., 0])
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        box = ax.get_window_extent()
        assert box.height / box.width == pytest.approx(3.0, rel=0.05)
    assert fig.get_size_inches()[0] < 8  # two narrow panels, not 11 in of white space
    for rows, cols in ((300, 100), (1000, 100), (400, 20), (25, 1)):
        fig = quicklook(make_cube(np.ones((rows, cols, 3), np.float32), crs="EPSG:32633",
                                  transform=Affine(30, 0, 500_000, 0, -30, 5_100_000)),
                        np.ones((rows, cols)), rgb_positions=(0, 1, 2))
        fig.canvas.draw()
        note = fig._suptitle.get_text() if fig._suptitle else ""
        assert "1×" not in note
        for ax in fig.axes[:2]:  # six-digit eastings never overlap, however narrow
            labels = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
            assert labels and all(a.x1 < b.x0 for a, b in zip(labels, labels[1:],
                                                               strict=False)), (rows, cols)


def test_loss_curves(tmp_path):
    history = {"reconstruction": list(np.exp(-np.arange(40) / 4) + 1e-4),
               "adversarial": [0.7] * 40}
    path = tmp_path / "losses.png"
    fig = plot_losses(history, path)
    _check_png(path)
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.lines] == list(history)
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    assert ax.lines[0].get_xdata()[-1] == 40
    assert plot_losses({"a": [3.0, 2.0, 1.5]}).axes[0].get_yscale() == "linear"
    with pytest.raises(ParameterError):
        plot_losses({"a": []})


def test_loss_curves_one_panel_per_training_stage(tmp_path):
    # f-AnoGAN-like history: 3 GAN epochs, then 2 encoder epochs
    history = {"loss_d": [3.0, 2.0, 1.0], "loss_g": [1.0, 0.5, 0.2], "loss_e": [0.4, 0.3]}
    stages = {"gan": [0, 3, ["loss_d", "loss_g"]], "encoder": [3, 2, ["loss_e"]]}
    path = tmp_path / "stages.png"
    fig = plot_losses(history, path, title="run", stages=stages)
    _check_png(path)
    gan, encoder = fig.axes
    assert [ln.get_label() for ln in gan.lines] == ["loss_d", "loss_g"]
    assert [ln.get_label() for ln in encoder.lines] == ["loss_e"]
    assert list(encoder.lines[0].get_xdata()) == [4, 5]  # epochs count over the whole run
    assert gan.get_title() == "run: gan" and encoder.get_title() == "run: encoder"


def test_loss_curves_of_a_fitted_networks_history():
    """``plot_losses(det.history_)`` as docs/evaluation.md gives it: a History, its stages
    as panels (an AttributeError before); anything else is one ParameterError."""
    from hsad.errors import ParameterError
    from hsad.nn.trainer import History

    history = History({"loss_d": [3.0, 2.0, 1.0], "loss_e": [0.4, 0.3]}, epochs=5,
                      stages={"gan": [0, 3, ["loss_d"]], "encoder": [3, 2, ["loss_e"]]})
    assert [ax.get_title() for ax in plot_losses(history).axes] == [
        "training losses: gan", "training losses: encoder"]
    with pytest.raises(ParameterError, match="history_ or a mapping"):
        plot_losses([1.0, 2.0])
