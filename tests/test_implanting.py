"""Targets implanted into real backgrounds (hsad.synthetic.implant): placement, mixing,
seeding, truth, and the spectra helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hsad.cube import make_cube
from hsad.errors import ParameterError
from hsad.synthetic import SIZES, implant, object_spectra, resample_spectra, target_edge

BANDS = 8


def _background(rows=60, cols=60, seed=0):
    rng = np.random.default_rng(seed)
    x = 100 + rng.normal(size=(rows, cols, BANDS)).astype(np.float32)
    return make_cube(x, wavelength=np.linspace(450, 900, BANDS))


def _spectra():
    return np.stack([np.linspace(1, 2, BANDS), np.linspace(2, 1, BANDS)])


@pytest.mark.parametrize("size", [*SIZES, "5x5", "11x11"])
def test_targets_are_squares_of_their_size_away_from_labels_and_each_other(size):
    labelled = np.zeros((60, 60), bool)
    labelled[30:33, 30:33] = True
    im = implant(_background(), _spectra(), size=size, count=4, exclude=labelled, margin=2,
                 seed=5)
    edge = SIZES.get(size) or int(size.split("x")[0])
    parts, n = ndimage.label(im.implanted)
    assert n == 4 == len(im.targets)
    assert (np.bincount(parts.ravel())[1:] == edge * edge).all()
    grown = ndimage.binary_dilation(labelled, np.ones((5, 5)))
    assert not (im.implanted & grown).any()
    np.testing.assert_array_equal(im.truth, im.implanted | labelled)


def test_target_edge_takes_the_classes_and_any_square():
    assert [target_edge(s) for s in SIZES] == [1, 1, 3, 7, 15]
    assert target_edge("11x11") == 11 and target_edge("2x2") == 2
    for bad in ("11x9", "0x0", "big", "x3", "3x"):
        with pytest.raises(ParameterError, match="square NxN"):
            target_edge(bad)
    with pytest.raises(ParameterError, match="square NxN"):
        implant(_background(), _spectra(), size="4x5", count=1)


def test_implanted_pixels_are_linear_mixtures_and_the_rest_is_untouched():
    bg = _background()
    im = implant(bg, _spectra(), size="subpixel", count=10, abundance=(0.2, 0.6), seed=1)
    before, after = bg.values, im.cube.values
    np.testing.assert_array_equal(after[~im.implanted], before[~im.implanted])
    level = before.mean()
    spectra = _spectra()
    for t in im.targets:
        assert 0.2 <= t["abundance"] <= 0.6
        s = spectra[t["material"]]
        target = s / s.mean() * level * t["brightness"]
        a = t["abundance"]
        np.testing.assert_allclose(after[t["row"], t["col"]],
                                   (1 - a) * before[t["row"], t["col"]] + a * target,
                                   rtol=1e-5)  # float32 storage of values near 100


def test_the_same_seed_gives_the_same_scene_and_another_seed_another():
    a = implant(_background(), _spectra(), size="3x3", count=3, seed=2)
    b = implant(_background(), _spectra(), size="3x3", count=3, seed=2)
    c = implant(_background(), _spectra(), size="3x3", count=3, seed=3)
    np.testing.assert_array_equal(a.cube.values, b.cube.values)
    assert not np.array_equal(a.implanted, c.implanted)


def test_a_scene_without_room_is_refused():
    with pytest.raises(ParameterError, match="no room for 5 15x15 targets"):
        implant(_background(30, 30), _spectra(), size="15x15", count=5)
    with pytest.raises(ParameterError, match="size must be one of"):
        implant(_background(), _spectra(), size="2x3")
    with pytest.raises(ParameterError, match=r"spectra must be \(n, 8\), finite in the good"):
        implant(_background(), np.ones((1, BANDS + 1)))
    with pytest.raises(ParameterError, match="finite in the good bands"):
        implant(_background(), np.full((1, BANDS), np.nan))
    for rows, cols, size in ((40, 40, "45x45"), (25, 10, "12x12"), (25, 10, "30x30")):
        with pytest.raises(ParameterError, match=f"no room for 1 {size} targets.*0 placed.*"
                           "use smaller targets"):
            implant(_background(rows, cols), _spectra(), size=size, count=1)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("abundance", (0.5, 2.0), "abundance must be a range within"),
    ("abundance", (-1, 0), "abundance must be a range within"),
    ("abundance", (1, 0.1), "abundance must be a range within"),
    ("brightness", (-2, -1), "brightness must be a positive range"),
    ("count", -3, "count must be an integer"),
    ("count", 2.7, "count must be an integer"),
    ("margin", -1, "margin must be an integer"),
    ("exclude", np.zeros((5, 5), bool), "exclude must be a"),
    ("seed", -1, "seed must be an integer ≥ 0, got -1"),  # was numpy's "expected non-negative"
    ("seed", "1", "seed must be an integer"),
    ("abundance", 0.5, r"abundance must be a \(low, high\) pair of numbers, got 0.5"),
    ("brightness", (1, 2, 3), r"brightness must be a \(low, high\) pair"),
])
def test_parameters_out_of_range_are_refused(key, value, match):
    with pytest.raises(ParameterError, match=match):
        implant(_background(), _spectra(), size="subpixel", **{key: value})


@pytest.mark.parametrize("kind", ["nan", "nodata"])
def test_targets_cover_only_pixels_with_data(kind):
    """NaN pixels, or an integer cube's nodata value, never receive a target; the scene's
    level comes from the pixels with data only."""
    x = _background().values
    if kind == "nan":
        x[:, 15:] = np.nan
        cube = make_cube(x)
    else:
        x = np.round(x * 10).astype(np.uint16)
        x[:, 15:] = 0
        cube = make_cube(x, nodata=0)
    level = float(np.nanmean(x[:, :15]))
    for seed in range(10):
        im = implant(cube, _spectra(), size="3x3", count=4, seed=seed, texture=seed % 2 == 1)
        assert not im.implanted[:, 15:].any()
        out = im.cube.values
        assert (np.isnan(out[:, 15:]) if kind == "nan" else out[:, 15:] == 0).all()
        t = out[im.implanted].mean()
        assert 0.7 * level < t < 1.4 * level  # brightness 0.8–1.25 of the level, ± noise
    with pytest.raises(ParameterError, match="no room for 4 7x7 targets.*pixels with data"):
        implant(cube.isel(x=slice(10, 60)), _spectra(), size="7x7", count=4)


def test_object_spectra_are_the_means_of_labelled_objects():
    cube = _background()
    truth = np.zeros((60, 60), bool)
    truth[2:4, 2:4] = True
    truth[50, 50] = True
    spectra = object_spectra(cube, truth)
    x = cube.values
    np.testing.assert_allclose(spectra[0], x[2:4, 2:4].reshape(-1, BANDS).mean(0), rtol=1e-6)
    np.testing.assert_allclose(spectra[1], x[50, 50], rtol=1e-6)
    assert object_spectra(cube, truth, min_pixels=2).shape == (1, BANDS)


def test_resampling_follows_wavelength_or_band_position():
    wl = np.linspace(400, 1000, 7)
    line = 2.0 * wl[None, :]
    np.testing.assert_allclose(resample_spectra(line, wl, [450.0, 700.0]), [[900.0, 1400.0]])
    unknown = resample_spectra(np.arange(5.0)[None], [np.nan] * 5, [np.nan] * 9)
    np.testing.assert_allclose(unknown, [np.arange(9) / 2])


def test_a_library_in_micrometres_goes_onto_bands_in_nanometres():
    """Wavelengths below 100 are micrometres, as the readers take them: a library in µm put
    on nm bands had been clamped to its last value (every spectrum one constant)."""
    wl = np.linspace(400, 1000, 7)
    line = 2.0 * wl[None, :]
    np.testing.assert_allclose(resample_spectra(line, wl / 1000, [450.0, 700.0]),
                               [[900.0, 1400.0]])
    with pytest.raises(ParameterError, match=r"\(400–1000 nm\).*\(1200–1500 nm\) do not "
                                             "overlap"):
        resample_spectra(line, wl, [1200.0, 1500.0])


@pytest.mark.parametrize("fill", [np.nan, -32768.0])
@pytest.mark.parametrize("texture", [False, True])
def test_bad_bands_neither_set_the_level_nor_change(fill, texture):
    """The scene's level and a spectrum's are taken over the good bands, and the bad bands
    (fill values, NaN) are left as they were: a bad band of -32768 had pulled targets to
    -2259 in a scene of 100, and a bad band of NaN had made every target NaN (or, with
    texture, refused the scene)."""
    rng = np.random.default_rng(0)
    x = (100 + rng.normal(size=(30, 30, BANDS))).astype(np.float32)
    x[..., -1] = fill
    good = [True] * (BANDS - 1) + [False]
    cube = make_cube(x, good_band=good, nodata=None if np.isnan(fill) else fill)
    spectra = np.ones((2, BANDS))
    spectra[0, -1] = 1e6  # a library's value in a band the scene marks bad
    spectra[1, -1] = np.nan  # or none (a water-vapour band): neither is used
    im = implant(cube, spectra, size="3x3", count=3, brightness=(1.0, 1.0), seed=2,
                 texture=texture)
    out = np.asarray(im.cube.values)
    np.testing.assert_array_equal(out[..., -1], x[..., -1])
    targets = out[im.implanted][:, :-1]
    assert np.isfinite(targets).all()
    np.testing.assert_allclose(targets.mean(), x[..., :-1].mean(), rtol=0.01)


def test_texture_gives_targets_the_scenes_pixel_to_pixel_variation():
    """Without texture a square target is one spectrum; with it, its pixels vary as the
    background's neighbours do, and the placement and the materials stay the same."""
    cube, spectra = _background(), _spectra()
    flat = implant(cube, spectra, size="7x7", count=2, seed=4)
    rough = implant(cube, spectra, size="7x7", count=2, seed=4, texture=True)
    assert flat.targets == rough.targets
    for target in rough.targets:
        r, c, e = target["row"], target["col"], target["edge"]
        flat_px = np.asarray(flat.cube.values)[r:r + e, c:c + e].reshape(e * e, -1)
        rough_px = np.asarray(rough.cube.values)[r:r + e, c:c + e].reshape(e * e, -1)
        assert np.ptp(flat_px, axis=0).max() == 0
        x = np.asarray(cube.transpose("y", "x", "band").values, np.float64)
        noise = np.std((x[:, 1:] - x[:, :-1]) / np.sqrt(2), axis=(0, 1))
        spread = rough_px.std(axis=0)
        assert np.all(spread > 0.3 * noise) and np.all(spread < 3 * noise)
        # centred on the material: the mean of e*e noise draws lies within 5 standard errors
        np.testing.assert_array_less(np.abs(rough_px.mean(axis=0) - flat_px[0]), 5 * noise / e)


def test_a_numpy_cube_is_taken_as_the_other_helpers_take_it():
    """A (rows, cols, bands) array: it raised "'str' object cannot be interpreted as an
    integer" from ndarray.transpose; it is implanted as the same cube would be, in memory."""
    cube = _background()
    want = implant(cube, _spectra(), size="3x3", count=2, seed=1)
    got = implant(np.asarray(cube.values), _spectra(), size="3x3", count=2, seed=1)
    assert got.targets == want.targets
    assert not hasattr(got.cube.data, "dask") and hasattr(want.cube.data, "dask")
    np.testing.assert_array_equal(got.cube.values, want.cube.values)
    with pytest.raises(ParameterError, match="a cube is a real-valued"):
        implant(np.zeros((4, 4)), _spectra(), size="1x1", count=1)


def test_texture_is_not_clipped_at_zero():
    """Texture adds the scene's variation unclipped (as the docstring says): on a dark band
    whose target level lies below that variation, target values go negative."""
    rng = np.random.default_rng(0)
    x = np.stack([100 + 30 * rng.normal(size=(60, 60)), 1 + 5 * rng.normal(size=(60, 60))],
                 axis=-1)
    im = implant(make_cube(x.astype(np.float32)), [[1.0, 0.01]], size="15x15", count=1,
                 texture=True)
    dark = np.asarray(im.cube.values)[im.implanted][:, 1]
    assert (dark < 0).mean() > 0.3 and np.isfinite(dark).all()


def test_unlabelled_pixels_are_neither_anomalies_nor_covered():
    """A truth with NaN holes (load_labelled of an own file) as ``exclude`` made every
    unlabelled pixel an anomaly of the truth: 1035 pixels for 135."""
    labels = np.zeros((60, 60))
    labels[30:33, 30:33] = 1
    labels[:20, :20] = np.nan
    im = implant(_background(), _spectra(), size="3x3", count=8, exclude=labels, seed=4)
    assert im.truth.dtype == np.float32
    assert np.isnan(im.truth[:20, :20]).all() and not im.implanted[:20, :20].any()
    known = ~np.isnan(im.truth)
    np.testing.assert_array_equal(im.truth[known] == 1,
                                  (im.implanted | (labels == 1))[known])
    assert (im.truth == 1).sum() == 8 * 9 + 9
    # its companion takes the same truth: the NaN hole is no target spectrum
    assert object_spectra(_background(), labels).shape == (1, BANDS)
    plain = implant(_background(), _spectra(), size="3x3", count=8,
                    exclude=np.nan_to_num(labels) == 1, seed=4)
    assert plain.truth.dtype == bool  # a truth without holes stays a mask


def test_a_placement_that_jams_is_tried_anew():
    """Four 7x7 targets fit a 20x20 scene (one a corner), but one random placement, target
    by target, jammed for 64 seeds in 100 ("no room")."""
    for seed in range(100):
        im = implant(_background(20, 20), _spectra(), size="7x7", count=4, seed=seed)
        assert len(im.targets) == 4 and im.implanted.sum() == 4 * 49
    with pytest.raises(ParameterError, match=r"no room for 5 7x7 targets in a 20x20 scene "
                       r"\(at most 4 placed in 20 random placements"):
        implant(_background(20, 20), _spectra(), size="7x7", count=5)
