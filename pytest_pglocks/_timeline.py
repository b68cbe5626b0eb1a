"""What happened in a test, in order: statements sent, waits seen, results, errors, notices."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

EventKind = Literal["sent", "blocked", "done", "error", "notice", "cancelled"]

DEADLOCK_DETECTED = "40P01"


@dataclass(frozen=True)
class Event:
    """One thing that happened to a session, ``at`` seconds after the test started."""

    at: float
    session: str
    kind: EventKind
    sql: str
    detail: str = ""
    sqlstate: str | None = None
    where: str = ""  # the test's line that sent the statement, for errors


class Timeline:
    """A thread-safe, append-only list of events that waiters can block on."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._events: list[Event] = []
        self._changed = threading.Condition()

    def record(
        self,
        session: str,
        kind: EventKind,
        sql: str,
        detail: str = "",
        sqlstate: str | None = None,
        where: str = "",
    ) -> Event:
        event = Event(time.monotonic() - self._start, session, kind, sql, detail, sqlstate, where)
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()
        return event

    def notify(self) -> None:
        """Wake waiters without recording anything (a statement's outcome was delivered)."""
        with self._changed:
            self._changed.notify_all()

    def events(self) -> list[Event]:
        with self._changed:
            return list(self._events)

    def __len__(self) -> int:
        with self._changed:
            return len(self._events)

    def deadlocks(self, since: int = 0) -> list[Event]:
        """Deadlock errors (40P01) recorded from position ``since`` on."""
        return [
            event
            for event in self.events()[since:]
            if event.kind == "error" and event.sqlstate == DEADLOCK_DETECTED
        ]

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds, re-checking whenever an event is recorded."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)
