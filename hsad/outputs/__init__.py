"""What a detection produces and how it is judged: polygons (:mod:`~hsad.outputs.polygons`),
metrics and 3D ROC (:mod:`~hsad.outputs.metrics`), plots (:mod:`~hsad.outputs.plots`),
evaluation of map files (:mod:`~hsad.outputs.evaluation`) and the benchmark runner
(:mod:`~hsad.outputs.benchmark`). Score maps themselves are GeoTIFFs (:mod:`hsad.io`).

Submodules are imported on use, so ``hsad.outputs.metrics`` does not load GDAL's vector
stack.
"""

from hsad.lazy_modules import lazy_package

#: the package's modules load on first use, and dir() lists them before they do
__getattr__, __dir__ = lazy_package(__name__)
