"""The held-out split: scenes no default is chosen on, named, fetched and scored apart from
the development scenes (docs/datasets.md, "Held-out scenes")."""

from __future__ import annotations

import re
import warnings
from pathlib import PurePosixPath

import numpy as np
import pytest
from cli_helpers import one_error, run_cli

from hsad import datasets
from hsad.errors import DatasetError

HELD_OUT = ["abu-airport-3", "abu-airport-4", "abu-beach-3", "abu-urban-3", "abu-urban-4",
            "abu-urban-5", "hydice-2"]
#: the held-out files whose source name is not the cached one
SOURCE_NAMES = {"hydice-2": "HYDICE-II.mat"}
NOT_FETCHED = ("held-out scene files are not on the search path (they are not in "
               "../shared): `hsad datasets fetch held-out` downloads them into the user cache")


def test_the_held_out_scenes_are_a_split_of_their_own():
    assert datasets.names("held-out") == HELD_OUT
    assert not set(HELD_OUT) & set(datasets.names())  # 'all' is the development scenes
    assert datasets.names(None) == sorted(datasets.names() + HELD_OUT)
    assert {datasets.split_of(n) for n in datasets.names()} == {"development"}
    assert {datasets.split_of(n) for n in HELD_OUT} == {"held-out"}
    with pytest.raises(DatasetError, match="unknown split 'test'; known: development, held-out"):
        datasets.names("test")
    for name in HELD_OUT:  # provenance pinned to a commit, a checksum to check the download
        m = datasets.manifest(name)
        src = m["source"]
        owner_repo = src["repo"].removeprefix("https://github.com/")
        assert src["url"] == (f"https://raw.githubusercontent.com/{owner_repo}/"
                              f"{src['commit']}/{src['path']}")
        assert re.fullmatch(r"[0-9a-f]{40}", src["commit"])
        # fetch names the cached copy m["file"]; the source's own name, where it differs
        assert PurePosixPath(src["path"]).name == SOURCE_NAMES.get(name, m["file"])
        assert re.fullmatch(r"[0-9a-f]{64}", m["sha256"]) and m["size_bytes"] > 0


def test_split_names_stand_for_their_scenes_wherever_scenes_are_named(tmp_path):
    assert datasets.expand("held-out") == HELD_OUT
    assert datasets.expand("all") == datasets.names()
    assert datasets.expand("abu-beach-3") == ["abu-beach-3"]
    assert datasets.expand("mine.mat") == ["mine.mat"]
    (tmp_path / "b.mat").write_bytes(b"")
    (tmp_path / "a.mat").write_bytes(b"")
    assert datasets.scene_files(["sandiego-1", "held-out", str(tmp_path)]) == [
        "sandiego-1", *HELD_OUT, str(tmp_path / "a.mat"), str(tmp_path / "b.mat")]


def test_a_held_out_scene_not_fetched_says_how_to_fetch_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "cache")
    line = one_error(["benchmark", "-m", "rx", "--datasets", "held-out"], capsys)
    assert "abu-airport-3.mat not found" in line and "hsad datasets fetch abu-airport-3" in line


def test_fetch_takes_split_names(monkeypatch, capsys, tmp_path):
    fetched = []
    monkeypatch.setattr(datasets, "fetch", lambda name: fetched.append(name) or tmp_path / name)
    code, out, _ = run_cli(["datasets", "fetch", "held-out", "abu-urban-3"], capsys)
    assert code == 0 and fetched == HELD_OUT  # abu-urban-3 once
    fetched.clear()
    code, out, _ = run_cli(["datasets", "fetch"], capsys)
    assert code == 0 and fetched == datasets.names()  # no name: the development scenes
    fetched.clear()
    line = one_error(["datasets", "fetch", "held-out", "bogus"], capsys)
    assert "unknown dataset 'bogus'" in line and "(groups: all, held-out)" in line
    assert fetched == []  # nothing downloaded before the unknown name was found


@pytest.fixture(scope="module")
def held_out_files():
    try:
        return {name: datasets.path(name) for name in HELD_OUT}
    except DatasetError:
        pytest.skip(NOT_FETCHED)


def test_the_fetched_held_out_scenes_are_what_their_manifests_say(held_out_files):
    from hsad import detectors
    from hsad.outputs.metrics import auc_df

    for name in HELD_OUT:
        m = datasets.manifest(name)
        cube, gt = datasets.load(name)  # checks the sha256
        assert cube.shape == (m["rows"], m["cols"], m["bands"]) and str(cube.dtype) == m["dtype"]
        assert int(gt.sum()) == m["anomaly_pixels"]
        assert [float(cube.min()), float(cube.max())] == m["value_range"]
        scores = detectors.get("rx").fit_score(cube)
        assert auc_df(np.asarray(scores), gt.values) == pytest.approx(m["rx_global_auc"], abs=1e-4)


def test_the_held_out_scenes_share_pixels_with_development_scenes_only_where_recorded(
        held_out_files, datasets_dir):
    """No held-out scene shares a spectrum with a development scene of the same bands but
    where its manifest records an overlap: abu-urban-5's last 20 columns are
    abu-airport-2's first 20 (one flight line), and its other pixels that match are
    repeats of spectra in that strip."""

    def cube(name):
        return np.asarray(datasets.load(name)[0], dtype=np.float64)

    def spectra(values):
        return {row.tobytes() for row in values.reshape(-1, values.shape[2])}

    development = {name: cube(name) for name in datasets.names()}
    for name in HELD_OUT:
        own = cube(name)
        recorded = datasets.manifest(name).get("overlaps", {})
        for other, theirs in development.items():
            if theirs.shape[2] != own.shape[2]:
                continue
            if other not in recorded:
                assert not spectra(own) & spectra(theirs), (name, other)
                continue
            c0, c1 = recorded[other]["columns"]
            t0, t1 = recorded[other]["their_columns"]
            np.testing.assert_array_equal(own[:, c0:c1], theirs[:, t0:t1])
            outside = np.concatenate([own[:, :c0], own[:, c1:]], axis=1)
            assert spectra(outside) & spectra(theirs) <= spectra(own[:, c0:c1]), name


def test_the_scripts_that_choose_defaults_refuse_held_out_scenes(capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import _data

    with pytest.raises(SystemExit) as exc:
        _data.require_scenes(["sandiego-1", "abu-beach-3"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert "abu-beach-3: held-out scene, which no default is chosen on" in err


def test_a_run_mixing_kinds_of_scene_gives_each_kind_its_mean():
    from hsad.outputs.benchmark import Row, to_markdown

    def row(scene, auc):
        return Row(scene, "rx", auc, 0.1, 0.5, 1.0, 2.0)

    mixed = to_markdown([row("abu-beach-1", 0.9), row("abu-beach-3", 0.7),
                         row("abu-urban-3", 0.8), row("mine", 0.5)])
    auc = mixed.split("\n\n### ")[0]
    assert "| **mean, development (1)** | **0.9000** |" in auc
    assert "| **mean, held-out (2)** | **0.7500** |" in auc
    assert "| **mean, your files (1)** | **0.5000** |" in auc
    assert auc.rstrip().endswith("| **mean** | **0.7250** |")
    one_kind = to_markdown([row("abu-beach-3", 0.7), row("abu-urban-3", 0.8)])
    assert "mean," not in one_kind and "| **mean** | **0.7500** |" in one_kind
    failed = Row("abu-beach-1", "crd", 0.6, 0.1, 0.5, 1.0, 2.0)  # crd failed on the others
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of nothing
        text = to_markdown([row("abu-beach-1", 0.9), row("abu-beach-3", 0.7), failed])
    assert "| **mean, held-out (1)** | **0.7000** |  |" in text
    assert "| **mean** | **0.8000** | **0.6000** |" in text
