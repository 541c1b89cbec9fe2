"""``hsad detect`` → ``hsad evaluate`` end to end, and the detect command's error handling."""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pytest
import rasterio
from cli_helpers import one_error
from rasterio.warp import transform_bounds

from hsad.cli.main import main


def run_cli(args, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def demo_scene(tmp_path_factory):
    from hsad import synthetic

    scene = synthetic.make_scene(rows=64, cols=64, seed=3)
    return synthetic.write_scene(scene, tmp_path_factory.mktemp("scene"))


def test_detect_then_evaluate_on_generated_scene(demo_scene, tmp_path, capsys):
    scores, mask = tmp_path / "rx.tif", tmp_path / "mask.tif"
    polys, png = tmp_path / "anomalies.gpkg", tmp_path / "quick.png"
    code, out, err = run_cli(
        ["detect", demo_scene["cube"], "-m", "rx", "-o", scores, "--mask", mask,
         "--contamination", "0.01", "--polygons", polys, "--png", png,
         "--truth", demo_scene["truth"]], capsys)
    assert code == 0, err
    assert "AUC(D,F)" in out
    for path in (scores, mask, polys, png):
        assert path.is_file() and path.stat().st_size > 0
    with rasterio.open(scores) as src, rasterio.open(demo_scene["truth"]) as gt:
        assert src.crs == gt.crs and src.transform == gt.transform
        assert src.dtypes[0] == "float32"
    with rasterio.open(mask) as src:
        flagged = int((src.read(1) == 1).sum())
    assert 0 < flagged <= int(0.011 * 64 * 64) + 1

    code, out, err = run_cli(["evaluate", scores, "--truth", demo_scene["truth"], "--json"],
                             capsys)
    assert code == 0, err
    metrics = json.loads(out)
    assert 0.8 < metrics["auc_df"] <= 1.0


def test_detect_keeps_crs_on_real_aviris_ng_scene(corpus_dir, tmp_path, capsys):
    scene = corpus_dir / "isofit" / "ang20160910t185702_2rdn_img"
    scores, polys = tmp_path / "scores.tif", tmp_path / "anomalies.geojson"
    code, _, err = run_cli(["detect", scene, "-m", "rx", "-o", scores, "--cog",
                            "--contamination", "0.02", "--polygons", polys], capsys)
    assert code == 0, err
    with rasterio.open(scene) as ref, rasterio.open(scores) as src:
        assert src.crs.to_epsg() == ref.crs.to_epsg() == 32611
        assert src.transform.almost_equals(ref.transform)
        left, bottom, right, top = ref.bounds
        valid_ref = ~(ref.read() == -9999).any(axis=0)
        np.testing.assert_array_equal(np.isfinite(src.read(1)), valid_ref)
    info = pyogrio.read_info(polys)
    assert info["features"] > 0
    assert info["crs"] == "EPSG:4326"  # RFC 7946: WGS 84 lon/lat, reprojected by GDAL
    assert '"crs"' not in polys.read_text()[:300]
    west, south, east, north = transform_bounds(ref.crs, "EPSG:4326", left, bottom, right,
                                                top)
    xmin, ymin, xmax, ymax = info["total_bounds"]
    assert west - 1e-6 <= xmin and xmax <= east + 1e-6
    assert south - 1e-6 <= ymin and ymax <= north + 1e-6


def test_detect_reads_method_and_params_from_config(demo_scene, tmp_path, capsys):
    cfg = tmp_path / "lrx.yaml"
    cfg.write_text("method: lrx\nparams: {inner: 3, outer: 7}\n")
    out_tif = tmp_path / "lrx.tif"
    code, out, err = run_cli(["detect", demo_scene["cube"], "-c", cfg, "-o", out_tif], capsys)
    assert code == 0, err
    assert out.startswith("lrx:") and out_tif.is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-m", "nosuch"], "unknown method 'nosuch'"),
        (["-m", "lrx", "-p", "inner=9", "-p", "outer=9"], "inner"),
        (["-m", "rx", "--mask", "MASK", "--contamination", "1.5"], "contamination"),
        (["-m", "rx", "-p", "bogus=1"], "unknown parameter 'bogus'"),
    ],
)
def test_bad_parameters_give_one_line_error_and_no_output(demo_scene, tmp_path, capsys,
                                                          extra, message):
    out_tif = tmp_path / "out.tif"
    extra = [str(tmp_path / "m.tif") if e == "MASK" else e for e in extra]
    code, _, err = run_cli(["detect", demo_scene["cube"], "-o", out_tif, *extra], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out_tif.exists() and not any(tmp_path.iterdir())


def test_missing_scene_is_a_clean_error(tmp_path, capsys):
    code, _, err = run_cli(["detect", tmp_path / "nope.hdr", "-m", "rx", "-o",
                            tmp_path / "o.tif"], capsys)
    assert code == 2 and err.strip() == f"error: {tmp_path / 'nope.hdr'}: no such file"


def test_a_degenerate_scene_warns_in_one_line(tmp_path, capsys):
    """Fewer pixels than bands: RX still scores, and says so in one `warning:` line."""
    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi

    rng = np.random.default_rng(0)
    scene = write_envi(make_cube(rng.normal(size=(3, 3, 12)).astype(np.float32)),
                       tmp_path / "tiny.img")
    code, out, err = run_cli(["detect", scene, "-m", "rx", "-p", "ridge=0.1",
                              "-o", tmp_path / "rx.tif"], capsys)
    assert code == 0, err
    warned = [line for line in err.splitlines() if line.strip()]
    assert len(warned) == 1 and warned[0].startswith("warning: rx: "), err
    assert "Warning" not in err and ".py:" not in err  # no category name, no source location
    # without a ridge, 9 pixels determine the 12-band covariance exactly: refused
    code, out, err = run_cli(["detect", scene, "-m", "rx", "-o", tmp_path / "rx2.tif"], capsys)
    assert code == 2 and err.count("\n") == 1 and "determine the covariance exactly" in err
    assert not (tmp_path / "rx2.tif").exists()


def test_the_command_line_replaces_a_configs_method_and_keys_one_by_one(demo_scene, tmp_path,
                                                                        capsys):
    """As the README says: `-p inner=3` replaces the config's `inner` and keeps its `outer`;
    `-m rx` replaces its method (an lrx config without params scores with rx)."""
    cfg = tmp_path / "lrx.yaml"
    cfg.write_text("method: lrx\nparams: {inner: 5, outer: 9}\nfar: 0.01\n")
    out = tmp_path / "a.tif"
    code, _, err = run_cli(["detect", demo_scene["cube"], "-c", cfg, "-p", "inner=3", "-o",
                            out, "-q"], capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        tags = src.tags()
    params = json.loads(tags["hsad_params"])
    assert tags["hsad_method"] == "lrx" and (params["inner"], params["outer"]) == (3, 9)
    bare = tmp_path / "bare.yaml"
    bare.write_text("method: lrx\n")
    code, _, err = run_cli(["detect", demo_scene["cube"], "-c", bare, "-m", "rx", "-o",
                            tmp_path / "b.tif", "-q"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "b.tif") as src:
        assert src.tags()["hsad_method"] == "rx"


def test_a_config_key_that_is_no_name_is_one_line(demo_scene, tmp_path, capsys):
    """`ridge: 0,5` in a YAML flow mapping (a decimal comma) makes a key 5: a traceback
    ("keywords must be strings"), now the config named with the key."""
    for text, key in (("{inner: 3, outer: 7, ridge: 0,5}", "5"), ("{1: 2}", "1"),
                      ("{true: 1}", "True")):
        bad = tmp_path / "comma.yaml"
        bad.write_text(f"method: lrx\nparams: {text}\n")
        line = one_error(["detect", demo_scene["cube"], "-c", bad, "-o", tmp_path / "a.tif"],
                         capsys)
        assert line == (f"error: {bad}: 'params' holds {key}, which is no hyperparameter's "
                        "name (a decimal comma? write 0.5, with a point)")


def test_a_configs_bad_parameter_names_the_config_and_its_key(demo_scene, tmp_path, capsys):
    """`params: {inner: abc}` in a config was "lrx: inner must be an integer, got 'abc'"
    alone; `-m rx` over a config of lrx gave "rx: unknown parameter 'inner'", neither naming
    the config."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: lrx\nparams: {inner: abc, outer: 7}\n")
    line = one_error(["detect", demo_scene["cube"], "-c", bad, "-o", tmp_path / "a.tif"],
                     capsys)
    assert line == (f"error: lrx: inner must be an integer, got 'abc' (`inner: abc` in the "
                    f"config {bad})")
    ok = tmp_path / "ok.yaml"
    ok.write_text("method: lrx\nparams: {inner: 3, outer: 7}\n")
    line = one_error(["detect", demo_scene["cube"], "-c", ok, "-m", "rx", "-o",
                      tmp_path / "b.tif"], capsys)
    assert line.endswith(f"(`inner: 3` in the config {ok}, with the method of -m rx, over "
                         "the config's lrx)")
    both = tmp_path / "both.yaml"  # a message about two parameters names both
    both.write_text("method: lrx\nparams: {outer: 5, inner: 9}\n")
    line = one_error(["detect", demo_scene["cube"], "-c", both, "-o", tmp_path / "d.tif"],
                     capsys)
    assert line.endswith(f"(`outer: 5` in the config {both}; `inner: 9` in the config {both})")
    line = one_error(["detect", demo_scene["cube"], "-m", "lrx", "-p", "inner=x", "-o",
                      tmp_path / "c.tif"], capsys)
    assert line.endswith("(-p inner=x)")
