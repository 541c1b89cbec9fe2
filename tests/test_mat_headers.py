"""MAT files whose headers do not say what they hold, or say several things: dimensions
beyond the bytes stored (a corrupt header that made ``hsad info`` allocate 12.7 GB), an
empty cube, and several variables that could be the cube or the ground truth (the choice
was silent)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import scipy.io as sio
from cli_helpers import one_error

import hsad
from hsad.errors import FileFormatError
from hsad.io.matlab import load_mat

CUBE = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)


def _with_dims(raw: bytes, rows: int) -> bytes:
    """``raw`` with the cube's 4 x 5 x 6 dimensions said to be rows x 5 x 6."""
    old = struct.pack("<iii", 4, 5, 6)
    assert raw.count(old) == 1
    return raw.replace(old, struct.pack("<iii", rows, 5, 6))


@pytest.mark.parametrize("rows", [400_000_000, 2**31 - 1])
@pytest.mark.parametrize("compressed", [False, True])
def test_dimensions_beyond_the_bytes_stored_are_refused(tmp_path, rows, compressed, capsys):
    path = tmp_path / "big.mat"
    sio.savemat(path, {"data": CUBE}, do_compression=compressed)
    raw = path.read_bytes()
    if compressed:  # the element is one zlib stream: patch inside it, recompress
        (nbytes,) = struct.unpack("<I", raw[132:136])
        inner = _with_dims(zlib.decompress(raw[136:136 + nbytes]), rows)
        packed = zlib.compress(inner)
        raw = raw[:132] + struct.pack("<I", len(packed)) + packed
    else:
        raw = _with_dims(raw, rows)
    path.write_bytes(raw)
    with pytest.raises(FileFormatError, match=rf"variable 'data' says it is {rows}x5x6 "
                       rf"\({rows * 30} values\) in \d+ bytes"):
        hsad.open_cube(path)
    assert one_error(["info", str(path)], capsys).startswith(f"error: {path}: MAT file is corrupt")


def test_a_sparse_truth_of_large_dimensions_is_no_corrupt_header(tmp_path):
    """A sparse matrix stores its nonzeros only: its dimensions count no stored values."""
    import scipy.sparse

    truth = scipy.sparse.csc_matrix(([1.0], ([1], [2])), shape=(4, 5))
    sio.savemat(tmp_path / "s.mat", {"data": CUBE, "map": truth})
    cube, gt = load_mat(tmp_path / "s.mat")
    assert gt.sum() == 1 and cube.shape == (4, 5, 6)


def test_an_empty_cube_is_one_line(tmp_path, capsys):
    """``hsad info`` ended in rioxarray's NoDataInBounds traceback."""
    sio.savemat(tmp_path / "e.mat", {"data": np.zeros((0, 5, 6)), "map": np.zeros((4, 5))})
    err = one_error(["info", str(tmp_path / "e.mat")], capsys)
    assert "variable 'data' is 0x5x6: an empty cube" in err


def test_of_several_cubes_the_choice_is_said(tmp_path):
    """A cleaned cube beside a larger raw one (San Diego's 189 and 224 bands): the larger
    is taken, as documented, and now said."""
    raw = np.concatenate([CUBE, CUBE[:, :, :2]], axis=2)
    sio.savemat(tmp_path / "two.mat", {"data": CUBE, "data_raw": raw, "map": np.zeros((4, 5))})
    with pytest.warns(UserWarning, match=r"several variables could be the cube \(data 4x5x6, "
                      r"data_raw 4x5x8\); took the largest, 'data_raw': name it with --key"):
        cube = hsad.open_cube(tmp_path / "two.mat")
    assert cube.sizes["band"] == 8
    assert hsad.open_cube(tmp_path / "two.mat", key="data").sizes["band"] == 6


def test_a_truth_named_so_is_taken_before_a_map_and_the_choice_is_said(tmp_path):
    """``anomaly_map`` (a detector's output) saved before ``Sandiego_gt`` was taken for the
    ground truth, in silence."""
    truth = np.zeros((4, 5))
    truth[1, 2] = 1
    output = np.zeros((4, 5))
    output[3, 3] = 1
    sio.savemat(tmp_path / "t.mat", {"data": CUBE, "anomaly_map": output, "Sandiego_gt": truth})
    with pytest.warns(UserWarning, match=r"several variables could be the ground truth "
                      r"\(anomaly_map, Sandiego_gt\); took 'Sandiego_gt'"):
        _, gt = load_mat(tmp_path / "t.mat")
    assert gt[1, 2] and gt.sum() == 1


@pytest.mark.parametrize(("other", "took"), [("Sandiego_gt", "mask"), ("gt", "gt")])
def test_a_listed_truth_name_beside_another_candidate_is_said(tmp_path, other, took):
    """A valid-area ``mask`` (as GatorSense's demos ship one) beside ``Sandiego_gt`` was
    taken for the ground truth in silence: AUC 0.54 with exit 0. The choice (the listed
    name, the first in the documented order) is now said, the other candidate named."""
    truth = np.zeros((4, 5))
    truth[1, 2] = 1
    valid = np.ones((4, 5))
    valid[:, 0] = 0
    sio.savemat(tmp_path / "t.mat", {"data": CUBE, "mask": valid, other: truth})
    with pytest.warns(UserWarning, match=rf"several variables could be the ground truth "
                      rf"\(mask, {other}\); took '{took}': name it with --truth-key"):
        load_mat(tmp_path / "t.mat")
    _, gt = load_mat(tmp_path / "t.mat", gt_key=other)
    assert gt[1, 2] and gt.sum() == 1


@pytest.mark.parametrize("compression", [False, True])
def test_a_complex_v5_cube_is_refused_when_opened(tmp_path, capsys, compression):
    """SciPy's ``whosmat`` gives a complex variable's class as ``single``: ``hsad info``
    printed ``dtype: float32`` with exit 0 and ``open_cube`` a float32 cube, until the
    first read raised. It is now listed as complex and refused up front, as in v7.3, for
    that reason (it said "no 3-D numeric array with more than 3 bands" of 6 bands)."""
    sio.savemat(tmp_path / "c.mat", {"data": CUBE.astype(np.complex64), "map": np.zeros((4, 5))},
                do_compression=compression)
    with pytest.raises(FileFormatError, match=r"'data' is a complex array: hsad reads real "
                                              r"cubes .*data \(4x5x6 complex\)"):
        hsad.open_cube(tmp_path / "c.mat")
    with pytest.raises(FileFormatError, match="'data' is 4x5x6 complex, not a 3-D numeric"):
        hsad.open_cube(tmp_path / "c.mat", key="data")
    err = one_error(["info", str(tmp_path / "c.mat")], capsys)
    assert "data (4x5x6 complex)" in err
    sio.savemat(tmp_path / "p.mat", {"data": CUBE.astype(np.complex64),
                                     "rgb": np.zeros((4, 5, 3))}, do_compression=compression)
    with pytest.raises(FileFormatError, match="'data' is a complex array"):  # beside a preview
        hsad.open_cube(tmp_path / "p.mat")
    sio.savemat(tmp_path / "t.mat", {"data": CUBE[..., :3].astype(np.complex64)},
                do_compression=compression)
    with pytest.raises(FileFormatError, match="'data' is a complex array"):  # 3 bands alone
        hsad.open_cube(tmp_path / "t.mat")
    sio.savemat(tmp_path / "r.mat", {"data": CUBE}, do_compression=compression)
    assert hsad.open_cube(tmp_path / "r.mat").dtype == np.float32  # a real one, as before


def test_a_struct_array_without_fields_is_no_corrupt_header(tmp_path):
    """It stores nothing for its 300 x 300 elements (MATLAB's ``repmat(struct(), 300,
    300)``): the dimensions check, for arrays that store each value, refused the file."""
    sio.savemat(tmp_path / "s.mat", {"data": CUBE}, do_compression=False)
    raw = (tmp_path / "s.mat").read_bytes()

    def tag(kind, body):
        return struct.pack("<II", kind, len(body)) + body + b"\0" * (-len(body) % 8)

    body = (tag(6, struct.pack("<II", 2, 0)) + tag(5, struct.pack("<ii", 300, 300))
            + tag(1, b"s") + struct.pack("<HH", 5, 4) + struct.pack("<i", 32) + tag(1, b""))
    (tmp_path / "s.mat").write_bytes(raw + tag(14, body))
    assert sio.loadmat(tmp_path / "s.mat")["s"].shape == (300, 300)
    assert hsad.open_cube(tmp_path / "s.mat").shape == (4, 5, 6)


def test_no_choice_is_said_where_the_keys_are_given_or_no_truth_is_read(tmp_path):
    import warnings

    raw = np.concatenate([CUBE, CUBE[:, :, :2]], axis=2)
    truth = np.zeros((4, 5))
    sio.savemat(tmp_path / "k.mat", {"data": CUBE, "data_raw": raw, "anomaly_map": truth,
                                     "Sandiego_gt": truth})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hsad.open_cube(tmp_path / "k.mat", key="data")  # the truth is not read
        load_mat(tmp_path / "k.mat", key="data", gt_key="Sandiego_gt")
        from hsad.io.matlab import read_mat_map

        read_mat_map(tmp_path / "k.mat", key="Sandiego_gt")


def test_a_v4_files_data_are_not_walked_as_v5_tags(tmp_path, monkeypatch):
    """The complex-flag walk read a 32 MB MAT v4 file's zeros as v5 tags, 8 bytes a step
    (``hsad info`` 0.0 s → 13.6 s). It stops at a v4 header."""
    from hsad.io import mat_v5

    sio.savemat(tmp_path / "v4.mat", {"data": np.zeros((400, 100))}, format="4")
    read = []

    class Counted:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def read(self, n=-1):
            data = self.fh.read(n)
            read.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(mat_v5, "open", lambda p, mode: Counted(open(p, mode)), raising=False)
    assert mat_v5.complex_names(str(tmp_path / "v4.mat")) == set()
    assert sum(read) <= 128
