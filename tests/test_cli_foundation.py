"""``hsad info``, ``hsad convert`` and ``hsad datasets``: output, exit codes, error lines."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio

import hsad
from hsad import datasets
from hsad.cli.main import main
from hsad.io.geotiff import open_geotiff
from hsad.io.matlab import load_mat

AVIRIS = "isofit/ang20160910t185702_2rdn_img"
ENMAP = "enmapbox/enmap_potsdam_tile_96_96.tif"


def run_cli(args, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def assert_one_error_line(err: str, path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}: "), err
    assert "Traceback" not in err


def test_info_text_on_geotiff(corpus_dir, capsys):
    code, out, err = run_cli(["info", corpus_dir / ENMAP], capsys)
    assert code == 0, err
    assert "GeoTIFF" in out
    assert "32 x 32 x 224 (rows x cols x bands)" in out
    assert "418.2-2445.5 nm" in out and "218 of 224" in out
    assert "EPSG:32633" in out and "-32768" in out


def test_info_json_on_envi_and_mat(corpus_dir, datasets_dir, capsys):
    code, out, err = run_cli(["info", "--json", corpus_dir / AVIRIS], capsys)
    assert code == 0, err
    info = json.loads(out)
    rec = next(e for e in json.loads((corpus_dir / "corpus.json").read_text())["files"]
               if e["file"] == AVIRIS)["gdal"]
    assert info["format"] == "ENVI" and info["interleave"] == "bsq"
    assert (info["rows"], info["cols"], info["bands"]) == (rec["rows"], rec["cols"], rec["bands"])
    assert info["epsg"] == rec["epsg"] and np.allclose(info["transform"], rec["transform"])
    assert info["nodata"] == rec["nodata"] and info["dtype"] == rec["dtype"]
    assert 300 < info["wavelength_min_nm"] < info["wavelength_max_nm"] < 2600
    data_size = (corpus_dir / AVIRIS).stat().st_size
    assert info["size_on_disk_bytes"] > data_size
    assert info["size_in_memory_bytes"] == rec["rows"] * rec["cols"] * rec["bands"] * 4

    code, out, err = run_cli(["info", "--json", datasets_dir / "pavia-center-100.mat"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["format"] == "MATLAB" and info["gt_key"] == "groundtruth"
    assert (info["rows"], info["cols"], info["bands"]) == (100, 100, 102)
    assert info["crs"] is None and info["wavelength_min_nm"] is None


def test_convert_mat_to_geotiff_and_back(datasets_dir, tmp_path, capsys):
    src = datasets_dir / "abu-urban-1.mat"
    tif, mat = tmp_path / "urban.tif", tmp_path / "urban.mat"
    code, out, err = run_cli(["convert", src, tif], capsys)
    assert code == 0, err
    cube, gt = load_mat(src)
    np.testing.assert_array_equal(open_geotiff(tif).values, cube.values)
    code, _, err = run_cli(["convert", tif, mat, "--dtype", "float32"], capsys)
    assert code == 0, err
    back, _ = load_mat(mat)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.values, cube.values.astype(np.float32))
    code, _, err = run_cli(["convert", src, tmp_path / "with_gt.mat"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(load_mat(tmp_path / "with_gt.mat")[1], gt)


def test_convert_envi_to_cog_keeps_georef_and_wavelengths(corpus_dir, tmp_path, capsys):
    src = hsad.open_cube(corpus_dir / AVIRIS)
    out = tmp_path / "aviris.tif"
    code, _, err = run_cli(["convert", corpus_dir / AVIRIS, out, "--cog"], capsys)
    assert code == 0, err
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    back = open_geotiff(out)
    assert back.rio.crs.to_epsg() == 32611 and back.rio.transform() == src.rio.transform()
    np.testing.assert_allclose(back["wavelength"].values, src["wavelength"].values, rtol=1e-6)
    np.testing.assert_array_equal(back["good_band"].values, src["good_band"].values)
    np.testing.assert_array_equal(back.values, src.values)
    assert back.attrs["nodata"] == src.attrs["nodata"]


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_convert_geotiff_to_envi_interleaves(corpus_dir, tmp_path, capsys, interleave):
    src = open_geotiff(corpus_dir / ENMAP)
    out = tmp_path / f"enmap.{interleave}"
    code, _, err = run_cli(["convert", corpus_dir / ENMAP, out, "--interleave", interleave,
                            "--dtype", "int16"], capsys)
    assert code == 0, err
    back = hsad.open_cube(out)
    assert back.attrs["interleave"] == interleave and back.dtype == np.int16
    np.testing.assert_array_equal(back.values, np.rint(src.values).astype(np.int16))
    np.testing.assert_allclose(back["wavelength"].values, src["wavelength"].values, rtol=1e-6)
    assert back.rio.crs.to_epsg() == 32633 and back.rio.transform() == src.rio.transform()


def test_convert_truncated_input_fails_cleanly(datasets_dir, tmp_path, capsys):
    raw = (datasets_dir / "sandiego-1.mat").read_bytes()
    bad = tmp_path / "cut.mat"
    bad.write_bytes(raw[: len(raw) // 3])
    out = tmp_path / "out.tif"
    code, _, err = run_cli(["convert", bad, out], capsys)
    assert code == 2
    assert_one_error_line(err, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mat"]


@pytest.mark.parametrize("args, problem", [
    (["--interleave", "bil"], "GeoTIFF has no bil interleave"),
    (["--cog"], None),
])
def test_convert_rejects_options_the_output_cannot_take(datasets_dir, tmp_path, capsys, args,
                                                        problem):
    out = tmp_path / ("x.tif" if problem else "x.mat")
    code, _, err = run_cli(["convert", datasets_dir / "hydice-urban.mat", out, *args], capsys)
    assert code == 2
    assert_one_error_line(err, out)
    assert (problem or "--cog needs a .tif") in err
    assert list(tmp_path.iterdir()) == []


def test_convert_refuses_to_overwrite_its_input(datasets_dir, tmp_path, capsys):
    src = tmp_path / "scene.mat"
    shutil.copyfile(datasets_dir / "hydice-urban.mat", src)
    code, _, err = run_cli(["convert", src, src], capsys)
    assert code == 2 and "overwrite the input" in err
    assert src.read_bytes() == (datasets_dir / "hydice-urban.mat").read_bytes()


def test_info_on_missing_and_garbage_files(tmp_path, capsys):
    missing = tmp_path / "nope.tif"
    code, _, err = run_cli(["info", missing], capsys)
    assert code == 2
    assert_one_error_line(err, missing)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00" + b"\x00" * 20)
    code, _, err = run_cli(["info", garbage], capsys)
    assert code == 2
    assert_one_error_line(err, garbage)


def test_datasets_list_and_verify(datasets_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(datasets.ENV_VAR, str(datasets_dir))
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "cache")
    code, out, err = run_cli(["datasets", "list", "--verify"], capsys)
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.split()[0] in datasets.names()]
    shared = json.loads((datasets_dir / "manifest.json").read_text())["scenes"]
    assert len(rows) == len(shared) == len(datasets.names())
    assert all("verified" in r for r in rows)
    assert "100 x 100 x 102" in out and "ROSIS" in out

    local = tmp_path / "local"
    local.mkdir()
    raw = bytearray((datasets_dir / "abu-beach-2.mat").read_bytes())
    raw[-100] ^= 0x01
    (local / "abu-beach-2.mat").write_bytes(bytes(raw))
    monkeypatch.setenv(datasets.ENV_VAR, str(local))
    code, out, err = run_cli(["datasets", "list"], capsys)
    assert code == 0 and out.count("missing") == len(datasets.names(None)) - 1 and "present" in out
    code, out, err = run_cli(["datasets", "list", "--verify"], capsys)
    assert code == 1
    assert "sha256 MISMATCH" in out and "1 scene file(s) fail" in err


def test_installed_command_prints_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 40)
    proc = subprocess.run([sys.executable, "-m", "hsad.cli.main", "convert", str(bad),
                           str(tmp_path / "out.img")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mat"]


def test_the_command_line_starts_without_dask_xarray_or_torch():
    """`hsad --help` and the command parsing load neither dask, xarray, GDAL nor torch: the
    public names of `hsad` are imported on first use."""
    import subprocess
    import sys

    code = ("import sys, hsad.cli.main, hsad; "
            "print(sorted(m for m in ('dask.array', 'xarray', 'rasterio', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_hsad_is_the_command(tmp_path):
    """`python -m hsad` runs the CLI (for an environment whose scripts are not on PATH):
    its version, and a bad input's one line with exit status 2."""
    run = [sys.executable, "-m", "hsad"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"hsad, version {hsad.__version__}"
    bad = subprocess.run([*run, "info", str(tmp_path / "none.hdr")], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "none.hdr" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_detectors_and_the_fusion_stage_load_without_scipy_stats():
    """scipy.stats takes 0.5–0.8 s to import and serves one χ² threshold and the rank
    normalisation: the RX and neural detection paths import it only when those are used."""
    import subprocess
    import sys

    code = ("import sys, hsad.detectors.rx, hsad.detectors.hadgan, hsad.fusion.tiled, "
            "hsad.cli.detect; print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_detect_on_the_threaded_scheduler_does_not_import_distributed(tmp_path):
    """Given by name, dask's schedulers make dask look for a dask.distributed client, which
    imports distributed (0.4 s) when it is installed; hsad gives them as functions."""
    assert importlib.util.find_spec("distributed"), "distributed is a declared [dev] dependency"
    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi

    cube = np.random.default_rng(0).normal(size=(20, 20, 6)).astype(np.float32)
    write_envi(make_cube(cube), tmp_path / "s.hdr")
    code = ("import sys; from hsad.cli.main import main\n"
            "try:\n"
            f"    main(['detect', {str(tmp_path / 's.hdr')!r}, '-m', 'rx', '-o', "
            f"{str(tmp_path / 'o.tif')!r}])\n"
            "except SystemExit as exc:\n"
            "    assert not exc.code, exc.code\n"
            "print('distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
    assert (tmp_path / "o.tif").exists()


def test_a_closed_output_pipe_ends_quietly_with_141():
    """``hsad methods | head``: the reader gone, hsad stops as a tool that SIGPIPE stops."""
    proc = subprocess.Popen([sys.executable, "-m", "hsad.cli.main", "methods"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # no reader left: the first write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_the_scene_table_has_room_for_every_sensor(capsys):
    code, out, _ = run_cli(["datasets", "list"], capsys)
    assert code == 0
    lines = out.splitlines()
    column = lines[0].index("RX AUC")
    for line in lines[1:-1]:
        assert line[column - 1] == " " and line[column:column + 6].strip().replace(".", "", 1) \
            .isdigit(), line
