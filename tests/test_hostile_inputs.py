"""Small files that declare a great deal, as a service running hsad on uploads meets them:
each is refused (or read) in one line without inflating what it declares. The memory each
takes is measured by ``tracemalloc`` (NumPy's allocations are traced)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
import rasterio
import scipy.io
from cli_helpers import one_error, run_cli

from hsad import synthetic

#: what a refusal or a header read may allocate here (the cubes declare gigabytes)
SMALL = 64 * 2**20


def _peak(work):
    tracemalloc.start()
    try:
        work()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    return synthetic.write_scene(synthetic.make_scene(rows=32, cols=32, bands=6, seed=0),
                                 folder)["cube"]


@pytest.fixture(scope="module")
def huge_mask(tmp_path_factory):
    """A 42 KB sparse GeoTIFF of 30 000 × 30 000 pixels (900 MB once read)."""
    path = tmp_path_factory.mktemp("mask") / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", height=30000, width=30000, count=1,
                       dtype="uint8", tiled=True, compress="deflate", SPARSE_OK=True,
                       BIGTIFF="YES") as dst:
        dst.write(np.ones((1, 512, 512), np.uint8), window=((0, 512), (0, 512)))
    return path


@pytest.mark.parametrize("option, words", [
    ("--truth", "ground truth is 30000x30000 but the scene is 32x32"),
    ("--valid-mask", "valid mask is 30000x30000 but the scene is 32x32"),
    ("--background", "background mask is 30000x30000 but the scene is 32x32"),
])
def test_a_mask_of_another_size_is_refused_before_it_is_read(scene, huge_mask, tmp_path,
                                                               capsys, option, words):
    """It was read whole first (8.8 GB for this one) and then refused."""
    args = ["detect", scene, "-m", "rx", option, huge_mask, "-o", tmp_path / "x.tif"]
    line = None

    def refuse():
        nonlocal line
        line = one_error(args, capsys)

    assert _peak(refuse) < SMALL
    assert words in line


def test_a_truth_of_another_size_is_refused_by_evaluate_before_it_is_read(scene, huge_mask,
                                                                          tmp_path, capsys):
    scores = tmp_path / "rx.tif"
    assert run_cli(["detect", scene, "-m", "rx", "-o", scores, "-q"], capsys)[0] == 0
    line = None

    def refuse():
        nonlocal line
        line = one_error(["evaluate", scores, "--truth", huge_mask], capsys)

    assert _peak(refuse) < SMALL
    assert "ground truth is 30000x30000 but the score map" in line


def test_info_on_a_compressed_mat_file_reads_no_pixel(tmp_path, capsys):
    """A 1 MB MAT v5 file declaring a 1000 × 1000 × 1000 cube: ``info`` held 3 GB to print
    its size (the checksum check inflated it a megabyte of input at a time, 1000-fold, and
    the cube was read); opening reads none of it now, scoring reads it then. SciPy's
    listing of the variables (``whosmat``) still holds about a quarter of it for a moment
    (docs/reliability.md)."""
    path = tmp_path / "z.mat"
    scipy.io.savemat(path, {"cube": np.zeros((1000, 1000, 1000), np.uint8)},
                     do_compression=True)
    assert path.stat().st_size < 2 * 2**20
    out = {}

    def info():
        out["run"] = run_cli(["info", path, "--json"], capsys)

    assert _peak(info) < 0.35e9
    code, text, err = out["run"]
    assert code == 0, err
    assert (json.loads(text)["rows"], json.loads(text)["bands"]) == (1000, 1000)


def test_a_mat_cube_read_on_first_use_is_checked_then(tmp_path):
    """Read lazily, a v5 cube is still checked against its header when it is read."""
    import hsad
    from hsad.errors import FileFormatError

    path = tmp_path / "c.mat"
    values = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    scipy.io.savemat(path, {"cube": values})
    cube = hsad.open_cube(path)
    np.testing.assert_array_equal(cube.values, values)
    assert cube[1:3, 2:4].values.tolist() == values[1:3, 2:4].tolist()
    cube = hsad.open_cube(path)
    scipy.io.savemat(path, {"cube": values[:, :, :5]})  # the file replaced after it opened
    with pytest.raises(FileFormatError, match="reads as 4x5x5 int16 but its header says "
                                              "4x5x6 int16"):
        cube.values  # noqa: B018


@pytest.mark.parametrize("name, text, words", [
    ("laughs.yaml", "method: rx\nparams:\n  ridge: &a0 [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"  x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)),
     "holds more than 10000 values (expanded YAML aliases?)"),
    ("deep.yaml", "method: rx\nparams: {ridge: " + "[" * 500 + "]" * 500 + "}\n",
     "nests too deeply"),
    ("deep.toml", 'method = "rx"\n[params]\nridge = ' + "[" * 500 + "]" * 500 + "\n",
     "nests too deeply"),
    ("wide.yaml", "method: rx\nparams: {ridge: [" + ",".join(["0"] * 600_000) + "]}\n",
     "a config of 1.1 MiB"),
    ("nested.yaml", "method: rx\nparams: {ridge: " + "[" * 30 + "]" * 30 + "}\n",
     "nests deeper than 20 levels"),
])
def test_a_config_that_expands_nests_or_weighs_too_much_is_refused(scene, tmp_path, capsys,
                                                                    name, text, words):
    """YAML's "billion laughs" (1 KB: 10⁹ values) took 5.8 GB and two minutes; 500
    brackets were a RecursionError traceback."""
    config = tmp_path / name
    config.write_text(text)
    line = None

    def refuse():
        nonlocal line
        line = one_error(["detect", scene, "-c", config, "-o", tmp_path / "x.tif"], capsys)

    assert _peak(refuse) < SMALL
    assert words in line


def test_a_parameter_nested_too_deeply_is_one_line(scene, tmp_path, capsys):
    line = one_error(["detect", scene, "-m", "rx", "-p", "ridge=" + "[" * 600 + "]" * 600,
                      "-o", tmp_path / "x.tif"], capsys)
    assert "a value nested too deeply" in line


def test_a_model_files_weights_are_not_inflated_before_its_config_is_checked(tmp_path,
                                                                           capsys):
    """1.9 MB: an empty config and 2 GB of zeros as weights, inflated (4 GB) before the
    config was refused."""
    path = tmp_path / "m.hsad"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        with zf.open("model.safetensors", "w", force_zip64=True) as member:
            block = bytes(2**24)
            for _ in range(16):  # 256 MiB of zeros, streamed in
                member.write(block)
    assert path.stat().st_size < 2 * 2**20
    line = None

    def refuse():
        nonlocal line
        line = one_error(["info", path], capsys)

    assert _peak(refuse) < SMALL
    assert "config.json is not an hsad model description" in line


def test_reading_a_member_reads_only_that_member(tmp_path):
    from hsad.io.model_archive import CONFIG, _read_member

    path = tmp_path / "m.hsad"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(CONFIG, b'{"a": 1}')
        zf.writestr("model.safetensors", b"x" * 100)
    path.write_bytes(buffer.getvalue())
    assert _read_member(path, CONFIG) == b'{"a": 1}'


def test_a_mask_of_too_many_regions_is_refused_before_polygons_or_spectra(tmp_path, capsys):
    """A dotted scene thresholded low: 1 M regions gave a 400 MB GeoJSON and 1.8 GB of
    memory under --memory-limit 256MB. Past --max-regions (100 000 by default) the
    command is refused before any output is written."""
    dots = np.zeros((200, 200), np.uint8)
    dots[::2, ::2] = 1  # 10 000 one-pixel regions
    scene = tmp_path / "dots.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=200, width=200, count=1,
                       dtype="uint8", crs="EPSG:32633",
                       transform=rasterio.transform.from_origin(5e5, 4e6, 30, 30)) as dst:
        dst.write(dots, 1)
    out = tmp_path / "out"
    for option, target in (("--polygons", "p.gpkg"), ("--spectra", "s.csv")):
        line = one_error(["detect", scene, "-m", "rx", "--threshold", "1", option,
                          out / target, "--mask", out / "m.tif", "-o", out / "rx.tif",
                          "--max-regions", "5000"], capsys)
        assert "the mask holds 10000 regions, more than --max-regions 5000" in line
        assert not out.exists() or list(out.iterdir()) == []
    code, _, err = run_cli(["detect", scene, "-m", "rx", "--threshold", "1", "--polygons",
                            out / "p.gpkg", "-o", out / "rx.tif", "-q"], capsys)
    assert code == 0, err  # within the default
    import pyogrio

    assert pyogrio.read_info(out / "p.gpkg")["features"] == 10000


def test_an_integer_of_thousands_of_digits_is_one_line(scene, tmp_path, capsys):
    """Python refuses to read integers of more than 4300 digits: a traceback, from a config
    (YAML or TOML) or a -p value."""
    digits = "9" * 5000
    for name, text in (("big.yaml", f"method: rx\nthreshold: {digits}\n"),
                       ("big.toml", f'method = "rx"\nthreshold = {digits}\n')):
        (tmp_path / name).write_text(text)
        line = one_error(["detect", scene, "-c", tmp_path / name, "-o", tmp_path / "x.tif"],
                         capsys)
        assert "a value that cannot be read" in line
    line = one_error(["detect", scene, "-m", "rx", "-p", f"ridge={digits}", "-o",
                      tmp_path / "x.tif"], capsys)
    assert "a value that cannot be read" in line


def test_several_maps_and_a_quality_layers_name_do_not_read_a_huge_raster_whole(
        scene, huge_mask, tmp_path, capsys):
    """Reviews of the fixes: ``evaluate`` with two maps read the truth whole once (4.1 GB),
    and a mask named like an EnMAP quality layer skipped the size check (4.1 GB)."""
    import shutil

    maps = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for out in maps:
        assert run_cli(["detect", scene, "-m", "rx", "-o", out, "-q"], capsys)[0] == 0
    lines = []

    def refuse():
        lines.append(one_error(["evaluate", *maps, "--truth", huge_mask], capsys))
        layer = tmp_path / "x-QL_QUALITY_CLOUD.TIF"
        shutil.copy(huge_mask, layer)
        lines.append(one_error(["detect", scene, "-m", "rx", "--valid-mask", layer, "-o",
                                tmp_path / "y.tif"], capsys))

    assert _peak(refuse) < SMALL
    assert "ground truth is 30000x30000 but the score map" in lines[0]
    assert "layer is 30000x30000 but the scene is 32x32" in lines[1]


def test_the_default_region_limit_is_one_number():
    import inspect

    from hsad import pipeline
    from hsad.outputs.polygons import MAX_REGIONS

    assert inspect.signature(pipeline.export).parameters["max_regions"].default == MAX_REGIONS
