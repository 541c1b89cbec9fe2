"""NEON AOP surface reflectance (HDF5): the cube, its bands, nodata and scale, placed as
GDAL places an ENVI file of the same map info; files of one band a chunk unpacked once
(hsad.io.neon, hsad.io.hdf5_planes; docs/formats.md, "NEON AOP reflectance")."""

from __future__ import annotations

import errno
import os
import pickle
import tempfile

import h5py
import numpy as np
import pytest
import rasterio
from cli_helpers import one_error, run_cli
from neon_files import EPSG, MAP_INFO, neon_values, write_neon
from rasterio.crs import CRS

from hsad.cube import source_of
from hsad.cube.subset import Window
from hsad.detectors.rx import GlobalRX
from hsad.errors import FileFormatError, OutputError, ParameterError, TruncatedFileError
from hsad.io import detect_format, hdf5_chunks, hdf5_planes, open_cube

NAME = "NEON_D17_SJER_DP1_L001-1_20230418_directional_reflectance.h5"
PLANES = (40, 30, 1)  # one whole band a chunk, as some NEON files of 2022 on


@pytest.fixture
def small_planes(monkeypatch):
    """Unpack every cube of whole-band chunks, and inflate its chunks outside HDF5,
    however small (the tests' files are)."""
    monkeypatch.setattr(hdf5_planes, "UNPACK_BYTES", 4096)
    monkeypatch.setattr(hdf5_chunks, "MIN_CHUNK_BYTES", 0)


def test_the_cube_its_bands_nodata_and_scale(tmp_path):
    path = tmp_path / NAME
    data = write_neon(path)
    assert detect_format(path) == "neon"
    cube = open_cube(path)
    np.testing.assert_array_equal(cube.values, data)
    assert cube.dtype == np.int16 and cube.attrs["nodata"] == -9999
    assert cube.attrs["reflectance_scale_factor"] == 10000 and cube.attrs["site"] == "SJER"
    wl = cube["wavelength"].values
    np.testing.assert_allclose(wl, np.linspace(380, 2510, 20))
    np.testing.assert_allclose(cube["fwhm"].values, 5.0)
    water = ((wl >= 1340) & (wl <= 1445)) | ((wl >= 1790) & (wl <= 1955))
    assert water.any() and np.array_equal(cube["good_band"].values, ~water)


def test_apply_scale_gives_reflectance_as_for_an_envi_file(tmp_path):
    """open_cube(apply_scale=True) returned the int16 DN of a NEON file (3016 for 0.3016)
    in silence, where the same data as ENVI came back divided by its factor."""
    path = tmp_path / NAME
    data = write_neon(path)
    cube = open_cube(path, apply_scale=True)
    expected = np.where(data == -9999, np.nan, data.astype(np.float32) / np.float32(10000))
    assert cube.dtype == np.float32 and cube.attrs["scale_applied"]
    np.testing.assert_array_equal(cube.values, expected)
    assert np.isnan(cube.attrs["nodata"])
    window = open_cube(path, apply_scale=True, srcwin=(3, 4, 10, 8))
    np.testing.assert_array_equal(window.values, expected[4:12, 3:13])
    assert not open_cube(path).attrs["scale_applied"]


def test_placed_as_gdal_places_an_envi_file_of_its_map_info(tmp_path):
    path = tmp_path / NAME
    write_neon(path)
    cube = open_cube(path)
    envi = tmp_path / "same.img"
    envi.write_bytes(b"\0" * (40 * 30))
    (tmp_path / "same.hdr").write_text(
        "ENVI\nsamples = 30\nlines = 40\nbands = 1\nheader offset = 0\ndata type = 1\n"
        f"interleave = bsq\nbyte order = 0\nmap info = {{{MAP_INFO}}}\n")
    with rasterio.open(envi) as src:
        assert cube.rio.transform() == src.transform
        assert CRS.from_user_input(cube.rio.crs) == src.crs
    assert cube.rio.crs.to_epsg() == EPSG
    assert cube.rio.transform().c == 257500 and cube.rio.transform().f == 4112500


def test_without_a_map_info_the_scene_is_not_placed(tmp_path):
    """The EPSG Code alone places nothing: no CRS is claimed for a pixel grid."""
    path = tmp_path / NAME
    write_neon(path, map_info=None)
    cube = open_cube(path)
    assert cube.rio.transform().is_identity and cube.rio.crs is None


def test_a_map_info_gdal_cannot_read_is_said_and_places_nothing(tmp_path):
    path = tmp_path / NAME
    write_neon(path, map_info="hello world")
    with pytest.warns(UserWarning, match="GDAL reads no grid from its Map_Info 'hello world'"):
        cube = open_cube(path)
    assert cube.rio.transform().is_identity and cube.rio.crs is None


def test_an_epsg_code_that_disagrees_with_the_map_info_is_said(tmp_path):
    path = tmp_path / NAME
    write_neon(path)
    with h5py.File(path, "a") as f:
        coords = f["SJER/Reflectance/Metadata/Coordinate_System"]
        del coords["EPSG Code"]
        coords["EPSG Code"] = np.bytes_("32612")
    with pytest.warns(UserWarning, match="EPSG Code 32612 differs .*EPSG:32611"):
        cube = open_cube(path)
    assert cube.rio.crs.to_epsg() == EPSG  # the Map_Info's, as GDAL reads it


@pytest.mark.parametrize("value", [np.array([], float), np.array([1.0, 2.0]), "n/a"])
def test_an_attribute_that_is_not_one_number_is_one_line(tmp_path, capsys, value):
    path = tmp_path / NAME
    write_neon(path)
    with h5py.File(path, "a") as f:
        f["SJER/Reflectance/Reflectance_Data"].attrs["Data_Ignore_Value"] = value
    line = one_error(["info", str(path)], capsys)
    assert "Data_Ignore_Value is not one number" in line and NAME in line


@pytest.mark.parametrize("chunks", [(7, 5, 4), PLANES])
def test_chunked_files_read_the_same(tmp_path, chunks, small_planes):
    data = neon_values()
    plain, packed = tmp_path / "plain.h5", tmp_path / NAME
    write_neon(plain, data)
    write_neon(packed, data, chunks=chunks)
    cube = open_cube(packed, chunks=16)
    reader = source_of(cube.data)
    assert reader.unpack == (chunks == PLANES)
    assert reader.blocks == (None if chunks == PLANES else chunks[:2])
    np.testing.assert_array_equal(cube.values, data)
    np.testing.assert_array_equal(cube[3:11, 5:9, 2:7].values, data[3:11, 5:9, 2:7])
    window = open_cube(packed, window=Window(4, 3, 20, 17))
    np.testing.assert_array_equal(window.values, data[3:20, 4:24])
    a, b = (GlobalRX().fit_score(open_cube(p, chunks=16)).values for p in (plain, packed))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("filters", [{"shuffle": True}, {"fletcher32": True},
                                     {"dtype": ">i2"}])
def test_whole_band_chunks_with_other_filters_or_byte_order(tmp_path, filters, small_planes):
    """Deflate alone is inflated in threads; shuffle, a checksum or big-endian values
    are read through HDF5 (or converted), to the same values."""
    data = neon_values()
    path = tmp_path / NAME
    write_neon(path, data, chunks=PLANES, **filters)
    cube = open_cube(path)
    assert source_of(cube.data).unpack and cube.dtype == np.dtype("=i2")
    np.testing.assert_array_equal(cube.values, data)


def test_bands_never_written_read_as_the_fill(tmp_path, small_planes):
    path = tmp_path / NAME
    data = write_neon(path, chunks=PLANES)
    with h5py.File(path, "w") as f:  # the same layout, only band 0 written
        d = f.create_dataset("SJER/Reflectance/Reflectance_Data", shape=data.shape,
                             dtype=np.int16, chunks=PLANES, compression="gzip",
                             fillvalue=-9999)
        d[:, :, 0] = data[:, :, 0]
    cube = open_cube(path)
    assert (cube.values[:, :, 1:] == -9999).all()
    np.testing.assert_array_equal(cube.values[:, :, 0], data[:, :, 0])


def test_unpacked_once_into_a_file_that_leaves_nothing(tmp_path, monkeypatch, small_planes):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    path = tmp_path / NAME
    data = write_neon(path, chunks=PLANES)
    reads = []
    real = hdf5_chunks.stored_chunks
    monkeypatch.setattr(hdf5_chunks, "stored_chunks",
                        lambda ds, sel, *a, **k: reads.append(sel[2]) or real(ds, sel, *a, **k))
    cube = open_cube(path, chunks=8)
    np.testing.assert_array_equal(cube.values, data)
    np.testing.assert_array_equal(cube.values, data)
    assert reads == [slice(b, b + 1) for b in range(20)]  # each band once (under 4 kB)
    assert list(temp.iterdir()) == []  # the copy has no name
    reader = pickle.loads(pickle.dumps(source_of(cube.data)))  # a worker unpacks its own
    assert reader._planes is None
    np.testing.assert_array_equal(reader[5:9, 2:4], data[5:9, 2:4])


def test_a_file_rewritten_after_unpacking_is_an_error(tmp_path, small_planes):
    path = tmp_path / NAME
    write_neon(path, chunks=PLANES)
    cube = open_cube(path)
    cube[:4, :4].values  # noqa: B018 (unpacked)
    write_neon(path, neon_values(seed=1), chunks=PLANES)
    with pytest.raises(TruncatedFileError, match="the NEON file changed on disk"):
        cube.values  # noqa: B018


def test_no_room_to_unpack_is_one_line(tmp_path, monkeypatch, capsys, small_planes):
    path = tmp_path / NAME
    write_neon(path, chunks=PLANES)

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OutputError, match="cannot unpack .* temporary directory .*TMPDIR"):
        open_cube(path).values  # noqa: B018
    for command in (["detect", str(path), "-m", "rx", "-o", str(tmp_path / "rx.tif")],
                    ["convert", str(path), str(tmp_path / "copy.tif")]):
        line = one_error(command, capsys)  # the unpacking is named, not the output
        assert "No space left on device" in line and f"{NAME}: cannot unpack" in line, line
    assert not (tmp_path / "rx.tif").exists() and not (tmp_path / "copy.tif").exists()


def test_a_damaged_chunk_is_one_line(tmp_path, capsys, small_planes):
    path = tmp_path / NAME
    write_neon(path, chunks=PLANES)
    with h5py.File(path, "r") as f:
        offset = f["SJER/Reflectance/Reflectance_Data"].id.get_chunk_info(3).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 16)
    with pytest.raises(TruncatedFileError, match=r"chunk at \(0, 0, 3\) of .* does not inflate"):
        open_cube(path).values  # noqa: B018
    line = one_error(["detect", str(path), "-m", "rx", "-o", str(tmp_path / "rx.tif")],
                     capsys)
    assert "does not inflate" in line


def test_what_is_not_read_says_why(tmp_path):
    radiance = tmp_path / "NEON_D17_SJER_DP1_20230418_radiance.h5"
    with h5py.File(radiance, "w") as f:
        f.create_dataset("SJER/Radiance/RadianceIntegerPart", data=np.zeros((4, 3, 5)))
    with pytest.raises(FileFormatError, match="NEON L1 radiance file"):
        open_cube(radiance)
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_group("SJER/Reflectance/Metadata")
    with pytest.raises(FileFormatError, match="NEON file without SJER/Reflectance/"):
        open_cube(empty)
    two = tmp_path / "two.h5"
    write_neon(two)
    with h5py.File(two, "a") as f:
        f["OSBS"] = f["SJER"]
    with pytest.raises(FileFormatError, match="2 NEON sites in one file"):
        open_cube(two)
    one = tmp_path / NAME
    write_neon(one)
    with pytest.raises(ParameterError, match="a NEON file, which has one cube"):
        open_cube(one, key="SJER")


def test_info_and_detect_from_the_command_line(tmp_path, capsys):
    path = tmp_path / NAME
    write_neon(path)
    code, out, _ = run_cli(["info", str(path)], capsys)
    assert code == 0 and "NEON AOP HDF5" in out and "EPSG:32611" in out
    out_path = tmp_path / "rx.tif"
    code, _, err = run_cli(["detect", str(path), "-m", "rx", "-o", str(out_path)], capsys)
    assert code == 0, err
    with rasterio.open(out_path) as src:
        assert src.crs.to_epsg() == EPSG and src.transform.c == 257500
        scores = src.read(1)
    assert np.isnan(scores[:2, :3]).all() and np.isfinite(scores[2:]).all()


def test_the_unpacked_copy_is_read_without_preadv_too(tmp_path, monkeypatch, small_planes):
    """Where the system has no ``preadv`` (Windows), each window's rows are read by a seek
    and a read under a lock."""
    monkeypatch.delattr(os, "preadv", raising=False)
    path = tmp_path / NAME
    data = write_neon(path, chunks=PLANES)
    cube = open_cube(path, chunks=7)
    np.testing.assert_array_equal(cube.values, data)
    np.testing.assert_array_equal(cube[5:9, 3:30:2].values, data[5:9, 3:30:2])


def test_a_window_unpacks_its_part_alone(tmp_path, capsys, small_planes):
    path = tmp_path / NAME
    data = write_neon(path, chunks=PLANES)
    cube = open_cube(path, window=Window(col_off=4, row_off=10, width=15, height=20))
    np.testing.assert_array_equal(cube.values, data[10:30, 4:19])
    reader = source_of(cube.data).base
    assert reader._planes.shape == (20, 15, 20)  # the window's pixels, every band
    assert os.fstat(reader._planes._file.fileno()).st_size == 20 * 15 * 20 * 2
    with pytest.raises(IndexError, match="outside the window this reader was opened for"):
        reader[9:12, 4:6]
    # through the command line: the map of the window equals a contiguous file's
    plain = tmp_path / "plain.h5"
    write_neon(plain)
    maps = []
    for source in (path, plain):
        out = tmp_path / f"{source.stem}.tif"
        code, _, err = run_cli(["detect", str(source), "-m", "rx", "--srcwin", "4", "10", "15",
                                "20", "-o", str(out)], capsys)
        assert code == 0, err
        with rasterio.open(out) as src:
            maps.append(src.read(1))
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-6)


def test_unpacking_shows_a_bar_when_the_tiles_do(tmp_path, capsys, monkeypatch,
                                                  small_planes):
    path = tmp_path / NAME
    write_neon(path, chunks=PLANES)
    args = ["detect", str(path), "-m", "rx", "-o", str(tmp_path / "rx.tif")]
    code, _, err = run_cli([*args, "--progress"], capsys)
    assert code == 0 and f"unpacking {NAME}" in err and "20/20" in err
    code, _, err = run_cli([*args, "--no-progress", "--overwrite"], capsys)
    assert code == 0 and "unpacking" not in err
    # no tile bars, no unpacking bar: train, and a Python call, even on a terminal
    monkeypatch.setattr("hsad.progress.stderr_is_terminal", lambda: True)
    for command in (["train", str(path), "-m", "rx", "-o", str(tmp_path / "m.hsad"), "-q"],
                    ["train", str(path), "-m", "rx", "--no-progress", "--overwrite", "-o",
                     str(tmp_path / "m.hsad")]):
        code, _, err = run_cli(command, capsys)
        assert code == 0 and "unpacking" not in err, err
    open_cube(path).values  # noqa: B018
    assert "unpacking" not in capsys.readouterr().err


def test_a_fresh_reader_of_the_same_cube_takes_the_copy_unpacked(tmp_path, monkeypatch,
                                                                  small_planes):
    """A dask.distributed worker is sent a fresh reader with each computation: it reads the
    copy its process last unpacked of the same part of the same file."""
    path = tmp_path / NAME
    data = write_neon(path, chunks=PLANES)
    unpacked = []
    real = hdf5_planes.Planes
    monkeypatch.setattr(hdf5_planes, "Planes", lambda *a: unpacked.append(a[0]) or real(*a))
    cube = open_cube(path, window=Window(col_off=2, row_off=3, width=20, height=30))
    reader = source_of(cube.data)
    for _ in range(3):
        fresh = pickle.loads(pickle.dumps(reader))
        np.testing.assert_array_equal(fresh[:, :], data[3:33, 2:22])
    assert unpacked == [(30, 20, 20)]
    np.testing.assert_array_equal(open_cube(path).values, data)  # another part: its own
    write_neon(path, neon_values(seed=2), chunks=PLANES)  # another file: its own
    np.testing.assert_array_equal(open_cube(path).values, neon_values(seed=2))
    assert unpacked == [(30, 20, 20), (40, 30, 20), (40, 30, 20)]


def test_a_kept_copy_goes_only_to_a_reader_that_reads_the_same(tmp_path, monkeypatch,
                                                                small_planes):
    """Readers of one dataset that arrange it differently each unpack their own; two
    threads reading the same cube unpack it once, and one copy is kept."""
    import threading

    from hsad.io.hdf5_file import Hdf5Reader, file_stamp

    path = tmp_path / NAME
    data = write_neon(path, chunks=PLANES)

    class Negated(Hdf5Reader):
        def _arrange(self, stored, *window):
            return -np.asarray(stored)

    with open(path, "rb") as fh:
        stamp = file_stamp(fh)
    key, shape = "SJER/Reflectance/Reflectance_Data", (40, 30, 20)
    blocks = (40, 30)
    plain, negated = (cls(str(path), key, shape, np.int16, stamp, blocks)
                      for cls in (Hdf5Reader, Negated))
    assert plain.unpack and negated.unpack
    np.testing.assert_array_equal(plain[:, :, :], data)
    np.testing.assert_array_equal(negated[:, :, :], -data)  # not the plain reader's copy
    unpacked = []
    real = hdf5_planes.Planes
    monkeypatch.setattr(hdf5_planes, "Planes", lambda *a: unpacked.append(a[0]) or real(*a))
    readers = [Hdf5Reader(str(path), key, shape, np.int16, stamp, blocks) for _ in range(4)]
    results = [None] * 4
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, readers[i][:, :, :]))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unpacked == [(40, 30, 20)]  # the negated copy kept is not theirs; one unpack
    assert all(np.array_equal(r, data) for r in results)
    assert len(hdf5_planes._LAST) == 1


def test_unpacked_copies_close_their_files_when_let_go_or_at_exit():
    """A copy dropped, and the copy kept for the next reader (``_LAST``) when the process
    ends, close their temporary files: no "unclosed file" ResourceWarning (seen at exit
    before)."""
    import subprocess
    import sys

    script = (
        "import gc, numpy as np\n"
        "from hsad.io import hdf5_planes as hp\n"
        "kept = hp.Planes((4, 5, 6), np.int16, 2, 'kept.h5')\n"
        "kept.write(0, np.ones((4, 5, 2), np.int16))\n"
        "hp._LAST['k'] = kept\n"
        "dropped = hp.Planes((4, 5, 6), np.int16, 2, 'dropped.h5')\n"
        "del dropped, kept\n"
        "gc.collect()\n"
        "print(int(hp._LAST['k'].window(0, 4, 0, 5, 0, 2).sum()))\n")
    done = subprocess.run([sys.executable, "-X", "dev", "-W", "always::ResourceWarning", "-c",
                           script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "40", done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr
