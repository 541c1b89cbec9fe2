"""The scene engine: tiles sized by a memory budget (:mod:`~hsad.engine.tiles`), the
schedulers that run them (:mod:`~hsad.engine.scheduler`), maps kept between passes
(:mod:`~hsad.engine.spill`), torch inference over tiles (:mod:`~hsad.engine.inference`),
exact window operators (:mod:`~hsad.engine.windows`), streamed global statistics
(:mod:`~hsad.engine.stats`), the checks of a scene's data (:mod:`~hsad.engine.data_checks`),
the covariance algebra (:mod:`~hsad.engine.covariance`), the area opening and closing
(:mod:`~hsad.engine.morphology` on :mod:`~hsad.engine.area_tree`) and the thresholds of a
score map (:mod:`~hsad.engine.thresholds`).

Detectors and the fusion stage build on these; the engine depends on neither. The names
below and the modules load on first use, so that a light module (the thresholds, the area
filters) does not load dask with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hsad.lazy_modules import lazy_package

if TYPE_CHECKING:  # what type checkers and IDEs see of the names imported on first use
    from hsad.engine.inference import batch_for, call_model, infer_batches, model_node, tile_threads
    from hsad.engine.spill import materialise
    from hsad.engine.tiles import (
        chunks_for,
        map_halo,
        min_memory,
        minmax,
        nan_median,
        open_tiled,
        read_map,
        write_map,
    )

#: public name -> the module that defines it
_LAZY = {**{n: "hsad.engine.tiles" for n in (
    "chunks_for", "map_halo", "min_memory", "minmax", "nan_median", "open_tiled", "read_map",
    "write_map")},
    **{n: "hsad.engine.inference" for n in (
        "batch_for", "call_model", "infer_batches", "model_node", "tile_threads")},
    "materialise": "hsad.engine.spill"}

#: the names above and the package's modules load on first use; dir() lists them before
__getattr__, __dir__ = lazy_package(__name__, _LAZY)


__all__ = ["batch_for", "call_model", "chunks_for", "infer_batches", "map_halo", "materialise",
           "min_memory", "minmax", "model_node", "nan_median", "open_tiled", "read_map",
           "tile_threads", "write_map"]
