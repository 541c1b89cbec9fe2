"""ENVI reader: layouts, data types, header dialects, naming, laziness.

Files are built here byte by byte with numpy (independently of hsad's writer).
"""

from __future__ import annotations

import gzip
import os
import sys
import warnings

import dask.array as da
import numpy as np
import pytest

import hsad
import hsad.io.envi as envi
import hsad.io.envi_pixels as envi_pixels
from hsad.errors import FileFormatError, TruncatedFileError
from hsad.io.envi import open_envi, read_spectral_library
from hsad.io.envi_files import find_data, find_header
from hsad.io.envi_header import parse_header

CODES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}


def _layout(cube: np.ndarray, interleave: str) -> np.ndarray:
    """(rows, cols, bands) -> the on-disk axis order of ``interleave``."""
    return {"bsq": cube.transpose(2, 0, 1), "bil": cube.transpose(0, 2, 1),
            "bip": cube}[interleave]


def write_raw(folder, name, cube, interleave="bsq", byte_order=0, code=None, offset=0,
              extra="", header_name=None, compress=False):
    """Write ``cube`` as an ENVI file by hand; return (data path, header path)."""
    rows, cols, bands = cube.shape
    code = code or {v: k for k, v in CODES.items()}[cube.dtype.str[1:]]
    dt = np.dtype(CODES[code]).newbyteorder(">" if byte_order else "<")
    payload = b"\x5a" * offset + np.ascontiguousarray(_layout(cube, interleave), dt).tobytes()
    data = folder / name
    data.write_bytes(gzip.compress(payload) if compress else payload)
    hdr = folder / (header_name or (data.stem if data.suffix else data.name) + ".hdr")
    hdr.write_text(
        f"ENVI\nsamples = {cols}\nlines = {rows}\nbands = {bands}\nheader offset = {offset}\n"
        f"file type = ENVI Standard\ndata type = {code}\ninterleave = {interleave}\n"
        f"byte order = {byte_order}\n" + ("file compression = 1\n" if compress else "") + extra)
    return data, hdr


def _cube(dtype, shape=(7, 9, 4), seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        return rng.normal(0, 100, shape).astype(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("byte_order", [0, 1])
@pytest.mark.parametrize("code", sorted(CODES))
def test_every_layout_byte_order_and_type_reads_back(tmp_path, interleave, byte_order, code):
    cube = _cube(CODES[code])
    data, _ = write_raw(tmp_path, "scene.img", cube, interleave, byte_order, code, offset=13)
    got = open_envi(data, chunks=(3, 4))
    assert got.dtype == np.dtype(CODES[code])
    assert got.data.chunks == ((3, 3, 1), (4, 4, 1), (4,))
    np.testing.assert_array_equal(got.values, cube)
    assert got.attrs["interleave"] == interleave and got.attrs["byte_order"] == byte_order
    assert got.attrs["header_offset"] == 13 and got.attrs["data_type"] == code


def test_chunk_options_and_pickling(tmp_path):
    import pickle

    cube = _cube("f4", (10, 12, 3))
    data, _ = write_raw(tmp_path, "p.img", cube, "bil")
    assert open_envi(data, chunks={"y": 4, "x": -1}).data.chunks == ((4, 4, 2), (12,), (3,))
    assert open_envi(data, chunks=-1).data.chunks == ((10,), (12,), (3,))
    assert open_envi(data).data.chunks == ((10,), (12,), (3,))  # default 512 > scene
    again = pickle.loads(pickle.dumps(open_envi(data, chunks=5)))  # dask.distributed ships it
    np.testing.assert_array_equal(again.values, cube)


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_windows_steps_and_band_subsets_match_numpy(tmp_path, interleave):
    cube = _cube("i2", (23, 31, 6), seed=3)
    data, _ = write_raw(tmp_path, "s.raw", cube, interleave, byte_order=1)
    px = open_envi(data).data
    np.testing.assert_array_equal(px[5:17:3, ::4, 1:5:2].compute(), cube[5:17:3, ::4, 1:5:2])
    np.testing.assert_array_equal(px[::-2, 3, ::-1].compute(), cube[::-2, 3, ::-1])
    np.testing.assert_array_equal(px[-1, -1].compute(), cube[-1, -1])
    np.testing.assert_array_equal(px[:, :, [4, 1, 2]].compute(), cube[:, :, [4, 1, 2]])
    np.testing.assert_array_equal(px[[9, 2, 5], 1:3].compute(), cube[[9, 2, 5], 1:3])
    np.testing.assert_array_equal(px[:, cube[0, :, 0] > 0].compute(), cube[:, cube[0, :, 0] > 0])
    reader = envi.EnviPixels(data, np.dtype(">i2"), cube.shape, interleave, 0)
    np.testing.assert_array_equal(reader[2, ..., 4], cube[2, ..., 4])
    assert reader[3:3].shape == (0, 31, 6)


def test_large_windows_are_read_in_row_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(envi_pixels, "_BLOCK_BYTES", 1000)  # forces many small mappings
    cube = _cube("f4", (40, 11, 5), seed=5)
    data, _ = write_raw(tmp_path, "s.bsq", cube, "bsq")
    calls = []
    real = envi_pixels._map_data
    monkeypatch.setattr(envi_pixels, "_map_data", lambda *a, **k: calls.append(a) or real(*a, **k))
    np.testing.assert_array_equal(open_envi(data, chunks=-1).values, cube)
    assert len(calls) == 40 // max(1, 1000 // (11 * 5 * 4))


@pytest.mark.parametrize(("interleave", "byte_order", "code", "viewed"), [
    ("bip", 0, 4, True), ("bip", 0, 2, True), ("bip", 1, 4, False), ("bil", 0, 4, False),
    ("bsq", 0, 4, False)])
def test_native_bip_chunks_are_copy_on_write_views_of_the_file(
        tmp_path, interleave, byte_order, code, viewed):
    import gc

    gc.collect()
    live = envi_pixels._live_views  # views another test still holds
    cube = _cube(CODES[code], (12, 10, 5), seed=7)
    data, _ = write_raw(tmp_path, "s.img", cube, interleave, byte_order, code, offset=24)
    before = data.read_bytes()
    got = open_envi(data, chunks=(5, 5)).data  # windows of half a row: mapped as views
    flags = got.map_blocks(lambda b: np.full((1, 1, 1), b.base is not None), chunks=(1, 1, 1),
                           dtype=bool).compute()
    assert flags.all() == viewed and flags.any() == viewed
    np.testing.assert_array_equal(got.compute(), cube)
    np.testing.assert_array_equal(got[2:9, 1:8:3, 1:4].compute(), cube[2:9, 1:8:3, 1:4])

    def scribble(block):  # a chunk written in place: a private page, never the file
        assert (block.base is not None) == viewed  # the chunk itself, not a copy of it
        block[...] = 0
        return block

    assert not got.map_blocks(scribble, dtype=got.dtype).compute().any()
    assert data.read_bytes() == before
    np.testing.assert_array_equal(got.compute(), cube)
    gc.collect()
    assert envi_pixels._live_views == live


def test_live_views_are_bounded_and_released(tmp_path, monkeypatch):
    import gc
    import os

    gc.collect()
    live = envi_pixels._live_views  # views another test still holds
    monkeypatch.setattr(envi_pixels, "_LIVE_VIEWS", live + 8)
    cube = _cube("f4", (30, 4, 3), seed=8)
    data, _ = write_raw(tmp_path, "s.bip", cube, "bip")
    reader = envi.EnviPixels(data, np.dtype("<f4"), cube.shape, "bip", 0)
    descriptors = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    rows = [reader[i:i + 1] for i in range(30)]  # each row alive at once
    assert sum(r.base is not None for r in rows) == 8 and envi_pixels._live_views == live + 8
    if descriptors is not None:
        assert len(os.listdir("/proc/self/fd")) - descriptors == 8
    np.testing.assert_array_equal(np.concatenate(rows), cube)
    del rows
    gc.collect()
    assert envi_pixels._live_views == live
    assert reader[3:5].base is not None  # views again once released
    np.testing.assert_array_equal(reader[::2], cube[::2])  # stepped rows: copied
    np.testing.assert_array_equal(reader[1:9:3, 1:3], cube[1:9:3, 1:3])
    assert reader[::2].base is None
    got = open_envi(data, chunks=(7, 4)).data
    np.testing.assert_array_equal(got[::2].compute(), cube[::2])
    np.testing.assert_array_equal(got[::-3, ::2].compute(), cube[::-3, ::2])


def test_views_give_way_to_copies_when_the_system_refuses_a_mapping(tmp_path, monkeypatch):
    import gc

    gc.collect()
    live = envi_pixels._live_views, envi_pixels._live_view_bytes
    cube = _cube("f4", (30, 4, 3), seed=9)
    data, _ = write_raw(tmp_path, "s.bip", cube, "bip")
    reader = envi.EnviPixels(data, np.dtype("<f4"), cube.shape, "bip", 0)
    real = envi_pixels._map_data

    def refuse(source, dtype, offset, count, mode="r"):  # descriptors or address space out
        if mode == "c":
            raise envi.FileFormatError("cannot map data file: Too many open files", source)
        return real(source, dtype, offset, count, mode)

    monkeypatch.setattr(envi_pixels, "_map_data", refuse)
    window = reader[2:20]
    assert window.base is None and (envi_pixels._live_views, envi_pixels._live_view_bytes) == live
    np.testing.assert_array_equal(window, cube[2:20])
    monkeypatch.setattr(envi_pixels, "_map_data", real)
    # the mapped bytes (whole rows: 48 bytes each) are bounded: 10 rows fit a 480-byte
    # budget, whichever columns the window takes, and 11 do not
    monkeypatch.setattr(envi_pixels, "_LIVE_VIEW_BYTES", live[1] + 480)
    first = reader[0:10, 1:2]
    assert first.base is not None and reader[10:11].base is None
    del first
    gc.collect()
    assert reader[10:21].base is None and reader[10:20].base is not None
    gc.collect()
    assert (envi_pixels._live_views, envi_pixels._live_view_bytes) == live


@pytest.mark.parametrize("chunks", [-1, (4, 6)])
def test_computed_and_loaded_bip_cubes_are_copies_not_views(tmp_path, chunks):
    """formats.md's promise: only a persisted cube may hold views of the file."""
    cube = _cube("f4", (9, 12, 4), seed=12)
    data, _ = write_raw(tmp_path, "s.bip", cube, "bip")
    opened = open_envi(data, chunks=chunks)
    results = [opened.values, opened.data.compute(), opened.data[2:5, 1:4].compute(),
               opened.data.persist().compute(), opened.load().values]  # load: in place
    data.write_bytes(np.zeros_like(cube).tobytes())  # rewritten in place
    for got, want in zip(results, [cube, cube, cube[2:5, 1:4], cube, cube], strict=True):
        np.testing.assert_array_equal(got, want)


def test_narrow_windows_of_wide_rows_are_copied(tmp_path):
    cube = _cube("f4", (6, 8, 3), seed=10)
    data, _ = write_raw(tmp_path, "s.bip", cube, "bip")
    reader = envi.EnviPixels(data, np.dtype("<f4"), cube.shape, "bip", 0)
    assert reader[:, 0:1].base is None  # would map 8× its bytes
    assert reader[:, 2:4].base is not None and reader[:, 0:8:3].base is not None
    np.testing.assert_array_equal(reader[:, 0:1], cube[:, 0:1])


@pytest.mark.parametrize("preadv", [True, False])
@pytest.mark.parametrize("byte_order", [0, 1])
def test_bip_copies_are_read_without_mapping_their_rows(tmp_path, monkeypatch, byte_order,
                                                        preadv):
    """A BIP window that is copied (narrower than its rows, or in the other byte order) is
    read by positional reads, a row at a time or whole rows at once: its rows are not
    mapped (a scene check's 8 × 8 sample windows each mapped rows 100 times their size).
    Where the system has no ``preadv`` (Windows), by a seek and a read."""
    cube = _cube("i2", (9, 12, 5), seed=13)
    data, _ = write_raw(tmp_path, "s.bip", cube, "bip", byte_order, offset=24)
    file_dtype = np.dtype(">i2" if byte_order else "<i2")
    reader = envi.EnviPixels(data, file_dtype, cube.shape, "bip", 24)
    if not preadv:
        monkeypatch.delattr(os, "preadv", raising=False)

    def mapped(*args, **kwargs):
        raise AssertionError("the window's rows were mapped")

    monkeypatch.setattr(envi_pixels, "_map_data", mapped)
    keys = [(slice(None), slice(0, 1)), (slice(2, 7), slice(3, 5), slice(1, 4)),
            (4, 11), (slice(0, 9), slice(10, 12), slice(0, 5, 2))]
    if byte_order:  # every window is copied: whole rows too, in one read
        keys += [(slice(None),), (slice(1, 3), slice(None), 2), (slice(0, 9), slice(2, 12))]
    for key in keys:
        got = reader[key]
        assert got.dtype == np.dtype("=i2")
        np.testing.assert_array_equal(got, cube[key])
    with open(data, "r+b") as f:  # shortened after it was opened
        f.truncate(24 + 6 * 12 * 5 * 2)
    with pytest.raises(TruncatedFileError, match="shorter than its header says"):
        reader[7:9, 0:2]


def test_a_few_bands_of_a_copied_bip_window_hold_memory_for_those_bands(tmp_path,
                                                                       monkeypatch):
    """Some of the bands of a BIP window that is copied: its rows' pixels are read a block
    of ``_BLOCK_BYTES`` at a time and only the bands asked for are kept, so memory follows
    the bands (the first version read every band of the window at once: 200 MB for one
    band of a 512² × 200 scene)."""
    import tracemalloc

    from hsad.io import pixel_rows

    cube = _cube("f4", (64, 40, 50), seed=14)
    data, _ = write_raw(tmp_path, "s.bip", cube, "bip", byte_order=1)  # every window copied
    reader = envi.EnviPixels(data, np.dtype(">f4"), cube.shape, "bip", 0)
    monkeypatch.setattr(envi_pixels, "_BLOCK_BYTES", 8 * 40 * 50 * 4)  # 8 rows a block
    reads = []
    real = pixel_rows.read_interleaved
    monkeypatch.setattr(pixel_rows, "read_interleaved",
                        lambda *a, **k: reads.append(a[5]) or real(*a, **k))
    tracemalloc.start()
    try:
        got = reader[:, :, 7]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, cube[:, :, 7])
    assert [(r.start, r.stop) for r in reads] == [(r, r + 8) for r in range(0, 64, 8)]
    assert peak < 2 * 8 * 40 * 50 * 4 + 64 * 40 * 4 + 65536  # a block, the band, slack
    np.testing.assert_array_equal(reader[3:61, 5:9, 10:40:3], cube[3:61, 5:9, 10:40:3])


def test_a_read_without_preadv_takes_what_each_read_returns(monkeypatch):
    """Where the system has no ``preadv``, one read returns at most about 2 GiB (Linux) or
    INT_MAX bytes (Windows): the rest is read on, and only a file that ends is short."""
    import io

    from hsad.io.pixel_rows import pread_into

    class Trickle(io.BytesIO):  # five bytes a read, as a very large read would stop short
        def readinto(self, view):
            return super().readinto(memoryview(view)[:5])

    monkeypatch.delattr(os, "preadv", raising=False)
    payload = bytes(range(64))
    buf = bytearray(40)
    pread_into(Trickle(payload), memoryview(buf), 17)
    assert bytes(buf) == payload[17:57]
    with pytest.raises(EOFError, match="ends before byte 70"):
        pread_into(Trickle(payload), memoryview(bytearray(40)), 30)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork") or sys.platform != "linux",
                    reason="file descriptor limits are set with setrlimit on Linux")
def test_a_persisted_bip_cube_fits_a_small_descriptor_limit(tmp_path):
    """A persisted cube of many chunks under ``ulimit -n 40``: its views stop at their own
    limit, so the copies beyond still find descriptors (the first views held 64)."""
    import subprocess

    cube = _cube("f4", (64, 32, 5), seed=11)
    data, _ = write_raw(tmp_path, "s.bip", cube, "bip")
    script = (
        "import resource, numpy as np\n"
        "from hsad.io.envi import open_envi\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))\n"
        f"cube = open_envi({str(data)!r}, chunks=(1, 32)).data.persist()\n"
        "print(float(cube.astype('f8').sum().compute()))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout) == pytest.approx(float(cube.astype(np.float64).sum()), rel=1e-12)


def test_header_dialect_crlf_comments_mixed_case_and_multiline_braces(tmp_path):
    cube = _cube("u2", (4, 5, 3))
    data, hdr = write_raw(tmp_path, "scene.dat", cube, "bil")
    text = hdr.read_text().replace("samples", "SAMPLES").replace("byte order", "Byte  Order")
    text += ("; a comment line = not a key\n"
             "Wavelength Units = Micrometers\n"
             "WAVELENGTH = {\n  0.45,\n  0.55 ,\n 0.65 }\n"
             "fwhm = {0.01, 0.01,\n 0.02}\n"
             "bbl = {1, 0, 1}\n"
             "band names = {Blue band,\n Green band, Red band}\n"
             "description = {first line\n second line}\n"
             "data ignore value = 65535\n")
    hdr.write_bytes(text.replace("\n", "\r\n").encode())
    got = open_envi(hdr)
    np.testing.assert_array_equal(got.values, cube)
    np.testing.assert_allclose(got["wavelength"].values, [450, 550, 650])
    np.testing.assert_allclose(got["fwhm"].values, [10, 10, 20])
    assert got["good_band"].values.tolist() == [True, False, True]
    assert got["band_name"].values.tolist() == ["Blue band", "Green band", "Red band"]
    assert got.attrs["nodata"] == 65535.0
    assert got.attrs["description"] == "first line\nsecond line"
    assert parse_header(hdr).raw["samples"] == "5"


@pytest.mark.parametrize("units,values,expected", [
    ("Micrometers", [0.4, 2.5], [400, 2500]),
    ("um", [0.4, 2.5], [400, 2500]),
    ("µm", [0.4, 2.5], [400, 2500]),
    ("Nanometers", [0.4, 2.5], [0.4, 2.5]),
    ("nm", [400, 2500], [400, 2500]),
    ("Unknown", [0.4, 2.5], [400, 2500]),   # heuristic: < 100 means micrometres
    (None, [400.0, 2500.0], [400, 2500]),
    ("Index", [1, 2], [np.nan, np.nan]),    # band numbers, not wavelengths
    # ENVI's other length units were guessed from the values: Angstroms read 10× too long
    ("Angstroms", [4000, 25000], [400, 2500]),
    ("Centimeters", [4e-5, 2.5e-4], [400, 2500]),
    ("cm", [4e-5, 2.5e-4], [400, 2500]),
    ("Meters", [4e-7, 2.5e-6], [400, 2500]),
    ("m", [4e-7, 2.5e-6], [400, 2500]),
])
def test_wavelength_units_are_converted_to_nanometres(tmp_path, units, values, expected):
    extra = f"wavelength = {{{values[0]}, {values[1]}}}\n"
    if units:
        extra += f"wavelength units = {units}\n"
    data, hdr = write_raw(tmp_path, "w.img", _cube("u1", (2, 2, 2)), extra=extra)
    hdr.write_bytes(hdr.read_text().encode("latin-1"))  # µ as a single latin-1 byte
    np.testing.assert_allclose(open_envi(data)["wavelength"].values, expected)


def test_a_utf8_bom_before_a_latin1_header_is_read(tmp_path):
    """A BOM (which hsad allows) and a µ written as one Latin-1 byte, each read alone,
    were refused together: the Latin-1 reading kept the BOM as 'ï»¿ENVI'."""
    data, hdr = write_raw(tmp_path, "w.img", _cube("u1", (2, 2, 2)),
                          extra="wavelength units = µm\nwavelength = {0.4, 0.5}\n")
    hdr.write_bytes(b"\xef\xbb\xbf" + hdr.read_text().encode("latin-1"))
    np.testing.assert_allclose(open_envi(data)["wavelength"].values, [400, 500])


@pytest.mark.parametrize("before, said", [
    (b"\xef\xbb\xbf", "a UTF-8 byte-order mark before 'ENVI'"),
    (b"\n\n", "blank lines or spaces before 'ENVI'"),
    (b"  ", "blank lines or spaces before 'ENVI'"),
    (None, "a first line of 'envi', not 'ENVI'")])
def test_a_header_gdal_does_not_open_is_read_with_a_warning(tmp_path, before, said):
    """A BOM, blank lines before 'ENVI' or 'envi' in lower case were read without a word,
    where GDAL (which checks the first four bytes, exactly) and QGIS do not open the file."""
    import rasterio

    data, hdr = write_raw(tmp_path, "w.img", _cube("u1", (2, 2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_envi(data)  # "ENVI" first: no warning
    text = hdr.read_bytes()
    hdr.write_bytes(b"envi" + text[4:] if before is None else before + text)
    with pytest.raises(rasterio.errors.RasterioIOError):
        rasterio.open(data)
    with pytest.warns(UserWarning, match=f"{said}: hsad reads the header, but GDAL and QGIS "
                                         "do not open the file"):
        got = open_envi(data)
    np.testing.assert_array_equal(got.values, _cube("u1", (2, 2, 2)))


def test_wavelengths_come_from_band_names_when_only_there(tmp_path):
    extra = "band names = {Band 1 (0.4500 Micrometers), Band 2 (0.5500 Micrometers),\n 450.5 nm}\n"
    data, _ = write_raw(tmp_path, "b.img", _cube("u1", (2, 2, 3)), extra=extra)
    np.testing.assert_allclose(open_envi(data)["wavelength"].values, [450, 550, 450.5])
    extra = "band names = {Band 1 (0.45 Micrometers), Slope, Aspect}\n"  # not all: none
    data, _ = write_raw(tmp_path, "c.img", _cube("u1", (2, 2, 3)), extra=extra)
    assert np.isnan(open_envi(data)["wavelength"].values).all()
    # a number written from its dot (".45 um") is 0.45, not 45 (read 45 000 nm before)
    extra = "band names = {b (.45 um), b (.55 um), b (1.5e-1 um)}\n"
    data, _ = write_raw(tmp_path, "d.img", _cube("u1", (2, 2, 3)), extra=extra)
    np.testing.assert_allclose(open_envi(data)["wavelength"].values, [450, 550, 150])


def test_mismatched_per_band_lists_are_dropped_with_a_warning(tmp_path):
    data, _ = write_raw(tmp_path, "m.img", _cube("u1", (2, 2, 3)),
                        extra="wavelength = {400, 500}\nbbl = {1, 1, 0}\n")
    with pytest.warns(UserWarning, match="'wavelength' has 2 values for 3 bands"):
        cube = open_envi(data)
    assert np.isnan(cube["wavelength"].values).all()
    assert cube["good_band"].values.tolist() == [True, True, False]


@pytest.mark.parametrize("data_name,header_name", [
    ("scene", "scene.hdr"), ("scene.img", "scene.hdr"), ("scene.dat", "scene.hdr"),
    ("scene.raw", "scene.hdr"), ("scene.bsq", "scene.hdr"), ("scene.bil", "scene.hdr"),
    ("scene.bip", "scene.hdr"), ("scene.sli", "scene.hdr"), ("scene.img", "scene.img.hdr"),
    ("SCENE.IMG", "SCENE.HDR"), ("scene.Img", "scene.HDR"),
])
def test_header_and_data_are_found_from_either_side(tmp_path, data_name, header_name):
    cube = _cube("i2", (3, 4, 2))
    data, hdr = write_raw(tmp_path, data_name, cube, "bip", header_name=header_name)
    assert find_header(data) == hdr
    assert find_data(hdr) == data
    for path in (data, hdr):
        got = hsad.open_cube(path)
        np.testing.assert_array_equal(got.values, cube)
        assert got.attrs["header_path"] == str(hdr) and got.attrs["data_path"] == str(data)


def test_missing_interleave_is_taken_from_the_extension(tmp_path):
    cube = _cube("u1", (3, 4, 2))
    data, hdr = write_raw(tmp_path, "scene.bil", cube, "bil")
    hdr.write_text(hdr.read_text().replace("interleave = bil\n", ""))
    np.testing.assert_array_equal(open_envi(data).values, cube)


def test_gzip_compressed_data_is_decompressed_not_read_raw(tmp_path, monkeypatch):
    cube = _cube("i4", (6, 5, 3))
    data, _ = write_raw(tmp_path, "z.img", cube, "bil", byte_order=1, offset=8, compress=True)
    got = open_envi(data)
    np.testing.assert_array_equal(got.values, cube)
    assert got.attrs["file_compression"] == 1
    # large payloads go through a temporary file, removed with the cube
    monkeypatch.setattr(envi, "_GZIP_IN_MEMORY", 10)
    got = open_envi(data)
    tmp_file = got.data.dask[next(iter(got.data.dask))].args[0].value.source
    assert isinstance(tmp_file, str) and np.array_equal(got.values, cube)
    import gc
    import os
    del got
    gc.collect()
    assert not os.path.exists(tmp_file)


def test_a_gzip_data_file_is_inflated_only_as_far_as_the_header_declares(tmp_path,
                                                                          monkeypatch):
    """A 1 × 1 × 1 header over a gzip of 256 MiB of zeros (a few hundred KB) was inflated
    whole, in memory or into a temporary file. The declared bytes are kept; a little more
    is read to the end (its checksum verified) and dropped, as trailing bytes of a plain
    data file are; far more is refused, with nothing held."""
    import tracemalloc

    cube = _cube("u1", (1, 1, 1))
    data, _ = write_raw(tmp_path, "small.img", cube, compress=True)
    data.write_bytes(data.read_bytes() + gzip.compress(b"\0" * 2**20))  # 1 MiB more
    np.testing.assert_array_equal(open_envi(data).values, cube)
    bomb, _ = write_raw(tmp_path, "bomb.img", cube, compress=True)
    zeros = gzip.compress(b"\0" * 2**24, compresslevel=1)
    bomb.write_bytes(bomb.read_bytes() + zeros * 16)  # more gzip members: 256 MiB inflated
    for in_memory in (True, False):
        if not in_memory:  # the temporary file: the declared size, then refused and removed
            monkeypatch.setattr(envi, "_GZIP_IN_MEMORY", 0)
            monkeypatch.setattr(envi.tempfile, "tempdir", str(tmp_path / "tmp"))
            (tmp_path / "tmp").mkdir()
        tracemalloc.start()
        with pytest.raises(FileFormatError, match="decompresses to more than 64 MiB beyond "
                                                  "the 1 bytes its header declares"):
            open_envi(bomb)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 64 * 2**20, peak
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_gzip_data_file_that_fills_the_temporary_folder_says_so(tmp_path, monkeypatch):
    import errno as _errno

    cube = _cube("u1", (64, 64, 4))
    data, _ = write_raw(tmp_path, "z.img", cube, compress=True)
    monkeypatch.setattr(envi, "_GZIP_IN_MEMORY", 0)

    class Full:
        def __init__(self, fd, mode):
            os.close(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, _):
            raise OSError(_errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(envi.os, "fdopen", Full)
    with pytest.raises(FileFormatError, match="filled the temporary folder .* set TMPDIR"):
        open_envi(data)


def test_nodata_and_reflectance_scale_factor(tmp_path):
    cube = np.array([[[1000, -9999], [2500, 10000]]], dtype="i2")
    data, _ = write_raw(tmp_path, "r.img", cube, "bip",
                        extra="data ignore value = -9999\nreflectance scale factor = 10000\n")
    raw = open_envi(data)
    assert raw.dtype == np.int16 and raw.attrs["reflectance_scale_factor"] == 10000.0
    assert raw.attrs["nodata"] == -9999.0 and not raw.attrs["scale_applied"]
    scaled = hsad.open_cube(data, apply_scale=True)
    assert scaled.dtype == np.float32 and scaled.attrs["scale_applied"]
    np.testing.assert_allclose(scaled.values, [[[0.1, np.nan], [0.25, 1.0]]], rtol=1e-6)
    assert np.isnan(scaled.attrs["nodata"])
    assert hsad.valid_mask(scaled).values.tolist() == [[False, True]]


@pytest.mark.parametrize("factor", ["0", "-1", "nan", "inf"])
def test_a_scale_factor_nothing_can_be_divided_by_is_ignored_with_a_warning(tmp_path, factor):
    """``reflectance scale factor = 0`` (some tools' "none") was kept in silence, and NaN
    or −1 divided the cube into NaN or negative reflectance under ``apply_scale``."""
    cube = np.array([[[1000, 2500], [2500, 10000]]], dtype="i2")
    data, _ = write_raw(tmp_path, "r.img", cube, "bip",
                        extra=f"reflectance scale factor = {factor}\n")
    with pytest.warns(UserWarning, match="'reflectance scale factor = .*' is not a positive "
                                         "number.*ignored"):
        got = hsad.open_cube(data, apply_scale=True)
    assert got.attrs["reflectance_scale_factor"] is None and not got.attrs["scale_applied"]
    np.testing.assert_array_equal(got.values, cube)


def test_a_wavelength_list_that_places_no_band_is_unknown_wavelengths(tmp_path):
    """``wavelength = {0, 0, 0}`` (a writer's placeholder) was taken as three bands at 0 nm,
    which band matching pairs with each other: unknown, with a warning; all NaN is unknown
    too (no warning: NaN says so); a list with one band unknown keeps the others."""
    cube = _cube("i2", (2, 2, 3))
    data, hdr = write_raw(tmp_path, "w.img", cube)
    base = hdr.read_text()
    hdr.write_text(base + "wavelength = {0, 0, 0}\n")
    with pytest.warns(UserWarning, match="every band the same value \\(0\\), a placeholder"):
        got = hsad.open_cube(data)
    assert np.isnan(got.wavelength.values).all()
    hdr.write_text(base + "wavelength = {nan, nan, nan}\n")
    assert np.isnan(hsad.open_cube(data).wavelength.values).all()
    hdr.write_text(base + "wavelength = {400, nan, 600}\n")
    np.testing.assert_array_equal(hsad.open_cube(data).wavelength.values, [400, np.nan, 600])


def test_classification_keeps_class_names(tmp_path):
    cube = np.array([[[0], [1]], [[1], [0]]], dtype="u1")
    data, hdr = write_raw(tmp_path, "c.img", cube)
    hdr.write_text(hdr.read_text().replace("ENVI Standard", "ENVI Classification")
                   + "classes = 2\nclass names = {Unclassified, Water}\n")
    got = open_envi(data)
    assert got.attrs["class_names"] == ["Unclassified", "Water"]
    np.testing.assert_array_equal(got.values, cube)


def test_spectral_library_reads_spectra_names_and_wavelengths(tmp_path):
    spectra = _cube("f4", (3, 5, 1))  # 3 spectra x 5 bands
    data, hdr = write_raw(tmp_path, "lib.sli", spectra, byte_order=1)
    hdr.write_text(hdr.read_text().replace("ENVI Standard", "ENVI Spectral Library")
                   + "spectra names = {grass, soil,\n water}\nwavelength units = Micrometers\n"
                   "wavelength = {0.4, 0.5, 0.6, 0.7, 0.8}\n")
    values, names, wl = read_spectral_library(hdr)
    np.testing.assert_array_equal(values, spectra[:, :, 0])
    assert names == ["grass", "soil", "water"]
    np.testing.assert_allclose(wl, [400, 500, 600, 700, 800])


def test_reading_a_window_touches_only_that_window(tmp_path, monkeypatch):
    cube = _cube("i2", (40, 30, 5))
    data, _ = write_raw(tmp_path, "w.bil", cube, "bil")
    got = open_envi(data, chunks=16)
    windows = []
    real = envi.EnviPixels.read_window
    monkeypatch.setattr(envi.EnviPixels, "read_window",
                        lambda self, *s: windows.append(s) or real(self, *s))
    np.testing.assert_array_equal(got.isel(y=slice(18, 21), x=slice(3, 5)).values,
                                  cube[18:21, 3:5])
    assert windows == [(slice(18, 21, 1), slice(3, 5, 1), slice(0, 5, 1))]


def test_opening_a_2gb_scene_reads_no_pixels_and_one_window_reads_only_its_pixels(
        tmp_path, monkeypatch):
    rows, cols, bands = 4096, 4096, 64
    data = tmp_path / "big.img"
    with open(data, "wb") as fh:  # sparse: no disk blocks, no pixel ever written
        fh.truncate(rows * cols * bands * 2 + 512)
    (tmp_path / "big.hdr").write_text(
        f"ENVI\nsamples = {cols}\nlines = {rows}\nbands = {bands}\nheader offset = 512\n"
        "data type = 2\ninterleave = bip\nbyte order = 0\n")
    mapped = []
    real = envi_pixels._map_data
    monkeypatch.setattr(envi_pixels, "_map_data", lambda *a, **k: mapped.append(a) or real(*a, **k))
    cube = hsad.open_cube(data)
    assert isinstance(cube.data, da.Array) and cube.shape == (rows, cols, bands)
    assert cube.nbytes > 2 * 10**9 and mapped == []  # nothing mapped, nothing read
    reads = []
    if hasattr(os, "preadv"):
        real_read = os.preadv
        monkeypatch.setattr(os, "preadv", lambda fd, views, at: reads.append(
            (at, sum(len(v) for v in views))) or real_read(fd, views, at))
    window = cube[1000:1004, 2000:2003].values
    assert window.shape == (4, 3, bands) and not window.any()
    line, pixel = cols * bands * 2, bands * 2
    assert mapped == []  # a narrow window: its rows' pixels read, the rows not mapped
    if hasattr(os, "preadv"):
        assert reads == [(512 + (1000 + i) * line + 2000 * pixel, 3 * pixel) for i in range(4)]
