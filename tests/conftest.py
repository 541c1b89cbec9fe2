"""Shared fixtures. Real data comes from ``../shared`` through one setting.

``HSAD_DATA_DIR`` points at the benchmark-scene folder (default ``../shared/datasets``
beside the repository); the ENVI conformance corpus is its sibling ``envi_corpus``.
Without that folder, scenes downloaded by ``hsad datasets fetch`` (into the user cache) are
used. Tests that need data skip with the reason and where the data comes from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

NO_SCENES = (
    "benchmark scenes not found in {where}: download them with `hsad datasets fetch` "
    "(into the user cache, checked against data_manifests/), or set HSAD_DATA_DIR to a "
    "folder holding the .mat files and the shared manifest.json"
)
NO_CORPUS = (
    "ENVI conformance corpus not found at {where}: it ships with the project's shared data "
    "(../shared/envi_corpus, beside HSAD_DATA_DIR) and cannot be downloaded with hsad"
)


def _default_dir() -> Path:
    env = os.environ.get("HSAD_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def shared_datasets_dir() -> Path | None:
    cand = _default_dir()
    return cand if (cand / "manifest.json").is_file() else None


def corpus_folder() -> Path:
    """Where the ENVI conformance corpus should be: beside the scene folder."""
    return _default_dir().parent / "envi_corpus"


def _fetched_scenes(tmp: Path) -> Path | None:
    """A folder with every scene fetched by ``hsad datasets fetch`` (linked, not copied) and
    a manifest.json made from hsad's data manifests; None if any scene is missing."""
    from hsad import datasets
    from hsad.errors import DatasetError

    try:
        files = {name: datasets.path(name) for name in datasets.names()}
    except DatasetError:
        return None
    scenes = []
    for name, file in files.items():
        (tmp / file.name).symlink_to(file.resolve())
        scenes.append(datasets.manifest(name))
    (tmp / "manifest.json").write_text(json.dumps({"scenes": scenes}))
    return tmp


@pytest.fixture(scope="session")
def datasets_dir(tmp_path_factory) -> Path:
    d = shared_datasets_dir() or _fetched_scenes(tmp_path_factory.mktemp("scenes"))
    if d is None:
        pytest.skip(NO_SCENES.format(where=_default_dir()))
    return d


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    corpus = corpus_folder()
    if not (corpus / "corpus.json").is_file():
        pytest.skip(NO_CORPUS.format(where=corpus))
    return corpus


@pytest.fixture
def one_torch_thread():
    """One torch CPU thread (tiny networks: threads only spin), for ``usefixtures``."""
    from hsad.nn.trainer import cpu_threads

    with cpu_threads(1):
        yield
