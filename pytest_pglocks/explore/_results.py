"""What exploring interleavings found: each run, outcomes grouped with counts, a table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..isolation._runner import DEADLOCK_DETECTED, StepFact


@dataclass(frozen=True)
class Outcome:
    """What an interleaving ended with: the failed steps' SQLSTATEs and the check's rows."""

    errors: tuple[tuple[str, str], ...]  # (step, sqlstate), in step order
    check: tuple[tuple[Any, ...], ...] | None = None

    @property
    def sqlstates(self) -> tuple[str, ...]:
        """The SQLSTATEs of the errors, sorted: ``()`` when every step succeeded."""
        return tuple(sorted(sqlstate for _, sqlstate in self.errors))

    @property
    def deadlocked(self) -> bool:
        return DEADLOCK_DETECTED in self.sqlstates

    def __str__(self) -> str:
        parts = [
            f"{step} {sqlstate}" + (" (deadlock)" if sqlstate == DEADLOCK_DETECTED else "")
            for step, sqlstate in self.errors
        ] or ["ok"]
        if self.check is not None:
            parts.append(f"check={list(self.check)!r}")
        return ", ".join(parts)


@dataclass
class Interleaving:
    """One order of the steps, run from a clean state: who waited for whom, errors, check."""

    order: tuple[str, ...]
    facts: list[StepFact]
    check: list[tuple[Any, ...]] | None
    output: str

    @property
    def outcome(self) -> Outcome:
        errors = tuple((f.step, e.sqlstate or "") for f in self.facts for e in f.errors)
        check = tuple(tuple(row) for row in self.check) if self.check is not None else None
        return Outcome(errors, check)

    @property
    def sqlstates(self) -> tuple[str, ...]:
        return self.outcome.sqlstates

    @property
    def deadlocked(self) -> bool:
        return self.outcome.deadlocked

    @property
    def victims(self) -> tuple[str, ...]:
        """The steps that got the deadlock error."""
        return tuple(
            step for step, sqlstate in self.outcome.errors if sqlstate == DEADLOCK_DETECTED
        )

    @property
    def blocked(self) -> dict[str, tuple[str, ...]]:
        """Step → the sessions it waited for, for the steps that waited."""
        return {fact.step: fact.blocked_by for fact in self.facts if fact.waited}

    def __str__(self) -> str:
        return " ".join(self.order)

    def report(self) -> str:
        """The timeline (the isolation tester's output) and the graphs of the waits."""
        lines = [f"timeline of {self}:", self.output.strip("\n")]
        for fact in self.facts:
            if fact.graph:
                lines += [f"when {fact.step} waited, {fact.graph}"]
        return "\n".join(lines)


@dataclass(frozen=True)
class OutcomeGroup:
    """One distinct outcome: how many interleavings had it, and one that reproduces it."""

    outcome: Outcome
    count: int
    example: Interleaving


@dataclass
class Exploration:
    """Every interleaving run, and the numbers of the search."""

    interleavings: list[Interleaving]
    brute_force: int
    seconds: float
    control: Exploration | None = field(default=None, repr=False)

    @property
    def run(self) -> int:
        """How many interleavings were run (``brute_force`` would be all orders)."""
        return len(self.interleavings)

    @property
    def per_second(self) -> float:
        return self.run / self.seconds if self.seconds > 0 else 0.0

    def outcomes(self) -> list[OutcomeGroup]:
        """Distinct outcomes, most frequent first."""
        groups: dict[Outcome, list[Interleaving]] = {}
        for interleaving in self.interleavings:
            groups.setdefault(interleaving.outcome, []).append(interleaving)
        ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
        return [OutcomeGroup(outcome, len(runs), runs[0]) for outcome, runs in ordered]

    def table(self) -> str:
        """Outcomes with counts and one reproducing order each, as aligned text."""
        rows = [(str(g.outcome), str(g.count), str(g.example)) for g in self.outcomes()]
        return (
            format_columns(("outcome", "count", "example order"), rows)
            + "\n"
            + (
                f"{self.run} interleavings run of {self.brute_force} possible, "
                f"in {self.seconds:.2f} s ({self.per_second:.0f}/s)"
            )
        )

    def __str__(self) -> str:
        return self.table()


def format_columns(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart, numbers right-aligned."""
    rows = list(rows)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if cell.isdigit() else cell.ljust(width)
            for cell, width in zip(row, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
