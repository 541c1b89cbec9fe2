"""Every benchmark script imports: a script that imports a helper from another (as
``collect_fusion_maps`` does from ``implanted_suite``) breaks when that helper is renamed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports(monkeypatch, name):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module(name)
    assert callable(getattr(module, "main", None)), f"{name}.py has no main()"
    sys.modules.pop(name, None)


def test_rx_benchmark_takes_turns_and_prints_each_rounds_ratio(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("bench_rx")
    calls = []
    real = bench.timed
    monkeypatch.setattr(bench, "timed", lambda fn, repeat=1: calls.append(fn) or real(fn, repeat))
    assert bench.main(["--size", "40x30x8", "--repeat", "2", "--envi"]) == 0
    out = capsys.readouterr().out
    assert out.count("per round: ") == 2 and "same top-100 pixels" in out
    # make_cube once, then SPy and hsad alternating, in memory and from the file
    order = [getattr(fn, "__code__", None) for fn in calls[1:]]
    assert len(order) == 8 and order[0::2] != order[1::2]
    assert order[0] == order[2] and order[1] == order[3]
    sys.modules.pop("bench_rx", None)
