"""A MAT ground truth, score map or mask is sized up by its declared shape before it is
read, as a raster is: a tiny file declaring a huge map is refused at once, by name."""

from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

import hsad
from hsad.cube import make_cube
from hsad.cube.placement import cut_for_scene
from hsad.errors import FileFormatError, ParameterError
from hsad.io import matlab
from hsad.io.maps import read_single_band, read_truth
from hsad.outputs.evaluation import evaluate_files


@pytest.fixture
def no_reading(monkeypatch):
    """Reading a MAT variable's values fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the map was read before its size was checked")

    monkeypatch.setattr(matlab, "_read_h5", refuse)
    monkeypatch.setattr(matlab, "_read_v5", refuse)


def _declared_v73(path, shape=(6000, 6000)):
    """A v7.3 file declaring a uint8 ``map`` of ``shape`` whose chunks were never written."""
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("map", shape=shape, dtype="u1", chunks=tuple(min(n, 256) for n in shape),
                         compression="gzip").attrs["MATLAB_class"] = np.bytes_("uint8")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + b"\0" * 8
                 + struct.pack("<H", 0x0200) + b"IM")
    return path


def test_a_v73_truth_of_another_size_is_refused_unread(tmp_path, no_reading):
    path = _declared_v73(tmp_path / "truth.mat")
    with pytest.raises(FileFormatError, match="ground truth is 6000x6000 but the scene is "
                                              "20x30") as info:
        read_truth(path, key="map", shape=(20, 30))
    assert str(info.value).startswith(str(path))


def test_a_sparse_truth_larger_than_the_score_map_is_refused_unread(tmp_path, monkeypatch):
    scores = make_cube(np.random.default_rng(0).random((20, 30, 1)).astype(np.float32))
    hsad.write_geotiff(scores[:, :, 0], tmp_path / "scores.tif")
    truth = tmp_path / "sparse.mat"
    scipy.io.savemat(truth, {"map": scipy.sparse.csc_matrix((3000, 3000))},
                     do_compression=True)
    real = matlab._read_v5

    def only_headers(path, names=None, *args, **kwargs):
        assert "map" not in (names or []), "the truth was read before its size was checked"
        return real(path, names, *args, **kwargs)

    monkeypatch.setattr(matlab, "_read_v5", only_headers)
    with pytest.raises(ParameterError, match="ground truth is 3000x3000 but the score map"):
        evaluate_files(tmp_path / "scores.tif", truth)


def test_a_v73_mask_is_cut_or_refused_for_the_scene_unread(tmp_path, no_reading):
    path = _declared_v73(tmp_path / "mask.mat")
    scene = make_cube(np.zeros((20, 30, 4), np.float32))
    with pytest.raises(ParameterError, match="valid mask is 6000x6000 but the scene is 20x30"):
        read_single_band(path, what="valid mask",
                         fit=lambda r: cut_for_scene(r, scene, "valid mask", path))
    with pytest.raises(ParameterError, match="6000x6000"):
        read_truth(path, grid=scene, what="training mask")


def test_a_mat_truth_of_the_right_size_is_read(tmp_path):
    gt = np.zeros((20, 30), np.uint8)
    gt[3, 4] = 1
    scipy.io.savemat(tmp_path / "gt.mat", {"map": gt})
    truth, _ = read_truth(tmp_path / "gt.mat", shape=(20, 30))
    assert truth.shape == (20, 30) and truth.sum() == 1


def _v73(path, cube_shape, written: bool | slice, chunks=(2, 8, 8)):
    """A v7.3 file with a float32 ``data`` variable of ``cube_shape`` (rows, cols, bands),
    its chunks written all (True), none (False) or a slice of its bands."""
    rows, cols, bands = cube_shape
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset("data", shape=(bands, cols, rows), dtype="f4", chunks=chunks)
        ds.attrs["MATLAB_class"] = np.bytes_("single")
        if written is not False:
            values = np.random.default_rng(0).random((bands, cols, rows)).astype(np.float32)
            part = slice(None) if written is True else written
            ds[part] = values[part]
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + b"\0" * 8
                 + struct.pack("<H", 0x0200) + b"IM")
    return path


def test_a_v73_cube_declaring_gigabytes_never_written_is_refused_at_open(tmp_path):
    """HDF5 reads chunks never stored as zeros: a 2 KB file declaring a 37 TB cube was a
    cube of zeros to `hsad detect`, which read it until killed."""
    path = _v73(tmp_path / "huge.mat", (20000, 20000, 1000), False, chunks=(8, 64, 64))
    assert path.stat().st_size < 10_000
    with pytest.raises(FileFormatError, match=r"variable 'data' declares 1490.1 GiB but holds "
                                              r"0 of its \d+ chunks; the rest were never "
                                              "written"):
        hsad.open_cube(path)


def test_chunks_left_unwritten_below_the_limit_read_as_the_fill_value(tmp_path, monkeypatch):
    """A writer may leave chunks of a sparse truth unwritten (their fill value, 0): read as
    before; the same file is refused once its unwritten bytes pass the limit."""
    path = _v73(tmp_path / "part.mat", (16, 16, 8), slice(0, 2))
    cube = hsad.open_cube(path)
    assert float(cube[:, :, 2:].max()) == 0.0 and float(cube[:, :, :2].min()) > 0.0
    monkeypatch.setattr(matlab, "UNWRITTEN_LIMIT", 0)
    with pytest.raises(FileFormatError, match="holds 4 of its 16 chunks"):
        hsad.open_cube(path)
    truth = _declared_v73(tmp_path / "truth.mat", shape=(30, 20))
    with pytest.raises(FileFormatError, match="'map' declares 0.0 GiB but holds 0 of its 1"):
        read_truth(truth, key="map", shape=(20, 30))
    whole = hsad.open_cube(_v73(tmp_path / "whole.mat", (16, 16, 8), True))
    assert whole.shape == (16, 16, 8) and float(whole.min()) > 0
