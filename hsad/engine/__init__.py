"""The scene engine: tiles sized by a memory budget (:mod:`~hsad.engine.tiles`), the
schedulers that run them (:mod:`~hsad.engine.scheduler`), exact window operators
(:mod:`~hsad.engine.windows`), streamed global statistics (:mod:`~hsad.engine.stats`), the
checks of a scene's data (:mod:`~hsad.engine.data_checks`) and the covariance algebra
(:mod:`~hsad.engine.covariance`).

Detectors and the fusion stage build on these; the engine depends on neither.
"""

from __future__ import annotations

from hsad.engine.tiles import (
    batch_for,
    call_model,
    chunks_for,
    infer_batches,
    map_halo,
    materialise,
    min_memory,
    minmax,
    model_node,
    nan_median,
    open_tiled,
    read_map,
    tile_threads,
    write_map,
)


def __getattr__(name: str):
    """Modules of this package load on first use."""
    from hsad.lazy_modules import submodule

    return submodule(__name__, name)


__all__ = ["batch_for", "call_model", "chunks_for", "infer_batches", "map_halo", "materialise",
           "min_memory", "minmax", "model_node", "nan_median", "open_tiled", "read_map",
           "tile_threads", "write_map"]
