"""The analyst's outputs end to end through the CLI: the default threshold, provenance tags
read back by ``hsad info``, QGIS styles, COG masks, the quicklook's detections, legend and
map coordinates, polygons without a CRS, and ``hsad methods``."""

from __future__ import annotations

import json
import re
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio

from hsad import detectors, open_cube
from hsad.cli.main import main
from hsad.engine.thresholds import DEFAULT_RULE, robust_threshold
from hsad.errors import ParameterError
from hsad.outputs.plots import quicklook, rgb_bands


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from hsad import synthetic

    return synthetic.write_scene(synthetic.make_scene(rows=48, cols=56, seed=4),
                                 tmp_path_factory.mktemp("scene"))


def test_mask_without_a_criterion_uses_the_default_rule(scene, tmp_path, capsys):
    scores, mask = tmp_path / "rx.tif", tmp_path / "mask.tif"
    code, out, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", scores,
                              "--mask", mask, "--no-progress"], capsys)
    assert code == 0, err
    with rasterio.open(scores) as src:
        s = src.read(1).astype(np.float64)
    with rasterio.open(mask) as src:
        m = src.read(1)
        assert src.tags()["hsad_threshold_rule"] == DEFAULT_RULE
    thr = robust_threshold(s)
    np.testing.assert_array_equal(m == 1, s >= thr)
    assert f"{m.sum()} anomalous pixels" in out and "robust log-normal fit" in out
    assert 0 < m.sum() < 0.05 * m.size
    # the recorded threshold rebuilds the mask in float64 (QGIS's raster calculator), and
    # in float32 where it is a score value, as with --contamination
    with rasterio.open(mask) as src:
        np.testing.assert_array_equal(m == 1, s >= float(src.tags()["hsad_threshold"]))
    code, out, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", scores, "--overwrite",
                              "--mask", mask, "--contamination", "0.02", "--no-progress"],
                             capsys)
    assert code == 0, err
    with rasterio.open(mask) as src:
        m, tag = src.read(1), float(src.tags()["hsad_threshold"])
    assert (s >= tag).sum() == (m == 1).sum() > 0


def test_the_recorded_threshold_rebuilds_a_mask_of_tied_scores(tmp_path, capsys):
    """Twelve spectra repeated: RX scores tie, and the contamination threshold is one of
    them. The tag keeps every digit, so `score >= tag` in float64 (QGIS's raster
    calculator) gives the mask; nine digits read back above the float32 score and lost
    all of them."""
    import scipy.io

    rng = np.random.default_rng(1)
    spectra = rng.normal(100, 5, (12, 6))
    scipy.io.savemat(tmp_path / "t.mat",
                     {"data": spectra[rng.integers(0, 12, (40, 40))].astype(np.float32)})
    scores, mask = tmp_path / "t.tif", tmp_path / "m.tif"
    code, _, err = run_cli(["detect", tmp_path / "t.mat", "-m", "rx", "-o", scores, "--mask",
                            mask, "--contamination", "0.05", "--no-progress"], capsys)
    assert code == 0, err
    with rasterio.open(scores) as src:
        s = src.read(1).astype(np.float64)
    with rasterio.open(mask) as src:
        m, tag = src.read(1), float(src.tags()["hsad_threshold"])
    assert (m == 1).sum() > 0
    np.testing.assert_array_equal(m == 1, s >= tag)


def test_provenance_tags_survive_hsad_info(scene, tmp_path, capsys):
    scores, mask = tmp_path / "lrx.tif", tmp_path / "m.tif"
    code, _, err = run_cli(["detect", scene["cube"], "-m", "lrx", "-p", "inner=3",
                            "-p", "outer=9", "-o", scores, "--mask", mask,
                            "--contamination", "0.01"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["info", scores, "--json"], capsys)
    assert code == 0, err
    tags = json.loads(out)["provenance"]
    assert tags["hsad_method"] == "lrx" and tags["hsad_map"] == "score"
    assert json.loads(tags["hsad_params"])["inner"] == 3
    assert tags["hsad_input"].endswith(str(scene["cube"].name))
    assert tags["hsad_created"][:4].isdigit() and "hsad_version" in tags
    # the band description names the map's unit, as docs/outputs.md says (it did not)
    assert tags["band"] == ("anomaly score of lrx (squared Mahalanobis distance to the "
                            "local background; higher = more anomalous)")
    code, out, _ = run_cli(["info", mask], capsys)
    assert "method:     lrx" in out and "contamination 0.01" in out


def test_styles_beside_rasters_and_masks_are_cogs_with_cog(scene, tmp_path, capsys):
    scores, mask = tmp_path / "s.tif", tmp_path / "m.tif"
    code, out, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", scores, "--mask",
                              mask, "--cog"], capsys)
    assert code == 0, err
    with rasterio.open(mask) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.descriptions[0].startswith("anomaly mask")
    with rasterio.open(scores) as src:
        s = src.read(1)
    ramp = ET.parse(tmp_path / "s.qml").getroot().find(".//colorrampshader")
    lo, hi = float(ramp.get("minimumValue")), float(ramp.get("maximumValue"))
    assert lo == pytest.approx(np.percentile(s, 1), rel=1e-6)
    assert hi == pytest.approx(np.percentile(s, 99.9), rel=1e-6)
    assert len(ramp.findall("item")) == 9
    palette = ET.parse(tmp_path / "m.qml").getroot().findall(".//paletteEntry")
    assert {e.get("value"): e.get("alpha") for e in palette} == {"0": "0", "1": "255"}
    # the styles are outputs like any other: refused when they exist
    (tmp_path / "t.qml").write_text("mine")
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "t.tif"],
                           capsys)
    assert code == 2 and "t.qml: exists" in err
    assert (tmp_path / "t.qml").read_text() == "mine" and not (tmp_path / "t.tif").exists()


def _stages_of_aae(scene, folder, capsys, *fusion):
    """Run a one-epoch AAE with ``fusion`` options, its stages saved into ``folder``."""
    code, _, err = run_cli(["detect", scene["cube"], "-m", "aae", "-p", "epochs=1",
                            "-p", "sample_size=500", *fusion, "--seed", "0",
                            "-o", folder.with_suffix(".tif"), "--save-stages", folder,
                            "--no-progress"], capsys)
    assert code == 0, err


def test_stage_maps_name_their_units(scene, tmp_path, capsys):
    _stages_of_aae(scene, tmp_path / "st", capsys, "-p", "fusion_norm=rank")
    with rasterio.open(tmp_path / "st" / "d_spectral.tif") as src:
        assert "squared Mahalanobis" in src.descriptions[0]
    with rasterio.open(tmp_path / "st" / "d_ss.tif") as src:  # the map's own λ, S and N
        assert src.descriptions[0] == ("D_SS = 0.4*N(D_spatial) + 0.6*N(T(D_spectral), T = "
                                       "area top-hat), N = rank (average ranks / n) to 0..1 "
                                       "(unitless, 0..1)")
        assert src.tags()["hsad_map"] == "d_ss"
    assert (tmp_path / "st" / "d_ss.qml").is_file()
    # D_spatial is no count of standard deviations: each filter response is a fraction of
    # its image's grey-level range (the images min-max scaled to 256 levels)
    with rasterio.open(tmp_path / "st" / "d_spatial.tif") as src:
        assert src.descriptions[0] == ("D_spatial: attribute-filter responses of the "
                                       "principal components, summed (unitless: each a "
                                       "fraction of its component's grey-level range)")
    # a seed model's own score terms said they were one, with no unit (outputs.md's
    # provenance promises one): the model's own, where its page defines them
    with rasterio.open(tmp_path / "st" / "latent_error.tif") as src:
        assert src.descriptions[0] == ("latent_error: score term of aae (in the model's own "
                                       "units, docs/seed_models.md)")
    _stages_of_aae(scene, tmp_path / "sp", capsys, "--fusion", "paper")
    with rasterio.open(tmp_path / "sp" / "d_spatial.tif") as src:
        assert src.descriptions[0].startswith("D_spatial: attribute-filter responses of the "
                                              "3 lowest-energy residual bands, averaged")


def test_quicklook_outlines_detections_with_legend_and_map_coordinates(scene, tmp_path):
    cube = open_cube(scene["cube"])
    det = detectors.get("rx")
    scores = det.fit_score(cube)
    mask = det.threshold(scores)
    truth = np.asarray(open_cube(scene["truth"]).values[:, :, 0] > 0)
    fig = quicklook(cube, scores, truth=truth, detections=mask, rgb=(650, 550, 450))
    ax_rgb, ax_map = fig.axes[:2]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("detections (score ≥") and labels[1] == "ground truth"
    assert len(ax_map.collections) == 2  # the two outlines: the truth's last, on top
    detected, truth_lines = ax_map.collections
    assert truth_lines.get_linestyle()[0][1] is not None  # dashed: told apart without hue
    assert all(e.__class__.__name__ == "withStroke" for c in ax_map.collections
               for e in c.get_path_effects())  # a dark edge on light and dark pixels
    t = cube.rio.transform()
    assert ax_rgb.get_xlim() == pytest.approx((t.c, t.c + 56 * t.a))
    assert ax_rgb.get_ylim() == pytest.approx((t.f + 48 * t.e, t.f))
    assert ax_rgb.get_xlabel().startswith("easting (m); EPSG:") and \
        ax_rgb.get_ylabel() == "northing (m)"  # the CRS named


def test_a_detection_on_the_image_edge_gets_a_closed_outline(scene):
    """Its outline was an open "^" along the edge, easy to miss beside the closed ones."""
    cube = open_cube(scene["cube"])
    scores = detectors.get("rx").fit_score(cube)
    edge = np.zeros(scores.shape, bool)
    edge[-1, 10] = edge[20, 0] = True  # the last row, the first column
    fig = quicklook(cube, scores, detections=edge, rgb=(650, 550, 450))
    t = cube.rio.transform()
    paths = fig.axes[1].collections[0].get_paths()
    from matplotlib.path import Path as Ring

    rings = [Ring(p) for path in paths for p in path.to_polygons(closed_only=True)]
    assert len(rings) == 2
    for r, c in zip(*np.nonzero(edge), strict=True):  # each inside a closed ring of its own
        centre = (t.c + (c + 0.5) * t.a, t.f + (r + 0.5) * t.e)
        assert sum(ring.contains_point(centre) for ring in rings) == 1


def test_rgb_options(scene, tmp_path, capsys):
    cube = open_cube(scene["cube"])
    wl = cube["wavelength"].values
    picks, by_wl = rgb_bands(cube, rgb=(800, 700, 600))
    assert by_wl and [abs(wl[i] - t) == np.abs(wl - t).min()
                      for i, t in zip(picks, (800, 700, 600), strict=True)] == [True] * 3
    assert rgb_bands(cube, positions=(5, 3, 1)) == ([5, 3, 1], False)
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "x.tif",
                            "--png", tmp_path / "q.png", "--rgb", "5000,550,460"], capsys)
    assert code == 2 and "--rgb: no good band within 50 nm of 5000" in err
    assert not (tmp_path / "x.tif").exists()  # refused before any work
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "x.tif",
                            "--png", tmp_path / "q.png", "--rgb-bands", "5,3"], capsys)
    assert code == 2 and "three comma-separated numbers" in err


def test_composite_bands_are_counted_and_named_as_in_the_file(scene, tmp_path, capsys,
                                                              monkeypatch):
    """``--rgb-bands`` counts the file's bands as ``--bands`` does, whatever is selected;
    the composite's title names its bands by wavelength, or by their number in the file;
    a default composite without visible bands says so."""
    from hsad.cube import make_cube
    from hsad.outputs import plots
    from hsad.outputs import quicklook as drawing

    titles = []

    def kept(*args, **kwargs):
        fig = drawing.quicklook(*args, **kwargs)
        titles.append(fig.axes[0].get_title())
        return fig

    monkeypatch.setattr(plots, "quicklook", kept)
    wl = open_cube(scene["cube"])["wavelength"].values
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "a.tif",
                            "--bands", "100:150", "--rgb-bands", "120,110,100",
                            "--png", tmp_path / "a.png", "--no-progress"], capsys)
    assert code == 0, err
    assert titles[-1].replace("\n", " ") == (
        f"RGB composite (R {wl[120]:.0f} nm, G {wl[110]:.0f} nm, B {wl[100]:.0f} nm)")
    assert "no good band lies within" not in err  # bands chosen: no warning
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "b.tif",
                            "--bands", "100:150", "--rgb-bands", "5,6,7",
                            "--png", tmp_path / "b.png"], capsys)
    assert code == 2 and "band 5 of the file" in err and "positions 100:150" in err
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "b.tif",
                            "--bands", "0:10,100:150", "--rgb-bands", "20,110,120",
                            "--png", tmp_path / "b.png"], capsys)
    assert code == 2 and "band 20 of the file" in err and "positions 0:10,100:150" in err
    assert not (tmp_path / "b.tif").exists()
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "c.tif",
                            "--wavelengths", "1000:2500", "--png", tmp_path / "c.png",
                            "--no-progress"], capsys)
    assert code == 0, err
    assert "no good band lies within 50 nm of 640, 550, 460 nm" in err and "--rgb" in err
    assert titles[-1].startswith("RGB composite (R ") and " nm" in titles[-1]
    # only the red left out: the warning names the red alone
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "e.tif",
                            "--exclude-wavelengths", "585:695", "--png", tmp_path / "e.png",
                            "--no-progress"], capsys)
    assert code == 0 and "no good band lies within 50 nm of 640 nm (" in err, err
    # without wavelengths: named by the file's band numbers, from 1 as GDAL and QGIS count
    bare = make_cube(open_cube(scene["cube"]).values[:, :, :20])
    fig = drawing.quicklook(bare.isel(band=slice(5, 20)), rgb_positions=(2, 1, 0))
    assert fig.axes[0].get_title() == "RGB composite (R band 8, G band 7, B band 6)"


def test_polygons_without_crs_are_in_pixels_and_said_once(tmp_path, capsys):
    from hsad.outputs.polygons import polygons, write_polygons

    mask = np.zeros((10, 12), bool)
    mask[2:4, 3:6] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_polygons(polygons(mask), tmp_path / "p.gpkg", crs=None)
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'p.gpkg'}: the scene has no CRS, so the polygons are in pixel "
        f"coordinates as QGIS draws such a raster (x = column, y = −row, from the top-left "
        f"corner)"]
    import pyogrio

    bounds = pyogrio.read_info(tmp_path / "p.gpkg")["total_bounds"]
    assert list(bounds) == [3.0, -4.0, 6.0, -2.0]


def test_every_parameter_has_a_meaning_and_runtime_options_are_not_listed(capsys):
    from hsad.detectors.param_help import RUNTIME, describe

    missing = [f"{name}:{p}" for name, cls in detectors.available().items()
               for p in cls.param_defaults() if p not in RUNTIME and not describe(name, p)]
    assert missing == []
    code, out, _ = run_cli(["methods", "crd"], capsys)
    assert code == 0
    assert "inner = 5" in out and "inner guard window, pixels" in out
    assert "Tikhonov" in out and "progress =" not in out
    code, out, _ = run_cli(["methods"], capsys)
    assert "device =" not in out and "— Adam learning rate" in out
    code, _, err = run_cli(["methods", "nope"], capsys)
    assert code == 2 and "unknown method 'nope'" in err


def test_every_variant_a_parameter_names_is_one_its_detector_takes():
    """`hsad methods aed` described n_components and area by the fusion's variants,
    "paper" among them, which aed refuses; every variant named in a detector's parameter
    meanings is now one its variant (or fusion) parameter takes."""
    from hsad.detectors.param_help import describe

    named = {"multiscale", "aed", "paper"}
    wrong = []
    for name, cls in detectors.available().items():
        params = cls.param_defaults()
        key = "variant" if "variant" in params else "fusion" if "fusion" in params else None
        for p in params:
            words = set(re.findall(r"[a-z]+", describe(name, p, cls) or ""))
            for variant in sorted(named & words if key else set()):
                try:
                    detectors.get(name, **{key: variant}).check_params()
                except ParameterError:
                    wrong.append(f"{name}:{p} names {variant!r}")
    assert wrong == []


def test_every_quoted_value_of_a_parameters_meaning_is_taken():
    """`hsad methods fanogan` offered arch 'conv', which fanogan refuses ('conv1d' is its
    name): each value a text parameter's meaning quotes is one its detector takes (CAVGA
    alone refuses the common input='pixel': it needs patches, as its own error says)."""
    from hsad.detectors.param_help import describe

    refused = []
    for name, cls in detectors.available().items():
        for p, default in cls.param_defaults().items():
            if not isinstance(default, (str, type(None))):
                continue
            for value in re.findall(r"'(\w+)'", describe(name, p, cls) or ""):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        detectors.get(name, **{p: value}).check_params()
                except ParameterError:
                    refused.append(f"{name}:{p}={value}")
    assert refused == ["cavga:input=pixel"]


def test_lrx_ridge_is_described_as_lrx_solves():
    """lrx loads each ring's covariance on a floor and solves by Cholesky: its ridge is not
    the pseudo-inverse switch that rx's is."""
    from hsad.detectors.param_help import describe

    assert "pseudo-inverse only" in describe("rx", "ridge")
    lrx = describe("lrx", "ridge")
    assert "floor" in lrx and "Cholesky" in lrx and "pseudo-inverse only" not in lrx


def test_a_constant_score_map_is_named_when_written(tmp_path):
    """A map of one value ranks nothing (CAVGA's attention, zero everywhere on a small
    scene, gave 1.0 at every pixel with exit status 0 and no word): written, it is named.
    The decimated sample the style reads tells first; a map whose sample is constant but
    which is not (one odd pixel between the sampled ones) is not named."""
    import warnings

    from hsad.cube import make_cube, map_like
    from hsad.engine import write_map
    from hsad.errors import DegenerateDataWarning
    from hsad.outputs.qgis_style import sampled_values
    from hsad.pipeline import warn_constant

    cube = make_cube(np.zeros((300, 300, 2), np.float32))
    flat = map_like(cube, np.ones((300, 300), np.float32))
    flat.values[0, 0] = np.nan
    write_map(flat, tmp_path / "flat.tif", like=cube)
    with pytest.warns(DegenerateDataWarning, match="score map is 1 at every pixel with data"):
        warn_constant(tmp_path / "flat.tif", flat, "cavga", sampled_values(tmp_path / "flat.tif"))
    almost = flat.copy(data=flat.values.copy())
    almost.values[151, 151] = 2.0
    write_map(almost, tmp_path / "almost.tif", like=cube)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a sample of one value, as if the pixel fell between the sampled ones (a large
        # map is read decimated): the exact pass finds it
        warn_constant(tmp_path / "almost.tif", almost, "cavga", np.ones(100))


def test_a_model_with_a_target_size_scores_a_scene_without_a_crs_when_nothing_is_fused(
        tmp_path, capsys):
    """``target_size_m`` needs the scene's pixel size only for the fused map: D_spectral
    alone (``--fusion none``) of a MAT scene is written (the D_SS band description asked
    for the area on every export, and the map was lost after scoring)."""
    import scipy.io

    from hsad import synthetic

    scene = synthetic.make_scene(rows=24, cols=24, bands=8, seed=1)
    georeferenced = synthetic.write_scene(scene, tmp_path / "geo")
    model = tmp_path / "m.hsad"
    code, _, err = run_cli(["train", georeferenced["cube"], "-m", "aae", "-p", "epochs=1",
                            "-p", "sample_size=300", "-p", "target_size_m=90", "-o", model,
                            "--quiet"], capsys)
    assert code == 0, err
    scipy.io.savemat(tmp_path / "s.mat", {"data": np.asarray(scene.cube.values)})
    code, _, err = run_cli(["detect", tmp_path / "s.mat", "--model", model, "--fusion", "none",
                            "-o", tmp_path / "s.tif"], capsys)
    assert code == 0 and (tmp_path / "s.tif").is_file(), err


def test_a_models_score_map_is_described_as_its_output_map(scene, tmp_path, capsys):
    """HADGAN's score map is its D_SS: described with D_SS's λ, terms and 0..1 range, as
    the --save-stages d_ss map is (the description said only "anomaly score of hadgan")."""
    scores = tmp_path / "h.tif"
    code, _, err = run_cli(["detect", scene["cube"], "-m", "hadgan", "-p", "epochs=1",
                            "-p", "sample_size=512", "-o", scores, "-q"], capsys)
    assert code == 0, err
    with rasterio.open(scores) as ds:
        assert ds.descriptions[0].startswith("D_SS = 0.4*N(D_spatial) + 0.6*N(")
        assert ds.descriptions[0].endswith("(unitless, 0..1)")
