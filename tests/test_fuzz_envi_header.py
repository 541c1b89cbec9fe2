"""Property tests of the ENVI header parser (issue 10, fuzzing).

Headers are generated from a model of their fields, rendered with random key order and
case, whitespace, braces across lines, comments, line ends, duplicates and bad values.
The parser must return the header the model predicts or raise an ``HsadError``; on
arbitrary bytes it must return a consistent header or raise ``HsadError``. Nothing else
escapes, and nothing hangs. ``benchmarks/fuzz_readers.py`` reuses these strategies.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from affine import Affine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hsad.cube import make_cube, nodata_for
from hsad.errors import HeaderError, HsadError
from hsad.io.envi_georef import georef_from_header
from hsad.io.envi_header import DATA_TYPES, DTYPE_CODES, parse_header, wavelengths_from_band_names
from hsad.io.envi_writer import header_text

# CI budget: a fixed (derandomized) set of 40 cases per property, 2 s per case at most.
# HSAD_HYPOTHESIS_PROFILE=hsad-dev draws new cases on each run (benchmarks/fuzz_readers.py
# runs the same properties for as long as asked).
_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("hsad-ci", max_examples=40, deadline=2000, derandomize=True,
                          database=None, suppress_health_check=_QUIET)
settings.register_profile("hsad-dev", max_examples=200, deadline=2000, database=None,
                          suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HSAD_HYPOTHESIS_PROFILE", "hsad-ci"))

INVALID = object()  # model value of a field the parser must reject

# --------------------------------------------------------------------------- field values


def _sizes(minimum: int):
    """(text, model value) of a size-like integer field."""
    good = st.one_of(
        st.integers(minimum, 6).map(lambda v: (str(v), v)),
        st.integers(minimum, 6).map(lambda v: (f" +{v}.0 ", v)),
        st.sampled_from([(str(10**12), 10**12), ("1e3", 1000), (str(2**70), 2**70),
                         ("{ 3 }", 3)]),
    )
    bad = st.sampled_from(["-1", "-7", "3.5", "abc", "", "nan", "inf", "-inf", "1e400",
                           "9" * 5000, "0x10", "3 4", "{3", "1,5", "1e-3"])
    junk = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="{}"),
                   max_size=8)
    bad = st.one_of(bad, st.just(str(minimum - 1)), junk)
    return st.one_of(good, bad.map(lambda t: (t, _int_or_invalid(t, minimum))))


def _int_or_invalid(text: str, minimum: int):
    """What a size text means: its integer value, or INVALID (independent of hsad)."""
    try:
        value = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            return INVALID
        if not f.is_integer():
            return INVALID
        value = int(f)
    return value if value >= minimum else INVALID


def _codes(valid, invalid):
    return st.one_of(st.sampled_from([(str(v), v) for v in valid]),
                     st.sampled_from([(str(v), INVALID) for v in invalid]))


def _cased(word: str):
    """``word`` with random letter case."""
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda ups: "".join(c.upper() if u else c.lower() for c, u in zip(word, ups, strict=True)))


NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.integers(-10**6, 10**6))
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"),
                                  blacklist_characters="{},;="), max_size=12)


@st.composite
def header_model(draw):
    """``{key: (text, model value)}`` for a header; the value is INVALID when it must fail."""
    m = {k: draw(_sizes(1)) for k in ("samples", "lines", "bands")}
    m["data type"] = draw(_codes(sorted(DATA_TYPES), [0, 6, 7, 9, 99, -1, "x", ""]))
    if draw(st.booleans()):
        m["interleave"] = draw(st.one_of(
            st.sampled_from(["bsq", "bil", "bip"]).flatmap(
                lambda w: _cased(w).map(lambda c, w=w: (f" {c} ", w))),
            st.just(("", None)),
            st.sampled_from([("bsx", INVALID), ("bands", INVALID)])))
    if draw(st.booleans()):
        m["byte order"] = draw(_codes([0, 1], [2, -1, "x", ""]))
    if draw(st.booleans()):
        m["header offset"] = draw(st.one_of(_sizes(0)))
    if draw(st.booleans()):
        m["file compression"] = draw(_codes([0, 1], [2, 7]))
    if draw(st.booleans()):
        # read as GDAL reads it (C's atof): no number is 0, "1 2" is 1 (with a warning)
        m["data ignore value"] = draw(st.one_of(
            NUMBER.map(lambda v: (repr(v), float(v))), st.just(("", 0.0)),
            st.sampled_from([("abc", 0.0), ("1 2", 1.0)])))
    bands = m["bands"][1]
    n = bands if isinstance(bands, int) and bands <= 6 else 3
    for key in ("wavelength", "fwhm", "bbl", "band names"):
        if not draw(st.booleans()):
            continue
        count = draw(st.sampled_from([n, n, n, max(n - 1, 0), n + 1]))
        if key == "band names":
            items = draw(st.lists(SAFE_TEXT, min_size=count, max_size=count))
            m[key] = (items, [s.strip() for s in items])
        elif key == "bbl":
            items = draw(st.lists(st.sampled_from([0, 1]), min_size=count, max_size=count))
            m[key] = ([str(v) for v in items], [bool(v) for v in items])
        else:
            items = draw(st.lists(NUMBER.map(abs), min_size=count, max_size=count))
            texts = [repr(v) for v in items]
            if count and draw(st.integers(0, 9)) == 0:
                # (not "": a one-item list of "" is "{}", an empty list)
                texts[draw(st.integers(0, count - 1))] = draw(st.sampled_from(["x", "1 2", "-"]))
                m[key] = (texts, None)  # dropped with a warning: GDAL reads such a file
            else:
                m[key] = (texts, [float(v) for v in items])
    if "wavelength" in m or "fwhm" in m:
        m["wavelength units"] = draw(st.sampled_from(
            [("Nanometers", 1.0), ("nm", 1.0), ("Micrometers", 1000.0), ("microns", 1000.0)]))
    if draw(st.booleans()):
        m["description"] = draw(SAFE_TEXT.map(lambda t: ([t], t.strip())))
    for key in draw(st.lists(st.sampled_from(["samples", "lines", "bands", "data type"]),
                             max_size=1)):
        m.pop(key, None)  # a required key left out
    return m


@st.composite
def render(draw, model: dict) -> bytes:
    """Header bytes for ``model``, in a random layout."""
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    keys = draw(st.permutations(list(model)))
    extra = draw(st.lists(st.from_regex(r"x[a-z]{1,6}( [a-z]{1,4})?", fullmatch=True),
                          max_size=2, unique=True))
    lines = [draw(st.sampled_from(["ENVI", "envi", "  ENVI  ", "\ufeffENVI"]))]
    for key in [*keys, *extra]:
        if draw(st.integers(0, 5)) == 0:
            lines.append(";" + draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                                            max_size=15)))
        if draw(st.integers(0, 6)) == 0:
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
        if key in model and draw(st.integers(0, 7)) == 0:  # duplicate: the later one wins
            lines.append(_line(draw, key, ("99", None)))
        lines.append(_line(draw, key, model[key] if key in model else ("{a,\n b}", None)))
    return newline.join(lines).encode("utf-8") + newline.encode()[: draw(st.integers(0, 2))]


def _line(draw, key: str, field) -> str:
    text, _ = field
    words = [draw(_cased(w)) for w in key.split()]
    sep = draw(st.sampled_from([" ", "  ", "\t", " \t "]))
    eq = draw(st.sampled_from(["=", " = ", "  =", "=  "]))
    lead = draw(st.sampled_from(["", " ", "\t"]))
    if key == "data ignore value":  # GDAL's spelling (it reads the nodata): one space
        sep, lead = " ", lead.strip("\t")  # between words, no tab before the key
    if isinstance(text, list):  # a list value: braces, maybe across lines
        joins = st.sampled_from([",", ", ", " ,", ",\n", ",\n   ", "\n,"])
        body = "".join(item + (draw(joins) if i < len(text) - 1 else "")
                       for i, item in enumerate(text))
        opening = draw(st.sampled_from(["{", "{ ", "{\n", "{\n  "]))
        closing = draw(st.sampled_from(["}", " }", "\n}", "\n  }"]))
        text = opening + body + closing
    return f"{lead}{sep.join(words)}{eq}{text}"


HEADERS = header_model().flatmap(lambda m: render(m).map(lambda raw, m=m: (m, raw)))

# --------------------------------------------------------------------------- invariants


def check_consistent(hdr) -> None:
    """Invariants of any header ``parse_header`` returns."""
    for v in (hdr.samples, hdr.lines, hdr.bands):
        assert isinstance(v, int) and v >= 1
    assert hdr.data_type in DATA_TYPES and hdr.dtype.itemsize == DATA_TYPES[hdr.data_type].itemsize
    assert hdr.interleave in (None, "bsq", "bil", "bip")
    assert hdr.byte_order in (0, 1) and hdr.file_compression in (0, 1)
    assert isinstance(hdr.header_offset, int) and hdr.header_offset >= 0
    assert hdr.nbytes == hdr.samples * hdr.lines * hdr.bands * hdr.dtype.itemsize
    assert hdr.nodata is None or isinstance(hdr.nodata, float)
    n = hdr.samples if hdr.is_spectral_library else hdr.bands
    for arr, kind in ((hdr.wavelength, "f"), (hdr.fwhm, "f"), (hdr.good_band, "b")):
        assert arr is None or (arr.shape == (n,) and arr.dtype.kind == kind)
    if hdr.band_names is not None:
        assert len(hdr.band_names) == n and all(isinstance(s, str) for s in hdr.band_names)


def parse_bytes(raw: bytes, folder: Path):
    """Parse ``raw`` as a header file; warnings (dropped lists) are allowed, not errors."""
    path = folder / "fuzz.hdr"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return parse_header(path)


def check_header_bytes(raw: bytes, folder: Path) -> None:
    """The property on any bytes: a consistent header (with a readable georef) or HsadError."""
    try:
        hdr = parse_bytes(raw, folder)
        check_consistent(hdr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            transform, crs = georef_from_header(hdr.raw, hdr.path)
        assert transform is None or all(np.isfinite(tuple(transform)))
    except HsadError:
        pass


def _expected(model: dict) -> dict | None:
    """What the parser must return for ``model``; None when it must raise."""
    if any(k not in model for k in ("samples", "lines", "bands", "data type")):
        return None
    if any(v is INVALID for _, v in model.values()):
        return None
    bands = model["bands"][1]
    out = {k: model[k][1] for k in ("samples", "lines", "bands", "data type")}
    out.update({k: model.get(k, (None, d))[1] for k, d in
                (("interleave", None), ("byte order", 0), ("header offset", 0),
                 ("file compression", 0), ("data ignore value", None))})
    units = model.get("wavelength units", (None, 1.0))[1]
    for key in ("wavelength", "fwhm", "bbl", "band names"):
        value = model.get(key, (None, None))[1]
        if key == "band names" and value == [] and bands == 1:
            value = [""]  # "{}" is also one empty name: how a one-band header writes it
        if value is not None and len(value) != bands:
            value = None  # a list of the wrong length is dropped
        if value is not None and key in ("wavelength", "fwhm"):
            value = [v * units for v in value]
        out[key] = value
    if out["wavelength"] is None and out["band names"] is not None and "wavelength" not in model:
        out["wavelength"] = wavelengths_from_band_names(out["band names"])
    return out


def check_model(model: dict, raw: bytes, folder: Path) -> None:
    """The model property: exactly the predicted header, or HsadError when one is due."""
    want = _expected(model)
    if want is None:
        with pytest.raises(HsadError):
            parse_bytes(raw, folder)
        return
    hdr = parse_bytes(raw, folder)
    check_consistent(hdr)
    got = {"samples": hdr.samples, "lines": hdr.lines, "bands": hdr.bands,
           "data type": hdr.data_type, "interleave": hdr.interleave,
           "byte order": hdr.byte_order, "header offset": hdr.header_offset,
           "file compression": hdr.file_compression, "data ignore value": hdr.nodata}
    for key, value in got.items():
        assert value == want[key] or (value != value and want[key] != want[key]), key
    for key, value in (("wavelength", hdr.wavelength), ("fwhm", hdr.fwhm)):
        if want[key] is None:
            assert value is None, key
        else:
            np.testing.assert_array_equal(value, want[key], err_msg=key)
    assert (None if hdr.good_band is None else list(hdr.good_band)) == want["bbl"]
    assert hdr.band_names == want["band names"]
    if "description" in model:
        assert hdr.description.strip() == model["description"][1]


# --------------------------------------------------------------------------- properties


@given(HEADERS)
@example(({"samples": ("3", 3), "lines": ("2", 2), "bands": (str(10**12), 10**12),
           "data type": ("4", 4)}, b"ENVI\nsamples=3\nlines=2\nbands=1000000000000\ndata type=4\n"))
@example(({"samples": ("1", 1), "lines": ("1", 1), "bands": ("1", 1), "data type": ("1", 1),
           "band names": ([], [])}, b"ENVI\nsamples=1\nlines=1\nbands=1\ndata type=1\n"
                                    b"band names={}"))
def test_generated_headers_parse_to_their_model_or_raise_hsad_error(tmp_path, case):
    model, raw = case
    check_model(model, raw, tmp_path)


def mutate(raw: bytes, edits) -> bytes:
    """``raw`` with each ``(pos, n, insert)`` edit: ``n`` bytes at ``pos`` replaced."""
    data = bytearray(raw)
    for pos, cut, insert in edits:
        pos %= len(data) + 1
        data[pos:pos + cut] = insert
    return bytes(data)


MUTATED = HEADERS.flatmap(lambda c: st.tuples(st.just(c[1]), st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.binary(max_size=3)), max_size=4)))
ARBITRARY = st.one_of(st.binary(max_size=300),
                      st.text(max_size=300).map(lambda t: b"ENVI\n" + t.encode("utf-8")))


@given(MUTATED)
def test_mutated_headers_give_a_consistent_header_or_hsad_error(tmp_path, case):
    check_header_bytes(mutate(*case), tmp_path)


@given(ARBITRARY)
@example(b"")
@example(b"ENVI")
@example(b"ENVI\nsamples = {3\nlines = 2\n")
@example(b"ENVI\nsamples=1\nlines=1\nbands=1\ndata type=4\nmap info = {a\"b, 1, 1, 0, 0, 1, 1}")
@example(b"ENVI\nsamples=1\nlines=1\nbands=1\ndata type=4\n"
         b"map info = {Arbitrary, 1, 1, 0, 0, 1, 1, rotation=1e999}")
@example(b"ENVI\nsamples=1\nlines=1\nbands=1\ndata type=4\n"
         b"map info = {x, 1, 1, 0, 0, 1, 1}\nprojection info = {3, 1e999, 1, 0, 0, 0, 0, 1, x}")
def test_arbitrary_bytes_give_a_consistent_header_or_hsad_error(tmp_path, raw):
    check_header_bytes(raw, tmp_path)


@pytest.mark.parametrize("text", [
    "ENVI\nsamples = 1e400\nlines = 1\nbands = 1\ndata type = 4\n",
    "ENVI\nsamples = " + "9" * 5000 + "\nlines = 1\nbands = 1\ndata type = 4\n",
    "ENVI\nsamples = -3\nlines = 1\nbands = 1\ndata type = 4\n",
])
def test_bad_sizes_are_header_errors_with_a_short_message(tmp_path, text):
    path = tmp_path / "bad.hdr"
    path.write_text(text)
    with pytest.raises(HeaderError) as info:
        parse_header(path)
    assert len(str(info.value)) < 200 + len(str(path))


def test_a_bad_optional_list_is_a_short_warning(tmp_path):
    """GDAL opens a file whose wavelength list cannot be read: hsad too, without it."""
    path = tmp_path / "bad.hdr"
    path.write_text("ENVI\nsamples = 3\nlines = 1\nbands = 3\ndata type = 4\n"
                    "wavelength = {1, x, 3}\n")
    with pytest.warns(UserWarning, match="'wavelength' item 'x' is not a number") as seen:
        header = parse_header(path)
    assert header.wavelength is None and header.samples == 3
    assert len(str(seen[0].message)) < 200 + len(str(path))


def test_band_names_made_of_digits_do_not_hang(tmp_path):
    """A long digit run in band names took quadratic time in the wavelength regex."""
    names = ["1" * 200_000, "2 nm"]
    assert wavelengths_from_band_names(names) is None
    np.testing.assert_array_equal(wavelengths_from_band_names(["b (0.5 um)", "x 450nm"]),
                                  [500.0, 450.0])


@pytest.mark.parametrize("names, nm", [
    (["Blue 0.45-0.51 µm", "NIR 0.85-0.88 µm"], [480.0, 865.0]),  # Landsat's band tables
    (["450 – 510 nm", "B 0.45 - 0.51 um"], [480.0, 480.0]),
    (["B3-560nm", "Band 4-665 nm"], [560.0, 665.0]),  # a band number, then a dash
    (["B8A-865nm", "NIR-865 nm"], [865.0, 865.0]),  # a dash after a label
    (["B400-750nm", "Band 350 - 700 nm"], [750.0, 700.0]),  # band numbers, no ranges
    (["0.45µm-0.51µm", "Pan 0.52-0.90 um"], [510.0, 710.0]),
    (["offset -5 nm", "450 nm"], None),
])
def test_a_dash_in_a_band_name_is_no_minus_sign(names, nm):
    """`Blue 0.45-0.51 µm` was read as -510 nm: `hsad info` printed -880--510 nm and every
    --wavelengths range kept no band."""
    got = wavelengths_from_band_names(names)
    if nm is None:
        assert got is None
    else:
        np.testing.assert_allclose(got, nm)


@pytest.mark.parametrize("names, nm", [
    (["Kanal 1 (0,45 µm)", "Kanal 2 (0,55 µm)"], [450.0, 550.0]),  # had been 45000, 55000
    (["B1 1,65 µm", "B2 2,2 µm"], [1650.0, 2200.0]),  # had been 65000, 2000
    (["(450,5 nm)", "(460,5 nm)"], [450.5, 460.5]),  # had been 5, 5 ("a placeholder")
    (["Band 12 (1,450 nm)", "Band 13 (1,460 nm)"], [1450.0, 1460.0]),  # thousands
    (["Band 1 (0,450 µm)", "Band 2 (2,500 nm)"], [450.0, 2500.0]),
])
def test_a_comma_in_a_band_name_s_wavelength_is_a_decimal_or_thousands_separator(names, nm):
    """A GeoTIFF's band descriptions written with decimal commas (a European export) gave
    the digits after the comma as the wavelength, in silence; a comma before three digits
    is read as whichever separator gives a plausible wavelength."""
    np.testing.assert_allclose(wavelengths_from_band_names(names), nm)


# --------------------------------------------------------------------------- round trip

CRS_CHOICES = [(None, None), ("EPSG:32633", Affine(30, 0, 500000, 0, -30, 4100000)),
               ("EPSG:4326", Affine(0.01, 0, 10, 0, -0.01, 50)),
               (None, Affine(2, 0, 100, 0, -2, 200))]


@st.composite
def cube_meta(draw):
    bands = draw(st.integers(1, 12))
    per_band = st.lists(st.floats(1, 1e5, allow_nan=False), min_size=bands, max_size=bands)
    names = st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=10),
                     min_size=bands, max_size=bands)
    return {
        "shape": (draw(st.integers(1, 4)), draw(st.integers(1, 4)), bands),
        "dtype": draw(st.sampled_from(sorted(DTYPE_CODES, key=str))),
        "interleave": draw(st.sampled_from(["bsq", "bil", "bip"])),
        "byte_order": draw(st.integers(0, 1)),
        "wavelength": draw(st.none() | per_band), "fwhm": draw(st.none() | per_band),
        "good_band": draw(st.none() | st.lists(st.booleans(), min_size=bands, max_size=bands)),
        "band_names": draw(st.none() | names),
        "nodata": draw(st.none() | st.floats(allow_infinity=False)),
        "description": draw(st.none() | st.text(st.characters(blacklist_categories=("Cs",)),
                                                 max_size=30)),
        "georef": draw(st.sampled_from(CRS_CHOICES)),
    }


def _safe(text: str) -> str:
    """How the writer is documented to store free text in a list item."""
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c
                   for c in text.replace("\r\n", "\n"))
    for a, b in (("{", "("), ("}", ")"), (",", ";")):
        text = text.replace(a, b)
    return text.strip()


@given(cube_meta())
@example({"shape": (1, 1, 1), "dtype": np.dtype("u1"), "interleave": "bsq", "byte_order": 0,
          "wavelength": None, "fwhm": None, "good_band": None, "band_names": [""],
          "nodata": None, "description": "a\r\nb", "georef": CRS_CHOICES[0]})
@example({"shape": (1, 2, 2), "dtype": np.dtype("f4"), "interleave": "bil", "byte_order": 1,
          "wavelength": [500.0, 600.0], "fwhm": None, "good_band": None,
          "band_names": ["\x00", "a\r\nb"], "nodata": None, "description": None,
          "georef": CRS_CHOICES[1]})
def test_written_headers_parse_back_to_the_same_header(tmp_path, meta):
    crs, transform = meta["georef"]
    data = da.zeros(meta["shape"], dtype=meta["dtype"], chunks=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a nodata the type cannot hold
        cube = make_cube(data, transform=transform, crs=crs, nodata=meta["nodata"],
                         wavelength=meta["wavelength"], fwhm=meta["fwhm"],
                         good_band=meta["good_band"], band_names=meta["band_names"],
                         attrs={"description": meta["description"]})
    text = header_text(cube, np.dtype(meta["dtype"]), meta["interleave"], meta["byte_order"])
    hdr = parse_bytes(text.encode("utf-8"), tmp_path)
    check_consistent(hdr)
    rows, cols, bands = meta["shape"]
    assert (hdr.lines, hdr.samples, hdr.bands) == (rows, cols, bands)
    assert hdr.dtype.newbyteorder("=") == np.dtype(meta["dtype"])
    assert (hdr.interleave, hdr.byte_order) == (meta["interleave"], meta["byte_order"])
    wl = meta["wavelength"]
    if wl is not None and len(wl) > 1 and len(set(wl)) == 1:
        assert hdr.wavelength is None  # one value for every band: a placeholder, unknown
    elif wl is not None:
        np.testing.assert_array_equal(hdr.wavelength, wl)
        if meta["fwhm"] is not None:
            np.testing.assert_array_equal(hdr.fwhm, meta["fwhm"])
    if meta["good_band"] is not None:
        assert list(hdr.good_band) == meta["good_band"]
    if meta["band_names"] is not None:
        assert hdr.band_names == [_safe(s) for s in meta["band_names"]]
    nodata = nodata_for(meta["dtype"], meta["nodata"])  # dropped where the type cannot hold it
    if nodata is None:
        assert hdr.nodata is None
    else:
        np.testing.assert_array_equal(hdr.nodata, nodata)
    want = " ".join(_safe(meta["description"] or "").split())
    if want:  # free text: compared up to whitespace (the parser strips each line)
        got = " ".join(hdr.description.replace(",", ";").split())
        assert got == want
    got_transform, got_crs = georef_from_header(hdr.raw, hdr.path)
    if transform is None:
        assert got_transform is None
    else:
        np.testing.assert_allclose(tuple(got_transform)[:6], tuple(transform)[:6],
                                   rtol=1e-12, atol=1e-9)
        assert (got_crs.to_epsg() if crs else None) == (int(crs[5:]) if crs else None)


# --------------------------------------------------------------------------- regressions

_GEO = "ENVI\nsamples = 1\nlines = 1\nbands = 1\ndata type = 4\n"


@pytest.mark.parametrize("extra", [
    "map info = {Arbitrary, 1, 1, 0, 0, 1, 1, rotation=1e999}",
    "map info = {Arbitrary, 1, 1, 1e999, 0, 1, 1}",
    "map info = {x, 1, 1, 0, 0, 1, 1}\nprojection info = {3, 1e999, 1, 0, 0, 0, 0, 1, WGS-84}",
    "map info = {Arbitrary, 1e308, 1, 0, 0, 1e308, 1}",
])
def test_non_finite_georeference_is_a_header_error(tmp_path, extra):
    """These raised ValueError (math domain error) or CRSError from the georeference."""
    hdr = parse_bytes((_GEO + extra + "\n").encode(), tmp_path)
    with pytest.raises(HeaderError) as info:
        georef_from_header(hdr.raw, hdr.path)
    assert "map info" in info.value.problem


def test_map_info_name_with_a_quote_gives_a_local_crs(tmp_path):
    """A '"' in the map info name broke the LOCAL_CS WKT (CRSError); it is now GDAL's own
    reading of the file, the name's quote escaped."""
    import rasterio

    text = _GEO + 'map info = {my "grid", 1, 1, 10, 20, 2, 2}\n'
    hdr = parse_bytes(text.encode(), tmp_path)
    for gdal in (None, hdr.gdal):
        transform, crs = georef_from_header(hdr.raw, hdr.path, gdal=gdal)
        assert tuple(transform)[:6] == (2.0, 0.0, 10.0, 0.0, -2.0, 20.0)
        assert crs.to_wkt().startswith('LOCAL_CS["my ""grid"""')
    (tmp_path / "fuzz").write_bytes(bytes(4))
    with rasterio.open(tmp_path / "fuzz") as ds:
        assert ds.crs == crs and ds.transform == transform


def test_fwhm_is_kept_when_the_wavelength_list_is_dropped(tmp_path):
    """A wavelength list of the wrong length also dropped a good fwhm list."""
    text = _GEO.replace("bands = 1", "bands = 2") + (
        "wavelength units = Micrometers\nwavelength = {0.5, 0.6, 0.7}\nfwhm = {0.01, 0.02}\n")
    hdr = parse_bytes(text.encode(), tmp_path)
    assert hdr.wavelength is None
    np.testing.assert_allclose(hdr.fwhm, [10.0, 20.0], rtol=1e-12)
