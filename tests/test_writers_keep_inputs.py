"""The Python writers never replace the file the data they write was read from."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import hsad
from hsad.cube import make_cube
from hsad.errors import OutputError
from hsad.io.envi_writer import write_envi
from hsad.io.geotiff_writer import write_geotiff_cube, write_mask
from hsad.io.mat_writer import write_mat


def _digest(*paths) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.fixture
def scene(tmp_path):
    """An ENVI scene on disk, opened lazily, and its RX map."""
    rng = np.random.default_rng(0)
    data = rng.normal(100, 5, (12, 10, 6)).astype(np.float32)
    write_envi(make_cube(data, wavelength=np.linspace(450, 900, 6)), tmp_path / "scene.img")
    cube = hsad.open_cube(tmp_path / "scene.hdr")
    return cube, hsad.detectors.get("rx").fit_score(cube)


WRITES = {
    "map on the data file": lambda c, s, d: hsad.write_geotiff(s, d / "scene.img", like=c),
    "map on the header, no like": lambda c, s, d: hsad.write_geotiff(s, d / "scene.hdr"),
    "mask on the data file": lambda c, s, d: write_mask(s > 0, d / "scene.img", like=c),
    "cube as GeoTIFF": lambda c, s, d: write_geotiff_cube(c, d / "scene.img"),
    "cube as ENVI, by data file": lambda c, s, d: write_envi(c[:, :, :3], d / "scene.img"),
    "cube as ENVI, by header": lambda c, s, d: write_envi(c[:, :, :3], d / "scene.hdr"),
    "cube as MAT": lambda c, s, d: write_mat(c, d / "scene.img"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_writing_over_the_scene_read_is_refused(scene, tmp_path, write):
    cube, scores = scene
    files = [tmp_path / "scene.img", tmp_path / "scene.hdr"]
    before = _digest(*files)
    with pytest.raises(OutputError, match="the data written was read from") as info:
        write(cube, scores, tmp_path)
    assert "scene." in str(info.value)
    assert _digest(*files) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.hdr", "scene.img"]
    assert hsad.open_cube(tmp_path / "scene.hdr").shape == (12, 10, 6)


def test_a_map_of_a_mat_scene_is_not_written_over_it(tmp_path):
    rng = np.random.default_rng(1)
    write_mat(make_cube(rng.normal(size=(8, 9, 4)).astype(np.float32)), tmp_path / "s.mat")
    cube = hsad.open_cube(tmp_path / "s.mat")
    scores = hsad.detectors.get("rx").fit_score(cube)
    with pytest.raises(OutputError, match="is the file the data written was read from"):
        write_mat(cube[:, :, :2], tmp_path / "s.mat")
    with pytest.raises(OutputError, match="read from"):
        hsad.write_geotiff(scores, tmp_path / "s.mat")
    assert hsad.open_cube(tmp_path / "s.mat").shape == (8, 9, 4)


def test_another_name_of_the_scene_is_refused(scene, tmp_path):
    cube, scores = scene
    (tmp_path / "link.tif").symlink_to(tmp_path / "scene.img")
    with pytest.raises(OutputError, match="would overwrite .*scene.img"):
        hsad.write_geotiff(scores, tmp_path / "link.tif", like=cube)
    assert hsad.open_cube(tmp_path / "scene.hdr").shape == (12, 10, 6)


def test_a_sidecar_input_removed_with_the_output_is_refused(tmp_path):
    """GDAL's stale ``.ovr`` beside a replaced GeoTIFF is removed: here it is the input."""
    rng = np.random.default_rng(2)
    write_envi(make_cube(rng.normal(size=(8, 8, 3)).astype(np.float32)),
               tmp_path / "x.tif.ovr")
    cube = hsad.open_cube(tmp_path / "x.tif.ovr")
    scores = hsad.detectors.get("rx").fit_score(cube)
    with pytest.raises(OutputError, match="removes x.tif.ovr beside it"):
        hsad.write_geotiff(scores, tmp_path / "x.tif", like=cube)
    assert not (tmp_path / "x.tif").exists()


def test_other_outputs_and_unread_data_are_written(scene, tmp_path):
    cube, scores = scene
    assert hsad.write_geotiff(scores, tmp_path / "scores.tif", like=cube).exists()
    assert write_envi(cube[:, :, :2], tmp_path / "two.img").exists()
    fresh = make_cube(np.ones((3, 4, 2), np.float32))  # read from no file
    assert write_mat(fresh, tmp_path / "fresh.mat").exists()


def test_a_mosaics_scenes_are_inputs_too(tmp_path):
    from hsad.cube.mosaic import training_mosaic

    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        write_envi(make_cube(rng.normal(size=(6, 5, 4)).astype(np.float32)),
                   tmp_path / f"{name}.img")
    mosaic, _ = training_mosaic([hsad.open_cube(tmp_path / f"{n}.hdr") for n in "ab"])
    scores = hsad.detectors.get("rx").fit_score(mosaic)
    with pytest.raises(OutputError, match="read from"):
        hsad.write_geotiff(scores, tmp_path / "b.img")
    assert hsad.open_cube(tmp_path / "b.hdr").shape == (6, 5, 4)


def test_a_relative_name_after_a_change_of_folder_refuses_no_other_file(tmp_path,
                                                                       monkeypatch):
    """Resolved from the folder of the moment, a scene opened as ``scene.hdr`` in one
    folder refused ``scene.img`` written in another after ``os.chdir``."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    write_envi(make_cube(np.ones((4, 4, 3), np.float32)), tmp_path / "in" / "scene.img")
    monkeypatch.chdir(tmp_path / "in")
    cube = hsad.open_cube("scene.hdr").load()
    monkeypatch.chdir(tmp_path / "out")
    assert write_envi(cube, "scene.img").exists()


def test_a_python_writer_replaces_an_earlier_output_and_makes_its_folder(scene, tmp_path):
    """As api.md says: from Python an existing output (not an input) is replaced whole and a
    missing folder is made; only the command line asks for --overwrite."""
    cube, scores = scene
    path = tmp_path / "new" / "deeper" / "map.tif"
    hsad.write_geotiff(scores, path)
    hsad.write_geotiff(scores * 2, path)
    np.testing.assert_array_equal(hsad.open_cube(path).values[:, :, 0],
                                  (scores * 2).values)
    write_envi(cube, tmp_path / "new" / "copy.img")
    write_envi(cube, tmp_path / "new" / "copy.img")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [
        "copy.hdr", "copy.img", "deeper"]
