"""What a script driving hsad parses: a standard output that cannot be written is named,
CSV lines end as shell tools expect, and an option that needs another is refused alone
(docs/reliability.md, forty-third round)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from affine import Affine
from cli_helpers import one_error

from hsad.cube import make_cube
from hsad.io.envi_writer import write_envi
from hsad.outputs.benchmark import Row, to_csv


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    rng = np.random.default_rng(0)
    cube = make_cube(rng.normal(size=(24, 20, 8)).astype(np.float32), crs="EPSG:32633",
                     transform=Affine(30, 0, 500000, 0, -30, 4000000))
    return write_envi(cube, tmp_path_factory.mktemp("s") / "scene.img")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_standard_output_that_cannot_be_written_is_named(scene, tmp_path):
    """``detect … > /dev/full`` (a full disk behind a redirect) said "error: no space left
    on device", which read as the map's disk. The map, whole before its report line, stays,
    as the README says."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "hsad", "detect", str(scene), "-m", "rx",
                               "-o", str(tmp_path / "x.tif")], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: cannot write to standard output: no space left on device")
    assert (tmp_path / "x.tif").is_file()


def test_a_closed_standard_output_is_named_and_the_map_kept(scene, tmp_path):
    """``detect … --truth t >&-`` and ``evaluate … --json >&-``: click drops lines when
    standard output is closed, so the AUC and the JSON asked for were lost, with exit
    status 0 and nothing said."""
    common = {"stderr": subprocess.PIPE, "text": True, "timeout": 300,
              "preexec_fn": lambda: os.close(1)}
    done = subprocess.run([sys.executable, "-m", "hsad", "detect", str(scene), "-m", "rx",
                           "-o", str(tmp_path / "x.tif")], **common)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: cannot write to standard output: it is closed")
    assert (tmp_path / "x.tif").is_file()
    quiet = subprocess.run([sys.executable, "-m", "hsad", "detect", str(scene), "-m", "rx",
                            "-o", str(tmp_path / "y.tif"), "-q"], **common)
    assert quiet.returncode == 0 and quiet.stderr == ""  # nothing to print: no failure


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("args", [["info", "SCENE"], ["info", "SCENE", "--json"],
                                  ["methods"], ["methods", "rx"], ["datasets", "list"],
                                  ["--help"], ["detect", "--help"], ["--version"]])
def test_every_command_names_a_standard_output_it_cannot_write(scene, args):
    """`hsad info scene.hdr > log` on a full disk said "error: no space left on device",
    as `methods` and `datasets list` did: in a batch log that read as the data's disk.
    The help and the version, which click writes itself, said it too."""
    args = [str(scene) if a == "SCENE" else a for a in args]
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "hsad", *args], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: cannot write to standard output: no space left on device"]


def test_a_command_loads_its_own_module_only():
    """The subcommands' modules were all imported before hsad's signal handlers were set:
    a Ctrl-C in the first 0.2–0.4 s printed an import's traceback and exited -2. They are
    imported when the command runs (inside the handlers); the help still lists each."""
    probe = ("import sys\n"
             "from hsad.cli.main import cli\n"
             "loaded = sorted(m for m in sys.modules if m.startswith('hsad.cli.') and "
             "m.split('.')[2] in ('detect', 'convert', 'train', 'benchmark', 'evaluate'))\n"
             "print(loaded)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    shown = subprocess.run([sys.executable, "-m", "hsad", "--help"], capture_output=True,
                           text=True, timeout=300).stdout
    listed = shown.split("Commands:")[1].split()
    for name in ("benchmark", "convert", "datasets", "demo", "detect", "evaluate", "info",
                 "methods", "train"):
        assert name in listed


def test_the_benchmark_csv_ends_its_lines_as_the_spectra_csv_does():
    """``csv``'s default ``\\r\\n`` left ``0.251…\\r`` in the last column for awk."""
    row = Row(scene="s", method="rx", auc_df=0.9, auc_ft=0.01, auc_dt=0.1, snpr_db=3.0,
              seconds=0.25)
    text = to_csv([row, row])
    assert "\r" not in text and text.count("\n") == 3 and text.endswith("0.25\n")


def test_truth_key_without_truth_is_refused_not_ignored(scene, tmp_path, capsys):
    err = one_error(["detect", scene, "-m", "rx", "-o", tmp_path / "x.tif",
                     "--truth-key", "gt"], capsys)
    assert "--truth-key names a variable of the --truth file: give --truth too" in err
    assert not (tmp_path / "x.tif").exists()
