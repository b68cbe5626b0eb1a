"""Benchmarks of pytest-pglocks (server start and stop, per-test databases): ``python -m bench``."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """Several timings of one measurement, in seconds."""

    label: str
    samples: tuple[float, ...]
    indent: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def row(self) -> str:
        label = ("  ↳ " if self.indent else "") + self.label
        values = (self.median, min(self.samples), max(self.samples))
        return f"| {label} | " + " | ".join(map(ms, values)) + f" | {len(self.samples)} |"


def ms(seconds: float) -> str:
    """A duration for the table: milliseconds, three significant digits or more."""
    value = seconds * 1000
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"
