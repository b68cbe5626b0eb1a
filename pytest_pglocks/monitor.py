"""Observing the server: lock rows, who waits for whom, and the wait-for graph.

The decisions (is a wait stuck? which lock is awaited? is there a cycle?) are pure functions of
one :class:`Snapshot`; :class:`Monitor` is the only part that talks to the server.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = ["LockRow", "Snapshot", "WaitEdge", "WaitGraph"]

SNAPSHOT_READS = 5  # a parallel worker's wait shows on its leader: never settles

IS_BLOCKED = "SELECT pg_catalog.pg_isolation_test_session_is_blocked(%s, %s::int[])"

SNAPSHOT = """
SELECT
  coalesce((SELECT json_agg(json_build_object(
      'pid', l.pid, 'locktype', l.locktype, 'mode', l.mode, 'granted', l.granted,
      'relation', CASE WHEN l.database IN (0, (SELECT d.oid FROM pg_catalog.pg_database d
        WHERE d.datname = pg_catalog.current_database()))
        THEN l.relation::regclass::text ELSE l.relation::text END,
      'page', l.page, 'tuple', l.tuple,
      'transactionid', l.transactionid::text, 'virtualxid', l.virtualxid,
      'classid', l.classid::int8, 'objid', l.objid::int8, 'objsubid', l.objsubid)
      ORDER BY l.pid, l.granted, l.locktype, l.mode)
    FROM pg_catalog.pg_locks l WHERE l.pid = ANY(%(pids)s)), '[]'),
  coalesce((SELECT json_object_agg(p, json_build_object(
      'blocking', pg_catalog.pg_blocking_pids(p),
      'safe_snapshot', pg_catalog.pg_safe_snapshot_blocking_pids(p)))
    FROM unnest(%(pids)s::int[]) AS p), '{}'),
  coalesce((SELECT json_object_agg(a.pid, json_build_object(
      'state', a.state, 'wait_event_type', a.wait_event_type, 'wait_event', a.wait_event,
      'query', a.query, 'xid', a.backend_xid::text))
    FROM pg_catalog.pg_stat_activity a WHERE a.pid = ANY(%(pids)s)), '{}')
"""


@dataclass(frozen=True)
class LockRow:
    """One row of ``pg_locks`` for a backend of this test, with its session's name."""

    session: str | None
    pid: int
    locktype: str
    mode: str
    granted: bool
    relation: str | None = None
    page: int | None = None
    tuple: int | None = None
    transactionid: str | None = None
    virtualxid: str | None = None
    classid: int | None = None
    objid: int | None = None
    objsubid: int | None = None

    def target(self) -> str:
        """What is locked, in words: ``transaction 812``, ``tuple (0,1) of foo``, ..."""
        if self.locktype in ("advisory", "transactionid"):
            from .gates import describe_gate_wait  # here: gates import this module

            gate = describe_gate_wait(self)
            if gate is not None:
                return gate.removeprefix("at ")
        if self.locktype == "transactionid":
            return f"transaction {self.transactionid}"
        if self.locktype == "virtualxid":
            return f"virtual transaction {self.virtualxid}"
        if self.locktype == "tuple":
            return f"tuple ({self.page},{self.tuple}) of {self.relation}"
        if self.locktype == "page":
            return f"page {self.page} of {self.relation}"
        if self.locktype in ("relation", "extend"):
            return f"{'extension of ' if self.locktype == 'extend' else ''}{self.relation}"
        if self.locktype == "advisory":
            key = self.advisory_key
            if isinstance(key, builtins.tuple):
                return f"advisory lock ({key[0]},{key[1]})"
            return f"advisory lock {key}"
        return f"{self.locktype} {self.classid}/{self.objid}/{self.objsubid}"

    def describe(self) -> str:
        return f"{self.mode} on {self.target()}"

    @property
    def advisory_key(self) -> int | builtins.tuple[int, int] | None:
        """An advisory lock's key as the test passed it: ``pg_advisory_lock(42)`` → ``42``,
        ``pg_advisory_lock(1, 2)`` → ``(1, 2)``; None for other lock types."""
        if self.locktype != "advisory":
            return None
        high, low = self.classid or 0, self.objid or 0
        if self.objsubid == 1:
            return _signed(high << 32 | low, 64)
        return _signed(high, 32), _signed(low, 32)


def _signed(value: int, bits: int) -> int:
    """pg_locks shows key halves as unsigned oids; the key itself is signed."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


@dataclass(frozen=True)
class Activity:
    """What a backend was doing at the snapshot (from ``pg_stat_activity``)."""

    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    query: str | None
    xid: str | None


@dataclass(frozen=True)
class Snapshot:
    """One consistent look at the test's backends: locks, blockers, activity."""

    names: Mapping[int, str]
    locks: tuple[LockRow, ...]
    blocking: Mapping[int, tuple[int, ...]]
    safe_snapshot: Mapping[int, tuple[int, ...]]
    activity: Mapping[int, Activity]

    @classmethod
    def from_row(cls, row: tuple[Any, Any, Any], names: Mapping[int, str]) -> Snapshot:
        locks_json, blocking_json, activity_json = row
        locks = tuple(
            LockRow(session=names.get(lock["pid"]), **lock)
            for lock in locks_json
            if lock["pid"] is not None
        )
        return cls(
            names=dict(names),
            locks=locks,
            blocking={int(pid): tuple(v["blocking"]) for pid, v in blocking_json.items()},
            safe_snapshot={int(pid): tuple(v["safe_snapshot"]) for pid, v in blocking_json.items()},
            activity={int(pid): Activity(**v) for pid, v in activity_json.items()},
        )

    def name(self, pid: int) -> str:
        return self.names.get(pid, f"pid {pid}")

    def settled(self) -> bool:
        """Whether every backend that waits has its awaited lock among the rows.

        ``pg_locks`` and ``pg_blocking_pids()`` each look at the lock table at their own
        moment: a wait that began between the two has blockers but no ungranted row yet.
        """
        return all(self.awaited(pid) is not None for pid, by in self.blocking.items() if by)

    def waits_for(self, pid: int) -> str:
        """What ``pid`` waits for, in words: ``ShareLock on transaction 812``."""
        lock = self.awaited(pid)
        if lock is not None:
            return lock.describe()
        return "a safe snapshot" if self.safe_snapshot.get(pid) else "a lock"

    def awaited(self, pid: int) -> LockRow | None:
        """The lock ``pid`` waits for, if any."""
        return next((lock for lock in self.locks if lock.pid == pid and not lock.granted), None)

    def held_tuple_lock(self, pid: int) -> LockRow | None:
        """A tuple lock ``pid`` holds while waiting (row-lock waits take it first)."""
        return next(
            (
                lock
                for lock in self.locks
                if lock.pid == pid and lock.granted and lock.locktype == "tuple"
            ),
            None,
        )

    def holder_of(self, awaited: LockRow, blocker: int) -> LockRow | None:
        """The granted lock of ``blocker`` on the object ``awaited`` is for, if it holds one."""
        for lock in self.locks:
            if lock.pid == blocker and lock.granted and lock.target() == awaited.target():
                return lock
        return None


@dataclass(frozen=True)
class WaitEdge:
    """``waiter`` waits for ``lock``; ``blocker`` holds it or is queued ahead."""

    waiter: int
    blocker: int
    lock: LockRow | None
    held: LockRow | None
    safe_snapshot: bool = False

    def describe(self, snapshot: Snapshot) -> str:
        waiter, blocker = snapshot.name(self.waiter), snapshot.name(self.blocker)
        if self.safe_snapshot:
            return f"{waiter} waits for a safe snapshot until {blocker} finishes"
        if self.lock is None:
            return f"{waiter} waits for a lock held by {blocker}"
        how = f"held by {blocker}" if self.held else f"requested earlier by {blocker}"
        held = ""
        if self.held and self.lock.locktype != "transactionid" and self.held.mode != self.lock.mode:
            held = f" ({self.held.mode})"
        return f"{waiter} waits for {self.lock.describe()} {how}{held}"


@dataclass(frozen=True)
class WaitGraph:
    """Who waits for whom among this test's backends; ``str()`` is a readable report."""

    snapshot: Snapshot
    edges: tuple[WaitEdge, ...] = field(default=())

    @classmethod
    def build(cls, snapshot: Snapshot) -> WaitGraph:
        """Edges restricted to the test's own backends (autovacuum and others never count)."""
        ours = set(snapshot.names)
        edges = []
        for waiter in sorted(ours):
            lock = snapshot.awaited(waiter)
            for blocker in snapshot.blocking.get(waiter, ()):
                if blocker in ours and blocker != waiter:
                    held = snapshot.holder_of(lock, blocker) if lock else None
                    edges.append(WaitEdge(waiter, blocker, lock, held))
            for blocker in snapshot.safe_snapshot.get(waiter, ()):
                if blocker in ours:
                    edges.append(WaitEdge(waiter, blocker, None, None, safe_snapshot=True))
        return cls(snapshot, tuple(edges))

    def blockers(self, pid: int) -> tuple[int, ...]:
        return tuple(edge.blocker for edge in self.edges if edge.waiter == pid)

    def waiting(self) -> tuple[int, ...]:
        return tuple(sorted({edge.waiter for edge in self.edges}))

    def cycles(self) -> list[list[int]]:
        """Every elementary cycle, each once, starting at its smallest pid."""
        found: list[list[int]] = []
        graph = {pid: self.blockers(pid) for pid in self.snapshot.names}

        def walk(start: int, node: int, path: list[int]) -> None:
            for nxt in graph.get(node, ()):
                if nxt == start:
                    found.append(list(path))
                elif nxt > start and nxt not in path:
                    walk(start, nxt, [*path, nxt])

        for start in sorted(graph):
            walk(start, start, [start])
        return found

    def reaches_cycle(self, pid: int) -> bool:
        """Whether following ``pid``'s waits leads into a cycle (a deadlock)."""
        on_cycle = {node for cycle in self.cycles() for node in cycle}
        return any(node in on_cycle for node in self._reachable(pid))

    def chain_ends(self, pid: int) -> set[int]:
        """The backends at the end of ``pid``'s wait chains: reachable and not waiting."""
        return {node for node in self._reachable(pid) if not self.blockers(node)} - {pid}

    def idle_blockers(self, pid: int, busy: frozenset[int]) -> set[int]:
        """Idle sessions that ``pid`` waits for, directly or down a chain: its wait cannot end.

        Empty when the wait may end by itself: every chain ends in a session still running a
        statement, or leads into a cycle, which the server's deadlock detector breaks.
        """
        if self.reaches_cycle(pid):
            return set()
        return {node for node in self.chain_ends(pid) if node not in busy}

    def _reachable(self, pid: int) -> set[int]:
        seen, todo = {pid}, [pid]
        while todo:
            for nxt in self.blockers(todo.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def describe_cycle(self, cycle: list[int]) -> str:
        """``a waits for ... held by b; b waits for ... held by a``."""
        parts = []
        for index, waiter in enumerate(cycle):
            blocker = cycle[(index + 1) % len(cycle)]
            edge = next(e for e in self.edges if e.waiter == waiter and e.blocker == blocker)
            parts.append(edge.describe(self.snapshot))
        return "; ".join(parts)

    def __str__(self) -> str:
        if not self.edges:
            return "wait-for graph: no session of this test waits for another"
        lines = ["wait-for graph:"]
        lines += [f"  {edge.describe(self.snapshot)}" for edge in self.edges]
        for cycle in self.cycles():
            lines.append(f"  cycle (deadlock): {self.describe_cycle(cycle)}")
        return "\n".join(lines)


class Monitor:
    """A separate connection that watches the test's backends.

    ``database``: connect there rather than to the test's database, when it exists (pg_locks
    and pg_stat_activity show the whole server), so that the test's database has no monitor
    among its backends; relations of other databases are then named by their oid.
    """

    def __init__(self, dsn: str, *, database: str | None = None) -> None:
        self._dsn = dsn
        self._database = database
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        if self._conn is None:
            kwargs: dict[str, Any] = {"autocommit": True, "application_name": "pglocks:monitor"}
            if self._database is not None:
                try:
                    self._conn = psycopg.connect(self._dsn, dbname=self._database, **kwargs)
                except psycopg.OperationalError:
                    self._database = None  # no such database (or not allowed): the test's
            if self._conn is None:
                self._conn = psycopg.connect(self._dsn, **kwargs)
        return self._conn

    def is_blocked(self, pid: int, pids: Iterable[int]) -> bool:
        """The isolation tester's test: blocked by one of ``pids``, or a safe-snapshot wait."""
        with self._lock:
            row = self._connection().execute(IS_BLOCKED, (pid, list(pids)), prepare=True).fetchone()
        return bool(row and row[0])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query on the monitor's connection (the test's database by default)."""
        with self._lock:
            return self._connection().execute(sql).fetchall()

    def snapshot(self, names: Mapping[int, str]) -> Snapshot:
        """Locks, blockers and activity of the given backends, read again (a few times at
        most) while a wait that just began shows its blockers but not yet its lock."""
        for _ in range(SNAPSHOT_READS):
            with self._lock:
                row = self._connection().execute(SNAPSHOT, {"pids": list(names)}).fetchone()
            assert row is not None
            snapshot = Snapshot.from_row(row, names)
            if snapshot.settled():
                break
        return snapshot

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
