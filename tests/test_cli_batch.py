"""``hsad detect`` on several scenes: outputs named per scene by ``{stem}``, every plan
checked before the first scene, a failed scene reported while the others go on."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
from cli_helpers import one_error, run_cli

from hsad import synthetic
from hsad.cli.batch import stem_of
from hsad.errors import ParameterError


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three small labelled ENVI scenes (their truths as GeoTIFFs named by stem)."""
    folder = tmp_path_factory.mktemp("lines")
    out = []
    for i, name in enumerate(("line_a", "line_b", "line_c")):
        files = synthetic.write_scene(synthetic.make_scene(rows=24, cols=30, bands=12,
                                                           seed=i), folder, name=name)
        out.append(files)
    return out


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.crs, src.transform


def test_each_scene_writes_what_it_writes_alone(scenes, tmp_path, capsys):
    cubes = [s["cube"] for s in scenes]
    code, out, err = run_cli(["detect", *cubes, "-m", "rx", "-o", tmp_path / "b" / "{stem}_rx.tif",
                              "--mask", tmp_path / "b" / "{stem}_mask.tif", "--polygons",
                              tmp_path / "b" / "{stem}.gpkg"], capsys)
    assert code == 0, err
    assert "scene 1/3:" in out and "scene 3/3:" in out and "3 of 3 scenes done" in out
    for cube in cubes:
        stem = stem_of(cube)
        code, _, err = run_cli(["detect", cube, "-m", "rx", "-o", tmp_path / f"{stem}.tif",
                                "--mask", tmp_path / f"{stem}_m.tif"], capsys)
        assert code == 0, err
        batch, alone = _read(tmp_path / "b" / f"{stem}_rx.tif"), _read(tmp_path / f"{stem}.tif")
        np.testing.assert_array_equal(batch[0], alone[0])
        assert batch[1:] == alone[1:]
        np.testing.assert_array_equal(_read(tmp_path / "b" / f"{stem}_mask.tif")[0],
                                      _read(tmp_path / f"{stem}_m.tif")[0])
        assert (tmp_path / "b" / f"{stem}.gpkg").is_file()


def test_a_failed_scene_is_reported_and_the_others_go_on(scenes, tmp_path, capsys):
    missing = scenes[0]["cube"].with_name("gone.img")
    code, out, err = run_cli(["detect", scenes[0]["cube"], missing, scenes[1]["cube"], "-m",
                              "rx", "-o", tmp_path / "{stem}.tif"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: {missing}: no such file"]
    assert f"2 of 3 scenes done; failed: {missing}" in out
    assert sorted(p.name for p in tmp_path.glob("*.tif")) == ["line_a.tif", "line_b.tif"]


def test_each_scene_takes_its_own_truth_and_one_model(scenes, tmp_path, capsys):
    model = tmp_path / "rx.hsad"
    code, _, err = run_cli(["train", scenes[0]["cube"], "-m", "rx", "-o", model], capsys)
    assert code == 0, err
    truth = scenes[0]["truth"].parent / "{stem}_truth.tif"
    for s in scenes:
        s["truth"].rename(s["truth"].parent / f"{stem_of(s['cube'])}_truth.tif")
    try:
        code, out, err = run_cli(["detect", *(s["cube"] for s in scenes), "--model", model,
                                  "-o", tmp_path / "{stem}.tif", "--truth", truth], capsys)
    finally:
        for s in scenes:
            (s["truth"].parent / f"{stem_of(s['cube'])}_truth.tif").rename(s["truth"])
    assert code == 0, err
    assert out.count("AUC(D,F) =") == 3  # each scene against its own truth


@pytest.mark.parametrize("extra, message", [
    ([], "3 scenes need an output named per scene: put {stem} in -o"),
    (["--mask", "m.tif"], "--mask m.tif: every scene would write it; put {stem} in it"),
])
def test_outputs_not_named_per_scene_are_refused_before_any_work(scenes, tmp_path, capsys,
                                                                  extra, message):
    output = tmp_path / ("{stem}.tif" if extra else "one.tif")
    line = one_error(["detect", *(s["cube"] for s in scenes), "-m", "rx", "-o", output,
                      *extra], capsys)
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_two_scenes_of_one_stem_or_an_existing_output_are_refused_first(scenes, tmp_path,
                                                                        capsys):
    twin = tmp_path / "copy"
    twin.mkdir()
    for part in ("line_a.img", "line_a.hdr"):
        (twin / part).write_bytes((scenes[0]["cube"].parent / part).read_bytes())
    line = one_error(["detect", scenes[0]["cube"], twin / "line_a.img", "-m", "rx", "-o",
                      tmp_path / "out" / "{stem}.tif"], capsys)
    assert "would both write" in line and "(one stem, 'line_a')" in line
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "line_c.tif").write_bytes(b"kept")
    line = one_error(["detect", *(s["cube"] for s in scenes), "-m", "rx", "-o",
                      tmp_path / "out" / "{stem}.tif"], capsys)
    assert line.endswith("line_c.tif: exists; give --overwrite to replace it")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["line_c.tif"]


@pytest.mark.parametrize("path, stem", [
    ("lines/f180601t01p00r06_rfl.hdr", "f180601t01p00r06_rfl"),
    ("lines/scene.img", "scene"), ("lines/scene.img.hdr", "scene"), ("scene", "scene"),
    ("f.v1_rfl_subset", "f.v1_rfl_subset"), ("f.v1_rfl_subset.hdr", "f.v1_rfl_subset"),
    ("flight.001", "flight.001"), ("x.TIFF", "x"), ("PRS_L2D.he5", "PRS_L2D"),
    ("S2A.2020.tif", "S2A.2020"), (".hidden", ".hidden"),
    ("ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z",
     "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"),
])
def test_a_scenes_stem_is_its_name_without_extension(path, stem):
    assert stem_of(path) == stem


def test_a_folder_given_as_dot_is_named_by_the_folder(tmp_path, monkeypatch):
    product = tmp_path / "ENMAP01-____L2A-DT1"
    product.mkdir()
    monkeypatch.chdir(product)
    assert stem_of(".") == stem_of("./") == "ENMAP01-____L2A-DT1"


def test_an_output_that_is_another_scene_of_the_batch_is_refused(tmp_path, capsys):
    """x.tif's map -o {stem}_rx.tif --overwrite would have replaced the scene x_rx.tif
    before it was read."""
    from hsad.io.geotiff_writer import write_geotiff_cube

    cube = synthetic.make_scene(rows=24, cols=30, bands=8, seed=1).cube
    for name in ("x.tif", "x_rx.tif"):
        write_geotiff_cube(cube, tmp_path / name)
    before = (tmp_path / "x_rx.tif").read_bytes()
    line = one_error(["detect", tmp_path / "x.tif", tmp_path / "x_rx.tif", "-m", "rx", "-o",
                      tmp_path / "{stem}_rx.tif", "--overwrite"], capsys)
    assert "-o would overwrite the input" in line and line.endswith("even with --overwrite")
    assert (tmp_path / "x_rx.tif").read_bytes() == before


def test_a_scenes_input_is_no_other_scenes_output(scenes, tmp_path, capsys):
    """Scene a's mask, named {stem}x_gt.tif, was scene ax's truth: written over it, then
    used to score ax."""
    from shutil import copyfile

    for stem, s in (("a", scenes[0]), ("ax", scenes[1])):
        for part in ("img", "hdr"):
            copyfile(s["cube"].with_suffix(f".{part}"), tmp_path / f"{stem}.{part}")
        copyfile(s["truth"], tmp_path / f"{stem}_gt.tif")
    before = (tmp_path / "ax_gt.tif").read_bytes()
    line = one_error(["detect", tmp_path / "a.img", tmp_path / "ax.img", "-m", "rx", "-o",
                      tmp_path / "out" / "{stem}.tif", "--truth", tmp_path / "{stem}_gt.tif",
                      "--mask", tmp_path / "{stem}x_gt.tif", "--overwrite"], capsys)
    assert "--mask would overwrite the input" in line and "ax_gt.tif" in line
    assert (tmp_path / "ax_gt.tif").read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_side_files_and_common_errors_fail_before_the_first_scene(scenes, tmp_path, capsys):
    cubes = [s["cube"] for s in scenes]
    (tmp_path / "line_b.qml").write_text("a style of an earlier run")
    line = one_error(["detect", *cubes, "-m", "rx", "-o", tmp_path / "{stem}.tif"], capsys)
    assert line.endswith("line_b.qml: exists; give --overwrite to replace it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line_b.qml"]
    for args, message in ((["-m", "nosuch"], "unknown method 'nosuch'"),
                          (["-m", "rx", "--memory-limit", "abc"], "memory"),
                          (["--model", tmp_path / "{stem}.hsad"], "one file for every scene"),
                          (["-m", "rx", "--png", tmp_path / "{stem}.jpg"], "--png writes"),
                          # a parameter that needs no scene to refuse: before the first
                          (["-m", "crd", "-p", "lam=abc"], "crd: lam must be a number"),
                          (["-m", "lrx", "-p", "inner=30"], "lrx: inner must be an odd")):
        line = one_error(["detect", *cubes, "-o", tmp_path / "{stem}.tif", *args], capsys)
        assert message in line  # once, not once per scene


def test_one_scene_named_twice_runs_once(scenes, tmp_path, capsys):
    cube = scenes[0]["cube"]
    code, out, err = run_cli(["detect", cube, cube.with_suffix(".hdr"), f"{cube.parent}/./"
                              f"{cube.name}", "-m", "rx", "-o", tmp_path / "one.tif"], capsys)
    assert code == 0, err
    assert "scene 1/" not in out and (tmp_path / "one.tif").is_file()


def test_a_scene_out_of_memory_fails_alone_and_warnings_name_their_scene(
        scenes, tmp_path, capsys, monkeypatch):
    from hsad.cli import detect

    real = detect._detect_one

    def one(scene, **options):
        if options.get("check_only"):
            return real(scene, **options)
        if scene == str(scenes[0]["cube"]):
            raise MemoryError
        if scene == str(scenes[1]["cube"]):
            import warnings

            warnings.warn("a warning of this scene", UserWarning, stacklevel=1)
            warnings.warn(f"{scene}: a warning that names it", UserWarning, stacklevel=1)
        if scene == str(scenes[2]["cube"]):  # an error that names no file
            raise ParameterError("fewer than 2 valid pixels: no statistics to fuse")
        return real(scene, **options)

    monkeypatch.setattr(detect, "_detect_one", one)
    code, out, err = run_cli(["detect", *(s["cube"] for s in scenes), "-m", "rx", "-o",
                              tmp_path / "{stem}.tif"], capsys)
    assert code == 2
    assert f"error: {scenes[0]['cube']}: out of memory" in err
    assert f"warning: {scenes[1]['cube']}: a warning of this scene" in err
    # named once: a message that leads with its scene keeps its words
    assert f"warning: {scenes[1]['cube']}: a warning that names it" in err
    assert f"error: {scenes[2]['cube']}: fewer than 2 valid pixels" in err
    assert "1 of 3 scenes done" in out


def test_a_header_is_one_scene_with_the_data_file_it_describes_only(scenes, tmp_path):
    """x.hdr (x.img's header) was merged with x.bil, which has its own x.bil.hdr: one of two
    scenes was dropped without a word."""
    from shutil import copyfile

    from hsad.cli.batch import distinct_scenes

    for name, source in (("x.img", scenes[0]["cube"]), ("x.bil", scenes[1]["cube"])):
        copyfile(source, tmp_path / name)
        copyfile(source.with_suffix(".hdr"), tmp_path / (name.replace(".img", "") + ".hdr"))
    x_img, x_hdr, x_bil = (str(tmp_path / n) for n in ("x.img", "x.hdr", "x.bil"))
    assert (tmp_path / "x.bil.hdr").is_file()
    assert distinct_scenes([x_bil, x_hdr]) == (x_bil, x_hdr)
    assert distinct_scenes([x_hdr, x_img, x_bil]) == (x_hdr, x_bil)
    tif = tmp_path / "x.tif"  # a GeoTIFF beside a namesake header: another scene
    copyfile(scenes[0]["truth"], tif)
    assert distinct_scenes([x_hdr, str(tif)]) == (x_hdr, str(tif))


def test_two_scenes_sharing_a_style_file_are_refused_first(scenes, tmp_path, capsys):
    """Scene a's mask ax.tiff has the style ax.qml, scene ax's map's style too."""
    from shutil import copyfile

    for stem, s in (("a", scenes[0]), ("ax", scenes[1])):
        for part in ("img", "hdr"):
            copyfile(s["cube"].with_suffix(f".{part}"), tmp_path / f"{stem}.{part}")
    line = one_error(["detect", tmp_path / "a.img", tmp_path / "ax.img", "-m", "rx", "-o",
                      tmp_path / "o" / "{stem}.tif", "--mask", tmp_path / "o" / "{stem}x.tiff"],
                     capsys)
    assert "would both write" in line and line.split(": ")[1].endswith("ax.qml")
    assert not (tmp_path / "o").exists()


def test_an_interrupted_batch_names_the_scenes_done(capsys):
    from hsad.cli.batch import run_jobs

    def one(scene, **_):
        if scene == "c.img":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs([("a.img", {}), ("b.img", {}), ("c.img", {})], one)
    assert "stopped at scene 3/3; done: a.img, b.img" in capsys.readouterr().err


def test_an_empty_output_path_is_refused(scenes, capsys):
    assert "-o is an empty path" in one_error(["detect", scenes[0]["cube"], "-m", "rx", "-o",
                                               ""], capsys)


def test_a_batch_resumed_skips_the_scenes_done(scenes, tmp_path, capsys):
    cubes = [s["cube"] for s in scenes]
    out = ["-o", tmp_path / "{stem}.tif", "--mask", tmp_path / "{stem}_m.tif"]
    code, _, err = run_cli(["detect", cubes[0], "-m", "rx", *out], capsys)
    assert code == 0, err
    done = (tmp_path / "line_a.tif").stat().st_mtime_ns
    (tmp_path / "line_b.tif").write_bytes(b"half a scene's outputs: not done")
    code, stdout, err = run_cli(["detect", *cubes, "-m", "rx", *out, "--skip-existing"],
                                capsys)
    # a scene half done is neither skipped nor replaced: named, left out; the others run
    assert code == 2
    assert f"error: {cubes[1]}: 1 of its 4 outputs exist ({tmp_path / 'line_b.tif'})" in err
    assert (tmp_path / "line_b.tif").read_bytes() == b"half a scene's outputs: not done"
    assert (tmp_path / "line_c.tif").is_file()
    # the summary counts the scene skipped and names the one left out (it had said only
    # "1 of 1 scenes done" beside exit status 2)
    assert stdout.strip().splitlines()[-1] == (
        f"1 of 1 scenes done; skipped as done before: 1; left out (the errors above say "
        f"why): {cubes[1]}")
    code, stdout, _ = run_cli(["detect", cubes[0], cubes[1], "-m", "rx", *out,
                               "--skip-existing"], capsys)
    assert code == 2 and stdout.strip().splitlines()[-1] == (
        f"0 scenes to run; skipped as done before: 1; left out (the errors above say why): "
        f"{cubes[1]}")
    for path in tmp_path.glob("line_c*"):
        path.unlink()
    (tmp_path / "line_b.tif").unlink()
    code, stdout, err = run_cli(["detect", *cubes, "-m", "rx", *out, "--skip-existing"],
                                capsys)
    assert code == 0, err
    assert f"skipped {cubes[0]}: its outputs exist" in stdout and "2 of 2 scenes done" in stdout
    assert (tmp_path / "line_a.tif").stat().st_mtime_ns == done
    assert (tmp_path / "line_c_m.tif").is_file()
    code, stdout, _ = run_cli(["detect", *cubes, "-m", "rx", *out, "--skip-existing"], capsys)
    assert code == 0 and stdout.count("skipped") == 3
    assert "not both" in one_error(["detect", *cubes, "-m", "rx", *out, "--skip-existing",
                                    "--overwrite"], capsys)


def test_maps_of_an_earlier_run_met_by_a_glob_are_skipped_not_detected(scenes, tmp_path,
                                                                        capsys):
    """A cron job's `detect tl/*.tif -o 'tl/{stem}_rx.tif' --skip-existing` ran RX on its
    own maps from the second run on (a_rx_rx.tif, then a_rx_rx_rx.tif …), exit status 0."""
    folder = tmp_path / "tl"
    for s in scenes[:2]:
        assert run_cli(["convert", s["cube"], folder / f"{stem_of(s['cube'])}.tif"],
                       capsys)[0] == 0
    args = ["-m", "rx", "-o", folder / "{stem}_rx.tif", "--mask", folder / "{stem}_m.tif",
            "--skip-existing"]
    assert run_cli(["detect", *sorted(folder.glob("*.tif")), *args], capsys)[0] == 0
    code, out, err = run_cli(["detect", *sorted(folder.glob("*.tif")), *args], capsys)
    assert code == 0, err
    assert err.count("a map hsad detect wrote (score), not a scene: skipped") == 2
    assert err.count("a map hsad detect wrote (mask), not a scene: skipped") == 2
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".tif") == [
        "line_a.tif", "line_a_m.tif", "line_a_rx.tif", "line_b.tif", "line_b_m.tif",
        "line_b_rx.tif"]
    code, _, err = run_cli(["detect", folder / "line_a_rx.tif", "-m", "rx", "-o",
                            tmp_path / "x.tif"], capsys)  # alone: said, and detected
    assert code == 0 and "a map hsad detect wrote (score), not a scene" in err


def test_a_scene_another_run_is_making_is_skipped_when_its_turn_comes(scenes, tmp_path,
                                                                     capsys):
    """Two overlapping runs of one resumed batch (cron) both computed every scene, and the
    later one failed each with "appeared while hsad was writing it" (exit 2)."""
    from hsad.cli.batch import scene_claim

    out = tmp_path / "o"
    cubes = [s["cube"] for s in scenes]
    args = ["-m", "rx", "-o", out / "{stem}_rx.tif", "--skip-existing"]
    with scene_claim(out / "line_b_rx.tif") as mine:  # another run holds line_b
        assert mine
        code, stdout, err = run_cli(["detect", *cubes, *args], capsys)
    assert code == 0, err
    assert f"skipped {cubes[1]}: another hsad run is making it" in stdout
    # not counted done (that run may yet stop): "3 of 3 scenes done" hid a lost scene
    assert (f"2 of 3 scenes done; left to another hsad run making them: {cubes[1]}"
            in stdout)
    assert sorted(p.name for p in out.iterdir()) == [
        "line_a_rx.qml", "line_a_rx.tif", "line_c_rx.qml", "line_c_rx.tif"]  # no claims left
    code, stdout, err = run_cli(["detect", *cubes, *args], capsys)  # the other run's turn
    assert code == 0 and "1 of 1 scenes done" in stdout and (out / "line_b_rx.tif").exists()


def test_a_claim_leaves_no_folder_it_made_and_a_hang_up_in_a_batch_stays_one(tmp_path,
                                                                            monkeypatch):
    """A failed scene under --skip-existing left the output folders its claim made; a
    hang-up whose "stopped at scene" line met the closed terminal (EIO) ended as a user
    error (exit 2) instead of 129."""
    import sys

    from hsad.cli.batch import run_jobs, scene_claim

    with scene_claim(tmp_path / "a" / "b" / "x.tif") as mine:
        assert mine and (tmp_path / "a" / "b").is_dir()
    assert list(tmp_path.iterdir()) == []

    class Gone:
        def write(self, text):
            raise OSError(5, "Input/output error")

        def flush(self):
            raise OSError(5, "Input/output error")

    def hung_up(scene, **options):
        monkeypatch.setattr(sys, "stderr", Gone())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs([("a.img", {}), ("b.img", {})], hung_up)


@pytest.mark.parametrize("flag, typo", [("-o", "{stm}"), ("--truth", "{stm}"),
                                        ("-o", "{stem }")])
def test_an_unknown_placeholder_is_refused_before_any_work(scenes, tmp_path, capsys, flag,
                                                           typo):
    """With one scene, ``-o out/{stm}_x.tif`` wrote a file named ``{stm}_x.tif``."""
    args = {"-o": tmp_path / "{stem}_x.tif", "--truth": "{stem}_truth.tif"}
    args[flag] = str(args[flag]).replace("{stem}", typo)
    err = one_error(["detect", scenes[0]["cube"], "-m", "rx", "-o", args["-o"],
                     "--truth", args["--truth"]], capsys)
    assert f"{flag} " in err and f"unknown placeholder {typo} (the one there is: {{stem}})" in err
    assert not list(tmp_path.iterdir())


def test_the_files_written_are_named_in_words(scenes, tmp_path, capsys):
    code, stdout, err = run_cli(["detect", scenes[0]["cube"], "-m", "rx", "-o",
                                 tmp_path / "x.tif", "--mask", tmp_path / "m.tif"], capsys)
    assert code == 0, err
    assert f"wrote style mask: {tmp_path / 'm.qml'}" in stdout and "style:mask" not in stdout


def test_a_scene_whose_overwrite_did_not_end_is_not_counted_done(scenes, tmp_path, capsys,
                                                                  monkeypatch):
    """A batch stopped midway through --overwrite left one scene's new map beside its old
    mask, and --skip-existing then counted that scene done."""
    import hsad.io.geotiff_writer as writer
    from hsad.errors import OutputError

    cubes = [s["cube"] for s in scenes[:2]]
    out = ["-o", tmp_path / "{stem}.tif", "--mask", tmp_path / "{stem}_m.tif"]
    assert run_cli(["detect", *cubes, "-m", "rx", *out], capsys)[0] == 0
    real = writer.write_mask

    def fails_on_b(mask, path, *args, **kwargs):
        if "line_b" in str(path):
            raise OutputError("disk full", path)
        return real(mask, path, *args, **kwargs)

    monkeypatch.setattr(writer, "write_mask", fails_on_b)
    code, _, err = run_cli(["detect", *cubes, "-m", "rx", "--overwrite", *out,
                            "--far", "0.01"], capsys)
    assert code == 2 and "disk full" in err
    record = tmp_path / ".line_b.tif.hsad-unfinished"
    assert record.is_file() and not (tmp_path / ".line_a.tif.hsad-unfinished").exists()
    monkeypatch.setattr(writer, "write_mask", real)
    code, stdout, err = run_cli(["detect", *cubes, "-m", "rx", *out, "--skip-existing"],
                                capsys)
    assert code == 2 and f"skipped {cubes[0]}: its outputs exist" in stdout
    assert (f"error: {cubes[1]}: an earlier run replacing its outputs (--overwrite) did not "
            "end") in err
    code, _, err = run_cli(["detect", cubes[1], "-m", "rx", *out, "--overwrite"], capsys)
    assert code == 0, err
    assert not record.exists()
    assert run_cli(["detect", *cubes, "-m", "rx", *out, "--skip-existing"], capsys)[0] == 0


def test_an_overwrite_that_fails_before_replacing_anything_leaves_no_record(scenes, tmp_path,
                                                                           capsys):
    out = ["-o", tmp_path / "a.tif"]
    assert run_cli(["detect", scenes[0]["cube"], "-m", "rx", *out], capsys)[0] == 0
    code, _, _ = run_cli(["detect", scenes[0]["cube"], "-m", "rx", *out, "--overwrite",
                          "--bands", "90"], capsys)  # fails on reading, before any output
    assert code == 2 and not (tmp_path / ".a.tif.hsad-unfinished").exists()
    assert run_cli(["detect", scenes[0]["cube"], "-m", "rx", *out, "--skip-existing"],
                   capsys)[0] == 0


def test_the_unfinished_record_is_written_where_the_map_goes_into_a_new_folder(tmp_path):
    """A run killed (SIGKILL) after writing its map into a new folder, its old mask not yet
    replaced, left no record: the folder did not exist when the record was written, and
    --skip-existing then counted the scene done."""
    from hsad.cli.batch import unfinished_record
    from hsad.cli.outputs import plan_outputs

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a_m.tif").write_bytes(b"an earlier run's mask")
    output = tmp_path / "o2" / "a.tif"
    plan = plan_outputs([("-o", output, "raster"), ("--mask", tmp_path / "m" / "a_m.tif",
                                                    "raster")],
                        overwrite=True, record=unfinished_record(output))
    with pytest.raises(KeyError), plan:
        assert unfinished_record(output).is_file()  # as a kill here would leave it
        raise KeyError("failed before replacing anything")
    assert not unfinished_record(output).exists() and not (tmp_path / "o2").exists()


def test_a_claim_a_killed_run_left_goes_with_the_next_run_that_makes_the_scene(scenes,
                                                                              tmp_path,
                                                                              capsys):
    """A --skip-existing batch killed (SIGKILL) mid-scene left `.<map>.hsad-claim`, and an
    --overwrite run that then made the scene whole kept it; a claim another run holds
    stays."""
    from hsad.cli.batch import scene_claim

    out = tmp_path / "o"
    out.mkdir()
    stale = out / ".line_a_rx.tif.hsad-claim"
    stale.write_text("")  # as the killed run left it: no lock held
    cubes = [s["cube"] for s in scenes[:2]]
    with scene_claim(out / "line_b_rx.tif") as mine:  # line_b's is held: it stays
        assert mine
        code, _, err = run_cli(["detect", *cubes, "-m", "rx", "-o", out / "{stem}_rx.tif"],
                               capsys)
        assert code == 0, err
        assert (out / ".line_b_rx.tif.hsad-claim").exists()
    assert not stale.exists()


def test_a_config_or_model_written_over_during_a_batch_reaches_none_of_its_scenes(
        scenes, tmp_path, capsys, monkeypatch):
    """The config was read again for each scene: rewritten after the first, it gave the
    later scenes other parameters and another threshold rule, exit 0; a model file
    replaced mid-batch scored the later scenes with the other model."""
    import hsad.cli.detect as detect

    cubes = [s["cube"] for s in scenes]
    config = tmp_path / "live.yaml"
    config.write_text("method: lrx\nparams: {inner: 3, outer: 7}\ncontamination: 0.01\n")
    other = tmp_path / "other.hsad"
    model = tmp_path / "model.hsad"
    assert run_cli(["train", cubes[1], "-m", "rx", "-o", other, "-q"], capsys)[0] == 0
    assert run_cli(["train", cubes[0], "-m", "rx", "-o", model, "-q"], capsys)[0] == 0
    first = model.read_bytes()
    one_scene = detect._detect_one

    def then_rewrite(scene, **filled):
        done = one_scene(scene, **filled)
        config.write_text("method: lrx\nparams: {inner: 5, outer: 11}\nfar: 0.05\n")
        model.write_bytes(other.read_bytes())
        return done

    monkeypatch.setattr(detect, "_detect_one", then_rewrite)
    code, out, err = run_cli(["detect", *cubes, "-c", config, "-o",
                              tmp_path / "c" / "{stem}.tif"], capsys)
    assert code == 0, err
    assert out.count("(contamination 0.01 (score quantile))") == 3 and "far" not in out
    config.write_text("method: lrx\nparams: {inner: 3, outer: 7}\ncontamination: 0.01\n")
    model.write_bytes(first)
    code, out, err = run_cli(["detect", *cubes, "--model", model, "-o",
                              tmp_path / "m" / "{stem}.tif"], capsys)
    assert code == 0, err
    monkeypatch.setattr(detect, "_detect_one", one_scene)
    (tmp_path / "first.hsad").write_bytes(first)
    for cube in cubes:  # each map as the first model scores its scene alone
        stem = stem_of(cube)
        assert run_cli(["detect", cube, "--model", tmp_path / "first.hsad", "-o",
                        tmp_path / f"{stem}.tif"], capsys)[0] == 0
        np.testing.assert_array_equal(_read(tmp_path / "m" / f"{stem}.tif")[0],
                                      _read(tmp_path / f"{stem}.tif")[0])


def test_a_batch_resumed_with_other_settings_names_the_scenes_made_otherwise(scenes, tmp_path,
                                                                           capsys):
    """`--skip-existing` skipped every scene of a batch made with `lrx -p inner=3` when it
    was resumed with `-p inner=5` or `-m rx`: maps of two settings in one folder, exit 0."""
    cubes = [s["cube"] for s in scenes[:2]]
    out = ["-o", tmp_path / "{stem}.tif"]
    code, _, err = run_cli(["detect", *cubes, "-m", "lrx", "-p", "inner=3", "-p", "outer=7",
                            *out], capsys)
    assert code == 0, err
    for other, said in ([["-m", "lrx", "-p", "inner=5", "-p", "outer=7"], "inner=3, now 5"],
                        [["-m", "rx"], "method lrx, now rx"]):
        code, stdout, err = run_cli(["detect", *cubes, *other, *out, "--skip-existing"],
                                    capsys)
        assert code == 2
        assert err.strip().splitlines() == [
            f"error: {c}: its outputs exist, made with other settings ({said}): run it with "
            "--overwrite to redo it with these" for c in cubes]
    code, stdout, _ = run_cli(["detect", *cubes, "-m", "lrx", "-p", "inner=3", "-p",
                               "outer=7", *out, "--skip-existing"], capsys)
    assert code == 0 and stdout.count("its outputs exist") == 2  # the same settings: done
    rx_out = ["-o", tmp_path / "{stem}_rx.tif"]
    assert run_cli(["detect", *cubes, "-m", "rx", *rx_out], capsys)[0] == 0
    model = tmp_path / "rx.hsad"  # a model now where the maps were fitted on their scenes
    assert run_cli(["train", cubes[0], "-m", "rx", "-o", model, "-q"], capsys)[0] == 0
    code, _, err = run_cli(["detect", *cubes, "--model", model, *rx_out, "--skip-existing"],
                           capsys)
    assert code == 2 and f"(model none, now {model})" in err


def test_a_batch_resumed_with_another_seed_or_fusion_names_the_scenes_made_otherwise(
        scenes, tmp_path, capsys):
    """`--skip-existing` compared `-p` and the config, not `--seed` and `--fusion`: a batch
    resumed with `--seed 2` or `--fusion none` kept the maps of `--seed 1`, exit 0."""
    cube = scenes[0]["cube"]
    out = ["-o", tmp_path / "{stem}.tif"]
    tiny = ["-m", "ae", "-p", "epochs=1", "-p", "hidden=8", "-p", "sample_size=200"]
    assert run_cli(["detect", cube, *tiny, "--seed", "1", *out], capsys)[0] == 0
    for other, said in ((["--seed", "2"], "--seed (seed=1), now 2"),
                        (["--seed", "1", "--fusion", "none"], "--fusion (")):
        code, _, err = run_cli(["detect", cube, *tiny, *other, *out, "--skip-existing"],
                               capsys)
        assert code == 2 and f"made with other settings ({said}" in err, err
    code, stdout, _ = run_cli(["detect", cube, *tiny, "--seed", "1", *out, "--skip-existing"],
                              capsys)
    assert code == 0 and "its outputs exist" in stdout  # the same settings: done


def test_a_batch_resumed_on_other_data_names_the_option_that_chose_them(scenes, tmp_path,
                                                                       capsys):
    """A batch made of `--srcwin 0 0 16 16 --bands 0:6` and resumed with another window or
    band set skipped every scene with exit 0, its maps of the first data kept; the map's
    `hsad_selection` tag records the options that chose the data, and `--skip-existing`
    compares them (also `--apply-scale` and `--nodata`). Maps made before the tag are not
    compared."""
    from hsad.outputs.provenance import read_provenance

    cubes = [s["cube"] for s in scenes[:2]]
    out = ["-o", tmp_path / "{stem}.tif"]
    first = ["--srcwin", "0", "0", "16", "16", "--bands", "0:6"]
    assert run_cli(["detect", *cubes, "-m", "rx", *first, *out], capsys)[0] == 0
    tag = read_provenance(tmp_path / f"{stem_of(cubes[0])}.tif")["hsad_selection"]
    assert json.loads(tag) == {"srcwin": [0, 0, 16, 16], "band_indices": "0:6"}
    for other, said in ([["--srcwin", "8", "8", "16", "16", "--bands", "0:6"],
                         "--srcwin 0 0 16 16, now 8 8 16 16"],
                        [["--srcwin", "0", "0", "16", "16", "--bands", "6:12"],
                         "--bands 0:6, now 6:12"],
                        [[*first, "--apply-scale"], "--apply-scale off, now on"],
                        [[*first, "--nodata", "-9999"], "--nodata none, now -9999.0"]):
        code, _, err = run_cli(["detect", *cubes, "-m", "rx", *other, *out,
                                "--skip-existing"], capsys)
        assert code == 2, err
        assert err.strip().splitlines() == [
            f"error: {c}: its outputs exist, made with other settings ({said}): run it with "
            "--overwrite to redo it with these" for c in cubes]
    code, stdout, _ = run_cli(["detect", *cubes, "-m", "rx", *first, *out, "--skip-existing"],
                              capsys)
    assert code == 0 and stdout.count("its outputs exist") == 2  # the same data: done
    # --nodata nan: the tag is strict JSON ("nan" as text) and equal to itself, so the
    # batch resumes (NaN != NaN had left every scene out as made otherwise)
    nan_out = ["-o", tmp_path / "nan" / "{stem}.tif", "--nodata", "nan"]
    assert run_cli(["detect", *cubes, "-m", "rx", *nan_out], capsys)[0] == 0
    tag = read_provenance(tmp_path / "nan" / f"{stem_of(cubes[0])}.tif")["hsad_selection"]
    assert json.loads(tag) == {"nodata": "nan"}
    code, stdout, _ = run_cli(["detect", *cubes, "-m", "rx", *nan_out, "--skip-existing"],
                              capsys)
    assert code == 0 and stdout.count("its outputs exist") == 2


def test_a_batch_resumed_does_not_skip_a_scene_whose_output_is_damaged(scenes, tmp_path,
                                                                      capsys):
    """`--skip-existing` took a scene for done when its map had been emptied or cut short
    (a broken copy, a failing disk) and its quicklook too: hsad places its files whole, so
    such a file is named, and the scene left out, instead of skipped in silence."""
    cubes = [s["cube"] for s in scenes]
    out = ["-o", tmp_path / "{stem}.tif", "--png", tmp_path / "{stem}.png"]
    assert run_cli(["detect", *cubes, "-m", "rx", *out], capsys)[0] == 0
    stems = [stem_of(c) for c in cubes]
    (tmp_path / f"{stems[0]}.tif").write_bytes(b"")
    cut = tmp_path / f"{stems[1]}.tif"
    cut.write_bytes(cut.read_bytes()[:1000])
    png = tmp_path / f"{stems[2]}.png"
    png.write_bytes(png.read_bytes()[:200])
    code, stdout, err = run_cli(["detect", *cubes, "-m", "rx", *out, "--skip-existing"],
                                capsys)
    assert code == 2 and "skipped" not in stdout
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0] == (f"error: {cubes[0]}: its output {tmp_path / stems[0]}.tif is empty, so "
                        "the scene is not done: remove the scene's outputs to redo it, or run it "
                        "with --overwrite")
    assert f"its output {cut} is damaged (" in lines[1]
    assert f"its output {png} is cut short (no PNG end)" in lines[2]


def test_a_scene_whose_data_changed_after_its_map_is_said_when_skipped(tmp_path, capsys):
    """A resumed batch had kept the map of a scene rewritten since, in silence (its map's
    tags differ from a fresh run's by the date alone). It is still skipped (a copy made
    without its times looks modified too), with a warning naming the file."""
    files = synthetic.write_scene(synthetic.make_scene(rows=24, cols=30, bands=12, seed=5),
                                  tmp_path, name="scene")
    out = ["-o", tmp_path / "out" / "{stem}.tif"]
    code, _, err = run_cli(["detect", files["cube"], "-m", "rx", *out], capsys)
    assert code == 0, err
    code, stdout, err = run_cli(["detect", files["cube"], "-m", "rx", *out,
                                 "--skip-existing"], capsys)
    assert code == 0 and "skipped" in stdout and not err  # untouched: nothing to say
    header = files["cube"].with_suffix(".hdr")
    later = header.stat().st_mtime + 120
    os.utime(files["cube"], (later, later))  # the data file rewritten, not the header
    code, stdout, err = run_cli(["detect", header, "-m", "rx", *out, "--skip-existing"],
                                capsys)
    assert code == 0 and f"skipped {header}: its outputs exist" in stdout
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"warning: {header}: {files['cube']} was modified at ")
    assert "after its map was made" in lines[0] and lines[0].endswith(
        "run it with --overwrite if its data changed")
