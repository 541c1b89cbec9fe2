"""MAT v5 and v7.3 (HDF5) readers: key detection, layout, errors, and the v5 writer."""

from __future__ import annotations

import pickle
import warnings

import h5py
import numpy as np
import pytest
import scipy.io as sio

import hsad
from hsad.errors import FileFormatError, UnsupportedError
from hsad.io import detect_format, mat_writer
from hsad.io.maps import read_single_band, read_truth
from hsad.io.mat_writer import write_mat
from hsad.io.matlab import load_mat, open_mat
from hsad.outputs.evaluation import evaluate_files

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
    with pytest.raises(FileFormatError, match="'scene_a' is not a 2-D numeric or logical map"):
        load_mat(path, gt_key="scene_a")
    with pytest.raises(FileFormatError, match="'truth' is 3x4, not 4x3 like the cube: transposed"):
        sio.savemat(path, {"scene_b": b, "truth": np.eye(3, 4)})
        load_mat(path, gt_key="truth")


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


def test_bad_bands_survive_a_mat_file(tmp_path):
    """The bad-band list was dropped: bands all -32768 came back good."""
    from hsad.cube import make_cube

    data = np.random.default_rng(0).normal(size=(6, 7, 5)).astype(np.float32)
    good = np.array([True, False, True, True, False])
    cube = make_cube(data, wavelength=[450.0, 550, 650, 750, 850], good_band=good)
    back = open_mat(write_mat(cube, tmp_path / "bbl.mat"))
    np.testing.assert_array_equal(back["good_band"].values, good)
    all_good = open_mat(write_mat(make_cube(data), tmp_path / "good.mat"))
    assert all_good["good_band"].values.all()
    assert "bbl" not in sio.loadmat(tmp_path / "good.mat")  # written only when some are bad
    sio.savemat(tmp_path / "logical.mat", {"data": data, "bbl": good})  # MATLAB's true(1, n)
    np.testing.assert_array_equal(open_mat(tmp_path / "logical.mat")["good_band"].values, good)
    sio.savemat(tmp_path / "odd.mat", {"data": data, "bbl": np.array([[1, 2, 1, 1, 0]])})
    with pytest.warns(UserWarning, match="'bbl' holds values other than 0 and 1"):
        assert open_mat(tmp_path / "odd.mat")["good_band"].values.all()


def test_write_mat_refuses_cubes_over_2gib(mat73, tmp_path, monkeypatch):
    cube, _ = load_mat(mat73[0])
    monkeypatch.setattr(mat_writer, "MAT5_MAX_BYTES", cube.nbytes - 1)
    target = tmp_path / "big.mat"
    with pytest.raises(UnsupportedError, match="limited to 2 GiB"):
        write_mat(cube, target)
    assert not target.exists()


def _elements(path) -> list[bytes]:
    """A MAT v5 file's variables, each its miMATRIX element's bytes (decompressed)."""
    import struct
    import zlib

    raw, out, at = open(path, "rb").read(), [], 128
    while at < len(raw):
        kind, size = struct.unpack_from("<II", raw, at)
        body = raw[at + 8:at + 8 + size]
        out.append(zlib.decompress(body) if kind == 15 else raw[at:at + 8 + size])
        at += 8 + size + (-size % 8 if kind != 15 else 0)
    return out


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32",
                                   "int64", "uint64", "float32", "float64", ">i2", ">f4"])
@pytest.mark.parametrize(("key", "shape"), [("data", (5, 7, 3)), ("hsi", (5, 7, 3)),
                                            ("hyperspectral", (5, 7, 3)), ("X", (1, 1, 1)),
                                            ("data", (1, 2, 2)), ("cube", (2, 1, 3))])
def test_the_streamed_cube_is_the_element_scipy_writes(tmp_path, dtype, key, shape):
    """The cube's variable, written a band group at a time, decompresses to the bytes
    scipy.io.savemat writes for the whole array (MATLAB reads what scipy writes)."""
    from hsad.cube import make_cube

    rng = np.random.default_rng(3)
    values = (rng.normal(size=shape) * 40).astype(dtype)
    ours = write_mat(make_cube(values), tmp_path / "ours.mat", key=key)
    sio.savemat(tmp_path / "scipy.mat", {key: values.astype(values.dtype.newbyteorder("="))},
                do_compression=True, oned_as="row")
    assert _elements(ours)[0] == _elements(tmp_path / "scipy.mat")[0]
    back = sio.loadmat(ours)[key]
    assert back.dtype == values.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, values)


def test_a_cube_is_written_a_band_group_at_a_time(tmp_path, monkeypatch):
    """A dask cube is read a group of whole bands at a time (never whole) and written as
    the same file as in one piece, its ground truth and wavelengths beside it."""
    import dask.array as da

    from hsad.cube import make_cube

    rng = np.random.default_rng(4)
    values = rng.normal(size=(40, 30, 11)).astype(np.float32)
    truth = values[:, :, 0] > 1
    whole = write_mat(make_cube(values, wavelength=np.arange(11) * 10.0 + 400),
                      tmp_path / "whole.mat", gt=truth)
    monkeypatch.setattr(mat_writer, "BLOCK_BYTES", 3 * 40 * 30 * 4)  # 3 bands a group
    reads = []

    def counted(block, block_info=None):
        reads.append(block_info[0]["array-location"][2])
        return block

    lazy = da.from_array(values, chunks=(16, 16, 4)).map_blocks(counted, dtype=np.float32)
    cube = make_cube(lazy, wavelength=np.arange(11) * 10.0 + 400)
    grouped = write_mat(cube, tmp_path / "grouped.mat", gt=truth)
    assert open(grouped, "rb").read()[128:] == open(whole, "rb").read()[128:]
    back, back_truth = load_mat(grouped)
    np.testing.assert_array_equal(back.values, values)
    np.testing.assert_array_equal(back_truth, truth)
    assert max(b1 - b0 for b0, b1 in reads) <= 4  # never more than a group's chunks


# --------------------------------------------------------------- variables found in the wild


def _scene(rows=9, cols=7, bands=6, seed=1):
    rng = np.random.default_rng(seed)
    cube = rng.integers(0, 4000, size=(rows, cols, bands)).astype(np.float64)
    gt = np.zeros((rows, cols), np.uint8)
    gt[2, 5] = gt[8, 0] = 1
    return cube, gt


def _write_v73_sparse(path, name, matrix):
    """Append a sparse variable as MATLAB's ``save -v7.3`` stores it (CSC group)."""
    import scipy.sparse

    csc = scipy.sparse.csc_matrix(matrix.astype(np.float64))
    with h5py.File(path, "a") as f:
        group = f.create_group(name)
        group.attrs["MATLAB_class"] = np.bytes_("double")
        group.attrs["MATLAB_sparse"] = np.uint64(csc.shape[0])
        group.create_dataset("data", data=csc.data)
        group.create_dataset("ir", data=csc.indices.astype(np.uint64))
        group.create_dataset("jc", data=csc.indptr.astype(np.uint64))


@pytest.mark.parametrize("preview", ["img", "image", "Y"])
def test_a_small_array_with_a_cube_name_does_not_beat_the_cube(tmp_path, preview):
    cube, gt = _scene()
    rgb = np.zeros((9, 7, 3), np.uint8)
    sio.savemat(tmp_path / "s.mat", {"paviaU": cube, preview: rgb, "paviaU_gt": gt})
    got, truth = load_mat(tmp_path / "s.mat")
    assert got.attrs["mat_key"] == "paviaU" and got.attrs["gt_key"] == "paviaU_gt"
    np.testing.assert_array_equal(got.values, cube)
    np.testing.assert_array_equal(truth, gt != 0)


def test_the_largest_cube_wins_and_equal_sizes_go_by_name(tmp_path):
    cube, gt = _scene()
    sio.savemat(tmp_path / "s.mat", {"zz": cube, "data": cube + 1, "patch": cube[:2, :2]})
    assert load_mat(tmp_path / "s.mat")[0].attrs["mat_key"] == "data"


@pytest.mark.parametrize("variables", [
    {"data": np.ones((63, 6)), "rgb": np.zeros((9, 7, 3))},  # pixels x bands and a preview
    {"data": np.ones((63, 6)), "map": np.zeros((9, 7, 1))},  # the truth as (rows, cols, 1)
], ids=["preview", "truth-3d"])
def test_no_cube_with_bands_is_an_error_not_a_preview(tmp_path, variables):
    sio.savemat(tmp_path / "s.mat", variables)
    with pytest.raises(FileFormatError, match="no 3-D numeric array with more than 3 bands"):
        hsad.open_cube(tmp_path / "s.mat")


@pytest.mark.parametrize("bands", [1, 2, 3])
def test_a_cube_of_few_bands_hsad_wrote_is_read_back(tmp_path, bands):
    """``hsad convert two_band.tif x.mat`` wrote a file ``hsad convert x.mat`` refused ("no
    3-D numeric array with more than 3 bands") without ``--key data``: the only 3-D array
    of a file, named as a cube, is its cube at any band count."""
    from hsad.cube import make_cube
    from hsad.io.mat_writer import write_mat

    cube = np.arange(4 * 5 * bands, dtype=np.float32).reshape(4, 5, bands)
    write_mat(make_cube(cube, wavelength=np.arange(bands) * 10.0 + 500), tmp_path / "x.mat")
    got = hsad.open_cube(tmp_path / "x.mat")
    np.testing.assert_array_equal(got.values, cube)
    np.testing.assert_array_equal(got["wavelength"].values, np.arange(bands) * 10.0 + 500)
    sio.savemat(tmp_path / "rgb.mat", {"image": cube})  # a preview's name: still refused
    with pytest.raises(FileFormatError, match="no 3-D numeric array with more than 3 bands"):
        hsad.open_cube(tmp_path / "rgb.mat")


def test_a_cube_stored_bands_first_is_refused(tmp_path):
    cube, gt = _scene()
    sio.savemat(tmp_path / "s.mat", {"data": np.ascontiguousarray(cube.transpose(2, 0, 1)),
                                     "map": gt})
    with pytest.raises(FileFormatError, match="stored bands first"):
        hsad.open_cube(tmp_path / "s.mat")


@pytest.mark.parametrize("name", ["PlaneGT", "tgt", "anomaly_map", "groundtruth_map"])
def test_ground_truth_names_in_the_wild(tmp_path, name):
    cube, gt = _scene()
    sio.savemat(tmp_path / "s.mat", {"data": cube, name: gt, "other": np.ones((9, 7))})
    got, truth = load_mat(tmp_path / "s.mat")
    assert got.attrs["gt_key"] == name
    np.testing.assert_array_equal(truth, gt != 0)


@pytest.mark.parametrize("name", ["cloud_mask", "pathlength", "PATHLENGTH", "STRENGTH"])
def test_maps_that_are_no_truth_are_not_taken_for_one(tmp_path, name):
    cube, gt = _scene()
    sio.savemat(tmp_path / "s.mat", {"data": cube, name: gt})
    assert load_mat(tmp_path / "s.mat")[1] is None


def test_a_transposed_truth_is_named_as_such(tmp_path):
    cube, gt = _scene()
    sio.savemat(tmp_path / "s.mat", {"data": cube, "map": gt.T.copy()})
    assert hsad.open_cube(tmp_path / "s.mat").attrs["gt_key"] is None  # the cube still opens
    with pytest.raises(FileFormatError, match=r"'map' is 7x9, not 9x7 like the cube: transposed"):
        load_mat(tmp_path / "s.mat")


@pytest.mark.parametrize("form", ["3d", "sparse-v5", "sparse-v73"])
def test_truth_as_rows_cols_1_or_sparse(tmp_path, form):
    cube, gt = _scene()
    path = tmp_path / "s.mat"
    if form == "3d":
        sio.savemat(path, {"data": cube, "map": gt[:, :, None]})
    elif form == "sparse-v5":
        import scipy.sparse

        sio.savemat(path, {"data": cube, "map": scipy.sparse.csc_matrix(gt.astype(float))})
    else:
        write_mat73(path, {"data": cube}, {"data": "double"})
        _write_v73_sparse(path, "map", gt)
    got, truth = load_mat(path)
    assert got.attrs["gt_key"] == "map"
    np.testing.assert_array_equal(truth, gt != 0)
    truth2, _ = read_truth(path)
    np.testing.assert_array_equal(truth2, gt)


def test_truth_only_and_2d_score_files_are_evaluated(tmp_path):
    cube, gt = _scene()
    scores = np.arange(63, dtype=float).reshape(9, 7)
    write_mat73(tmp_path / "truth73.mat", {"PlaneGT": gt}, {"PlaneGT": "uint8"})
    sio.savemat(tmp_path / "truth.mat", {"Salinas_gt": gt})
    sio.savemat(tmp_path / "scores.mat", {"scores": scores})
    for truth_file in ("truth73.mat", "truth.mat"):
        truth, raster = read_truth(tmp_path / truth_file)
        np.testing.assert_array_equal(truth, gt)
        assert raster is None
    values, _ = read_single_band(tmp_path / "scores.mat")
    np.testing.assert_array_equal(values, scores)
    result, _, _ = evaluate_files(tmp_path / "scores.mat", tmp_path / "truth.mat")
    assert 0 < result.auc_df <= 1


def test_big_endian_cubes_read_in_native_order(tmp_path):
    cube, _ = _scene()
    sio.savemat(tmp_path / "s.mat", {"data": cube.astype(">f8")})
    raw = sio.loadmat(tmp_path / "s.mat")["data"]
    got = hsad.open_cube(tmp_path / "s.mat")
    assert got.dtype == np.dtype("float64") and got.dtype.isnative
    np.testing.assert_array_equal(got.values, raw)


def test_writing_a_mat_file_names_what_it_cannot_keep(tmp_path):
    from affine import Affine

    from hsad.cube import make_cube

    x = np.ones((4, 5, 3), np.int16)
    cube = make_cube(x, transform=Affine(30, 0, 5e5, 0, -30, 4e6), crs="EPSG:32633",
                     nodata=-9999)
    with pytest.warns(UserWarning, match=r"a MAT file keeps no CRS and transform and no "
                      r"nodata value \(-9999: those pixels become data"):
        write_mat(cube, tmp_path / "a.mat")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        write_mat(make_cube(x), tmp_path / "b.mat")  # nothing lost: silent


def test_nan_in_a_ground_truth_counts_as_background_with_a_warning(tmp_path):
    gt = np.zeros((4, 5))
    gt[0, 0], gt[1, 1] = 1, np.nan
    sio.savemat(tmp_path / "s.mat", {"data": np.ones((4, 5, 6)), "map": gt})
    with pytest.warns(UserWarning, match="1 NaN pixels of the ground truth 'map' count as "
                      "background here"):
        _, truth = load_mat(tmp_path / "s.mat")
    assert truth.sum() == 1 and not truth[1, 1]
    assert np.isnan(read_truth(tmp_path / "s.mat")[0][1, 1])  # hsad evaluate: left out


def test_v73_statistics_sample_reads_its_windows_only(tmp_path, monkeypatch):
    """A sample of 8 x 8 windows reads 8 x 8 windows of the HDF5 variable, not the tile each
    lies in (dask fuses the slice into the read unless from_array has fancy=False). The
    scene is larger than ONE_PASS_BYTES, which is read whole."""
    import hsad.io.matlab as matlab
    from hsad.engine.sampling import SAMPLE_WINDOW, even_sample

    cube = np.random.default_rng(2).random((96, 90, 250))  # above ONE_PASS_BYTES
    path = write_mat73(tmp_path / "big73.mat", {"hsi": cube}, {"hsi": "double"})
    from reader_helpers import count_reads

    reads = count_reads(monkeypatch, matlab._H5Reader)
    sample = even_sample(open_mat(path, chunks=96).data, 4 * SAMPLE_WINDOW ** 2)
    assert max(reads) <= SAMPLE_WINDOW ** 2 and sum(reads) == len(sample)
    assert np.isin(sample[:, 0], cube[..., 0]).all()


@pytest.mark.parametrize("key", ["_x", "", "1data", "a b", "x" * 64])
def test_a_variable_name_matlab_refuses_is_refused(tmp_path, key):
    """write_mat(key="_x") wrote a variable scipy refuses to write, key="" one loadmat
    cannot return."""
    from hsad.cube import make_cube
    from hsad.errors import ParameterError

    with pytest.raises(ParameterError, match="no MATLAB variable name"):
        write_mat(make_cube(np.zeros((2, 2, 2), np.float32)), tmp_path / "x.mat", key=key)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("key", "gt_key"), [("same", "same"), ("wavelength", "map"),
                                             ("data", "bbl"), ("end", "map")])
def test_variable_names_that_would_hide_each_other_are_refused(tmp_path, key, gt_key):
    """key == gt_key kept the truth and lost the cube; key="wavelength" hid the cube."""
    from hsad.cube import make_cube
    from hsad.errors import ParameterError

    with pytest.raises(ParameterError, match="MATLAB variable name|must differ"):
        write_mat(make_cube(np.zeros((2, 2, 2), np.float32)), tmp_path / "x.mat",
                  gt=np.zeros((2, 2), bool), key=key, gt_key=gt_key)


def test_a_cube_read_on_first_use_has_the_type_it_is_stored_in(datasets_dir):
    """MATLAB keeps a double array of small integers as int16 (the ABU scenes): a cube read
    on its first use took its type from the array's class (double) and refused every such
    scene ("reads as int16 but its header says float64"). Every shared scene opens with
    the type and values ``load_mat`` reads."""
    for path in sorted(datasets_dir.glob("*.mat")):
        lazy, (eager, _) = hsad.open_cube(path), load_mat(path)
        assert lazy.dtype == eager.dtype, path.name
        np.testing.assert_array_equal(lazy[:7, :9].values, eager[:7, :9].values)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("dtype", ["f8", "f4", "u2", "i2", "u1", "i8", "u4"])
def test_a_cube_read_on_first_use_reads_every_stored_type(tmp_path, compressed, dtype):
    from hsad.io.mat_v5 import stored_type

    values = np.arange(60).reshape(3, 4, 5).astype(dtype)
    path = tmp_path / "c.mat"
    sio.savemat(path, {"wl": np.arange(5.0), "a_long_variable_name": values,
                       "zz": np.zeros(3)}, do_compression=compressed)
    assert stored_type(str(path), "a_long_variable_name") == values.dtype
    cube = hsad.open_cube(path)
    assert cube.dtype == values.dtype
    np.testing.assert_array_equal(cube.values, values)


def test_a_v73_cube_is_read_through_one_open_file_in_its_chunks(tmp_path):
    """A v7.3 cube is read as EMIT and PRISMA cubes are: the file opened once, with a
    chunk cache, its chunks' grid given to the sample (8 × 8 windows of a deflated
    1024² cube opened the file and inflated its chunks for each window: 20 s for RX,
    docs/performance.md benchmark 39), and a file rewritten after opening is an error."""
    from hsad.cube import source_of
    from hsad.errors import TruncatedFileError

    cube = np.random.default_rng(0).normal(size=(24, 20, 6)).astype(np.float32)
    path = tmp_path / "scene.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("data", data=cube.T, chunks=(3, 8, 16), compression="gzip"
                         ).attrs["MATLAB_class"] = np.bytes_("single")
    opened = open_mat(path, chunks=10)
    reader = source_of(opened.data)
    assert reader.blocks == (16, 8) and reader.decode_grid() == (16, 8, 0, 0)
    np.testing.assert_array_equal(opened.values, cube)
    np.testing.assert_array_equal(opened[3:9, 2:17].values, cube[3:9, 2:17])
    assert reader._file is not None  # kept open between reads
    write_mat73(path, {"data": cube[:20]}, {"data": "single"})
    with pytest.raises(TruncatedFileError, match="the MAT file changed on disk"):
        opened.values  # noqa: B018


def test_a_chunked_v73_cube_is_tiled_on_its_chunks(tmp_path):
    """open_tiled plans a chunked HDF5 cube as a tiled GeoTIFF: every tile edge on a chunk
    edge (a tile across chunks inflated them once for each tile it touched)."""
    from hsad.engine.tiles import open_tiled

    cube = np.random.default_rng(1).normal(size=(400, 330, 40)).astype(np.float32)
    path = tmp_path / "scene.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("data", data=cube.T, chunks=(40, 45, 64), compression="gzip",
                         compression_opts=1).attrs["MATLAB_class"] = np.bytes_("single")
    opened = open_mat(path)
    assert opened.attrs["block_shape"] == (64, 45)
    tiled = open_tiled(path, memory_limit="16MB")
    rows, cols = tiled.data.chunks[:2]
    assert len(rows) > 1 and len(cols) > 1
    assert all(n % 64 == 0 for n in rows[:-1]) and all(n % 45 == 0 for n in cols[:-1])
    np.testing.assert_array_equal(tiled.values, cube)
    window = open_tiled(path, memory_limit="16MB", subset={"srcwin": (5, 7, 300, 350)})
    np.testing.assert_array_equal(window.values, cube[7:357, 5:305])
    rows, cols = window.data.chunks[:2]  # the window's first tiles end on chunk edges
    assert (7 + rows[0]) % 64 == 0 and (5 + cols[0]) % 45 == 0
