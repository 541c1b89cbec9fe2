"""The fusion default's selection rule (benchmarks/choose_fusion.py) on made-up AUCs: target
sizes are grouped exactly (flat and textured apart, 5x5 not inside 15x15), the implanted
rule takes the worst size, and leave-one-out never sees the scene it scores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import choose_fusion  # noqa: E402  (a script of the repository: it must import)


def _aucs():
    """Two real scenes and implanted files of 5x5, 15x15 and textured 15x15 targets."""
    aucs = {}
    for scene, real in (("a", 0.90), ("b", 0.80)):
        aucs[f"{scene}_real"] = {"rx": 0.7, "d_spectral": 0.8, "wide": real, "narrow": real + 0.05}
        aucs[f"{scene}_5x5"] = {"rx": 0.9, "d_spectral": 0.9, "wide": 0.95, "narrow": 0.95}
        aucs[f"{scene}_15x15"] = {"rx": 0.1, "d_spectral": 0.1, "wide": 0.1, "narrow": 0.1}
        aucs[f"{scene}_15x15t"] = {"rx": 0.7, "d_spectral": 0.8, "wide": 0.85, "narrow": 0.6}
    return aucs


def test_sizes_are_grouped_exactly_flat_before_textured():
    aucs = _aucs()
    real, implanted, sizes = choose_fusion.split(aucs)
    assert real == ["a_real", "b_real"]
    assert sizes == ["5x5", "15x15", "15x15t"]
    assert choose_fusion.size_group(implanted, "5x5") == ["a_5x5", "b_5x5"]
    assert choose_fusion.size_group(implanted, "15x15") == ["a_15x15", "b_15x15"]


def test_the_implanted_rule_is_decided_by_the_worst_size():
    aucs = _aucs()
    # "wide": its worst size is flat 15x15 (0.1 − 0.1); "narrow": textured 15x15 (0.6 − 0.8)
    assert choose_fusion.implanted_gap(aucs, "wide") == pytest.approx(0.0)
    assert choose_fusion.implanted_gap(aucs, "narrow") == pytest.approx(-0.2)


def test_leave_one_out_chooses_on_the_other_scenes_only():
    aucs = _aucs()
    aucs["a_real"]["wide"] = 0.99  # "wide" wins on a alone, "narrow" on b alone
    folds = dict(choose_fusion.leave_one_out(aucs, ["wide", "narrow"]))
    assert folds == {"a_real": "narrow", "b_real": "wide"}


def test_family_tables_group_families_exactly_and_pool_by_name():
    import fusion_rules

    aucs = _aucs()
    for files in aucs.values():  # two families whose names share a prefix, one setting each
        files["minmax | s"], files["minmax+tophat | s"] = files["wide"], files["narrow"]
    pools = {"top-hat pooled": lambda f: f.endswith("+tophat"), "all": lambda f: True}
    lines = fusion_rules.family_tables(aucs, pools)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    # "minmax" holds its own setting only, not "minmax+tophat | s" (narrow fails the rule)
    assert rows["minmax"].startswith("| minmax | 1 | 1 |")
    assert rows["minmax+tophat"].startswith("| minmax+tophat | 1 | 0 |")
    assert rows["top-hat pooled"].startswith("| top-hat pooled | 1 | 0 |")
    assert rows["all"].startswith("| all | 2 | 1 |")
    assert "- all: minmax | s" in lines
