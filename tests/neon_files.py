"""NEON AOP reflectance files as NEON writes them (``<SITE>/Reflectance/…``), small."""

from __future__ import annotations

import h5py
import numpy as np

#: NEON's map info: UTM zone 11 N, upper-left corner (257500, 4112500), 1 m pixels
MAP_INFO = ("UTM,  1.000,  1.000,  257500.00,  4112500.0,       1.0000000,       1.0000000,"
            "  11,  North,  WGS-84,  units=Meters, 0")
EPSG = 32611


def neon_values(rows=40, cols=30, bands=20, seed=0) -> np.ndarray:
    """Reflectance × 10 000 (int16) of a few mixed materials, the corner −9999."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, cols, 4)) @ rng.uniform(0, 1, (4, bands))
    data = np.clip(2000 + 800 * base + 30 * rng.normal(size=(rows, cols, bands)), 0, 9000)
    data = data.astype(np.int16)
    data[:2, :3] = -9999
    return data


def write_neon(path, data=None, chunks=None, site="SJER", shuffle=False, dtype=None,
               map_info=MAP_INFO, **extra) -> np.ndarray:
    """A NEON reflectance file of ``data`` (default :func:`neon_values`), stored in
    ``chunks`` (deflated) or contiguous; returns the values written."""
    data = neon_values() if data is None else data
    bands = data.shape[2]
    with h5py.File(path, "w") as f:
        refl = f.create_group(f"{site}/Reflectance")
        filters = {"compression": "gzip", "compression_opts": 3, "shuffle": shuffle,
                   **extra} if chunks else {}
        d = refl.create_dataset("Reflectance_Data", data=data, chunks=chunks,
                                dtype=dtype or data.dtype, **filters)
        d.attrs["Data_Ignore_Value"] = -9999.0
        d.attrs["Scale_Factor"] = 10000.0
        d.attrs["Band_Window_1_Nanometers"] = np.array([1340, 1445])
        d.attrs["Band_Window_2_Nanometers"] = np.array([1790, 1955])
        spectral = refl.create_group("Metadata/Spectral_Data")
        spectral.create_dataset("Wavelength", data=np.linspace(380, 2510, bands)
                                ).attrs["Units"] = "nanometers"
        spectral.create_dataset("FWHM", data=np.full(bands, 5.0))
        coords = refl.create_group("Metadata/Coordinate_System")
        if map_info is not None:
            coords["Map_Info"] = np.bytes_(map_info)
        coords["EPSG Code"] = np.bytes_(str(EPSG))
    return data
