"""hsad: hyperspectral anomaly detection for remote sensing."""

from __future__ import annotations

__version__ = "0.1.0"

from hsad.bands import select_bands  # noqa: E402
from hsad.cube import make_cube, map_like, valid_mask  # noqa: E402
from hsad.errors import HsadError  # noqa: E402
from hsad.io import open_cube  # noqa: E402


def write_geotiff(map_, path, like=None, cog=False, nodata=None):
    """Write a single-band map as a tiled, compressed GeoTIFF (see hsad.io.geotiff)."""
    from hsad.io.geotiff import write_geotiff as _write

    return _write(map_, path, like=like, cog=cog, nodata=nodata)


__all__ = ["HsadError", "__version__", "make_cube", "map_like", "open_cube", "select_bands",
           "valid_mask", "write_geotiff"]
