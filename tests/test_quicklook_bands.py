"""The quicklook composite's bands at the edges of their rules (hsad.outputs.quicklook): a
band exactly 50 nm from its target, three SWIR bands in ascending order, every band marked
bad, a band position one past the last, and the warning of a default composite without
visible bands."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from cli_helpers import run_cli

from hsad.cube import make_cube
from hsad.errors import ParameterError
from hsad.io.envi_writer import write_envi
from hsad.outputs.quicklook import (
    RGB_TOLERANCE,
    check_default_composite,
    quicklook,
    rgb_bands,
)


def _cube(wavelength, good_band=None):
    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 5.0, (6, 5, len(wavelength))).astype(np.float32)
    return make_cube(data, wavelength=wavelength, good_band=good_band)


def _warnings_of(cube) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_default_composite(cube)
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_a_band_exactly_the_tolerance_from_its_target_is_taken():
    cube = _cube([640.0 - RGB_TOLERANCE, 550.0, 500.0])  # 590 nm for red 640 nm
    assert rgb_bands(cube) == ([0, 1, 2], True)
    assert _warnings_of(cube) == []
    assert rgb_bands(cube, rgb=(640, 550, 460)) == ([0, 1, 2], True)  # --rgb as well


def test_three_swir_bands_in_ascending_order_put_the_longest_in_red():
    """Three bands with wavelengths, none visible: the bands at 75/50/25 % of the range
    (two of them one band), so the three bands, the longest red, as whatever their order
    in the file; not bands 1, 2, 3, which is the order of a file without wavelengths."""
    ascending = _cube([1000.0, 1650.0, 2200.0])
    assert rgb_bands(ascending) == ([2, 1, 0], False)
    assert rgb_bands(_cube([2200.0, 1650.0, 1000.0])) == ([0, 1, 2], False)
    said = _warnings_of(ascending)
    assert len(said) == 1 and "composite shows 2200, 1650, 1000 nm instead of 640, 550, " \
                              "460 nm" in said[0], said


def test_four_bands_without_visible_ones_name_what_is_missing_and_what_is_shown():
    """590 nm lies exactly 50 nm from red: only blue is missing; the four bands give the
    longest, the second longest and the shortest."""
    cube = _cube([590.0, 1000.0, 1500.0, 2000.0])
    assert rgb_bands(cube) == ([3, 2, 0], False)
    said = _warnings_of(cube)
    assert len(said) == 1, said
    assert said[0].startswith("no good band lies within 50 nm of 460 nm (the bands analysed "
                              "lie between 590 and 2000 nm): the quicklook's composite "
                              "shows 2000, 1500, 590 nm instead of 640, 550, 460 nm"), said


def test_a_composite_with_a_band_of_unknown_wavelength_is_never_said_to_show_nan_nm():
    cube = _cube([1000.0, 1500.0, np.nan, 2000.0, 2500.0])
    picks, by_wavelength = rgb_bands(cube)
    assert not by_wavelength and 2 in picks  # the middle band has no wavelength
    said = _warnings_of(cube)
    assert not any("nan" in message.lower() for message in said)
    assert any("shows 2000, band 3, 1500 nm" in message for message in said)  # said still


def test_every_band_marked_bad_leaves_every_band_to_choose_from(tmp_path, capsys):
    """No band marked good: any band with a wavelength may be drawn (not "no
    wavelengths"), and a wavelength too far from all of them is the tolerance's error."""
    wl = [460.0, 550.0, 640.0, 800.0, 900.0]
    cube = _cube(wl, good_band=[False] * 5)
    assert rgb_bands(cube) == ([2, 1, 0], True)
    assert rgb_bands(cube, rgb=(640, 550, 460)) == ([2, 1, 0], True)
    with pytest.raises(ParameterError, match="no good band within 50 nm of 5000 nm "
                                             r"\(the scene covers 460-900 nm\)"):
        rgb_bands(cube, rgb=(5000, 550, 460))
    path = write_envi(cube, tmp_path / "bad.img", interleave="bsq")
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "a.tif", "--png",
                            tmp_path / "a.png", "--rgb", "640,550,460", "--no-progress"],
                           capsys)
    assert code == 0 and (tmp_path / "a.png").exists(), err
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "b.tif", "--png",
                            tmp_path / "b.png", "--rgb", "5000,550,460", "--no-progress"],
                           capsys)
    assert code == 2 and "no good band within 50 nm of 5000 nm" in err, err
    assert "has no wavelengths" not in err and not (tmp_path / "b.tif").exists()


def test_a_band_position_past_the_last_is_a_parameter_error():
    cube = _cube([460.0, 550.0, 640.0, 800.0, 900.0])
    scores = np.ones((6, 5))
    with pytest.raises(ParameterError, match=r"three band positions in 0\.\.4, got \(0, 1, 5\)"):
        quicklook(cube, scores, rgb_positions=(0, 1, 5))
    with pytest.raises(ParameterError, match=r"in 0\.\.4"):
        rgb_bands(cube, positions=(-1, 1, 2))
    assert rgb_bands(cube, positions=(4, 1, 0)) == ([4, 1, 0], False)


def test_the_fallback_composite_takes_good_bands_and_a_bad_band_chosen_is_named(tmp_path,
                                                                                capsys):
    """An EnMAP tile read with --wavelengths 1000:2500 had no visible band: the fallback took
    the band at 25 % of all bands, a water-vapour band marked bad and all nodata, and drew
    an empty panel without a word. It takes the good bands at 75/50/25 % of their range;
    --rgb-bands naming a band marked bad takes it, with a warning."""
    wl = np.linspace(1000.0, 2500.0, 12)
    good = np.ones(12, bool)
    good[2:5] = False  # the band at 25 % of all twelve (position 3) is bad
    cube = _cube(wl, good_band=good)
    picks, by_wavelength = rgb_bands(cube)
    assert not by_wavelength and all(good[i] for i in picks), picks
    assert picks == [9, 7, 5]  # 75/50/25 % of the nine good bands 0, 1, 5, 6, ..., 11
    said = _warnings_of(cube)
    assert len(said) == 1 and f"shows {wl[9]:.0f}, {wl[7]:.0f}, {wl[5]:.0f} nm" in said[0]
    path = write_envi(cube, tmp_path / "swir.img", interleave="bsq")
    args = ["detect", path, "-m", "rx", "--no-progress"]
    code, _, err = run_cli([*args, "-o", tmp_path / "a.tif", "--png", tmp_path / "a.png",
                            "--rgb-bands", "3,7,9"], capsys)
    assert code == 0 and (tmp_path / "a.png").exists(), err
    assert err.count("band 3 (0-based, as --bands counts) is marked bad") == 1, err
    code, _, err = run_cli([*args, "-o", tmp_path / "b.tif", "--png", tmp_path / "b.png",
                            "--rgb-bands", "6,7,9"], capsys)
    assert code == 0 and "marked bad" not in err, err
