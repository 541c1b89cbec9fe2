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
from hsad.outputs.plots import plot_losses, plot_roc, plot_roc3d, quicklook, rgb_bands, roc_curves

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


def test_curves_computed_once_draw_what_each_plot_computes(tmp_path, maps, monkeypatch):
    """``hsad evaluate --plot --plot3d`` sorted every map's pixels once a plot on top of
    the metrics' own sort: the curves, computed once, are drawn the same."""
    from hsad.outputs import roc_plots

    gt, m = maps
    curves = roc_curves(m, gt)
    alone = [line.get_xydata() for line in plot_roc(m, gt).axes[0].lines]
    calls = []
    monkeypatch.setattr(roc_plots, "evaluate", lambda *a, **k: calls.append(1))
    given = [line.get_xydata() for line in plot_roc(m, gt, curves=curves).axes[0].lines]
    plot_roc3d(m, gt, curves=curves)
    assert not calls  # nothing computed again
    assert len(alone) == len(given) == 3
    for a, b in zip(alone, given, strict=True):
        np.testing.assert_array_equal(a, b)


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


def test_roc_log_far_draws_tied_scores_as_the_line_the_auc_counts():
    """A mask (one operating point) and a map of one value were drawn on the log axis as
    a flat line from their first point, a mask thus beating RX at low false-alarm rates and
    a constant map looking perfect. Between two points the curve is straight in linear
    P_F; on a log axis it is drawn so, bent."""
    rng = np.random.default_rng(2)
    gt = rng.random((200, 200)) < 0.02
    mask = (gt & (rng.random(gt.shape) < 0.9)) | (~gt & (rng.random(gt.shape) < 0.03))
    constant = np.ones(gt.shape)
    fig = plot_roc({"mask": mask.astype(float), "constant": constant}, gt, log_far=True)
    (pf_m, pd_m), (pf_c, pd_c) = (line.get_data() for line in fig.axes[0].lines)
    curve = roc(mask.astype(float), gt)
    point = (curve.pf[1], curve.pd[1])  # the mask's one operating point
    below = (pf_m > 1e-3) & (pf_m < point[0])
    assert below.sum() > 100
    np.testing.assert_allclose(pd_m[below], point[1] * pf_m[below] / point[0], rtol=1e-9)
    drawn = pf_c >= 1 / (~gt).sum()
    np.testing.assert_allclose(pd_c[drawn], pf_c[drawn], rtol=1e-9)  # the chance diagonal


def test_roc3d_staircases_of_a_large_scene_hold_their_area():
    """Thinned by index only, a large map kept 15 of 4000 points above τ = 0.1: the
    ROC(D,τ) staircase fell to 0 where targets still scored, its area 0.27 against the
    legend's 0.24. Points are also kept evenly over τ and P_F."""
    rng = np.random.default_rng(3)
    gt = rng.random((1000, 1000)) < 0.004
    # targets spread over the whole τ range, the background packed below τ = 0.1
    scores = np.where(gt, rng.uniform(0.05, 1.0, gt.shape), rng.random(gt.shape) * 0.1)
    fig = plot_roc3d(scores, gt)
    r = evaluate(scores, gt)
    for ax, auc in ((fig.axes[2], r.auc_dt), (fig.axes[3], r.auc_ft)):
        tau, p = ax.lines[0].get_data()  # steps-post, τ falling: step i covers τ_{i+1}..τ_i
        area = float(np.sum(p[:-1] * -np.diff(tau)))
        assert area == pytest.approx(auc, abs=2e-3)  # index thinning alone: 0.496 for 0.524


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
    assert rgba.shape == (100, 100, 4)  # each side pooled to at most max_size
    assert np.all(rgba[:3, :3, 3] == 0) and np.all(rgba[5:, 5:, 3] == 1)
    shown = fig.axes[1].images[0].get_array()
    assert shown.shape == (100, 100) and shown.max() == 9.0
    with pytest.raises(ParameterError, match="does not match"):
        quicklook(cube, np.zeros((10, 10)))


@pytest.mark.parametrize("rows, cols", [(1000, 1000), (1200, 300), (3000, 400)])
def test_every_one_pixel_anomaly_of_a_large_scene_is_drawn(rows, cols):
    """Maps were pooled to 1024 pixels a side but drawn in panels of about 430: most
    one-pixel anomalies of a 1000² scene fell between the drawn pixels (85 of 300 seen).
    They are pooled to the panel's pixels now: each one is a drawn blob."""
    from scipy import ndimage

    cube = _cube(rows=rows, cols=cols, bands=6)
    scores = np.zeros((rows, cols))
    spikes = scores[25::50, 25::50]
    spikes[...] = 9.0
    fig = quicklook(cube, scores)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    x0, y0, x1, y1 = fig.axes[1].get_window_extent().extents.round().astype(int)
    panel = pixels[pixels.shape[0] - y1:pixels.shape[0] - y0, x0:x1]
    bright = panel.sum(axis=-1) > 600  # inferno's top colours; its bottom is black
    assert ndimage.label(bright)[1] == spikes.size


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


@pytest.mark.parametrize("rows,cols", [(2000, 20), (100, 100), (40, 400)])
def test_a_colour_bars_label_stays_within_its_panel(rows, cols):
    """A 2000 × 20 scene's stage picture wrapped each colour bar's label to 1.3 times the
    panel's height: the second row's labels ran into the first row's. Each label is wrapped
    to its bar's length now."""
    cube = _cube(rows=rows, cols=cols, bands=20)
    score = np.random.default_rng(0).random((rows, cols))
    fig = quicklook(cube, {"d_spectral": score, "d_spatial": score, "d_ss": score,
                           "error": score}, title="the stage maps")
    fig.canvas.draw()
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 4
    for bar in bars:  # within the bar's length, its extension's tip included
        label, box = bar.yaxis.label.get_window_extent(), bar.get_window_extent()
        tip = 0.1 * box.height
        assert box.y0 - 2 <= label.y0 and label.y1 <= box.y1 + tip, (rows, cols)


def test_a_narrow_scenes_stage_picture_keeps_every_label(tmp_path):
    """A 25 × 10 scene's four panels left its y label ("row (pixels)") no room: the
    layout put its first letter past the figure's edge, and the PNG cut it. Such a figure
    is now written to the box of all it draws; a figure that fits keeps its size."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for (rows, cols), grows in (((25, 10), True), ((100, 100), False)):
        cube = make_cube(rng.normal(100, 5, (rows, cols, 30)).astype(np.float32))
        score = rng.random((rows, cols))
        path = tmp_path / f"stages_{rows}x{cols}.png"
        fig = quicklook(cube, {"d_spectral": score, "d_spatial": score, "d_ss": score},
                        path=path, title="the stage maps")
        fig.draw_without_rendering()
        drawn, (width, height) = fig.get_tightbbox(), fig.get_size_inches()
        with Image.open(path) as image:
            size = image.size
        assert size[0] >= drawn.width * 100 - 1 and size[1] >= drawn.height * 100 - 1
        assert (size != (round(width * 100), round(height * 100))) == grows
        assert (drawn.x0 < 0) == grows  # the label the layout put past the edge
        if not grows:  # a figure that fits: the very picture its own savefig draws
            import io

            again = quicklook(cube, {"d_spectral": score, "d_spatial": score, "d_ss": score},
                              title="the stage maps")
            plain = io.BytesIO()
            again.savefig(plain, format="png", dpi=100)
            assert plain.getvalue() == path.read_bytes()


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


def test_one_epoch_is_one_whole_tick(tmp_path):
    """One epoch was drawn on ticks 0.945 … 1.050."""
    fig = plot_losses({"a": [0.5], "b": [0.2]}, tmp_path / "one.png")
    assert list(fig.axes[0].get_xticks()) == [1]
    two = plot_losses({"e": [0.4]}, stages={"gan": [0, 3, []], "encoder": [3, 1, ["e"]]})
    assert list(two.axes[0].get_xticks()) == [4]


def test_curves_along_an_edge_are_drawn_beside_it():
    """A constant map's τ-curves (one point) and an AUC-0 map's curve along the spines were
    hidden under the axes' edges; the 3D panel autoscaled around one unmarked point."""
    gt = np.zeros((8, 8), bool)
    gt[2:4, 2:4] = True
    for scores in (np.ones((8, 8)), (~gt).astype(float)):  # constant; AUC 0
        fig = plot_roc3d(scores, gt)
        ax3d, *flat = fig.axes
        assert ax3d.get_xlim3d() == (0, 1) and ax3d.get_zlim3d() == (0, 1)
        for ax in flat:
            assert ax.get_xlim()[0] < 0 < 1 < ax.get_xlim()[1]
            assert ax.get_ylim()[0] < 0 < 1 < ax.get_ylim()[1]
        if scores.min() == scores.max():
            assert all(ax.lines[0].get_marker() == "o" for ax in flat[1:])
        roc = plot_roc(scores, gt).axes[0]
        assert roc.get_xlim()[0] < 0 and roc.get_ylim()[0] < 0


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


def test_no_data_is_grey_and_named_in_the_legend():
    """Pixels without data were transparent on a white figure, beside inferno's palest
    colour: in grey print they looked like the highest scores."""
    cube = _cube(rows=40, cols=50, bands=8, nodata=-1.0)
    data = cube.values.copy()
    data[:10, :10, :] = -1.0
    cube = make_cube(data, wavelength=cube["wavelength"].values, nodata=-1.0)
    scores = np.where(data[..., 0] == -1.0, np.nan, 1.0)
    fig = quicklook(cube, scores)
    assert all(ax.get_facecolor()[:3] == pytest.approx((0.55,) * 3) for ax in fig.axes[:2])
    assert "no data" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert not quicklook(_cube(rows=20, cols=20, bands=8), np.ones((20, 20))).legends


def test_three_bands_without_wavelengths_are_rgb_and_one_band_is_grey():
    three = _cube(rows=10, cols=10, bands=3, wavelength=False)
    assert rgb_bands(three) == ([0, 1, 2], False)  # not band 3, 2, 2
    swir = make_cube(np.zeros((4, 4, 3)), wavelength=[2200.0, 1650.0, 1000.0])
    assert rgb_bands(swir) == ([0, 1, 2], False)  # the longest red, the shortest blue
    one = quicklook(_cube(rows=10, cols=10, bands=1, wavelength=False), np.ones((10, 10)))
    assert one.axes[0].get_title() == "grey: band 1"


@pytest.mark.parametrize("name, error", [("roc.jpg", "figures are written as PNG"),
                                         ("file.txt/roc.png", "cannot write")])
def test_a_figure_path_that_cannot_be_a_png_is_one_error(tmp_path, maps, name, error):
    from hsad.errors import HsadError

    (tmp_path / "file.txt").write_text("a file, not a folder")
    gt, m = maps
    with pytest.raises(HsadError, match=error):
        plot_roc(m, gt, path=tmp_path / name)
    assert not (tmp_path / "roc.jpg").exists()


def test_loss_epochs_are_whole_numbers_and_each_loss_has_its_own_line_style():
    fig = plot_losses({"a": [1.0, 0.5], "b": [0.9, 0.4], "c": [0.7, 0.6]})
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert len({line.get_linestyle() for line in ax.lines}) == 3


def test_infinite_scores_are_drawn_at_the_ends_of_the_scale_not_as_no_data():
    cube = _cube(rows=20, cols=20, bands=6)
    scores = np.linspace(0, 1, 400).reshape(20, 20)
    scores[5, 5], scores[0, 0] = np.inf, -np.inf
    fig = quicklook(cube, scores)
    image = fig.axes[1].images[0]
    colours = image.to_rgba(image.get_array())
    cmap = image.get_cmap()
    assert tuple(colours[5, 5]) == pytest.approx(cmap.get_over())
    assert tuple(colours[0, 0]) == pytest.approx(cmap(0.0))
    assert not fig.legends or "no data" not in [t.get_text() for t in fig.legends[0].get_texts()]


def test_the_crs_is_named_as_the_registry_names_it():
    from rasterio.crs import CRS

    from hsad.outputs.plots import crs_name

    unnamed = CRS.from_wkt(CRS.from_epsg(32611).to_wkt().replace("WGS 84 / UTM zone 11N",
                                                                 "unnamed"))
    assert crs_name(unnamed) == "EPSG:32611 (WGS 84 / UTM zone 11N)"
    albers = CRS.from_proj4("+proj=aea +lat_1=29.5 +lat_2=45.5 +lat_0=23 +lon_0=-96 "
                            "+datum=NAD83 +units=m")
    assert "Albers" in crs_name(albers) and "unknown" not in crs_name(albers)


def test_roc_plots_take_a_list_of_maps_and_name_them():
    """plot_roc([map], gt) failed with "dictionary update sequence element #0 has length 40"."""
    import xarray as xr

    from hsad.errors import ParameterError
    from hsad.outputs.roc_plots import _as_maps, plot_roc

    rng = np.random.default_rng(0)
    gt = rng.random((40, 40)) < 0.05
    a = xr.DataArray(rng.random((40, 40)) + gt, dims=("y", "x"), name="rx")
    b = rng.random((40, 40))
    assert list(_as_maps([a, b])) == ["rx", "map 2"]
    assert list(_as_maps([a, a])) == ["rx (1)", "rx (2)"]
    fig = plot_roc([a, b], gt)
    assert [t.get_text().split(" (AUC")[0] for t in fig.axes[0].get_legend().get_texts()] \
        == ["rx", "map 2"]
    with pytest.raises(ParameterError, match="give one score map, a list of them"):
        plot_roc(42, gt)
