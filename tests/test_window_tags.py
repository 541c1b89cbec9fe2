"""Windows of a file (:mod:`hsad.io.window`): which windows a reader opens, the window tags
it trusts, and the array-like views that read a window as numpy indexes it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from hsad.cube.subset import Window
from hsad.errors import ParameterError
from hsad.io import open_cube
from hsad.io.window import ComputedView, WindowView

#: the tags `convert --srcwin 10 20 25 18` writes on a window of a 48 x 40 MAT scene
WINDOW_TAGS = {"hsad_window": "10 20 25 18", "hsad_window_of": "40 48",
               "hsad_frame": "0 0 40 48"}


def _tiff(path, rows, cols, tags=None):
    """A one-band float32 GeoTIFF without georeference, with ``tags``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", height=rows, width=cols, count=1,
                           dtype="float32") as dst:
            dst.write(np.arange(rows * cols, dtype=np.float32).reshape(1, rows, cols))
            dst.update_tags(**(tags or {}))
    return path


@pytest.mark.parametrize("window", [Window(0, 0, 8, 0), Window(0, 0, 0, 10),
                                    Window(0, 5, 8, 6), Window(1, 0, 8, 10)],
                         ids=["no rows", "no columns", "past the rows", "past the columns"])
def test_a_window_without_pixels_or_past_the_file_is_refused(tmp_path, window):
    """open_cube(window=...) refuses a window with no rows or columns, or past the file."""
    path = _tiff(tmp_path / "w.tif", 10, 8)
    assert open_cube(path, window=Window(0, 0, 8, 10)).shape[:2] == (10, 8)
    with pytest.raises(ParameterError, match=f"window -srcwin {window.srcwin()} is not "
                                             "inside the 8 x 10 pixel scene"):
        open_cube(path, window=window)


@pytest.mark.parametrize("changed", [
    {"hsad_frame": "0 0 40 30"}, {"hsad_frame": "0 0 40 60"},
    {"hsad_window": "10 40 25 18", "hsad_frame": None}],
    ids=["frame does not hold the window", "frame past the scene", "window past the rows"])
def test_stale_window_tags_are_not_trusted(tmp_path, changed):
    """A window's tags are dropped when its frame or window does not fit the scene."""
    good = open_cube(_tiff(tmp_path / "good.tif", 18, 25, WINDOW_TAGS))
    assert good.attrs["hsad_window"] == (20, 10, 48, 40)
    assert good.attrs["hsad_frame"] == (0, 0, 48, 40)
    tags = {k: v for k, v in {**WINDOW_TAGS, **changed}.items() if v is not None}
    stale = open_cube(_tiff(tmp_path / "stale.tif", 18, 25, tags))
    assert "hsad_window" not in stale.attrs and "hsad_frame" not in stale.attrs


def test_a_window_view_reverses_rows_from_the_first_row():
    """``WindowView(...)[::-1]`` of a window at row 0 gives its rows reversed, as numpy."""
    base = np.arange(10 * 12 * 2).reshape(10, 12, 2)
    np.testing.assert_array_equal(WindowView(base, 0, 3, 6, 5)[::-1], base[0:6, 3:8][::-1])


class _Computed(ComputedView):
    """A computed view whose values are those of an array."""

    def __init__(self, a):
        self.a, self.shape, self.dtype = a, a.shape, a.dtype

    def _window(self, rows, cols, bands):
        return self.a[rows, cols][:, :, bands]


def test_a_computed_view_indexes_a_row_and_a_list_of_columns_as_numpy():
    """``ComputedView[3, [1, 4]]`` (an integer then a list) drops the row axis as numpy."""
    base = np.arange(10 * 12 * 2).reshape(10, 12, 2)
    view = _Computed(base)
    for key in [(3, [1, 4]), ([2, 5], 7), (3, [1, 4], 0), (slice(2, 4), [0, 3])]:
        np.testing.assert_array_equal(view[key], base[key])
