"""Mistakes a user makes on the command line end in one line and exit status 2: option
errors click catches, hyperparameters of the wrong type, configs with unknown keys, a
model beside another method; and the mask marks pixels without data as nodata."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error, run_cli

from hsad import detectors
from hsad.config import parse_value
from hsad.cube import make_cube
from hsad.errors import ParameterError
from hsad.io.envi_writer import write_envi


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 24 × 20 × 8 float32 ENVI scene whose left four columns hold no data (-9999)."""
    rng = np.random.default_rng(3)
    values = rng.normal(100.0, 5.0, (24, 20, 8)).astype(np.float32)
    values[3, 12] += 60.0
    values[:, :4] = -9999.0
    cube = make_cube(values, transform=Affine(30, 0, 500_000, 0, -30, 4_000_000),
                     crs="EPSG:32633", nodata=-9999.0)
    return write_envi(cube, tmp_path_factory.mktemp("scene") / "scene.img")


@pytest.mark.parametrize("args, expected", [
    (["--chunks", "8"], "Invalid value for '--chunks'"),
    (["--seed", "abc"], "Invalid value for '--seed'"),
    (["--device", "tpu"], "Invalid value for '--device'"),
    (["--seed", "-1"], "-1 is not in the range 0<=x<=4294967295"),
], ids=["chunks", "seed", "device", "negative seed"])
def test_option_errors_are_one_line(scene, tmp_path, capsys, args, expected):
    line = one_error(["detect", scene, "-m", "rx", "-o", tmp_path / "s.tif", *args], capsys)
    assert expected in line and "(see 'hsad detect --help')" in line


def test_a_missing_option_and_a_mistyped_command_are_one_line(scene, capsys):
    assert "Missing option '-o'" in one_error(["detect", scene, "-m", "rx"], capsys)
    assert "Did you mean 'detect'?" in one_error(["detec", scene], capsys)


def test_an_unknown_method_suggests_the_closest(scene, tmp_path, capsys):
    line = one_error(["detect", scene, "-m", "hadgn", "-o", tmp_path / "s.tif"], capsys)
    assert "did you mean 'hadgan'?" in line


@pytest.mark.parametrize("param, expected", [
    ("hidden=abc", "hadgan: hidden must be an integer, got 'abc'"),
    ("lam=abc", "hadgan: lam must be a number or None, got 'abc'"),
    ("seed=1.5", "hadgan: seed must be an integer, got 1.5"),
    ("progress=3", "hadgan: progress must be true or false or None, got 3"),
])
def test_neural_hyperparameters_of_the_wrong_type(scene, tmp_path, capsys, param, expected):
    line = one_error(["detect", scene, "-m", "hadgan", "-p", "epochs=1", "-p", param,
                      "-o", tmp_path / "s.tif"], capsys)
    assert expected in line
    assert not (tmp_path / "s.tif").exists()


def test_none_as_methods_prints_it_is_accepted():
    assert parse_value("None") is None and parse_value("none") is None
    assert parse_value("null") is None and parse_value("3") == 3
    det = detectors.get("hadgan", lam=parse_value("None"), area=parse_value("None"))
    det._check_types()
    with pytest.raises(ParameterError, match="lrx: pca"):
        detectors.get("lrx", pca="None").fit(make_cube(np.ones((9, 9, 3), np.float32)))


def test_config_keys_are_checked_and_options_beat_its_threshold(scene, tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text("method: rx\nparms: {ridge: 1}\n")
    line = one_error(["detect", scene, "-c", typo, "-o", tmp_path / "s.tif"], capsys)
    assert "unknown key 'parms' in the config" in line
    config = tmp_path / "rx.yaml"
    config.write_text("method: rx\ncontamination: 0.01\n")
    code, _, err = run_cli(["detect", scene, "-c", config, "--far", "0.001", "-o",
                            tmp_path / "s.tif", "--mask", tmp_path / "m.tif"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "m.tif") as src:
        assert "false-alarm rate" in src.tags()["hsad_threshold_rule"]
    two = tmp_path / "two.yaml"  # the config's own threshold errors name the config
    two.write_text("method: rx\ncontamination: 0.01\nfar: 0.01\n")
    line = one_error(["detect", scene, "-c", two, "-o", tmp_path / "t.tif"], capsys)
    assert line.startswith(f"error: {two}: threshold: give exactly one of")


def test_a_config_key_given_twice_is_refused(scene, tmp_path, capsys):
    """YAML took the last of two ``method:`` lines silently (TOML refuses them)."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("method: rx\nmethod: lrx\n")
    line = one_error(["detect", scene, "-c", twice, "-o", tmp_path / "s.tif"], capsys)
    assert line == f"error: {twice}: not a valid YAML/TOML config: key 'method' given twice"
    nested = tmp_path / "nested.yaml"
    nested.write_text("method: lrx\nparams: {inner: 3, inner: 5}\n")
    assert "key 'inner' given twice" in one_error(
        ["detect", scene, "-c", nested, "-o", tmp_path / "s.tif"], capsys)
    merged = tmp_path / "merged.yaml"  # a merge key's value overridden is no duplicate
    merged.write_text("method: lrx\nparams:\n  <<: {inner: 3, outer: 9}\n  outer: 11\n")
    from hsad.config import load_config

    assert load_config(merged)["params"] == {"inner": 3, "outer": 11}


def test_a_threshold_must_be_a_finite_number(scene, tmp_path, capsys):
    line = one_error(["detect", scene, "-m", "rx", "--threshold", "nan", "-o",
                      tmp_path / "s.tif"], capsys)
    assert "threshold (--threshold) must be a finite number" in line


def test_a_model_refuses_another_method(scene, tmp_path, capsys):
    model = tmp_path / "ae.hsad"
    code, _, err = run_cli(["train", scene, "-m", "ae", "-p", "epochs=1", "-o", model], capsys)
    assert code == 0, err
    line = one_error(["detect", scene, "--model", model, "-m", "rx", "-o",
                      tmp_path / "s.tif"], capsys)
    assert "the model holds a ae detector, not rx" in line
    code, _, err = run_cli(["detect", scene, "--model", model, "-m", "ae", "-o",
                            tmp_path / "s.tif"], capsys)
    assert code == 0, err


def test_the_mask_is_nodata_where_the_scene_has_no_data(scene, tmp_path, capsys):
    code, _, err = run_cli(["detect", scene, "-m", "rx", "-o", tmp_path / "s.tif", "--mask",
                            tmp_path / "m.tif", "--contamination", "0.01"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "m.tif") as mask, rasterio.open(tmp_path / "s.tif") as scores:
        m, s = mask.read(1), scores.read(1)
    assert (m[:, :4] == 255).all() and np.isnan(s[:, :4]).all()
    assert set(np.unique(m[:, 4:])) <= {0, 1} and m[3, 12] == 1


def test_save_stages_with_a_detector_without_stages_warns(scene, tmp_path, capsys):
    code, _, err = run_cli(["detect", scene, "-m", "rx", "-o", tmp_path / "s.tif",
                            "--save-stages", tmp_path / "stages"], capsys)
    assert code == 0 and "warning: rx has no stage maps" in err
    assert not (tmp_path / "stages").exists()


@pytest.mark.parametrize("name", ["e.tif", "e.mat", "e.img"])
def test_an_empty_file_is_named_even_beside_a_header(tmp_path, capsys, name):
    (tmp_path / "e.hdr").write_text("")
    (tmp_path / name).write_bytes(b"")
    assert one_error(["info", tmp_path / name], capsys) == (
        f"error: {tmp_path / name}: empty file (0 bytes)")


def test_hsad_alone_prints_its_help(capsys):
    code, out, err = run_cli([], capsys)
    text = out + err
    assert text.startswith("Usage: hsad") and "Commands:" in text  # the help, not an error


def test_config_params_are_typed_as_param_values(tmp_path):
    from hsad.config import load_config

    config = tmp_path / "c.yaml"
    config.write_text("method: hadgan\nparams:\n  lr: 1e-4\n  latent: None\n")
    params = load_config(config)["params"]
    assert params == {"lr": 1e-4, "latent": None}
    detectors.get("hadgan", **params)._validate()


@pytest.mark.parametrize("command, args, expected", [
    ("train", ["-p", "seed=3", "--seed", "4"], "-p seed=3 and --seed 4 disagree"),
    ("train", ["-p", "epochs=3", "--epochs", "4"], "-p epochs=3 and --epochs 4 disagree"),
    ("detect", ["-p", "seed=3", "--seed", "4"], "-p seed=3 and --seed 4 disagree"),
    ("detect", ["-p", "seed=-1"], "ae: seed must lie in 0…4294967295, got -1"),
    ("detect", ["-m", "cluster-rx", "-p", "seed=-1"], "cluster-rx: seed must be an integer"),
])
def test_an_option_given_twice_or_out_of_range_is_refused(scene, tmp_path, capsys, command,
                                                          args, expected):
    """`train` let --seed win over -p seed=, `detect` the other way round: now neither."""
    out = tmp_path / ("m.hsad" if command == "train" else "s.tif")
    method = [] if "-m" in args else ["-m", "ae"]
    line = one_error([command, scene, *method, *args, "-o", out], capsys)
    assert expected in line
    assert not out.exists()


def test_torch_out_of_memory_is_one_line(scene, tmp_path, capsys, monkeypatch):
    from hsad.detectors import neural

    def fail(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 40000000000 bytes.")

    monkeypatch.setattr(neural.NeuralDetector, "fit", fail)
    line = one_error(["detect", scene, "-m", "ae", "-o", tmp_path / "s.tif"], capsys)
    assert line == (f"error: {scene}: out of memory: try a smaller --chunks or "
                    "--memory-limit, or smaller hyperparameters (hidden, batch_size, "
                    "sample_size, n_samples)")


def test_out_of_memory_names_the_input_and_only_the_commands_own_options(scene, capsys,
                                                                        monkeypatch):
    """``hsad info`` out of memory once suggested --chunks and --memory-limit, which it
    does not have, and named no file."""
    from hsad.cli import info

    def fail(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(info, "describe", fail)
    line = one_error(["info", scene], capsys)
    assert line == f"error: {scene}: out of memory: it needs more memory than this " \
                   "machine has"
    from hsad.cli.main import user_problem

    for args, named in ((["detect", "-m", "rx", "-o", "g.tif", "-c", "c.yaml", "s.img"],
                         "s.img"), (["evaluate", "--truth", "t.tif", "a.tif"], "a.tif")):
        assert user_problem(MemoryError(), args).startswith(f"{named}: out of memory")


def test_train_counts_the_epochs_of_each_training_stage():
    from types import SimpleNamespace

    from hsad.cli.train import _epochs

    assert _epochs(SimpleNamespace(epochs=30, stages={"train": [0, 30, ["loss"]]})) == \
        "30 epochs"
    two = SimpleNamespace(epochs=22, stages={"gan": [0, 2, ["loss_d"]],
                                             "encoder": [2, 20, ["loss_e"]]})
    assert _epochs(two) == "22 epochs (2 gan, 20 encoder)"


def _archives(folder):
    """An archive of each kind, as delivered scenes come (EnMAP products zipped twice)."""
    import io
    import tarfile
    import zipfile

    product = "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010111_20230119T143357Z"
    made = {}
    with zipfile.ZipFile(folder / "scene.zip", "w") as z:
        z.writestr("scene/cube.tif", b"II*\0")
    made["scene.zip"] = "a ZIP archive: unpack it first and give the cube inside"
    with zipfile.ZipFile(folder / f"{product}.ZIP", "w") as z:
        z.writestr(f"{product}/{product}-METADATA.XML", b"<level_X/>")
    made[f"{product}.ZIP"] = ("a ZIP archive holding an EnMAP product: unpack it and give "
                              "the product's folder or its METADATA.XML")
    with zipfile.ZipFile(folder / "order.zip", "w") as z:
        z.writestr(f"{product}.ZIP", b"PK\x05\x06" + bytes(18))
    made["order.zip"] = ("a ZIP archive of EnMAP product archives: unpack it, then each "
                         "product's archive, and give a product's folder or its METADATA.XML")
    for name, mode, kind in (("lines.tar", "w", "a tar archive"),
                             ("lines.tar.gz", "w:gz", "a gzip-compressed file")):
        with tarfile.open(folder / name, mode) as t:
            info = tarfile.TarInfo("cube.tif")
            info.size = 4
            t.addfile(info, io.BytesIO(b"II*\0"))
        made[name] = f"{kind}: unpack it first and give the cube inside"
    return made


def test_an_archive_is_named_and_unpacking_it_is_advised(tmp_path, capsys):
    for name, advice in _archives(tmp_path).items():
        for command in (["info", tmp_path / name],
                        ["detect", tmp_path / name, "-m", "rx", "-o", tmp_path / "s.tif"]):
            assert one_error(command, capsys) == (
                f"error: {tmp_path / name}: {advice} (hsad does not read archives)"), name
    assert not (tmp_path / "s.tif").exists()


def test_a_raster_gdal_reads_in_another_format_is_named_with_the_way_to_convert_it(
        scene, tmp_path, capsys):
    """A `gdalbuildvrt -separate` stack was "not a recognised cube", with no word of VRT or
    of what to do; a GeoTIFF named otherwise (`scene.gtif`) was not read at all."""
    import hsad

    cube = hsad.open_cube(scene)
    tif = tmp_path / "stack.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=cube.sizes["y"],
                       width=cube.sizes["x"], count=cube.sizes["band"], dtype="float32",
                       crs="EPSG:32633", transform=Affine(30, 0, 5e5, 0, -30, 4e6)) as dst:
        dst.write(np.moveaxis(cube.values.astype(np.float32), -1, 0))
    vrt = tmp_path / "stack.vrt"  # as gdalbuildvrt -separate writes one
    bands = "".join(
        f'<VRTRasterBand dataType="Float32" band="{b}"><SimpleSource><SourceFilename '
        f'relativeToVRT="1">stack.tif</SourceFilename><SourceBand>{b}</SourceBand>'
        "</SimpleSource></VRTRasterBand>" for b in range(1, cube.sizes["band"] + 1))
    vrt.write_text(f'<VRTDataset rasterXSize="{cube.sizes["x"]}" rasterYSize='
                   f'"{cube.sizes["y"]}">{bands}</VRTDataset>')
    with rasterio.open(vrt) as src:
        assert src.driver == "VRT"  # GDAL reads it
    for command in (["info", vrt], ["detect", vrt, "-m", "rx", "-o", tmp_path / "s.tif"]):
        assert one_error(command, capsys) == (
            f"error: {vrt}: a raster GDAL reads as VRT, which hsad does not read: make it a "
            "GeoTIFF first, e.g. gdal_translate stack.vrt cube.tif (a `gdalbuildvrt "
            "-separate` stack becomes one multi-band file), then give cube.tif")
    assert not (tmp_path / "s.tif").exists()
    gtif = tif.rename(tmp_path / "stack.gtif")
    np.testing.assert_array_equal(hsad.open_cube(gtif).values, cube.values.astype(np.float32))


@pytest.mark.parametrize("command, args, expected", [
    ("detect", ["--memory-limit", "inf%"], "a share of RAM lies in (0, 100] %"),
    ("detect", ["--memory-limit", "1e308GB"], "memory limit '1e308GB' is not a size"),
    ("detect", ["--memory-limit", "1e400"], "memory limit '1e400' is not a size"),
    ("detect", ["--workers", "100000"], "--workers 100000: more than 4 worker processes a core"),
    ("detect", ["-m", "lrx", "-p", "outer=99999999999999999999999"],
     "lrx: outer must be at most 2001 pixels"),
    ("detect", ["-m", "crd", "-p", "outer=3001"], "crd: outer must be at most 2001 pixels"),
    ("detect", ["-m", "rx", "-p", "ridge=1e308"], "rx: ridge must be at most 1e+06"),
    ("detect", ["-m", "lrx", "-p", "ridge=1e7"], "lrx: ridge must be at most 1e+06"),
    ("detect", ["-m", "cluster-rx", "-p", "ridge=1e7"], "cluster-rx: ridge must be at most"),
    ("train", ["--epochs", "99999999999999999999999"], "ae: epochs must be at most"),
    ("train", ["-p", "epochs=2000000"], "ae: epochs must be at most 1000000"),
    ("detect", ["-p", "hidden=99999999999999"], "ae: hidden must be at most 2147483647"),
    ("detect", ["-p", "depth=2147483647"], "ae: depth must be at most 64"),
    ("detect", ["-m", "aae", "-p", "disc_hidden=99999999999999999999999"],
     "aae: disc_hidden must be at most 2147483647"),
    ("detect", ["-m", "fanogan", "-p", "encoder_epochs=99999999999999999999999"],
     "fanogan: encoder_epochs must be at most 1000000"),
    ("detect", ["-m", "local-mean-rx", "-p", "kernel=99999999999999999999999"],
     "local-mean-rx: kernel must be an odd integer from 3 to 2001"),
])
def test_absurdly_large_values_are_one_line(scene, tmp_path, capsys, command, args, expected):
    """Values beyond any use were tracebacks (an infinite memory limit, a window or an
    epoch count beyond a C integer), or hung (100,000 worker processes on 2 cores)."""
    out = tmp_path / ("m.hsad" if command == "train" else "s.tif")
    method = [] if "-m" in args else ["-m", "ae"]
    line = one_error([command, scene, *method, *args, "-o", out], capsys)
    assert expected in line
    assert not out.exists()


def test_a_huge_crd_lambda_is_its_limit_without_numpy_warnings(scene, tmp_path, capsys):
    """λ = 1e308 overflowed λ·d² with numpy's raw warning; its limit, weights of 0, is the
    distance from the ring's fit of nothing: the pixel's own norm."""
    code, _, err = run_cli(["detect", scene, "-m", "crd", "-p", "lam=1e308", "-o",
                            tmp_path / "s.tif"], capsys)
    assert code == 0, err
    assert "overflow" not in err
    with rasterio.open(tmp_path / "s.tif") as src:
        scores = src.read(1, masked=True)
    assert np.isfinite(scores.compressed()).all() and scores.std() > 0


@pytest.mark.parametrize("command, args, option", [
    ("convert", ["OUT"], "OUT"),
    ("train", ["-m", "rx", "-o", "OUT"], "-o"),
    ("evaluate", ["--truth", "TRUTH", "--plot", "OUT"], "--plot"),
    ("evaluate", ["--truth", "TRUTH", "--plot3d", "OUT"], "--plot3d"),
    ("train", ["-m", "ae", "-p", "epochs=1", "-o", "m.hsad", "--loss-plot", "OUT"],
     "--loss-plot"),
    ("detect", ["-m", "rx", "-o", "s.tif", "--contamination", "0.01", "--spectra", "OUT"],
     "--spectra"),
])
@pytest.mark.parametrize("name", ["", " ", ".", "x.out/", "x.out/."])
def test_an_output_that_names_no_file_is_refused(scene, tmp_path, capsys, monkeypatch,
                                                 command, args, option, name):
    """`--plot ''` was dropped unsaid, `convert in .` a traceback, `-o m.hsad/` wrote the
    file `m.hsad`, and `convert in ' '` a file named by a blank."""
    monkeypatch.chdir(tmp_path)
    first = scene
    if command == "evaluate":
        first = tmp_path / "s.tif"
        truth = tmp_path / "t.tif"
        assert run_cli(["detect", scene, "-m", "rx", "-o", first], capsys)[0] == 0
        with rasterio.open(first) as src:
            profile = src.profile | {"dtype": "uint8", "nodata": None}
            mask = (src.read(1) > np.nanpercentile(src.read(1), 95)).astype(np.uint8)
        with rasterio.open(truth, "w", **profile) as dst:
            dst.write(mask, 1)
        args = [truth if a == "TRUTH" else a for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    line = one_error([command, first, *[name if a == "OUT" else a for a in args]], capsys)
    assert option in line
    if not name.strip():
        assert "is an empty path" in line
    else:  # or click's own words, where the option takes no folder
        assert "names a folder, not a file" in line or "is a directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_named_pipe_as_an_input_is_one_line(scene, tmp_path, capsys):
    """Reading a named pipe waited for a writer: `hsad detect fifo.tif`, `--model`,
    `--truth`, `--valid-mask`, `--background`, `info` and `evaluate` hung."""
    import os
    import signal

    def hung(*_):
        raise TimeoutError("hsad waited on the named pipe")

    for name in ("p.tif", "p.hsad", "p.gpkg"):
        os.mkfifo(tmp_path / name)
    pipe, model, shapes = (str(tmp_path / n) for n in ("p.tif", "p.hsad", "p.gpkg"))
    # a spectral library's data file, a Shapefile's attribute table: read beside the file
    library = tmp_path / "lib.sli"
    (tmp_path / "lib.hdr").write_text("ENVI\nsamples = 8\nlines = 2\nbands = 1\n"
                                      "header offset = 0\nfile type = ENVI Spectral Library"
                                      "\ndata type = 4\ninterleave = bsq\nbyte order = 0\n"
                                      "wavelength = {1,2,3,4,5,6,7,8}\n")
    os.mkfifo(library)
    lone = tmp_path / "lone.sli"  # no header beside it: sniffed for one, which waited
    os.mkfifo(lone)
    import pyogrio.raw
    import shapely
    from shapely.geometry import box

    shapefile = tmp_path / "b.shp"
    pyogrio.raw.write(shapefile, np.array([shapely.to_wkb(box(500000, 3999400, 500300,
                                                              3999700))], dtype=object),
                      [], [], geometry_type="Polygon", crs="EPSG:32633",
                      driver="ESRI Shapefile")
    (tmp_path / "b.dbf").unlink()
    os.mkfifo(tmp_path / "b.dbf")
    (tmp_path / "cube.hdr").write_text("ENVI\nsamples = 4\nlines = 4\nbands = 2\n"
                                       "header offset = 0\ndata type = 4\ninterleave = bsq"
                                       "\nbyte order = 0\n")  # its data file: a pipe
    os.mkfifo(tmp_path / "cube.img")
    (tmp_path / "upper.hdr").write_text((tmp_path / "cube.hdr").read_text())
    os.mkfifo(tmp_path / "upper.IMG")  # found in any letter case, as a data file is
    out = tmp_path / "o.tif"
    cases = [["detect", pipe, "-m", "rx", "-o", out],
             ["detect", scene, "--model", model, "-o", out],
             ["detect", scene, "-m", "rx", "-o", out, "--truth", pipe],
             ["detect", scene, "-m", "rx", "-o", out, "--truth", shapes],
             ["detect", scene, "-m", "rx", "-o", out, "--valid-mask", pipe],
             ["detect", scene, "-m", "rx", "-o", out, "--background", shapes],
             ["train", scene, "-m", "rx", "-o", tmp_path / "m.hsad", "--train-mask", pipe],
             ["info", pipe], ["info", model], ["convert", pipe, tmp_path / "c.tif"],
             ["evaluate", pipe, "--truth", scene],
             ["detect", scene, "-c", pipe, "-o", out],
             ["detect", scene, "-m", "rx", "-o", out, "--wavelength-file", pipe],
             ["detect", scene, "-m", "rx", "-o", out, "--contamination", "0.01",
              "--spectra", tmp_path / "s.csv", "--library", library],
             ["detect", scene, "-m", "rx", "-o", out, "--contamination", "0.01",
              "--spectra", tmp_path / "s.csv", "--library", lone],
             ["detect", scene, "-m", "rx", "-o", out, "--background", shapefile],
             ["info", tmp_path / "cube.hdr"], ["info", tmp_path / "upper.hdr"]]
    previous = signal.signal(signal.SIGALRM, hung)
    try:
        for args in cases:
            signal.alarm(60)
            line = one_error(args, capsys)
            signal.alarm(0)
            assert "not a regular file (a named pipe, device or socket)" in line, args
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not out.exists()


def test_an_os_error_without_a_reason_keeps_the_case_of_the_names_it_holds():
    """Only the system's reason is lower-cased ("No such file" → "no such file"): an
    OSError carrying its own text had the file name in it lower-cased too."""
    from hsad.cli.main import user_problem

    assert user_problem(OSError("/Data/MÜLLER/out.tif: Write failed")) == \
        "/Data/MÜLLER/out.tif: Write failed"
    assert user_problem(FileNotFoundError(2, "No such file or directory", "/Data/A.tif")) == \
        "/Data/A.tif: no such file or directory"
