"""Exports of detection results: anomaly regions as polygons (GeoJSON, GeoPackage)."""

from __future__ import annotations

from hsad.export.polygons import polygons, write_polygons

__all__ = ["polygons", "write_polygons"]
