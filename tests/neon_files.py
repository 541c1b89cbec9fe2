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


def weather_codes(rows=40, cols=30) -> np.ndarray:
    """A weather quality indicator as the bidirectional files code it: 1 (under 10 % cloud
    cover) in the left half, 2 (10–50 %) in the right half's top rows, 3 (over 50 %) below,
    −9999 (no data) in the nodata corner."""
    codes = np.ones((rows, cols), np.int32)
    codes[: rows // 2, cols // 2:] = 2
    codes[rows // 2:, cols // 2:] = 3
    codes[:2, :3] = -9999
    return codes


def weather_colours(codes: np.ndarray) -> np.ndarray:
    """The same classes in the directional files' stop-light colours (rows, cols, 3) uint8;
    black where there is no class."""
    table = np.array([[0, 0, 0], [0, 255, 0], [255, 255, 0], [255, 0, 0]], np.uint8)
    return table[np.where((codes >= 1) & (codes <= 3), codes, 0)]


def write_neon(path, data=None, chunks=None, site="SJER", shuffle=False, dtype=None,
               map_info=MAP_INFO, weather=None, **extra) -> np.ndarray:
    """A NEON reflectance file of ``data`` (default :func:`neon_values`), stored in
    ``chunks`` (deflated) or contiguous, with ``weather`` as its weather quality indicator
    (none by default); returns the values written."""
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
        if weather is not None:
            layer = refl.create_dataset("Metadata/Ancillary_Imagery/Weather_Quality_Indicator",
                                        data=weather)
            if weather.ndim == 2:
                layer.attrs["Data_Ignore_Value"] = -9999.0
    return data
