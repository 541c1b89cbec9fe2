"""Fill values and nodata that silently change a map: an undeclared fill value held in
every band (a swath's corners), a bright target saturated at the nodata value, and a scene
in a unit beyond the range the detectors handle (not a fill value)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hsad import detectors
from hsad.cube import make_cube
from hsad.engine import data_checks
from hsad.engine.data_checks import FILL_MAGNITUDE
from hsad.engine.stats import cube_moments
from hsad.errors import DegenerateDataWarning, ParameterError
from hsad.io import open_cube
from hsad.io.envi_writer import write_envi
from tests.cli_helpers import run_cli

FLAT = "in every good band (no measured spectrum is flat): an undeclared fill value"


def _background(rows=60, cols=60, bands=20, seed=0):
    rng = np.random.default_rng(seed)
    wl = np.linspace(400, 2400, bands)
    x = rng.normal(0.3, 0.02, (rows, cols, bands)) + 0.05 * np.sin(wl / 200)[None, None, :]
    x[rows // 2, cols // 2] += 0.2
    return x


def _swath(fill: float, rows=60, cols=60):
    """A rotated swath: about 85 % of the pixels hold ``fill`` in every band."""
    x = _background(rows, cols)
    yy, xx = np.mgrid[:rows, :cols]
    inside = np.abs((yy - rows / 2) * np.cos(0.5) - (xx - cols / 2) * np.sin(0.5)) < 4
    x[~inside] = fill
    return x.astype(np.float32), inside


def _messages(caught, text):
    return [str(w.message) for w in caught if text in str(w.message)]


@pytest.mark.parametrize("fill", [0.0, -9999.0])
@pytest.mark.parametrize(("name", "params"), [("rx", {}), ("aed", {}), ("cluster-rx", {}),
                                              ("vae", {"epochs": 1})])
def test_an_undeclared_fill_value_in_every_band_is_named(tmp_path, fill, name, params):
    """A swath exported without `data ignore value`: AED flagged 930 of 3600 pixels and RX
    one, without a word; every detector now names the value and the flag."""
    data, _ = _swath(fill)
    path = write_envi(make_cube(data), tmp_path / "swath.img")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detectors.get(name, **params).fit_score(open_cube(path))
    said = _messages(caught, FLAT)
    assert len(said) == 1, [str(w.message) for w in caught]
    assert said[0].startswith(f"{path}: {name}: about 8")  # the file, then the detector
    assert f"hold {fill:g} in every good band" in said[0]
    assert f"give --nodata {fill:g}" in said[0] and "\n" not in said[0]


@pytest.mark.parametrize("fill", [0.0, -9999.0])
def test_a_declared_fill_value_is_not_named(fill):
    data, inside = _swath(fill)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        scores = np.asarray(detectors.get("rx").fit_score(make_cube(data, nodata=fill)).values)
    assert np.isnan(scores[~inside]).all() and np.isfinite(scores[inside]).all()


def test_few_flat_pixels_few_bands_or_one_value_everywhere_are_no_fill():
    """1 % of pixels flat in 5 bands, a two-band scene whose bands agree, and a scene of
    one value (refused as every pixel alike) are not called a fill value."""
    data = _background()[..., :5].astype(np.float32)
    data.reshape(-1, 5)[::100] = 0.0  # 1 %
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("rx").fit(make_cube(data))
    two = np.random.default_rng(1).integers(0, 3, (40, 40, 1)).repeat(2, axis=2)
    assert data_checks.flat_fill(data_checks.good_sample(make_cube(two.astype(np.uint8)))) is None
    small = np.random.default_rng(1).integers(0, 255, (10, 12, 3)).astype(np.uint8)
    small[0, :4] = 31  # 3 % of 120 pixels, but 4 pixels: a coincidence, not a swath's filler
    assert data_checks.flat_fill(data_checks.good_sample(make_cube(small))) is None
    small[:2] = 31  # 20 % of them: a fill value
    assert data_checks.flat_fill(data_checks.good_sample(make_cube(small))) == (
        31.0, pytest.approx(0.2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        with pytest.raises(ParameterError, match="every pixel alike"):
            detectors.get("rx").fit(make_cube(np.full((20, 20, 8), 7.0, np.float32)))


def test_a_small_fill_in_many_bands_is_said_whatever_its_share():
    """25 of 1920 pixels (1.3 %) at -9999 in all 20 bands, no nodata declared: under the 2 %
    share they were scored as data in silence and made 21 of RX's top 25 pixels."""
    data = _background(40, 48).astype(np.float32)
    data[:4, :6] = -9999.0
    data[20, 20] = -9999.0
    with pytest.warns(DegenerateDataWarning, match=r"about 1% of the scene's pixels hold "
                      r"-9999 in every good band .* give --nodata -9999"):
        detectors.get("rx").fit(make_cube(data))
    big = _background(300, 300).astype(np.float32)
    big.reshape(-1, 20)[::200] = 0.0  # 0.5 %: 450 dead pixels
    with pytest.warns(DegenerateDataWarning,
                      match=r"about 0\.[4-7]\d?% of the scene.s pixels hold 0 "):
        detectors.get("rx").fit(make_cube(big))


def test_flat_fill_counts_the_pixels_holding_data():
    """The share is of the pixels holding data: NaN elsewhere does not dilute it, and the
    declared nodata value is never the answer."""
    data, inside = _swath(0.0)
    data[:10] = np.nan
    value, share = data_checks.flat_fill(data_checks.good_sample(make_cube(data)))
    expect = (~inside[10:]).mean()
    assert value == 0.0 and share == pytest.approx(expect, abs=1e-9)
    assert data_checks.flat_fill(data_checks.good_sample(make_cube(data, nodata=0.0)), 0.0) is None


def _saturated_scene(rows=300, cols=300):
    """uint16 with nodata 65535: three rows of fill, and a 2 × 2 bright target saturated
    at 65535 in band 16 (1-based) only."""
    x = _background(rows, cols)
    x[150:152, 150:152] += 0.5
    data = (x * 10000).clip(0, 65535).astype(np.uint16)
    data[150:152, 150:152, 15] = 65535
    data[:3] = 65535
    return data


def test_a_saturated_target_at_the_nodata_value_is_named_by_count(tmp_path):
    """The target became a NaN hole and the mask said 0 anomalous pixels, silently (the
    share warning starts at 1 %). The count comes from the statistics' pass, so a 2 × 2
    target on a scene larger than the 65,536-pixel sample is still found."""
    path = write_envi(make_cube(_saturated_scene(), nodata=65535), tmp_path / "sat.img")
    cube = open_cube(path, chunks=64)  # several blocks: counts merged
    with pytest.warns(DegenerateDataWarning) as caught:
        scores = np.asarray(detectors.get("rx").fit_score(cube).values)
    said = _messages(caught, "in some good bands only")
    assert len(said) == 1, [str(w.message) for w in caught]
    assert said[0].startswith(f"{path}: rx: 4 pixels hold 65535 in some good bands only")
    assert "mostly in band 16 (1-based)" in said[0] and "--nodata" in said[0]
    assert np.isnan(scores[150:152, 150:152]).all()
    moments = cube_moments(cube)
    assert moments.partial == 4 and moments.partial_bands[15] == 4
    assert moments.partial_bands.sum() == 4


def test_partial_counts_survive_blocks_without_valid_pixels():
    """A block all of whose pixels lack a band holds no valid pixel; its count is kept."""
    data = np.random.default_rng(2).integers(100, 4000, (32, 32, 6)).astype(np.uint16)
    data[:16, :, 2] = 0  # the first row of 16-pixel blocks: every pixel partial
    moments = cube_moments(make_cube(data, nodata=0).chunk({"y": 16, "x": 16}))
    assert moments.n == 16 * 32 and moments.partial == 16 * 32
    assert list(moments.partial_bands) == [0, 0, 16 * 32, 0, 0, 0]


def test_sampling_detectors_name_partial_pixels_the_sample_holds():
    """Cluster RX and the networks make no pass of their own at fitting: a scene no larger
    than the sample is counted whole, a larger one as far as the sample sees."""
    data = _saturated_scene(60, 60)
    data[30:32, 30:32, 15] = 65535
    with pytest.warns(DegenerateDataWarning, match=r"cluster-rx: 4 pixels hold 65535 in some "
                      r"good bands only .*mostly in band 16 \(1-based\)"):
        detectors.get("cluster-rx").fit(make_cube(data, nodata=65535))
    data = _saturated_scene(300, 300)
    data[100:120, 100:120, 15] = 65535  # 0.4 %: below the share warning
    with pytest.warns(DegenerateDataWarning, match=r"cluster-rx: \d+ sampled pixels hold "
                      r"65535 in some good bands only"):
        detectors.get("cluster-rx").fit(make_cube(data, nodata=65535))


def test_whole_pixels_at_the_nodata_value_are_not_partial():
    data = _saturated_scene(60, 60)  # the target lies outside: only the fill rows
    assert (data == 65535).any(axis=2).sum() == 3 * 60
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        detectors.get("rx").fit(make_cube(data, nodata=65535))


def test_huge_values_everywhere_are_a_unit_not_a_fill_value(tmp_path):
    """Values about 3e29 in every band: the warning spoke of "an undeclared fill value
    (such as -3.4e38)"; it says the unit is beyond the detectors' range, and what to do."""
    path = write_envi(make_cube(_background(40, 40) * 1e30), tmp_path / "e30.img")
    with pytest.warns(DegenerateDataWarning) as caught:
        detectors.get("rx").fit(open_cube(path))
    said = [str(w.message) for w in caught]
    assert not any("undeclared fill value" in s for s in said), said
    unit = [s for s in said if "the scene's unit, not a fill value" in s]
    assert len(unit) == 1 and unit[0].startswith(f"{path}: rx: most pixels hold values beyond")
    assert "rescale the scene first (divide it by 1e29)" in unit[0]
    note = data_checks.fill_limit_note(open_cube(path))
    assert "the scene's unit" in note and f"±{FILL_MAGNITUDE:g}" in note


def test_a_few_extreme_pixels_among_normal_ones_are_still_a_fill_value():
    data = _background(40, 40).astype(np.float32)
    data[0, 0] = -3.4028235e38
    with pytest.warns(DegenerateDataWarning) as caught:
        detectors.get("rx").fit(make_cube(data))
    said = [str(w.message) for w in caught]
    assert any("undeclared fill value" in s and "--nodata" in s for s in said), said
    assert not any("the scene's unit" in s for s in said)
    assert "--nodata VALUE" in data_checks.fill_limit_note(make_cube(data))


def test_the_command_line_prints_the_fill_warning_in_one_line(tmp_path, capsys):
    data, _ = _swath(0.0)
    path = write_envi(make_cube(data), tmp_path / "swath.img")
    code, _, err = run_cli(["detect", path, "-m", "rx", "-o", tmp_path / "rx.tif"], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if FLAT in line]
    assert lines == [f"warning: {path}: rx: about 85% of the scene's pixels hold 0 in every "
                     f"good band (no measured spectrum is flat): an undeclared fill value? "
                     f"They are scored as data and skew the statistics; give --nodata 0 "
                     f"(hsad.cube.nodata.set_nodata(cube, 0))"]


def test_the_fill_value_is_advised_as_the_data_hold_it():
    """A float32 fill of -0.89989996 (a scaled -9999) was advised as `--nodata -0.8999`
    (`:g`'s six digits), which matches no pixel: the warning came back after it was
    followed. Written as float32 holds it, the advice declares the fill."""
    from hsad.cube.nodata import set_nodata
    from hsad.cube.nodata_values import value_text

    fill = np.float32(-9999) * np.float32(1e-4) + np.float32(0.1)
    data, _ = _swath(float(fill))
    data = data.astype(np.float32)
    with pytest.warns(DegenerateDataWarning, match=r"hold -0\.89989996 in every good band.*"
                      r"give --nodata -0\.89989996 \(hsad\.cube\.nodata\.set_nodata\(cube, "
                      r"-0\.89989996\)\)"):
        data_checks.check_partial_nodata(make_cube(data), "rx")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)  # the advice followed: quiet
        data_checks.check_partial_nodata(set_nodata(make_cube(data), -0.89989996), "rx")
    assert value_text(4294967295, np.uint32) == "4294967295"  # not 4.29497e+09
    assert value_text(-9999.0, np.float32) == "-9999"
