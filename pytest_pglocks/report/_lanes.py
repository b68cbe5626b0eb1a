"""A test's timeline as swimlanes: statements, waits, errors and marks per lane; wait edges.

Pure data: events (and the last wait-for graph) in, a :class:`Lanes` out; drawing is elsewhere.
Columns are steps (one per event), not milliseconds, so every entry stays readable; each step
keeps its time for the axis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._timeline import DEADLOCK_DETECTED, Event
from ..monitor import WaitGraph

# One line of the server's deadlock DETAIL: "Process 12 waits for ShareLock on transaction
# 745; blocked by process 13."
_DEADLOCK_EDGE = re.compile(r"Process (\d+) waits for (.+?); blocked by process (\d+)\.")


@dataclass(frozen=True)
class Statement:
    """A statement on a lane, from the step it was sent to the step it ended (None: still
    running at the end)."""

    lane: str
    start: int
    end: int | None
    call: str
    sql: str
    where: str
    outcome: str  # "done", "error", "cancelled" or "running"
    sqlstate: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Blocked:
    """An interval a lane's statement was seen blocked, and by whom."""

    lane: str
    start: int
    end: int | None
    by: tuple[str, ...]
    detail: str
    where: str


@dataclass(frozen=True)
class Mark:
    """A point on a lane: an error, a cancel, a gate or barrier event."""

    lane: str
    step: int
    kind: str
    label: str
    where: str


@dataclass(frozen=True)
class Edge:
    """``waiter`` waits for ``blocker`` (``lock`` in words); ``cycle``: part of a deadlock."""

    waiter: str
    blocker: str
    lock: str
    cycle: bool


@dataclass
class Lanes:
    """Everything the picture of one test shows."""

    title: str
    verdict: str
    lanes: list[str] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.times_ms)


def _call(event: Event) -> str:
    call = event.detail or "execute"
    if call in ("begin", "commit", "rollback"):
        return f"{event.session}.{call}()"
    return f"{event.session}.{call}({' '.join(event.sql.split())!r})"


def build(
    events: Sequence[Event],
    graph: WaitGraph | None,
    names: Mapping[int, str],
    *,
    title: str,
    verdict: str,
) -> Lanes:
    """The lanes of a test from its timeline, the graph at its end and pid → name."""
    lanes = Lanes(title=title, verdict=verdict)
    open_statements: dict[str, tuple[int, Event]] = {}
    open_blocked: dict[str, tuple[int, Event]] = {}

    def lane(name: str) -> None:
        if name not in lanes.lanes:
            lanes.lanes.append(name)

    def close(name: str, step: int | None, outcome: str, event: Event | None) -> None:
        if name in open_blocked:
            start, seen = open_blocked.pop(name)
            lanes.blocked.append(Blocked(name, start, step, seen.blockers, seen.detail, seen.where))
        if name in open_statements:
            start, sent = open_statements.pop(name)
            lanes.statements.append(
                Statement(
                    name,
                    start,
                    step,
                    _call(sent),
                    sent.sql,
                    sent.where,
                    outcome,
                    event.sqlstate if event else None,
                    event.detail if event and outcome == "error" else "",
                )
            )

    for event in events:
        if event.kind == "notice":
            continue
        step = lanes.steps
        lanes.times_ms.append(event.at * 1000)
        lane(event.session)
        if event.kind == "sent":
            close(event.session, step, "done", None)  # defensive: one statement at a time
            open_statements[event.session] = (step, event)
        elif event.kind == "blocked":
            if event.session not in open_blocked:
                open_blocked[event.session] = (step, event)
        elif event.kind in ("done", "error", "cancelled"):
            close(event.session, step, event.kind, event)
            if event.kind != "done":
                first = event.detail.splitlines()[0] if event.detail else ""
                label = f"{event.sqlstate} {first}" if event.kind == "error" else "cancelled"
                lanes.marks.append(Mark(event.session, step, event.kind, label, event.where))
            if event.kind == "error" and event.sqlstate == DEADLOCK_DETECTED:
                cycle = _deadlock_edges(event.detail, names)
                lanes.edges += cycle
                _victim_wait(lanes, event, cycle)
        else:  # gate, barrier
            lanes.marks.append(Mark(event.session, step, event.kind, event.detail, event.where))
    for name in {*open_statements, *open_blocked}:
        close(name, None, "running", None)
    if graph is not None:
        lanes.edges += _graph_edges(graph)
    return lanes


def _victim_wait(lanes: Lanes, event: Event, cycle: list[Edge]) -> None:
    """The victim's statement waited in the cycle until it failed: draw that wait too."""
    statement = next((s for s in reversed(lanes.statements) if s.lane == event.session), None)
    waited = [edge for edge in cycle if edge.waiter == event.session]
    if (
        statement is None
        or not waited
        or any(wait.lane == statement.lane and wait.end == statement.end for wait in lanes.blocked)
    ):
        return
    lanes.blocked.append(
        Blocked(
            statement.lane,
            statement.start,
            statement.end,
            tuple(edge.blocker for edge in waited),
            "; ".join(f"{edge.waiter} waits for {edge.lock}" for edge in waited),
            statement.where,
        )
    )


def _deadlock_edges(detail: str, names: Mapping[int, str]) -> list[Edge]:
    """The cycle the server reported in a 40P01's DETAIL."""
    return [
        Edge(
            names.get(int(waiter), f"pid {waiter}"),
            names.get(int(blocker), f"pid {blocker}"),
            lock,
            cycle=True,
        )
        for waiter, lock, blocker in _DEADLOCK_EDGE.findall(detail)
    ]


def _graph_edges(graph: WaitGraph) -> list[Edge]:
    """The waits still there when the test ended."""
    on_cycle = {
        (cycle[i], cycle[(i + 1) % len(cycle)])
        for cycle in graph.cycles()
        for i in range(len(cycle))
    }
    snapshot = graph.snapshot
    return [
        Edge(
            snapshot.name(edge.waiter),
            snapshot.name(edge.blocker),
            snapshot.waits_for(edge.waiter),
            cycle=(edge.waiter, edge.blocker) in on_cycle,
        )
        for edge in graph.edges
    ]
