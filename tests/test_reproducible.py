"""Same input, settings and machine → bit-identical maps, whatever dask's thread count and
timing (rx, lrx, crd), and the BLAS thread setting that makes it so."""

from __future__ import annotations

import threading

import dask
import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

from hsad import detectors
from hsad.cube import make_cube
from hsad.engine.windows import single_threaded_linalg

#: OpenBLAS's Cholesky (n ≳ 128) and LU (n ≳ 100) round differently on 1 and 2 threads
#: (measured, OpenBLAS 0.3.31): LRX's bordered matrices are (B + 1)² = 141², CRD's Gram
#: matrices 112² (rings of 11² − 3² pixels), and rings of 112 pixels for 140 bands leave
#: LRX's systems ill-conditioned, so any change of BLAS threading shows up in the maps
SETTINGS = {"rx": {}, "lrx": dict(inner=3, outer=11), "crd": dict(inner=3, outer=11)}


@pytest.fixture(scope="module")
def cube():
    rng = np.random.default_rng(4)
    rows, cols, bands = 36, 32, 140
    mix = rng.normal(size=(8, bands))  # 8 sources: near-singular local covariances
    x = rng.normal(size=(rows, cols, 8)) @ mix + 0.01 * rng.normal(size=(rows, cols, bands))
    x[10, 12] += 3 * rng.normal(size=bands)
    return make_cube((1000 + 50 * x).astype(np.float32)).chunk({"y": 9, "x": 16})


@pytest.fixture
def two_blas_threads():
    """BLAS on 2 threads around the test (even on a 1-core machine or with
    OPENBLAS_NUM_THREADS=1), so that a guard that fails to hold one thread shows."""
    with threadpool_limits(limits=2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        yield


@pytest.mark.parametrize("name", list(SETTINGS))
def test_maps_are_bit_identical_across_runs_and_thread_counts(name, cube, two_blas_threads):
    maps = []
    for workers in (1, 2, 4, 2, 2):
        with dask.config.set(scheduler="threads", num_workers=workers):
            maps.append(detectors.get(name, **SETTINGS[name]).fit_score(cube).values)
    assert np.isfinite(maps[0]).all()
    for other in maps[1:]:
        np.testing.assert_array_equal(other, maps[0])


def _blas_threads() -> list[int]:
    return [lib.num_threads for lib in ThreadpoolController().select(user_api="blas")
            .lib_controllers]


def test_single_threaded_linalg_holds_while_any_thread_is_inside(two_blas_threads):
    # OpenBLAS's thread count is process-wide: before it was reference-counted, the first
    # worker out restored it while another was still inside, whose solves then went
    # threaded (and rounded differently) depending on timing
    before = _blas_threads()
    inside, ready, go = [], threading.Barrier(2), threading.Event()

    def worker(first: bool):
        with single_threaded_linalg():
            ready.wait()
            if first:
                return  # leaves while the other is still inside
            go.wait()
            inside.append(_blas_threads())

    threads = [threading.Thread(target=worker, args=(i == 0,)) for i in range(2)]
    for t in threads:
        t.start()
    threads[0].join()
    go.set()
    threads[1].join()
    assert before != [1] * len(before)  # the test would show nothing otherwise
    assert inside == [[1] * len(before)]
    assert _blas_threads() == before


def test_neural_fits_in_two_threads_give_the_models_of_fits_one_at_a_time():
    """torch's generators are global: two fits in threads (a threaded sweep) once drew from
    each other's, and the models depended on what else ran."""
    from concurrent.futures import ThreadPoolExecutor

    from hsad.synthetic import make_scene

    scenes = [make_scene(rows=24, cols=24, bands=12, seed=s).cube.load() for s in (0, 1)]

    def fit_score(cube):
        det = detectors.get("vae", epochs=3, hidden=16, sample_size=400, progress=False,
                            device="cpu", output="score")
        return det.fit_score(cube).values

    alone = [fit_score(c) for c in scenes]
    for _ in range(2):
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(fit_score, scenes))
        for a, b in zip(alone, together, strict=True):
            np.testing.assert_array_equal(a, b)
