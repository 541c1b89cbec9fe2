"""Conformance: hsad reads the ENVI corpus, and georeferencing, exactly as GDAL does.

Each ENVI entry of ``envi_corpus/corpus.json`` is its own test: pixels equal the
``truth`` array (or what rasterio/GDAL reads), and shape, dtype, nodata, CRS and
transform equal the recorded GDAL reading. Files GDAL refuses still read correctly
(1-byte files) or, for spectral libraries, give the clear error plus a correct
``read_spectral_library``. Generated headers cover map info / projection info /
coordinate system string variants, compared live with GDAL through rasterio.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from hsad.errors import UnsupportedError
from hsad.io.envi import open_envi, read_spectral_library
from hsad.io.envi_header import DATA_TYPES, parse_header, parse_header_text

try:
    from conftest import NO_CORPUS, corpus_folder
except ImportError:  # pragma: no cover - run outside the tests folder
    corpus_folder = None


def _corpus_entries():
    corpus = None if corpus_folder is None else corpus_folder() / "corpus.json"
    if corpus is None or not corpus.is_file():
        return [pytest.param(None, id="corpus-missing")]
    files = json.loads(corpus.read_text())["files"]
    return [pytest.param(e, id=e["file"]) for e in files if e["format"] == "ENVI"]


def _rasterio_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read().transpose(1, 2, 0), ds.crs, ds.transform, ds.nodata


def _assert_transform(ours, gdal):
    np.testing.assert_allclose(tuple(ours)[:6], tuple(gdal)[:6], rtol=1e-9, atol=0)


def _assert_crs(ours, epsg, wkt):
    if wkt is None:
        assert ours is None
        return
    assert ours is not None
    if epsg is not None:
        assert ours.to_epsg() == epsg
    assert CRS.from_wkt(wkt) == ours


@pytest.mark.parametrize("entry", _corpus_entries())
def test_corpus_entry_reads_like_gdal(corpus_dir, entry):
    if entry is None:
        pytest.skip(NO_CORPUS.format(where=corpus_folder()))
    data = corpus_dir / entry["file"]
    gdal = entry["gdal"]
    header = parse_header(corpus_dir / entry["header"])

    if "spectral library" in entry["file_type"].lower():
        assert "error" in gdal
        with pytest.raises(UnsupportedError, match="read_spectral_library"):
            open_envi(data)
        spectra, names, wavelength = read_spectral_library(data)
        assert spectra.shape == (header.lines, header.samples)
        assert len(names) == header.lines and wavelength.shape == (header.samples,)
        assert np.all(np.diff(wavelength) > 0) and 300 < wavelength[0] < wavelength[-1] < 3000
        raw = np.fromfile(data, dtype=header.dtype).reshape(header.lines, header.samples)
        np.testing.assert_array_equal(spectra, raw)
        return

    cube = open_envi(data)
    for key in ("interleave", "byte_order", "data_type", "header_offset", "file_type"):
        assert cube.attrs[key] == entry[key]
    values = cube.values
    if "truth" in entry:
        truth = np.load(corpus_dir / entry["truth"])
        assert values.dtype == truth.dtype
        np.testing.assert_array_equal(values, truth)
    else:
        expected = _rasterio_read(data)[0]
        assert values.dtype == expected.dtype
        np.testing.assert_array_equal(values, expected)
    assert cube.dtype == DATA_TYPES[entry["data_type"]]
    if "error" in gdal:  # GDAL refuses these (1-byte data files): no georeferencing to match
        assert "1-byte" in gdal["error"]
        return
    assert values.shape == (gdal["rows"], gdal["cols"], gdal["bands"])
    assert str(values.dtype) == gdal["dtype"]
    assert cube.attrs["nodata"] == gdal["nodata"]
    _assert_transform(cube.rio.transform(), gdal["transform"])
    _assert_crs(cube.rio.crs, gdal["epsg"], gdal["crs_wkt"])


@pytest.mark.parametrize("name", ["rotation", "envirpc", "testenviclasses"])
def test_files_gdal_refuses_georeference_like_gdal_once_readable(corpus_dir, tmp_path, name):
    """Same header, data file padded to 3x2 pixels so that GDAL opens it too."""
    header = (corpus_dir / "gdal" / f"{name}.hdr").read_text()
    header = re.sub(r"samples\s*=\s*1", "samples = 3", header)
    header = re.sub(r"lines\s*=\s*1", "lines = 2", header)
    (tmp_path / f"{name}.hdr").write_text(header)
    (tmp_path / f"{name}.img").write_bytes(bytes(range(6)))
    values, crs, transform, _ = _rasterio_read(tmp_path / f"{name}.img")
    cube = open_envi(tmp_path / f"{name}.img")
    np.testing.assert_array_equal(cube.values, values)
    _assert_transform(cube.rio.transform(), transform)
    assert cube.rio.crs == crs
    if name == "rotation":
        assert crs.to_epsg() == 32612 and transform.b != 0
    if name == "testenviclasses":
        assert cube.attrs["class_names"] == ["Black", "White"]


@pytest.mark.parametrize("entry,first", [
    ("isofit/ang20160910t185702_2rdn_img", 376.44),  # only in band names (Nanometers)
    ("enmapbox/cubus_gamsberg_subset", 426.820007),  # units "Unknown", values in nm
    ("isofit/ang20170323t202244_rdn_7000-7010", 376.86),
])
def test_corpus_wavelengths_are_nanometres(corpus_dir, entry, first):
    wavelength = open_envi(corpus_dir / entry)["wavelength"].values
    assert wavelength[0] == pytest.approx(first) and np.all(np.diff(wavelength) > 0)
    _, _, library = read_spectral_library(corpus_dir / "enmapbox" / "library_berlin.sli")
    assert library[0] == pytest.approx(460.0)  # header says Micrometers: 0.46 um


def test_header_or_data_path_open_the_same_cube(corpus_dir):
    a = open_envi(corpus_dir / "gdal" / "envi_rgbsmall_bip.img")
    b = open_envi(corpus_dir / "gdal" / "envi_rgbsmall_bip.hdr")
    np.testing.assert_array_equal(a.values, b.values)
    assert a.attrs["data_path"] == b.attrs["data_path"]


# ---------------------------------------------------------------- georeferencing variants

_VARIANTS = {
    "utm-no-datum-means-nad27": "map info = {UTM, 1, 1, 440720, 3751320, 60, 60, 11, North}",
    "utm-south-pixel-centre": "map info = {UTM, 1.5, 1.5, 440720, 3751320, 30, 30, 33, South, "
                              "WGS-84}",
    "utm-feet": "map info = {UTM, 1, 1, 440720, 3751320, 60, 60, 11, North, "
                "North America 1983, units=Feet}",
    "utm-rotated": "map info = { UTM , 1.000 , 1.000 , 736600.089 , 4078126.750 , 2.7 , 2.7 , "
                   "12 , North , WGS-84 , units=Meters , rotation=-66.0 }",
    "utm-rotated-offset-ref": "map info = {UTM, 2, 3, 736600.089, 4078126.75, 2.7, 2.7, 12, "
                              "North, WGS-84, rotation=30}",
    "upside-down": "map info = {UTM, 1, 1, 736600, 4078126, 2, 2, 12, North, WGS-84, "
                   "rotation=180}",
    "utm-ed50": "map info = {UTM, 1, 1, 500000, 4000000, 10, 10, 31, North, European 1950}",
    "utm-nad27-alias": "map info = {UTM, 1, 1, 5e5, 4e6, 10, 10, 15, North, NAD27 CONUS}",
    "utm-clarke-ellipsoid": "map info = {UTM, 1, 1, 5e5, 4e6, 10, 10, 15, North, Clark 1866}",
    "geographic-no-datum": "map info = {Geographic Lat/Lon, 1, 1, -44.8, -22.9, 0.001, 0.001}",
    "geographic-wgs84": "map info = {Geographic Lat/Lon, 1, 1, -44.8, -22.9, 0.001, 0.001, "
                        "WGS-84}",
    "geographic-minutes": "map info = {Geographic Lat/Lon, 1, 1, -2688, -1374, 0.06, 0.06, "
                          "North America 1983, units=Minutes}",
    "geographic-seconds": "map info = {Geographic Lat/Lon, 1, 1, -161280, -82440, 3.6, 3.6, "
                          "WGS-84, units=Seconds}",
    "geographic-radians": "map info = {Geographic Lat/Lon, 1, 1, -0.78, -0.4, 1e-5, 1e-5, "
                          "WGS-84, units=Radians}",
    "arbitrary": "map info = {Arbitrary, 1, 1, 1000, 2000, 10, 10, 0, North}",
    "arbitrary-feet": "map info = {Arbitrary, 1, 1, 1000, 2000, 10, 10, 0, North, units=Feet}",
    "too-short": "map info = {UTM, 1, 1, 1000, 2000, 10}",
    "state-plane-nad83": "map info = {State Plane (NAD 83), 1, 1, 1000, 2000, 10, 10, 3101, "
                         "units=Meters}",
    "state-plane-nad27": "map info = {State Plane (NAD 27), 1, 1, 1000, 2000, 10, 10, 3101}",
    "state-plane-feet": "map info = {State Plane (NAD 83), 1, 1, 1000, 2000, 10, 10, 3101, "
                        "units=Feet}",
    "pi-3-tm": "map info = {TM, 1, 1, 1000, 2000, 10, 10}\nprojection info = {3, 6378137.0, "
               "6356752.314245179, 0.0, 9.0, 500000.0, 0.0, 0.9996, WGS-84, TM}",
    "pi-3-tm-feet": "map info = {TM, 1, 1, 1000, 2000, 10, 10, units=Feet}\nprojection info = "
                    "{3, 6378137.0, 6356752.314245179, 0.0, 9.0, 500000.0, 0.0, 0.9996, WGS-84, "
                    "TM}",
    "pi-4-lcc-datum": "map info = {LCC, 1, 1, 1000, 2000, 10, 10}\nprojection info = {4, "
                      "6378137.0, 6356752.314245179, 46.5, 3.0, 700000.0, 6600000.0, 44.0, "
                      "49.0, Geocentric Datum of Australia 1994, LCC}",
    "pi-4-lcc-ellipse": "map info = {LCC, 1, 1, 1000, 2000, 10, 10}\nprojection info = {4, "
                        "6378137.0, 6356752.314245179, 46.5, 3.0, 700000.0, 6600000.0, 44.0, "
                        "49.0, LCC}",
    "pi-5-hotine-2pt": "map info = {HOM A, 1, 1, 1000, 2000, 10, 10}\nprojection info = {5, "
                       "6378137.0, 6356752.3, 40.0, 30.0, -100.0, 50.0, -90.0, 1000.0, 2000.0, "
                       "0.9996, WGS-84, Hotine A}",
    "pi-6-hotine": "map info = {HOM B, 1, 1, 1000, 2000, 10, 10}\nprojection info = {6, "
                   "6378137.0, 6356752.3, 40.0, -100.0, 30.0, 1000.0, 2000.0, 0.9996, WGS-84, "
                   "Hotine B}",
    "pi-7-stereographic": "map info = {Stereo, 1, 1, 1000, 2000, 10, 10}\nprojection info = "
                          "{7, 6378137.0, 6356752.3, 52.0, 5.0, 155000.0, 463000.0, 0.9999079, "
                          "Bessel 1841, Stereo}",
    "pi-9-albers": "map info = {Albers, 1, 1, 1000, 2000, 28.5, 28.5}\nprojection info = {9, "
                   "6378206.4, 6356583.8, 23.0, -96.0, 0., 0., 29.5, 45.5, Albers}",
    "pi-9-albers-epsg5070": "map info = {Albers, 1, 1, 1000, 2000, 30, 30}\nprojection info = "
                            "{9, 6378137, 6356752.3, 23.0, -96.0, 0., 0., 29.5, 45.5, "
                            "North America 1983, Albers, units=Meters}",
    "pi-10-polyconic": "map info = {Poly, 1, 1, 1000, 2000, 10, 10}\nprojection info = {10, "
                       "6378137.0, 6356752.3, 0.0, -54.0, 5000000.0, 10000000.0, WGS-84, Poly}",
    "pi-11-laea": "map info = {LAEA, 1, 1, 1000, 2000, 10, 10}\nprojection info = {11, "
                  "6378137.0, 6356752.3, 52.0, 10.0, 4321000.0, 3210000.0, LAEA}",
    "pi-12-azimuthal-equidistant": "map info = {AE, 1, 1, 1000, 2000, 10, 10}\nprojection "
                                   "info = {12, 6378137.0, 6356752.3, 52.0, 10.0, 0.0, 0.0, "
                                   "WGS-84, AE}",
    "pi-31-polar-south-epsg3031": "map info = {PS, 1, 1, 1000, 2000, 10, 10}\nprojection info "
                                  "= {31, 6378137.0, 6356752.3, -71.0, 0.0, 0.0, 0.0, WGS-84, "
                                  "PS}",
    "pi-31-polar-north": "map info = {PS, 1, 1, 1000, 2000, 10, 10}\nprojection info = {31, "
                         "6378137.0, 6356752.3, 70.0, -45.0, 0.0, 0.0, WGS-84, PS}",
    "pi-31-polar-at-pole": "map info = {PS, 1, 1, 1000, 2000, 10, 10}\nprojection info = {31, "
                           "6378137.0, 6356752.3, 90.0, 0.0, 2e6, 2e6, WGS-84, PS}",
    "pi-unknown-code-is-local": "map info = {Weird, 1, 1, 1000, 2000, 10, 10}\nprojection "
                                "info = {99, 6378137.0, 6356752.3, -71.0, 0.0, 0.0, 0.0, PS}",
    "css-esri-laea": 'map info = {LAEA, 1, 1, 4321000, 3210000, 10, 10}\ncoordinate system '
                     'string = {PROJCS["ETRS89_LAEA",GEOGCS["GCS_ETRS_1989",DATUM["D_ETRS_1989",'
                     'SPHEROID["GRS_1980",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],'
                     'UNIT["Degree",0.0174532925199433]],PROJECTION["Lambert_Azimuthal_Equal_'
                     'Area"],PARAMETER["False_Easting",4321000.0],PARAMETER["False_Northing",'
                     '3210000.0],PARAMETER["Central_Meridian",10.0],PARAMETER["Latitude_Of_'
                     'Origin",52.0],UNIT["Meter",1.0]]}',
    "css-unparsable-falls-back": "map info = {UTM, 1, 1, 440720, 3751320, 60, 60, 11, North, "
                                 "WGS-84}\ncoordinate system string = {garbage}",
}
_BASE = ("ENVI\nsamples = 3\nlines = 2\nbands = 1\nheader offset = 0\n"
         "file type = ENVI Standard\ndata type = 1\ninterleave = bsq\nbyte order = 0\n")


@pytest.mark.parametrize("name", sorted(_VARIANTS))
def test_georeferencing_variants_match_gdal(tmp_path, name):
    text = _BASE + _VARIANTS[name] + "\n"
    (tmp_path / "v.hdr").write_text(text)
    (tmp_path / "v.img").write_bytes(bytes(6))
    _, gdal_crs, gdal_transform, _ = _rasterio_read(tmp_path / "v.img")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown-datum notices
        cube = open_envi(tmp_path / "v.img")
    _assert_transform(cube.rio.transform(), gdal_transform)
    if gdal_crs is None:
        assert cube.rio.crs is None
    else:
        assert cube.rio.crs == gdal_crs
        assert cube.rio.crs.to_epsg() == gdal_crs.to_epsg()
    assert parse_header_text(text)["samples"] == "3"


def test_unknown_datum_warns_and_uses_wgs84(tmp_path):
    text = _BASE + "map info = {UTM, 1, 1, 5e5, 4e6, 10, 10, 15, North, Foo Datum}\n"
    (tmp_path / "v.hdr").write_text(text)
    (tmp_path / "v.img").write_bytes(bytes(6))
    with pytest.warns(UserWarning, match="unrecognised ENVI datum 'Foo Datum'"):
        cube = open_envi(tmp_path / "v.img")
    assert cube.rio.crs.to_epsg() == 32615 == _rasterio_read(tmp_path / "v.img")[1].to_epsg()
    assert cube.rio.transform() == Affine(10, 0, 5e5, 0, -10, 4e6)
