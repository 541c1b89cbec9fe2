"""Bad ENVI input gives one clear error naming the file and the problem."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import hsad
from hsad.errors import (
    FileFormatError,
    HeaderError,
    HsadError,
    ParameterError,
    TruncatedFileError,
    UnsupportedError,
)
from hsad.io.envi import open_envi, read_spectral_library

GOOD = {"samples": "4", "lines": "3", "bands": "2", "header offset": "0",
        "file type": "ENVI Standard", "data type": "2", "interleave": "bsq", "byte order": "0"}


def scene(folder: Path, name="s.img", nbytes=None, payload=None, drop=(), **fields):
    """Header + data pair; ``fields`` override header keys (None removes one)."""
    keys = {**GOOD, **{k.replace("_", " "): v for k, v in fields.items()}}
    text = "ENVI\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()
                               if v is not None and k not in drop)
    hdr = folder / (Path(name).stem + ".hdr")
    hdr.write_text(text)
    data = folder / name
    if payload is None:
        payload = bytes(4 * 3 * 2 * 2 if nbytes is None else nbytes)
    data.write_bytes(payload)
    return data, hdr


def check(exc_info, path, *words):
    """The message is '<path>: <problem>' and the problem says what is wrong."""
    err = exc_info.value
    assert isinstance(err, HsadError)
    assert str(err).startswith(f"{path}: "), str(err)
    for word in words:
        assert word.lower() in err.problem.lower(), (word, err.problem)


def test_missing_data_file(tmp_path):
    data, hdr = scene(tmp_path)
    data.unlink()
    with pytest.raises(FileFormatError) as e:
        open_envi(hdr)
    check(e, hdr, "data file not found", "s.img")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileFormatError) as e:
        open_envi(tmp_path / "nope.img")
    check(e, tmp_path / "nope.img", "no such file")
    with pytest.raises(FileFormatError) as e:
        open_envi(tmp_path)
    check(e, tmp_path, "directory")
    with pytest.raises(FileFormatError) as e:
        hsad.open_cube(tmp_path)
    check(e, tmp_path, "directory")


def test_data_file_that_is_a_directory(tmp_path):
    _, hdr = scene(tmp_path, name="d")
    (tmp_path / "d").unlink()
    (tmp_path / "d").mkdir()
    with pytest.raises(FileFormatError) as e:
        open_envi(hdr)
    check(e, tmp_path / "d", "directory")


def test_truncated_data_file_says_expected_and_actual_bytes(tmp_path):
    data, _ = scene(tmp_path, nbytes=47, header_offset="5")
    with pytest.raises(TruncatedFileError) as e:
        open_envi(data)
    check(e, data, "truncated", "expected 53 bytes", "found 47", "header offset 5")


@pytest.mark.parametrize("key", ["samples", "lines", "bands"])
def test_header_missing_a_dimension(tmp_path, key):
    data, hdr = scene(tmp_path, drop=(key,))
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, hdr, "missing", key)


@pytest.mark.parametrize("value,words", [("0", ["samples", ">= 1"]), ("4.5", ["integer"]),
                                         ("four", ["integer", "four"])])
def test_header_with_a_bad_dimension(tmp_path, value, words):
    data, hdr = scene(tmp_path, samples=value)
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, hdr, *words)


@pytest.mark.parametrize("code", ["7", "8", "16", "0", "99"])
def test_unknown_data_type(tmp_path, code):
    data, hdr = scene(tmp_path, data_type=code)
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, hdr, f"unknown data type {code}")


@pytest.mark.parametrize("code,name", [("6", "complex64"), ("9", "complex128")])
def test_complex_data_is_rejected_clearly(tmp_path, code, name):
    data, hdr = scene(tmp_path, data_type=code)
    with pytest.raises(UnsupportedError) as e:
        open_envi(data)
    check(e, hdr, "complex", name, "not supported")


def test_missing_data_type(tmp_path):
    data, hdr = scene(tmp_path, drop=("data type",))
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, hdr, "missing 'data type'")


def test_unknown_interleave_and_byte_order(tmp_path):
    data, hdr = scene(tmp_path, interleave="bxl")
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, hdr, "unknown interleave 'bxl'")
    data, hdr = scene(tmp_path, byte_order="2")
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, hdr, "byte order", "0 or 1")


def test_unsupported_compression(tmp_path):
    data, hdr = scene(tmp_path, file_compression="2")
    with pytest.raises(UnsupportedError) as e:
        open_envi(data)
    check(e, hdr, "file compression = 2")


def test_corrupt_gzip_payload(tmp_path):
    good = gzip.compress(bytes(48))
    data, _ = scene(tmp_path, payload=good[:12] + b"\x00garbage" * 4, file_compression="1")
    with pytest.raises(FileFormatError) as e:
        open_envi(data)
    check(e, data, "corrupt gzip")
    data, _ = scene(tmp_path, payload=good[: len(good) // 2], file_compression="1")
    with pytest.raises(FileFormatError) as e:
        open_envi(data)
    check(e, data, "corrupt gzip")


def test_compression_flag_on_uncompressed_data(tmp_path):
    data, _ = scene(tmp_path, file_compression="1")
    with pytest.raises(FileFormatError) as e:
        open_envi(data)
    check(e, data, "not gzip-compressed")


def test_gzip_payload_shorter_than_the_header_says(tmp_path):
    data, _ = scene(tmp_path, payload=gzip.compress(bytes(40)), file_compression="1")
    with pytest.raises(TruncatedFileError) as e:
        open_envi(data)
    check(e, data, "decompressed data is truncated", "expected 48", "found 40")


def test_text_file_that_is_not_an_envi_header(tmp_path):
    hdr = tmp_path / "notes.hdr"
    hdr.write_text("hello\nsamples = 3\n")
    with pytest.raises(HeaderError) as e:
        open_envi(hdr)
    check(e, hdr, "not an ENVI header")
    data = tmp_path / "notes.img"  # a data file whose sibling header is not ENVI
    data.write_bytes(bytes(8))
    with pytest.raises(HeaderError) as e:
        hsad.open_cube(data)
    check(e, hdr, "not an ENVI header")


def test_binary_and_empty_headers(tmp_path):
    hdr = tmp_path / "bin.hdr"
    hdr.write_bytes(b"\x00\x01\x02ENVI")
    with pytest.raises(HeaderError) as e:
        open_envi(hdr)
    check(e, hdr, "not an ENVI header")
    hdr.write_bytes(b"")
    with pytest.raises(HeaderError) as e:
        open_envi(hdr)
    check(e, hdr, "not an ENVI header", "empty")


def test_unclosed_brace(tmp_path):
    data, hdr = scene(tmp_path, wavelength="{400, 500")
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, hdr, "unclosed", "wavelength")


def test_data_file_without_header(tmp_path):
    data = tmp_path / "orphan.img"
    data.write_bytes(bytes(16))
    with pytest.raises(HeaderError) as e:
        open_envi(data)
    check(e, data, "no ENVI header found", "orphan.img.hdr", "orphan.hdr")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_header_and_data_file_real_permissions(tmp_path):
    data, hdr = scene(tmp_path)
    data.chmod(0)
    with pytest.raises(FileFormatError) as e:
        open_envi(hdr)
    check(e, data, "permission denied")
    data.chmod(0o644)
    hdr.chmod(0)
    with pytest.raises(FileFormatError) as e:
        open_envi(hdr)
    check(e, hdr, "permission denied")


def test_unreadable_files_simulated(tmp_path, monkeypatch):
    """Tests run as root, which chmod 000 cannot stop: make the OS calls fail instead."""
    data, hdr = scene(tmp_path)
    real_open = open

    def deny(target):
        def fake_open(file, *args, **kwargs):
            if Path(file) == target:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)
        return fake_open

    monkeypatch.setattr("builtins.open", deny(data))
    with pytest.raises(FileFormatError) as e:
        open_envi(hdr)
    check(e, data, "permission denied")
    monkeypatch.setattr("builtins.open", real_open)
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", str(self))))
    with pytest.raises(FileFormatError) as e:
        open_envi(hdr)
    check(e, hdr, "permission denied")


def test_spectral_library_is_not_an_image(tmp_path):
    data, hdr = scene(tmp_path, name="lib.sli", file_type="ENVI Spectral Library", bands="1",
                      nbytes=4 * 3 * 2)
    with pytest.raises(UnsupportedError) as e:
        open_envi(data)
    check(e, hdr, "Spectral Library", "not an image", "read_spectral_library")
    spectra, names, wl = read_spectral_library(data)
    assert spectra.shape == (3, 4) and names == ["Spectrum 1", "Spectrum 2", "Spectrum 3"]
    assert np.isnan(wl).all() and wl.shape == (4,)


def test_read_spectral_library_on_an_image(tmp_path):
    data, hdr = scene(tmp_path)
    with pytest.raises(FileFormatError) as e:
        read_spectral_library(data)
    check(e, hdr, "not an ENVI Spectral Library", "open_envi")


def test_unsupported_file_types(tmp_path):
    data, hdr = scene(tmp_path, file_type="ENVI Virtual Mosaic")
    with pytest.raises(UnsupportedError) as e:
        open_envi(data)
    check(e, hdr, "ENVI Virtual Mosaic", "not supported")


def test_bad_chunks(tmp_path):
    data, _ = scene(tmp_path)
    for chunks in (0, (2, 0), (1, 2, 3), "big", 2.5):
        with pytest.raises(ParameterError, match="chunk"):
            open_envi(data, chunks=chunks)
