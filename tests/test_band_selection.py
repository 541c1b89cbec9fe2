"""Choosing bands: hsad.select_bands, cube.sel(wavelength=...), the CLI's --wavelengths,
--exclude-wavelengths, --bands and --drop-bad-bands, and a model reading its own bands
from a scene with more (API and CLI, end to end)."""

from __future__ import annotations

from types import SimpleNamespace

import dask.array as da
import numpy as np
import pytest
import rasterio
from dask.callbacks import Callback

from hsad import open_cube, select_bands
from hsad.cli.main import main
from hsad.cube import good_band_mask, make_cube
from hsad.cube.model_bands import match_model_bands
from hsad.errors import ModelError, ParameterError
from hsad.io.envi_writer import write_envi

WAVELENGTH = np.linspace(400.0, 2500.0, 22)  # 100 nm apart
GOOD = np.ones(22, bool)
GOOD[[0, 21]] = False


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _cube(wavelength=WAVELENGTH, good=GOOD, seed=0):
    rng = np.random.default_rng(seed)
    n = 22 if wavelength is None else len(wavelength)
    x = rng.normal(100.0, 5.0, size=(24, 20, n)).astype(np.float32)
    x[3, 4] += 40.0
    return make_cube(da.from_array(x, chunks=(8, 8, -1)), wavelength=wavelength,
                     good_band=good, crs="EPSG:32633")


class _NoCompute(Callback):
    def _start(self, dsk):
        raise AssertionError("the selection computed something")


def _wl(cube):
    return cube["wavelength"].values


# ---- API -----------------------------------------------------------------------------
def test_wavelength_range_equals_sel_and_isel_and_stays_lazy():
    cube = _cube()
    with _NoCompute():
        out = select_bands(cube, wavelengths="500:1500")
    assert isinstance(out.data, da.Array)
    assert np.array_equal(_wl(out), WAVELENGTH[(WAVELENGTH >= 500) & (WAVELENGTH <= 1500)])
    by_sel = cube.sel(wavelength=slice(500, 1500))
    by_hand = cube.isel(band=np.flatnonzero((WAVELENGTH >= 500) & (WAVELENGTH <= 1500)))
    np.testing.assert_array_equal(out.values, by_sel.values)
    np.testing.assert_array_equal(out.values, by_hand.values)
    assert out.attrs == cube.attrs and out.rio.crs == cube.rio.crs


def test_open_ends_several_ranges_and_exclusions():
    cube = _cube()
    assert _wl(select_bands(cube, wavelengths=":600")).tolist() == [400, 500, 600]
    assert _wl(select_bands(cube, wavelengths="2300:")).tolist() == [2300, 2400, 2500]
    both = select_bands(cube, wavelengths=":500, 2400:")
    assert _wl(both).tolist() == [400, 500, 2400, 2500]
    out = select_bands(cube, exclude_wavelengths="1340:1450,1790:1960")
    assert 1400 not in _wl(out) and 1800 not in _wl(out) and 1900 not in _wl(out)
    assert out.sizes["band"] == 22 - 3
    assert _wl(select_bands(cube, wavelengths=[(None, 600)])).tolist() == [400, 500, 600]


def test_band_positions_are_zero_based_and_end_exclusive():
    cube = _cube()
    assert select_bands(cube, bands="5:8")["band"].values.tolist() == [6, 7, 8]
    assert _wl(select_bands(cube, bands="0:2")).tolist() == [400, 500]
    assert select_bands(cube, bands="3,5,10:12")["band"].values.tolist() == [4, 6, 11, 12]
    assert select_bands(cube, bands=":2").sizes["band"] == 2
    assert select_bands(cube, bands="20:").sizes["band"] == 2
    assert select_bands(cube, bands=slice(5, 8)).sizes["band"] == 3
    assert select_bands(cube, bands=[1, 2]).sizes["band"] == 2


def test_drop_bad_bands_and_combinations():
    cube = _cube()
    assert select_bands(cube).sizes["band"] == 22  # nothing asked: the same cube
    dropped = select_bands(cube, drop_bad_bands=True)
    assert dropped.sizes["band"] == 20 and dropped["good_band"].values.all()
    out = select_bands(cube, wavelengths=":1000", bands="0:5", drop_bad_bands=True)
    assert _wl(out).tolist() == [500, 600, 700, 800]


def test_python_values_a_researcher_writes_select_as_they_read():
    """(450, 900) was unpacked as two ranges (a raw TypeError), and a boolean mask such as
    ``cube.wavelength.values < 900`` was taken as positions 0 and 1 (two bands, silently)."""
    cube = _cube()
    by_text = _wl(select_bands(cube, wavelengths="450:900")).tolist()
    for spec in ((450, 900), [450, 900], [(450, 900)], [("450", "900")], np.array([450, 900])):
        assert _wl(select_bands(cube, wavelengths=spec)).tolist() == by_text, spec
    assert _wl(select_bands(cube, wavelengths=(None, 700))).tolist() == [400, 500, 600, 700]
    below = cube.wavelength.values < 900
    assert _wl(select_bands(cube, bands=below)).tolist() == WAVELENGTH[below].tolist()
    assert select_bands(cube, bands=cube.good_band.values).sizes["band"] == 20
    assert select_bands(cube, bands=[3.0, 4]).sizes["band"] == 2
    assert _wl(select_bands(cube, bands=cube.wavelength < 900)).tolist() == \
        WAVELENGTH[below].tolist()  # a DataArray mask, as written on the cube
    assert select_bands(cube, bands=cube.good_band).sizes["band"] == 20
    assert _wl(select_bands(cube, bands=3)).tolist() == [700]
    assert _wl(select_bands(cube, bands=np.int64(3))).tolist() == [700]


@pytest.mark.parametrize("kwargs, words", [
    ({"wavelengths": "3000:4000"}, "keeps none of the scene's 22 bands (400-2500 nm)"),
    ({"wavelengths": "400-900"}, "is not a range LO:HI"),
    ({"wavelengths": "900:400"}, "runs backwards"),
    ({"wavelengths": "a:900"}, "is not a number"),
    ({"bands": "30"}, "band 30 does not exist: the scene has 22 bands"),
    ({"bands": "-1"}, "0-based"),
    ({"bands": "1:2:3"}, "not an index or a range"),
    ({"bands": "8:3"}, "range 8:3 runs backwards"),
    ({"bands": "-3:"}, "0-based"),
    ({"exclude_wavelengths": ":"}, "keeps none"),
    ({"wavelengths": [(450,)]}, "is not a range: give (LO, HI) in nm"),
    ({"wavelengths": [450, "x"]}, "450 is not a range"),
    ({"wavelengths": (np.nan, 900)}, "ends are finite"),
    ({"wavelengths": [(True, 900)]}, "ends are numbers (nm) or None"),
    ({"bands": [1.5, 2]}, "1.5 is not a whole band position"),
    ({"bands": GOOD[:10]}, "a boolean mask of 10 values for a scene of 22 bands"),
    ({"bands": [True, 2]}, "booleans among band positions"),
    ({"bands": [np.inf]}, "inf is not a band position"),
    ({"bands": 3.5}, "3.5 is not a selection"),
    ({"bands": np.ones((2, 11), bool)}, "got an array of shape (2, 11)"),
    ({"wavelengths": 900}, "900 is not a selection"),
    ({"wavelengths": slice(400, 600)}, "is not a selection"),
])
def test_bad_selections_are_one_line_parameter_errors(kwargs, words):
    with pytest.raises(ParameterError) as exc:
        select_bands(_cube(), **kwargs)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_wavelengths_asked_of_a_scene_without_any_say_use_bands():
    cube = _cube(wavelength=None)
    with pytest.raises(ParameterError, match="no wavelengths.*--bands"):
        select_bands(cube, wavelengths="400:900")
    assert select_bands(cube, bands="0:3").sizes["band"] == 3


def test_unsorted_wavelengths_have_no_index_but_select_bands_works():
    wl = np.r_[np.linspace(400, 1000, 11), np.linspace(900, 2500, 11)]  # two spectrometers
    cube = _cube(wavelength=wl)
    assert "wavelength" not in cube.indexes
    assert _wl(select_bands(cube, wavelengths="900:1000")).tolist() == [940.0, 1000.0, 900.0]


def test_opened_envi_cube_selects_with_sel(tmp_path):
    write_envi(_cube(), tmp_path / "scene.img")
    cube = open_cube(tmp_path / "scene.img")
    assert _wl(cube.sel(wavelength=slice(450, 800))).tolist() == [500, 600, 700, 800]


# ---- a model's bands ---------------------------------------------------------------
def test_statistics_model_reads_its_bands_from_a_wider_scene():
    from hsad import detectors

    cube = _cube()
    part = select_bands(cube, wavelengths="500:1500")
    rx = detectors.get("rx").fit(part)
    matched = match_model_bands(cube, rx)
    assert _wl(matched).tolist() == _wl(part).tolist()
    np.testing.assert_allclose(rx.score(matched).values, rx.score(part).values)
    assert match_model_bands(part, rx) is part  # already the model's layout
    shifted = cube.assign_coords(wavelength=("band", WAVELENGTH + 5.0))
    assert match_model_bands(shifted, rx).sizes["band"] == part.sizes["band"]


def test_a_neural_model_matches_good_bands_only():
    cube = _cube(good=np.r_[np.ones(6, bool), [False], np.ones(15, bool)])  # 1000 nm bad
    model = SimpleNamespace(n_bands_=3, wavelength_=np.array([500.0, 900.0, 1100.0]))
    assert _wl(match_model_bands(cube, model)).tolist() == [500, 900, 1100]
    model.wavelength_ = np.array([500.0, 1000.0, 1100.0])
    with pytest.raises(ModelError, match="lacks 1 of the model's 3 wavelengths.*1000.0 nm"):
        match_model_bands(cube, model)
    model.wavelength_ = np.array([500.0, 510.0, 520.0])
    with pytest.raises(ModelError, match=r"would read the same scene band: 2 have no scene "
                                        r"band of their own \(510.0, 520.0 nm\)"):
        match_model_bands(cube, model)


def test_a_neural_model_on_as_many_good_bands_at_other_wavelengths_matches_them():
    """A scene with the model's good-band count but other bands flagged bad is matched by
    wavelength, not taken as it is (it used to be refused as "a different band set")."""
    flags = np.ones(22, bool)
    flags[[0, 5]] = False  # 900 nm bad instead of 2500 nm: 20 good bands, as the model
    cube = _cube(good=flags)
    model = SimpleNamespace(n_bands_=20, wavelength_=WAVELENGTH[GOOD])
    with pytest.raises(ModelError, match="lacks 1 of the model's 20 wavelengths.*900.0 nm"):
        match_model_bands(cube, model)
    model.wavelength_ = WAVELENGTH[flags]  # the same bands: taken as they are
    assert match_model_bands(cube, model) is cube


def test_a_neural_model_reads_its_own_bands_of_a_scene_flagged_otherwise():
    """10 nm apart, the model trained with 500 nm bad: a scene flagging 510 nm instead
    would feed it the neighbouring band, 10 nm off, if taken by position; it is refused,
    naming the band. A scene with every band good is read on the model's bands."""
    wavelength = np.arange(400.0, 700.0, 10.0)  # 30 bands
    trained = wavelength != 500.0
    model = SimpleNamespace(n_bands_=29, wavelength_=wavelength[trained], band_mask_=trained)
    other = _cube(wavelength=wavelength, good=wavelength != 510.0)
    with pytest.raises(ModelError, match=r"marks 1 of the model's 29 bands bad \(510.0 nm\)"):
        match_model_bands(other, model)
    every = match_model_bands(_cube(wavelength=wavelength, good=np.ones(30, bool)), model)
    assert np.array_equal(every["good_band"].values, trained)
    # another sensor with the same band count: its missing wavelengths, not "retrain"
    shifted = _cube(wavelength=wavelength + 300.0, good=wavelength != 510.0)
    with pytest.raises(ModelError, match=r"lacks \d+ of the model's 29 wavelengths"):
        match_model_bands(shifted, model)
    # as many bands, other ones: the model's 29 and 700 nm (a reviewer's case, which
    # positions would have read 10 nm off): found by wavelength
    other_set = np.r_[wavelength[trained], 700.0]
    found = match_model_bands(_cube(wavelength=other_set, good=np.ones(30, bool)), model)
    np.testing.assert_array_equal(found["wavelength"].values[good_band_mask(found)],
                                  wavelength[trained])


def test_a_model_reads_its_bands_of_a_scene_stored_in_another_order():
    """Two bands stored swapped (or all reversed) are found by wavelength: by position the
    model's 500 nm band read the scene's 600 nm band, with only a drift warning."""
    from hsad import detectors

    cube = _cube(good=np.ones(22, bool))
    rx = detectors.get("rx").fit(cube)
    for order in (np.r_[0, 2, 1, 3:22], np.arange(22)[::-1]):
        stored = cube.isel(band=order)
        matched = match_model_bands(stored, rx)
        np.testing.assert_array_equal(_wl(matched), WAVELENGTH)
        np.testing.assert_array_equal(rx.score(matched).values, rx.score(cube).values)
    neural = SimpleNamespace(n_bands_=20, wavelength_=WAVELENGTH[GOOD])
    matched = match_model_bands(_cube().isel(band=np.r_[0, 2, 1, 3:22]), neural)
    np.testing.assert_array_equal(_wl(matched), WAVELENGTH[GOOD])
    # EnMAP's spectrometers overlap (950 and 1000 nm twice, 1 nm apart): a scene stored as
    # the model's, 0.6 nm off, is read by position, not by nearest wavelength
    overlap = np.r_[np.linspace(500, 1000, 11), 951.0, 1001.0, np.linspace(1100, 2400, 9)]
    model = detectors.get("rx").fit(_cube(wavelength=overlap, good=np.ones(22, bool)))
    shifted = _cube(wavelength=overlap + 0.6, good=np.ones(22, bool))
    np.testing.assert_array_equal(_wl(match_model_bands(shifted, model)), overlap + 0.6)


def test_overlapping_spectrometers_are_never_paired_by_nearest_wavelength():
    """A network trained with one band flagged bad, on a sensor whose spectrometers overlap
    (958.6 and 958.9 nm), applied to a scene flagging none and drifted 1 nm apart: nearest
    wavelengths swapped the two spectrometers' bands; by its flags' places they pair."""
    wavelength = np.r_[np.linspace(500, 958.6, 15), 958.9, np.linspace(1050, 2400, 14)]
    trained = np.ones(30, bool)
    trained[25] = False
    model = SimpleNamespace(n_bands_=29, wavelength_=wavelength[trained], band_mask_=trained)
    drifted = wavelength + np.r_[np.ones(15), -np.ones(15)]
    found = match_model_bands(_cube(wavelength=drifted, good=np.ones(30, bool)), model)
    np.testing.assert_array_equal(found["wavelength"].values[good_band_mask(found)],
                                  drifted[trained])


def test_a_fine_band_spacing_stored_reversed_is_read_by_wavelength():
    """3 nm apart (finer than twice the drift tolerance), an exact reversed copy pairs
    clearly; it was refused as "a different band set" by a guard meant for twins."""
    from hsad import detectors

    wavelength = 500 + 3.0 * np.arange(22)
    cube = _cube(wavelength=wavelength, good=np.ones(22, bool))
    rx = detectors.get("rx").fit(cube)
    matched = match_model_bands(cube.isel(band=slice(None, None, -1)), rx)
    np.testing.assert_array_equal(_wl(matched), wavelength)
    # 6 nm apart, drifted 1.6 nm, two bands swapped: each still clearly nearest its own
    wide = 500 + 6.0 * np.arange(22)
    rx = detectors.get("rx").fit(_cube(wavelength=wide, good=np.ones(22, bool)))
    order = np.r_[0:3, 4, 3, 5:22]
    drifted = _cube(wavelength=wide + 1.6, good=np.ones(22, bool))
    stored = drifted.isel(band=order)
    np.testing.assert_array_equal(_wl(match_model_bands(stored, rx)), wide + 1.6)


def test_a_statistics_model_takes_a_scene_without_the_bands_it_left_out():
    """An rx model fitted with bands 400 and 2500 nm flagged bad needs neither: a scene
    whose bad bands were dropped was refused for lacking them."""
    from hsad import detectors

    cube = _cube()
    rx = detectors.get("rx").fit(cube)
    dropped = select_bands(cube, drop_bad_bands=True)
    matched = match_model_bands(dropped, rx)
    assert matched.sizes["band"] == 22
    np.testing.assert_array_equal(good_band_mask(matched), GOOD)
    np.testing.assert_array_equal(rx.score(matched).values, rx.score(cube).values)
    with pytest.raises(ModelError, match=r"lacks 1 of the model's 22 wavelengths.*500.0 nm"):
        match_model_bands(dropped.sel(band=dropped["band"] != 2), rx)


def test_a_statistics_model_finds_its_bands_when_the_dropped_scene_has_as_many():
    """A 20-band model (600-2500 nm, 2500 flagged bad) on the full scene with its 2 bad
    bands dropped: 20 bands again, by chance, so they were taken by position and refused
    as "a different band set" (100 nm apart), though each good band is in the scene."""
    from hsad import detectors

    cube = _cube()
    rx = detectors.get("rx").fit(cube.isel(band=slice(2, 22)))
    dropped = select_bands(cube, drop_bad_bands=True)  # 500 ... 2400 nm
    assert dropped.sizes["band"] == 20
    matched = match_model_bands(dropped, rx)
    np.testing.assert_array_equal(_wl(matched)[:-1], WAVELENGTH[2:21])
    np.testing.assert_array_equal(rx.score(matched).values,
                                  rx.score(cube.isel(band=slice(2, 22))).values)
    other = _cube(wavelength=WAVELENGTH[:20] + 1000.0, good=GOOD[:20])  # another sensor's
    with pytest.raises(ModelError, match="differ from the model's by up to 800.0 nm"):
        match_model_bands(other, rx)


def test_a_range_end_matches_a_wavelength_converted_from_micrometres():
    """0.47241 µm is 472.40999999999997 nm: ``--wavelengths 472.41:`` left the band out,
    and ``472.41:472.41`` kept none (ends are matched to 1 ppm)."""
    wavelength = np.array([0.45, 0.47241, 0.5, 2.42759]) * 1000.0
    assert wavelength[1] != 472.41
    cube = _cube(wavelength=wavelength, good=None)
    assert _wl(select_bands(cube, wavelengths="472.41:472.41")).tolist() == [wavelength[1]]
    assert select_bands(cube, wavelengths="472.41:2427.59").sizes["band"] == 3
    assert select_bands(cube, exclude_wavelengths="472.41:2427.59").sizes["band"] == 1
    assert select_bands(cube, wavelengths="472.42:").sizes["band"] == 2  # no farther


def test_missing_or_unknown_wavelengths_are_clear_model_errors():
    from hsad import detectors

    rx = detectors.get("rx").fit(_cube(wavelength=np.linspace(3000, 3500, 6), good=None))
    with pytest.raises(ModelError, match="lacks 6 of the model's 6 wavelengths"):
        match_model_bands(_cube(), rx)
    with pytest.raises(ModelError, match="has 22, without wavelengths.*--bands"):
        match_model_bands(_cube(wavelength=None), rx)
    blind = detectors.get("rx").fit(_cube(wavelength=None, good=None).isel(band=slice(0, 5)))
    with pytest.raises(ModelError, match="records no wavelengths"):
        match_model_bands(_cube(), blind)


# ---- the command line, end to end --------------------------------------------------
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bands")
    return write_envi(_cube(), folder / "scene.img")


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_detect_wavelengths_equals_slicing_the_cube_by_hand(scene, tmp_path, capsys):
    code, out, err = run_cli(["detect", scene, "-m", "rx", "--wavelengths", "500:1500",
                              "--exclude-wavelengths", "1000:1100", "-o",
                              tmp_path / "a.tif"], capsys)
    assert code == 0, err
    assert "x9 in" in out  # 11 bands in the range, 2 excluded
    by_hand = open_cube(scene).sel(wavelength=slice(500, 1500))
    by_hand = by_hand.isel(band=~np.isin(_wl(by_hand), [1000.0, 1100.0]))
    write_envi(by_hand, tmp_path / "hand.img")
    code, _, err = run_cli(["detect", tmp_path / "hand.img", "-m", "rx", "-o",
                            tmp_path / "b.tif"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(_read(tmp_path / "a.tif"), _read(tmp_path / "b.tif"))


def test_train_on_wavelengths_then_model_on_full_scene_equals_detect(scene, tmp_path, capsys):
    model = tmp_path / "rx.hsad"
    code, out, err = run_cli(["train", scene, "-m", "rx", "--wavelengths", "600:1800",
                              "--drop-bad-bands", "-o", model], capsys)
    assert code == 0, err
    assert "fitted on 13 bands" in out
    code, out, err = run_cli(["detect", scene, "--model", model, "-o", tmp_path / "a.tif"],
                             capsys)
    assert code == 0, err
    assert "(the model's 13 bands)" in out
    code, _, err = run_cli(["detect", scene, "-m", "rx", "--wavelengths", "600:1800",
                            "-o", tmp_path / "b.tif"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(_read(tmp_path / "a.tif"), _read(tmp_path / "b.tif"))
    # without --drop-bad-bands the model keeps its bad bands aside: both counts said
    code, out, err = run_cli(["train", scene, "-m", "rx", "--wavelengths", "400:1800",
                              "-o", tmp_path / "with_bad.hsad"], capsys)
    assert code == 0, err
    assert "fitted on 14 bands" in out  # 15 in the range, the first (400 nm) bad
    code, out, err = run_cli(["detect", scene, "--model", tmp_path / "with_bad.hsad", "-o",
                              tmp_path / "c.tif"], capsys)
    assert code == 0, err
    assert "(the model's 15 bands, 14 used)" in out


def test_neural_model_reads_its_bands_from_the_full_scene(scene, tmp_path, capsys):
    model = tmp_path / "ae.hsad"
    code, out, err = run_cli(["train", scene, "-m", "ae", "-p", "hidden=8", "-p", "depth=1",
                              "--epochs", 1, "--device", "cpu", "--no-progress", "--seed", 0,
                              "--wavelengths", "500:1500", "-o", model], capsys)
    assert code == 0, err
    assert "x 11 bands" in out
    code, _, err = run_cli(["detect", scene, "--model", model, "-o", tmp_path / "a.tif"],
                           capsys)
    assert code == 0, err
    code, _, err = run_cli(["detect", tmp_path / "a.tif", "--model", model, "-o",
                            tmp_path / "b.tif"], capsys)
    assert code == 2 and "trained on 11 bands and the scene has 1, without wavelengths" in err
    write_envi(open_cube(scene).sel(wavelength=slice(500, 1500)), tmp_path / "part.img")
    code, _, err = run_cli(["detect", tmp_path / "part.img", "--model", model, "-o",
                            tmp_path / "c.tif"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(_read(tmp_path / "a.tif"), _read(tmp_path / "c.tif"))


def test_model_on_a_scene_without_its_wavelengths_names_them(scene, tmp_path, capsys):
    model = tmp_path / "rx.hsad"
    assert run_cli(["train", scene, "-m", "rx", "--wavelengths", "1800:", "-o", model],
                   capsys)[0] == 0
    code, _, err = run_cli(["convert", scene, tmp_path / "vnir.img", "--wavelengths",
                            ":1500"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["detect", tmp_path / "vnir.img", "--model", model, "-o",
                            tmp_path / "x.tif"], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    # 7: the model's eighth band, 2500 nm, is flagged bad and not needed
    assert "lacks 7 of the model's 8 wavelengths" in err and "1800.0" in err
    assert not (tmp_path / "x.tif").exists()


def test_convert_keeps_the_chosen_bands(scene, tmp_path, capsys):
    code, _, err = run_cli(["convert", scene, tmp_path / "sub.tif", "--bands", "0:6",
                            "--drop-bad-bands"], capsys)
    assert code == 0, err
    out = open_cube(tmp_path / "sub.tif")
    assert _wl(out).tolist() == [500, 600, 700, 800, 900]
    np.testing.assert_array_equal(out.values, open_cube(scene).isel(band=slice(1, 6)).values)
    code, _, err = run_cli(["convert", scene, tmp_path / "all.img", "--bands", ":3"], capsys)
    assert code == 0, err
    assert open_cube(tmp_path / "all.img")["good_band"].values.tolist() == [False, True, True]


@pytest.mark.parametrize("option, value, words", [
    ("--wavelengths", "400-900", "--wavelengths: '400-900' is not a range LO:HI"),
    ("--exclude-wavelengths", "1:2:3", "--exclude-wavelengths: '1:2:3' is not a range"),
    ("--bands", "x:5", "--bands: 'x' is not a number"),
])
def test_malformed_options_fail_before_any_work(scene, tmp_path, capsys, option, value, words):
    code, _, err = run_cli(["detect", scene, "-m", "rx", option, value, "-o",
                            tmp_path / "a.tif"], capsys)
    assert code == 2 and err.startswith(f"error: {words}") and err.count("\n") == 1
    assert not (tmp_path / "a.tif").exists()


def test_help_says_bands_are_zero_based_end_exclusive(capsys):
    code, out, _ = run_cli(["detect", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "0-based, LO:HI stops before HI as in Python slices" in text
    assert "--drop-bad-bands" in text and "--valid-mask" in text


def test_another_sensors_scene_of_the_models_band_count_is_a_different_band_set():
    """30 bands 10 nm apart (the first flagged bad), a scene of 30 shifted by 25 nm: by
    wavelength two model bands would read one scene band, and the error said so instead
    of naming another sensor's bands."""
    from hsad import detectors

    wavelength = 400.0 + 10.0 * np.arange(30)
    good = np.ones(30, bool)
    good[0] = False
    rx = detectors.get("rx").fit(_cube(wavelength=wavelength, good=good))
    with pytest.raises(ModelError, match="differ from the model's by up to 25.0 nm"):
        match_model_bands(_cube(wavelength=wavelength + 25.0, good=np.ones(30, bool)), rx)


def test_a_model_whose_wavelengths_are_ten_times_the_scenes_names_the_unit():
    """A model fitted before 0.3.14 on an ENVI file in Angstroms holds wavelengths 10 times
    too long: the refusal said "a different band set" and advised match_model_bands, which
    cannot help; it names the unit and says to retrain."""
    from hsad import detectors

    values = np.random.default_rng(0).normal(size=(20, 20, 6)).astype(np.float32)
    wl = np.linspace(450.0, 900.0, 6)
    rx = detectors.get("rx").fit(make_cube(values, wavelength=wl * 10))
    with pytest.raises(ModelError, match="the model's wavelengths are 10 times the scene's, "
                       "band for band.*Angstroms.*retrain"):
        rx.score(make_cube(values, wavelength=wl))
    shifted = detectors.get("rx").fit(make_cube(values, wavelength=wl + 100))
    with pytest.raises(ModelError, match="by up to 100.0 nm"):  # another band set: as it was
        shifted.score(make_cube(values, wavelength=wl))
