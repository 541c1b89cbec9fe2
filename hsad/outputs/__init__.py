"""What a detection produces and how it is judged: polygons (:mod:`~hsad.outputs.polygons`),
metrics and 3D ROC (:mod:`~hsad.outputs.metrics`), plots (:mod:`~hsad.outputs.plots`),
evaluation of map files (:mod:`~hsad.outputs.evaluation`) and the benchmark runner
(:mod:`~hsad.outputs.benchmark`). Score maps themselves are GeoTIFFs (:mod:`hsad.io`).

Submodules are imported on use, so ``hsad.outputs.metrics`` does not load GDAL's vector
stack.
"""


def __getattr__(name: str):
    """Modules of this package load on first use."""
    from hsad.lazy_modules import submodule

    return submodule(__name__, name)


def __dir__() -> list[str]:
    """The package's names, and its modules still to load."""
    from hsad.lazy_modules import listing

    return listing(__name__)
