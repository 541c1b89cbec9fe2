"""hsad.engine.blas: SciPy's Cython BLAS called without the GIL."""

import sys
import threading

import numpy as np
import pytest
from scipy.linalg import blas

from hsad.engine.blas import add_upper_gram, upper_to_symmetric, upper_trmm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upper_trmm_equals_scipy_blas(dtype):
    rng = np.random.default_rng(0)
    tri = np.asfortranarray(np.triu(rng.normal(size=(37, 37))).astype(dtype))
    cols = np.asfortranarray(rng.normal(size=(37, 501)).astype(dtype))
    want = (blas.strmm if dtype == np.float32 else blas.dtrmm)(1.0, tri, cols, side=0, lower=0)
    got = upper_trmm(tri, cols.copy(order="F"))
    np.testing.assert_array_equal(got, want)
    exact = tri.astype(np.float64) @ cols.astype(np.float64)
    np.testing.assert_allclose(got, exact, rtol=0, atol=50 * np.finfo(dtype).eps * 37 * 4)


def test_upper_trmm_works_in_place_on_a_pixel_array_transpose():
    rng = np.random.default_rng(1)
    pixels = rng.normal(size=(300, 8)).astype(np.float32)  # (n, B), C order
    tri = np.asfortranarray(np.triu(rng.normal(size=(8, 8))).astype(np.float32))
    want = pixels.astype(np.float64) @ tri.T.astype(np.float64)
    out = upper_trmm(tri, pixels.T)
    assert out.base is pixels or np.shares_memory(out, pixels)
    np.testing.assert_allclose(pixels, want, rtol=1e-5, atol=1e-5)


def test_upper_trmm_refuses_mixed_dtypes_and_c_order():
    tri = np.asfortranarray(np.eye(3, dtype=np.float32))
    with pytest.raises(TypeError, match="one dtype"):
        upper_trmm(tri, np.asfortranarray(np.ones((3, 4))))
    with pytest.raises(ValueError, match="Fortran"):
        upper_trmm(tri, np.ones((3, 4), dtype=np.float32))  # C order (3, 4)


def test_add_upper_gram_accumulates_the_upper_triangle_in_place():
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(500, 9)), rng.normal(size=(300, 9))  # (n, B) pixels
    total = np.asfortranarray(np.tril(np.full((9, 9), 7.0), -1))  # lower triangle: kept
    out = add_upper_gram(total, first.T)
    assert out is total
    add_upper_gram(total, second.T)
    exact = first.T @ first + second.T @ second
    np.testing.assert_allclose(np.triu(total), np.triu(exact), rtol=1e-13, atol=1e-12)
    assert (np.tril(total, -1) == np.tril(np.full((9, 9), 7.0), -1)).all()
    np.testing.assert_allclose(upper_to_symmetric(total), exact, rtol=1e-13, atol=1e-12)
    add_upper_gram(total, np.empty((9, 0), order="F"))  # no pixels: unchanged
    np.testing.assert_allclose(np.triu(total), np.triu(exact), rtol=1e-13, atol=1e-12)


def test_add_upper_gram_refuses_float32_c_order_and_a_read_only_total():
    total = np.zeros((3, 3), order="F")
    with pytest.raises(TypeError, match="float64"):
        add_upper_gram(total, np.ones((3, 4), np.float32, order="F"))
    with pytest.raises(ValueError, match="Fortran"):
        add_upper_gram(total, np.ones((3, 4)))  # C order (3, 4)
    with pytest.raises(ValueError, match="Fortran"):
        add_upper_gram(np.zeros((3, 3)), np.ones((4, 3)).T)  # a C-ordered total
    total.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        add_upper_gram(total, np.ones((4, 3)).T)


def _products_without_the_gil():
    rng = np.random.default_rng(2)
    tri = np.asfortranarray(np.triu(rng.random((200, 200), dtype=np.float32)))
    cols = np.asfortranarray(rng.random((200, 250_000), dtype=np.float32))
    total, pixels = np.zeros((200, 200), order="F"), rng.random((125_000, 200))
    return {"trmm": lambda: upper_trmm(tri, cols),
            "syrk": lambda: add_upper_gram(total, pixels.T)}


@pytest.mark.parametrize("routine", ["trmm", "syrk"])
def test_blas_routines_release_the_gil(routine):
    """Another Python thread keeps running while the product runs (SciPy's wrapper would
    block it for the whole call)."""
    call = _products_without_the_gil()[routine]
    inside, done, counts = threading.Event(), threading.Event(), []

    def product():
        inside.set()
        call()
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)  # the product's thread keeps the GIL unless BLAS drops it
    try:
        worker = threading.Thread(target=product)
        worker.start()
        inside.wait()
        n = 0
        while not done.is_set():
            n += 1
        counts.append(n)
        worker.join()
    finally:
        sys.setswitchinterval(old)
    assert counts[0] > 10_000


def _per_block_products():
    """The per-block products that dask runs in its worker threads: (module, call)."""
    from hsad.cube import band_binning as bands
    from hsad.engine import windows

    rng = np.random.default_rng(0)
    block = rng.normal(size=(6, 5, 12)).astype(np.float32)
    mean, basis = rng.normal(size=12), rng.normal(size=(12, 3))
    weights = np.eye(12)[:, :4]
    return [
        (windows, lambda: windows.project(block, mean, basis), (block - mean) @ basis),
        (bands, lambda: bands._binned(block, None, weights), block[:, :, :4]),
    ]


@pytest.mark.parametrize("index", range(2))
def test_per_block_products_run_blas_on_one_thread(monkeypatch, index):
    """dask runs one block per core: a threaded BLAS inside a block oversubscribes the
    CPUs, and its idle threads spin beside the other blocks' work (16 % of the samples of
    a HADGAN sweep, docs/performance.md benchmark 11)."""
    import contextlib

    module, call, expected = _per_block_products()[index]
    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(True)
        yield

    monkeypatch.setattr(module, "single_threaded_linalg", recording)
    np.testing.assert_allclose(call(), expected, rtol=1e-5, atol=1e-5)
    assert entered == [True]
