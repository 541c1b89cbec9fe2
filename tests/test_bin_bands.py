"""Band binning for scenes with too few pixels per band (hsad.cube.band_binning.bin_bands): groups,
group means, wavelengths, bad bands, nodata, laziness."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from hsad.cube import make_cube, valid_mask
from hsad.cube.band_binning import band_groups, bin_bands
from hsad.errors import ParameterError


def _cube(rows=6, cols=5, bands=10, nodata=None, good=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(100, 5, size=(rows, cols, bands)).astype(np.float32)
    return make_cube(x, wavelength=np.linspace(400, 850, bands), fwhm=np.full(bands, 10.0),
                     nodata=nodata, good_band=good)


def test_groups_are_adjacent_runs_of_near_equal_length_that_average():
    w = band_groups(10, 4)
    assert w.shape == (10, 4)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    assert ((w > 0).sum(axis=1) == 1).all()  # each band in exactly one group
    np.testing.assert_array_equal((w > 0).sum(axis=0), [3, 3, 2, 2])
    np.testing.assert_array_equal(np.argmax(w, axis=1), [0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(band_groups(3, 3), np.eye(3))
    for bad in (0, 11):
        with pytest.raises(ParameterError, match="n_groups must be 1 to 10"):
            band_groups(10, bad)


def test_binned_cube_holds_group_means_and_group_wavelengths():
    cube = _cube()
    out = bin_bands(cube, 4)
    assert out.dims == ("y", "x", "band") and out.shape == (6, 5, 4)
    assert out.dtype == np.float32 and isinstance(out.data, da.Array)
    x = cube.values.astype(np.float64)
    runs = np.array_split(np.arange(10), 4)
    expected = np.stack([x[:, :, r].mean(axis=2) for r in runs], axis=2)
    np.testing.assert_allclose(out.values, expected, rtol=1e-6)
    wl = cube["wavelength"].values
    np.testing.assert_allclose(out["wavelength"].values, [wl[r].mean() for r in runs])
    np.testing.assert_allclose(out["fwhm"].values, [wl[r[-1]] - wl[r[0]] + 10 for r in runs])
    assert out["good_band"].values.all()
    assert "averaged into 4 groups" in out.attrs["hsad_binned"]


def test_bad_bands_are_dropped_before_binning():
    good = np.ones(10, bool)
    good[[0, 9]] = False
    cube = _cube(good=good)
    out = bin_bands(cube, 4)
    np.testing.assert_allclose(out.values, bin_bands(cube.isel(band=slice(1, 9)), 4).values)
    assert out.attrs["hsad_binned"].startswith("8 good bands")


def test_nodata_pixels_become_nan_and_the_rest_is_unaffected():
    clean = _cube(nodata=-9999.0)
    x = clean.values.copy()
    x[1, 2, 3] = -9999.0
    cube = make_cube(x, wavelength=clean["wavelength"].values, nodata=-9999.0)
    out = bin_bands(cube, 5)
    assert np.isnan(out.values[1, 2]).all()
    keep = valid_mask(out).values
    assert int(keep.sum()) == 6 * 5 - 1 and not keep[1, 2]
    np.testing.assert_allclose(out.values[keep], bin_bands(clean, 5).values[keep])


def test_an_in_memory_cube_is_binned_too():
    cube = _cube()
    in_memory = cube.copy(data=cube.values)
    np.testing.assert_array_equal(bin_bands(in_memory, 3).values, bin_bands(cube, 3).values)


def test_bands_of_different_gains_average_in_physical_units():
    rng = np.random.default_rng(4)
    dn = rng.integers(100, 4000, (5, 6, 4)).astype(np.int16)
    gain, offset = np.array([1e-4, 2e-4, 1e-4, 3e-4]), np.array([0.0, 0.01, 0.0, -0.02])
    cube = make_cube(dn, wavelength=[500.0, 510.0, 600.0, 610.0]).assign_coords(
        band_scale=("band", gain), band_offset=("band", offset))
    cube.attrs.update(reflectance_scale_factor=2.0)
    binned = bin_bands(cube, 2)
    physical = (dn * gain + offset) / 2.0
    expected = np.stack([physical[..., :2].mean(-1), physical[..., 2:].mean(-1)], -1)
    np.testing.assert_allclose(binned.values, expected, rtol=1e-6)
    assert "band_scale" not in binned.coords and not binned.attrs.get(
        "reflectance_scale_factor")  # the binned values are physical: nothing to apply again


def test_bands_of_one_gain_are_averaged_as_stored_and_keep_it():
    dn = np.random.default_rng(5).integers(100, 4000, (5, 6, 4)).astype(np.int16)
    cube = make_cube(dn, wavelength=[500.0, 510.0, 600.0, 610.0]).assign_coords(
        band_scale=("band", np.full(4, 1e-4)), band_offset=("band", np.zeros(4)))
    cube.attrs.update(reflectance_scale_factor=2.0)
    binned = bin_bands(cube, 2)  # as the EnMAP tiles of the implanted suite: values unchanged
    expected = np.stack([dn[..., :2].mean(-1), dn[..., 2:].mean(-1)], -1)
    np.testing.assert_allclose(binned.values, expected, rtol=1e-6)
    np.testing.assert_array_equal(binned["band_scale"].values, [1e-4, 1e-4])
    assert binned.attrs["reflectance_scale_factor"] == 2.0
