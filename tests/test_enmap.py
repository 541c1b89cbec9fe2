"""EnMAP products: the cube read from the folder, the METADATA.XML or the SPECTRAL_IMAGE as
the EnMAP-Box and SNAP read it (DN · gain + offset, bands ascending, the detectors' overlap
joined, empty bands bad), on the image's grid; the quality layers as masks of the pixels
they flag; every bad product a one-line error (hsad.io.enmap; docs/formats.md, "EnMAP
products")."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_helpers import one_error, run_cli
from enmap_products import PREFIX, SWIR_WL, TRANSFORM, write_enmap

from hsad.errors import FileFormatError, ParameterError, UnsupportedError
from hsad.io import detect_format, open_cube
from hsad.io.enmap import read_product
from hsad.io.enmap_quality import cover_note, quality_valid
from hsad.io.quality import parse_flags
from hsad.pipeline import prepare_cube


def expected(dn, gain, offset, wl, det, key="full", fill=-32768):
    """The cube the readers make of the stored DN: the bands ``key`` picks, ascending,
    DN · gain + offset, NaN where a DN is the background value."""
    if key == "vnir":
        keep = np.flatnonzero(det == 0)
    elif key == "swir":
        keep = np.flatnonzero(det == 1)
    else:
        keep = np.flatnonzero((det == 1) | (wl < SWIR_WL.min()))
    keep = keep[np.argsort(wl[keep], kind="stable")]
    values = dn[:, :, keep].astype(np.float32) * gain[keep].astype(np.float32) \
        + offset[keep].astype(np.float32)
    values[dn[:, :, keep] == fill] = np.nan
    return values, wl[keep]


@pytest.fixture
def product(tmp_path):
    return write_enmap(tmp_path / "p", cover={"cloudCover": 3.5, "cloudShadow": 0.4})


def image_of(xml):
    return xml.with_name(xml.name.replace("METADATA.XML", "SPECTRAL_IMAGE.TIF"))


def test_the_folder_the_metadata_and_the_image_read_the_same_cube(product):
    xml, dn, gain, offset, wl, det = product
    want, want_wl = expected(dn, gain, offset, wl, det)
    for path in (xml.parent, xml, image_of(xml)):
        assert detect_format(path) == "enmap"
        cube = open_cube(path)
        assert cube.dtype == np.float32 and cube.attrs["source_format"] == "enmap"
        np.testing.assert_array_equal(cube.values, want)
        np.testing.assert_allclose(cube["wavelength"].values, want_wl)
        assert cube.attrs["enmap_level"] == "L2A" and cube.attrs["product"] == PREFIX
        assert np.isnan(cube.attrs["nodata"])


def test_the_folder_above_a_product_names_the_product_inside(product, tmp_path, capsys):
    """A delivery unpacked one level deeper than the product folder was refused as "is a
    directory, not a file", which the folder of the product itself is not."""
    xml = product[0]
    above = xml.parent.parent
    line = one_error(["detect", above, "-m", "rx", "-o", tmp_path / "x.tif"], capsys)
    assert line.endswith(f"is a directory, not a file: it holds the EnMAP product folder "
                         f"{xml.parent.name}: give that")
    write_enmap(above / "q")
    line = one_error(["info", above], capsys)
    assert "it holds 2 EnMAP product folders (p, q): give one" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_error(["info", empty], capsys).endswith("is a directory, not a file")


def test_grid_is_gdals_of_the_image(product):
    xml = product[0]
    cube = open_cube(xml)
    with rasterio.open(image_of(xml)) as src:
        assert cube.rio.crs == src.crs
        assert cube.rio.transform() == src.transform == TRANSFORM


def test_full_cube_joins_the_detectors_as_the_enmap_box_does(product):
    xml, dn, gain, offset, wl, det = product
    wl_full = open_cube(xml)["wavelength"].values
    assert np.all(np.diff(wl_full) > 0)
    assert wl_full[wl_full < SWIR_WL.min()].size == np.sum((det == 0) & (wl < SWIR_WL.min()))
    assert set(SWIR_WL.round(3)) <= set(wl_full.round(3))
    for key in ("vnir", "swir", "VNIR"):
        cube = open_cube(xml, key=key)
        want, want_wl = expected(dn, gain, offset, wl, det, key.lower())
        np.testing.assert_array_equal(cube.values, want)
        np.testing.assert_allclose(cube["wavelength"].values, want_wl)
    with pytest.raises(ParameterError, match="full, vnir or swir"):
        open_cube(xml, key="cube")


def test_bands_stored_detector_by_detector_come_out_ascending(tmp_path):
    xml, dn, gain, offset, wl, det = write_enmap(tmp_path, order="detector")
    assert not np.all(np.diff(wl) > 0)  # the file's order is not the wavelengths'
    want, want_wl = expected(dn, gain, offset, wl, det)
    cube = open_cube(xml)
    np.testing.assert_array_equal(cube.values, want)
    np.testing.assert_allclose(cube["wavelength"].values, want_wl)


def test_radiance_gains_and_offsets_differ_by_band(tmp_path):
    xml, dn, gain, offset, wl, det = write_enmap(tmp_path, level="L1C")
    assert np.ptp(gain) > 0 and np.ptp(offset) > 0
    cube = open_cube(xml)
    want, _ = expected(dn, gain, offset, wl, det, fill=0)
    np.testing.assert_allclose(cube.values, want, rtol=1e-6, equal_nan=True)
    assert cube.attrs["enmap_level"] == "L1C" and "radiance" in cube.attrs["units"]


def test_background_without_nodata_tag_comes_from_the_metadata_or_the_level(tmp_path):
    for folder, background in (("xml", -32768), ("level", None)):
        xml, dn, *_ = write_enmap(tmp_path / folder, nodata_tag=False, background=background)
        values = open_cube(xml).values
        assert np.isnan(values[:2]).all() and not np.isnan(values[2:, 2:]).any()


def test_bands_filled_with_no_data_are_bad_bands(tmp_path):
    xml, dn, gain, offset, wl, det = write_enmap(tmp_path, empty=[40, 41])
    cube = open_cube(xml)
    bad = ~cube["good_band"].values
    np.testing.assert_allclose(np.sort(cube["wavelength"].values[bad]), np.sort(wl[[40, 41]]))
    valid = prepare_cube(cube, exclude_quality="none")
    from hsad.cube import valid_mask

    assert valid_mask(valid).values[2:, 2:].all()  # their NaN do not empty the scene


def test_envi_delivery_reads_as_the_geotiff_one(tmp_path):
    a = write_enmap(tmp_path / "tif")
    b = write_enmap(tmp_path / "bsq", fmt="bsq")
    assert detect_format(b[0]) == "enmap"
    np.testing.assert_array_equal(open_cube(a[0]).values, open_cube(b[0]).values)
    assert open_cube(b[0]).rio.transform() == TRANSFORM


def test_cloud_optimised_names_are_read(tmp_path):
    xml, dn, gain, offset, wl, det = write_enmap(tmp_path, cog=True)
    np.testing.assert_array_equal(open_cube(xml).values, expected(dn, gain, offset, wl, det)[0])
    flags = np.zeros((20, 24), np.uint8)
    flags[5, 5] = 1
    xml2 = write_enmap(tmp_path / "b", cog=True, flags={"CLOUD": flags})[0]
    assert not quality_valid(open_cube(xml2), ("cloud",))[5, 5]


def test_a_window_reads_that_part(product):
    xml, dn, gain, offset, wl, det = product
    want, _ = expected(dn, gain, offset, wl, det)
    cube = open_cube(xml, srcwin=(3, 4, 10, 8))
    np.testing.assert_array_equal(cube.values, want[4:12, 3:13])
    assert cube.rio.transform() == TRANSFORM @ Affine.translation(3, 4)


def test_any_selection_of_the_cube_equals_that_of_the_whole(product):
    cube = open_cube(product[0])
    whole, d = cube.values, cube.data
    cases = [(d[3], whole[3]), (d[:, 5], whole[:, 5]), (d[2:9, 4, 7], whole[2:9, 4, 7]),
             (d[[1, 5, 3]], whole[[1, 5, 3]]), (d[::-1, ::2], whole[::-1, ::2]),
             (d[:, [2, 9]][:, :, [0, 4]], whole[:, [2, 9]][:, :, [0, 4]]),
             (d[5, 6, 7], whole[5, 6, 7]), (d[:, :, [3, 1]], whole[:, :, [3, 1]]),
             (cube.isel(y=[0, 4, 2], band=[5, 2]).values, whole[[0, 4, 2]][:, :, [5, 2]])]
    for got, want in cases:
        got = np.asarray(got)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_a_small_window_reads_only_its_pixels(product, monkeypatch):
    from reader_helpers import count_reads

    from hsad.io.geotiff import WindowReader

    cube = open_cube(product[0], chunks=16)
    reads = count_reads(monkeypatch, WindowReader)
    cube.data[5:13, 6:14].compute()  # an even sample's window: not the 16 x 16 chunk
    assert reads == [64]


def quality_product(tmp_path):
    rng = np.random.default_rng(3)
    layers = {name: np.zeros((20, 24), np.uint8) for name in
              ("CLOUD", "CLOUDSHADOW", "HAZE", "CIRRUS", "SNOW", "TESTFLAGS")}
    layers["CLOUD"][5:8, 5:9] = 1
    layers["CLOUDSHADOW"][10, 10:12] = 1
    layers["HAZE"][12, 3] = 1
    layers["CIRRUS"][14, 14:17] = [1, 2, 3]
    layers["SNOW"][15, 20] = 1
    layers["TESTFLAGS"][16, 16:20] = [0b01, 0b10000, 0b100000, 0b1100]  # only saturation
    classes = np.ones((20, 24), np.uint8)
    classes[17:19, 2:6] = 2
    layers["CLASSES"] = classes
    return write_enmap(tmp_path, flags=layers, seed=int(rng.integers(100)))[0], layers


def test_quality_flags_mark_the_pixels_snaps_coding_marks(tmp_path):
    xml, layers = quality_product(tmp_path)
    cube = open_cube(xml)
    marks = {
        "cloud": layers["CLOUD"] == 1, "cloudshadow": layers["CLOUDSHADOW"] == 1,
        "haze": layers["HAZE"] == 1, "cirrus": layers["CIRRUS"] > 0,
        "snow": layers["SNOW"] == 1, "water": layers["CLASSES"] == 2,
        "saturated": (layers["TESTFLAGS"] & 0b110000) > 0,
    }
    for flag, mark in marks.items():
        np.testing.assert_array_equal(quality_valid(cube, (flag,)), ~mark, err_msg=flag)
    both = quality_valid(cube, ("cloud", "cloudshadow"))
    np.testing.assert_array_equal(both, ~(marks["cloud"] | marks["cloudshadow"]))
    assert quality_valid(cube, ()) is None


def test_excluded_pixels_become_nodata_and_windows_cut_the_layers(tmp_path):
    xml, layers = quality_product(tmp_path)
    cube = prepare_cube(open_cube(xml), exclude_quality=("cloud",))
    assert np.isnan(cube.values[5:8, 5:9]).all() and not np.isnan(cube.values[9:, 2:]).any()
    window = prepare_cube(open_cube(xml, srcwin=(4, 4, 8, 8)), exclude_quality="cloud")
    np.testing.assert_array_equal(np.isnan(window.values).all(axis=2),
                                  layers["CLOUD"][4:12, 4:12] == 1)


def test_a_quality_layer_as_valid_mask_leaves_out_what_it_flags(tmp_path):
    xml, layers = quality_product(tmp_path)
    cloud = xml.with_name(xml.name.replace("METADATA", "QL_QUALITY_CLOUD").replace(
        ".XML", ".TIF"))
    cube = prepare_cube(open_cube(xml), valid_mask=cloud, exclude_quality="none")
    flagged = np.isnan(cube.values).all(axis=2)[2:, 2:]
    np.testing.assert_array_equal(flagged, layers["CLOUD"][2:, 2:] == 1)


def test_a_valid_mask_and_quality_flags_are_one_mask_applied_once(tmp_path):
    xml, layers = quality_product(tmp_path)
    keep = np.ones((20, 24), bool)
    keep[:, 20:] = False
    cube = prepare_cube(open_cube(xml), valid_mask=keep, exclude_quality="cloud,cloudshadow")
    masks = [k for k in cube.data.__dask_graph__().layers if str(k).startswith("masked-")]
    assert len(masks) == 1  # not one masked view stacked on another
    expected = ~keep | (layers["CLOUD"] == 1) | (layers["CLOUDSHADOW"] == 1)
    np.testing.assert_array_equal(np.isnan(cube.values).all(axis=2)[2:, 2:],
                                  expected[2:, 2:])  # the product's own border is background
    with pytest.raises(ParameterError, match="cloud with the valid mask excludes every pixel"):
        prepare_cube(open_cube(xml), valid_mask=layers["CLOUD"] == 1, exclude_quality="cloud")


def test_flags_are_checked(tmp_path):
    assert parse_flags("Cloud, cloudshadow,cloud") == ("cloud", "cloudshadow")
    assert parse_flags("none") == () and parse_flags(None) is None
    for text in ("clouds", "", "none,cloud"):
        with pytest.raises(ParameterError, match="--exclude-quality"):
            parse_flags(text)
    from hsad.cube import make_cube

    with pytest.raises(ParameterError, match="applies to EnMAP products"):
        prepare_cube(make_cube(np.ones((4, 4, 3), np.float32)), exclude_quality="cloud")


def test_cloud_cover_is_told_unless_a_choice_is_made(product):
    xml = product[0]
    cube = open_cube(xml)
    assert cube.attrs["enmap_cover"] == {"cloud": 3.5, "cloudshadow": 0.4}
    assert "3.5 % as cloud (" in cover_note(cube) and "as cloud shadow" not in cover_note(cube)
    with pytest.warns(UserWarning, match="--exclude-quality cloud,cloudshadow"):
        prepare_cube(cube)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        prepare_cube(cube, exclude_quality="none")
        prepare_cube(cube, exclude_quality="cloud")


def test_detect_writes_a_georeferenced_map_without_the_clouds(tmp_path, capsys):
    xml, layers = quality_product(tmp_path / "p")
    out = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", xml.parent, "-m", "rx", "--exclude-quality",
                            "cloud,cloudshadow", "-o", out], capsys)
    assert code == 0, err
    with rasterio.open(out) as src:
        scores = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.transform == TRANSFORM
    flagged = (layers["CLOUD"] == 1) | (layers["CLOUDSHADOW"] == 1)
    assert np.isnan(scores[flagged]).all() and np.isfinite(scores[2:, 2:][~flagged[2:, 2:]]).all()


def test_info_names_the_product(product, capsys):
    code, text, _ = run_cli(["info", product[0].parent], capsys)
    assert code == 0
    assert "EnMAP product L2A (full cube, surface reflectance" in text
    assert "acquired 2023-06-25T10:23:45.123456Z" in text
    assert "flagged:    cloud 3.5 %, cloudshadow 0.4 %" in text


def test_convert_never_writes_over_the_product(product, tmp_path, capsys):
    xml = product[0]
    line = one_error(["convert", xml.parent, image_of(xml), "--overwrite"], capsys)
    assert "would overwrite the input" in line


def rewrite(xml, old, new, count=1):
    text = xml.read_text()
    assert old in text
    xml.write_text(text.replace(old, new, count))


@pytest.mark.parametrize("old, new, error, message", [
    ("<level>L2A</level>", "<level>L1B</level>", UnsupportedError, "L1B product"),
    ("<level>L2A</level>", "<level>L0</level>", UnsupportedError, "level L0"),
    ("<GainOfBand>0.0001</GainOfBand>", "<GainOfBand></GainOfBand>", FileFormatError,
     "no GainOfBand"),
    ("<OffsetOfBand>0</OffsetOfBand>", "<OffsetOfBand>nan</OffsetOfBand>", FileFormatError,
     "band 1 OffsetOfBand is not a finite number: 'nan'"),
    ("<FWHMOfBand>7.5</FWHMOfBand>", "<FWHMOfBand>wide</FWHMOfBand>", FileFormatError,
     "band 1 FWHMOfBand is not a finite number"),
    ('<bandID number="1"><wavelength', '<bandID number="1.5"><wavelength', FileFormatError,
     "a band numbered '1.5'"),
    ('<bandID number="2"><wavelength', '<bandID number="7"><wavelength', FileFormatError,
     "does not number its bands"),
    ("<expectedChannelsList>1,", "<expectedChannelsList>0,", FileFormatError,
     "outside 1-70"),
    ("</level_X>", "</level_Y>", FileFormatError, "not readable XML"),
])
def test_bad_metadata_is_one_clear_error(product, old, new, error, message):
    xml = product[0]
    rewrite(xml, old, new)
    with pytest.raises(error, match=message):
        open_cube(xml)


@pytest.mark.parametrize("listed", ["", " ", ",,"])
def test_an_empty_channel_list_is_named(product, listed):
    xml = product[0]
    text = xml.read_text()
    xml.write_text(re.sub(r"(<vnirProductQuality><expectedChannelsList>)[^<]*",
                          lambda m: m.group(1) + listed, text))
    with pytest.raises(FileFormatError, match="vnir expectedChannelsList is empty"):
        open_cube(xml)


def test_a_missing_or_mismatched_image_is_named(tmp_path):
    xml = write_enmap(tmp_path / "a")[0]
    image_of(xml).unlink()
    with pytest.raises(FileFormatError, match="spectral image .* is missing"):
        open_cube(xml)
    xml = write_enmap(tmp_path / "b")[0]
    text = xml.read_text()
    xml.write_text(text.replace("</bandCharacterisation>", '<bandID number="71">'
                                "<wavelengthCenterOfBand>2450</wavelengthCenterOfBand>"
                                "<GainOfBand>1</GainOfBand></bandID></bandCharacterisation>"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # one line: no sidecar warning first
        with pytest.raises(FileFormatError, match="has 70 bands but its metadata describes 71"):
            open_cube(xml)


def test_cli_errors_are_one_line(product, tmp_path, capsys):
    xml = product[0]
    rewrite(xml, "<level>L2A</level>", "<level>L1B</level>")
    line = one_error(["detect", xml, "-m", "rx", "-o", tmp_path / "o.tif"], capsys)
    assert "METADATA.XML" in line and "L1B product" in line
    line = one_error(["detect", xml, "-m", "rx", "--exclude-quality", "fog", "-o",
                      tmp_path / "o.tif"], capsys)
    assert "--exclude-quality takes none or flags among cloud" in line


def test_other_files_are_not_taken_for_a_product(tmp_path):
    from hsad.io.enmap import is_enmap

    xml = write_enmap(tmp_path / "p")[0]
    other = tmp_path / "q"
    other.mkdir()
    desis = other / "DESIS-HSI-L2A-DT0001-METADATA.xml"
    desis.write_text("<?xml version='1.0'?><hsi_doc><specific/></hsi_doc>")
    assert not is_enmap(desis) and not is_enmap(other)
    assert not is_enmap(xml.with_name(xml.name.replace("METADATA.XML", "QL_QUALITY_CLOUD.TIF")))
    assert read_product(xml.parent).level == "L2A"


def test_detect_never_writes_over_the_product(product, tmp_path, capsys):
    xml = product[0]
    for target in (image_of(xml), xml.with_name(xml.name.replace(
            "METADATA.XML", "QL_QUALITY_CLOUD.TIF"))):
        line = one_error(["detect", xml.parent, "-m", "rx", "--exclude-quality", "cloud", "-o",
                          target, "--overwrite"], capsys)
        assert "-o would overwrite the input" in line
    assert open_cube(xml).sizes["band"] == 65  # the product is whole


def test_outputs_are_never_named_as_the_products_files(tmp_path, capsys):
    xml = write_enmap(tmp_path / "p", fmt="bsq")[0]
    for name in ("SPECTRAL_IMAGE.tif", "QL_PIXELMASK.TIF", "SPECTRAL_IMAGE_COG.TIF"):
        line = one_error(["detect", xml.parent, "-m", "rx", "--exclude-quality", "none", "-o",
                          xml.with_name(xml.name.replace("METADATA.XML", name))], capsys)
        assert "is named as a file of the input EnMAP product" in line
    scores = xml.with_name(xml.name.replace("METADATA.XML", "SCORES.tif"))
    for _ in range(2):  # an output of the product's prefix is no input: rerun, overwrite
        code, _, err = run_cli(["detect", xml.parent, "-m", "rx", "--exclude-quality", "none",
                                "-o", scores, "--overwrite"], capsys)
        assert code == 0, err


def test_quality_layer_nodata_flags_nothing_by_either_path(tmp_path):
    xml, layers = quality_product(tmp_path)
    cloud = xml.with_name(xml.name.replace("METADATA.XML", "QL_QUALITY_CLOUD.TIF"))
    with rasterio.open(cloud, "r+") as dst:
        dst.nodata = 0  # a layer whose clear pixels are its nodata
    by_flag = quality_valid(open_cube(xml), ("cloud",))
    np.testing.assert_array_equal(by_flag, layers["CLOUD"] == 0)
    cube = prepare_cube(open_cube(xml), valid_mask=cloud, exclude_quality="none")
    np.testing.assert_array_equal(np.isnan(cube.values).all(axis=2)[2:, 2:],
                                  layers["CLOUD"][2:, 2:] == 1)


def test_a_defective_pixel_mask_is_no_valid_mask(product):
    xml = product[0]
    pixels = xml.with_name(xml.name.replace("METADATA.XML", "QL_PIXELMASK.TIF"))
    with rasterio.open(pixels, "w", driver="GTiff", width=24, height=20, count=1,
                       dtype="uint8", crs="EPSG:32633", transform=TRANSFORM) as dst:
        dst.write(np.zeros((1, 20, 24), np.uint8))
    with pytest.raises(ParameterError, match="defective-pixel mask"):
        prepare_cube(open_cube(xml), valid_mask=pixels, exclude_quality="none")


def test_folders_and_files_meant_as_products_say_what_is_wrong(tmp_path, capsys):
    two = tmp_path / "two"
    write_enmap(two)
    write_enmap(two, level="L1C")
    with pytest.raises(FileFormatError, match="holds 2 EnMAP products"):
        open_cube(two)
    broken = write_enmap(tmp_path / "broken")[0]
    broken.write_text("")
    for path in (broken, broken.parent):
        with pytest.raises(FileFormatError, match="not EnMAP metadata"):
            open_cube(path)
    line = one_error(["info", broken.parent], capsys)
    assert "is not EnMAP metadata" in line
    with pytest.raises(FileFormatError, match="the EnMAP metadata beside it"):
        open_cube(image_of(broken))


def test_jpeg2000_deliveries_are_refused_by_name(product):
    xml = product[0]
    image_of(xml).unlink()
    jp2 = xml.with_name(xml.name.replace("METADATA.XML", "SPECTRAL_IMAGE.JP2"))
    jp2.write_bytes(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(100))  # JPEG 2000 signature
    with pytest.raises(UnsupportedError, match="JPEG2000"):
        open_cube(xml)


def test_band_numbers_match_their_statistics_as_numbers(tmp_path):
    xml = write_enmap(tmp_path, empty=[0])[0]
    rewrite(xml, '<bandID number="1"><mean>', '<bandID number="01"><mean>')
    assert not open_cube(xml)["good_band"].values[0]
    rewrite(xml, '<bandID number="2"><mean>', '<bandID number="inf"><mean>')
    assert open_cube(xml)["good_band"].values[1:].all()  # an unusable number: no statistics
    for number in ("nan", "inf", "1e400"):
        rewrite(xml, '<bandID number="3"><wavelength', f'<bandID number="{number}"><wavelength')
        with pytest.raises(FileFormatError, match="a band numbered"):
            open_cube(xml)
        rewrite(xml, f'<bandID number="{number}"><wavelength', '<bandID number="3"><wavelength')


def test_the_level_is_the_base_level(product):
    xml = product[0]
    rewrite(xml, "<metadata>", "<metadata><level>L1B</level>")  # another element's level
    assert open_cube(xml).attrs["enmap_level"] == "L2A"
