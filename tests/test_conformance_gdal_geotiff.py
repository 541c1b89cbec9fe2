"""GeoTIFFs where hsad read something other than GDAL (found by a differential review,
2026-12-03): wavelengths beside an alpha band, a per-dataset mask beside an alpha band,
masks of each band's own, per-band nodata values, and the transform of a slice of a
rotated grid. Each is compared with rasterio reading the same file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from hsad.cube import map_like, transform_of, valid_mask
from hsad.io.geotiff import open_geotiff
from hsad.io.geotiff_writer import write_geotiff

ROWS, COLS = 23, 37
WAVELENGTH = [450.5, 550.0, 650.25, 750.0, 850.5]
NORTH_UP = Affine(30, 0, 500000, 0, -30, 4200000)


def _write(path, count=6, dtype="uint8", transform=NORTH_UP, alpha=True, **profile):
    values = np.random.default_rng(0).integers(1, 200, (count, ROWS, COLS)).astype(dtype)
    if alpha:
        values[-1] = 255
        values[-1, :4, :6] = 0
    with rasterio.open(path, "w", driver="GTiff", width=COLS, height=ROWS, count=count,
                       dtype=dtype, crs="EPSG:32633", transform=transform, **profile) as ds:
        ds.write(values)
    if alpha:  # the last band (the TIFF's ExtraSamples)
        with rasterio.open(path, "r+") as ds:
            ds.colorinterp = [ColorInterp.gray] * (count - 1) + [ColorInterp.alpha]
        with rasterio.open(path) as ds:
            assert ds.colorinterp[-1] == ColorInterp.alpha
    return path


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


@pytest.mark.parametrize("where", ["band tags", "descriptions", "envi list"])
def test_wavelengths_of_the_data_bands_beside_an_alpha_band(tmp_path, where):
    """They were all NaN: every band, alpha too, had to carry one."""
    path = _write(tmp_path / "a.tif")
    with rasterio.open(path, "r+") as ds:
        for b, w in enumerate(WAVELENGTH, 1):
            if where == "band tags":
                ds.update_tags(b, wavelength=str(w), wavelength_units="Nanometers")
            elif where == "descriptions":
                ds.set_band_description(b, f"Band {b} ({w} nm)")
        if where == "envi list":
            ds.update_tags(ns="ENVI", wavelength="{" + ", ".join(map(str, WAVELENGTH)) + "}",
                           wavelength_units="Nanometers")
    cube = _quiet(open_geotiff, path)
    assert cube.sizes["band"] == 5
    np.testing.assert_allclose(cube["wavelength"].values, WAVELENGTH)


def _gdal_valid(path, bands) -> np.ndarray:
    with rasterio.open(path) as ds:
        return np.all([ds.read_masks(b) != 0 for b in bands], axis=0)


def test_a_per_dataset_mask_comes_before_an_alpha_band(tmp_path):
    """GDAL's mask of a gray + alpha file that also has an internal mask is the mask."""
    path = _write(tmp_path / "m.tif", count=2)
    mask = np.full((ROWS, COLS), 255, np.uint8)
    mask[10:14, 20:30] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as ds:
        ds.write_mask(mask)
    cube = _quiet(open_geotiff, path)
    assert cube.attrs["file_mask"] == "per-dataset mask" and cube.sizes["band"] == 1
    np.testing.assert_array_equal(valid_mask(cube).values, _gdal_valid(path, [1]))
    assert not valid_mask(cube).values[10:14, 20:30].any()


@pytest.mark.parametrize("dtype,flags", [("float32", "00000"), ("uint16", "00000"),
                                         ("float32", "20000")])
def test_masks_of_each_band_own_are_read_band_by_band(tmp_path, dtype, flags):
    """A ``.msk`` file with per-band flags: hsad ignored it. A pixel any band masks holds no
    data (hsad's rule, as for nodata), so the valid pixels are those every band's mask
    keeps."""
    path = _write(tmp_path / "p.tif", count=5, dtype=dtype, alpha=False)
    masks = np.full((5, ROWS, COLS), 255, np.uint8)
    masks[0, 0:3, 0:3] = 0
    masks[2, 10:12, 10:12] = 0
    masks[:, 20, 20] = 0
    with rasterio.open(str(path) + ".msk", "w", driver="GTiff", width=COLS, height=ROWS,
                       count=5, dtype="uint8") as msk:
        msk.write(masks)
        msk.update_tags(**{f"INTERNAL_MASK_FLAGS_{i}": f for i, f in enumerate(flags, 1)})
    cube = _quiet(open_geotiff, path)
    assert cube.attrs["file_mask"] == "per-band masks"
    np.testing.assert_array_equal(valid_mask(cube).values, _gdal_valid(path, range(1, 6)))
    assert valid_mask(cube).values.sum() == ROWS * COLS - 9 - 4 - 1
    # a read of one band masks as the whole cube does (an integer file without nodata is
    # read as float, NaN where masked)
    assert cube.dtype.kind == "f"
    np.testing.assert_array_equal(np.isnan(cube[:, :, 1:2].values[..., 0]),
                                  ~_gdal_valid(path, range(1, 6)))


def test_differing_nodata_per_band_warns(tmp_path):
    path = _write(tmp_path / "n.tif", count=3, dtype="int16", alpha=False, nodata=-1)
    (tmp_path / "n.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="2"><NoDataValue>-2</NoDataValue></PAMRasterBand>'
        "</PAMDataset>")
    with pytest.warns(UserWarning, match=r"different nodata values \(-1.0, -2.0\); hsad "
                                         r"takes one per scene, the first band's \(-1.0\)"):
        cube = open_geotiff(path)
    with rasterio.open(path) as ds:
        assert cube.attrs["nodata"] == ds.nodata == -1


@pytest.mark.parametrize("transform", [NORTH_UP, Affine(30, 5, 500000, 4, -30, 4200000),
                                       Affine(-20, 3, 600000, 7, 25, 100000)],
                         ids=["north-up", "rotated", "rotated-south-up"])
@pytest.mark.parametrize("rows,cols", [(slice(7, 22), slice(9, 35)),
                                       (slice(1, 20, 3), slice(0, 37, 2)),
                                       (slice(None, None, -1), slice(None)),
                                       (slice(20, 2, -2), slice(30, 1, -3))],
                         ids=["window", "strided", "reversed", "reversed-strided"])
def test_a_slice_has_its_own_transform(tmp_path, transform, rows, cols):
    """rioxarray's ``rio.transform()`` of a rotated grid is the full grid's, also for a
    slice, and a north-up one keeps the full grid's pixel size for a strided slice;
    ``transform_of`` and every hsad writer give the slice's: each pixel centred on the
    pixel it keeps, a step of k pixels making pixels k times as large (for step ±1, GDAL's
    window transform)."""
    path = _write(tmp_path / "r.tif", count=3, dtype="float32", transform=transform,
                  alpha=False)
    cube = _quiet(open_geotiff, path)
    part = cube[rows, cols]
    r, c = range(ROWS)[rows], range(COLS)[cols]
    # the first kept pixel's centre, less half a (k times larger) pixel
    first = (c.start + 0.5 - c.step / 2, r.start + 0.5 - r.step / 2)
    expected = transform @ Affine.translation(*first) @ Affine.scale(c.step, r.step)
    if abs(c.step) == abs(r.step) == 1:  # a window: GDAL's own window transform
        corner = (c.start + (c.step < 0), r.start + (r.step < 0))
        gdal = window_transform(Window(*corner, 1, 1), transform) @ Affine.scale(c.step,
                                                                                 r.step)
        np.testing.assert_allclose(tuple(gdal)[:6], tuple(expected)[:6], atol=1e-6)
    np.testing.assert_allclose(tuple(transform_of(part))[:6], tuple(expected)[:6],
                               rtol=0, atol=1e-6)
    # independently: each kept pixel's centre is where the full grid puts that pixel's
    jj, ii = np.meshgrid(np.arange(len(c)), np.arange(len(r)))
    kept = transform @ (np.array(c)[jj] + 0.5, np.array(r)[ii] + 0.5)
    np.testing.assert_allclose(transform_of(part) @ (jj + 0.5, ii + 0.5), kept, atol=1e-6)
    out = write_geotiff(map_like(part, np.asarray(part[:, :, 0].values)), tmp_path / "m.tif")
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(tuple(ds.transform)[:6], tuple(expected)[:6], atol=1e-6)
        np.testing.assert_array_equal(ds.read(1), part[:, :, 0].values)


def test_uneven_rows_and_other_coordinates_are_not_guessed(tmp_path):
    """Rows picked one by one have no affine transform (an error, not the full grid's);
    coordinates in map units beside a rotated transform leave the stored transform."""
    import xarray as xr

    from hsad.errors import ParameterError

    cube = _quiet(open_geotiff, _write(tmp_path / "r.tif", count=2, dtype="float32",
                                       transform=Affine(30, 5, 500000, 4, -30, 4200000),
                                       alpha=False))
    with pytest.raises(ParameterError, match="rows are not evenly spaced"):
        transform_of(cube.isel(y=[2, 5, 6]))
    rotated = Affine(-20, 3, 600000, 7, 25, 100000)
    other = xr.DataArray(np.zeros((ROWS, COLS)), dims=("y", "x"),
                         coords={"x": 600010 + 20.0 * np.arange(COLS),
                                 "y": 100012 + 25.0 * np.arange(ROWS)})
    assert transform_of(other.rio.write_transform(rotated)) == rotated


def test_coordinates_stored_in_float32_keep_their_grid():
    """A cube whose coordinates went through float32 (a NetCDF's) on a 0.0003° grid: their
    rounding is 2.5 % of a pixel, not a selection; a strided slice keeps its step."""
    from hsad.cube import make_cube

    grid = Affine(0.0003, 0, 120.1, 0, -0.0003, 30.2)
    cube = make_cube(np.zeros((300, 400, 1), np.float32), transform=grid, crs="EPSG:4326")
    rounded = cube.assign_coords(x=cube.x.astype(np.float32).astype(np.float64),
                                 y=cube.y.astype(np.float32).astype(np.float64))
    part = transform_of(rounded[10:200:2, 5:300:3])
    np.testing.assert_allclose(tuple(part)[:6], tuple(grid @ Affine.translation(4, 9.5) @
                                                      Affine.scale(3, 2))[:6], atol=1e-5)
    assert (part.a, part.e) == (0.0009, -0.0006)


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("grid", [Affine(30, 0, 500000, 0, -30, 4200000),
                                  Affine(30, 5, 500000, 4, -30, 4200000)],
                         ids=["north-up", "rotated"])
def test_a_coarsened_cube_lies_on_its_blocks(k, grid):
    """``cube.coarsen(x=k, y=k).mean()`` (binning) keeps its blocks' centres as coordinates:
    its transform is the grid's with k times larger pixels, from the same corner. It was a
    quarter of a coarse pixel off (each pixel put from its first fine pixel's corner)."""
    from hsad.cube import make_cube

    fine = np.random.default_rng(0).normal(size=(12, 18)).astype(np.float32)
    cube = make_cube(fine[:, :, None], transform=grid, crs="EPSG:32633")
    coarse = cube.coarsen(x=k, y=k, boundary="trim").mean()
    np.testing.assert_allclose(tuple(transform_of(coarse))[:6],
                               tuple(grid @ Affine.scale(k))[:6], atol=1e-6)
    from rasterio.warp import Resampling, reproject

    # GDAL's average resampling onto that grid gives the block means
    out = np.zeros((12 // k, 18 // k), np.float32)
    reproject(fine, out, src_transform=grid, src_crs="EPSG:32633",
              dst_transform=transform_of(coarse), dst_crs="EPSG:32633",
              resampling=Resampling.average)
    np.testing.assert_allclose(out, coarse.values[:, :, 0], rtol=1e-5, atol=1e-6)
    # and a reversed slice of the coarse cube is a window of the coarse grid
    np.testing.assert_allclose(tuple(transform_of(coarse[1:, ::-1]))[:6],
                               tuple(grid @ Affine.scale(k) @ Affine.translation(
                                   18 // k, 1) @ Affine.scale(-1, 1))[:6], atol=1e-6)


def test_padded_cubes_have_no_transform_and_say_why():
    from hsad.cube import make_cube
    from hsad.errors import ParameterError

    cube = make_cube(np.zeros((4, 5, 1), np.float32), transform=Affine(30, 0, 0, 0, -30, 0))
    for padded in (cube.pad(x=(1, 1)), cube.pad(y=(0, 2))):
        with pytest.raises(ParameterError, match="not finite \\(a padded cube\\?\\)"):
            transform_of(padded)
    with pytest.raises(ParameterError, match="boundary='pad' and a partial last block"):
        transform_of(make_cube(np.zeros((4, 10, 1), np.float32),
                               transform=Affine(30, 0, 0, 0, -30, 0)).coarsen(
                                   x=3, boundary="pad").mean())
