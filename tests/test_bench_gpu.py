"""benchmarks/bench_gpu.py (issue #16's GPU figures) runs end to end at a tiny size: on the
CPU alone, and as a dry run of its CUDA columns on the CPU (``--device cpu``), so the
bookkeeping of the CUDA path (columns, growing steps, budget shares, JSON) is exercised
without a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bench_gpu  # noqa: E402

ROWS = ("rx fit+score", "hadgan training", "hadgan inference", "hadgan score",
        "fanogan training", "fanogan inference", "fanogan score")
TINY = ["--size", "64x64x20", "--cpu-size", "32x32", "--repeat", "1", "--epochs", "1",
        "--sample", "256", "--threads", "1", "--batch", "512", "--budget-s", "60"]


@pytest.mark.parametrize("device", ["none", "cpu"])
def test_bench_gpu_runs_and_prints_the_table(device, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert bench_gpu.main([*TINY, "--device", device, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    table = text[text.index("Mpixel/s (scene"):]
    for row in ROWS:
        assert any(line.startswith(row) for line in table.splitlines()), row
    assert "total wall time" in text
    figures = json.loads(out.read_text())
    cells = {(r["work"], r["column"]): r for r in figures["results"]}
    for row in ROWS:
        assert cells[(row, "CPU")]["mpixel_s"] > 0, row
    assert figures["cpu_crop"] == [32, 32]
    if device == "none":
        assert "CUDA absent: CPU figures only." in text
        assert figures["scene"] == [32, 32, 20]  # only the crop is made
        assert ("hadgan inference", "CUDA fp32") not in cells
    else:  # the CUDA columns, run on the CPU, measured up to the whole scene
        assert figures["scene"] == [64, 64, 20]
        for work in ROWS[1:]:
            assert cells[(work, "CPU-as-CUDA fp32")]["mpixel_s"] > 0, work
        for work in ("hadgan inference", "hadgan score", "fanogan inference", "fanogan score"):
            assert cells[(work, "CPU-as-CUDA bf16")]["mpixel_s"] > 0, work
        assert cells[("hadgan score", "CPU-as-CUDA fp32")]["size"] == "64x64"
        assert cells[("rx fit+score", "CPU-as-CUDA fp32")]["runs"] == 0  # CPU by design


def test_steps_grow_to_the_whole():
    assert bench_gpu.crop_steps(300, 100) == [(64, 64), (128, 100), (256, 100), (300, 100)]
    assert bench_gpu.pixel_steps(10_000, 512) == [1024, 4096, 10_000]
    assert bench_gpu.pixel_steps(100, 512) == [100]


def test_measure_stops_growing_at_its_share():
    calls = []

    def run(i):
        calls.append(i)

    step, seconds, runs = bench_gpu.measure([1, 4, 16], run, share=10.0, repeat=2)
    assert step == 2 and runs == 2 and calls == [0, 0, 1, 2, 2]
    calls.clear()
    step, _, runs = bench_gpu.measure([1, 4], run, share=-1.0, repeat=3)
    assert step == 0 and runs == 1 and calls == [0, 0]  # warm-up and one timed run
