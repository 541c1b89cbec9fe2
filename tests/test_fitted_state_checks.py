"""What a fitted detector refuses of the scenes, maps and files it is given after ``fit``:
a scene whose bad bands moved, a model saved with a value set since ``fit``, a map of
another fit's null, a model file whose method names another class, bands in another
order for the window detectors; and the inputs a cube cannot be (docs/api.md)."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest
import xarray as xr

from hsad import detectors
from hsad.cube import as_cube
from hsad.cube.model_bands import match_model_bands
from hsad.errors import ModelError, ParameterError
from hsad.io.model_archive import load_model, save_model

TINY = dict(hidden=8, depth=1, latent=2, epochs=1, batch_size=64, sample_size=256,
            progress=False, device="cpu")


def _scene(bad=(), wavelength=None, bands=8, seed=0):
    data = (5 + np.random.default_rng(seed).normal(size=(16, 16, bands))).astype(np.float32)
    good = np.ones(bands, bool)
    good[list(bad)] = False
    coords = {"good_band": ("band", good)}
    if wavelength is not None:
        coords["wavelength"] = ("band", np.asarray(wavelength, float))
    return as_cube(xr.DataArray(data, dims=("y", "x", "band"), coords=coords))


@pytest.fixture(scope="module")
def ae_first_bad():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return detectors.get("ae", **TINY).fit(_scene(bad=[0]))


def test_a_neural_model_refuses_a_scene_whose_bad_bands_moved(ae_first_bad):
    """Band 7 flagged bad instead of band 0: as many good bands, but others (by position
    the model would read every band shifted by one, with no warning: review s903)."""
    with pytest.raises(ModelError, match=r"not those the model was fitted on; the bad-band "
                       r"flags differ at band 1, 8 \(1-based\)"):
        ae_first_bad.score(_scene(bad=[7]))
    assert np.isfinite(ae_first_bad.score(_scene(bad=[0])).values).all()


def test_a_neural_model_takes_its_wavelengths_under_other_flags():
    """Another layout of the model's own wavelengths stays a neural model's to take: the
    flags differ, the good bands' wavelengths are the model's."""
    wl = np.arange(8) * 10.0 + 400
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = detectors.get("ae", **TINY).fit(_scene(bad=[0], wavelength=wl))
    # band 7 bad: the good bands 0-6 hold the model's seven wavelengths (410-470 nm)
    own = np.r_[wl[1:], 480.0]
    assert np.isfinite(det.score(_scene(bad=[7], wavelength=own)).values).all()
    with pytest.raises(ModelError, match="bad-band flags differ"):
        det.score(_scene(bad=[7], wavelength=wl))  # 400-460 nm: shifted by a band


def test_statistics_detectors_say_which_flags_moved():
    det = detectors.get("rx").fit(_scene(bad=[0]))
    with pytest.raises(ParameterError, match=r"7 good bands of 8, but the cube has 7 of 8; "
                       r"the bad-band flags differ at band 1, 8"):
        det.score(_scene(bad=[7]))


@pytest.mark.parametrize("method, change", [("rx", {"ridge": 0.5}), ("ae", {"hidden": 16}),
                                            ("ae", {"epochs": 3})])
def test_a_model_is_not_saved_with_a_value_set_since_fit(method, change, tmp_path):
    """It would load claiming the new value (or not load at all, a network of another
    shape): refused as score refuses it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = detectors.get(method, **(TINY if method == "ae" else {})).fit(_scene())
    det.set_params(**change)
    key = next(iter(change))
    with pytest.raises(ParameterError, match=f"{key} is .* but the detector was fitted with"):
        save_model(det, tmp_path / "m.hsad")
    assert not (tmp_path / "m.hsad").exists()


def test_match_model_bands_takes_what_score_takes():
    """A numpy array and a DataArray without hsad's coordinates (a raw IndexError and a
    KeyError before), as score takes them."""
    det = detectors.get("rx").fit(_scene())
    data = np.asarray(_scene().values)
    assert match_model_bands(data, det).sizes["band"] == 8
    bare = xr.DataArray(data, dims=("y", "x", "band"))
    assert match_model_bands(bare, det).sizes["band"] == 8


@pytest.mark.parametrize("obj, match", [
    (xr.Dataset({"r": (("y", "x", "band"), np.zeros((4, 4, 3)))}),
     r"a cube is one DataArray, got a Dataset of \['r'\]"),
    ([[[1.0, 2.0]], [[1.0]]], "a cube is a real-valued"),
])
def test_what_a_cube_cannot_be_is_a_parameter_error(obj, match):
    with pytest.raises(ParameterError, match=match):
        detectors.get("rx").fit(obj)


def test_a_map_of_another_fits_rank_is_not_thresholded_by_this_null():
    """An RX map of 8 bands thresholded at far= by an RX fitted on 4 took χ² with 4
    degrees of freedom and flagged every pixel, in silence."""
    scene = _scene()
    own = detectors.get("rx")
    scores = own.fit_score(scene)
    assert scores.attrs["hsad_rank"] == 8
    other = detectors.get("rx").fit(scene.isel(band=slice(0, 4)))
    with pytest.raises(ParameterError, match="made by a fit of rank 8, and this one has rank 4"):
        other.threshold(scores, far=1e-3)
    assert own.threshold(scores, far=1e-3).values.mean() < 0.05


def test_a_model_file_whose_method_names_another_class_is_said_to_be_edited(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = save_model(detectors.get("ae", **TINY).fit(_scene()), tmp_path / "ae.hsad")
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(entries["config.json"])
    config["method"] = "hadgan"
    entries["config.json"] = json.dumps(config).encode()
    edited = tmp_path / "edited.hsad"
    with zipfile.ZipFile(edited, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    with pytest.raises(ModelError, match=r"saved by hsad\.detectors\.ae\.Autoencoder, but its "
                       r"method 'hadgan' is .*HADGAN: the file was edited or mislabelled"):
        load_model(edited)


@pytest.mark.parametrize("method", ["lrx", "crd"])
def test_window_detectors_refuse_bands_in_another_order(method):
    """Their fitted projection (lrx's PCA, crd's) was applied to the bands of another
    scene by position, in silence: the wavelengths are checked as the global RX's are."""
    wl = np.arange(8) * 50.0 + 400
    scene = _scene(wavelength=wl)
    det = detectors.get(method, inner=3, outer=7).fit(scene)
    reversed_bands = scene.isel(band=slice(None, None, -1))
    with pytest.raises(ModelError, match="wavelengths differ from the model's"):
        det.score(reversed_bands)
    assert np.isfinite(det.score(scene).values).all()


def test_a_scene_without_wavelengths_is_said_to_be_taken_by_position():
    """A scene of the model's band count without wavelengths was used in silence."""
    wl = np.arange(8) * 50.0 + 400
    det = detectors.get("rx").fit(_scene(wavelength=wl))
    with pytest.warns(UserWarning, match="the scene has no wavelengths, so the model's bands "
                      "are taken by position, unchecked"):
        matched = match_model_bands(_scene(), det)
    assert matched.sizes["band"] == 8
    # the other way round (a model trained on a .mat file, applied to an ENVI scene) was
    # silent: a scene of reversed bands was read in the wrong order
    det = detectors.get("rx").fit(_scene())
    with pytest.warns(UserWarning, match="the model records no wavelengths, so the model's "
                      "bands are taken by position, unchecked"):
        match_model_bands(_scene(wavelength=wl[::-1]), det)


@pytest.mark.parametrize("method", ["rx", "ae"])
def test_without_wavelengths_a_model_compares_the_file_s_band_numbers(method, tmp_path):
    """`train --bands 100:160` applied by `detect --bands 0:60` on a scene without
    wavelengths took other bands by position in silence (a median score of 1.9e6 against
    80): the model records the file's band numbers it was fitted on (config.json
    `fitted_band_numbers`) and a scene of other numbers is warned of."""
    from hsad.cube import make_cube

    data = (5 + np.random.default_rng(0).normal(size=(16, 16, 16))).astype(np.float32)
    whole = make_cube(data)
    trained = whole.isel(band=slice(8, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = detectors.get(method, **({} if method == "rx" else TINY)).fit(trained)
    path = save_model(det, tmp_path / "m.hsad")
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    assert config["fitted_band_numbers"] == list(range(9, 17))
    for model in (det, load_model(path)):
        with pytest.warns(UserWarning, match=r"the model was fitted on the file's bands 9–16 "
                          r"and this scene's are 1–8; with no wavelengths on either side they "
                          r"are taken by position: unless this file holds those bands alone "
                          r"\(cut by `hsad convert --bands`\), select them \(--bands\)"):
            match_model_bands(whole.isel(band=slice(0, 8)), model)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert match_model_bands(trained, model).sizes["band"] == 8
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    # a list of another length than the model's bands had the check skipped in silence
    for numbers, said in ((["9"] * 8, "fitted_band_numbers must be a list of band numbers ≥ 1"),
                          ([9, 10, 11], "fitted_band_numbers holds 3 band numbers, but the "
                                        "model was fitted on a scene of 8 bands")):
        config["fitted_band_numbers"] = numbers
        members["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(tmp_path / "bad.hsad", "w") as z:
            for name, blob in members.items():
                z.writestr(name, blob)
        with pytest.raises(ModelError, match=said):
            load_model(tmp_path / "bad.hsad")


def test_its_own_wavelengths_drifted_under_other_flags_are_found_by_wavelength():
    """3 nm of drift and the bad band moved: match_model_bands took the scene as it was and
    score then refused it, telling the user to call match_model_bands."""
    wl = np.arange(8) * 10.0 + 400
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = detectors.get("ae", **TINY).fit(_scene(bad=[0], wavelength=wl))
    drifted = _scene(bad=[7], wavelength=np.r_[wl[1:], 480.0] + 3)
    with pytest.warns(UserWarning, match="differ from the model's by up to 3.0 nm"):
        matched = match_model_bands(drifted, det)
        assert np.isfinite(det.score(matched).values).all()
    assert matched.sizes["band"] == 7


@pytest.mark.parametrize("other", [dict(bands=6), dict(seed=3)])
def test_a_failed_refit_leaves_the_model_as_it_was(other):
    """A re-fit that diverged (lr=1e30) kept its new band count and scaler beside the old
    networks: the first scene was then refused ("the model expects 6 bands") or its map
    was "not finite"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = detectors.get("ae", **TINY).fit(_scene())
        before, lr = det.score(_scene()).values, det.get_params()["lr"]
        det.set_params(lr=1e30)
        with pytest.raises(ParameterError, match="training diverged"):
            det.fit(_scene(**other))
        det.set_params(lr=lr)
        np.testing.assert_array_equal(det.score(_scene()).values, before)
    assert det.n_bands_ == 8


def test_settings_a_training_ignores_are_said():
    """Skip-GANomaly's `latent` (its U-Net has none) and AnoGAN's `early_stopping` (its
    stage watches no loss) were saved and shown, and changed nothing, in silence."""
    with pytest.warns(UserWarning, match="skip-ganomaly: latent has no effect"):
        detectors.get("skip-ganomaly", **TINY).fit(_scene())
    with pytest.warns(UserWarning, match="anogan: early_stopping has no effect: its training "
                      "watches no loss, so every epoch runs"):
        detectors.get("anogan", **{**TINY, "latent": None}, early_stopping=1).fit(_scene())
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        detectors.get("ae", **TINY, early_stopping=1).fit(_scene())
        detectors.get("skip-ganomaly", **{**TINY, "latent": None}).fit(_scene())
    assert not [w for w in said if "has no effect" in str(w.message)]


def test_patch_and_label_settings_a_pixel_or_unlabelled_training_ignores_are_said():
    """`patch=7` with pixel input, GANomaly's, EGBAD's and ALAD's `channels` (their patch
    front end's) with pixel input, and CAVGA's `w_c`, `w_cga`, `max_labelled` without
    labels left the map bit-identical, in silence."""
    for name, params, key in [("aae", {"patch": 7}, "patch"),
                              ("ganomaly", {"channels": 5}, "channels"),
                              ("egbad", {"channels": 5}, "channels"),
                              ("alad", {"channels": 5}, "channels")]:
        with pytest.warns(UserWarning, match=f"{name}: {key} has no effect \\(it shapes the "
                          "patch front end; input is 'pixel'\\)"):
            detectors.get(name, **TINY, **params).fit(_scene())
    cavga = {**TINY, "input": "patch", "w_c": 0.5, "max_labelled": 3}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        detectors.get("cavga", **cavga).fit(_scene())
    assert sorted(str(w.message).split(" has")[0] for w in said
                  if "has no effect" in str(w.message)) == ["cavga: max_labelled", "cavga: w_c"]
    with warnings.catch_warnings(record=True) as said:  # used: nothing said
        warnings.simplefilter("always")
        detectors.get("ganomaly", **TINY, input="patch", channels=5, patch=5).fit(_scene())
        labels = np.zeros(_scene().shape[:2], bool)
        labels[2, 3] = True
        detectors.get("cavga", **cavga).fit(_scene(), labels=labels)
    assert not [w for w in said if "has no effect" in str(w.message)]
