"""``hsad detect``'s checks and choices around the detection: a detector's own ``output``
kept without ``--fusion``, a bad ``--rgb`` refused before any work, ``--seed`` beside a
model's own, errors naming the config file a value came from, and the warning that the
polygons of a window cannot be given back (hsad.pipeline, hsad.cli.detect)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error, run_cli

from hsad import detectors, pipeline
from hsad.cube import make_cube
from hsad.io import open_cube
from hsad.io.envi_writer import write_envi
from hsad.io.mat_writer import write_mat

GRID = Affine(30, 0, 500_000, 0, -30, 5_100_000)
GIVE_BACK = "give the mask back"


def _values(rows, cols, bands, seed=5):
    rng = np.random.default_rng(seed)
    values = rng.normal(100.0, 5.0, (rows, cols, bands)).astype(np.float32)
    values[rows // 2, cols // 3] += 60.0
    return values


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 16 x 16 x 8 MAT scene without georeference, for short trainings."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.mat"
    write_mat(make_cube(_values(16, 16, 8), wavelength=np.linspace(450, 800, 8)), path)
    return path


#: one epoch of tiny networks, on CPU
NEURAL = {"ae": dict(hidden=8, depth=1, epochs=1, batch_size=64, sample_size=200),
          "fanogan": dict(hidden=8, depth=1, epochs=1, encoder_epochs=1, batch_size=64,
                          sample_size=200),
          "hadgan": dict(epochs=1, batch_size=64, sample_size=200)}


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize(("method", "output"), [("ae", "error"), ("fanogan", "anomaly"),
                                                ("hadgan", "d_spectral")])
def test_a_detectors_own_output_is_kept_without_fusion(tiny, tmp_path, capsys, method,
                                                       output):
    """``-p output=`` naming the plain map, without ``--fusion``: that map is written (as
    Python's ``fit_score`` of the same parameters gives it), not D_SS."""
    params = {**NEURAL[method], "output": output}
    out = tmp_path / "map.tif"
    code, _, err = run_cli(["detect", tiny, "-m", method, "--seed", 0, "--device", "cpu",
                            "--no-progress", "-o", out,
                            *(a for k, v in params.items() for a in ("-p", f"{k}={v}"))],
                           capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        written = src.read(1)

    def scored(**extra):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det = detectors.get(method, **{**params, **extra}, seed=0, device="cpu",
                                progress=False)
            return det.fit_score(open_cube(tiny)).values

    np.testing.assert_allclose(written, scored(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(written, scored(output="d_ss"), rtol=1e-3)


def test_a_bad_rgb_fails_before_any_detection(tiny, tmp_path, capsys, monkeypatch):
    """A ``--rgb`` wavelength far from every band is one line before the detector runs,
    nothing written."""
    ran = []
    real = pipeline.run_detector

    def recorded(*args, **kwargs):
        ran.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_detector", recorded)
    line = one_error(["detect", tiny, "-m", "rx", "-o", tmp_path / "a.tif", "--png",
                      tmp_path / "a.png", "--rgb", "5000,550,460", "--no-progress"], capsys)
    assert line == ("error: --rgb: no good band within 50 nm of 5000 nm (the scene covers "
                    "450-800 nm)")
    assert ran == [] and not (tmp_path / "a.tif").exists()
    code, _, err = run_cli(["detect", tiny, "-m", "rx", "-o", tmp_path / "b.tif", "--png",
                            tmp_path / "b.png", "--rgb", "650,550,450", "--no-progress"],
                           capsys)
    assert code == 0 and ran == ["rx"] and (tmp_path / "b.png").exists(), err


@pytest.fixture(scope="module")
def cluster_model(tiny, tmp_path_factory):
    """A cluster-rx model trained with seed 0."""
    from hsad.cli.main import main

    path = tmp_path_factory.mktemp("model") / "crx.hsad"
    with pytest.raises(SystemExit) as exc:  # a module's fixture has no capsys
        main([str(a) for a in ("train", tiny, "-m", "cluster-rx", "-o", path, "--seed", 0,
                               "-p", "sample_size=200", "--no-progress")])
    assert exc.value.code == 0
    return path


def test_the_seed_a_model_was_trained_with_is_no_seed_ignored(tiny, cluster_model, tmp_path,
                                                              capsys):
    code, _, err = run_cli(["detect", tiny, "--model", cluster_model, "--seed", 0, "-o",
                            tmp_path / "a.tif", "--no-progress"], capsys)
    assert code == 0 and "ignored" not in err and "--seed" not in err, err
    code, _, err = run_cli(["detect", tiny, "--model", cluster_model, "--seed", 1, "-o",
                            tmp_path / "b.tif", "--no-progress"], capsys)
    assert code == 0, err
    assert "--seed does not apply to this cluster-rx model" in err and "ignored" in err


def test_errors_about_a_configs_values_name_the_config(tiny, cluster_model, tmp_path,
                                                       capsys):
    method = tmp_path / "method.yaml"
    method.write_text("method: rx\n")
    line = one_error(["detect", tiny, "--model", cluster_model, "-c", method, "-o",
                      tmp_path / "a.tif"], capsys)
    assert f"not rx: drop `method` from the config {method} (a model carries" in line, line
    line = one_error(["detect", tiny, "--model", cluster_model, "-c", method, "-o",
                      tmp_path / "a.tif", "--save-stages", tmp_path / "stages"], capsys)
    assert f"drop `method` from the config {method}" in line, line  # made for the stages
    line = one_error(["detect", tiny, "--model", cluster_model, "-m", "rx", "-o",
                      tmp_path / "a.tif"], capsys)
    assert "not rx: drop -m (a model carries" in line, line
    params = tmp_path / "params.yaml"
    params.write_text("params:\n  ridge: 0.001\n")
    line = one_error(["detect", tiny, "--model", cluster_model, "-c", params, "-o",
                      tmp_path / "a.tif"], capsys)
    assert f"drop `params` from the config {params} (set them when training" in line, line
    line = one_error(["detect", tiny, "--model", cluster_model, "-c", params, "-p",
                      "ridge=0.1", "-o", tmp_path / "a.tif"], capsys)
    assert f"drop --param and `params` from the config {params} (set" in line, line
    assert not (tmp_path / "a.tif").exists()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """The same 48 x 40 x 6 scene on a UTM grid (ENVI) and without georeference (MAT)."""
    folder = tmp_path_factory.mktemp("frames")
    values = _values(48, 40, 6)
    georeferenced = write_envi(make_cube(values, transform=GRID, crs="EPSG:32633"),
                               folder / "geo.img", interleave="bsq")
    plain = folder / "plain.mat"
    write_mat(make_cube(values), plain)
    return georeferenced, plain


def test_polygons_of_a_georeferenced_window_need_no_warning(scenes, tmp_path, capsys):
    """A window of a georeferenced scene writes polygons on the scene's map: they are read
    back as they are, without a word."""
    code, _, err = run_cli(["detect", scenes[0], "-m", "rx", "-o", tmp_path / "a.tif",
                            "--srcwin", 10, 20, 25, 18, "--polygons", tmp_path / "a.gpkg",
                            "--no-progress"], capsys)
    assert code == 0 and (tmp_path / "a.gpkg").exists(), err
    assert GIVE_BACK not in err


def test_a_window_offset_in_rows_only_still_warns(scenes, tmp_path, capsys):
    """A window of a scene without georeference moved down only (column 0) is still in
    another frame than the whole scene's."""
    code, _, err = run_cli(["detect", scenes[1], "-m", "rx", "-o", tmp_path / "a.tif",
                            "--srcwin", 0, 20, 25, 18, "--polygons", tmp_path / "a.gpkg",
                            "--no-progress"], capsys)
    assert code == 0, err
    assert f"20 rows and 0 columns away: {GIVE_BACK} instead (--mask)" in err, err
    code, _, err = run_cli(["detect", scenes[1], "-m", "rx", "-o", tmp_path / "b.tif",
                            "--srcwin", 7, 0, 25, 18, "--polygons", tmp_path / "b.gpkg",
                            "--no-progress"], capsys)
    assert code == 0 and f"0 rows and 7 columns away: {GIVE_BACK}" in err, err
