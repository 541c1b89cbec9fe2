"""PRISMA products (HDF-EOS5) laid out as ASI's are, for the tests: the swath groups with
spaces in their names, ``(rows, bands, columns)`` uint16 cubes with the bands in descending
wavelength and unused slots at 0 nm, root attributes for wavelengths, flags and scaling,
and per-pixel latitude and longitude (docs/formats.md, "PRISMA products")."""

from __future__ import annotations

import h5py
import numpy as np
from pyproj import Transformer

#: VNIR slots as a real L2D lists them: three unused, then 972.6 nm down to 402.4 nm
VNIR_WL = np.r_[[0, 0, 0], np.linspace(972.6, 402.4, 63)]
#: SWIR slots: 2496.9 nm down to 942.96 nm, then two unused
SWIR_WL = np.r_[np.linspace(2496.9, 942.96, 171), [0, 0]]
EPSG = 32633
#: the centre of the top-left pixel of the L2D test products
UL_CENTRE = (400_015.0, 5_000_015.0)


def swath(level: str) -> str:
    return f"HDFEOS/SWATHS/PRS_L{level}_HCO"


def ground_xy(rows: int, cols: int, theta: float = 12.0):
    """UTM 33N centres of a 30 m swath turned ``theta`` degrees from north."""
    r, c = np.mgrid[0:rows, 0:cols]
    t = np.radians(theta)
    x = 400_000 + 30 * (c * np.cos(t) + r * np.sin(t))
    y = 5_000_000 - 30 * (r * np.cos(t) - c * np.sin(t))
    return x, y


def write_prisma(path, level: str = "2D", rows: int = 24, cols: int = 20, *, seed: int = 0,
                 frame: int = 2, scale=(0.0, 1.0), factor: float = 100.0, offset: float = 0.0,
                 lonlat=None, skip_attrs=()):
    """A PRISMA product at ``level`` (``1``, ``2B``, ``2C``, ``2D``) of random DN, a
    ``frame`` of pixels whose DN are all 0 along its top and left edges; returns the VNIR and
    SWIR DN as stored. ``scale``: L2Scale Min and Max; ``factor``, ``offset``: L1's
    ScaleFactor and Offset; ``lonlat``: the geolocation (default a 12-degree swath);
    ``skip_attrs``: root attributes left out."""
    rng = np.random.default_rng(seed)
    vnir = rng.integers(1, 65535, (rows, VNIR_WL.size, cols), dtype=np.uint16)
    swir = rng.integers(1, 65535, (rows, SWIR_WL.size, cols), dtype=np.uint16)
    vnir[:, VNIR_WL == 0, :] = 0
    swir[:, SWIR_WL == 0, :] = 0
    for cube in (vnir, swir):
        cube[:frame] = 0
        cube[:, :, :frame] = 0
    attrs = {
        "Processing_Level": np.bytes_(level), "Product_ID": np.bytes_(f"PRS_L{level}_STD"),
        "Product_StartTime": np.bytes_("2021-07-24T10:15:30.123456"),
        "List_Cw_Vnir": VNIR_WL.astype(np.float32), "List_Cw_Swir": SWIR_WL.astype(np.float32),
        "List_Fwhm_Vnir": np.where(VNIR_WL > 0, 12.0, 0).astype(np.float32),
        "List_Fwhm_Swir": np.where(SWIR_WL > 0, 10.0, 0).astype(np.float32),
        "List_Cw_Vnir_Flags": (VNIR_WL > 0).astype(np.uint8),
        "List_Cw_Swir_Flags": (SWIR_WL > 0).astype(np.uint8),
    }
    for arm in ("Vnir", "Swir"):
        if level == "1":
            attrs[f"ScaleFactor_{arm}"] = np.float32(factor)
            attrs[f"Offset_{arm}"] = np.float32(offset)
        else:
            attrs[f"L2Scale{arm}Min"], attrs[f"L2Scale{arm}Max"] = (np.float32(v) for v in scale)
    if level == "2D":
        attrs.update({"Epsg_Code": np.int32(EPSG),
                      "Product_ULcorner_easting": UL_CENTRE[0],
                      "Product_ULcorner_northing": UL_CENTRE[1],
                      "Product_LRcorner_easting": UL_CENTRE[0] + 30 * (cols - 1),
                      "Product_LRcorner_northing": UL_CENTRE[1] - 30 * (rows - 1)})
    if lonlat is None:
        lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(
            *ground_xy(rows, cols))
    with h5py.File(path, "w") as f:
        fields = f.create_group(f"{swath(level)}/Data Fields")
        fields.create_dataset("VNIR_Cube", data=vnir,
                              chunks=(min(8, rows), VNIR_WL.size, min(8, cols)))
        fields.create_dataset("SWIR_Cube", data=swir)
        geo = f.create_group(f"{swath(level)}/Geolocation Fields")
        suffix = "_VNIR" if level == "1" else ""
        geo.create_dataset("Latitude" + suffix, data=np.asarray(lonlat[1], np.float32))
        geo.create_dataset("Longitude" + suffix, data=np.asarray(lonlat[0], np.float32))
        f.create_dataset(f"HDFEOS/SWATHS/PRS_L{level}_PCO/Data Fields/Cube",
                         data=np.zeros((6, 6), np.uint16))
        for name, value in attrs.items():
            if name not in skip_attrs:
                f.attrs[name] = value
    return vnir, swir
