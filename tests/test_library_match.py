"""Naming detections by a spectral library (hsad.outputs.library_match): resampling checked
against Gaussian band responses computed here, spectral angles against their formula, and
implanted materials named by a library written here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from cli_helpers import one_error, run_cli

from hsad.cube import make_cube
from hsad.errors import FileFormatError, ParameterError
from hsad.io.envi_writer import write_envi
from hsad.outputs.library_match import (
    match_library,
    read_library,
    resampled,
    spectral_angles,
)
from hsad.outputs.spectra import region_spectra

FINE = np.arange(400.0, 2501.0)  # the library's 1 nm grid
SCENE_WL = np.linspace(420, 2400, 60)
SCENE_FWHM = np.full(60, 12.0)
NAMES = ["grass", "bitumen", "red paint", "white roof"]


def materials() -> np.ndarray:
    """Four spectra of distinct shapes on the 1 nm grid."""
    w = FINE / 1000
    grass = 0.05 + 0.4 / (1 + np.exp(-(w - 0.72) * 60)) - 0.2 * np.exp(-((w - 1.45) / 0.05) ** 2)
    bitumen = 0.04 + 0.03 * w
    paint = 0.05 + 0.5 / (1 + np.exp(-(w - 0.6) * 50)) - 0.1 * w
    roof = 0.6 - 0.1 * np.exp(-((w - 1.7) / 0.1) ** 2) - 0.05 * w
    return np.stack([grass, bitumen, paint, roof])


def write_library(path, spectra, wavelength, names, bbl=None):
    """An ENVI spectral library as ENVI writes one (float32, wavelengths in micrometres)."""
    spectra.astype("<f4").tofile(path)
    lines = ["ENVI", f"samples = {spectra.shape[1]}", f"lines = {spectra.shape[0]}",
             "bands = 1", "header offset = 0", "file type = ENVI Spectral Library",
             "data type = 4", "interleave = bsq", "byte order = 0",
             "wavelength units = Micrometers",
             "wavelength = {" + ", ".join(f"{v / 1000:.4f}" for v in wavelength) + "}",
             "spectra names = {" + ", ".join(names) + "}"]
    if bbl is not None:
        lines.append("bbl = {" + ", ".join(str(int(b)) for b in bbl) + "}")
    path.with_suffix(".hdr").write_text("\n".join(lines) + "\n")
    return path


def gaussian_bands(spectra: np.ndarray) -> np.ndarray:
    """The spectra seen by Gaussian bands of SCENE_FWHM at SCENE_WL (weights normalised)."""
    sigma = SCENE_FWHM / (2 * np.sqrt(2 * np.log(2)))
    weights = np.exp(-0.5 * ((FINE[None] - SCENE_WL[:, None]) / sigma[:, None]) ** 2)
    return spectra @ (weights / weights.sum(axis=1, keepdims=True)).T


def test_resampling_is_the_gaussian_band_response(tmp_path):
    lib = read_library(write_library(tmp_path / "lib.sli", materials(), FINE, NAMES))
    np.testing.assert_allclose(lib.wavelength, FINE, atol=1e-9)  # micrometres read as nm
    ours = resampled(lib, SCENE_WL, SCENE_FWHM)
    # SPy integrates each band's Gaussian over the library bands it overlaps: on steep
    # edges that differs from the whole Gaussian by up to 1 % (0.0011 here); a linear
    # spectrum, symmetric about each centre, comes out at the centre's value
    np.testing.assert_allclose(ours, gaussian_bands(lib.spectra), atol=2e-3)
    line = read_library(write_library(tmp_path / "line.sli", (FINE / 1000)[None], FINE,
                                      ["line"]))
    np.testing.assert_allclose(resampled(line, SCENE_WL, SCENE_FWHM)[0], SCENE_WL / 1000,
                               rtol=1e-3)
    outside = resampled(lib, np.array([350.0, 1000.0, 2600.0]), np.full(3, 10.0))
    assert np.isnan(outside[:, [0, 2]]).all() and np.isfinite(outside[:, 1]).all()
    bad = np.ones(FINE.size, bool)
    bad[600:620] = False  # 1000–1019 nm marked bad in the library
    lib = read_library(write_library(tmp_path / "bbl.sli", materials(), FINE, NAMES, bad))
    gaps = resampled(lib, np.array([1010.0, 1500.0]), np.full(2, 10.0))
    assert np.isnan(gaps[:, 0]).all() and np.isfinite(gaps[:, 1]).all()


def test_spectral_angles_follow_their_formula():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 30)), rng.random((4, 30))
    a[1, 4] = np.nan  # a missing value: that band left out of the pair's angle
    angles = spectral_angles(a, b)
    for i in range(3):
        for j in range(4):
            ok = np.isfinite(a[i]) & np.isfinite(b[j])
            x, y = a[i, ok], b[j, ok]
            cosine = x @ y / np.sqrt(x @ x * (y @ y))
            assert angles[i, j] == pytest.approx(np.degrees(np.arccos(cosine)), abs=1e-9)
    np.testing.assert_allclose(spectral_angles(3 * b, b).diagonal(), 0, atol=1e-5)
    assert np.isnan(spectral_angles(a[:, :4], b[:, :4])).all()  # too few bands


def scene_with(tmp_path):
    """A 40 x 40 scene of grass at varied brightness with bitumen (3 x 3) and red paint
    (one pixel) implanted, as Gaussian bands see them; and the library."""
    rng = np.random.default_rng(1)
    seen = gaussian_bands(materials())
    cube = seen[0] * rng.uniform(0.8, 1.2, (40, 40, 1)) + rng.normal(0, 0.002, (40, 40, 60))
    cube[10:13, 20:23] = seen[1] * 1.1
    cube[30, 5] = seen[2] * 0.9
    cube = make_cube(cube.astype(np.float32), transform=Affine(5, 0, 500_000, 0, -5, 4e6),
                     crs="EPSG:32611", wavelength=SCENE_WL, fwhm=SCENE_FWHM)
    mask = np.zeros((40, 40), bool)
    mask[10:13, 20:23] = mask[30, 5] = True
    scores = mask + rng.random((40, 40)) * 0.1
    return cube, mask, scores, write_library(tmp_path / "lib.sli", materials(), FINE, NAMES)


def test_implanted_materials_are_named_by_the_library(tmp_path):
    cube, mask, scores, library = scene_with(tmp_path)
    ds = match_library(region_spectra(cube, mask, scores), library)
    assert list(ds["match"].values) == ["bitumen", "red paint"]
    assert (ds["match_angle"].values < 1.0).all()  # brightness does not enter the angle
    assert (ds["second_angle"].values > ds["match_angle"].values + 5).all()


def test_detect_names_the_detections_and_refuses_what_cannot_match(tmp_path, capsys):
    cube, _, _, library = scene_with(tmp_path)
    write_envi(cube, tmp_path / "scene.img")
    out = tmp_path / "out"
    code, _, err = run_cli(["detect", tmp_path / "scene.img", "-m", "rx", "-o",
                            out / "rx.tif", "--contamination", "0.006", "--spectra",
                            out / "found.csv", "--library", library, "--polygons",
                            out / "found.gpkg"], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "found.csv", keep_default_na=False)
    means = table[table["spectrum"] == "mean"]
    assert {"bitumen", "red paint"} <= set(means["match"])
    # the polygons carry each region's material, for labels in QGIS
    import pyogrio

    fields = pyogrio.raw.read(out / "found.gpkg")[3]
    names = list(pyogrio.read_info(out / "found.gpkg")["fields"])
    assert list(fields[names.index("id")]) == list(means["id"])
    assert list(fields[names.index("match")]) == list(means["match"])
    np.testing.assert_allclose(fields[names.index("match_angle")],
                               means["match_angle"].astype(float), atol=5e-4)
    code, _, err = run_cli(["detect", tmp_path / "scene.img", "-m", "rx", "-o",
                            out / "none.tif", "--threshold", "1e9", "--spectra",
                            out / "none.csv", "--library", library, "--polygons",
                            out / "none.gpkg"], capsys)
    assert code == 0, err  # no detection: an empty layer with the same fields
    info = pyogrio.read_info(out / "none.gpkg")
    assert info["features"] == 0 and {"match", "match_angle"} <= set(info["fields"])
    line = one_error(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out / "b.tif",
                      "--library", library], capsys)
    assert "--spectra" in line
    line = one_error(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out / "b.tif",
                      "--spectra", out / "b.csv", "--library", tmp_path / "scene.hdr"], capsys)
    assert "not an ENVI spectral library" in line
    far = write_library(tmp_path / "far.sli", materials()[:, :50], FINE[:50] + 3000,
                        NAMES)  # 3400–3449 nm: none of the scene's bands
    line = one_error(["detect", tmp_path / "scene.img", "-m", "rx", "-o", out / "b.tif",
                      "--spectra", out / "b.csv", "--library", far], capsys)
    assert "covers fewer than" in line
    bare = make_cube(np.asarray(cube.values))  # no wavelengths
    with pytest.raises(ParameterError, match="no wavelengths"):
        match_library(region_spectra(bare, np.eye(40, dtype=bool), np.eye(40)), library)
    assert not (out / "b.tif").exists() and not (out / "b.csv").exists()


def test_an_unsorted_library_and_too_few_bands(tmp_path):
    lib = read_library(write_library(tmp_path / "lib.sli", materials(), FINE, NAMES))
    shuffle = np.random.default_rng(2).permutation(FINE.size)
    mixed = read_library(write_library(tmp_path / "mixed.sli", materials()[:, shuffle],
                                       FINE[shuffle], NAMES))
    np.testing.assert_array_equal(resampled(mixed, SCENE_WL, SCENE_FWHM),
                                  resampled(lib, SCENE_WL, SCENE_FWHM))
    np.testing.assert_array_equal(resampled(mixed, SCENE_WL), resampled(lib, SCENE_WL))
    # the scene's bands in any order too (two spectrometers overlap in EnMAP's), FWHM or not
    turn = np.random.default_rng(3).permutation(SCENE_WL.size)
    for fwhm in (SCENE_FWHM, None):
        np.testing.assert_array_equal(
            resampled(lib, SCENE_WL[turn], None if fwhm is None else fwhm[turn]),
            resampled(lib, SCENE_WL, fwhm)[:, turn])
    with pytest.raises(ParameterError, match="1 band"):
        read_library(write_library(tmp_path / "one.sli", materials()[:, :1], FINE[:1], NAMES))
    cube, mask, scores, library = scene_with(tmp_path)
    few = cube.assign_coords(good_band=("band", np.arange(60) < 3))
    with pytest.raises(ParameterError, match="3 good band"):
        match_library(region_spectra(few, mask, scores), library)


def test_a_file_beside_a_librarys_header_that_is_not_its_data_is_refused(tmp_path):
    """A CSV export ``urban.csv`` beside ``urban.sli`` and ``urban.hdr`` was read as the
    library's binary spectra (246 521 bytes where 106 200 were due): materials named at
    62° by text bytes, exit 0. A library's data file is its spectra exactly."""
    library = write_library(tmp_path / "urban.sli", materials(), FINE, NAMES)
    assert read_library(library).names == NAMES
    csv = tmp_path / "urban.csv"
    csv.write_text("name," + ",".join(map(str, FINE)) + "\n"
                   + "\n".join(n + "," + ",".join(map(str, s)) for n, s in
                               zip(NAMES, materials(), strict=True)) + "\n")
    with pytest.raises(FileFormatError, match=r"urban.csv: holds \d+ bytes where the library "
                       r"of urban.hdr takes 33616: not its data file"):
        read_library(csv)
