"""The README's Python snippet runs as written, on the scene ``make demo`` writes."""

from __future__ import annotations

import re
from pathlib import Path

from hsad import synthetic

REPO = Path(__file__).resolve().parents[1]


def test_readme_python_snippet_runs_after_the_demo(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    # what `hsad demo` writes into demo_output/scene (cli/demo.py: the default size and seed)
    synthetic.write_scene(synthetic.make_scene(rows=128, cols=128, seed=0),
                          tmp_path / "demo_output" / "scene")
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["mask"].sum() > 0
    assert (tmp_path / "scores.tif").is_file()
