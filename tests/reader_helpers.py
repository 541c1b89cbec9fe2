"""Counting what a lazy reader reads, inside a test."""

from __future__ import annotations


def count_reads(monkeypatch, reader_class) -> list[int]:
    """Patch ``reader_class._read`` (a :class:`hsad.io.geotiff.WindowReader`'s) to record the
    pixels (rows x columns) of every window it reads; returns the list it fills."""
    reads: list[int] = []
    read = reader_class._read

    def counting(self, r0, r1, c0, c1, b0, b1):
        reads.append((r1 - r0) * (c1 - c0))
        return read(self, r0, r1, c0, c1, b0, b1)

    monkeypatch.setattr(reader_class, "_read", counting)
    return reads
