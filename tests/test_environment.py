"""``hsad info --environment``: the software and hardware a result was computed with, for a
methods section (the libraries, the BLAS and its kernels, torch's CPU capability, the GPU)."""

from __future__ import annotations

import json

import numpy as np
import threadpoolctl
import torch
from cli_helpers import one_error, run_cli

import hsad
from hsad.outputs.environment import PACKAGES
from hsad.outputs.provenance import code_digest


def test_the_environment_names_what_moves_the_numbers(capsys):
    code, out, err = run_cli(["info", "--environment", "--json"], capsys)
    assert code == 0 and not err
    env = json.loads(out)
    assert env["hsad"] == hsad.__version__ and env["hsad_code"] == code_digest()
    assert set(env["packages"]) == set(PACKAGES)
    assert env["packages"]["numpy"] == np.__version__
    assert env["packages"]["torch"] == torch.__version__
    assert env["torch"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch"]["cuda_available"] == torch.cuda.is_available()
    loaded = {lib["internal_api"] for lib in threadpoolctl.threadpool_info()}
    assert {lib["internal_api"] for lib in env["blas"]} <= loaded
    assert any(lib["user_api"] == "blas" for lib in env["blas"])
    assert all(isinstance(lib["num_threads"], int) for lib in env["blas"])


def test_the_environment_reads_as_lines_to_paste(capsys):
    code, out, _ = run_cli(["info", "--environment"], capsys)
    assert code == 0
    fields = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert fields["hsad"].strip().startswith(hsad.__version__)
    assert torch.backends.cpu.get_cpu_capability() in fields["torch"]
    assert fields["numpy"].strip() == np.__version__


def test_info_asks_for_a_file_or_the_environment(capsys, tmp_path):
    assert "give a FILE or --environment" in one_error(["info"], capsys)
    assert "not both" in one_error(["info", tmp_path / "x.tif", "--environment"], capsys)
