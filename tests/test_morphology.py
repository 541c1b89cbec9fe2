"""Area opening and closing (hsad.morphology): DIPlib against scikit-image, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from hsad import morphology
from hsad.morphology import area_filter

needs_diplib = pytest.mark.skipif(morphology._dip is None, reason="diplib is not installed")


def _images(seed: int):
    """Noise, smooth fields with flat zones, few-level images, uint16 and float."""
    rng = np.random.default_rng(seed)
    for i in range(24):
        h, w = rng.integers(3, 48, 2)
        img = rng.normal(size=(h, w))
        if i % 2:
            img = gaussian_filter(img, 1.5)
        s = (img - img.min()) / (np.ptp(img) or 1.0)
        yield {0: np.round(s * 255).astype(np.uint8), 1: np.round(s * 3).astype(np.uint8),
               2: np.round(s * 1000).astype(np.uint16), 3: s}[i % 4]


@needs_diplib
@pytest.mark.parametrize("polarity", ["opening", "closing"])
@pytest.mark.parametrize("area", [2, 3, 9, 25])
def test_diplib_equals_skimage(area, polarity):
    for image in _images(area):
        fast = area_filter(image, area, polarity, backend="diplib")
        ref = area_filter(image, area, polarity, backend="skimage")
        assert fast.dtype == image.dtype and fast.shape == image.shape
        if image.dtype.kind == "f":  # skimage inverts floats for the closing: rounding
            np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("backend", [pytest.param("diplib", marks=needs_diplib), "skimage"])
def test_small_bright_and_dark_structures_are_removed(backend):
    image = np.full((9, 9), 5, np.uint8)
    image[1:3, 1:3] = 9  # bright, 4 pixels
    image[5:8, 5:8] = 9  # bright, 9 pixels
    image[6, 1] = 0  # dark, 1 pixel
    opened = area_filter(image, 5, "opening", backend=backend)
    assert (opened[1:3, 1:3] == 5).all() and (opened[5:8, 5:8] == 9).all()
    closed = area_filter(image, 2, "closing", backend=backend)
    assert closed[6, 1] == 5 and (closed[1:3, 1:3] == 9).all()


@needs_diplib
def test_single_row_images_work_with_diplib():
    row = np.array([[0, 5, 0, 0, 7, 7, 0]], np.uint8)  # scikit-image fails on 1–2 rows
    np.testing.assert_array_equal(area_filter(row, 2), [[0, 0, 0, 0, 7, 7, 0]])
    np.testing.assert_array_equal(area_filter(row.T, 3).ravel(), np.zeros(7))


def test_area_one_is_the_identity_and_a_copy():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = area_filter(image, 1)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_fallback_without_diplib(monkeypatch):
    image = np.round(gaussian_filter(np.random.default_rng(0).random((20, 20)), 1) * 50)
    image = image.astype(np.uint8)
    expected = area_filter(image, 6, "closing", backend="skimage")
    monkeypatch.setattr(morphology, "_dip", None)
    np.testing.assert_array_equal(area_filter(image, 6, "closing"), expected)
    with pytest.raises(ImportError, match="diplib"):
        area_filter(image, 6, backend="diplib")


@pytest.mark.parametrize("kwargs, message", [
    ({"image": np.zeros((2, 2, 2)), "area": 3}, "2-D"),
    ({"image": np.zeros((4, 4)), "area": 3, "polarity": "top-hat"}, "polarity"),
    ({"image": np.zeros((4, 4)), "area": 3, "backend": "opencv"}, "backend"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        area_filter(**kwargs)


def _response_reference(image, area):
    f = image.astype(np.float64)
    return (np.abs(f - area_filter(image, area, "opening")) +
            np.abs(area_filter(image, area, "closing") - f))


def test_attribute_response_stacks_opening_and_closing_residues_per_area():
    images = list(_images(3))[:8]
    for image in images:
        out = morphology.attribute_response(image, (2, 9, 25))
        assert out.shape == (3,) + image.shape
        expected = {"f": np.float64, 1: np.uint16, 2: np.uint32}
        assert out.dtype == expected["f" if image.dtype.kind == "f" else image.dtype.itemsize]
        for k, area in enumerate((2, 9, 25)):
            np.testing.assert_array_equal(out[k], _response_reference(image, area))


def test_margins_leave_a_halo_out_of_an_areas_filters_and_keep_the_rest_exact():
    """A 40-pixel halo left out of area 9's filters (which need 8 pixels of context) leaves
    its response on the inner pixels unchanged; the left-out border responds 0."""
    rng = np.random.default_rng(4)
    image = (rng.random((120, 100)) * 255).astype(np.uint8)
    margins = [(40, 0, 40, 30), (0, 0, 0, 0)]
    out = morphology.attribute_response(image, (9, 25), margins)
    full = morphology.attribute_response(image, (9, 25))
    np.testing.assert_array_equal(out[1], full[1])
    inner = (slice(40 + 8, 120), slice(40 + 8, 100 - 30 - 8))
    np.testing.assert_array_equal(out[0][inner], full[0][inner])
    assert not out[0][:40].any() and not out[0][:, :40].any() and not out[0][:, 70:].any()
    assert (out[0][:, 40:70] != full[0][:, 40:70]).any()  # the cut image differs near its edge
    with pytest.raises(ValueError, match="margins"):
        morphology.attribute_response(image, (9,), [(60, 60, 0, 0)])
    with pytest.raises(ValueError, match="2 margins for 1 areas"):
        morphology.attribute_response(image, (9,), margins)
    workers = morphology.attribute_responses([image, image[::-1]], (9, 25), margins=margins,
                                             processes=2)
    np.testing.assert_array_equal(workers[0], out)


def test_attribute_responses_in_worker_processes_equal_those_run_here():
    images = [im for im in _images(5) if im.size > 200][:4]
    here = morphology.attribute_responses(images, (3, 9), processes=0)
    workers = morphology.attribute_responses(images, (3, 9), processes=2)
    assert len(workers) == len(images)
    for a, b in zip(here, workers, strict=True):
        np.testing.assert_array_equal(a, b)


def test_attribute_responses_run_here_when_worker_processes_fail(monkeypatch):
    def broken(size):
        raise OSError("no processes here")

    monkeypatch.setattr(morphology, "_executor", broken)
    images = list(_images(7))[:3]
    with pytest.warns(RuntimeWarning, match="worker processes failed"):
        out = morphology.attribute_responses(images, (4,), processes=2)
    for a, image in zip(out, images, strict=True):
        np.testing.assert_array_equal(a[0], _response_reference(image, 4))


def test_small_images_are_filtered_in_this_process(monkeypatch):
    monkeypatch.setattr(morphology, "_executor", lambda size: pytest.fail("pool used"))
    morphology.attribute_responses(list(_images(9))[:4], (9, 25))


@pytest.mark.parametrize("setting, allowed", [("0", False), ("off", False), ("1", True)])
def test_worker_processes_follow_the_environment_setting(monkeypatch, setting, allowed):
    monkeypatch.setenv(morphology.WORKER_PROCESSES_ENV, setting)
    assert morphology.workers_allowed() is allowed


def test_a_plain_script_keeps_its_filters_in_its_own_process(monkeypatch):
    """A script without a ``__main__`` guard would run again in every spawned worker."""
    import types

    script = types.ModuleType("__main__")
    script.__file__ = "/home/user/analysis.py"
    script.__spec__ = None
    monkeypatch.delenv(morphology.WORKER_PROCESSES_ENV, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "__main__", script)
    assert not morphology.workers_allowed()
    monkeypatch.setattr(morphology, "PARALLEL_PIXELS", 0)
    monkeypatch.setattr(morphology, "_executor", lambda size: pytest.fail("pool used"))
    morphology.attribute_responses(list(_images(11))[:2], (4,))


def test_an_interrupt_stops_the_worker_processes(monkeypatch):
    class Interrupted:
        def map(self, *args):
            raise KeyboardInterrupt

    stopped = []
    monkeypatch.setattr(morphology, "_executor", lambda size: Interrupted())
    monkeypatch.setattr(morphology, "_discard_pool", lambda terminate=False: stopped.append(
        terminate))
    with pytest.raises(KeyboardInterrupt):
        morphology.attribute_responses(list(_images(13))[:2], (4,), processes=2)
    assert stopped == [True]


def test_stopped_workers_fail_their_filters_instead_of_falling_back(monkeypatch):
    class Broken:
        hsad_stopped = True  # what stop_workers marks

        def map(self, *args):
            raise morphology.BrokenProcessPool("terminated")

    monkeypatch.setattr(morphology, "_executor", lambda size: Broken())
    with pytest.raises(morphology.BrokenProcessPool):
        morphology.attribute_responses(list(_images(15))[:2], (4,), processes=2)


def test_after_stop_workers_a_new_pool_serves_later_filters():
    images = [im for im in _images(17) if im.size > 200][:2]
    here = morphology.attribute_responses(images, (3,), processes=0)
    morphology.attribute_responses(images, (3,), processes=2)
    morphology.stop_workers()
    again = morphology.attribute_responses(images, (3,), processes=2)
    for a, b in zip(here, again, strict=True):
        np.testing.assert_array_equal(a, b)
