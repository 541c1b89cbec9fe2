"""MAT v5 and v7.3 (HDF5) readers: key detection, layout, errors, and the v5 writer."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import scipy.io as sio

import hsad
from hsad.errors import FileFormatError, UnsupportedError
from hsad.io import detect_format, matlab
from hsad.io.matlab import load_mat, open_mat, write_mat

MAT73_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
                b"HDF5 schema 1.00 .")


def write_mat73(path, variables: dict, classes: dict):
    """Write variables the way MATLAB's ``save -v7.3`` does: HDF5, transposed, 512-byte header."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            dset = f.create_dataset(name, data=np.asarray(value).T)
            dset.attrs["MATLAB_class"] = np.bytes_(classes[name])
            if classes[name] == "logical":
                dset.attrs["MATLAB_int_decode"] = np.int32(1)
    header = MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))
    return path


@pytest.fixture()
def mat73(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.integers(0, 4000, size=(9, 7, 5)).astype(np.uint16)  # rows != cols != bands
    gt = np.zeros((9, 7), bool)
    gt[2, 5] = gt[8, 0] = True
    path = write_mat73(tmp_path / "scene73.mat",
                       {"hsi": cube, "hsi_gt": gt.astype(np.uint8),
                        "wavelengths": np.linspace(0.4, 2.4, 5)[None, :]},
                       {"hsi": "uint16", "hsi_gt": "logical", "wavelengths": "double"})
    return path, cube, gt


def test_v5_benchmark_scene_with_extra_variables(datasets_dir):
    path = datasets_dir / "hydice-urban.mat"  # also holds data_mxn (8000x162), map_mx1
    cube, gt = load_mat(path)
    assert cube.shape == (80, 100, 162) and cube.dtype == np.uint16
    assert cube.attrs["mat_key"] == "data" and cube.attrs["gt_key"] == "map"
    assert cube.attrs["mat_version"] == "5" and cube.attrs["source_format"] == "mat"
    raw = sio.loadmat(path)
    np.testing.assert_array_equal(cube.values, raw["data"])
    assert gt.dtype == bool and gt.sum() == 21
    np.testing.assert_array_equal(gt, raw["map"] != 0)
    assert np.isnan(cube["wavelength"].values).all()


def test_v73_is_detected_and_transposed_back(mat73):
    path, cube, gt = mat73
    assert open(path, "rb").read(19) == b"MATLAB 7.3 MAT-file"
    assert detect_format(path) == "mat"
    got = hsad.open_cube(path, chunks=4)
    assert got.shape == (9, 7, 5) and got.dtype == np.uint16
    assert got.data.chunks == ((4, 4, 1), (4, 3), (5,))
    np.testing.assert_array_equal(got.values, cube)
    np.testing.assert_array_equal(got[1:8:3, ::-2, 4].values, cube[1:8:3, ::-2, 4])
    np.testing.assert_allclose(got["wavelength"].values, np.linspace(400, 2400, 5))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(got.data)).compute(), cube)
    assert got.attrs["mat_version"] == "7.3" and got.attrs["gt_key"] == "hsi_gt"
    _, got_gt = load_mat(path)
    np.testing.assert_array_equal(got_gt, gt)


def test_explicit_keys_and_missing_key_names_the_variables(tmp_path):
    path = tmp_path / "two.mat"
    a, b = np.ones((4, 3, 2), np.float32), np.zeros((4, 3, 6), np.float32)
    sio.savemat(path, {"scene_a": a, "scene_b": b, "truth": np.eye(4, 3)})
    assert open_mat(path).shape == (4, 3, 6)  # no common name: the largest 3-D array
    cube, gt = load_mat(path, key="scene_a", gt_key="truth")
    assert cube.shape == (4, 3, 2) and gt.sum() == 3
    with pytest.raises(FileFormatError, match="no variable 'cube'.*scene_a.*scene_b.*truth"):
        open_mat(path, key="cube")
    with pytest.raises(FileFormatError, match="not a 3-D numeric cube"):
        open_mat(path, key="truth")
    with pytest.raises(FileFormatError, match="not 4x3 like the cube"):
        load_mat(path, gt_key="scene_a")


def test_mat_without_a_cube_lists_its_variables(tmp_path):
    path = tmp_path / "flat.mat"
    sio.savemat(path, {"spectra": np.ones((100, 20)), "labels": np.zeros((100, 1))})
    with pytest.raises(FileFormatError) as exc:
        open_mat(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: no 3-D numeric array")
    assert "spectra (100x20 double)" in message and "labels (100x1 double)" in message


def test_gt_absent_gives_none(tmp_path):
    path = tmp_path / "cube_only.mat"
    sio.savemat(path, {"img": np.ones((3, 4, 5), np.int16)})
    cube, gt = load_mat(path)
    assert gt is None and cube.attrs["gt_key"] is None and cube.dtype == np.int16


@pytest.mark.parametrize("cut", [60, 300, 0.5, -10])
def test_truncated_v5_is_a_file_format_error(datasets_dir, tmp_path, cut):
    raw = (datasets_dir / "abu-beach-2.mat").read_bytes()
    n = int(len(raw) * cut) if isinstance(cut, float) else cut % len(raw)
    bad = tmp_path / "cut.mat"
    bad.write_bytes(raw[:n])
    with pytest.raises(FileFormatError) as exc:
        load_mat(bad)
    assert str(exc.value).startswith(f"{bad}: ")


def test_truncated_v73_is_a_file_format_error(mat73, tmp_path):
    path = mat73[0]
    raw = path.read_bytes()
    bad = tmp_path / "cut73.mat"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError):
        hsad.open_cube(bad).values  # noqa: B018


def test_write_mat_round_trip_keeps_gt_and_wavelengths(mat73, tmp_path):
    path, cube, gt = mat73
    src, src_gt = load_mat(path)
    out = write_mat(src, tmp_path / "copy.mat", gt=src_gt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.mat", "scene73.mat"]
    back, back_gt = load_mat(out)
    assert back.attrs["mat_version"] == "5"
    np.testing.assert_array_equal(back.values, cube)
    np.testing.assert_array_equal(back_gt, gt)
    np.testing.assert_allclose(back["wavelength"].values, src["wavelength"].values)


def test_write_mat_refuses_cubes_over_2gib(mat73, tmp_path, monkeypatch):
    cube, _ = load_mat(mat73[0])
    monkeypatch.setattr(matlab, "MAT5_MAX_BYTES", cube.nbytes - 1)
    target = tmp_path / "big.mat"
    with pytest.raises(UnsupportedError, match="limited to 2 GiB"):
        write_mat(cube, target)
    assert not target.exists()
