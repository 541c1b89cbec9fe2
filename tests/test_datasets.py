"""Benchmark-scene manifests, search path, checksum-verified loading and fetch errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hsad import datasets
from hsad.errors import DatasetError


@pytest.fixture()
def shared(datasets_dir, monkeypatch, tmp_path):
    """Scenes from the shared folder only; the user cache is an empty temporary folder."""
    monkeypatch.setenv(datasets.ENV_VAR, str(datasets_dir))
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "cache")
    return json.loads((datasets_dir / "manifest.json").read_text())["scenes"]


def test_manifests_match_the_shared_manifest(shared):
    assert datasets.names() == sorted(s["name"] for s in shared)
    for scene in shared:
        m = datasets.manifest(scene["name"])
        for key in ("file", "sha256", "size_bytes", "cube_key", "gt_key", "rows", "cols",
                    "bands", "dtype", "anomaly_pixels", "sensor", "rx_global_auc"):
            assert m[key] == scene[key], (scene["name"], key)
        src = scene["source"]
        owner_repo = src["repo"].removeprefix("https://github.com/")
        assert m["source"]["url"] == (f"https://raw.githubusercontent.com/{owner_repo}/"
                                      f"{src['commit']}/{src['path']}")
        assert m["license"] == scene["license_in_source_repo"]


def test_every_scene_loads_with_manifest_shape_and_anomaly_count(shared):
    for name in datasets.names():
        m = datasets.manifest(name)
        cube, gt = datasets.load(name)
        assert cube.shape == (m["rows"], m["cols"], m["bands"]), name
        assert str(cube.dtype) == m["dtype"], name
        assert gt.dtype == bool and gt.dims == ("y", "x")
        assert int(gt.sum()) == m["anomaly_pixels"], name
        np.testing.assert_array_equal(gt["x"].values, cube["x"].values)
        lo, hi = m["value_range"]
        assert float(cube.min()) == lo and float(cube.max()) == hi, name
        assert cube.attrs["dataset"] == name


def test_scenes_recorded_as_one_image_are_one_image(shared):
    """abu-beach-4 is pavia-center-100 with each band rescaled: the manifests say so, the
    data agree, and a leave-one-out fold leaves both out."""
    for name in datasets.names():
        for other in datasets.same_image(name):
            assert name in datasets.same_image(other)
    assert datasets.same_image("abu-beach-4") == ["abu-beach-4", "pavia-center-100"]
    a, b = (datasets.load(n)[0].values.astype(np.float64) for n in datasets.same_image(
        "abu-beach-4"))
    for k in range(a.shape[2]):  # a per-band linear fit leaves nothing but rounding
        design = np.c_[b[..., k].ravel(), np.ones(b[..., k].size)]
        coef = np.linalg.lstsq(design, a[..., k].ravel(), rcond=None)[0]
        assert np.abs(design @ coef - a[..., k].ravel()).max() <= 1e-9 * np.ptp(a[..., k])
    folds = datasets.fold_scenes("pavia-center-100", datasets.names())
    assert "abu-beach-4" not in folds and len(folds) == len(datasets.names()) - 2
    assert datasets.fold_scenes("hydice-urban", datasets.names()) == [
        n for n in datasets.names() if n != "hydice-urban"]
    assert datasets.fold_scenes("my_scene", ["my_scene", "abu-beach-4"]) == ["abu-beach-4"]
    values = {"abu-beach-4": 0.9, "pavia-center-100": 0.7, "hydice-urban": 0.5, "mine": 0.2}
    assert datasets.image_mean(values) == pytest.approx((0.8 + 0.5 + 0.2) / 3)


def test_checksum_mismatch_is_detected_and_names_the_file(datasets_dir, tmp_path, monkeypatch):
    name = "abu-beach-2"
    copy = tmp_path / datasets.manifest(name)["file"]
    shutil.copyfile(datasets_dir / copy.name, copy)
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(bytes(raw))
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    assert datasets.path(name) == copy
    with pytest.raises(DatasetError) as exc:
        datasets.load(name)
    assert str(exc.value).startswith(f"{copy}: sha256 mismatch")


def test_unknown_name_is_a_dataset_error():
    with pytest.raises(DatasetError, match="unknown dataset 'salinas'.*abu-airport-1"):
        datasets.load("salinas")


def test_missing_file_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(DatasetError, match="sandiego-1.mat not found in .*empty.*cache"):
        datasets.path("sandiego-1")


def test_default_search_path_is_shared_then_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    dirs = datasets.search_path()
    repo_shared = datasets._REPO.parent / "shared" / "datasets"
    assert dirs[0] == tmp_path.parent / "shared" / "datasets"
    assert repo_shared in dirs
    assert dirs[-1] == datasets.cache_dir()
    # installed from a wheel, the package's parent is site-packages: no folder beside it
    monkeypatch.setattr(datasets, "_REPO", tmp_path / "site-packages")
    assert datasets.search_path() == [tmp_path.parent / "shared" / "datasets",
                                      datasets.cache_dir()]


def test_a_missing_scene_names_the_command_that_fetches_it(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(DatasetError, match="run `hsad datasets fetch sandiego-1`"):
        datasets.path("sandiego-1")


def test_fetch_failure_is_a_dataset_error(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "cache")
    calls = []

    def offline(url, known_hash, fname, path, progressbar):
        calls.append((url, known_hash, fname, path))
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(datasets.pooch, "retrieve", offline)
    m = datasets.manifest("hydice-urban")
    with pytest.raises(DatasetError, match="download of dataset 'hydice-urban' .* failed"):
        datasets.fetch("hydice-urban")
    assert calls == [(m["source"]["url"], f"sha256:{m['sha256']}", m["file"],
                      tmp_path / "cache")]


def test_a_cache_folder_that_cannot_hold_files_is_named_before_any_download(tmp_path,
                                                                             monkeypatch):
    """A file where the cache folder goes (XDG_CACHE_HOME pointing at a file) read as the
    download's failure ("NotADirectoryError"), nothing having been downloaded."""
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "empty"))
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(datasets, "cache_dir", lambda: tmp_path / "afile" / "hsad")

    def no_network(*args, **kwargs):
        raise AssertionError("fetch went to the network with no cache to keep the file")

    monkeypatch.setattr(datasets.pooch, "retrieve", no_network)
    with pytest.raises(DatasetError, match=r"the download cache .*afile.hsad cannot hold "
                       r"files: .*afile is not a folder"):
        datasets.fetch("hydice-urban")


def test_fetch_returns_a_verified_local_file_without_downloading(shared, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("fetch went to the network for a file already present")

    monkeypatch.setattr(datasets.pooch, "retrieve", no_network)
    assert datasets.fetch("sandiego-1") == datasets.path("sandiego-1")
