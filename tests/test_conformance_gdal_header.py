"""ENVI headers that GDAL reads in its own way (found by a differential review, 2026-12-03):
hsad's CRS, transform, nodata and pixels equal what GDAL (rasterio) reads from the same
file, also where GDAL's header rules differ from hsad's own parser
(:mod:`hsad.io.envi_gdal_view`)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from hsad.io.envi import open_envi
from hsad.io.envi_gdal_view import gdal_number

UTM = "{UTM, 1, 1, 500000, 4000000, 30, 30, 33, North, WGS-84}"
BASE = ("ENVI\nsamples = 5\nlines = 4\nbands = 3\nheader offset = 0\ndata type = 4\n"
        "interleave = {interleave}\nbyte order = 0\n")
WKT_3035 = CRS.from_epsg(3035).to_wkt()
WRAPPED = "\n".join(WKT_3035[i:i + 80] for i in range(0, len(WKT_3035), 80))

CASES = {
    "key-with-two-spaces": f"map  info = {UTM}\n",
    "tab-before-key": f"\tmap info = {UTM}\n",
    "underscored-keys": f"map_info = {UTM}\ndata_ignore_value = -9999\n",
    "map-info-without-braces": "map info = UTM, 1, 1, 500000, 4000000, 30, 30, 33, North, WGS-84\n",
    "quote-in-datum": "map info = {UTM, 1, 1, 500000, 4000000, 30, 30, 30, North, "
                      'Ordnance Survey of Great Britain "36}\n',
    "tab-indented-continuation": "map info = {UTM, 1, 1, 500000, 4000000, 30, 30, 33,\n"
                                 "\tSouth, WGS-84}\n",
    "number-split-over-lines": "map info = {UTM, 1, 1, 5000\n00.0, 4000000, 30, 30, 33, North,"
                               " WGS-84}\n",
    "datum-split-without-space": "map info = {UTM, 1, 1, 500000, 4000000, 30, 30, 11, North, "
                                 "North America\n1983}\n",
    "space-indented-continuation": "map info = {UTM, 1, 1, 500000, 4000000, 30, 30, 33,\n"
                                   " South, WGS-84, rotation=30}\n",
    "comment-opening-a-brace": f"; note = {{see below\nmap info = {UTM}\nfoo = }}\n",
    "value-opening-a-brace": f"sensor type = Unknown {{see notes\nmap info = {UTM}\n",
    "line-over-10000-characters": "description = {" + "x" * 10_050 + f"}}\nmap info = {UTM}\n"
                                  "data ignore value = -9999\n",
    "line-under-10000-characters": "description = {" + "x" * 9_000 + f"}}\nmap info = {UTM}\n",
    "wrapped-wkt": "map info = {Arbitrary, 1, 1, 4321000, 3210000, 100, 100}\n"
                   f"coordinate system string = {{{WRAPPED}}}\n",
    "brace-in-description-path": f"description = {{\n/data/run{{1/scene.img}}\nmap info = {UTM}\n",
    "nodata-with-comment": "data ignore value = -9999 ; nodata\n",
    "nodata-in-braces": "data ignore value = {-9999}\n",
    "nodata-empty": "data ignore value =\n",
    "nodata-word": "data ignore value = none\n",
    "nodata-minus-nan": "data ignore value = -nan\n",
    "nodata-list": "data ignore value = {-9999, 0}\n",
    "frames-bil": "major frame offsets = {4, 8}\n",
    "frames-bip": "major frame offsets = {2, 6}\n",
    "frames-bsq": "major frame offsets = {3, 1}\n",
    "frames-not-a-pair": "major frame offsets = {4}\n",
    "frames-trailing-comma": "major frame offsets = {4,8,}\n",
    "frames-past-a-c-int": "major frame offsets = {2147483600,100}\n",
    "frames-wrapped-by-atoi": "major frame offsets = {4294967300,0}\n",
    "long-line-inside-braces": "wavelength = {\n" + ", ".join(["400.5"] * 2_000) + "\n}\n"
                               f"map info = {UTM}\ndata ignore value = -9999\n",
    "line-of-exactly-10000-characters": "description = {" + "x" * (10_000 - 16) + "}\n"
                                        f"map info = {UTM}\ndata ignore value = 5\n",
    "line-of-9999-characters": "description = {" + "x" * (9_999 - 16) + "}\n"
                               f"map info = {UTM}\ndata ignore value = 5\n",
}
INTERLEAVE = {"frames-bip": "bip", "frames-bsq": "bsq"}


def _write(folder, name: str) -> tuple:
    interleave = INTERLEAVE.get(name, "bil")
    text = BASE.format(interleave=interleave) + CASES[name]
    (folder / "scene.hdr").write_text(text)
    values = np.arange(4 * 5 * 3, dtype=np.float32) * 0.25 - 7
    size = values.size * 4 + 4096  # room for any frame bytes: GDAL reads past them
    raw = np.frombuffer(np.random.default_rng(0).bytes(size), np.uint8).copy()
    raw[:values.size * 4] = values.view(np.uint8)
    (folder / "scene.img").write_bytes(raw.tobytes())
    return folder / "scene.img"


@pytest.mark.parametrize("name", sorted(CASES))
def test_hsad_reads_what_gdal_reads(tmp_path, name):
    path = _write(tmp_path, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            expected = ds.read().transpose(1, 2, 0)
            crs, transform, nodata = ds.crs, ds.transform, ds.nodata
        cube = open_envi(path)
    np.testing.assert_array_equal(cube.values, expected)
    ours = cube.rio.transform()
    np.testing.assert_allclose(tuple(ours)[:6], tuple(transform)[:6], rtol=1e-12, atol=0)
    assert cube.rio.crs == crs
    if crs is not None:
        assert cube.rio.crs.to_wkt() == crs.to_wkt()  # the same names, not just equivalent
    theirs = cube.attrs["nodata"]
    assert (theirs is None) == (nodata is None)
    if nodata is not None:
        assert theirs == nodata or (math.isnan(theirs) and math.isnan(nodata))


def test_every_case_is_one_where_the_two_rules_differ_or_a_control(tmp_path):
    """The cases exercise what they are named for: GDAL drops the georeference where the
    header holds a map info it does not see, and reads the frames' offsets."""
    dropped = ["key-with-two-spaces", "tab-before-key", "map-info-without-braces",
               "comment-opening-a-brace", "value-opening-a-brace",
               "line-over-10000-characters", "line-of-exactly-10000-characters"]
    for name in dropped:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cube = open_envi(_write(tmp_path, name))
        assert cube.rio.crs is None, name
        if name != "map-info-without-braces":
            assert any("GDAL does not read this header's 'map info'" in str(w.message)
                       for w in caught), name
    for name in ("line-under-10000-characters", "brace-in-description-path",
                 "long-line-inside-braces", "line-of-9999-characters"):
        assert open_envi(_write(tmp_path, name)).rio.crs.to_epsg() == 32633
    framed = open_envi(_write(tmp_path, "frames-bil")).values
    plain = np.arange(4 * 5 * 3, dtype=np.float32) * 0.25 - 7
    assert not np.array_equal(framed.ravel(), plain)  # the frames shift the lines


@pytest.mark.parametrize("text,value", [
    ("-9999", -9999.0), ("-9999 ; nodata", -9999.0), ("{-9999}", 0.0), ("none", 0.0),
    ("0x10", 0.0), ("-nan", 0.0), ("nan", math.nan), ("NaN", math.nan), ("NAN", 0.0),
    ("inf", math.inf), ("-Inf", -math.inf), ("Infinity", math.inf), ("infinity", 0.0),
    ("1e400", math.inf), ("5e-400", 0.0), ("+-5", -5.0), ("1.5.3", 1.5), ("1e3.5", 1000.0),
    ("1d3", 1.0), ("1_000", 1.0), ("\u0663", 0.0), ("-1.#INF", -math.inf), ("1.#QNAN", math.nan),
])
def test_numbers_are_read_as_gdal_reads_them(text, value):
    """Each checked against GDAL's reading of ``data ignore value = TEXT`` (rasterio)."""
    got = gdal_number(text)
    assert got == value or (math.isnan(got) and math.isnan(value))


def test_a_nodata_that_is_not_a_plain_number_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"'data ignore value = \{-9999\}' is not a plain "
                                         r"number; read as 0, as GDAL reads it"):
        assert open_envi(_write(tmp_path, "nodata-in-braces")).attrs["nodata"] == 0


def _attrs(value: str) -> str:
    """The attributes a test value carries after its first '"' (``5" key="v``)."""
    return " " + value.split('"', 1)[1] + '"' if '"' in value else ""


def _pam(bands: dict[int, str]) -> str:
    body = "".join(f'<PAMRasterBand band="{b}"><NoDataValue{_attrs(v)}>{v.split(chr(34))[0]}'
                   '</NoDataValue></PAMRasterBand>' for b, v in bands.items())
    stats = '<PAMRasterBand band="3"><Metadata><MDI key="STATISTICS_MEAN">1</MDI></Metadata>' \
            '</PAMRasterBand>'
    return f"<PAMDataset>{body}{stats}</PAMDataset>"


@pytest.mark.parametrize("bands,warns", [
    ({1: "0", 2: "0", 3: "0"}, False), ({1: "nan", 2: "nan", 3: "nan"}, False),
    ({}, False), ({1: "0"}, True), ({2: "5"}, True), ({1: "", 2: "", 3: ""}, False),
    ({1: '5" le_hex_equiv="0000000000001C40', 2: "7", 3: "7"}, False),  # the hex: 7.0
])
def test_a_gdal_sidecar_sets_the_nodata_as_in_gdal(tmp_path, bands, warns):
    """GDAL's ``.aux.xml`` beside the data file replaces the header's -9999, band by band;
    hsad takes one value per scene: the first band's, warning when the bands differ."""
    path = _write(tmp_path, "underscored-keys")  # data ignore value = -9999
    (tmp_path / "scene.img.aux.xml").write_text(_pam(bands))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            nodatavals = ds.nodatavals
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nodata = open_envi(path).attrs["nodata"]
    assert nodata == nodatavals[0] or (math.isnan(nodata) and math.isnan(nodatavals[0]))
    said = [w for w in caught if "sidecar gives the bands different nodata" in str(w.message)]
    assert bool(said) == warns == (len({str(v) for v in nodatavals}) > 1)
