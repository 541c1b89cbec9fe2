"""The benchmark's picture (``hsad benchmark --plot``) and the detections' spectra drawn
(``hsad detect --spectra-png``): what each shows, read back from the figure's artists."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from cli_helpers import one_error, run_cli
from PIL import Image
from test_benchmark_runner import _labelled
from test_spectra import scene

from hsad.errors import ParameterError
from hsad.io.envi_writer import write_envi
from hsad.outputs.benchmark import Row, to_markdown
from hsad.outputs.benchmark_plot import MEAN_ROW, plot_benchmark
from hsad.outputs.spectra import region_spectra
from hsad.outputs.spectra_plot import plot_spectra


def rows_of(table):
    """``Row`` objects from ``{(scene, method): (auc, seconds)}``."""
    return [Row(s, m, auc, 0.0, 0.0, 0.0, sec) for (s, m), (auc, sec) in table.items()]


def markers(ax):
    """``{method: [(x, y), …]}`` of a panel's marker lines (scene rows, then the mean)."""
    out = {}
    for line in ax.get_lines():
        if line.get_linestyle() != "None":
            continue  # the mean row's separator
        key = line.get_label() if not line.get_label().startswith("_") else None
        xy = list(zip(line.get_xdata(), line.get_ydata(), strict=True))
        if key is None:  # the mean's marker comes right after its method's rows
            key = list(out)[-1] + " mean"
        out.setdefault(key, []).extend(xy)
    return out


def test_the_benchmark_picture_shows_each_value_on_its_scene_row_and_the_means():
    table = {("lake", "rx"): (0.90, 0.5), ("lake", "lrx"): (0.95, 4.0),
             ("field", "rx"): (0.80, 0.7), ("field", "lrx"): (0.99, 6.0),
             ("lake", "lrx:stage"): (0.70, 4.0)}
    fig = plot_benchmark(rows_of(table))
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_yticklabels()] == ["lake", "field", MEAN_ROW]
    assert right.get_xscale() == "log"
    auc, seconds = markers(left), markers(right)
    nudges = {}
    for method, values in (("rx", [0.90, 0.80]), ("lrx", [0.95, 0.99]), ("lrx:stage", [0.7])):
        xs, ys = zip(*auc[method], strict=True)
        assert list(xs) == pytest.approx(values)
        # each on its scene's row (0: lake, 1: field), nudged by the same amount in a row
        # and by less than a third of a row
        offsets = np.asarray(ys) - np.arange(len(values))
        assert np.ptp(offsets) < 1e-12 and abs(offsets[0]) < 0.34
        nudges[method] = offsets[0]
        (mx, my), = auc[method + " mean"]
        assert mx == pytest.approx(np.mean(values)) and my == pytest.approx(2 + offsets[0])
    assert len({round(v, 9) for v in nudges.values()}) == 3  # apart, even at equal values
    assert left.get_ylim() == (2.5, -0.5)  # the first scene on top, the mean at the bottom
    assert "lrx:stage" not in seconds  # a stage's time is its whole run's
    assert [x for x, _ in seconds["lrx"]] == pytest.approx([4.0, 6.0])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["rx", "lrx", "lrx:stage"]
    low, high = left.get_xlim()
    assert low < 0.70 and 1.0 < high < 1.05  # every value shown, 1 the right edge's
    with pytest.raises(ParameterError, match="no benchmark result"):
        plot_benchmark([])


def test_the_benchmark_picture_gives_each_kind_of_scene_its_mean_as_the_tables_do():
    """A run of development scenes and one's own files drew the pooled mean only, which the
    Markdown beside it says "says neither"."""
    table = {("abu-airport-1", "rx"): (0.90, 0.5), ("abu-beach-1", "rx"): (0.80, 0.5),
             ("mine.mat", "rx"): (0.60, 0.5), ("abu-airport-1", "lrx"): (0.95, 4.0),
             ("abu-beach-1", "lrx"): (0.97, 4.0)}  # lrx failed on mine.mat
    left = plot_benchmark(rows_of(table)).axes[0]
    assert [t.get_text() for t in left.get_yticklabels()] == [
        "abu-airport-1", "abu-beach-1", "mine.mat", "mean, development (2)",
        "mean, your files (1)", MEAN_ROW]
    auc = markers(left)
    means = {m: sorted((round(y), x) for x, y in auc[m + " mean"] + auc.get(
        m + " mean mean", []) + auc.get(m + " mean mean mean", [])) for m in ("rx", "lrx")}
    assert means["rx"] == [(3, pytest.approx(0.85)), (4, pytest.approx(0.60)),
                           (5, pytest.approx(2.3 / 3))]
    assert means["lrx"] == [(3, pytest.approx(0.96)), (5, pytest.approx(0.96))]
    assert "mean, development (2)" in to_markdown(rows_of(table))


@pytest.mark.parametrize("low, high", [(0.04, 0.65), (0.3, 0.45), (0.001, 300.0),
                                       (2.0, 9.0), (0.0013, 0.004), (0.0013, 0.00137)])
def test_the_seconds_axis_labels_never_overlap(low, high):
    """Times spanning less than a decade (0.04–0.65 s) had their minor ticks labelled by
    matplotlib, on top of one another ("4×10⁻²6×10⁻²10⁻¹…"). The axis is labelled in plain
    numbers, as many as its span leaves room for, at least two (its ends' values where no
    1, 2 or 5 × 10ᵏ lies within it, or their labels would not fit: 1.3–1.37 ms)."""
    seconds = np.geomspace(low, high, 6)
    table = {(f"s{i}", m): (0.9, v * (1 + 0.1 * j)) for i, v in enumerate(seconds)
             for j, m in enumerate(("rx", "aed"))}
    fig = plot_benchmark(rows_of(table))
    fig.canvas.draw()
    ax = fig.axes[1]
    lo, hi = ax.get_xlim()
    shown = sorted(((t.get_window_extent(), t.get_text()) for t in ax.get_xticklabels()
                    if t.get_text() and lo <= t.get_position()[0] <= hi),
                   key=lambda box: box[0].x0)
    assert len(shown) >= 2, shown
    assert all(a.x1 < b.x0 for (a, _), (b, _) in zip(shown, shown[1:], strict=False)), shown
    assert all("10^" not in text and "×" not in text for _, text in shown), shown


def test_values_a_panel_cannot_show_are_left_out_and_counted_and_long_names_shortened():
    long = "/data/campaign_2024/processed/airborne/abu_subset/abu-urban-1.mat"
    table = {(long, "rx"): (float("nan"), 0.5), (long, "lrx"): (0.4, 0.0),
             ("field", "rx"): (0.80, 0.7), ("field", "lrx"): (0.99, 6.0)}
    fig = plot_benchmark(rows_of(table))
    left, right = fig.axes[:2]
    auc, seconds = markers(left), markers(right)
    assert [x for x, _ in auc["rx"]] == [0.80] and auc["rx mean"][0][0] == 0.80
    assert [x for x, _ in seconds["lrx"]] == [6.0]
    assert "1 value not finite left out" in left.get_xlabel()
    assert "1 value not a positive number left out" in right.get_xlabel()
    name = left.get_yticklabels()[0].get_text()
    assert name.startswith("…") and name.endswith("abu_subset/abu-urban-1.mat")
    assert len(name) <= 32
    assert any(line.get_xdata()[0] == 0.5 for line in left.get_lines()
               if line.get_linestyle() == "--")  # an AUC under 0.5: chance is marked
    with pytest.raises(ParameterError, match="no finite AUC"):
        plot_benchmark(rows_of({("a", "rx"): (float("nan"), 1.0)}))
    # a method whose every AUC is left out keeps its legend entry (its times are drawn)
    fig = plot_benchmark(rows_of({("a", "rx"): (0.9, 1.0), ("a", "lrx"): (float("nan"), 2.0)}))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["rx", "lrx"]


def test_hsad_benchmark_writes_its_picture_beside_the_tables(tmp_path, capsys):
    for seed, name in enumerate(("lake", "field")):
        _labelled(tmp_path, f"{name}.mat", seed=seed)
    png, table = tmp_path / "out" / "bench.png", tmp_path / "r.csv"
    args = ["benchmark", "-m", "rx,lrx", "--datasets", f"{tmp_path / 'lake.mat'},"
            f"{tmp_path / 'field.mat'}", "-p", "lrx.inner=3", "-p", "lrx.outer=7"]
    code, _, err = run_cli([*args, "--csv", table, "--plot", png], capsys)
    assert code == 0, err
    assert len(list(csv.DictReader(table.open()))) == 4
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) > 300
    line = one_error([*args, "--plot", png], capsys)  # there: refused before any run
    assert "bench.png" in line and "exists" in line
    line = one_error([*args, "--plot", tmp_path / "bench.jpg"], capsys)
    assert "bench.jpg" in line and ".png" in line


def lines_by_label(fig):
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_the_spectra_picture_draws_the_top_regions_over_the_background():
    cube, scores, mask, values = scene()
    ds = region_spectra(cube, mask, scores)
    fig = plot_spectra(ds, most=2)
    drawn = lines_by_label(fig)
    regions = [k for k in drawn if k.startswith("region")]
    top = np.argsort(-ds["peak_score"].values)[:2]  # the two regions of highest peaks
    assert [int(k.split(":")[0].split()[1]) for k in regions] == ds["id"].values[top].tolist()
    for key, r in zip(regions, top, strict=True):
        np.testing.assert_allclose(drawn[key].get_ydata(), ds["mean_spectrum"].values[r],
                                   rtol=1e-6)
        np.testing.assert_allclose(drawn[key].get_xdata(), ds["wavelength"].values)
        assert f"{int(ds['pixels'].values[r])} px" in key
    background = next(k for k in drawn if k.startswith("background mean"))
    assert f"({ds.attrs['background_pixels']:,} pixels)" in background
    np.testing.assert_allclose(drawn[background].get_ydata(), ds["background_mean"].values,
                               rtol=1e-6)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "wavelength (nm)"
    assert f"the 2 of {ds.sizes['region']} regions" in ax.get_title()


def test_bad_bands_and_gaps_break_the_lines_and_no_wavelengths_gives_band_numbers():
    cube, scores, mask, _ = scene()
    ds = region_spectra(cube, mask, scores)
    # bands at 450 … 650 and 900 … 950 nm: a gap; the second band bad
    ds = ds.assign_coords(wavelength=("band", [450.0, 500.0, 550.0, 600.0, 900.0, 950.0]),
                          good_band=("band", [1, 0, 1, 1, 1, 1]))
    line = lines_by_label(plot_spectra(ds))["region 1: 1 px, peak " +
                                            f"{float(ds['peak_score'].values[0]):.4g}"]
    x, y = line.get_xdata(), line.get_ydata()
    assert np.isnan(x).sum() == 1 and np.isnan(x[4])  # the break between 600 and 900 nm
    assert np.isnan(y[1]) and np.isnan(y[4]) and np.isfinite(np.delete(y, [1, 4])).all()
    # two spectrometers overlapping (VNIR to 990 nm, SWIR from 900): two lines, each in
    # its own file order, never a zig-zag between the two
    ds2 = ds.assign_coords(wavelength=("band", [800.0, 900.0, 990.0, 900.5, 1000.0, 1100.0]),
                           good_band=("band", [1] * 6))
    line = lines_by_label(plot_spectra(ds2))[next(
        k for k in lines_by_label(plot_spectra(ds2)) if k.startswith("region 1:"))]
    np.testing.assert_array_equal(line.get_xdata(), [800.0, 900.0, 990.0, np.nan, 900.5,
                                                     1000.0, 1100.0])
    # a file listing its bands from the longest wavelength down is drawn the same way round
    flipped = ds2.isel(band=slice(None, None, -1))
    xs = next(iter(lines_by_label(plot_spectra(flipped)).values())).get_xdata()
    np.testing.assert_array_equal(xs, [800.0, 900.0, 990.0, np.nan, 900.5, 1000.0, 1100.0])
    fig = plot_spectra(ds.drop_vars(["wavelength", "good_band"]))
    assert fig.axes[0].get_xlabel() == "band number"
    with pytest.raises(ParameterError, match="region_spectra"):
        plot_spectra(ds.drop_vars("mean_spectrum"))


def test_a_value_alone_is_a_dot_and_a_picture_of_nothing_warns():
    from hsad.errors import DegenerateDataWarning

    cube, scores, mask, _ = scene()
    ds = region_spectra(cube, mask, scores)
    alternate = ds.assign_coords(good_band=("band", [1, 0, 1, 0, 1, 0]))
    fig = plot_spectra(alternate, most=1)
    dots = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    # the background's and the region's: each good band a dot, none of them a line
    assert len(dots) == 2 and all(d.get_xdata().size == 3 for d in dots)
    with pytest.warns(DegenerateDataWarning, match="no value"):
        plot_spectra(ds.assign_coords(good_band=("band", [0] * 6)))


def test_library_names_are_in_the_labels_and_the_legend_fits_the_figure():
    cube, scores, mask, _ = scene()
    ds = region_spectra(cube, mask, scores)
    names = ["soil, dark brown, loamy sand with rock fragments and organic matter, "
             "sample GB-17-0042 (field spectrum, averaged)"] * ds.sizes["region"]
    ds = ds.assign(match=("region", names),
                   match_angle=("region", np.full(ds.sizes["region"], 14.94)))
    fig = plot_spectra(ds)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    regions = [t for t in labels if t.startswith("region")]
    assert regions and all(t.endswith("(14.9°)") for t in regions)  # the angle always kept
    assert all("…" in t for t in regions)  # the long name cut, whole in the table
    fig.canvas.draw()
    box, legend = fig.bbox, fig.legends[0].get_window_extent()
    assert box.x0 <= legend.x0 and legend.x1 <= box.x1 and box.y0 <= legend.y0


def test_hsad_detect_draws_the_spectra_alone_or_with_the_table(tmp_path, capsys):
    cube, *_ = scene()
    write_envi(cube, tmp_path / "scene.img")
    png = tmp_path / "out" / "spectra.png"
    base = ["detect", tmp_path / "scene.img", "-m", "rx", "--contamination", "0.01"]
    code, text, err = run_cli([*base, "-o", tmp_path / "rx.tif", "--spectra-png", png], capsys)
    assert code == 0, err
    assert f"wrote spectra_png: {png}" in text
    with Image.open(png) as image:
        assert image.format == "PNG"
    line = one_error([*base, "-o", tmp_path / "rx2.tif", "--spectra-png", png], capsys)
    assert "spectra.png" in line and "exists" in line and not (tmp_path / "rx2.tif").exists()
    both = [tmp_path / "both.csv", tmp_path / "both.png"]
    code, text, err = run_cli([*base, "-o", tmp_path / "rx3.tif", "--spectra", both[0],
                               "--spectra-png", both[1]], capsys)
    assert code == 0, err
    assert f"wrote spectra: {both[0]}" in text and f"wrote spectra_png: {both[1]}" in text
    line = one_error([*base, "-o", tmp_path / "rx2.tif", "--library", tmp_path / "lib.sli"],
                     capsys)
    assert "--spectra or --spectra-png" in line


def test_a_quicklook_of_several_maps_has_a_panel_and_colour_bar_each():
    from hsad.outputs.plots import quicklook

    cube, scores, mask, _ = scene()
    maps = {"first": scores, "second": scores * 2, "third": scores + 1}
    fig = quicklook(cube, maps, truth=mask, score_label={"first": "unit one"})
    titled = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(maps) <= set(titled)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 3
    assert bars[0].get_ylabel().startswith("unit one;")
    assert bars[1].get_ylabel().startswith("second;")  # no label given: the map's title
    # four panels: two rows of two, the composite first
    cells = [(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start)
             for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert cells == [(0, 0), (0, 1), (1, 0), (1, 1)]
    image = titled["second"].get_images()[0].get_array()
    np.testing.assert_allclose(image, np.asarray(scores) * 2, rtol=1e-6)


def test_hsad_detect_draws_the_stage_maps_with_their_aucs(tmp_path, capsys, monkeypatch):
    from hsad import synthetic
    from hsad.outputs import plots

    files = synthetic.write_scene(synthetic.make_scene(rows=40, cols=44, seed=4), tmp_path)
    drawn = {}
    real = plots.quicklook

    def spy(cube, scores=None, **kwargs):
        drawn.update(maps=scores, labels=kwargs["score_label"], title=kwargs["title"])
        return real(cube, scores, **kwargs)

    monkeypatch.setattr(plots, "quicklook", spy)
    png = tmp_path / "stages.png"
    base = ["detect", files["cube"], "-m", "aae", "-p", "epochs=1", "-p", "sample_size=400",
            "--seed", "0", "-o", tmp_path / "a.tif", "--no-progress"]
    code, text, err = run_cli([*base, "--save-stages", tmp_path / "st", "--stages-png", png,
                               "--truth", files["truth"]], capsys)
    assert code == 0, err
    assert f"wrote stages_png: {png}" in text
    with Image.open(png) as image:
        assert image.format == "PNG"
    names = [title.split(":")[0] for title in drawn["maps"]]
    assert names[:3] == ["d_spectral", "d_spatial", "d_ss"]  # and the model's own terms
    assert sorted(names) == sorted(p.stem for p in (tmp_path / "st").glob("*.tif"))
    from hsad.io.maps import read_truth
    from hsad.outputs.metrics import evaluate

    truth = read_truth(files["truth"])[0] > 0
    for title, stage in zip(drawn["maps"], names, strict=True):
        with rasterio_open(tmp_path / "st" / f"{stage}.tif") as src:
            auc = evaluate(src.read(1), truth)["auc_df"]
        assert title == f"{stage}: AUC(D,F) {auc:.4f}"
    assert "squared Mahalanobis" in drawn["labels"][drawn_key(drawn, "d_spectral")]
    assert "the stage maps" in drawn["title"]
    line = one_error([*base, "--stages-png", tmp_path / "x.png", "--overwrite"], capsys)
    assert "--save-stages" in line and "x.png" in line


def drawn_key(drawn, stage):
    return next(k for k in drawn["maps"] if k.startswith(stage))


def rasterio_open(path):
    import rasterio

    return rasterio.open(path)


def test_stages_of_a_granule_are_drawn_in_its_instrument_geometry(tmp_path, capsys):
    from test_emit import ROWS, write_granule

    path = tmp_path / "EMIT_L2A_RFL_001_20240101T000000_2400101_001.nc"
    write_granule(path)
    drawn = {}
    from hsad.outputs import plots

    real = plots.quicklook

    def spy(cube, scores=None, **kwargs):
        drawn["shapes"] = {k: tuple(np.shape(v)) for k, v in scores.items()}
        drawn["cube"] = cube.shape[:2]
        return real(cube, scores, **kwargs)

    plots.quicklook, restore = spy, plots.quicklook
    try:
        code, text, err = run_cli(["detect", path, "-m", "aae", "-p", "epochs=1", "-p",
                                   "sample_size=300", "--seed", "0", "-o", tmp_path / "a.tif",
                                   "--save-stages", tmp_path / "st", "--stages-png",
                                   tmp_path / "st.png", "--no-progress"], capsys)
    finally:
        plots.quicklook = restore
    assert code == 0, err
    assert drawn["cube"][0] == ROWS and set(drawn["shapes"].values()) == {drawn["cube"]}
    assert (tmp_path / "st.png").is_file()


def test_a_bad_composite_band_fails_the_stages_picture_before_any_work(tmp_path, capsys):
    cube, *_ = scene()
    write_envi(cube, tmp_path / "scene.img")
    line = one_error(["detect", tmp_path / "scene.img", "-m", "aae", "-p", "epochs=1",
                      "-o", tmp_path / "a.tif", "--save-stages", tmp_path / "st",
                      "--stages-png", tmp_path / "st.png", "--rgb-bands", "50,60,70"], capsys)
    assert "--rgb-bands" in line
    assert not (tmp_path / "st").exists() and not (tmp_path / "a.tif").exists()


def test_a_batch_with_stage_maps_is_resumed(tmp_path, capsys):
    """--save-stages plans the stage maps its detector writes (aae's own terms among
    them, f-AnoGAN's not), so a finished scene is skipped."""
    for name in ("one", "two"):
        cube, *_ = scene()
        write_envi(cube, tmp_path / f"{name}.img")
    out = tmp_path / "out"
    args = ["detect", tmp_path / "one.img", tmp_path / "two.img", "-m", "aae", "-p",
            "epochs=1", "-p", "sample_size=300", "--seed", "0", "-o", out / "{stem}.tif",
            "--save-stages", out / "{stem}_st", "--stages-png", out / "{stem}_st.png",
            "--no-progress"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    written = sorted(p.stem for p in (out / "one_st").glob("*.tif"))
    assert written == ["d_spatial", "d_spectral", "d_ss", "error", "latent_error"]
    code, text, err = run_cli([*args, "--skip-existing"], capsys)
    assert code == 0, err
    assert text.count("skipped") == 2
    # an existing map of the detector's own terms is refused like any other output
    for path in out.rglob("*"):
        if path.is_file() and path.name != "error.tif":
            path.unlink()
    line = one_error(args, capsys)
    assert "error.tif: exists" in line


def test_a_one_pixel_detection_is_outlined_along_its_pixel_s_edges():
    from hsad.cube import make_cube
    from hsad.outputs.plots import quicklook

    cube = make_cube(np.random.default_rng(0).random((40, 50, 3)).astype(np.float32))
    mask = np.zeros((40, 50), bool)
    mask[10, 20] = True
    fig = quicklook(cube, np.random.default_rng(1).random((40, 50)), detections=mask)
    ax = fig.axes[0]
    (path,) = [p for c in ax.collections for p in c.get_paths() if len(p.vertices)]
    x, y = path.vertices[:, 0], path.vertices[:, 1]
    # the pixel spans columns 19.5 … 20.5 and rows 9.5 … 10.5: a square, its corners cut
    # by an eighth of a pixel (a diamond through the edges' middles had half its area)
    assert (x.min(), x.max(), y.min(), y.max()) == pytest.approx((19.5, 20.5, 9.5, 10.5))
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert area == pytest.approx(1 - 4 * 0.5 * (1 / 8) ** 2)


def staged_detectors() -> list[str]:
    from hsad import detectors

    return sorted(name for name, cls in detectors.available().items()
                  if hasattr(cls, "score_stages"))


@pytest.mark.parametrize("name", staged_detectors())
def test_the_planned_stage_maps_are_those_written(name):
    """``--save-stages`` plans (``stage_names``) exactly the 2-D stage maps a run returns:
    a name planned and never written would keep a batch from resuming; one written and
    not planned would replace a file without --overwrite."""
    from hsad import detectors, pipeline
    from hsad.cube import make_cube

    cube = make_cube(np.random.default_rng(0).normal(100.0, 5.0, (20, 20, 8))
                     .astype(np.float32))
    det = detectors.get(name, epochs=1, sample_size=200, seed=0)
    labels = None
    if pipeline.uses_labels(det):
        labels = np.zeros((20, 20), bool)
        labels[3, 4] = True
    run = pipeline.run_detector(det, cube, stages=True, labels=labels)
    written = [k for k, m in run.stages.items() if m.ndim == 2]
    assert sorted(pipeline.stage_names(det)) == sorted(written)


def test_a_config_whose_method_is_no_name_is_one_error(tmp_path, capsys):
    cube, *_ = scene()
    write_envi(cube, tmp_path / "scene.img")
    (tmp_path / "c.yaml").write_text("method: [1, 2]\n")
    line = one_error(["detect", tmp_path / "scene.img", "-c", tmp_path / "c.yaml", "-o",
                      tmp_path / "x.tif"], capsys)
    assert "c.yaml" in line and "'method' must be a detector's name" in line


def test_vae_s_plain_score_is_the_output_map_not_a_planned_stage(tmp_path, capsys):
    cube, *_ = scene()
    write_envi(cube, tmp_path / "scene.img")
    code, _, err = run_cli(["detect", tmp_path / "scene.img", "-m", "vae", "-p", "epochs=1",
                            "-p", "sample_size=300", "-o", tmp_path / "v" / "score.tif",
                            "--save-stages", tmp_path / "v", "--no-progress"], capsys)
    assert code == 0, err
    assert sorted(p.stem for p in (tmp_path / "v").glob("*.tif")) == [
        "d_spatial", "d_spectral", "d_ss", "kl", "reconstruction", "score"]
