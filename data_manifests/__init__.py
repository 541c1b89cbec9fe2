"""Benchmark-scene manifests (one JSON file per scene), shipped as package data."""
