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


@pytest.mark.parametrize("name", [n for n in SCRIPTS
                                  if "ArgumentParser" in (BENCHMARKS / f"{n}.py").read_text()])
def test_benchmark_script_help(monkeypatch, capsys, name):
    """`implanted_suite.py --help` was a TypeError (a bare % in a help text); three scripts'
    descriptions stopped mid-sentence (the docstring's first line, not its first paragraph)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    module = importlib.import_module(name)
    with pytest.raises(SystemExit) as exc:
        module.main()
    sys.modules.pop(name, None)
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage:"), out
    description = " ".join(out.split("\n\n")[1].split())
    assert description.endswith((".", ":", ")")), description


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


def test_the_read_benchmark_without_spy_stops_before_writing_its_scene(monkeypatch, tmp_path,
                                                                       capsys):
    """Without SPy, `bench_read.py` wrote and warmed its 1.7 GB scene, timed hsad, then
    ended in a child's CalledProcessError with the child's whole source."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setitem(sys.modules, "spectral", None)  # import spectral: ImportError
    module = importlib.import_module("bench_read")
    with pytest.raises(SystemExit) as exc:
        module.main(["--size", "8x8x3", "--chunk", "4", "--dir", str(tmp_path)])
    sys.modules.pop("bench_read", None)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "SPy (spectral) is not installed" in err[0]
    assert not list(tmp_path.iterdir())


def test_the_compressed_geotiff_benchmark_removes_its_scene(monkeypatch, tmp_path, capsys):
    """`bench_compressed_geotiff.py` left its scene (hundreds of MB at the documented sizes)
    and maps in a new temporary folder at every run."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    module = importlib.import_module("bench_compressed_geotiff")
    module.main(["--size", "64", "--bands", "4", "--tile", "32", "--repeat", "1"])
    sys.modules.pop("bench_compressed_geotiff", None)
    assert "vs SPy" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())
