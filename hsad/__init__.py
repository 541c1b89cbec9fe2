"""hsad: hyperspectral anomaly detection for remote sensing.

The public names are imported on first use (PEP 562), so ``hsad --help`` and other light
entry points do not load dask, xarray and GDAL.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hsad import _fork_safety, _moved_modules
from hsad.errors import HsadError

if TYPE_CHECKING:  # what type checkers and IDEs see of the names imported on first use
    from hsad import cube as cube  # the subpackages, reached through a plain ``import hsad``
    from hsad import datasets as datasets
    from hsad import detectors as detectors
    from hsad import fusion as fusion
    from hsad import io as io
    from hsad import outputs as outputs
    from hsad import pipeline as pipeline
    from hsad import synthetic as synthetic
    from hsad.cube import make_cube, map_like, valid_mask
    from hsad.cube.bands import select_bands
    from hsad.cube.subset import spatial_subset
    from hsad.io import open_cube

__version__ = "0.3.16"

_moved_modules.install()  # the module paths of hsad 0.2 (hsad.subset, ...)
_fork_safety.install()  # a forked child makes its own thread pools

#: Public name -> module that defines it.
_LAZY = {"select_bands": "hsad.cube.bands", "make_cube": "hsad.cube", "map_like": "hsad.cube",
         "valid_mask": "hsad.cube", "open_cube": "hsad.io", "spatial_subset": "hsad.cube.subset"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    from hsad.lazy_modules import submodule

    return submodule(__name__, name)  # hsad.detectors after a plain ``import hsad``


def __dir__() -> list[str]:
    """The public names, and the modules and subpackages imported on first use."""
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    own = {n for n in globals() if n.startswith("__") or not n.startswith("_")}
    return sorted((own - {"annotations", "importlib", "os", "Path", "TYPE_CHECKING", "Any"})
                  | set(_LAZY) | modules)


def write_geotiff(map_, path: str | os.PathLike, like=None, cog: bool = False,
                  nodata: float | None = None, tags: dict | None = None,
                  description: str | None = None) -> Path:
    """Write a ``(y, x)`` map as a float32, tiled, compressed GeoTIFF (or a COG with
    ``cog=True``) and return its path: :func:`hsad.io.geotiff_writer.write_geotiff`."""
    from hsad.io.geotiff_writer import write_geotiff as _write

    return _write(map_, path, like=like, cog=cog, nodata=nodata, tags=tags,
                  description=description)


__all__ = ["HsadError", "__version__", "make_cube", "map_like", "open_cube", "select_bands",
           "spatial_subset", "valid_mask", "write_geotiff"]
