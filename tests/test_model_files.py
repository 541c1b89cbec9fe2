"""Model files: only safetensors + JSON are read, every tampered or damaged file is a clear
ModelError (one CLI line, exit 2), and nothing in a model file is ever executed."""

from __future__ import annotations

import copy
import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import scipy.io
from affine import Affine
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from hsad import __version__, detectors
from hsad.cli.main import main
from hsad.cube import make_cube
from hsad.errors import ModelError, ParameterError
from hsad.nn import persistence
from hsad.nn.persistence import CONFIG, WEIGHTS, load_detector, read_model, save_detector

#: when a format-3 file was written by the code that defined format 3
BEFORE_FORMAT_4 = "2026-12-03T12:00:00+00:00"

TINY = dict(hidden=8, depth=1, latent=2, disc_hidden=8, epochs=1, batch_size=64,
            sample_size=256, progress=False, device="cpu", n_components=2, area=4, radius=1)


class Payload:
    """Unpickling this creates ``self.marker`` (through ``open(marker, "w")``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    rng = np.random.default_rng(0)
    data = (5 + rng.normal(size=(16, 16, 6))).astype(np.float32)
    mat = tmp_path_factory.mktemp("scene") / "scene.mat"
    scipy.io.savemat(mat, {"data": data})
    return make_cube(data), mat


@pytest.fixture(scope="module")
def model(scene, tmp_path_factory):
    det = detectors.get("hadgan", **TINY).fit(scene[0])
    return save_detector(det, tmp_path_factory.mktemp("model") / "model.hsad")


@pytest.fixture(scope="module")
def members(model):
    with zipfile.ZipFile(model) as zf:
        return json.loads(zf.read(CONFIG)), zf.read(WEIGHTS)


def write_zip(path, entries: dict) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def with_config(members, path, edit) -> str:
    config = copy.deepcopy(members[0])
    edit(config)
    return write_zip(path, {CONFIG: json.dumps(config), WEIGHTS: members[1]})


def with_tensors(members, path, edit) -> str:
    tensors = dict(st_load(members[1]))
    edit(tensors)
    return write_zip(path, {CONFIG: json.dumps(members[0]), WEIGHTS: st_save(tensors)})


def cli_detect(mat, model, out, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(mat), "--model", str(model), "-o", str(out)])
    return exc.value.code, capsys.readouterr().err


def assert_refused(path, match, scene, tmp_path, capsys):
    """ModelError through the API, one line and exit 2 through the CLI, no output file."""
    with pytest.raises(ModelError, match=match) as exc:
        load_detector(path)
    assert str(path) in str(exc.value)
    code, err = cli_detect(scene[1], path, tmp_path / "scores.tif", capsys)
    assert code == 2
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "scores.tif").exists()


# ---- what a model records ---------------------------------------------------------------
def test_model_records_hsad_and_format_versions_and_loads(model, members, scene):
    config, _ = members
    assert config["format"] == "hsad-model"
    assert config["format_version"] == persistence.FORMAT_VERSION == 6
    assert "ladder_format" not in config  # a model fitted now keeps today's ladder
    assert config["hsad_version"] == __version__
    det = load_detector(model)
    assert det.get_params()["hidden"] == TINY["hidden"]
    assert np.isfinite(det.score(scene[0]).values).all()


def test_a_format_1_model_keeps_the_fusion_it_was_trained_with(members, tmp_path):
    """Format 1 stored lam (then a plain 0.5) and left area unset, which meant the ladder to
    121 pixels; today's unset area means 225 with lam 0.4. An old file keeps its map."""
    def old(c, **params):
        c["format_version"] = 1
        c["params"].update(lam=0.5, **params)

    def unset(c):
        c["params"].update(area=None, lam=None)

    fusion = load_detector(with_config(members, tmp_path / "v1.hsad",
                                       lambda c: old(c, area=None))).fusion_()
    assert (fusion.variant, fusion.area, fusion.lam) == ("multiscale", 121, 0.5)
    assert not fusion.spectral_tophat
    given = load_detector(with_config(members, tmp_path / "v1_area.hsad",
                                      lambda c: old(c, area=49))).fusion_()
    assert given.area == 49
    paper = load_detector(with_config(members, tmp_path / "v1_paper.hsad",
                                      lambda c: old(c, area=None, fusion="paper"))).fusion_()
    assert (paper.area, paper.lam) == (25, 0.5)
    today = load_detector(with_config(members, tmp_path / "v3.hsad", unset)).fusion_()
    assert (today.area, today.lam, today.spectral_tophat) == (225, 0.4, True)


def test_a_format_2_model_keeps_fusing_d_spectral_itself(members, tmp_path):
    """Format 2 fused D_spectral; format 3 fuses its area top-hat by default. An old file
    keeps its map; one that chose either explicitly keeps its choice."""
    def v2(c, **params):
        c["format_version"] = 2
        c["params"].pop("spectral_tophat", None)
        c["params"].update(params)

    old = load_detector(with_config(members, tmp_path / "v2.hsad", v2)).fusion_()
    assert old.spectral_tophat is False
    chosen = load_detector(with_config(members, tmp_path / "v2_on.hsad",
                                       lambda c: v2(c, spectral_tophat=True))).fusion_()
    assert chosen.spectral_tophat is True


def test_a_format_3_model_keeps_its_ladder_to_225(members, tmp_path):
    """Before format 4 a multi-scale area above 225 filtered up to 225 only; now it is the
    ladder's last step. An old file keeps its map; a new one takes its area."""
    def v3(c, **params):
        c.update(format_version=3, created=BEFORE_FORMAT_4)
        c["params"].update(params)

    old = load_detector(with_config(members, tmp_path / "v3.hsad",
                                    lambda c: v3(c, area=400))).fusion_()
    assert (old.area, old.areas()) == (225, (9, 25, 49, 121, 225))
    single = load_detector(with_config(members, tmp_path / "v3_aed.hsad",
                                       lambda c: v3(c, area=400, fusion="aed"))).fusion_()
    assert single.areas() == (400,)
    new = load_detector(with_config(members, tmp_path / "v4.hsad",
                                    lambda c: c["params"].update(area=400))).fusion_()
    assert new.areas() == (9, 25, 49, 121, 225, 400)


def test_a_format_3_file_of_the_builds_that_already_used_format_4s_ladder(members, tmp_path):
    """Four development builds of 2026-12-04 (18:33-18:49 UTC) gave an area above 225 its
    format-4 meaning but wrote format 3: such a file, written after that change, is read
    as format 4 with a warning (its map as those builds gave it); one written before keeps
    the ladder to 225 silently, and so does one whose area the two meanings agree on."""
    def v3(created, **params):
        return lambda c: (c.update(format_version=3, created=created),
                          c["params"].update(params))

    with pytest.warns(UserWarning, match="read as format 4"):
        late = load_detector(with_config(members, tmp_path / "late.hsad",
                                         v3("2026-12-04T18:40:00+00:00", area=300)))
    assert late.fusion_().areas() == (9, 25, 49, 121, 225, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        early = load_detector(with_config(members, tmp_path / "early.hsad",
                                          v3(BEFORE_FORMAT_4, area=300)))
        small = load_detector(with_config(members, tmp_path / "small.hsad",
                                          v3("2026-12-04T18:40:00+00:00", area=121)))
    assert early.fusion_().areas() == (9, 25, 49, 121, 225)
    assert small.fusion_().areas() == (9, 25, 49, 121)
    with warnings.catch_warnings():  # a day later: an older build's file, format 3 as said
        warnings.simplefilter("error")
        later = load_detector(with_config(members, tmp_path / "later.hsad",
                                          v3("2026-12-06T09:00:00+00:00", area=300)))
    assert later.fusion_().areas() == (9, 25, 49, 121, 225)


def test_a_model_keeps_its_formats_ladder_wherever_its_area_comes_from(members, tmp_path):
    """Format 5: an area off the ladder is its last step (36: 9, 25, 36; before, 9, 25,
    so a 6 × 6 target outgrew the last filter). A format-4 file keeps the steps below its
    area, a format-3 one the ladder to 225, also with ``target_size_m`` (an area from the
    scene's pixel size, which no upgrade of the saved parameters can know)."""
    def version(n, **params):
        return lambda c: (c.update(format_version=n, created=BEFORE_FORMAT_4),
                          c["params"].update(params))

    grid = make_cube(np.zeros((8, 8, 6), np.float32), crs="EPSG:32633",
                     transform=Affine(30, 0, 5e5, 0, -30, 5e6))
    expected = {5: (9, 25, 36), 4: (9, 25), 3: (9, 25)}
    for n, areas in expected.items():
        det = load_detector(with_config(members, tmp_path / f"v{n}.hsad", version(n, area=36)))
        assert det.fusion_().areas() == areas, n
    with pytest.raises(ParameterError):  # a failed fit leaves the model as it was
        det.fit(make_cube(np.full((8, 8, 6), np.nan, np.float32)))
    assert det.fusion_().areas() == expected[3]
    far = {5: (9, 25, 49, 121, 225, 400), 4: (9, 25, 49, 121, 225, 400),
           3: (9, 25, 49, 121, 225)}
    for n, areas in far.items():  # 600 m targets on 30 m pixels: 400 pixels
        det = load_detector(with_config(members, tmp_path / f"t{n}.hsad",
                                        version(n, area=None, target_size_m=600.0)))
        assert det.fusion_(grid).areas() == areas, n
    det.fit(grid.copy(data=np.random.default_rng(0).normal(size=(8, 8, 6)).astype(np.float32)))
    assert det.fusion_(grid).areas() == far[5]  # fitted again: today's ladder


def test_a_model_saved_again_without_a_new_fit_keeps_its_formats_ladder(members, tmp_path):
    """Format 6: a model loaded from a format-4 file and saved again records the ladder it
    reads with (``ladder_format``), so the copy gives the map the original gave (area 36:
    9, 25, not today's 9, 25, 36); fitted again, it is today's model."""
    old = load_detector(with_config(members, tmp_path / "v4.hsad",
                                    lambda c: (c.update(format_version=4),
                                               c["params"].update(area=36))))
    copy_path = save_detector(old, tmp_path / "copy.hsad")
    with zipfile.ZipFile(copy_path) as zf:
        config = json.loads(zf.read(CONFIG))
    assert (config["format_version"], config["ladder_format"]) == (6, 4)
    again = load_detector(copy_path)
    assert again.fusion_().areas() == (9, 25)
    assert load_detector(save_detector(again, tmp_path / "copy2.hsad")).fusion_().areas() == (9, 25)
    again.fit(make_cube(np.random.default_rng(0).normal(size=(8, 8, 6)).astype(np.float32)))
    refit = save_detector(again, tmp_path / "refit.hsad")
    with zipfile.ZipFile(refit) as zf:
        assert "ladder_format" not in json.loads(zf.read(CONFIG))
    assert load_detector(refit).fusion_().areas() == (9, 25, 36)


@pytest.mark.parametrize("value", [7, 0, "4", True, 4.0, None])
def test_a_ladder_format_that_is_no_format_is_refused(members, tmp_path, value):
    path = with_config(members, tmp_path / "bad.hsad", _set("ladder_format", value))
    with pytest.raises(ModelError, match="ladder_format must be a format number"):
        load_detector(path)


def test_a_rewritten_but_untouched_model_still_loads(members, tmp_path, scene):
    # the tampering helpers themselves produce loadable files when nothing is changed
    path = with_config(members, tmp_path / "same.hsad", lambda c: None)
    assert load_detector(path).n_bands_ == 6


# ---- tampered JSON ------------------------------------------------------------------------
def _drop(key):
    return lambda c: c.pop(key)


def _set(key, value):
    return lambda c: c.__setitem__(key, value)


def _param(key, value):
    return lambda c: c["params"].__setitem__(key, value)


def _bands(n):
    def edit(c):
        c.update(n_bands=n, good_band=[True] * n, wavelength=[None] * n)
    return edit


TAMPERED = {
    "unknown detector": (_set("method", "evil"), "needs method 'evil'"),
    "classic detector": (_set("method", "rx"), "needs method 'rx'"),
    "future format": (_set("format_version", 7), "newer than this hsad.*upgrade hsad"),
    "no format version": (_drop("format_version"), "no format_version.*retrain"),
    "old format version": (_set("format_version", 0), "no longer read.*retrain"),
    "format version as text": (_set("format_version", "1"), "must be an integer"),
    "no hsad version": (_drop("hsad_version"), "lacks the hsad version"),
    "not an hsad config": (_set("format", "other"), "not an hsad model description"),
    "no method": (_drop("method"), "lacks 'method'"),
    "no params": (_drop("params"), "lacks 'params'"),
    "no n_bands": (_drop("n_bands"), "lacks 'n_bands'"),
    "no networks": (_drop("networks"), "lacks 'networks'"),
    "n_bands as text": (_set("n_bands", "6"), "'n_bands' must be a JSON int"),
    "params as list": (_set("params", []), "'params' must be a JSON dict"),
    "good_band as numbers": (_set("good_band", [1] * 6), "good_band must be booleans"),
    "band count mismatch": (_set("n_bands", 5), "good_band must be booleans"),
    "wavelength count": (_set("wavelength", [500.0]), "wavelength must hold"),
    "unknown normalisation": (_set("normalisation", {"method": "evil"}), "normalisation"),
    "wrong shapes (bands)": (_bands(7), "norm.centre has shape"),
    "wrong shapes (hidden)": (_param("hidden", 16),
                              "do not match.*net.0.weight has shape \\(8, 6\\)"),
    "wrong network list": (_set("networks", ["encoder"]), "networks"),
    "unknown parameter": (_param("exec", "rm -rf"), "does not know \\(exec\\)"),
    "parameter wrong type": (_param("hidden", "8"), "'hidden' has the wrong type"),
    "parameter bool for int": (_param("epochs", True), "'epochs' has the wrong type"),
    "parameter invalid": (_param("input", "voxel"), "invalid saved parameters"),
    "history not an object": (_set("history", [1, 2]), "history must be"),
    "history of the wrong shape": (_set("history", {"losses": []}), "do not match"),
    # hidden = 2^28 on 6 bands: building it would allocate over 12 GB; the shapes are
    # compared on the meta device first, so the file is refused for its shapes at no cost
    "huge network": (_param("hidden", 2**28), "do not match.*has shape"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_config_is_a_clear_model_error(case, members, tmp_path, scene, capsys):
    edit, match = TAMPERED[case]
    path = with_config(members, tmp_path / "tampered.hsad", edit)
    assert_refused(path, match, scene, tmp_path, capsys)


def test_config_that_is_not_json_or_not_an_object(members, tmp_path):
    for raw, match in ((b"\xff\xfe", "not valid JSON"), (b"[1, 2]", "not an hsad model"),
                       (b"[" * 100000, "not valid JSON"),
                       (b'{"n_bands": ' + b"9" * 5000 + b"}", "not valid JSON")):
        path = write_zip(tmp_path / "bad.hsad", {CONFIG: raw, WEIGHTS: members[1]})
        with pytest.raises(ModelError, match=match):
            read_model(path)


# ---- tampered or damaged weights ----------------------------------------------------------
def _first_weight(t):
    return sorted(k for k in t if k.endswith("weight") and not k.startswith("norm."))[0]


WEIGHT_EDITS = {
    "non-finite weight": (lambda t: t["encoder.net.0.weight"].__setitem__((0, 0), np.nan)
                          if "encoder.net.0.weight" in t else
                          t[sorted(k for k in t if k.endswith("weight"))[0]].fill(np.inf),
                          "non-finite"),
    "extra tensor": (lambda t: t.__setitem__("evil.code", np.zeros(3, np.float32)),
                     "unexpected tensors"),
    "missing norm": (lambda t: t.pop("norm.scale"), "lacks norm.scale"),
    "zero scale": (lambda t: t.__setitem__("norm.scale", np.zeros(6, np.float32)), "> 0"),
    "tiny scale": (lambda t: t.__setitem__("norm.scale", np.full(6, 1e-44, np.float32)),
                   "normalisation is out of range"),
    "huge centre": (lambda t: t.__setitem__("norm.centre", np.full(6, 3e38, np.float32)),
                    "normalisation is out of range"),
    "huge weights": (lambda t: t.__setitem__(_first_weight(t), t[_first_weight(t)] * 1e36),
                     r"beyond ±1e\+06: not a trained network"),
    "weights of another dtype": (lambda t: t.__setitem__(_first_weight(t), t[_first_weight(
        t)].astype(np.float16)), "is float16, the networks hold float32"),
    "missing weight": (lambda t: t.pop(sorted(k for k in t if not k.startswith("norm."))[0]),
                       "missing tensors"),
}


@pytest.mark.parametrize("case", list(WEIGHT_EDITS))
def test_tampered_weights_are_a_clear_model_error(case, members, tmp_path, scene, capsys):
    edit, match = WEIGHT_EDITS[case]
    path = with_tensors(members, tmp_path / "weights.hsad", edit)
    assert_refused(path, match, scene, tmp_path, capsys)


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5, 0.99])
def test_truncated_weights_are_a_clear_model_error(keep, members, tmp_path, scene, capsys):
    raw = members[1]
    cut = raw[: int(keep * len(raw)) if isinstance(keep, float) else keep]
    path = write_zip(tmp_path / "cut.hsad", {CONFIG: json.dumps(members[0]), WEIGHTS: cut})
    assert_refused(path, "model.safetensors is unreadable", scene, tmp_path, capsys)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_archive_is_a_clear_model_error(keep, model, tmp_path, scene, capsys):
    raw = model.read_bytes()
    path = tmp_path / "cut.hsad"
    path.write_bytes(raw[: int(keep * len(raw))])
    assert_refused(path, "not an hsad model|damaged model archive", scene, tmp_path, capsys)


def test_bit_flipped_archive_is_a_clear_model_error(model, tmp_path, scene, capsys):
    raw = bytearray(model.read_bytes())
    with zipfile.ZipFile(model) as zf:
        info = zf.getinfo(WEIGHTS)
    raw[info.header_offset + 30 + len(WEIGHTS) + info.compress_size // 2] ^= 0xFF
    path = tmp_path / "flipped.hsad"
    path.write_bytes(bytes(raw))
    assert_refused(path, "damaged model archive", scene, tmp_path, capsys)


# ---- size guards (zip bombs) -------------------------------------------------------------
def test_huge_config_member_is_refused_before_reading(members, tmp_path, monkeypatch):
    read = []
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, *a: read.append(a) or b"")
    bomb = tmp_path / "bomb.hsad"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(CONFIG, "w", force_zip64=True) as fh:  # 80 MiB of zeros, ~80 KB stored
            chunk = bytes(2**20)
            for _ in range(80):
                fh.write(chunk)
        zf.writestr(WEIGHTS, members[1])
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ModelError, match="config.json would be 83886080 bytes"):
        read_model(bomb)
    assert read == []  # refused from the declared size, nothing inflated


def test_weights_larger_than_the_limit_are_refused(model, tmp_path, monkeypatch):
    monkeypatch.setitem(persistence.MAX_BYTES, WEIGHTS, 1000)
    with pytest.raises(ModelError, match="model.safetensors would be .* more than the 1000"):
        read_model(model)
    folder = tmp_path / "folder"
    folder.mkdir()
    with zipfile.ZipFile(model) as zf:
        zf.extractall(folder)
    with pytest.raises(ModelError, match="more than the 1000"):
        read_model(folder)


def test_archive_with_extra_members_is_refused(members, tmp_path):
    path = write_zip(tmp_path / "extra.hsad", {CONFIG: json.dumps(members[0]),
                                               WEIGHTS: members[1], "run.py": b"print(1)"})
    with pytest.raises(ModelError, match="unexpected members \\(run.py\\)"):
        read_model(path)


def test_archive_with_a_member_twice_is_refused(members, tmp_path):
    """The last copy won: a zip tool may show the first, so what was inspected was not what
    ran."""
    import warnings

    config = dict(members[0])
    path = tmp_path / "twice.hsad"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        zf.writestr(CONFIG, json.dumps(config))
        zf.writestr(WEIGHTS, members[1])
        zf.writestr(CONFIG, json.dumps({**config, "method": "other"}))
    with pytest.raises(ModelError, match="holds config.json more than once"):
        read_model(path)


# ---- pickles are never unpickled -----------------------------------------------------------
def test_the_pickle_payload_is_live(tmp_path):
    # control: the payload below really would create its file if it were unpickled
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()


def _pickle_files(tmp_path, members, payload):
    torch_style = io.BytesIO()  # what torch.save writes: a zip around data.pkl
    with zipfile.ZipFile(torch_style, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    folder = tmp_path / "folder.hsad"
    folder.mkdir()
    (folder / CONFIG).write_text(json.dumps(members[0]))
    (folder / WEIGHTS).write_bytes(payload)
    raw = tmp_path / "raw.hsad"
    raw.write_bytes(payload)
    torch_zip = tmp_path / "torch.hsad"
    torch_zip.write_bytes(torch_style.getvalue())
    return {
        raw: "not an hsad model",
        torch_zip: "lacks config.json, model.safetensors",
        write_zip(tmp_path / "as_weights.hsad",
                  {CONFIG: json.dumps(members[0]), WEIGHTS: payload}): "unreadable",
        write_zip(tmp_path / "as_config.hsad", {CONFIG: payload, WEIGHTS: members[1]}):
            "not valid JSON",
        write_zip(tmp_path / "beside.hsad", {CONFIG: json.dumps(members[0]),
                                             WEIGHTS: members[1], "data.pkl": payload}):
            "unexpected members",
        folder: "unreadable",
    }


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickles_renamed_to_hsad_execute_nothing(protocol, members, tmp_path, scene, capsys):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(marker), protocol=protocol)
    for path, match in _pickle_files(tmp_path, members, payload).items():
        with pytest.raises(ModelError, match=match):
            load_detector(path)
        assert not marker.exists(), path
        code, err = cli_detect(scene[1], path, tmp_path / "out.tif", capsys)
        assert code == 2 and err.startswith(f"error: {path}: ") and err.count("\n") == 1
        assert not marker.exists(), path
        assert not (tmp_path / "out.tif").exists()


@pytest.mark.parametrize(("mode", "output"), [("dss", "d_ss"), ("none", "anomaly")])
def test_fanogan_models_saved_before_the_shared_base_load_with_their_meaning(
        scene, tmp_path, mode, output):
    """Those files stored ``fusion`` = none|dss and ``fusion_variant``: they load as
    ``output`` and ``fusion`` and score the same map (checked by hand on real old files:
    bit-identical)."""
    det = detectors.get("fanogan", hidden=8, depth=1, latent=2, epochs=1, encoder_epochs=1,
                        batch_size=64, sample_size=256, progress=False, device="cpu",
                        n_components=2, area=4, radius=1, output=output).fit(scene[0])
    saved = save_detector(det, tmp_path / "new.hsad")
    with zipfile.ZipFile(saved) as zf:
        files = (json.loads(zf.read(CONFIG)), zf.read(WEIGHTS))

    def old_names(config):
        params = config["params"]
        params["fusion_variant"] = params.pop("fusion")
        params["fusion"] = mode
        del params["output"]

    old = load_detector(with_config(files, tmp_path / "old.hsad", old_names))
    assert old.get_params() == det.get_params()
    np.testing.assert_array_equal(old.score(scene[0]).values, det.score(scene[0]).values)


def test_an_unreadable_earlier_fanogan_config_is_a_model_error(tmp_path):
    """``fusion_variant`` with a ``fusion`` mode that never existed: a ModelError, not a
    KeyError escaping from the parameter upgrade."""
    det = detectors.get("fanogan", hidden=8, depth=1, latent=2, epochs=1, encoder_epochs=1,
                        batch_size=64, sample_size=256, progress=False, device="cpu")
    rng = np.random.default_rng(1)
    det.fit(make_cube((5 + rng.normal(size=(16, 16, 6))).astype(np.float32)))
    with zipfile.ZipFile(save_detector(det, tmp_path / "new.hsad")) as zf:
        files = (json.loads(zf.read(CONFIG)), zf.read(WEIGHTS))

    def bad(config):
        config["params"]["fusion_variant"] = config["params"].pop("fusion")
        config["params"]["fusion"] = ["dss"]

    with pytest.raises(ModelError, match="earlier hsad that cannot be read"):
        load_detector(with_config(files, tmp_path / "old.hsad", bad))


def test_parameters_beside_a_saved_model_are_refused_not_ignored(scene, model, tmp_path,
                                                                 capsys):
    out = tmp_path / "scores.tif"
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(scene[1]), "--model", str(model), "-p", "epochs=3",
              "-o", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert "fitted with (epochs); drop --param" in err and "hsad train -p" in err
    assert "only its scoring settings can be given (" in err and " lam, " in err
    assert not out.exists()
    # from a config file: the error names the config's key, not an option never given
    for text, said in (("params:\n  epochs: 3\n", "drop `params` from the config"),
                       ("method: lrx\n", "drop `method` from the config")):
        config = tmp_path / "c.yaml"
        config.write_text(text)
        with pytest.raises(SystemExit) as exc:
            main(["detect", str(scene[1]), "--model", str(model), "-c", str(config),
                  "-o", str(out)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and said in err and str(config) in err, err
        assert "drop -m" not in err and "drop --param" not in err and not out.exists()


def test_a_saved_model_takes_its_scoring_settings_on_the_command_line(scene, model, tmp_path,
                                                                     capsys):
    """`set_params(lam=0.7)` on a loaded model applies at the next score in Python (api.md);
    `hsad detect --model m.hsad -p lam=0.7` was refused with advice to train again. The
    settings read when scoring now apply, checked as in Python; the map is Python's."""
    import rasterio

    from hsad.io.model_archive import load_model

    out = tmp_path / "lam.tif"
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(scene[1]), "--model", str(model), "-p", "lam=0.7", "-o",
              str(out), "-q"])
    assert exc.value.code == 0
    loaded = load_model(model).set_params(lam=0.7)
    with rasterio.open(out) as src:
        np.testing.assert_allclose(src.read(1), loaded.score(scene[0]).values, rtol=1e-6)
        assert json.loads(src.tags()["hsad_params"])["lam"] == 0.7
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(scene[1]), "--model", str(model), "-p", "lam=7", "-o",
              str(tmp_path / "bad.tif")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "lam must lie in [0, 1], got 7 (-p lam=7)" in err, err
    with pytest.raises(SystemExit) as exc:  # a typo is named as one, as without --model
        main(["detect", str(scene[1]), "--model", str(model), "-p", "lamb=0.7", "-o",
              str(tmp_path / "bad.tif")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unknown parameter 'lamb'" in err, err
    # a plugin that does not say which settings scoring reads takes any, as set_params
    from hsad.pipeline import make_detector

    loaded = load_model(model)
    type(loaded).score_params, saved = None, type(loaded).score_params
    try:
        assert make_detector(None, {"lam": 0.2}, model=model,
                             load=lambda path: loaded).get_params()["lam"] == 0.2
    finally:
        type(loaded).score_params = saved


@pytest.mark.parametrize("method, key, limit", [("anogan", "search_steps", 10_000),
                                                ("vae", "n_samples", 1000)])
def test_a_model_asking_for_unbounded_inference_work_is_refused(method, key, limit, scene,
                                                                 tmp_path, capsys):
    """AnoGAN's latent search and VAE's draws run at scoring time, as long as the file
    says: a model asking for 10⁹ is refused before any work, the limit itself loads."""
    tiny = {k: v for k, v in TINY.items() if k != "disc_hidden"}
    det = detectors.get(method, **tiny).fit(scene[0])
    with zipfile.ZipFile(save_detector(det, tmp_path / "m.hsad")) as zf:
        members = (json.loads(zf.read(CONFIG)), zf.read(WEIGHTS))
    at_limit = with_config(members, tmp_path / "limit.hsad", _param(key, limit))
    assert getattr(load_detector(at_limit), key) == limit
    path = with_config(members, tmp_path / "huge.hsad", _param(key, 10**9))
    assert_refused(path, f"{key} must be", scene, tmp_path, capsys)
    with pytest.raises(ParameterError, match=f"{key} must be"):
        detectors.get(method, **tiny, **{key: limit + 1}).fit(scene[0])


def test_info_describes_a_model_and_a_model_given_as_a_scene_is_named(model, members,
                                                                      tmp_path, capsys):
    """``hsad info model.hsad`` once said "a ZIP archive: unpack it first"."""
    with pytest.raises(SystemExit) as exc:
        main(["info", str(model), "--json"])
    assert exc.value.code == 0
    info = json.loads(capsys.readouterr().out)
    config = members[0]
    assert (info["method"], info["bands"], info["trained_on_pixels"]) == (
        "hadgan", config["n_bands"], config["n_train"])
    assert info["params"] == config["params"] and info["format"] == "hsad model"
    with pytest.raises(SystemExit) as exc:
        main(["info", str(model)])
    text = capsys.readouterr().out
    assert "method:     hadgan (networks: hsad.detectors.hadgan.HADGAN)" in text
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(model), "-m", "rx", "-o", str(tmp_path / "x.tif")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "an hsad model file, not a cube: give it to --model" in err
    broken = with_config(members, tmp_path / "broken.hsad", lambda c: c.pop("method"))
    with pytest.raises(SystemExit) as exc:
        main(["info", str(broken)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "lacks 'method'" in err and err.count("\n") == 1


def test_info_says_how_a_models_training_ended(members, tmp_path, capsys):
    """``hsad info`` once showed no sign that early stopping had ended a training (the
    config's ``history.stopped_early``): the epochs each stage ran and the stop are shown."""
    def stopped(c):
        c["history"].update(epochs=7, stopped_early=True,
                            stages={"gan": [0, 5, []], "encoder": [5, 2, []]})

    path = str(with_config(members, tmp_path / "stopped.hsad", stopped))
    with pytest.raises(SystemExit):
        main(["info", path, "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["training"]["stopped_early"] is True
    assert info["training"]["stage_epochs"] == {"gan": 5, "encoder": 2}
    with pytest.raises(SystemExit) as exc:
        main(["info", path])
    text = capsys.readouterr().out
    assert exc.value.code == 0
    assert "7 epochs (gan 5, encoder 2), stopped early" in text
    with pytest.raises(SystemExit):
        main(["info", str(with_config(members, tmp_path / "whole.hsad", lambda c: None))])
    text = capsys.readouterr().out
    assert f"{members[0]['history']['epochs']} epochs" in text and "stopped early" not in text


def test_info_shows_an_older_models_parameters_as_they_are_read(members, tmp_path, capsys):
    """A format-1 file's unset area meant the ladder to 121 pixels and its fusion fused
    D_spectral itself: ``info`` shows what ``load_model`` uses, and the saved values under
    ``saved_params``; a file from before the model archive (no kind, no class) is named
    without an empty "(None: None)"."""
    def v1(c):
        c.update(format_version=1, created=BEFORE_FORMAT_4)
        c["params"].update(area=None, lam=0.5)
        c.pop("class", None)
        c.pop("kind", None)

    old = str(with_config(members, tmp_path / "v1.hsad", v1))
    with pytest.raises(SystemExit):
        main(["info", old, "--json"])
    info = json.loads(capsys.readouterr().out)
    assert (info["params"]["area"], info["params"]["spectral_tophat"]) == (121, False)
    assert info["saved_params"]["area"] is None
    assert load_detector(old).get_params()["area"] == 121
    with pytest.raises(SystemExit):
        main(["info", old])
    text = capsys.readouterr().out
    assert "method:     hadgan\n" in text and "None" not in text.split("params")[0]
    assert "as this hsad reads the file's" in text


@pytest.mark.parametrize(("method", "params"), [
    ("hadgan", {**TINY, "epochs": 2.0, "hidden": 8.0}),   # a whole number as a float
    ("hadgan", {**TINY, "seed": np.int64(3), "batch_size": np.int32(64)}),  # NumPy scalars
    ("cluster-rx", {"n_clusters": np.int64(2), "sample_size": np.int64(200)}),
    ("rx", {"ridge": np.float32(0.5)}),
])
def test_values_a_fit_accepts_are_saved_as_the_file_reads_them(scene, tmp_path, method,
                                                               params):
    """A sweep's values (np.arange, a pandas row, 2.0 for 2) trained, then saving failed
    ("int64 is not JSON serializable") or wrote a file load_model refused ("parameter
    'epochs' has the wrong type")."""
    from hsad.io.model_archive import load_model, save_model

    det = detectors.get(method, **params).fit(scene[0])
    back = load_model(save_model(det, tmp_path / "m.hsad"))
    for key, value in params.items():
        saved = back.get_params()[key]
        assert saved == value and not isinstance(saved, np.generic), key
    np.testing.assert_array_equal(back.score(scene[0]).values, det.score(scene[0]).values)


@pytest.mark.parametrize(("method", "params", "message"), [
    ("rx", {"ridge": True}, "ridge must be a number, got True"),
    ("rx", {"dtype": 64}, "dtype must be a string"),
    ("hadgan", {**TINY, "progress": "yes"}, "progress must be true or false"),
])
def test_a_value_of_the_wrong_type_is_refused_by_fit(scene, method, params, message):
    """rx(ridge=True) fitted and scored, and its model file was refused at load."""
    with pytest.raises(ParameterError, match=message):
        detectors.get(method, **params).fit(scene[0])


def test_numpy_booleans_are_booleans(scene):
    det = detectors.get("hadgan", **{**TINY, "progress": np.bool_(False)}).fit(scene[0])
    assert det.score(scene[0]).shape == (16, 16)


def test_a_model_file_records_the_seed_it_was_trained_with(scene, tmp_path, capsys):
    """seed set after fit (it draws scoring's noise) was saved as if the model had been
    trained with it: retraining with the recorded parameters gave another model."""
    from hsad.io.model_archive import load_model, save_model

    det = detectors.get("hadgan", **{**TINY, "seed": 0}).fit(scene[0])
    det.set_params(seed=5)
    back = load_model(save_model(det, tmp_path / "m.hsad"))
    assert back.training_seed_ == 0 and back.get_params()["seed"] == 5
    again = detectors.get("hadgan", **{**back.get_params(), "seed": back.training_seed_})
    again.fit(scene[0]).set_params(seed=5)
    np.testing.assert_array_equal(again.score(scene[0]).values, back.score(scene[0]).values)
    assert save_model(back, tmp_path / "again.hsad")  # kept through a second save
    assert load_model(tmp_path / "again.hsad").training_seed_ == 0
    with pytest.raises(SystemExit):
        main(["info", str(tmp_path / "m.hsad")])
    assert "pixels, seed 0" in capsys.readouterr().out


def test_a_training_seed_that_is_no_seed_is_refused(members, tmp_path):
    path = with_config(members, tmp_path / "bad.hsad",
                       lambda c: c.update(training_seed="zero"))
    with pytest.raises(ModelError, match="training_seed must be an integer"):
        load_detector(path)


def test_a_cube_of_other_bands_is_refused_with_the_way_to_match_them(scene):
    """From Python a model read another scene's bands by position, refused with "fitted
    on 218 good bands of 224, but the cube has 218 of 218" and no word of the way out."""
    det = detectors.get("rx").fit(scene[0])
    way_out = r"hsad\.cube\.model_bands\.match_model_bands\(cube, model\)"
    with pytest.raises(ParameterError, match=way_out):
        det.score(scene[0].isel(band=slice(1, None)))


@pytest.mark.parametrize(("method", "params"), [
    ("hadgan", {**TINY, "latent": None}),  # int(√B + 1), as docs/hadgan.md says
    ("adae", {**{k: v for k, v in TINY.items() if k not in ("disc_hidden", "n_components",
                                                          "area", "radius")},
              "out_bound": None}),
    ("lrx", {"dtype": np.float64}),   # a NumPy type for a type's name: saved as "float64"
])
def test_values_of_the_annotation_not_the_defaults_type_load_back(scene, tmp_path, method,
                                                                  params):
    """hadgan(latent=None) and adae(out_bound=None) trained and saved, then load_model
    refused them ("parameter 'latent' has the wrong type (NoneType)"); lrx(dtype=np.float64)
    was refused at fit once fit checked types."""
    from hsad.io.model_archive import load_model, save_model

    det = detectors.get(method, **params).fit(scene[0])
    if method == "lrx":
        assert det.score(scene[0]).shape == (16, 16)  # lrx has no model file
        return
    back = load_model(save_model(det, tmp_path / "m.hsad"))
    np.testing.assert_array_equal(back.score(scene[0]).values, det.score(scene[0]).values)


def test_a_progress_of_true_saved_before_it_meant_always_is_read_as_the_default(members,
                                                                                 tmp_path):
    """Files saved before 2026-12-05 hold "progress": true, then the default ("a bar on a
    terminal"): read as today's None, not as "always" (bars in every log)."""
    path = with_config(members, tmp_path / "old.hsad",
                       lambda c: c["params"].update(progress=True))
    assert load_detector(path).progress is None


def test_a_neural_model_given_other_bands_names_the_way_to_match_them(scene):
    det = detectors.get("hadgan", **TINY).fit(scene[0])
    with pytest.raises(ModelError, match=r"match_model_bands\(cube, model\)"):
        det.score(scene[0].isel(band=slice(1, None)))
    reversed_bands = scene[0].isel(band=slice(None, None, -1)).assign_coords(
        wavelength=("band", np.linspace(400, 2400, 6)[::-1]))
    with pytest.raises(ModelError, match=r"match_model_bands\(cube, model\)"):
        detectors.get("rx").fit(scene[0].assign_coords(
            wavelength=("band", np.linspace(400, 2400, 6)))).score(reversed_bands)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda p: p.update(radius=1e19), "radius must be at most"),   # a float past C's ints
    (lambda p: p.update(hidden=2.5), "hidden"),                    # not a whole number
    (lambda p: p.update(epochs="3"), "epochs"),
])
def test_a_hand_edited_number_is_refused_at_load_not_at_score(members, tmp_path, edit,
                                                             message):
    """radius = 1e+19 in config.json loaded, then `detect --model` died in a 73-line
    OverflowError traceback: whole floats are taken as the integers they are, and bounded."""
    path = with_config(members, tmp_path / "m.hsad", lambda c: edit(c["params"]))
    with pytest.raises(ModelError, match=message):
        load_detector(path)


def test_a_statistics_models_hand_edited_ridge_is_refused_at_load(scene, tmp_path):
    """A NaN ridge loaded and could never score ("ridge is nan but the detector was
    fitted with nan")."""
    from hsad.io.model_archive import load_model, save_model

    saved = save_model(detectors.get("rx").fit(scene[0]), tmp_path / "rx.hsad")
    with zipfile.ZipFile(saved) as zf:
        files = (json.loads(zf.read(CONFIG)), zf.read(WEIGHTS))
    for ridge in (float("nan"), -1.0, float("inf")):
        bad = with_config(files, tmp_path / "bad.hsad", lambda c, r=ridge: c["params"].update(
            ridge=r))
        with pytest.raises(ModelError, match="ridge"):
            load_model(bad)


@pytest.mark.parametrize("fusion", [[], ["--fusion", "none"]])
def test_a_scene_too_small_for_a_model_is_named_in_its_error(model, tmp_path, capsys, fusion):
    """`detect tiny.mat --model m.hsad` said "error: fewer than 2 valid pixels: no
    statistics to fuse": no file, and "fuse" under --fusion none too."""
    rng = np.random.default_rng(1)
    for shape in ((1, 1, 6), (4, 4, 6)):
        data = (5 + rng.normal(size=shape)).astype(np.float32)
        if shape[0] > 1:
            data[:, :, 2] = np.nan  # a good band without data: no valid pixel
        tiny = tmp_path / "tiny.mat"
        scipy.io.savemat(tiny, {"data": data})
        with pytest.raises(SystemExit) as exc:
            main(["detect", str(tiny), "--model", str(model), "-o", str(tmp_path / "x.tif"),
                  *fusion])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert exc.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
        assert errors[0].startswith(f"error: {tiny}: ") and "fuse" not in errors[0], err


@pytest.mark.parametrize("edit", [
    lambda c: c.update(wavelength="abc"),
    lambda c: c.update(good_band=["a"] * len(c["good_band"])),
    lambda c: c.update(networks=5),
])
@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_info_refuses_a_tampered_model_as_detect_does(members, tmp_path, capsys, edit,
                                                      as_json):
    """`hsad info` ran a tampered config.json into a 29-line traceback (exit 1) where
    `detect --model` refused it in one line; shapes it never checked printed as fine."""
    bad = with_config(members, tmp_path / "bad.hsad", edit)
    with pytest.raises(SystemExit) as exc:
        main(["info", str(bad), *as_json])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"error: {bad}: ") and \
        err.count("\n") == 1, err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["params"].update(device="mps"), "device must be auto, cpu, cuda or cuda:N, "
                                                  "got 'mps'"),
    (lambda c: c["params"].update(device=""), "device must be"),
    (lambda c: c.update(n_train=float("inf")), "'n_train' must be a whole number"),
    (lambda c: c.update(n_train=10**30), "'n_train' must be a whole number"),
    (lambda c: c.update(created=5), "'created' must be a JSON string"),
    (lambda c: c.update(hsad_code=5), "'hsad_code' must be a JSON string"),
    (lambda c: c.update(wavelength=[float("inf")] * len(c["wavelength"])),
     "wavelength must hold 6 finite numbers or nulls"),
])
def test_a_tampered_setting_or_description_is_named_by_info_and_detect(members, tmp_path,
                                                                      capsys, edit, message):
    """A saved device of 'mps' passed `hsad info` and was refused by `detect --model` as
    "weights do not match" (even with --device cpu); n_train of Infinity showed as "inf
    pixels", numbers stood for dates, negated wavelengths were "missing" bands."""
    bad = with_config(members, tmp_path / "bad.hsad", edit)
    with pytest.raises(ModelError, match=message):
        load_detector(bad)
    with pytest.raises(SystemExit) as exc:
        main(["info", str(bad)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message.split(",")[0] in err and "weights" not in err, err


def test_a_key_given_twice_in_a_models_config_is_refused(members, tmp_path):
    """`"epochs": 2, "epochs": 50` loaded as 50 beside a history of 2 epochs (json's last
    one wins), and a second "method" changed the detector."""
    config, weights = members
    text = json.dumps(config).replace('"method": ', '"method": "fanogan", "method": ', 1)
    bad = write_zip(tmp_path / "dup.hsad", {CONFIG: text, WEIGHTS: weights})
    with pytest.raises(ModelError, match="the key 'method' is given twice in one object"):
        load_detector(bad)


def test_a_model_of_a_cube_with_wavelengths_from_zero_loads_back(tmp_path):
    """What hsad saves it loads: a cube given `wavelength=np.arange(5.0)` (0 nm first)."""
    from hsad.cube import make_cube
    from hsad.io.model_archive import load_model, save_model

    cube = make_cube(np.random.default_rng(0).normal(size=(12, 12, 5)).astype(np.float32),
                     wavelength=np.arange(5.0))
    saved = save_model(detectors.get("rx").fit(cube), tmp_path / "rx.hsad")
    np.testing.assert_array_equal(load_model(saved).wavelength_, np.arange(5.0))
