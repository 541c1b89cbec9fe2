"""benchmarks/implanted_suite.py's protocol: band groups, size plan and draws, and the
corpus backgrounds it reads (skipped, with the reason, where ../shared is absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hsad.cube import make_cube, valid_mask

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import implanted_suite as suite  # noqa: E402

ALL = list(suite.SIZES)


def test_band_count_keeps_ten_valid_pixels_per_band():
    assert suite.band_count(10_000, 207) == 207
    assert suite.band_count(1024, 218) == 102
    assert suite.band_count(100, 425) == 10


def test_size_plan_scales_counts_and_skips_targets_over_five_percent():
    plan, skipped = suite.size_plan(10_000, ALL, 1.0)
    assert plan == {size: (count, 1) for size, count in suite.COUNTS.items()}
    assert not skipped
    plan, skipped = suite.size_plan(1024, ALL, 1.0)
    assert plan == {"subpixel": (2, 5), "1x1": (2, 5), "3x3": (1, 5), "7x7": (1, 5)}
    assert list(skipped) == ["15x15"] and "22% of the 1024 valid pixels" in skipped["15x15"]
    plan, skipped = suite.size_plan(100, ALL, 1.0)
    assert list(plan) == ["subpixel", "1x1"] and list(skipped) == ["3x3", "7x7", "15x15"]


def test_a_density_too_high_for_the_room_skips_the_size_and_none_is_refused(capsys):
    """--density 30 planned 30 15x15 targets in 10 000 pixels and crashed in implant()
    (a traceback, no summary, the same at every --resume); 0 and -3 ran one a size."""
    plan, skipped = suite.size_plan(10_000, ALL, 30.0)
    assert list(skipped) == ALL and not plan
    assert list(suite.size_plan(10_000, ALL, 8.0)[0]) == ALL  # 23% for 15x15: room
    assert "30 targets with their 2-pixel margins would cover 87% of the 10000 valid " \
        "pixels (> 25%): a lower --density" == skipped["15x15"]
    for bad in ("0", "-3", "nan", "inf", "many"):
        with pytest.raises(SystemExit):
            suite.parse_args(["--density", bad])
        assert "--density: must be a number above 0" in capsys.readouterr().err
    assert suite.parse_args(["--density", "2.5"]).density == 2.5


def test_other_square_sizes_implant_the_pixels_of_the_seven_pixel_class_with_own_seeds():
    assert [suite.size_count(s) for s in ("9x9", "11x11", "13x13", "5x5")] == [2, 1, 1, 6]
    plan, skipped = suite.size_plan(10_000, ["11x11", "25x25"], 1.0)
    assert plan == {"11x11": (1, 1)} and "625 px" in skipped["25x25"]
    seeds = [suite.size_seed(s) + 10 * draw for s in [*ALL, "9x9", "11x11", "13x13"]
             for draw in range(suite.MAX_DRAWS)]
    assert len(set(seeds)) == len(seeds)


def test_params_reach_the_neural_models_only(monkeypatch):
    assert suite.parse_args(["--params", "area=225", "lam=0.4"]).params == {"area": 225,
                                                                            "lam": 0.4}
    with pytest.raises(SystemExit):
        suite.parse_args(["--params", "area"])
    seen = {}

    class Fitted:
        def fit(self, cube):
            return self

        def score_stages(self, cube):
            return {}

        def fit_score(self, cube):
            return make_cube(np.zeros((2, 2, 1), np.float32))[:, :, 0]

    def get(name, **kwargs):
        seen[name] = kwargs
        return Fitted()

    monkeypatch.setattr(suite.detectors, "get", get)
    suite.score_maps("hadgan", None, 3, {"area": 225})
    suite.score_maps("rx", None, 3, {"area": 225})
    assert seen == {"hadgan": {"seed": 3, "progress": False, "device": "cpu", "area": 225},
                    "rx": {}}


def test_a_background_too_small_for_five_band_groups_is_skipped_whole():
    cube = make_cube(np.ones((6, 7, 30), np.float32), wavelength=np.linspace(400, 900, 30))
    bg = suite.prepare(suite.Background("corpus", "tiny", cube.shape, 0, 0), cube, ALL, 1.0)
    assert bg.cube is None and not bg.plan
    assert "42 valid pixels allow 4 band groups" in bg.skipped["all"]


def test_model_specs_name_where_they_run():
    models = suite.parse_models(["hadgan", "fanogan@corpus,abu-urban-2"])
    assert models == {"hadgan": None, "fanogan": {"corpus", "abu-urban-2"}}
    bg = suite.Background("scenes", "sandiego-1", (1, 1, 1), 0, 0)
    assert suite.runs_on(models["hadgan"], bg) and not suite.runs_on(models["fanogan"], bg)


def test_unknown_models_and_places_are_refused_before_any_run_and_sizes_are_one_spelling(
        capsys):
    """`--models hadgn` ran the whole suite into error rows and ended in a traceback;
    `hadgan@abu-urbn-1` ran nowhere in silence; `07x07` and `7x7` made two columns of one
    size with other seeds."""
    for spec, said in [("hadgn", "'hadgn' is not a neural model (one of "),
                       ("rx", "'rx' is not a neural model"),
                       ("hadgan@abu-urbn-1", "hadgan@abu-urbn-1: 'abu-urbn-1' is neither "
                                             "'scenes', 'corpus' nor a background's name")]:
        with pytest.raises(SystemExit) as exit_:
            suite.parse_args(["--models", spec])
        assert exit_.value.code == 2 and said in capsys.readouterr().err
    args = suite.parse_args(["--models", "hadgan@scenes,enmap_potsdam_tile_96_96",
                             "--sizes", "1x1", "07x07", "7x7", "1x1", "subpixel", "011x011"])
    assert args.sizes == ["1x1", "7x7", "subpixel", "11x11"]


def test_corpus_backgrounds_are_binned_to_ten_valid_pixels_per_band(corpus_dir):
    bgs = {bg.name: bg for bg in suite.corpus_backgrounds(corpus_dir, list(suite.CORPUS),
                                                          ALL, 1.0, with_pool=False)}
    assert list(bgs) == list(suite.CORPUS)
    for bg in bgs.values():
        cube = bg.cube
        n_valid = int(valid_mask(cube).values.sum())
        assert n_valid == bg.n_valid >= 10 * cube.sizes["band"], bg.name
        assert np.isfinite(cube.values).all(), bg.name
        assert np.isfinite(cube["wavelength"].values).all(), bg.name
    enmap = bgs["enmap_potsdam_tile_128_0"]
    assert (enmap.n_bands, enmap.groups) == (218, 102)  # EnMAP's bbl drops 6 of 224 bands
    assert list(enmap.plan) == ["subpixel", "1x1", "3x3", "7x7"]
    small = bgs["ang20170323t202244_rdn_7000-7010"]
    assert (small.n_valid, small.groups, list(small.plan)) == (100, 10, ["subpixel", "1x1"])


def test_a_degenerate_fit_is_recorded_not_lost():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 30)).astype(np.float32)
    x[:, :, :3] = 1.0  # constant bands: a map, with the warning recorded
    cube = make_cube(x, wavelength=np.linspace(400, 900, 30))
    maps, seconds, note = suite.timed_maps("rx", cube, 0)
    assert list(maps) == ["rx"] and seconds >= 0
    assert note.startswith("rx: the covariance of 64 valid pixels is numerically singular")
    # 16 pixels for 30 bands determine the covariance exactly: refused, and the refusal kept
    maps, _, note = suite.timed_maps("rx", cube.isel(y=slice(0, 4), x=slice(0, 4)), 0)
    assert maps == {} and note.startswith("error: rx: only 16 valid pixels for 30 bands")


def test_resume_refuses_rows_made_with_other_settings(tmp_path):
    from hsad.errors import ParameterError

    path = tmp_path / "rows.csv"
    settings = {"seed": 0, "density": 1.0, "texture": False, "params": {}}
    row = {"set": "scenes", "background": "b", "size": "1x1", "draw": 0, "count": 3,
           "detector": "rx", "map": "rx", "auc_df": 0.9, "seconds": 0.1, "warning": ""}
    suite.RowLog(path, False, settings).add([row, {**row, "draw": 1}])
    assert suite.read_settings(path) == settings
    assert len(suite.RowLog(path, True, settings).rows) == 2
    with pytest.raises(ParameterError, match="made with .*'seed': 0.*not .*'seed': 7"):
        suite.RowLog(path, True, {**settings, "seed": 7})
    with pytest.raises(ParameterError, match="exists: --resume adds to it"):
        suite.RowLog(path, False, settings)
    with open(path, "a", encoding="utf-8") as fh:  # an append cut short
        fh.write("scenes,b,1x1,2,3")
    assert [r["draw"] for r in suite.RowLog(path, True, settings).rows] == [0, 1]
    assert len(suite.RowLog(path, False, settings, overwrite=True).rows) == 0
    docs = Path(__file__).resolve().parents[1] / "docs"
    for name, texture in (("implanted_suite", False), ("implanted_suite_texture", True)):
        assert suite.read_settings(docs / f"{name}.csv") == {**settings, "texture": texture}
        assert suite.read_rows(docs / f"{name}.csv")[0]["set"] == "scenes"


def test_resume_refuses_rows_made_by_other_code_unless_told_to_mix(tmp_path):
    """Rows of the same settings made by other hsad code (a 7 × 7 D_spatial of 0.99197
    then, 0.99227 now) were kept beside new ones in one table: the CSV records the code,
    and ``--resume`` mixes codes only when asked, listing each."""
    from hsad.errors import ParameterError
    from hsad.outputs.provenance import code_digest

    path = tmp_path / "rows.csv"
    settings = {"seed": 0, "density": 1.0, "texture": False, "params": {}}
    row = {"set": "scenes", "background": "b", "size": "7x7", "draw": 0, "count": 3,
           "detector": "hadgan", "map": "hadgan:d_spatial", "auc_df": 0.99197,
           "seconds": 0.1, "warning": ""}
    suite.RowLog(path, False, settings, code="0123456789ab").add([row])
    assert suite.read_codes(path) == {"0123456789ab"}
    with pytest.raises(ParameterError, match=f"made by hsad code 0123456789ab, and this is "
                                             f"{code_digest()}.*--resume-other-code"):
        suite.RowLog(path, True, settings)
    mixed = suite.RowLog(path, True, settings, other_code=True)
    assert len(mixed.rows) == 1 and suite.read_codes(path) == {"0123456789ab", code_digest()}
    docs = Path(__file__).resolve().parents[1] / "docs" / "implanted_suite.csv"
    unrecorded = tmp_path / "old.csv"  # the docs' table as written before codes were
    unrecorded.write_text("".join(line for line in docs.read_text(encoding="utf-8")
                                  .splitlines(keepends=True)
                                  if not line.startswith(suite.CODE_LINE)), encoding="utf-8")
    assert suite.read_codes(unrecorded) == set()
    with pytest.raises(ParameterError, match="recorded no code digest"):
        suite.RowLog(unrecorded, True, settings)
    assert suite.read_settings(unrecorded) == settings  # the settings line still first
    # mixed in knowingly, rows of unknown code are said to be so
    suite.RowLog(unrecorded, True, settings, other_code=True)
    assert suite.read_codes(unrecorded) == {code_digest(), suite.UNRECORDED}


def test_the_suite_drawn_has_a_line_per_map_at_the_tables_means(tmp_path, monkeypatch):
    import csv

    import implanted_plot

    rows = []
    for set_, bg in (("scenes", "a"), ("scenes", "b"), ("corpus", "c")):
        for size, base in (("subpixel", 0.9), ("1x1", 1.0), ("7x7", 0.4), ("15x15", 0.1)):
            if set_ == "corpus" and size == "15x15":
                continue  # too large for it: a gap in its lines
            for draw in (0, 1):
                for det, stage in (("rx", "rx"), ("hadgan", "hadgan:d_ss")):
                    auc = base - 0.01 * draw - (0.05 if bg == "b" else 0.0)
                    rows.append(dict(set=set_, background=bg, size=size, draw=draw, count=1,
                                     detector=det, map=stage, auc_df=auc, seconds=1.0,
                                     warning=""))
    path = tmp_path / "suite.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=suite.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    drawn = {}
    real_save = implanted_plot.save_figure
    monkeypatch.setattr(implanted_plot, "save_figure",
                        lambda fig, out: (drawn.setdefault("fig", fig), real_save(fig, out)))
    assert implanted_plot.main([str(path), "--out", str(tmp_path / "s.png")]) == 0
    axes = drawn["fig"].axes
    assert [ax.get_title() for ax in axes] == [
        "classic detectors: the benchmark scenes", "neural models' maps (model:stage): "
        "the benchmark scenes", "classic detectors: the corpus images",
        "neural models' maps (model:stage): the corpus images"]
    rx_scenes = next(line for line in axes[0].get_lines() if line.get_label() == "rx")
    # sizes in order of edge; draws averaged, then the two backgrounds
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["sub-pixel", "1x1", "7x7",
                                                                  "15x15"]
    np.testing.assert_allclose(rx_scenes.get_ydata(), [0.87, 0.97, 0.37, 0.07])
    dss_corpus = next(line for line in axes[3].get_lines() if line.get_label() == "hadgan:d_ss")
    np.testing.assert_allclose(dss_corpus.get_ydata(), [0.895, 0.995, 0.395, np.nan])
    assert (tmp_path / "s.png").is_file()
    with pytest.raises(SystemExit) as exc:
        implanted_plot.main([str(tmp_path / "none.csv"), "--out", str(tmp_path / "t.png")])
    assert exc.value.code == 2
