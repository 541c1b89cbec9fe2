"""Synthetic data: a seeded demo scene (:mod:`hsad.synthetic.scene`) and targets implanted
into real backgrounds (:mod:`hsad.synthetic.implanting`)."""

from __future__ import annotations

from hsad.synthetic.implanting import (
    SIZES,
    Implanted,
    implant,
    object_spectra,
    resample_spectra,
    target_edge,
)
from hsad.synthetic.scene import (
    ABSORPTION_WINDOWS,
    Scene,
    background_endmembers,
    make_scene,
    target_materials,
    write_scene,
)

__all__ = ["ABSORPTION_WINDOWS", "SIZES", "Implanted", "Scene", "background_endmembers",
           "implant", "make_scene", "object_spectra", "resample_spectra", "target_edge",
           "target_materials", "write_scene"]
