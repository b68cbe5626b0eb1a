"""Benchmarks of pytest-pglocks, beside what users would otherwise use: ``python -m bench``."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """Several timings of one measurement, in seconds (or rates, per second)."""

    label: str
    samples: tuple[float, ...]
    indent: bool = False
    rate: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def row(self) -> str:
        label = ("  ↳ " if self.indent else "") + self.label
        values = (self.median, min(self.samples), max(self.samples))
        text = per_second if self.rate else ms
        return f"| {label} | " + " | ".join(map(text, values)) + f" | {len(self.samples)} |"


def ms(seconds: float) -> str:
    """A duration for the table: milliseconds, three significant digits or more."""
    value = seconds * 1000
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def per_second(rate: float) -> str:
    """A rate for the table."""
    return f"{rate:.0f}/s" if rate >= 10 else f"{rate:.1f}/s"
