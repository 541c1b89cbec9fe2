"""Outputs of the CLI: checked before any work, never silently replaced, never an input,
whole or absent (hsad.cli.outputs, hsad.io.atomic)."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
import rasterio

import hsad
from hsad import datasets, engine, synthetic
from hsad.cli.main import main
from hsad.cli.outputs import plan_outputs
from hsad.errors import OutputError
from hsad.io import atomic


def run_cli(args, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def one_error_line(err: str, path=None) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: " if path is None else f"error: {path}: "), err
    return lines[0]


def leftovers(folder) -> list[str]:
    """Temporary files anywhere under ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".part", ".aux.xml")))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    s = synthetic.make_scene(rows=48, cols=48, bands=20, seed=2)
    return synthetic.write_scene(s, tmp_path_factory.mktemp("scene"))


@pytest.fixture(scope="module")
def scores(scene, tmp_path_factory):
    """A score map and the scene as a GeoTIFF, written once."""
    folder = tmp_path_factory.mktemp("maps")
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(scene["cube"]), "-m", "rx", "-o", str(folder / "rx.tif"),
              "--no-progress"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(scene["cube"]), str(folder / "scene.tif")])
    assert exc.value.code == 0
    return folder


# ---------------------------------------------------------------- existing outputs


def _existing(tmp_path, name: str, content: bytes = b"keep me"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("command, target", [
    (["detect", "SCENE", "-m", "rx", "-o", "OUT"], "o.tif"),
    (["detect", "SCENE", "-m", "rx", "-o", "x.tif", "--contamination", "0.01", "--mask", "OUT"],
     "mask.tif"),
    (["detect", "SCENE", "-m", "rx", "-o", "x.tif", "--contamination", "0.01",
      "--polygons", "OUT"], "p.gpkg"),
    (["detect", "SCENE", "-m", "rx", "-o", "x.tif", "--png", "OUT"], "q.png"),
    (["detect", "SCENE", "-m", "hadgan", "-o", "x.tif", "--save-stages", "DIR"],
     "stages/d_ss.tif"),
    (["convert", "SCENE", "OUT"], "c.tif"),
    (["convert", "SCENE", "OUT"], "c.mat"),
    (["convert", "SCENE", "OUT"], "c.bil"),
    (["convert", "SCENE", "NEWDATA"], "c2.hdr"),  # the ENVI header of OUT exists
    (["evaluate", "SCORES", "--truth", "TRUTH", "--plot", "OUT"], "roc.png"),
    (["evaluate", "SCORES", "--truth", "TRUTH", "--plot3d", "OUT"], "roc3d.png"),
    (["train", "SCENE", "-m", "hadgan", "-o", "OUT"], "m.hsad"),
    (["train", "SCENE", "-m", "hadgan", "-o", "m2.hsad", "--loss-plot", "OUT"], "loss.png"),
    (["benchmark", "-m", "rx", "--datasets", "abu-beach-2", "-o", "OUT"], "r.md"),
    (["benchmark", "-m", "rx", "--datasets", "abu-beach-2", "--csv", "OUT"], "r.csv"),
])
def test_an_existing_output_is_refused_before_any_work(scene, scores, tmp_path, capsys,
                                                       command, target):
    existing = _existing(tmp_path, target)
    swap = {"SCENE": scene["cube"], "SCORES": scores / "rx.tif", "TRUTH": scene["truth"],
            "OUT": existing, "DIR": existing.parent, "NEWDATA": tmp_path / "c2.img"}
    args = [swap.get(a, tmp_path / a if a.endswith((".tif", ".hsad")) else a) for a in command]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run_cli(args, capsys)
    assert code == 2, err
    line = one_error_line(err, existing)
    assert "exists" in line and "--overwrite" in line
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing else written
    assert out == ""  # refused before the work (no "scored", no benchmark table)


def test_overwrite_replaces_existing_outputs_whole(scene, tmp_path, capsys):
    out, mask = _existing(tmp_path, "rx.tif"), _existing(tmp_path, "mask.tif")
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", out, "--mask", mask,
                            "--contamination", "0.02", "--overwrite", "--no-progress"], capsys)
    assert code == 0, err
    with rasterio.open(out) as src, rasterio.open(mask) as m:
        assert src.read(1).shape == (48, 48) and m.read(1).sum() > 0
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- inputs are never outputs


def test_an_input_is_never_a_valid_output_even_with_overwrite(scene, scores, tmp_path, capsys):
    tif = tmp_path / "scene.tif"
    tif.write_bytes((scores / "scene.tif").read_bytes())
    original = tif.read_bytes()
    link = tmp_path / "link.tif"
    link.symlink_to(tif)
    cases = [
        ["detect", tif, "-m", "rx", "-o", tif, "--overwrite"],
        ["detect", tif, "-m", "rx", "-o", f"{tmp_path}/../{tmp_path.name}/scene.tif",
         "--overwrite"],
        ["detect", tif, "-m", "rx", "-o", link, "--overwrite"],  # a symlink to the input
        ["detect", scene["cube"], "-m", "rx", "-o", tif, "--truth", tif, "--overwrite"],
        ["convert", tif, tif, "--overwrite"],
        ["evaluate", scores / "rx.tif", "--truth", scene["truth"], "--plot", scene["truth"],
         "--overwrite"],
    ]
    for args in cases:
        code, _, err = run_cli(args, capsys)
        assert code == 2, (args, err)
        line = one_error_line(err)
        assert ("would overwrite the input" in line or "not '.tif'" in line), line
        assert tif.read_bytes() == original
    # an ENVI output whose header would be the input's header
    hdr = scene["cube"].with_suffix(".hdr")
    header = hdr.read_bytes()
    code, _, err = run_cli(["convert", scene["cube"], scene["cube"].with_suffix(".bil"),
                            "--overwrite"], capsys)
    assert code == 2
    assert "would overwrite the input" in one_error_line(err, hdr)
    assert hdr.read_bytes() == header and not scene["cube"].with_suffix(".bil").exists()


def test_an_input_named_as_an_outputs_sidecar_is_never_removed(scene, tmp_path, capsys):
    """`detect -o m.tif --truth m.tif.msk` deleted the truth (the sidecars of a file
    replaced go with it), and `convert … c.tif --wavelength-file c.tif.aux.xml` the
    wavelength file, both with exit 0."""
    truth = tmp_path / "m.tif.MSK"
    truth.write_bytes(scene["truth"].read_bytes())
    waves = tmp_path / "c.tif.aux.xml"
    waves.write_text("\n".join(str(400 + 10 * b) for b in range(20)))
    for args, kept in [(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "m.tif",
                         "--truth", truth], truth),
                       (["convert", scene["cube"], tmp_path / "c.tif", "--wavelength-file",
                         waves], waves),
                       (["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "w.tif",
                         "--mask", tmp_path / "c.tif", "--wavelength-file", waves], waves)]:
        line = one_error_line(run_cli(args, capsys)[2])
        assert f"removes {kept.name} beside it (a sidecar of the file it replaces), which is " \
            "an input; give another name" in line, line
        assert kept.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif.aux.xml", "m.tif.MSK"]


def test_a_sidecar_is_matched_in_any_case_of_its_name_not_of_its_folder(tmp_path):
    from hsad.cli.outputs import KnownInputs

    for folder in ("A", "a"):
        (tmp_path / folder).mkdir()
    (tmp_path / "A" / "x.tif.OVR").write_bytes(b"an input")
    known = KnownInputs.of([tmp_path / "A" / "x.tif.OVR"])
    assert known.removed_with(tmp_path / "A" / "x.tif") == tmp_path / "A" / "x.tif.OVR"
    assert known.removed_with(tmp_path / "a" / "x.tif") is None  # another folder


def test_a_symbolic_link_loop_is_one_line(scene, tmp_path, capsys):
    """A looping link as the scene, the truth or the map to evaluate was a RuntimeError
    traceback (``Path.resolve``); `hsad info` called it "no such file"."""
    loop = tmp_path / "loop.tif"
    loop.symlink_to(loop)
    for args in (["detect", loop, "-m", "rx", "-o", tmp_path / "a.tif"],
                 ["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "b.tif", "--truth", loop],
                 ["convert", loop, tmp_path / "c.tif"], ["info", loop],
                 ["evaluate", loop, "--truth", scene["truth"]]):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and one_error_line(err, loop).endswith("symbolic link loop"), err
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", loop], capsys)
    assert code == 2 and "exists; give --overwrite" in one_error_line(err, loop)
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", loop, "--overwrite"],
                           capsys)
    assert code == 0 and not loop.is_symlink() and loop.is_file()  # the link replaced


def test_a_mat_inputs_namesake_header_is_no_input(tmp_path, capsys):
    """``scene.mat`` beside an unrelated ``scene.hdr``: the MAT file is read alone, so the
    header is an existing file like any other (not "the input"): refused without
    --overwrite, replaced with it."""
    import scipy.io

    mat = tmp_path / "scene.mat"
    scipy.io.savemat(mat, {"data": np.ones((6, 7, 4), np.float32)})
    stray = tmp_path / "scene.hdr"
    stray.write_text("ENVI\nsamples = 3\nlines = 3\nbands = 1\ndata type = 4\n")
    code, _, err = run_cli(["convert", mat, tmp_path / "scene.bil"], capsys)
    assert code == 2 and "exists; give --overwrite" in one_error_line(err, stray)
    code, _, err = run_cli(["convert", mat, tmp_path / "scene.bil", "--overwrite"], capsys)
    assert code == 0, err
    assert "samples = 7" in stray.read_text()
    tif = tmp_path / "scene.tif"  # nor is a GeoTIFF's
    assert run_cli(["convert", mat, tif], capsys)[0] == 0
    stray.write_text("ENVI\nsamples = 3\nlines = 3\nbands = 1\ndata type = 4\n")
    code, _, err = run_cli(["convert", tif, tmp_path / "scene.bil", "--overwrite"], capsys)
    assert code == 0, err
    assert "samples = 7" in stray.read_text()


# ---------------------------------------------------------------- formats, folders, duplicates


@pytest.mark.parametrize("command, bad, message", [
    (["detect", "SCENE", "-m", "rx", "-o", "BAD"], "scores.png", "GeoTIFF (.tif or .tiff)"),
    (["detect", "SCENE", "-m", "rx", "-o", "ok.tif", "--contamination", "0.01", "--mask", "BAD"],
     "mask.png", "GeoTIFF"),
    (["detect", "SCENE", "-m", "rx", "-o", "p_scores.tif", "--contamination", "0.01",
      "--polygons", "BAD"], "out/p.txt", "polygons (.geojson, .json or .gpkg)"),
    (["detect", "SCENE", "-m", "rx", "-o", "ok.tif", "--png", "BAD"], "q.jpg", "PNG"),
    (["detect", "SCENE", "-m", "rx", "-o", "BAD"], "noext",
     "give a file name with its extension"),
    (["convert", "SCENE", "BAD"], "cube.png", "not '.png'"),
    (["convert", "SCENE", "BAD"], "cube.hdr", "not the header"),
    (["train", "SCENE", "-o", "BAD"], "model.pt", "model file (.hsad"),
    (["evaluate", "SCORES", "--truth", "TRUTH", "--plot", "BAD"], "roc.svg", "PNG"),
    (["benchmark", "-m", "rx", "--datasets", "abu-beach-2", "-o", "BAD"], "r.html", "Markdown"),
])
def test_unknown_output_formats_are_refused_before_any_work(scene, scores, tmp_path, capsys,
                                                            command, bad, message):
    swap = {"SCENE": scene["cube"], "SCORES": scores / "rx.tif", "TRUTH": scene["truth"],
            "BAD": tmp_path / bad}
    args = [swap.get(a, tmp_path / a if a.endswith(".tif") else a) for a in command]
    code, out, err = run_cli(args, capsys)
    assert code == 2, err
    assert message in one_error_line(err, tmp_path / bad)
    assert list(tmp_path.iterdir()) == [] and out == ""


def test_missing_folders_are_created_and_bad_folders_refused(scene, tmp_path, capsys):
    deep = tmp_path / "a" / "b" / "rx.tif"
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", deep, "--no-progress"],
                           capsys)
    assert code == 0, err
    assert deep.is_file()
    blocker = _existing(tmp_path, "file.txt")
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", blocker / "x" / "rx.tif"],
                           capsys)
    assert code == 2 and "is not a folder" in one_error_line(err, blocker)
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", folder, "--overwrite"],
                           capsys)
    assert code == 2 and "is a folder" in one_error_line(err, folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_a_read_only_folder_is_refused(scene, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", ro / "sub" / "x.tif"],
                               capsys)
    finally:
        ro.chmod(0o700)
    assert code == 2 and "not writable" in one_error_line(err, ro)


def test_two_options_naming_one_file_are_refused(scene, tmp_path, capsys):
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "a.tif",
                            "--contamination", "0.01", "--mask",
                            f"{tmp_path}/../{tmp_path.name}/a.tif"],
                           capsys)
    assert code == 2 and "-o and --mask name the same file" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_every_writing_command_says_so_in_its_help(capsys):
    for command in ("detect", "convert", "evaluate", "train", "benchmark", "demo"):
        code, out, _ = run_cli([command, "--help"], capsys)
        text = " ".join(out.split())
        assert code == 0 and "--overwrite" in text, command
        assert "created" in text, command  # missing folders are created
    code, out, _ = run_cli(["--help"], capsys)
    assert "130" in out and "2 a user error" in " ".join(out.split())


# ---------------------------------------------------------------- failures leave nothing


def test_a_late_failure_removes_the_outputs_it_created(scene, tmp_path, capsys, monkeypatch):
    import hsad.outputs.polygons

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", "simulated")

    monkeypatch.setattr(hsad.outputs.polygons, "write_regions", broken)
    out = tmp_path / "new" / "rx.tif"
    kept = _existing(tmp_path, "mask.tif")
    code, _, err = run_cli(["detect", scene["cube"], "-m", "rx", "-o", out, "--mask", kept,
                            "--contamination", "0.01", "--polygons", tmp_path / "p.gpkg",
                            "--overwrite", "--no-progress"], capsys)
    assert code == 2 and "input/output error" in one_error_line(err, "simulated")
    assert not (tmp_path / "new").exists()  # the new score map and its new folder are gone
    with rasterio.open(kept) as src:  # replaced under --overwrite: a whole new mask stays
        assert src.read(1).shape == (48, 48)
    assert leftovers(tmp_path) == []


def test_disk_full_while_streaming_a_geotiff(tmp_path_factory, tmp_path, capsys,
                                            monkeypatch):
    from hsad.io import geotiff_writer

    # 1100 rows: five 256-row GeoTIFF blocks, the fourth write fails
    tall = synthetic.write_scene(synthetic.make_scene(rows=1100, cols=24, bands=8, seed=4),
                                 tmp_path_factory.mktemp("tall"))

    written = []
    real = geotiff_writer._WindowWriter.__setitem__

    def filling(self, key, block):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(key)
        real(self, key, block)

    monkeypatch.setattr(geotiff_writer._WindowWriter, "__setitem__", filling)
    for extra in ([], ["--cog"]):
        written.clear()
        out = tmp_path / "rx.tif"
        code, _, err = run_cli(["detect", tall["cube"], "-m", "rx", "-o", out, "--chunks", "64",
                                "--no-progress", *extra], capsys)
        assert code == 2 and len(written) == 3
        line = one_error_line(err, out)
        assert "no space left on device" in line and "nothing was written" in line
        assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_envi_is_an_error_not_a_crash(scene, tmp_path, capsys,
                                                             monkeypatch):
    """The ENVI writer reserves its blocks first: a full disk is ENOSPC there, not a SIGBUS
    from the memory map (which killed `hsad convert` on a full tmpfs before)."""
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "copy.img"
    code, _, err = run_cli(["convert", scene["cube"], out], capsys)
    assert code == 2
    assert "no space left on device" in one_error_line(err, out)
    assert list(tmp_path.iterdir()) == []


def test_a_real_write_failure_under_a_file_size_limit(scene, tmp_path):
    """GDAL's own write path failing for real (RLIMIT_FSIZE, like a full disk: GDAL reports
    both as a "Write error" without errno): one hsad line, no file, no temporary file."""
    out = tmp_path / "rx.tif"
    proc = subprocess.run(
        [sys.executable, "-m", "hsad.cli.main", "detect", str(scene["cube"]), "-m", "rx",
         "-o", str(out), "--no-progress"], capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)))
    assert proc.returncode == 2, proc.stderr
    hsad_lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    # libtiff may print its own diagnostic ("_tiffWriteProc: File too large.") before ours
    assert len(hsad_lines) == 1 and proc.stderr.strip().endswith(hsad_lines[0])
    assert hsad_lines[0].startswith(f"error: {out}: cannot write: ")
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- temporary files


def test_stale_temporaries_of_dead_runs_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "rx.tif"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".rx.tif.{atomic.HOST}-{dead}.abc123.tif.part"
    live = tmp_path / f".rx.tif.{atomic.HOST}-{os.getppid()}.def456.tif.part"
    other = tmp_path / f".other.tif.{atomic.HOST}-{dead}.abc123.tif.part"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    with atomic.atomic_path(target) as tmp:
        assert tmp.name.startswith(f".rx.tif.{atomic.HOST}-{os.getpid()}.")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not stale.exists() and live.exists() and other.exists()


def test_keep_existing_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "out.txt"
    with atomic.keep_existing() as placed:
        with pytest.raises(OutputError, match="appeared while hsad was writing"):
            with atomic.atomic_path(target) as tmp:
                tmp.write_text("ours")
                target.write_text("theirs")  # another process finished first
        assert placed == []
    assert target.read_text() == "theirs" and sorted(os.listdir(tmp_path)) == ["out.txt"]
    with atomic.keep_existing(False) as placed, atomic.atomic_path(target) as tmp:
        tmp.write_text("ours")
    assert target.read_text() == "ours" and [p for p, *_ in placed] == [target]


def test_plan_outputs_lists_envi_headers_and_refuses_duplicates(tmp_path):
    plan = plan_outputs([("OUT", tmp_path / "c.img", "cube"), ("--x", None, "raster")])
    assert plan.files == [tmp_path / "c.img", tmp_path / "c.hdr"]
    # an existing c.img.HDR too: readers take it before c.hdr, so a stale one must go (the
    # writer removes it; without --overwrite it is refused)
    (tmp_path / "c.img.HDR").write_text("ENVI\n")
    plan = plan_outputs([("OUT", tmp_path / "c.img", "cube")], overwrite=True)
    assert plan.files == [tmp_path / "c.img", tmp_path / "c.hdr", tmp_path / "c.img.HDR"]
    with pytest.raises(OutputError, match="name the same file"):
        plan_outputs([("-o", tmp_path / "c.hdr.tif", "raster"),
                      ("OUT", tmp_path / "c.hdr.tif", "cube")])


# ---------------------------------------------------------------- demo, datasets, memory


def test_demo_runs_twice_in_its_folder_and_refuses_a_foreign_one(tmp_path, capsys):
    out = tmp_path / "demo"
    for _ in range(2):
        code, stdout, err = run_cli(["demo", "--out", out, "-m", "rx", "--size", "32"], capsys)
        assert code == 0, err
        assert "AUC(D,F)" in stdout
        # as hsad detect says it (it printed "wrote style:mask:")
        assert "wrote style mask: " in stdout and "style:mask" not in stdout
    assert (out / ".hsad-demo").is_file() and (out / "rx_scores.tif").is_file()
    assert leftovers(out) == []
    foreign = tmp_path / "mine"
    keep = _existing(foreign, "notes.txt")
    code, _, err = run_cli(["demo", "--out", foreign, "-m", "rx", "--size", "32"], capsys)
    assert code == 2 and "--overwrite" in one_error_line(err, foreign)
    assert sorted(os.listdir(foreign)) == ["notes.txt"]
    code, _, err = run_cli(["demo", "--out", foreign, "-m", "rx", "--size", "32",
                            "--overwrite"], capsys)
    assert code == 0, err
    assert keep.read_bytes() == b"keep me"  # the demo writes only its own file names


def test_datasets_fetch_without_network_leaves_no_cache_folder(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    cache = tmp_path / "cache" / "hsad"
    monkeypatch.setenv(datasets.ENV_VAR, str(empty))
    monkeypatch.setattr(datasets, "cache_dir", lambda: cache)
    real = datasets.manifest

    def offline(name):  # a port where nothing listens: the connection is refused at once
        m = real(name)
        m["source"]["url"] = "http://127.0.0.1:9/" + m["file"]
        return m

    monkeypatch.setattr(datasets, "manifest", offline)
    code, out, err = run_cli(["datasets", "fetch", "abu-beach-2"], capsys)
    assert code == 2, err
    line = one_error_line(err)
    assert "abu-beach-2" in line and "no network connection" in line
    assert not (tmp_path / "cache").exists()


def test_the_filters_budget_is_checked_before_any_work_and_bounded_by_the_scene(
        tmp_path, capsys, monkeypatch):
    """The spatial filters need their 224-pixel halo: a budget too small for them was
    refused only after the statistics (and a network's training); and a scene within the
    halo was charged for a 480 x 480 tile it never makes."""
    from hsad.detectors import neural

    assert engine.min_memory((200, 200), np.uint8, 224, 77) == 200 * 200 * 77
    assert engine.min_memory((600, 600), np.uint8, 224, 77) == 480 * 480 * 77
    small = synthetic.write_scene(synthetic.make_scene(rows=200, cols=200, bands=8, seed=1),
                                  tmp_path / "small")
    code, _, err = run_cli(["detect", small["cube"], "-m", "aed", "-o", tmp_path / "a.tif",
                            "--memory-limit", "20MB"], capsys)
    assert code == 0, err
    big = synthetic.write_scene(synthetic.make_scene(rows=600, cols=600, bands=8, seed=1),
                                tmp_path / "big")

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the budget was checked")

    monkeypatch.setattr(neural, "Trainer", no_training)
    for method in ("aed", "hadgan"):
        out = tmp_path / f"{method}.tif"
        code, _, err = run_cli(["detect", big["cube"], "-m", method, "-o", out,
                                "--memory-limit", "16MB"], capsys)
        line = one_error_line(err)
        assert code == 2 and "480x480-pixel tile of the spatial filters" in line
        assert "--memory-limit 18MB or more" in line and not out.exists()


def test_a_memory_limit_below_one_tile_names_the_minimum(tmp_path, capsys):
    s = synthetic.make_scene(rows=40, cols=40, bands=400, seed=1)
    paths = synthetic.write_scene(s, tmp_path / "scene")
    need = engine.min_memory((40, 40, 400), hsad.open_cube(paths["cube"]).dtype)
    assert need > 16_000_000  # one 32x32 tile of 400 bands
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", paths["cube"], "-m", "rx", "-o", out,
                            "--memory-limit", "16MB"], capsys)
    assert code == 2
    line = one_error_line(err)
    minimum = f"{-(-need // 1_000_000)}MB"
    assert "too small for one 32x32-pixel tile of 400 bands" in line and minimum in line
    assert not out.exists()
    code, _, err = run_cli(["detect", paths["cube"], "-m", "rx", "-o", out, "--memory-limit",
                            minimum, "--no-progress"], capsys)
    assert code == 0, err
    ref = synthetic.make_scene(rows=40, cols=40, bands=400, seed=1).cube
    from hsad import detectors

    with rasterio.open(out) as src:
        np.testing.assert_allclose(src.read(1), detectors.get("rx").fit_score(ref).values,
                                   rtol=1e-4)


def test_a_replaced_output_loses_the_old_files_overviews_mask_and_journals(scene, tmp_path,
                                                                          capsys):
    """`--overwrite` left the old map's external overviews (QGIS's "Build pyramids"; GDAL
    finds `.OVR` too) drawn over the new map when zoomed out, its external mask applied to
    the new values, and a GeoPackage's SQLite journal (QGIS had the layer open, or crashed)
    applied to the new file: "database disk image is malformed", after exit status 0."""
    import shutil
    import sqlite3

    tif, gpkg = tmp_path / "s.tif", tmp_path / "p.gpkg"
    common = [scene["cube"], "-o", tif, "--polygons", gpkg, "--far", "0.01", "--no-progress"]
    assert run_cli(["detect", *common, "-m", "rx"], capsys)[0] == 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(tif, "r+") as ds:
        ds.write_mask(np.zeros((ds.height, ds.width), np.uint8))  # s.tif.msk: all masked
    with rasterio.open(tif) as ds:  # s.tif.ovr: an external overview, as gdaladdo -ro makes
        assert ds.overviews(1) == []
        half = np.full((1, ds.height // 2, ds.width // 2), 7, np.float32)
    with rasterio.open(f"{tif}.OVR", "w", driver="GTiff", width=half.shape[2],
                       height=half.shape[1], count=1, dtype="float32",
                       transform=rasterio.Affine(2, 0, 0, 0, 2, 0)) as ovr:
        ovr.write(half)
    with rasterio.open(tif) as ds:
        assert ds.overviews(1) == [2] and not ds.read_masks(1).any()
    db = sqlite3.connect(gpkg)  # a journal left beside the old GeoPackage
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE layer_styles(id INTEGER PRIMARY KEY, style TEXT)")
    db.executemany("INSERT INTO layer_styles(style) VALUES (?)", [("x" * 500,)] * 200)
    layer = db.execute("SELECT table_name FROM gpkg_contents").fetchone()[0]
    db.execute(f'DELETE FROM "{layer}"')  # the old file's pages, changed in its journal
    db.commit()
    shutil.copy(f"{gpkg}-wal", tmp_path / "kept-wal")
    db.close()
    shutil.copy(tmp_path / "kept-wal", f"{gpkg}-wal")

    assert run_cli(["detect", *common, "-m", "lrx", "--overwrite"], capsys)[0] == 0
    code, out, err = run_cli(["evaluate", tif, "--truth", gpkg], capsys)
    assert code == 0, err
    db = sqlite3.connect(gpkg)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute(f'SELECT count(*) FROM "{layer}"').fetchone()[0] > 0
    db.close()
    with rasterio.open(tif) as ds:
        assert ds.overviews(1) == [] and ds.read_masks(1).all()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("s.", "p."))) \
        == ["p.gpkg", "s.qml", "s.tif"]


def test_a_failed_download_is_one_line_on_the_terminal_too(tmp_path):
    """pooch's own "Downloading data from …" line went to the terminal before the error
    (two lines; its handler holds the stderr of its import, past pytest's capture, so the
    command runs in a process of its own here, offline: port 9 of this machine)."""
    script = (
        "from hsad import datasets\n"
        "from hsad.cli.main import main\n"
        "real = datasets.manifest\n"
        "def offline(name):\n"
        "    m = real(name)\n"
        "    m['source']['url'] = 'http://127.0.0.1:9/' + m['file']\n"
        "    return m\n"
        "datasets.manifest = offline\n"
        "main(['datasets', 'fetch', 'abu-beach-3'])\n")
    env = {**os.environ, datasets.ENV_VAR: str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr).startswith("error: download of dataset 'abu-beach-3'")
    assert not (tmp_path / "c").exists()
