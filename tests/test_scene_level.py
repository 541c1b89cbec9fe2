"""A model applied to a scene on another scale (reflectance × 10000 against reflectance)
warns (hsad.detectors.level_check): its statistics do not describe that scene, and global
RX then ranks pixels by their level (abu-urban-1 × 10000: AUC 0.70 instead of 0.99)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hsad import detectors
from hsad.cube import make_cube
from hsad.errors import DegenerateDataWarning

LEVEL = "spreads from the data the model was fitted on"
TINY = dict(hidden=8, epochs=1, sample_size=256, batch_size=64, progress=False, device="cpu")


def _reflectance(seed: int, shape=(24, 24, 12)) -> np.ndarray:
    """Reflectance-like values, 0.1–0.5 per band with a 0.02 spread."""
    rng = np.random.default_rng(seed)
    level = np.linspace(0.1, 0.5, shape[2], dtype=np.float32)
    return (level + 0.02 * rng.normal(size=shape)).astype(np.float32)


def _detector(name: str):
    params = detectors.available()[name].param_defaults()
    return detectors.get(name, **{k: v for k, v in TINY.items() if k in params})


def _level_warnings(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught if LEVEL in str(w.message)]


@pytest.mark.parametrize("name", ["rx", "cluster-rx", "local-mean-rx", "utd", "ae"])
def test_a_scene_on_another_scale_warns(name):
    det = _detector(name).fit(make_cube(_reflectance(0)))
    scaled = make_cube(_reflectance(0) * 10000)
    times = r".*about (9,9\d\d|10,0\d\d)× its level"
    with pytest.warns(DegenerateDataWarning, match=LEVEL + times):
        det.score(scaled).compute()


@pytest.mark.parametrize("name", ["rx", "cluster-rx", "ae"])
def test_a_scene_on_a_smaller_scale_warns(name):
    """A model of DNs (reflectance × 10000, a wide spread) on reflectance: the scene lies
    only a few of the model's spreads from its level, but 10000 times below it."""
    rng = np.random.default_rng(2)
    dn = (rng.uniform(500, 5000, size=(24, 24, 12))).astype(np.float32)  # wide: σ ~ level/2
    det = _detector(name).fit(make_cube(dn))
    with pytest.warns(DegenerateDataWarning, match=LEVEL + r".*about 1/(9,9\d\d|10,\d\d\d) of"):
        det.score(make_cube(dn / 10000)).compute()
    # a darker scene of the same product, a fifth of the level: no warning
    assert _level_warnings(lambda: det.score(make_cube(dn / 5)).compute()) == []


@pytest.mark.parametrize("name", ["rx", "cluster-rx", "ae"])
def test_another_scene_on_the_same_scale_and_the_fitted_scene_do_not(name):
    det = _detector(name)
    cube = make_cube(_reflectance(0))
    assert _level_warnings(lambda: det.fit(cube).score(cube).compute()) == []
    assert _level_warnings(lambda: det.fit_score(make_cube(_reflectance(0))).compute()) == []
    assert _level_warnings(lambda: det.score(make_cube(_reflectance(1))).compute()) == []


def _water_and_land(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A scene whose left half is dark and uniform (water: 0.02 ± 0.001) and whose right
    half is bright (land: 0.3 ± 0.02); the left-half mask."""
    rng = np.random.default_rng(seed)
    x = np.empty((24, 24, 12), np.float32)
    x[:, :12] = 0.02 + 0.001 * rng.normal(size=(24, 12, 12))
    x[:, 12:] = 0.3 + 0.02 * rng.normal(size=(24, 12, 12))
    left = np.zeros((24, 24), bool)
    left[:, :12] = True
    return x, left


@pytest.mark.parametrize("name", ["rx", "ae"])
def test_a_model_of_a_background_area_scores_its_own_scene_quietly(name):
    """Fitted on the water, the model's level is 140 of its spreads from the scene's
    medians: the scene it was fitted on is on its scale all the same, as an array or a
    cube, and so is another draw of that scene; the scene × 10000 is not."""
    x, left = _water_and_land()
    det = _detector(name)
    fit = (lambda a: det.fit(a, background=left)) if name == "rx" else \
        (lambda a: det.fit(a, train_mask=left))
    assert _level_warnings(lambda: fit(x).score(x).compute()) == []
    assert _level_warnings(lambda: fit(make_cube(x)).score(make_cube(x)).compute()) == []
    assert _level_warnings(lambda: det.score(_water_and_land(1)[0]).compute()) == []
    assert _level_warnings(lambda: det.score(x * 10000).compute())


def test_the_spreads_are_the_training_datas_own():
    """RX: the per-band standard deviation; cluster RX: the total one (within the clusters
    and between their centres), not one cluster's."""
    x, _ = _water_and_land()
    flat = x.reshape(-1, x.shape[2]).astype(np.float64)
    centre, spread = detectors.get("rx").fit(x)._training_level()
    np.testing.assert_allclose(centre, flat.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(spread, flat.std(axis=0), rtol=1e-3)
    for covariance in ("pooled", "cluster"):
        crx = detectors.get("cluster-rx", n_clusters=2, covariance=covariance).fit(x)
        assert crx.n_sample_ == len(flat)
        np.testing.assert_allclose(crx._training_level()[1], flat.std(axis=0), rtol=1e-3)


class _Reads:
    """An array-like file (as hsad's readers give ``dask.array.from_array``) that counts the
    values it reads: the bounding box of each request, as a reader reads a window."""

    def __init__(self, values: np.ndarray):
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, 3
        self.read = 0

    def __getitem__(self, key):
        boxes = [range(n)[k] for k, n in zip(key, self.shape, strict=True)]
        self.read += int(np.prod([max(r) - min(r) + 1 if len(r) else 0 for r in boxes]))
        return self.values[key]


def test_the_check_reads_small_windows_not_the_scene():
    """About LEVEL_SAMPLE pixels of a large lazy scene are read, bands selected after."""
    import dask.array as da

    from hsad.detectors import level_check

    scene = _Reads(np.ones((1024, 1024, 6), np.float32))
    lazy = da.from_array(scene, chunks=(256, 256, 6), asarray=False)
    bands = np.array([True, False, True, True, False, True])
    medians = level_check.scene_medians(lazy, bands, None)
    np.testing.assert_array_equal(medians, np.ones(4))
    assert 0 < scene.read <= 2 * level_check.LEVEL_SAMPLE * 6
    # a scene of at most ONE_PASS_BYTES is read whole, in one computation, to the same
    # medians (one computation per window cost more than the reading)
    from hsad.engine.sampling import ONE_PASS_BYTES

    small = _Reads(np.ones((128, 128, 6), np.float32))
    assert small.values.nbytes <= ONE_PASS_BYTES
    lazy = da.from_array(small, chunks=(64, 64, 6), asarray=False)
    np.testing.assert_array_equal(level_check.scene_medians(lazy, bands, None), np.ones(4))
    assert small.read == 128 * 128 * 6


def test_a_network_checks_a_wide_scene_on_one_sample(monkeypatch):
    """A network scoring a scene stored wider than float32 runs two checks (the offset and
    the level): they share one even sample, passed along, not kept anywhere (a kept sample
    went stale when an in-memory array changed in place)."""
    import dask.array as da

    from hsad.detectors import level_check

    det = _detector("ae").fit(make_cube(_reflectance(0)))
    draws = []
    original = level_check.even_sample
    monkeypatch.setattr(level_check, "even_sample", lambda *a: draws.append(1) or original(*a))
    wide = make_cube(da.from_array(_reflectance(1).astype(np.float64), chunks=(12, 12, -1)))
    det._check_scene(wide)
    assert len(draws) == 1
    values = _reflectance(2).astype(np.float64)
    scene = make_cube(values)  # shares the array's memory
    det._check_scene(scene)
    values *= 10000  # changed in place: the next check sees it
    with pytest.warns(DegenerateDataWarning, match=LEVEL):
        det._check_scene(scene)


def test_scoring_the_scene_just_fitted_takes_no_second_sample(monkeypatch):
    """fit_score compares the scene with itself: its level is read once, at fit."""
    import dask.array as da

    from hsad.detectors import level_check

    calls = []
    original = level_check.scene_medians
    monkeypatch.setattr(level_check, "scene_medians",
                        lambda *a: calls.append(1) or original(*a))
    cube = make_cube(da.from_array(_reflectance(0), chunks=(16, 16, -1)))
    detectors.get("rx").fit_score(cube)
    assert len(calls) == 1
    detectors.get("rx").fit(cube).score(cube * 10000)  # another scene: checked
    assert len(calls) == 3


def test_the_cli_warns_with_a_model_on_a_scaled_scene(tmp_path, capsys):
    import scipy.io

    from hsad.cli.main import main

    scipy.io.savemat(tmp_path / "a.mat", {"data": _reflectance(0)})
    scipy.io.savemat(tmp_path / "b.mat", {"data": _reflectance(1) * 10000})
    model = tmp_path / "rx.hsad"
    with pytest.raises(SystemExit) as done:
        main(["train", str(tmp_path / "a.mat"), "-m", "rx", "-o", str(model), "--quiet"])
    assert done.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["detect", str(tmp_path / "b.mat"), "--model", str(model),
              "-o", str(tmp_path / "b.tif")])
    assert done.value.code == 0
    assert (tmp_path / "b.tif").exists()
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if LEVEL in line and line.startswith("warning: ")
            and "b.mat: rx: " in line and ("about 9,900×" in line or "about 10,000×" in line)]


def _warned_then_applied(run, tmp_path, scene, out):
    """A model of reflectance (``a.img``) on the ×10000 ``scene``: the warning names the
    declared factor and `--apply-scale`, which then leaves no warning; the model's path."""
    model = tmp_path / "rx.hsad"
    assert run("train", tmp_path / "a.img", "-m", "rx", "-o", model, "-q")[0] == 0
    code, said = run("detect", scene, "--model", model, "-o", out)
    assert code == 0 and "declares a reflectance scale factor of 10000, not applied: give " \
        "--apply-scale" in said.err
    code, said = run("detect", scene, "--model", model, "--apply-scale", "-o",
                     tmp_path / "s.tif")
    assert code == 0 and LEVEL not in said.err, said.err
    return model


def test_a_declared_scale_factor_is_named_and_applied_by_apply_scale(tmp_path, capsys):
    """An int16 × 10000 ENVI scene declaring `reflectance scale factor = 10000` under a model
    of reflectance: the warning said to convert the scene, and no command could apply the
    factor (`apply_scale` was the API's alone)."""
    from hsad.cli.main import main
    from hsad.io.envi_writer import write_envi

    def run(*args):
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        return done.value.code, capsys.readouterr()

    write_envi(make_cube(_reflectance(0)), tmp_path / "a.img")
    dn = make_cube(np.round(_reflectance(1) * 10000).astype(np.int16))
    dn.attrs["reflectance_scale_factor"] = 10000.0
    write_envi(dn, tmp_path / "b.img")
    write_envi(make_cube(np.round(_reflectance(1) * 10000).astype(np.int16) / np.float32(1e4)),
               tmp_path / "ref.img")
    model = _warned_then_applied(run, tmp_path, tmp_path / "b.img", tmp_path / "b.tif")
    assert run("detect", tmp_path / "ref.img", "--model", model, "-o", tmp_path / "r.tif")[0] == 0
    import rasterio

    with rasterio.open(tmp_path / "s.tif") as a, rasterio.open(tmp_path / "r.tif") as b:
        np.testing.assert_allclose(a.read(1), b.read(1), rtol=1e-4)
    assert run("train", tmp_path / "b.img", "-m", "rx", "--apply-scale", "-o",
               tmp_path / "b.hsad", "-q")[0] == 0
    code, _ = run("convert", tmp_path / "b.img", tmp_path / "c.img", "--apply-scale")
    from hsad import open_cube

    converted = open_cube(tmp_path / "c.img")
    assert code == 0 and not converted.attrs.get("reflectance_scale_factor")
    np.testing.assert_allclose(converted.values, open_cube(tmp_path / "ref.img").values,
                               rtol=1e-6)


def _rewrite_config(model, change) -> None:
    """Apply ``change`` to the config.json of the model file ``model``, in place."""
    import json
    import zipfile

    with zipfile.ZipFile(model) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("name", ["rx", "ae"])
def test_a_saved_model_of_a_background_area_remembers_its_scene(name, tmp_path):
    """The fitted scene's medians travel in the model file: loaded, the water model scores
    its own scene quietly and the scene × 10000 with the warning. A file written without
    them (an earlier hsad) warns on its own scene, as it did."""
    from hsad.io.model_archive import SCENE_LEVEL, load_model, save_model

    x, left = _water_and_land()
    det = _detector(name)
    det.fit(x, background=left) if name == "rx" else det.fit(x, train_mask=left)
    model = save_model(det, tmp_path / f"{name}.hsad")
    loaded = load_model(model)
    np.testing.assert_array_equal(loaded._fitted_scene_level, det._fitted_scene_level)
    assert _level_warnings(lambda: loaded.score(x).compute()) == []
    assert _level_warnings(lambda: loaded.score(x * 10000).compute())
    _rewrite_config(model, lambda c: c.pop(SCENE_LEVEL))
    assert _level_warnings(lambda: load_model(model).score(x).compute())


@pytest.mark.parametrize("value", [[0.1] * 11, "0.1", [True] * 12, [float("inf")] * 12,
                                   [[0.1]] * 12, {}, [10**400] * 12])
@pytest.mark.parametrize("name", ["rx", "ae"])
def test_a_tampered_scene_level_is_refused(name, value, tmp_path):
    from hsad.errors import ModelError
    from hsad.io.model_archive import SCENE_LEVEL, load_model, save_model

    model = save_model(_detector(name).fit(_reflectance(0)), tmp_path / f"{name}.hsad")
    _rewrite_config(model, lambda c: c.update({SCENE_LEVEL: value}))
    with pytest.raises(ModelError, match=f"{SCENE_LEVEL} must hold 12 finite numbers"):
        load_model(model)


@pytest.mark.parametrize("name", ["rx", "cluster-rx", "ae"])
def test_a_model_screens_the_scene_it_scores_as_fit_does(name):
    """Zero-filled columns and NaN in some bands were warned of when a detector fitted the
    scene, and scored in silence by a model fitted elsewhere (the fill flagged as found)."""
    det = _detector(name).fit(make_cube(_reflectance(0)))
    filled = _reflectance(1)
    filled[:, :4] = 0.0
    filled[:, 10:12, 3:5] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det.score(make_cube(filled)).compute()
    said = [str(w.message) for w in caught]
    assert sum("hold 0 in every good band" in s for s in said) == 1, said
    assert sum("no finite value (NaN or ±inf) in some good bands" in s for s in said) == 1


def test_the_command_warns_of_a_fill_once_with_or_without_a_model(tmp_path, capsys):
    from hsad.cli.main import main
    from hsad.io.envi_writer import write_envi

    clean = write_envi(make_cube(_reflectance(0)), tmp_path / "a.img")
    filled = _reflectance(1)
    filled[:, :4] = 0.0
    scene = write_envi(make_cube(filled), tmp_path / "b.img")
    runs = (["detect", scene, "-m", "rx", "-o", tmp_path / "one.tif"],
            ["train", clean, "-m", "rx", "-o", tmp_path / "rx.hsad"],
            ["detect", scene, "--model", tmp_path / "rx.hsad", "-o", tmp_path / "two.tif"])
    said = []
    for args in runs:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        assert exc.value.code == 0
        said.append(capsys.readouterr().err.count("hold 0 in every good band"))
    assert said == [1, 0, 1]


def test_centred_data_have_no_scale_to_compare():
    """Mean-centred scenes (levels within a spread of zero): the ratio of two levels near
    zero says nothing, and only the distance in spreads is asked."""
    rng = np.random.default_rng(5)
    a = rng.normal(0.0, 1.0, size=(24, 24, 12))
    a = (a - a.mean(axis=(0, 1)) + 0.001).astype(np.float32)  # centred at 0.001
    b = (rng.normal(0.0, 1.0, size=(24, 24, 12)) + 0.1).astype(np.float32)  # 100 times that
    det = _detector("rx").fit(make_cube(a))
    assert _level_warnings(lambda: det.score(make_cube(b)).compute()) == []


def test_a_few_saturated_pixels_of_a_scored_scene_are_named():
    """A scene of up to 65,536 pixels scored by a model is screened whole: three pixels
    at the nodata value in some bands (NaN in the map) were once sampled away."""
    rng = np.random.default_rng(0)
    base = rng.normal(3000, 200, (128, 128, 12)).astype(np.uint16)
    det = _detector("rx").fit(make_cube(base, nodata=65535))
    x = base.copy()
    x[[5, 60, 100], [7, 70, 90], 5:8] = 65535
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = det.score(make_cube(x, nodata=65535)).values
    assert np.isnan(scores).sum() == 3
    assert any("3 pixels hold 65535 in some good bands" in str(w.message) for w in caught)


def test_apply_scale_reads_a_converted_geotiff_as_its_envi_source(tmp_path, capsys):
    """`hsad convert` of a ×10000 ENVI file to GeoTIFF writes the factor as the band scale
    (1/10000), which GDAL reads as reflectance; `--apply-scale` on that GeoTIFF did nothing
    (3103 for 0.3103), and the level warning named no way to apply it."""
    from hsad.cli.main import main
    from hsad.io import open_cube
    from hsad.io.envi_writer import write_envi

    def run(*args):
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        return done.value.code, capsys.readouterr()

    write_envi(make_cube(_reflectance(0)), tmp_path / "a.img")
    values = np.round(_reflectance(1) * 10000).astype(np.int16)
    values[0, 0] = -9999
    dn = make_cube(values, nodata=-9999)
    dn.attrs["reflectance_scale_factor"] = 10000.0
    write_envi(dn, tmp_path / "b.img")
    assert run("convert", tmp_path / "b.img", tmp_path / "b.tif", "-q")[0] == 0
    envi = open_cube(tmp_path / "b.img", apply_scale=True)
    tif = open_cube(tmp_path / "b.tif", apply_scale=True)
    assert tif.dtype == np.float32 and tif.attrs["scale_applied"]
    assert "band_scale" not in tif.coords and np.isnan(tif.attrs["nodata"])
    np.testing.assert_allclose(tif.values, envi.values, rtol=1e-6)
    assert np.isnan(tif.values[0, 0]).all()
    assert open_cube(tmp_path / "b.tif").dtype == np.int16  # as stored without it
    # and back to ENVI: the scale is `data gain values` there, which --apply-scale applies
    # too (it had divided by a reflectance scale factor only: 3103 again)
    assert run("convert", tmp_path / "b.tif", tmp_path / "c.img", "-q")[0] == 0
    np.testing.assert_allclose(open_cube(tmp_path / "c.img", apply_scale=True).values,
                               envi.values, rtol=1e-6)
    both = make_cube(values, nodata=-9999)  # gains and a factor: (DN · gain + offset) / F
    both.attrs["reflectance_scale_factor"] = 10.0
    from hsad.cube import with_band_scaling

    write_envi(with_band_scaling(both, [1e-3] * both.sizes["band"],
                                 [0.5] * both.sizes["band"]), tmp_path / "d.img")
    got = open_cube(tmp_path / "d.img", apply_scale=True).values
    np.testing.assert_allclose(got[1:], (values[1:] * 1e-3 + 0.5) / 10, rtol=1e-5)
    assert np.isnan(got[0, 0]).all()

    _warned_then_applied(run, tmp_path, tmp_path / "b.tif", tmp_path / "c.tif")


def test_nodata_beside_apply_scale_is_in_the_file_s_stored_units(tmp_path):
    """`--nodata -9999 --apply-scale` compared -9999 with the scaled values (-0.9999): no
    pixel was nodata, and the fill entered the statistics as reflectance, in silence (ENVI
    with a reflectance scale factor, and a GeoTIFF's band scale)."""
    import rasterio
    from affine import Affine

    from hsad.cube import valid_mask
    from hsad.errors import ParameterError
    from hsad.io import open_cube
    from hsad.io.envi_writer import write_envi
    from hsad.pipeline import prepare_cube

    values = np.round(_reflectance(1) * 10000).astype(np.int16)
    values[:3] = -9999  # a fill the file does not declare
    dn = make_cube(values)
    dn.attrs["reflectance_scale_factor"] = 10000.0
    envi = write_envi(dn, tmp_path / "b.img")
    rows, cols, bands = values.shape
    for name, scales, offsets in (("u.tif", [1e-4] * bands, [0.0] * bands),
                                  ("o.tif", [2e-4] * bands, [-0.1] * bands),
                                  ("v.tif", [1e-4, 2e-4] * (bands // 2), [0.0] * bands)):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", height=rows, width=cols,
                           count=bands, dtype="int16", crs="EPSG:32633",
                           transform=Affine(30, 0, 5e5, 0, -30, 4e6)) as dst:
            dst.write(np.moveaxis(values, -1, 0))
            dst.scales, dst.offsets = scales, offsets
    for path in (envi, tmp_path / "u.tif", tmp_path / "o.tif"):
        cube = prepare_cube(open_cube(path, apply_scale=True), nodata=-9999)
        mask = valid_mask(cube).values
        assert not mask[:3].any() and mask[3:].all(), path
    with pytest.raises(ParameterError, match="bands have different scales or offsets"):
        prepare_cube(open_cube(tmp_path / "v.tif", apply_scale=True), nodata=-9999)
    # the stored type's rules, as without --apply-scale: truncated, or refused
    for path in (envi, tmp_path / "u.tif"):
        mask = valid_mask(prepare_cube(open_cube(path, apply_scale=True),
                                       nodata=-9999.5)).values
        assert not mask[:3].any() and mask[3:].all(), path
        with pytest.raises(ParameterError, match="cannot occur in the file's int16 data"):
            prepare_cube(open_cube(path, apply_scale=True), nodata=70000)
        # the scaled value (the way before 0.3.14) had been truncated to 0, in silence:
        # truncated still (-9999.5 on a file of gain 0.5 is a stored value too), but said
        with pytest.warns(UserWarning, match=r"--nodata -0.9999 beside --apply-scale is in "
                          r"the file's stored int16 units, so it is taken as 0; if it was "
                          r"the scaled value, give --nodata -9999$"):
            prepare_cube(open_cube(path, apply_scale=True), nodata=-0.9999)
    with pytest.warns(UserWarning, match="taken as -2; if it was the scaled value, give "
                      "--nodata -9999$"):
        prepare_cube(open_cube(tmp_path / "o.tif", apply_scale=True), nodata=-2.0998)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # -9999.5: no stored integer reads as it, nothing said
        prepare_cube(open_cube(envi, apply_scale=True), nodata=-9999.5)


def test_an_undeclared_fill_is_advised_in_the_file_s_stored_units(tmp_path):
    """The warning of a flat fill beside --apply-scale advised `--nodata -0.9999`, the
    scaled value, which --nodata (in stored units) truncated to 0: it names -9999."""
    from hsad.engine.data_checks import check_partial_nodata
    from hsad.io import open_cube
    from hsad.io.envi_writer import write_envi
    from hsad.io.physical_units import scaled_nodata, stored_value

    values = np.round(_reflectance(1) * 10000).astype(np.int16)
    values[:3] = -9999
    dn = make_cube(values)
    dn.attrs["reflectance_scale_factor"] = 10000.0
    path = write_envi(dn, tmp_path / "b.img")
    scaled = open_cube(path, apply_scale=True)
    with pytest.warns(DegenerateDataWarning, match=r"give --nodata -9999, the value the file "
                      r"stores .*set_nodata\(cube, -0.9999\)"):
        check_partial_nodata(scaled, "rx")
    with pytest.warns(DegenerateDataWarning, match=r"give --nodata -9999 \(hsad"):
        check_partial_nodata(open_cube(path), "rx")  # read as stored: the same value
    assert stored_value(scaled, -0.9999) == -9999
    assert scaled_nodata(scaled, stored_value(scaled, -0.9999)) == np.float32(-0.9999)
