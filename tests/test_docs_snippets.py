"""The Python examples of docs/ run as written: each page's ``python`` blocks in order, in
one namespace, beside small stand-ins for the files and variables they name. A renamed
function or attribute that its page still shows fails here (the README's block has its own
test, test_readme.py). adding_a_model.md's blocks are fragments of a class; the class they
build is hsad's own ``ae`` detector, tested in test_neural_base.py."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hsad
from hsad import datasets, synthetic

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: pages whose blocks are runnable, each with what it needs beside it
PAGES = ["api.md", "bands_and_masks.md", "evaluation.md", "fanogan.md", "hadgan.md"]


def _blocks(page: str) -> list[str]:
    return [textwrap.dedent(block) for block in  # a block in a list item is indented
            re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)]


def test_every_page_with_python_is_run_here_or_named_a_fragment():
    shown = {p.name for p in DOCS.glob("*.md") if _blocks(p.name)}
    assert shown == set(PAGES) | {"adding_a_model.md"}


def _small_scene(rows=100, cols=100):
    """A labelled stand-in for ``datasets.load``: the demo scene's generator, at the
    pages' abu-urban-2 size (the f-AnoGAN page cuts a 50 x 100 window) with fewer bands."""
    scene = synthetic.make_scene(rows=rows, cols=cols, bands=40, n_targets=3, seed=0)
    return scene.cube, scene.cube[:, :, 0].copy(data=scene.truth)


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_python_runs(page, tmp_path, monkeypatch, corpus_dir):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    if page == "bands_and_masks.md":  # "scene.hdr" and the corpus's AVIRIS-NG chip
        synthetic.write_scene(synthetic.make_scene(rows=32, cols=32, bands=200, seed=0),
                              tmp_path, name="scene")
        chip = "ang20170323t202244_rdn_7000-7010"
        for suffix in ("", ".hdr"):
            (tmp_path / (chip + suffix)).symlink_to(corpus_dir / "isofit" / (chip + suffix))
    elif page == "api.md":  # a model, and its scene with the bands stored in reverse order
        from hsad.io.model_archive import save_model

        files = synthetic.write_scene(synthetic.make_scene(rows=32, cols=32, bands=30, seed=1),
                                      tmp_path, name="model_scene")
        cube = hsad.open_cube(files["cube"])
        save_model(hsad.detectors.get("rx").fit(cube), tmp_path / "model.hsad")
        hsad.io.envi_writer.write_envi(cube.isel(band=slice(None, None, -1)),
                                       tmp_path / "other.img")
        namespace["fitted_map"] = hsad.detectors.get("rx").fit_score(cube).values
    elif page == "evaluation.md":
        rng = np.random.default_rng(0)
        namespace["gt"] = rng.random((20, 20)) < 0.05
        namespace["scores"] = rng.random((20, 20)) + namespace["gt"]
    elif page in ("fanogan.md", "hadgan.md"):
        monkeypatch.setattr(datasets, "load", lambda name, **_: _small_scene())
        namespace["background"] = np.ones((100, 100), bool)
        namespace["background"][:, 80:] = False
        get = hsad.detectors.get  # the pages' networks, trained briefly (whatever they ask)
        brief = {"epochs": 1, "sample_size": 500}
        monkeypatch.setattr(hsad.detectors, "get", lambda name, **kw: get(name, **{
            **kw, **brief, **({"encoder_epochs": 1} if name == "fanogan" else {})}))
    for block in _blocks(page):
        exec(compile(block, page, "exec"), namespace)  # noqa: S102
    _check_results(page, namespace)


def _check_results(page: str, ns: dict) -> None:
    """What each page says its example gives."""
    if page == "api.md":
        assert {"crd", "hadgan", "lrx", "rx"} <= set(ns["detectors"].available())
        assert (ns["det"].name, ns["det"].inner, ns["det"].outer) == ("lrx", 5, 15)
        np.testing.assert_allclose(ns["scores"].values, ns["fitted_map"], rtol=1e-5)
    elif page == "bands_and_masks.md":
        wl = ns["part"]["wavelength"].values
        assert 5 <= ns["part"].sizes["band"] <= 175 and wl.min() >= 400 and wl.max() <= 2400
        assert float(ns["vnir"]["wavelength"].max()) <= 1000
        assert ns["small"].shape == (10, 10, 425) and ns["binned"].sizes["band"] == 10
    elif page == "evaluation.md":
        r = ns["r"]
        assert r.auc_df == r["auc_df"] > 0.9 and r.to_dict()["n_anomaly"] == ns["gt"].sum()
        assert len(ns["curve"].pd) == len(ns["curve"].pf)
    else:
        assert ns["scores"].shape == (100, 100) and np.isfinite(ns["scores"].values).all()
        assert "d_ss" in ns["stages"]
