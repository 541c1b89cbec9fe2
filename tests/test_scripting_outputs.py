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
