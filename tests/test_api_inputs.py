"""What a Python user hands the detectors: numpy arrays, cubes loaded into memory, plain or
``(band, y, x)`` DataArrays all give the map of the equivalent cube; anything else is a
ParameterError. ``import hsad`` reaches every subpackage."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

import hsad
from hsad import detectors, make_cube
from hsad.errors import ParameterError

ROWS, COLS, BANDS = 24, 20, 12


@pytest.fixture(scope="module")
def values():
    rng = np.random.default_rng(5)
    x = rng.normal(100.0, 4.0, (ROWS, COLS, BANDS)).astype(np.float32)
    x[5, 7] += 40.0
    x[0, 0] = np.nan
    return x


@pytest.mark.parametrize("method, params", [("rx", {}), ("lrx", {}),
                                            ("ae", {"epochs": 1, "progress": False})])
@pytest.mark.parametrize("form", ["numpy", "loaded", "band-first", "plain"])
def test_other_forms_of_a_cube_give_the_cube_s_map(values, method, params, form):
    expected = detectors.get(method, **params).fit_score(make_cube(values)).values
    if form == "numpy":
        given = values
    elif form == "loaded":
        given = make_cube(values).load()
    elif form == "band-first":
        given = xr.DataArray(np.moveaxis(values, -1, 0), dims=("band", "y", "x"))
    else:
        given = xr.DataArray(values, dims=("y", "x", "band"))
    got = detectors.get(method, **params).fit_score(given)
    assert got.dims == ("y", "x")
    np.testing.assert_array_equal(got.values, expected)
    assert np.isnan(got.values[0, 0]) and np.isfinite(got.values[1:]).all()


def test_a_reconstruction_residual_takes_any_form_of_cube(values):
    det = detectors.get("ae", epochs=1, progress=False).fit(values)
    expected = np.asarray(det.residual(make_cube(values)))
    np.testing.assert_array_equal(np.asarray(det.residual(values)), expected)


def test_a_numpy_score_map_can_be_thresholded(values):
    det = detectors.get("rx")
    scores = det.fit_score(values)
    mask = det.threshold(scores.values, contamination=0.01)
    np.testing.assert_array_equal(mask.values,
                                  det.threshold(scores, contamination=0.01).values)
    with pytest.raises(ParameterError, match=r"a score map is \(y, x\)"):
        det.threshold(values, contamination=0.01)


@pytest.mark.parametrize("given, match", [
    (np.ones((5, 6)), r"a cube is a real-valued \(rows, cols, bands\) array"),
    (np.full((3, 3, 2), "a"), "real-valued"),
    (xr.DataArray(np.ones((3, 3, 2)), dims=("a", "b", "c")), "with the dims"),
    (xr.DataArray(np.ones((3, 3, 2), complex), dims=("y", "x", "band")), "real-valued"),
], ids=["2-D", "strings", "dims", "complex"])
def test_what_is_not_a_cube_is_refused(given, match):
    with pytest.raises(ParameterError, match=match):
        detectors.get("rx").fit(given)


def test_no_raw_numpy_warnings_on_infinite_or_missing_pixels(values):
    infinite = values.copy()
    infinite[2, 2, 0], infinite[7, 9] = np.inf, -np.inf
    sparse = np.full_like(values, np.nan)
    sparse[10:16, 8:14] = values[10:16, 8:14]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rx = detectors.get("rx").fit_score(infinite).values
        local = detectors.get("local-mean-rx", kernel=5).fit_score(sparse).values
    assert np.isnan(rx[2, 2]) and np.isnan(rx[7, 9]) and np.isfinite(rx[3:6]).all()
    assert np.isfinite(local[10:16, 8:14]).all() and np.isnan(local[:10]).all()


def test_import_hsad_reaches_every_subpackage():
    code = ("import hsad; hsad.detectors.get('rx'); hsad.cube.make_cube; "
            "hsad.cube.nodata.set_nodata; hsad.engine.stats.cube_moments; "
            "hsad.io.model_archive.load_model; hsad.outputs.metrics.evaluate; "
            "hsad.nn.persistence.save_detector; hsad.detectors.state.savable; "
            "hsad.detectors.neural.NeuralDetector; hsad.fusion.tiled; hsad.cli.convert.convert\n"
            "try:\n    hsad.no_such_thing\nexcept AttributeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "module 'hsad' has no attribute 'no_such_thing'"


def test_a_lazy_rioxarray_array_is_read_tile_by_tile(tmp_path, values):
    import rasterio
    import rioxarray

    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=COLS, height=ROWS, count=BANDS,
                       dtype="float32", crs="EPSG:32633",
                       transform=rasterio.Affine(30, 0, 5e5, 0, -30, 4e6)) as dst:
        dst.write(np.moveaxis(np.nan_to_num(values), -1, 0))
    lazy = rioxarray.open_rasterio(path)
    from hsad.cube import as_cube

    cube = as_cube(lazy)
    assert cube.chunks is not None and cube.dims == ("y", "x", "band")
    assert not lazy.variable._in_memory  # the file was not read whole
    scores = detectors.get("rx").fit_score(lazy)
    assert not lazy.variable._in_memory
    assert scores.rio.crs == lazy.rio.crs and np.isfinite(scores.values).all()
    in_memory = detectors.get("rx").fit_score(rioxarray.open_rasterio(path).load())
    np.testing.assert_allclose(scores.values, in_memory.values, rtol=1e-5)


def test_a_lazy_rioxarray_array_is_chunked_before_it_is_transposed(tmp_path, monkeypatch):
    """as_cube transposed the file's (band, y, x) view before chunking it: every tile was
    then read through xarray's vectorised indexing, whose index arrays cost far more than
    the read (RX 15-30 times slower than on hsad.open_cube of the same file)."""
    import rasterio
    import rioxarray
    from xarray.core import indexing

    from hsad.cube import DEFAULT_CHUNK, as_cube

    rows = cols = DEFAULT_CHUNK + 16
    path = tmp_path / "scene.tif"
    values = np.random.default_rng(0).normal(size=(3, rows, cols)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=3,
                       dtype="float32", tiled=True) as dst:
        dst.write(values)
    vectorised = []
    real = indexing._decompose_vectorized_indexer
    monkeypatch.setattr(indexing, "_decompose_vectorized_indexer",
                        lambda *a, **k: vectorised.append(1) or real(*a, **k))
    cube = as_cube(rioxarray.open_rasterio(path))
    np.testing.assert_array_equal(cube.values, np.moveaxis(values, 0, -1))
    assert cube.chunks[0][0] == DEFAULT_CHUNK and vectorised == []


def test_a_plugin_without_string_annotations_keeps_its_defaults():
    source = (
        "from hsad.detectors.ae import Autoencoder\n"
        "class Plug(Autoencoder):\n"
        "    name = 'plug-test'\n"
        "    width: int = 8\n"
        "    rate: float = 0.5\n")
    namespace: dict = {}
    exec(compile(source, "plugin.py", "exec"), namespace)  # no ``from __future__``
    plug = namespace["Plug"]()
    plug._check_types()
    with pytest.raises(ParameterError, match="plug-test: width must be an integer"):
        namespace["Plug"](width="abc")._check_types()


def test_a_masked_array_keeps_its_mask(values):
    """Masked values hold no data: NaN in the map, as the same pixels set to NaN give (the
    mask was dropped, and the masked pixels entered the statistics)."""
    x = np.nan_to_num(values, nan=100.0)
    masked = np.zeros(x.shape, bool)
    masked[:4, :3] = True
    got = detectors.get("rx").fit_score(np.ma.masked_array(x, mask=masked)).values
    want = detectors.get("rx").fit_score(np.where(masked, np.nan, x)).values
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:4, :3]).all()
    as_int = np.ma.masked_array(np.ones((4, 5, 3), np.int16), mask=masked[:4, :5, :3])
    assert np.isnan(make_cube(as_int).values[:4, :3]).all()  # make_cube alike


def test_public_helpers_take_numpy_cubes_or_say_what_is_wrong(values):
    """The helpers beside the detectors take what the detectors take; a bad CRS, transform
    or map is one ParameterError, not a library's error."""
    import hsad
    from hsad.cube import make_cube as cube_of
    from hsad.cube import map_like, valid_mask
    from hsad.cube.nodata import set_nodata

    assert hsad.select_bands(values, bands=[1, 3]).shape == (ROWS, COLS, 2)
    assert int(valid_mask(values).values.sum()) == ROWS * COLS - 1
    assert set_nodata(values, 0).attrs["nodata"] == 0.0
    from hsad.outputs.plots import quicklook

    assert "RGB composite" in quicklook(values).axes[0].get_title()
    with pytest.raises(ParameterError, match="not a coordinate reference system PROJ knows"):
        cube_of(values, crs="EPSG:999999")
    for bad in ("abc", (30.0, 0.0, 5e5, 0.0, -30.0, 4e6)):  # bare numbers: whose order?
        with pytest.raises(ParameterError, match="transform must be an affine.Affine"):
            cube_of(values, transform=bad)
    with pytest.raises(ParameterError, match="map shape"):
        map_like(cube_of(values), np.zeros((3, 3)))


@pytest.mark.parametrize("method", ["rx", "crd", "lrx"])
def test_the_map_of_a_cube_in_memory_is_computed_and_keeps_no_tie_to_it(values, method):
    """The map of a numpy array stayed lazy on it: each use recomputed it, and editing
    the array later changed a map already returned (AUC 0.980 → 0.058)."""
    cube = np.nan_to_num(values).copy()
    for scores in (detectors.get(method).fit_score(cube),
                   detectors.get(method).fit(cube).score(cube)):
        assert isinstance(scores.data, np.ndarray)
        before = scores.values.copy()
        cube[:] = 0
        np.testing.assert_array_equal(scores.values, before)
        cube = np.nan_to_num(values).copy()
    # make_cube of a numpy array (how a numpy array gets its georeference) is in memory
    # too: its map had stayed lazy on the array (12.8 before an edit, 20135.1 after)
    cube = np.nan_to_num(values).copy()
    scores = detectors.get(method).fit_score(make_cube(cube))
    before = scores.values.copy()
    cube[:] = 0
    assert isinstance(scores.data, np.ndarray)
    np.testing.assert_array_equal(scores.values, before)
    import dask.array as da

    lazy = detectors.get(method).fit_score(make_cube(da.from_array(np.nan_to_num(values))))
    assert lazy.chunks is not None  # a lazy cube's map stays lazy


@pytest.mark.parametrize("dims", [("y", "x", "band"), ("band", "y", "x")])
def test_a_dataarray_without_coordinates_sits_where_its_numpy_array_does(values, dims):
    """`xr.DataArray(A, dims=...)` without coordinates got y, x = 0, 1, 2 … and a map whose
    transform was (1, 0, -0.5, 0, 1, -0.5): its GeoTIFF half a pixel off the numpy array's."""
    import xarray as xr
    from affine import Affine

    from hsad.cube import transform_of

    array = np.nan_to_num(values)
    data = array if dims[0] == "y" else np.moveaxis(array, 2, 0)
    ours = detectors.get("rx").fit_score(xr.DataArray(data, dims=dims))
    theirs = detectors.get("rx").fit_score(array)
    np.testing.assert_array_equal(ours["y"].values, theirs["y"].values)
    np.testing.assert_array_equal(ours["x"].values, theirs["x"].values)
    assert transform_of(ours) == transform_of(theirs) == Affine.identity()


@pytest.mark.parametrize("given", ["x", "y"])
def test_a_dataarray_with_coordinates_on_one_axis_only_has_pixel_centres_on_the_other(
        values, given):
    """x given (100, 110, …), y not: y took 0, 1, 2 … and the map's transform was
    (10, 0, 95, 0, 1, -0.5), half a pixel off along y; the missing axis now gets the pixel
    centres an array without coordinates gets (0.5, 1.5, …)."""
    import xarray as xr

    from hsad.cube import transform_of

    array = np.nan_to_num(values)
    n = array.shape[1 if given == "x" else 0]
    coords = {given: 100.0 + 10.0 * np.arange(n)}
    scores = detectors.get("rx").fit_score(xr.DataArray(array, dims=("y", "x", "band"),
                                                        coords=coords))
    other = "y" if given == "x" else "x"
    np.testing.assert_array_equal(scores[other].values,
                                  np.arange(scores.sizes[other]) + 0.5)
    t = transform_of(scores)
    along = {"x": (t.c, t.a), "y": (t.f, t.e)}
    assert along[given] == (95.0, 10.0) and along[other] == (0.0, 1.0)


def test_a_transform_written_with_rioxarray_places_the_missing_axis(values):
    """`rio.write_transform` (30 m from 500000, 4000000) and y coordinates only: the fix for
    one axis took x as 0.5, 1.5 … (a 1 m grid at 0) over the written transform."""
    import rioxarray  # noqa: F401  (the .rio accessor)
    import xarray as xr
    from affine import Affine

    from hsad.cube import transform_of

    array = np.nan_to_num(values)
    t = Affine(30, 0, 500000, 0, -30, 4000000)
    da = xr.DataArray(array, dims=("y", "x", "band")).rio.write_transform(t)
    da = da.assign_coords(y=4000000 - 15 - 30 * np.arange(array.shape[0]))
    scores = detectors.get("rx").fit_score(da)
    assert transform_of(scores) == t
    np.testing.assert_array_equal(scores["x"].values[:2], [500015.0, 500045.0])


def test_fit_score_passes_fits_keywords_on(values):
    cube = np.nan_to_num(values)
    background = np.zeros(cube.shape[:2], bool)
    background[: cube.shape[0] // 2] = True
    np.testing.assert_array_equal(
        detectors.get("rx").fit_score(cube, background=background).values,
        detectors.get("rx").fit(cube, background=background).score(cube).values)


def test_a_file_spy_opened_is_read_as_hsad_reads_it(tmp_path):
    """spectral.open_image(...) was refused with "got shape () object"."""
    import spectral

    from hsad import synthetic

    files = synthetic.write_scene(synthetic.make_scene(rows=24, cols=20, bands=12, seed=2),
                                  tmp_path)
    spy = spectral.open_image(str(files["cube"].with_suffix(".hdr")))
    cube = hsad.cube.as_cube(spy)
    ours = hsad.open_cube(files["cube"])
    np.testing.assert_array_equal(cube.values, ours.values)
    np.testing.assert_array_equal(cube["wavelength"].values, ours["wavelength"].values)
    np.testing.assert_array_equal(detectors.get("rx").fit_score(spy).values,
                                  detectors.get("rx").fit_score(ours).values)


def test_a_file_spy_opened_with_its_data_file_named_apart_is_read(tmp_path):
    """envi.open(header, image) with a data file whose name does not pair with the header
    was refused ("not a recognised cube"), though SPy reads it."""
    import shutil

    import spectral.io.envi as envi

    values = np.arange(8 * 6 * 3, dtype=np.float32).reshape(8, 6, 3)
    envi.save_image(str(tmp_path / "a.hdr"), values, force=True, ext=".dat",
                    metadata={"wavelength": [0.5, 0.6, 0.7], "wavelength units": "um",
                              "bbl": [1, 0, 1]})
    shutil.copy(tmp_path / "a.dat", tmp_path / "x_data.bin")
    cube = hsad.cube.as_cube(envi.open(str(tmp_path / "a.hdr"), str(tmp_path / "x_data.bin")))
    np.testing.assert_array_equal(cube.values, values)
    np.testing.assert_allclose(cube["wavelength"].values, [500, 600, 700])
    np.testing.assert_array_equal(cube["good_band"].values, [True, False, True])


def test_a_residual_of_a_cube_in_memory_stays_lazy_beside_computed_maps(values):
    """Computing the maps of a numpy cube also computed score_stages' residual, a second
    scene in memory (and an extra network pass)."""
    cube = np.nan_to_num(values)
    det = detectors.get("hadgan", hidden=8, depth=1, latent=2, epochs=1, sample_size=256,
                        progress=False, device="cpu").fit(cube)
    stages = det.score_stages(cube)
    assert stages["residual"].ndim == 3 and stages["residual"].chunks is not None
    assert all(isinstance(m.data, np.ndarray) for k, m in stages.items() if k != "residual")


def test_a_plugins_seed_that_is_no_integer_seed_is_not_recorded_and_fails_nothing():
    """A plugin's seed given as a Generator made fit fail after its work (int(...)), and
    one beyond 32 bits was recorded where load_model then refused it."""
    from hsad.detectors.base import BaseDetector

    class Seeded(BaseDetector):
        name = "seeded-plugin"

        def __init__(self, seed=0):
            self.seed = seed

        def fit(self, cube):
            self._remember_bands(cube)
            return self

    cube = make_cube(np.ones((4, 4, 3), np.float32))
    for seed, kept in ((np.random.default_rng(7), None), (2**40, None), (np.int64(5), 5)):
        assert Seeded(seed=seed).fit(cube).training_seed_ == kept


def test_a_spy_file_read_apart_keeps_its_nodata_and_survives_odd_fields(tmp_path):
    """The SPy fallback dropped `data ignore value` (the fill pixel became the top
    anomaly) and raised a raw ValueError on a non-numeric wavelength or bbl."""
    import shutil

    import spectral.io.envi as envi

    values = np.random.default_rng(0).normal(size=(6, 5, 3)).astype(np.float32)
    values[0, 0] = -9999
    envi.save_image(str(tmp_path / "a.hdr"), values, force=True, ext=".dat",
                    metadata={"data ignore value": -9999, "wavelength": ["a", "b", "c"],
                              "bbl": ["x", 1, 1]})
    shutil.copy(tmp_path / "a.dat", tmp_path / "x_data.bin")
    cube = hsad.cube.as_cube(envi.open(str(tmp_path / "a.hdr"), str(tmp_path / "x_data.bin")))
    assert cube.attrs["nodata"] == -9999
    assert np.isnan(cube["wavelength"].values).all() and cube["good_band"].values.all()
    scores = detectors.get("rx").fit_score(cube).values
    assert np.isnan(scores[0, 0])


def test_writers_and_readers_take_a_home_path_and_refuse_what_they_cannot_write(
        tmp_path, monkeypatch):
    """``write_geotiff(m, "~/m.tif")`` made a folder named ``~`` in the working folder and
    ``open_cube("~/m.tif")`` said only "no such file": a leading ``~``, which Python does
    not expand, is refused in every writer and named in the readers (a folder that is
    really named ``~`` is still written to); a folder given as the output was Python's
    IsADirectoryError, and ``nodata="x"``, ``description=5``, ``like="abc"`` and
    ``save_model("rx", …)`` were ValueError/AttributeError from inside."""
    from hsad.errors import FileFormatError, ModelError, OutputError
    from hsad.io.envi_writer import write_envi
    from hsad.io.model_archive import load_model, save_model

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    x = np.random.default_rng(0).normal(size=(16, 16, 5)).astype(np.float32)
    det = detectors.get("rx").fit(x)
    scores = det.score(x)
    for write in (lambda: hsad.write_geotiff(scores, "~/m.tif"),
                  lambda: hsad.write_geotiff(scores, "~/c.tif", cog=True),
                  lambda: write_envi(make_cube(x), "~/e.img"),
                  lambda: save_model(det, "~/rx.hsad")):
        with pytest.raises(OutputError, match="begins with '~', which only a shell expands"):
            write()
    assert list(work.iterdir()) == [] and list(home.iterdir()) == []
    with pytest.raises(FileFormatError, match="'~' is expanded by a shell, not by Python"):
        hsad.open_cube("~/m.tif")
    with pytest.raises(ModelError, match="'~' is expanded by a shell, not by Python"):
        load_model("~/rx.hsad")
    hsad.write_geotiff(scores, "~draft.tif")  # a file's own name: written, here
    assert (work / "~draft.tif").is_file()
    (work / "~").mkdir()  # a folder really named so
    hsad.write_geotiff(scores, "~/m.tif")
    np.testing.assert_array_equal(hsad.open_cube("~/m.tif").values[:, :, 0], scores.values)
    with pytest.raises(OutputError, match="is a folder"):
        hsad.write_geotiff(scores, home)
    with pytest.raises(OutputError, match="is a folder"):
        save_model(det, home)
    for option, match in (({"nodata": "x"}, "nodata= takes a number"),
                          ({"description": 5}, "description= takes a string"),
                          ({"like": "abc"}, "like= takes a map or cube"),
                          ({"tags": "x"}, "tags= takes a dict")):
        with pytest.raises(ParameterError, match=match):
            hsad.write_geotiff(scores, home / "o.tif", **option)
    with pytest.raises(ParameterError, match="save_model takes a fitted detector"):
        save_model("rx", home / "s.hsad")
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("kwargs, match", [
    ({"texture": float("inf")}, "texture must be a finite number ≥ 0"),
    ({"n_targets": -1}, "n_targets must be a whole number"),
    ({"seed": -1}, "seed must be a whole number"),
    ({"origin": "x"}, "origin must be a pair of finite numbers"),
    ({"fraction": 0.5}, "fraction must be a pair of finite numbers"),
    ({"rows": "32"}, "rows must be a whole number"),
])
def test_make_scene_refuses_what_makes_no_scene(kwargs, match):
    """``texture=inf`` gave an all-NaN cube beside a truth of targets, ``n_targets=-1`` no
    target, both in silence; a bad seed, origin or fraction raised numpy's errors."""
    from hsad.synthetic import make_scene

    with pytest.raises(ParameterError, match=match):
        make_scene(**{"rows": 32, "cols": 32, "bands": 20, **kwargs})


def test_a_margin_beyond_the_scene_is_the_scene_and_rates_are_checked():
    """``implant(margin=1000)`` on a 48 × 48 scene dilated by a 2001² square (MemoryError);
    ``target_report(fars=(2.0,))`` counted targets at a rate of 200 %."""
    from hsad.outputs.targets import target_report
    from hsad.synthetic import implant, make_scene

    scene = make_scene(rows=48, cols=48, bands=20)
    with pytest.raises(ParameterError, match="no room for 10 3x3 targets"):
        implant(scene.cube, scene.cube.values[3, 3], margin=1000)
    implant(scene.cube, scene.cube.values[3, 3], count=1, margin=1000)  # one: placed
    s = np.random.default_rng(0).random((20, 20))
    gt = np.zeros((20, 20), bool)
    gt[3, 3] = gt[10, 10] = True
    s[gt] = 5
    for fars in ((-1,), (2.0,), (float("nan"),), None, ("0.1",), []):
        with pytest.raises(ParameterError, match="false-alarm rates within"):
            target_report(s, gt, fars=fars)
    assert target_report(s, gt, fars=0.01).found == {0.01: 2}


def test_options_of_the_wrong_kind_are_one_line_errors(tmp_path):
    """Each raised numpy's, matplotlib's or rasterio's own error, or was taken silently:
    ``quicklook(max_size=0)`` (ZeroDivisionError), ``plot_losses`` of strings, a complex
    map written without its imaginary part, ``open_cube(window=(0, 0, 5, 5))``
    (AttributeError), six bare numbers as a polygons transform (rasterio's order taken in
    silence, GDAL's a TypeError), and ``crd``'s ``dtype=None`` (float64 in silence)."""
    from hsad.outputs.plots import plot_losses, quicklook
    from hsad.outputs.polygons import polygons
    from hsad.synthetic import make_scene

    cube = make_cube(np.random.default_rng(0).random((10, 10, 5)).astype(np.float32))
    mask = np.zeros((8, 8), bool)
    mask[2, 3] = True
    scene = hsad.write_geotiff(np.ones((4, 4), np.float32), tmp_path / "m.tif")
    cases = [
        (lambda: quicklook(cube, max_size=0), "max_size must be a number ≥ 1"),
        (lambda: quicklook(cube, max_size="a"), "max_size must be a number ≥ 1"),
        (lambda: plot_losses({"a": ["x", "y"]}), "each loss is a list of numbers"),
        (lambda: plot_losses({"a": [[1, 2], [3, 4]]}), "each loss is a list of numbers"),
        (lambda: hsad.write_geotiff(np.ones((4, 4), complex), tmp_path / "c.tif"),
         "a map holds real numbers, got complex128"),
        (lambda: hsad.open_cube(scene, window=(0, 0, 2, 2)), "window= takes a"),
        (lambda: polygons(mask, transform=(30, 0, 500000, 0, -30, 5100000)),
         "transform must be an affine.Affine"),
        (lambda: detectors.get("crd", dtype=None).fit_score(make_scene(
            rows=16, cols=16, bands=5).cube), "crd: dtype must be float32 or float64"),
    ]
    for call, match in cases:
        with pytest.raises(ParameterError, match=match):
            call()
    assert not (tmp_path / "c.tif").exists()


def test_siblings_of_the_fixed_readers_and_writers_behave_alike(tmp_path):
    """What the last fixes left in sibling code: placeholder wavelengths (all 0) from a
    GeoTIFF or a MAT file were kept, where the ENVI reader now takes them as unknown; a
    quicklook drew an ``("x", "y")`` map transposed, where ``evaluate`` reads it by name;
    ``write_geotiff_cube(nodata="x")`` was numpy's ValueError; ``make_scene(noise=inf)`` an
    all-NaN cube, and NumPy pairs for ``origin``/``fraction`` were refused."""
    import rasterio
    import scipy.io as sio
    import xarray as xr
    from rasterio.transform import from_origin

    from hsad.io.geotiff_writer import write_geotiff_cube
    from hsad.outputs.plots import quicklook
    from hsad.synthetic import make_scene

    data = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    with rasterio.open(tmp_path / "g.tif", "w", driver="GTiff", height=8, width=8, count=5,
                       dtype="float32", transform=from_origin(0, 8, 1, 1),
                       crs="EPSG:32633") as dst:
        dst.write(data)
        for b in range(1, 6):
            dst.update_tags(b, wavelength="0", wavelength_units="Nanometers")
    sio.savemat(tmp_path / "m.mat", {"data": data.transpose(1, 2, 0).astype(np.float64),
                                     "wavelength": np.zeros((1, 5))})
    for name in ("g.tif", "m.mat"):
        with pytest.warns(UserWarning, match="every band the same value \\(0\\), a placeholder"):
            cube = hsad.open_cube(tmp_path / name)
        assert np.isnan(cube["wavelength"].values).all()
    cube = make_cube(np.random.default_rng(1).random((30, 20, 3)).astype(np.float32))
    score = np.zeros((30, 20))
    score[25, 2] = 9.0
    by_name = xr.DataArray(score, dims=("y", "x")).transpose("x", "y")
    drawn = [quicklook(cube, m).axes[1].images[0].get_array() for m in (score, by_name)]
    np.testing.assert_array_equal(drawn[0], drawn[1])
    with pytest.raises(ParameterError, match="nodata= takes a number"):
        write_geotiff_cube(cube, tmp_path / "c.tif", nodata="x")
    with pytest.raises(ParameterError, match="noise must be a finite standard deviation"):
        make_scene(rows=32, cols=32, bands=20, noise=float("inf"))
    scene = make_scene(rows=32, cols=32, bands=20, origin=np.array([5e5, 5.1e6]),
                       fraction=np.array([0.1, 0.5]), seed=2**40)
    assert np.isfinite(scene.cube.values).all()


@pytest.mark.parametrize("wavelength", [[0, 0, 0], [np.nan] * 3, [400, 500, 600]])
def test_a_band_list_of_the_wrong_length_is_refused_whatever_its_values(wavelength):
    """`make_cube(8 bands, wavelength=[0, 0, 0])` (or all NaN) was taken as 8 unknown
    wavelengths with a placeholder warning; only a list of varied values was refused."""
    with pytest.raises(ParameterError, match="wavelength has 3 values but the cube has 8"):
        make_cube(np.zeros((2, 2, 8), np.float32), wavelength=wavelength)
