"""Area opening and closing (hsad.engine.morphology, hsad.engine.area_tree): hsad's tree
against DIPlib and scikit-image, edge cases."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from hsad.engine import morphology
from hsad.engine.morphology import area_filter

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


@pytest.mark.parametrize("polarity", ["opening", "closing"])
@pytest.mark.parametrize("area", [2, 3, 9, 25])
def test_the_tree_equals_skimage_and_diplib(area, polarity):
    for image in _images(area):
        tree = area_filter(image, area, polarity)
        assert tree.dtype == image.dtype and tree.shape == image.shape
        others = ["skimage"] + (["diplib"] if morphology._dip is not None else [])
        for backend in others:
            ref = area_filter(image, area, polarity, backend=backend)
            if image.dtype.kind == "f" and backend == "skimage":
                # skimage inverts floats for the closing: rounding
                np.testing.assert_allclose(tree, ref, rtol=0, atol=1e-12)
            else:
                np.testing.assert_array_equal(tree, ref, err_msg=backend)


@needs_diplib
def test_the_tree_equals_diplib_for_areas_beyond_the_image_and_thin_images():
    """scikit-image differs when the area exceeds the image (and fails on 1–2 rows);
    DIPlib and the tree keep the image's extreme level."""
    rng = np.random.default_rng(3)
    for shape in [(1, 30), (2, 17), (30, 1), (5, 5), (12, 9)]:
        image = (rng.random(shape) * 255).astype(np.uint8)
        for area in (2, 7, 40, 500):
            for polarity in ("opening", "closing"):
                np.testing.assert_array_equal(
                    area_filter(image, area, polarity),
                    area_filter(image, area, polarity, backend="diplib"))


def test_one_tree_gives_every_area_as_separate_calls_do():
    from hsad.engine.area_tree import area_filters

    for image in list(_images(21))[:12]:
        both = area_filters(image, (2, 9, 25, 121))
        for polarity, stack in both.items():
            for k, area in enumerate((2, 9, 25, 121)):
                np.testing.assert_array_equal(stack[k], area_filter(image, area, polarity))



@pytest.mark.parametrize("dtype, offset", [(np.uint8, 0), (np.int16, -300), (np.uint16, 0),
                                           (np.uint32, 2**31)])  # each type compiles once
def test_flooding_equals_union_find(dtype, offset, monkeypatch):
    """Integer images are filtered by flooding; the union-find tree (what floats and wide
    ranges take) gives the same images, on plateaus, thin images and areas beyond them."""
    from hsad.engine import area_tree

    rng = np.random.default_rng(int(abs(offset)) + 1)
    cases = [(rng.integers(1, 20), rng.integers(1, 20), rng.integers(1, 12))
             for _ in range(40)] + [(1, 1, 1), (1, 9, 3), (9, 1, 3), (4, 4, 1)]
    areas = (2, 3, 5, 9, 25, 500)
    for h, w, levels in cases:
        image = (rng.integers(0, levels, (h, w)) + offset).astype(dtype)
        flooded = area_tree.area_filters(image, areas)
        with monkeypatch.context() as m:
            m.setattr(area_tree, "FLOOD_LEVELS", 0)  # every image by union-find
            joined = area_tree.area_filters(image, areas)
        for polarity in ("opening", "closing"):
            assert flooded[polarity].dtype == dtype
            np.testing.assert_array_equal(flooded[polarity], joined[polarity])


def test_boolean_and_wide_range_images_are_filtered_too():
    from hsad.engine.area_tree import FLOOD_LEVELS, area_filters

    rng = np.random.default_rng(4)
    mask = rng.random((12, 13)) > 0.5
    opened = area_filters(mask, (4,))["opening"][0]
    assert opened.dtype == bool
    np.testing.assert_array_equal(opened, area_filter(mask.astype(np.uint8), 4) == 1)
    wide = np.round(gaussian_filter(rng.random((30, 30)), 2) * 1e6).astype(np.uint32)
    assert np.ptp(wide) >= FLOOD_LEVELS  # union-find
    for polarity in ("opening", "closing"):
        np.testing.assert_array_equal(area_filters(wide, (7,))[polarity][0],
                                      area_filter(wide, 7, polarity, backend="skimage"))

def test_the_tree_refuses_nan_and_bad_shapes():
    from hsad.engine.area_tree import area_filters

    with pytest.raises(ValueError, match="NaN"):
        area_filters(np.array([[0.0, np.nan]]), (2,))
    with pytest.raises(ValueError, match="2-D"):
        area_filters(np.zeros(5), (2,))
    assert area_filters(np.zeros((0, 4), np.uint8), (2, 3))["opening"].shape == (2, 0, 4)


@pytest.mark.parametrize("backend", ["tree", pytest.param("diplib", marks=needs_diplib),
                                     "skimage"])
def test_small_bright_and_dark_structures_are_removed(backend):
    image = np.full((9, 9), 5, np.uint8)
    image[1:3, 1:3] = 9  # bright, 4 pixels
    image[5:8, 5:8] = 9  # bright, 9 pixels
    image[6, 1] = 0  # dark, 1 pixel
    opened = area_filter(image, 5, "opening", backend=backend)
    assert (opened[1:3, 1:3] == 5).all() and (opened[5:8, 5:8] == 9).all()
    closed = area_filter(image, 2, "closing", backend=backend)
    assert closed[6, 1] == 5 and (closed[1:3, 1:3] == 9).all()


def test_single_row_images_work():
    row = np.array([[0, 5, 0, 0, 7, 7, 0]], np.uint8)  # scikit-image fails on 1–2 rows
    np.testing.assert_array_equal(area_filter(row, 2), [[0, 0, 0, 0, 7, 7, 0]])
    np.testing.assert_array_equal(area_filter(row.T, 3).ravel(), np.zeros(7))


def test_area_one_is_the_identity_and_a_copy():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = area_filter(image, 1)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_without_diplib_the_tree_still_filters(monkeypatch):
    image = np.round(gaussian_filter(np.random.default_rng(0).random((20, 20)), 1) * 50)
    image = image.astype(np.uint8)
    expected = area_filter(image, 6, "closing", backend="skimage")
    monkeypatch.setattr(morphology, "_dip", None)
    np.testing.assert_array_equal(area_filter(image, 6, "closing"), expected)
    np.testing.assert_array_equal(morphology.attribute_response(image, (6,))[0],
                                  _response_reference(image, 6))
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
    """The response from scikit-image's filters (the area must be below the image's size)."""
    f = image.astype(np.float64)
    return (np.abs(f - area_filter(image, area, "opening", backend="skimage")) +
            np.abs(area_filter(image, area, "closing", backend="skimage") - f))


def test_attribute_response_stacks_opening_and_closing_residues_per_area():
    images = [im for im in _images(3) if im.size > 25 and min(im.shape) > 2][:8]
    for image in images:
        out = morphology.attribute_response(image, (2, 9, 25))
        assert out.shape == (3,) + image.shape
        expected = {"f": np.float64, 1: np.uint16, 2: np.uint32}
        assert out.dtype == expected["f" if image.dtype.kind == "f" else image.dtype.itemsize]
        for k, area in enumerate((2, 9, 25)):
            np.testing.assert_allclose(out[k], _response_reference(image, area), rtol=0,
                                       atol=1e-12)


@pytest.mark.parametrize("fallback", [pytest.param("diplib", marks=needs_diplib), "skimage"])
def test_without_numba_the_responses_come_from_one_filter_per_area(monkeypatch, fallback):
    images = [im for im in _images(19) if im.size > 25 and min(im.shape) > 2][:6]
    want = [morphology.attribute_response(im, (2, 9, 25)) for im in images]
    monkeypatch.setattr(morphology, "default_backend", lambda: fallback)
    for image, expected in zip(images, want, strict=True):
        got = morphology.attribute_response(image, (2, 9, 25))
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_summed_responses_add_the_areas_exactly():
    for image in list(_images(6))[:8]:
        stacked = morphology.attribute_response(image, (2, 9, 25))
        summed = morphology.attribute_response(image, (2, 9, 25), summed=True)
        assert summed.shape == image.shape
        assert summed.dtype == (np.float64 if image.dtype.kind == "f" else np.uint32)
        np.testing.assert_allclose(summed, stacked.sum(axis=0), rtol=0, atol=1e-12)
    workers = morphology.attribute_responses([image, image[::-1]], (9, 25), summed=True,
                                             workers=2)
    np.testing.assert_array_equal(
        workers[1], morphology.attribute_response(image[::-1], (9, 25), summed=True))


def _threads_seen(monkeypatch) -> list[str]:
    """Record the name of the thread that filters each image."""
    real, names = morphology.attribute_response, []

    def recorded(image, areas, **kwargs):
        names.append(threading.current_thread().name)
        return real(image, areas, **kwargs)

    monkeypatch.setattr(morphology, "attribute_response", recorded)
    return names


def test_attribute_responses_in_threads_equal_those_run_here(monkeypatch):
    images = [im for im in _images(5) if im.size > 200][:4]
    here = morphology.attribute_responses(images, (3, 9), workers=0)
    names = _threads_seen(monkeypatch)
    threads = morphology.attribute_responses(images, (3, 9), workers=2)
    assert len(names) == 4 and all(n.startswith("hsad-area-filters") for n in names)
    for a, b in zip(here, threads, strict=True):
        np.testing.assert_array_equal(a, b)


def test_small_batches_and_daemonic_processes_filter_in_the_calling_thread(monkeypatch):
    names = _threads_seen(monkeypatch)
    morphology.attribute_responses(list(_images(9))[:4], (9, 25))  # below PARALLEL_PIXELS
    monkeypatch.setattr(morphology, "PARALLEL_PIXELS", 0)
    monkeypatch.setattr(morphology.multiprocessing, "current_process",
                        lambda: types.SimpleNamespace(daemon=True))  # a dask.distributed worker
    morphology.attribute_responses(list(_images(9))[:4], (9, 25))
    assert names == [threading.current_thread().name] * 8


def test_stop_filters_drops_the_jobs_not_yet_begun_and_later_batches_run(monkeypatch):
    images = [im for im in _images(13) if im.size > 200][:5]
    real, began, release = morphology.attribute_response, [], threading.Event()

    def held(image, areas, **kwargs):  # each thread's first job waits for the stop
        began.append(image)
        release.wait(60)
        return real(image, areas, **kwargs)

    monkeypatch.setattr(morphology, "attribute_response", held)
    monkeypatch.setattr(morphology, "_pool", None)  # a pool of exactly two threads
    monkeypatch.setattr(morphology, "_pool_size", 0)
    outcome = []
    caller = threading.Thread(target=lambda: outcome.append(_outcome(
        morphology.attribute_responses, images, (4,), workers=2)))
    caller.start()
    deadline = time.monotonic() + 60
    while len(began) < 2:
        assert time.monotonic() < deadline, "the filter threads never began"
        time.sleep(0.01)
    morphology.stop_filters()
    release.set()
    caller.join(60)
    assert isinstance(outcome[0], morphology.FiltersStopped)
    assert len(began) == 2  # the three jobs not yet begun were dropped
    monkeypatch.setattr(morphology, "attribute_response", real)
    again = morphology.attribute_responses(images, (4,), workers=2)
    for a, image in zip(again, images, strict=True):
        np.testing.assert_array_equal(a, morphology.attribute_response(image, (4,)))


def _outcome(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


def test_the_kernels_compile_where_numba_cannot_cache_them():
    """A read-only install with a read-only home: numba has nowhere to write its cache
    (here, a function without a source file); hsad's kernels compile without it."""
    from numba import njit as numba_njit

    from hsad.engine import area_tree

    space = {}
    exec("def plus_one(x):\n    return x + 1", space)
    with pytest.raises(RuntimeError, match="cannot cache"):
        numba_njit(cache=True)(space["plus_one"])
    assert area_tree.njit(cache=True, nogil=True)(space["plus_one"])(1) == 2
