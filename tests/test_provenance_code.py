"""Which code made a map or a model: ``hsad_code`` (a digest of hsad's source, where the
version number alone never changed) and, on fused maps, ``hsad_fusion`` (the fusion
settings as resolved, where ``hsad_params`` holds ``null`` for "the default of the day")."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import rasterio
from cli_helpers import run_cli

from hsad import synthetic
from hsad.outputs.provenance import code_digest, fusion_settings

TINY = ["-p", "epochs=1", "-p", "hidden=8", "-p", "sample_size=300", "--seed", "0"]


def test_the_code_digest_is_short_stable_and_covers_the_command_line():
    assert re.fullmatch(r"[0-9a-f]{12}", code_digest())
    first = code_digest()
    code_digest.cache_clear()  # computed again here, and in another process: the same
    assert code_digest() == first
    other = subprocess.run([sys.executable, "-c", "from hsad.outputs.provenance import "
                            "code_digest; print(code_digest())"], capture_output=True,
                           text=True, check=True, timeout=120)
    assert other.stdout.strip() == first


def test_maps_and_models_record_the_code_and_fused_maps_their_resolved_fusion(tmp_path,
                                                                              capsys):
    scene = synthetic.write_scene(synthetic.make_scene(rows=24, cols=24, bands=8, seed=1),
                                  tmp_path / "s")
    model, scores = tmp_path / "m.hsad", tmp_path / "d_ss.tif"
    code, _, err = run_cli(["train", scene["cube"], "-m", "hadgan", *TINY, "-o", model,
                            "--quiet"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["detect", scene["cube"], "--model", model, "-o", scores,
                            "--save-stages", tmp_path / "stages"], capsys)
    assert code == 0, err
    with rasterio.open(scores) as src:
        tags = src.tags()
    assert tags["hsad_code"] == code_digest()
    assert json.loads(tags["hsad_params"])["area"] is None  # as given: "the default"
    fusion = json.loads(tags["hsad_fusion"])  # what that default was for this map
    assert (fusion["variant"], fusion["areas"][-1], fusion["lam"]) == ("multiscale", 225, 0.4)
    assert fusion["spectral_tophat"] is True
    with rasterio.open(tmp_path / "stages" / "d_spectral.tif") as src:
        assert "hsad_fusion" not in src.tags()  # not a fused map
        assert src.tags()["hsad_code"] == code_digest()
    code, out, _ = run_cli(["info", model, "--json"], capsys)
    assert json.loads(out)["hsad_code"] == code_digest()
    code, out, _ = run_cli(["info", model], capsys)
    assert f"(code {code_digest()})" in out


def test_fusion_settings_are_none_for_a_detector_without_a_fusion_stage():
    from hsad.detectors import GlobalRX

    cube = synthetic.make_scene(rows=16, cols=16, bands=4, seed=0).cube
    assert fusion_settings(GlobalRX(), cube, "score") is None
    assert np.isfinite(GlobalRX().fit_score(cube).values).all()
