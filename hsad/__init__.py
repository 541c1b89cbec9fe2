"""hsad: hyperspectral anomaly detection for remote sensing.

The public names are imported on first use (PEP 562), so ``hsad --help`` and other light
entry points do not load dask, xarray and GDAL.
"""

from __future__ import annotations

import importlib

from hsad.errors import HsadError

__version__ = "0.1.0"

#: Public name -> module that defines it.
_LAZY = {"select_bands": "hsad.bands", "make_cube": "hsad.cube", "map_like": "hsad.cube",
         "valid_mask": "hsad.cube", "open_cube": "hsad.io", "spatial_subset": "hsad.subset"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    from hsad.lazy_modules import submodule

    return submodule(__name__, name)  # hsad.detectors after a plain ``import hsad``


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def write_geotiff(map_, path, like=None, cog=False, nodata=None):
    """Write a single-band map as a tiled, compressed GeoTIFF (see hsad.io.geotiff_writer)."""
    from hsad.io.geotiff_writer import write_geotiff as _write

    return _write(map_, path, like=like, cog=cog, nodata=nodata)


__all__ = ["HsadError", "__version__", "make_cube", "map_like", "open_cube", "select_bands",
           "spatial_subset", "valid_mask", "write_geotiff"]
