"""Band wavelengths as sensors' products carry them: EnMAP's and DESIS's METADATA.XML beside
the GeoTIFF, band descriptions written by ENVI, units spelled with a Greek mu; a wavelength
file for products hsad cannot read them from (a PRISMA .he5 is read directly:
tests/test_prisma.py)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from hsad import open_cube, select_bands
from hsad.cli.main import main
from hsad.cube.bands import attach_wavelengths, read_wavelength_file
from hsad.errors import ParameterError

BANDS = 6
CENTRES = np.linspace(420.0, 2400.0, BANDS)


def _tif(path, descriptions=None, tags=None):
    with rasterio.open(path, "w", driver="GTiff", width=5, height=4, count=BANDS,
                       dtype="int16", nodata=-32768) as dst:
        dst.write(np.arange(BANDS * 20, dtype=np.int16).reshape(BANDS, 4, 5))
        for b in range(1, BANDS + 1):
            if descriptions:
                dst.set_band_description(b, descriptions[b - 1])
            if tags:
                dst.update_tags(b, **tags[b - 1])
    return path


def _sidecar(path, width_tag, bands=BANDS):
    entries = "".join(f"<bandID number='{i + 1}'><wavelengthCenterOfBand>{c:.3f}"
                      f"</wavelengthCenterOfBand><{width_tag}>{7.5 + i}</{width_tag}>"
                      "<GainOfBand>2e-05</GainOfBand></bandID>"
                      for i, c in enumerate(CENTRES[:bands]))
    path.write_text(f"<level_X><specific><bandCharacterisation>{entries}"
                    "</bandCharacterisation></specific></level_X>")


@pytest.mark.parametrize("image, xml, width_tag", [
    ("ENMAP01-____L2A-DT0000001867_20220724T104526Z_002_V010110-SPECTRAL_IMAGE.TIF",
     "ENMAP01-____L2A-DT0000001867_20220724T104526Z_002_V010110-METADATA.XML", "FWHMOfBand"),
    ("DESIS-HSI-L2A-DT0483531728_001-20200628T234104-V0210-SPECTRAL_IMAGE.tif",
     "DESIS-HSI-L2A-DT0483531728_001-20200628T234104-V0210-METADATA.xml",
     "wavelengthWidthOfBand"),
], ids=["enmap", "desis"])
def test_wavelengths_from_the_metadata_xml_beside_the_image(tmp_path, image, xml, width_tag):
    path = _tif(tmp_path / image)
    _sidecar(tmp_path / xml, width_tag)
    cube = open_cube(path)
    np.testing.assert_allclose(cube["wavelength"].values, CENTRES, atol=1e-3)
    np.testing.assert_allclose(cube["fwhm"].values, 7.5 + np.arange(BANDS))
    assert select_bands(cube, exclude_wavelengths="1500:1700").sizes["band"] == BANDS - 1


def test_a_sidecar_with_another_band_count_is_ignored_with_a_warning(tmp_path):
    path = _tif(tmp_path / "X-SPECTRAL_IMAGE.TIF")
    _sidecar(tmp_path / "X-METADATA.XML", "FWHMOfBand", bands=BANDS - 1)
    with pytest.warns(UserWarning, match="5 band centres for 6 bands"):
        cube = open_cube(path)
    assert np.isnan(cube["wavelength"].values).all()


@pytest.mark.parametrize("form", ["Band {b} ({w:.6f} Nanometers)", "{w:.1f} nm",
                                  "Band {b} ({u:.6f} Micrometers)"])
def test_wavelengths_from_band_descriptions(tmp_path, form):
    names = [form.format(b=i + 1, w=w, u=w / 1000) for i, w in enumerate(CENTRES)]
    cube = open_cube(_tif(tmp_path / "d.tif", descriptions=names))
    np.testing.assert_allclose(cube["wavelength"].values, CENTRES, rtol=1e-6)


def test_micrometres_spelled_with_a_greek_mu(tmp_path):
    tags = [{"wavelength": f"{w / 1000:.4f}", "wavelength_units": "\u03bcm"} for w in CENTRES]
    cube = open_cube(_tif(tmp_path / "mu.tif", tags=tags))
    np.testing.assert_allclose(cube["wavelength"].values, CENTRES, rtol=1e-4)


@pytest.mark.parametrize("text", [
    "wavelength_um,fwhm_um\n" + "\n".join(f"{w / 1000},0.01" for w in CENTRES),
    "# PRISMA VNIR+SWIR\n" + "\n".join(f"{w}  10" for w in CENTRES),
    ", ".join(f"{w}" for w in CENTRES),
], ids=["csv-um-header", "blank-separated-comment", "one-line"])
def test_a_wavelength_file(tmp_path, text):
    (tmp_path / "wl.txt").write_text(text)
    wavelength, fwhm = read_wavelength_file(tmp_path / "wl.txt")
    np.testing.assert_allclose(wavelength, CENTRES)
    assert fwhm is None or np.allclose(fwhm, 10.0)
    cube = attach_wavelengths(open_cube(_tif(tmp_path / "p.tif")), wavelength, fwhm)
    assert cube.sel(wavelength=slice(400, 1000)).sizes["band"] == 2  # indexed, ascending
    with pytest.raises(ParameterError, match="6 wavelengths for a scene of 5 bands"):
        attach_wavelengths(cube.isel(band=slice(0, 5)), wavelength)


def test_wavelength_file_on_the_command_line(tmp_path, capsys):
    path = _tif(tmp_path / "plain.tif")
    (tmp_path / "wl.csv").write_text("\n".join(f"{w}" for w in CENTRES))
    bad = tmp_path / "bad.csv"
    bad.write_text("450\n460\nabc\n")
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(path), str(tmp_path / "out.tif"), "--wavelength-file",
              str(tmp_path / "wl.csv"), "--exclude-wavelengths", "1500:1700"])
    assert exc.value.code == 0
    out = open_cube(tmp_path / "out.tif")
    assert out.sizes["band"] == BANDS - 1
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(path), str(tmp_path / "out2.tif"), "--wavelength-file", str(bad)])
    assert exc.value.code == 2
    assert "line 3 is not numbers" in capsys.readouterr().err
    short = tmp_path / "short.csv"  # one band short: the error names the file, then the scene
    short.write_text("\n".join(f"{w}" for w in CENTRES[:-1]))
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(path), str(tmp_path / "out3.tif"), "--wavelength-file",
              str(short)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {short}: {BANDS - 1} wavelengths for a scene of {BANDS} "
                          f"bands ({path})"), err
    assert not (tmp_path / "out3.tif").exists()


@pytest.mark.parametrize("text, expected", [
    ("band,wavelength\n1,450\n2,460\n3,470\n", ([450, 460, 470], None)),
    ("band wl_um fwhm_um\n1 0.45 0.01\n2 0.46 0.01\n", ([450, 460], [10, 10])),
    ("1,450\n2,460\n3,470\n", "the first column counts 1, 2, 3"),
    ("450,500\n460,500\n", "a fwhm is not below its wavelength"),
    ("a,b,c\n1,2,3\n", "no column named like a wavelength"),
    ("450\nx\n460\n", "line 2 is not numbers"),
    # a German export, one number a line with a decimal comma: had been wavelength 845,
    # fwhm 4, in silence
    ("418,24\n524,94\n631,64\n845,04\n", "lines such as '845,04' read as one number "
                                          "with a decimal comma"),
    ("418,24\n524,94\n631,64\n", ([418, 524, 631], [24, 94, 64])),
], ids=["band-wavelength", "three-named", "band-numbers", "fwhm-too-wide", "no-names",
        "text-inside", "decimal-commas", "whole-numbers-and-commas"])
def test_wavelength_file_columns(tmp_path, text, expected):
    (tmp_path / "wl.txt").write_text(text)
    if isinstance(expected, str):
        with pytest.raises(ParameterError, match=expected):
            read_wavelength_file(tmp_path / "wl.txt")
        return
    wavelength, fwhm = read_wavelength_file(tmp_path / "wl.txt")
    np.testing.assert_allclose(wavelength, expected[0])
    assert fwhm is None if expected[1] is None else np.allclose(fwhm, expected[1])
