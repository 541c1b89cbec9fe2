"""Progress bars in a log and with stderr closed (hsad.progress)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hsad import synthetic


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    s = synthetic.make_scene(rows=40, cols=40, bands=12, seed=3)
    return synthetic.write_scene(s, tmp_path_factory.mktemp("scene"))


def hsad(args) -> subprocess.CompletedProcess:
    """Run hsad; stderr as written (carriage returns kept)."""
    run = subprocess.run([sys.executable, "-m", "hsad", *map(str, args)], timeout=300,
                         capture_output=True)
    run.stderr = run.stderr.decode()
    return run


def test_progress_into_a_log_keeps_each_bars_last_line(scene, tmp_path):
    """`--progress 2>log` wrote an empty log (training) or bars erased at 0 % (tiles)."""
    run = hsad(["train", scene["cube"], "-m", "ae", "-p", "epochs=3", "-p", "hidden=8",
                "-p", "sample_size=256", "-o", tmp_path / "m.hsad", "--progress"])
    assert run.returncode == 0, run.stderr
    assert "3/3" in run.stderr and "100%" in run.stderr
    run = hsad(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "rx.tif", "--chunks", "16",
                "--progress"])
    assert run.returncode == 0, run.stderr
    last = [line.rsplit("\r", 1)[-1] for line in run.stderr.split("\n") if "writing" in line]
    assert last and all("100%" in line for line in last), run.stderr
    quiet = hsad(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "rx2.tif",
                  "--chunks", "16"])
    assert quiet.returncode == 0 and "%" not in quiet.stderr  # by default: a terminal only


@pytest.mark.parametrize("command", ["detect", "convert", "train"])
def test_a_closed_stderr_is_no_failure(scene, tmp_path, command):
    """`hsad detect … 2>&-` exited 1 and wrote nothing: the tile bar asked a missing stderr
    whether it was a terminal."""
    out = tmp_path / {"detect": "rx.tif", "convert": "c.tif", "train": "m.hsad"}[command]
    args = {"detect": ["-m", "rx", "-o", out], "convert": [out],
            "train": ["-m", "ae", "-p", "epochs=1", "-p", "sample_size=256", "-o", out]}
    run = subprocess.run([sys.executable, "-m", "hsad", command, str(scene["cube"]),
                          *map(str, args[command])], stderr=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, text=True, timeout=300,
                         preexec_fn=lambda: __import__("os").close(2))
    assert run.returncode == 0 and out.exists()


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"),
                    reason="needs Linux's /dev/full")
@pytest.mark.parametrize("extra", [["--progress"], ["--polygons", "p.gpkg"]])
def test_a_full_log_on_stderr_keeps_the_finished_outputs(scene, tmp_path, extra):
    """`hsad detect … 2>/dev/full` (a log on a full disk) with a bar or a warning (polygons
    without a CRS) exited 2 and removed every output, saying nothing anywhere; a closed
    stderr (`2>&-`) already kept them."""
    import numpy as np

    from hsad.cube import make_cube
    from hsad.io.envi_writer import write_envi

    extra = [str(tmp_path / a) if a.endswith(".gpkg") else a for a in extra]
    rng = np.random.default_rng(0)  # without a CRS: polygons in pixel coordinates, a warning
    plain = write_envi(make_cube(rng.normal(size=(30, 30, 6)).astype(np.float32)),
                       tmp_path / "plain.img")
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "hsad", "detect", str(plain), "-m",
                              "rx", "-o", str(tmp_path / "rx.tif"), *extra], stderr=full,
                             stdout=subprocess.PIPE, text=True, timeout=300)
    assert run.returncode == 0 and "wrote scores" in run.stdout
    assert (tmp_path / "rx.tif").is_file()


@pytest.mark.parametrize("command", ["detect", "convert", "train"])
def test_quiet_leaves_only_warnings_and_errors(scene, tmp_path, command):
    """There was no --quiet for a cron job (train's hidden one only dropped the bars)."""
    out = tmp_path / {"detect": "rx.tif", "convert": "c.tif", "train": "m.hsad"}[command]
    args = {"detect": ["-m", "rx", "-o", out, "--far", "0.5", "--mask", tmp_path / "m.tif"],
            "convert": [out],
            "train": ["-m", "ae", "-p", "epochs=2", "-p", "sample_size=256", "-o", out]}
    loud = hsad([command, scene["cube"], *args[command], "--progress"])
    assert loud.returncode == 0 and loud.stdout.strip(), loud.stderr
    run = hsad([command, scene["cube"], *args[command], "--quiet", "--progress",
                "--overwrite"])
    assert run.returncode == 0 and out.exists()
    assert run.stdout == b"" and "%" not in run.stderr
    assert all(line.startswith("warning: ") for line in run.stderr.splitlines()), run.stderr
    bad = hsad([command, tmp_path / "missing.hdr", *args[command], "-q"])
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_quiet_keeps_the_results(scene, tmp_path):
    """-q dropped the AUC --truth is given for, and a batch's failures."""
    run = hsad(["detect", scene["cube"], "-m", "rx", "-o", tmp_path / "rx.tif", "--truth",
                scene["truth"], "-q"])
    assert run.returncode == 0  # named: under -q no "scene 2/5" line says whose it is
    assert run.stdout.decode().startswith(f"{scene['cube']}: AUC(D,F) = ")
    (tmp_path / "bad.img").write_bytes(b"")
    (tmp_path / "bad.hdr").write_text("ENVI\nsamples = 4\nlines = 4\nbands = 2\n"
                                      "data type = 4\ninterleave = bsq\n")
    run = hsad(["detect", scene["cube"], tmp_path / "bad.img", "-m", "rx", "-o",
                tmp_path / "{stem}_rx.tif", "-q"])
    assert run.returncode == 2
    assert run.stdout.decode().strip() == f"1 of 2 scenes done; failed: {tmp_path / 'bad.img'}"
