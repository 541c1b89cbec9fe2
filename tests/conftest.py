"""Shared fixtures. Real data comes from ``../shared`` through one setting.

``HSAD_DATA_DIR`` points at the benchmark-scene folder (default ``../shared/datasets``
beside the repository); the ENVI conformance corpus is its sibling ``envi_corpus``.
Tests that need them skip with the reason when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_datasets_dir() -> Path | None:
    env = os.environ.get("HSAD_DATA_DIR")
    cand = Path(env) if env else REPO.parent / "shared" / "datasets"
    return cand if (cand / "manifest.json").is_file() else None


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    d = shared_datasets_dir()
    if d is None:
        pytest.skip("benchmark scenes not found: set HSAD_DATA_DIR to ../shared/datasets")
    return d


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    d = shared_datasets_dir()
    corpus = None if d is None else d.parent / "envi_corpus"
    if corpus is None or not (corpus / "corpus.json").is_file():
        pytest.skip("ENVI conformance corpus not found (expected beside HSAD_DATA_DIR)")
    return corpus
