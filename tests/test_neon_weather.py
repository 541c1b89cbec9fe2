"""NEON's weather quality indicator: ``--exclude-quality partlycloudy,mostlycloudy`` leaves
out the pixels flown under cloud, in both of NEON's codings; the warning when they are
analysed; ``hsad info``'s shares (hsad.io.neon_weather, hsad.io.quality; docs/formats.md,
"NEON AOP reflectance")."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import rasterio
from cli_helpers import one_error, run_cli
from neon_files import weather_codes, weather_colours, write_neon

from hsad.cube.subset import spatial_subset
from hsad.errors import FileFormatError, ParameterError
from hsad.io import open_cube
from hsad.io.neon_weather import quality_valid, scene_classes, shares, weather_classes
from hsad.pipeline import prepare_cube

NAME = "NEON_D17_SJER_DP3_257000_4112000_bidirectional_reflectance.h5"
CODES = weather_codes()


@pytest.fixture(params=["codes", "colours"])
def neon(request, tmp_path):
    """A NEON file with its weather quality indicator in the bidirectional files' codes or
    the directional files' colours."""
    layer = CODES if request.param == "codes" else weather_colours(CODES)
    path = tmp_path / NAME
    data = write_neon(path, weather=layer)
    return path, data


def test_both_codings_give_neons_classes(neon):
    path, _ = neon
    classes = weather_classes(path, "SJER", (40, 30))
    np.testing.assert_array_equal(classes, np.where(CODES < 0, 0, CODES))
    found = shares(scene_classes(open_cube(path)))
    counted = CODES[CODES > 0]
    assert found == pytest.approx({"clear": 100 * np.mean(counted == 1),
                                    "partlycloudy": 100 * np.mean(counted == 2),
                                    "mostlycloudy": 100 * np.mean(counted == 3)})


def test_the_flags_leave_out_the_cloudier_pixels_as_a_mask_would(neon, tmp_path, capsys):
    path, data = neon
    cube = open_cube(path)
    np.testing.assert_array_equal(quality_valid(cube, ("mostlycloudy",)), CODES != 3)
    clear = quality_valid(cube, ("partlycloudy", "mostlycloudy"))
    np.testing.assert_array_equal(clear, (CODES != 2) & (CODES != 3))
    kept = prepare_cube(cube, exclude_quality="partlycloudy,mostlycloudy")
    assert (kept.values[~clear] == -9999).all()  # int16: set to its nodata
    # the map equals the one a mask of the same pixels gives, through the command line
    mask = tmp_path / "clear.tif"
    with rasterio.open(mask, "w", driver="GTiff", height=40, width=30, count=1,
                       dtype="uint8", crs=cube.rio.crs, transform=cube.rio.transform()) as dst:
        dst.write(clear.astype(np.uint8), 1)
    maps = {}
    for name, extra in (("flags", ["--exclude-quality", "partlycloudy,mostlycloudy"]),
                        ("mask", ["--valid-mask", str(mask)])):
        out = tmp_path / f"{name}.tif"
        code, _, err = run_cli(["detect", str(path), "-m", "rx", "-o", str(out), *extra],
                               capsys)
        assert code == 0, err
        with rasterio.open(out) as src:
            maps[name] = src.read(1)
    np.testing.assert_array_equal(maps["flags"], maps["mask"])
    assert np.isnan(maps["flags"][~clear]).all() and np.isfinite(maps["flags"][2:, :15]).all()


def test_a_window_takes_its_part_of_the_layer(neon):
    path, _ = neon
    for cube in (open_cube(path, window=_window(12, 10, 20, 15)),
                 spatial_subset(open_cube(path), srcwin=(10, 12, 15, 20))):
        valid = quality_valid(cube, ("mostlycloudy",))
        np.testing.assert_array_equal(valid, CODES[12:32, 10:25] != 3)


def _window(row, col, height, width):
    from hsad.cube.subset import Window

    return Window(col_off=col, row_off=row, width=width, height=height)


def test_cloudy_pixels_analysed_are_said_and_none_keeps_quiet(neon):
    path, _ = neon
    said = (r"of the scene's pixels it classes, 25.1 % were flown under 10–50 % and 25.1 % "
            r"under more than 50 % cloud cover.*partlycloudy,mostlycloudy")
    with pytest.warns(UserWarning, match=said):
        prepare_cube(open_cube(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        prepare_cube(open_cube(path), exclude_quality="none")
        prepare_cube(spatial_subset(open_cube(path), srcwin=(0, 0, 15, 40)))  # all clear


def test_wrong_flags_missing_or_odd_layers_are_one_line(tmp_path, capsys):
    path = tmp_path / NAME
    write_neon(path, weather=CODES)
    out = ["-m", "rx", "-o", str(tmp_path / "rx.tif")]
    line = one_error(["detect", str(path), "--exclude-quality", "cloud", *out], capsys)
    assert "cloud: NEON reflectance files flag partlycloudy, mostlycloudy" in line
    line = one_error(["detect", str(path), "--exclude-quality", "fog", *out], capsys)
    assert "partlycloudy, mostlycloudy (NEON reflectance files); not fog" in line
    bare = tmp_path / "bare.h5"
    write_neon(bare)
    line = one_error(["detect", str(bare), "--exclude-quality", "mostlycloudy", *out], capsys)
    assert "has no Weather_Quality_Indicator for --exclude-quality mostlycloudy" in line
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no layer: nothing to say without flags
        prepare_cube(open_cube(bare))
    cloudy = tmp_path / "cloudy.h5"
    write_neon(cloudy, weather=np.full((40, 30), 3))
    line = one_error(["detect", str(cloudy), "--exclude-quality", "mostlycloudy", *out],
                     capsys)
    assert "excludes every pixel of the scene" in line
    assert not (tmp_path / "rx.tif").exists()


@pytest.mark.parametrize("layer, problem", [
    (np.full((40, 30), 7), "holds 7, not one of NEON's classes 1, 2, 3"),
    (np.full((40, 30, 3), 128, np.uint8), r"holds the colour \(128, 128, 128\)"),
    (np.ones((20, 30)), "is 20x30, not the cube's 40x30 pixels"),
    (np.ones((3, 3)), "is 3x3, not the cube's 40x30 pixels"),
    (np.array([b"clear"] * 4), "is not a numeric raster"),
])
def test_a_layer_not_as_neon_codes_it_is_refused_not_guessed(tmp_path, capsys, layer, problem):
    path = tmp_path / NAME
    write_neon(path, weather=layer)
    with pytest.raises(FileFormatError, match=problem):
        quality_valid(open_cube(path), ("mostlycloudy",))
    with pytest.warns(UserWarning, match="cloud cover its pixels were flown under is not known"):
        prepare_cube(open_cube(path))
    code, out, _ = run_cli(["info", str(path)], capsys)
    assert code == 0 and "weather:    not read: its Weather_Quality_Indicator" in out
    code, out, _ = run_cli(["info", "--json", str(path)], capsys)
    assert '"neon_weather_problem": "not read: its Weather' in out and '"neon_weather":' not in out


def test_flags_for_another_scene_say_what_applies(tmp_path):
    from hsad.cube import make_cube

    cube = make_cube(np.ones((4, 4, 3), np.float32), source_format="envi", source_path="a.hdr")
    with pytest.raises(ParameterError, match="applies to EnMAP products .* and NEON"):
        prepare_cube(cube, exclude_quality="partlycloudy")


def test_info_gives_the_shares(neon, capsys):
    path, _ = neon
    code, out, _ = run_cli(["info", str(path)], capsys)
    assert code == 0
    assert ("weather:    flown under less than 10 % cloud cover: 49.7 %, 10-50 %: 25.1 %, "
            "more than 50 %: 25.1 %") in out
    code, out, _ = run_cli(["info", "--json", str(path)], capsys)
    assert f'"mostlycloudy": {100 * 300 / 1194}' in out
    with h5py.File(path, "a") as f:
        del f["SJER/Reflectance/Metadata/Ancillary_Imagery"]
    code, out, _ = run_cli(["info", str(path)], capsys)
    assert code == 0 and "weather:" not in out


def test_other_layouts_nan_and_an_ignore_value_in_colours(tmp_path):
    colours = weather_colours(CODES)
    planes = tmp_path / "planes.h5"
    write_neon(planes, weather=np.moveaxis(colours, -1, 0))  # (3, rows, cols)
    expected = np.where(CODES < 0, 0, CODES)
    np.testing.assert_array_equal(weather_classes(planes, "SJER", (40, 30)), expected)
    floats = tmp_path / "floats.h5"
    layer = np.where(CODES < 0, np.nan, CODES).astype(np.float32)
    write_neon(floats, weather=layer)
    np.testing.assert_array_equal(weather_classes(floats, "SJER", (40, 30)), expected)
    ignored = tmp_path / "ignored.h5"  # a 0 or 255 in one band is no ignore value
    write_neon(ignored, weather=colours)
    with h5py.File(ignored, "a") as f:
        f["SJER/Reflectance/Metadata/Ancillary_Imagery/Weather_Quality_Indicator"].attrs[
            "Data_Ignore_Value"] = 255
    np.testing.assert_array_equal(weather_classes(ignored, "SJER", (40, 30)), expected)


def test_a_cube_sliced_in_python_is_placed_by_its_grid_or_refused(neon):
    path, _ = neon
    sliced = open_cube(path).isel(y=slice(9, 17), x=slice(6, 14))
    np.testing.assert_array_equal(quality_valid(sliced, ("mostlycloudy",)),
                                  CODES[9:17, 6:14] != 3)
    # a slice of a window hsad cut: placed where the slice lies (its window moved with it)
    window = open_cube(path, window=_window(7, 5, 21, 17))
    np.testing.assert_array_equal(
        quality_valid(window.isel(y=slice(2, 10), x=slice(1, 9)), ("mostlycloudy",)),
        CODES[9:17, 6:14] != 3)
    # flipped rows: refused, as for an EnMAP layer, never cut at the wrong place
    with pytest.raises(ParameterError, match="not on the scene's grid"):
        quality_valid(open_cube(path).isel(y=slice(None, None, -1)), ("mostlycloudy",))
    projwin = spatial_subset(open_cube(path), projwin=(257510, 4112480, 257525, 4112460))
    np.testing.assert_array_equal(quality_valid(projwin, ("mostlycloudy",)),
                                  CODES[20:40, 10:25] != 3)


def test_the_warning_counts_the_pixels_the_mask_keeps_and_an_empty_layer_is_said(tmp_path):
    path = tmp_path / NAME
    write_neon(path, weather=CODES)
    left = np.zeros((40, 30), bool)
    left[:, :15] = True  # all clear there
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        prepare_cube(open_cube(path), valid_mask=left)
    empty = tmp_path / "empty.h5"
    write_neon(empty, weather=np.zeros((40, 30), np.uint8))
    with pytest.warns(UserWarning, match="gives none of the scene's pixels a class; "
                                         "--exclude-quality mostlycloudy leaves out nothing"):
        prepare_cube(open_cube(empty), exclude_quality="mostlycloudy")


def test_a_batch_or_a_training_with_another_sources_flag_stops_before_any_scene(
        tmp_path, capsys):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for path in (a, b):
        write_neon(path, weather=CODES)
    line = one_error(["detect", str(a), str(b), "-m", "rx", "--exclude-quality", "cloud",
                      "-o", str(tmp_path / "{stem}_rx.tif")], capsys)
    assert "cloud: NEON reflectance files flag" in line and "scene 1/2" not in line
    line = one_error(["train", str(a), str(b), "-m", "rx", "--exclude-quality", "haze",
                      "-o", str(tmp_path / "model")], capsys)
    assert "haze: NEON reflectance files flag" in line
    model = tmp_path / "clear"
    code, _, err = run_cli(["train", str(a), "-m", "rx", "--exclude-quality",
                            "partlycloudy,mostlycloudy", "-o", str(model) + ".hsad"], capsys)
    assert code == 0, err
    assert not list(tmp_path.glob("*_rx.tif"))


def test_a_file_without_a_grid_places_windows_hsad_cut_and_their_slices(tmp_path):
    path = tmp_path / NAME
    write_neon(path, weather=CODES, map_info=None)
    window = spatial_subset(open_cube(path), srcwin=(10, 12, 15, 20))
    np.testing.assert_array_equal(quality_valid(window, ("mostlycloudy",)),
                                  CODES[12:32, 10:25] != 3)
    # a slice of the window moves it (before, this was refused); of a reader's window too
    np.testing.assert_array_equal(
        quality_valid(window.isel(y=slice(2, 10), x=slice(1, 9)), ("mostlycloudy",)),
        CODES[14:22, 11:19] != 3)
    read = open_cube(path, window=_window(12, 10, 20, 15)).isel(y=slice(3, 9), x=slice(2, 7))
    np.testing.assert_array_equal(quality_valid(read, ("mostlycloudy",)),
                                  CODES[15:21, 12:17] != 3)
    # and a window cut of that slice (rows 16:20, columns 13:16)
    nested = spatial_subset(read, srcwin=(1, 1, 3, 4))
    np.testing.assert_array_equal(quality_valid(nested, ("mostlycloudy",)),
                                  CODES[16:20, 13:16] != 3)
    flipped = open_cube(path).isel(y=slice(None, None, -1))
    for cube in (window.isel(x=slice(None, None, -1)), flipped,
                 open_cube(path).isel(y=slice(12, 32)),
                 spatial_subset(flipped, srcwin=(10, 12, 15, 20))):  # a review's: cut after
        # a flip, placed unflipped
        with pytest.raises(ParameterError, match="sliced or flipped after it was opened"):
            prepare_cube(cube, exclude_quality="mostlycloudy")


def test_partial_nan_colours_and_infinite_codes_are_refused(tmp_path, capsys):
    colours = weather_colours(CODES).astype(np.float32)
    colours[5, 5] = (0, np.nan, 0)
    path = tmp_path / NAME
    write_neon(path, weather=colours)
    line = one_error(["detect", str(path), "-m", "rx", "--exclude-quality", "mostlycloudy",
                      "-o", str(tmp_path / "rx.tif")], capsys)
    assert "holds the colour (0, nan, 0), not one of NEON's" in line
    infinite = tmp_path / "inf.h5"
    write_neon(infinite, weather=np.where(CODES == 3, np.inf, CODES))
    with pytest.raises(FileFormatError, match="holds inf, not one of NEON's classes"):
        quality_valid(open_cube(infinite), ("mostlycloudy",))


def test_flags_as_a_sequence_are_read_as_the_options_text(neon):
    path, _ = neon
    kept = prepare_cube(open_cube(path), exclude_quality=[" MostlyCloudy"])
    assert (kept.values[CODES == 3] == -9999).all()
    assert (kept.values[CODES == 2] != -9999).all()


def test_training_leaves_the_flagged_pixels_out_of_the_fit(tmp_path, capsys):
    import zipfile

    path = tmp_path / NAME
    write_neon(path, weather=CODES)
    cube = open_cube(path)
    mask = tmp_path / "clear.tif"
    with rasterio.open(mask, "w", driver="GTiff", height=40, width=30, count=1,
                       dtype="uint8", crs=cube.rio.crs, transform=cube.rio.transform()) as dst:
        dst.write((CODES == 1).astype(np.uint8), 1)
    weights = []
    for name, extra in (("flags", ["--exclude-quality", "partlycloudy,mostlycloudy"]),
                        ("mask", ["--valid-mask", str(mask)]), ("all", [])):
        model = tmp_path / f"{name}.hsad"
        code, _, err = run_cli(["train", str(path), "-m", "rx", "-o", str(model), *extra],
                               capsys)
        assert code == 0, err
        with zipfile.ZipFile(model) as z:
            weights.append(z.read("model.safetensors"))
    assert weights[0] == weights[1] != weights[2]
