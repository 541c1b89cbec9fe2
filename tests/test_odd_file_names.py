"""File names analysts' scenes really have: dollar signs (matplotlib's mathematics),
Chinese characters, Latin-1 bytes from an old share, a ``|``, names too long for the file
system in a folder not made yet."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
import rasterio
from cli_helpers import one_error, run_cli
from test_benchmark_runner import _labelled
from test_spectra import scene

from hsad.io.envi_writer import write_envi

LATIN1 = sys.platform.startswith("linux")  # a file system that takes any bytes in names


@pytest.fixture()
def mat_scene(tmp_path):
    return _labelled(tmp_path, "plain.mat")


def test_a_name_with_dollar_signs_is_drawn_as_written(mat_scene, tmp_path, capsys):
    odd = tmp_path / "p$_^$.mat"
    shutil.copy(mat_scene, odd)
    code, _, err = run_cli(["detect", odd, "-m", "rx", "-o", tmp_path / "s$_^$.tif", "--png",
                            tmp_path / "q.png", "--spectra-png", tmp_path / "s.png"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["evaluate", tmp_path / "s$_^$.tif", "--truth", odd, "--plot",
                            tmp_path / "roc.png", "--plot3d", tmp_path / "roc3.png"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["benchmark", "-m", "rx", "--datasets", odd, "--plot",
                              tmp_path / "b.png"], capsys)
    assert code == 0, err
    from hsad.outputs.plots import plot_roc

    truth = np.zeros((4, 4), bool)
    truth[0, 0] = True
    fig = plot_roc({"a$b$c": np.arange(16.0).reshape(4, 4)}, truth, title="p$_^$")
    assert fig.axes[0].get_title() == "p$_^$"
    texts = {t.get_text(): t for t in fig.findobj(lambda a: hasattr(a, "get_parse_math"))}
    assert not texts["p$_^$"].get_parse_math()  # drawn as written, not as a formula
    assert texts["detection probability $P_D$"].get_parse_math()  # ours: mathematics


def test_characters_missing_from_the_fonts_are_one_warning(mat_scene, tmp_path, capsys):
    odd = tmp_path / "場景.mat"
    shutil.copy(mat_scene, odd)
    code, _, err = run_cli(["detect", odd, "-m", "rx", "-o", tmp_path / "x.tif", "--png",
                            tmp_path / "x.png"], capsys)
    assert code == 0, err
    from matplotlib import font_manager

    if any("CJK" in f.name for f in font_manager.fontManager.ttflist):
        pytest.skip("a font with these characters is installed: nothing to warn of")
    assert err.count("not in the installed fonts") == 1 and "Glyph" not in err


@pytest.mark.skipif(not LATIN1, reason="needs a file system that takes any bytes in names")
def test_a_latin1_name_is_read_and_named_or_refused_in_one_line(tmp_path, capsys):
    cube, *_ = scene()
    latin = os.fsdecode(os.fsencode(str(tmp_path)) + b"/Lat\xfcn.img")
    write_envi(cube, latin)
    code, _, err = run_cli(["detect", latin, "-m", "rx", "-o", tmp_path / "plain.tif",
                            "--png", tmp_path / "q.png"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "plain.tif") as src:
        assert src.tags()["hsad_input"].endswith("Lat\\xfcn.img")
    bad_out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xfc.tif")
    line = one_error(["detect", latin, "-m", "rx", "-o", bad_out], capsys)
    assert "not valid UTF-8" in line and "GDAL cannot write" in line
    assert not os.path.lexists(bad_out)
    shutil.copy(tmp_path / "plain.tif", os.fsdecode(os.fsencode(str(tmp_path)) + b"/t\xfc.tif"))
    line = one_error(["info", os.fsdecode(os.fsencode(str(tmp_path)) + b"/t\xfc.tif")], capsys)
    assert "not valid UTF-8" in line and "GDAL cannot open" in line


def test_a_bar_in_a_scene_name_is_escaped_in_the_tables():
    from hsad.outputs.benchmark import Row, to_markdown

    text = to_markdown([Row("a|b,c", "rx", 0.9, 0.1, 0.1, 1.0, 1.0)])
    assert "| a\\|b,c | 0.9000 |" in text


def test_a_name_too_long_is_refused_by_its_own_name_before_any_work(tmp_path, capsys):
    name = "x" * 252 + ".tif"
    for folder in (tmp_path / "made", tmp_path / "not_yet"):
        folder.parent.mkdir(exist_ok=True)
        if folder.name == "made":
            folder.mkdir()
        cube, *_ = scene()
        write_envi(cube, tmp_path / "scene.img")
        line = one_error(["detect", tmp_path / "scene.img", "-m", "rx", "-o", folder / name],
                         capsys)
        assert f"{folder.name}/{name}: file name too long" in line and ".part" not in line
    assert not (tmp_path / "not_yet").exists()


def test_control_characters_in_names_are_escaped_not_printed(tmp_path, capsys):
    """`hsad detect $'no\\nerror: fake.hdr'` printed two error lines, the second forged;
    an escape sequence in a name reached the terminal, in errors and "wrote" lines."""
    line = one_error(["detect", tmp_path / "no\nerror: fake.hdr", "-m", "rx", "-o",
                      tmp_path / "o.tif"], capsys)
    assert line.endswith("no\\nerror: fake.hdr: no such file"), line
    cube, *_ = scene()
    write_envi(cube, tmp_path / "scene.img")
    odd = tmp_path / "x\x1b]0;t\x07.tif"
    code, out, err = run_cli(["detect", tmp_path / "scene.img", "-m", "rx", "-o", odd], capsys)
    assert code == 0 and odd.exists(), err
    assert "\x1b" not in out + err and "x\\x1b]0;t\\x07.tif" in out
    # in a batch too: each scene's error line, and the summary naming the failed one
    code, out, err = run_cli(["detect", tmp_path / "scene.img", tmp_path / "bad\nerror: x.img",
                              "-m", "rx", "-o", tmp_path / "{stem}_b.tif"], capsys)
    assert code == 2 and not [line for line in err.splitlines() if line.startswith("error: x")]
    assert "bad\\nerror: x.img" in out.strip().splitlines()[-1]


def test_a_long_name_that_fits_finishes_and_reruns_cleanly(tmp_path, capsys):
    """A 244-byte map name: the map was written, then `.<name>.hsad-claim` (256 bytes) was
    "file name too long", exit 2 and no AUC; `--overwrite` failed the same way on its
    `.hsad-unfinished` record, so the scene could never finish."""
    from hsad.io.geotiff_writer import write_geotiff

    cube, _, truth, _ = scene()
    write_envi(cube, tmp_path / "scene.img")
    write_geotiff(truth.astype("uint8"), tmp_path / "t.tif")
    out = tmp_path / ("e" * 240 + ".tif")
    code, out_text, err = run_cli(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out,
                                   "--truth", tmp_path / "t.tif"], capsys)
    assert code == 0 and "AUC(D,F)" in out_text + err, err
    for again in ("--overwrite", "--skip-existing"):
        code, _, err = run_cli(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out,
                                again], capsys)
        assert code == 0 and "error" not in err, err
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(not LATIN1, reason="needs a file system that takes any bytes in names")
def test_a_latin1_scene_in_a_benchmark_is_named_with_its_odd_bytes(mat_scene, tmp_path,
                                                                   capsys):
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/m\xfcnchen.mat")
    shutil.copy(mat_scene, odd)
    code, out, err = run_cli(["benchmark", "-m", "rx", "--datasets", odd, "-o",
                              tmp_path / "t.md", "--csv", tmp_path / "t.csv", "--plot",
                              tmp_path / "t.png"], capsys)
    assert code == 0, err
    assert "| m\\xfcnchen |" in (tmp_path / "t.md").read_text(encoding="utf-8")
    assert (tmp_path / "t.png").is_file()
    # two of one stem, in two folders: two rows, one named by its path
    other = os.fsdecode(os.fsencode(str(tmp_path)) + b"/b/m\xfcnchen.mat")
    os.makedirs(os.path.dirname(other))
    shutil.copy(mat_scene, other)
    code, _, err = run_cli(["benchmark", "-m", "rx", "--datasets", f"{odd},{other}", "--csv",
                            tmp_path / "two.csv"], capsys)
    assert code == 0, err
    rows = (tmp_path / "two.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert len({row.split(",")[0] for row in rows}) == 2


@pytest.mark.skipif(not LATIN1, reason="needs a file system that takes any bytes in names")
def test_a_latin1_envi_file_placed_by_rpcs_is_read_from_its_header(corpus_dir, tmp_path,
                                                                   capsys):
    """Its header's RPCs go to GDAL through a stub, as every header's do; only GCPs in
    an ``.aux.xml`` sidecar (which GDAL alone reads) make such a name refused."""
    base = os.fsencode(str(tmp_path)) + b"/m\xfcnchen-rpc"
    shutil.copy(corpus_dir / "gdal" / "envirpc.img", os.fsdecode(base + b".img"))
    shutil.copy(corpus_dir / "gdal" / "envirpc.hdr", os.fsdecode(base + b".hdr"))
    import subprocess

    # in a process of its own: it prints the name's bytes back, which pytest's capture
    # would not decode
    done = subprocess.run([sys.executable, "-m", "hsad", "info", base + b".img"],
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert b"placed by:  RPCs" in done.stdout and b"m\xfcnchen-rpc.img" in done.stdout
    sidecar = os.fsdecode(base + b".img.aux.xml")
    with open(sidecar, "w") as fh:
        fh.write('<PAMDataset><GCPList Projection="EPSG:4326"><GCP Id="1" Pixel="0.5" '
                 'Line="0.5" X="10" Y="50"/></GCPList></PAMDataset>')
    line = one_error(["info", os.fsdecode(base + b".img")], capsys)
    assert "not valid UTF-8" in line and "ground control points of its .aux.xml" in line


def test_a_print_handler_the_user_chose_is_kept(monkeypatch):
    import io

    from hsad.cli.main import _names_print

    chosen = io.TextIOWrapper(io.BytesIO(), encoding="latin-1", errors="replace")
    strict = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdout", chosen)
    monkeypatch.setattr(sys, "stderr", strict)
    _names_print()
    assert chosen.errors == "replace" and strict.errors == "backslashreplace"
    chosen.write("城 \udcfc")  # replaced, not a crash


def test_a_drawing_s_warning_is_said_once(tmp_path):
    import warnings

    from hsad.outputs.plots import new_figure, save_figure

    fig = new_figure(figsize=(0.3, 0.3))
    fig.add_subplot(111).set_title("t")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_figure(fig, tmp_path / "w.png")
    texts = [str(w.message) for w in caught]
    assert texts and len(texts) == len(set(texts))


@pytest.mark.skipif(not LATIN1, reason="needs a file system that takes any bytes in names")
def test_a_latin1_scene_s_spectral_library_names_it_with_its_odd_bytes(tmp_path, capsys):
    """``--spectra x.sli`` of a scene named in Latin-1 had raised UnicodeEncodeError after
    the detection, with the map lost: its header names the scene ``\\xfc``, as the tags do."""
    cube, *_ = scene()
    latin = os.fsdecode(os.fsencode(str(tmp_path)) + b"/M\xfcller.img")
    write_envi(cube, latin)
    code, _, err = run_cli(["detect", latin, "-m", "rx", "-o", tmp_path / "s.tif",
                            "--spectra", tmp_path / "sp.sli"], capsys)
    assert code == 0, err
    assert (tmp_path / "s.tif").is_file()
    header = (tmp_path / "sp.hdr").read_text(encoding="utf-8")
    assert "hsad detection spectra of " in header and "M\\xfcller.img}" in header
