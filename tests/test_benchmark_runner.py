"""The benchmark runner and ``hsad benchmark`` / ``hsad methods`` commands."""

from __future__ import annotations

import csv
import json

import pytest

from hsad.cli.main import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_benchmark_tables_match_manifest_rx(datasets_dir, tmp_path, capsys):
    md, table = tmp_path / "results.md", tmp_path / "results.csv"
    scenes = ["abu-beach-2", "hydice-urban"]
    code, out, err = run_cli(["benchmark", "-m", "rx", "--datasets", ",".join(scenes),
                              "-o", md, "--csv", table], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(table.open()))
    assert [r["scene"] for r in rows] == scenes
    manifest = {s["name"]: s for s in json.load(open(datasets_dir / "manifest.json"))["scenes"]}
    for r in rows:
        assert float(r["auc_df"]) == pytest.approx(manifest[r["scene"]]["rx_global_auc"],
                                                   abs=0.002)
        assert 0 <= float(r["auc_ft"]) <= 1 and float(r["seconds"]) > 0
    text = md.read_text()
    assert "AUC(D,F)" in text and "**mean**" in text and text in out


def test_benchmark_rejects_unknown_method_and_misaddressed_param(capsys):
    code, _, err = run_cli(["benchmark", "-m", "rx,zz"], capsys)
    assert code == 2 and "unknown method 'zz'" in err
    code, _, err = run_cli(["benchmark", "-m", "rx", "-p", "lrx.inner=3"], capsys)
    assert code == 2 and "METHOD.KEY" in err


@pytest.mark.parametrize("param, words", [
    ("anogan.search_steps=20000", "anogan: search_steps must be 0…10000"),
    ("aed.area=abc", "aed: area must be an integer or None"),
    ("cluster-rx.n_clusters=0", "n_clusters"),
    ("rx.ridge=big", "rx: ridge must be a number"),
    # lrx's and local-mean-rx's checks ran in fit: after the methods before them had run
    ("lrx.inner=30", "lrx: inner must be an odd positive integer, got 30"),
    ("lrx.outer=5", "lrx: inner window (7) must be smaller than the outer window (5)"),
    ("lrx.pca=0", "lrx: pca"),
    ("lrx.ridge=-1", "lrx: ridge"),
    ("local-mean-rx.kernel=4", "local-mean-rx: kernel must be an odd integer"),
])
def test_benchmark_checks_every_methods_parameters_before_the_first_scene(param, words,
                                                                          capsys):
    """A bad value of the last method is refused at once, not after the others' runs
    (scenes that do not exist show that no scene was even looked up)."""
    method = param.split(".")[0]
    code, out, err = run_cli(["benchmark", "-m", f"rx,{method}", "--datasets",
                              "no-such-scene", "-p", param], capsys)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert out == ""


def test_methods_lists_every_detector_with_defaults(capsys):
    from hsad import detectors
    from hsad.detectors.param_help import RUNTIME

    code, out, _ = run_cli(["methods"], capsys)
    assert code == 0
    for name, cls in detectors.available().items():
        assert name in out
        for param, default in cls.param_defaults().items():
            assert (f"{param} = {default!r}" in out) == (param not in RUNTIME)


def test_benchmark_on_labelled_files_of_ones_own(tmp_path, capsys):
    import numpy as np
    import scipy.io as sio

    from hsad import detectors
    from hsad.outputs.metrics import evaluate

    rng = np.random.default_rng(2)
    folder = tmp_path / "mine"
    folder.mkdir()
    truths = {}
    for name in ("lake", "field"):
        cube = rng.normal(100.0, 5.0, (20, 24, 10))
        gt = np.zeros((20, 24), np.uint8)
        gt[4, 5] = gt[12, 20] = 1
        cube[gt == 1] += 30.0
        sio.savemat(folder / f"{name}.mat", {"img": cube, "PlaneGT": gt})
        truths[name] = (cube, gt)
    (folder / "notes.txt").write_text("not a scene")
    table = tmp_path / "r.csv"
    code, _, err = run_cli(["benchmark", "-m", "rx", "--datasets", folder, "--csv", table],
                           capsys)
    assert code == 0, err
    rows = list(csv.DictReader(table.open()))
    assert [r["scene"] for r in rows] == ["field", "lake"]  # the folder's MAT files, sorted
    for r in rows:
        cube, gt = truths[r["scene"]]
        expected = evaluate(detectors.get("rx").fit_score(cube).values, gt != 0)["auc_df"]
        assert float(r["auc_df"]) == pytest.approx(expected, abs=1e-9)
    sio.savemat(tmp_path / "unlabelled.mat", {"data": truths["lake"][0]})
    code, _, err = run_cli(["benchmark", "-m", "rx", "--datasets", tmp_path / "unlabelled.mat"],
                           capsys)
    assert code == 2 and "no ground truth found beside the cube" in err
    code, _, err = run_cli(["benchmark", "-m", "rx", "--datasets", "abu-nowhere"], capsys)
    assert code == 2 and "neither a benchmark name" in err


def test_repeats_run_once_and_a_file_named_like_a_benchmark_keeps_its_path(tmp_path):
    import numpy as np
    import scipy.io as sio

    from hsad.outputs.benchmark import run

    rng = np.random.default_rng(3)
    cube = rng.normal(100.0, 5.0, (20, 24, 10))
    gt = np.zeros((20, 24), np.uint8)
    gt[4, 5] = 1
    cube[4, 5] += 30.0
    own = tmp_path / "hydice-urban.mat"  # not the benchmark scene: its path names the row
    sio.savemat(own, {"img": cube, "gt": gt})
    rows = run(["rx", "rx"], [str(own), str(own)])
    assert [(r.scene, r.method) for r in rows] == [(str(own), "rx")]
    mean = tmp_path / "mean.mat"  # its stem would read as the mean row of tables and picture
    sio.savemat(mean, {"img": cube, "gt": gt})
    assert [r.scene for r in run(["rx"], [str(mean)])] == [str(mean)]


def test_unlabelled_truth_pixels_are_left_out_as_evaluate_leaves_them(tmp_path, capsys):
    import warnings

    import numpy as np
    import scipy.io as sio

    from hsad import detectors
    from hsad.outputs.benchmark import run
    from hsad.outputs.metrics import evaluate

    rng = np.random.default_rng(4)
    cube = rng.normal(100.0, 5.0, (20, 24, 10))
    gt = np.zeros((20, 24))
    gt[4, 5] = gt[12, 20] = gt[15, 3] = 1
    cube[gt == 1] += 30.0
    cube[0:3] += rng.normal(0.0, 20.0, (3, 24, 10))  # rows nobody labelled, bright
    gt[0:3] = np.nan
    sio.savemat(tmp_path / "partly.mat", {"data": cube, "map": gt})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "count as background" warning on this path
        rows = run(["rx"], [str(tmp_path / "partly.mat")])
    scores = detectors.get("rx").fit_score(cube).values
    assert rows[0].auc_df == pytest.approx(evaluate(scores, gt)["auc_df"], abs=1e-12)
    assert rows[0].auc_df != pytest.approx(evaluate(scores, np.nan_to_num(gt))["auc_df"])


def _labelled(folder, name, seed=5, **changes):
    """A small labelled MAT scene of one's own (two implanted anomalies)."""
    import numpy as np
    import scipy.io as sio

    rng = np.random.default_rng(seed)
    cube = rng.normal(100.0, 5.0, (20, 24, 10))
    gt = np.zeros((20, 24), np.uint8)
    gt[4, 5] = gt[12, 20] = 1
    cube[gt == 1] += 30.0
    variables = {"img": cube, "gt": gt, **changes}
    path = folder / name
    sio.savemat(path, variables)
    return path


def test_every_scene_is_checked_before_the_first_detector_runs(tmp_path, capsys):
    good = _labelled(tmp_path, "good.mat")
    import numpy as np

    bad = {"all_anomaly.mat": ({"gt": np.ones((20, 24), np.uint8)},
                               "the ground truth has no background pixel"),
           "small_truth.mat": ({"gt": np.zeros((8, 9), np.uint8)},
                               "ground truth 'gt' is 8x9, not 20x24 like the cube")}
    for name, (changes, words) in bad.items():
        path = _labelled(tmp_path, name, **changes)
        code, out, err = run_cli(["benchmark", "-m", "rx", "--datasets", f"{good},{path}",
                                  "-o", tmp_path / "t.md"], capsys)
        assert code == 2 and err.startswith(f"error: {path}: {words}"), err
        assert err.count("\n") == 1
        assert "AUC(D,F)=" not in err and out == ""  # no detector ran
        assert not (tmp_path / "t.md").exists()
    code, _, err = run_cli(["benchmark", "-m", "rx", "--datasets", f"{good},nope.mat"], capsys)
    assert code == 2 and "unknown scene 'nope.mat'" in err and "AUC(D,F)=" not in err
    (tmp_path / "s.hdr").write_text("ENVI\nsamples = 2\nlines = 2\nbands = 1\n"
                                    "data type = 4\ninterleave = bsq\n")
    (tmp_path / "s.img").write_bytes(bytes(16))
    code, _, err = run_cli(["benchmark", "-m", "rx", "--datasets", tmp_path / "s.hdr"], capsys)
    assert code == 2 and "hsad benchmark takes labelled MAT files" in err


def test_a_scene_a_detector_fails_on_is_left_out_and_named(tmp_path, capsys):
    import numpy as np

    good = _labelled(tmp_path, "good.mat")
    cube = np.random.default_rng(6).normal(100.0, 5.0, (20, 24, 10))
    cube[:, :, 3] = np.nan  # a band without data: rx refuses the scene
    gt = np.zeros((20, 24), np.uint8)
    gt[2, 2] = 1
    broken = _labelled(tmp_path, "broken.mat", img=cube, gt=gt)
    table = tmp_path / "t.csv"
    code, out, err = run_cli(["benchmark", "-m", "rx", "--datasets", f"{broken},{good}",
                              "--csv", table], capsys)
    assert code == 2
    assert [r["scene"] for r in csv.DictReader(table.open())] == ["good"]
    assert "error: broken: rx: the cube has no valid pixel" in err
    assert err.rstrip().endswith("(left out of the tables)")
    code, _, err = run_cli(["benchmark", "-m", "rx", "--datasets", broken], capsys)
    assert code == 2 and err.startswith("error: no scene could be run: broken: rx:")


def test_a_scene_given_twice_runs_once_and_row_names_stay_distinct(tmp_path, monkeypatch):
    from hsad.outputs.benchmark import run

    own = _labelled(tmp_path, "own1.mat")
    monkeypatch.chdir(tmp_path)
    rows = run(["rx"], ["own1.mat", "./own1.mat", str(own)])
    assert [r.scene for r in rows] == ["own1"]
    other = tmp_path / "sub"
    other.mkdir()
    _labelled(other, "own1", seed=7)  # no extension: its stem is "own1" too
    monkeypatch.chdir(other)
    rows = run(["rx"], [str(own), "own1"])
    assert len({r.scene for r in rows}) == 2 and rows[0].scene == "own1"


def test_empty_lists_and_a_method_in_capitals(tmp_path, capsys):
    own = _labelled(tmp_path, "own.mat")
    assert run_cli(["benchmark", "-m", "rx", "--datasets", ","], capsys)[2] == \
        "error: no scene given (--datasets)\n"
    assert run_cli(["benchmark", "-m", ",", "--datasets", own], capsys)[2] == \
        "error: no method given (-m)\n"
    code, out, err = run_cli(["benchmark", "-m", "LRX", "-p", "LRX.inner=3", "-p",
                              "lrx.outer=9", "--datasets", own], capsys)
    assert code == 0, err
    assert "| own |" in out


def test_each_method_warms_up_once_on_a_corner_untimed(tmp_path, monkeypatch):
    """The first scene's seconds held what a method's first run imports (dask.distributed
    for the client lookup: RX 0.09–0.14 s on the first of two copies of a scene, 0.05 s on
    the second). Each method now runs once, untimed and unreported, on a 32 × 32 corner of
    the first scene, in silence (lrx's outer window here wider than the corner), and the
    scenes are run as before."""
    import numpy as np
    import scipy.io as sio

    from hsad.detectors.lrx import LocalRX
    from hsad.detectors.rx import GlobalRX
    from hsad.outputs.benchmark import WARM_UP, run

    rng = np.random.default_rng(4)
    files = []
    for name, shape in (("wide", (40, 50)), ("small", (36, 44))):
        cube = rng.normal(100.0, 5.0, (*shape, 8))
        gt = np.zeros(shape, np.uint8)
        gt[7, 9] = 1
        cube[7, 9] += 40.0
        sio.savemat(tmp_path / f"{name}.mat", {"img": cube, "gt": gt})
        files.append(str(tmp_path / f"{name}.mat"))
    fitted: list[tuple[str, tuple[int, int]]] = []
    for cls in (GlobalRX, LocalRX):
        original = cls.fit

        def recording(self, cube, *args, _original=original, **kwargs):
            fitted.append((self.name, tuple(cube.shape[:2])))
            return _original(self, cube, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", recording)
    rows = run(["rx", "lrx"], files, {"lrx": {"inner": 3, "outer": 35}})
    corner = (WARM_UP, WARM_UP)
    assert fitted == [("rx", corner), ("rx", (40, 50)), ("lrx", corner), ("lrx", (40, 50)),
                      ("rx", (36, 44)), ("lrx", (36, 44))]
    assert [(r.scene, r.method) for r in rows] == [("wide", "rx"), ("wide", "lrx"),
                                                   ("small", "rx"), ("small", "lrx")]
    assert all(r.auc_df > 0.9 and r.seconds > 0 for r in rows)


def test_overwrite_never_replaces_a_scene_of_the_run(tmp_path, capsys):
    """``--overwrite`` let ``--csv`` replace the labelled scene it had just read (a MAT file
    named scene.txt): inputs are never replaced, as the option's help says."""
    import numpy as np
    import scipy.io as sio

    cube = np.random.default_rng(5).normal(100.0, 5.0, (20, 24, 8))
    gt = np.zeros((20, 24), np.uint8)
    gt[3, 4] = 1
    scene = tmp_path / "scene.txt"
    with open(scene, "wb") as f:
        sio.savemat(f, {"img": cube, "gt": gt})
    before = scene.read_bytes()
    code, out, err = run_cli(["benchmark", "-m", "rx", "--datasets", scene, "--csv", scene,
                              "--overwrite"], capsys)
    assert code == 2 and "--csv would overwrite the input" in err and out == "", err
    assert scene.read_bytes() == before
