"""Everything one test's sessions share: timeline, monitor, settings, and waiting on statements."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors
from ._timeline import Timeline
from .monitor import LockRow, Monitor, WaitGraph
from .session import Pending, Session, shorten

if TYPE_CHECKING:
    from ._execute import Rows
    from .observe import Observed, ServerLog
    from .roles import Role

CLOSE_TIMEOUT = 10.0
# A waiting statement is re-examined this often at the most (seconds); first looks are immediate.
MAX_POLL_GAP = 0.002


_current: TestContext | None = None


def current() -> TestContext:
    """The context of the test now running (the one that requested ``pglocks``)."""
    if _current is None:
        raise errors.PglocksError(errors.NO_CURRENT_TEST)
    return _current


def set_current(context: TestContext | None) -> None:
    global _current
    _current = context


def poll_gaps() -> Iterator[float]:
    """Pauses between two looks at the server: none at first, then growing to 2 ms.

    Every pause is a wait on the statement's completion, so a statement that ends is seen at
    once; the pauses only bound how often the monitor asks the server.
    """
    yield from (0.0, 0.0, 0.0)
    gap = 0.0001
    while True:
        yield gap
        gap = min(gap * 2, MAX_POLL_GAP)


@dataclass(frozen=True)
class TestSettings:
    """Per-test settings: marker > option > env > ini > default."""

    timeout: float
    deadlock_timeout: str
    manage_deadlock_timeout: bool
    explore_limit: int = 1000
    timeout_given: bool = True  # False: the default timeout, which specs replace by the tester's

    @property
    def spec_timeout(self) -> float:
        """A spec step's timeout: the one given, else the isolation tester's (360 s)."""
        from .isolation._runner import max_step_wait

        return self.timeout if self.timeout_given else max_step_wait()


class TestContext:
    """One test's sessions, their shared timeline and monitor."""

    def __init__(
        self, dsn: str, settings: TestSettings, *, own_pids: set[int] | None = None
    ) -> None:
        self.dsn = dsn
        self.settings = settings
        # Backends the plugin drives, here and in contexts sharing this set (scenarios).
        self.own_pids: set[int] = set() if own_pids is None else own_pids
        self.timeline = Timeline()
        self.monitor = Monitor(dsn)
        self.sessions: dict[str, Session] = {}
        self.observed: dict[int, Observed] = {}  # backends of the code under test, by pid
        self.server_log: ServerLog | None = None  # where deadlocks of those backends show
        self._server_deadlock_timeout: int | None = None

    # sessions

    def new_session(
        self,
        name: str,
        connect_kwargs: dict[str, Any],
        *,
        managed: bool = True,
        role: Role | None = None,
    ) -> Session:
        """A session; ``managed=False`` leaves deadlock_timeout and messages to the server;
        ``role``: connect as that role (its defaults carry the managed settings)."""
        __tracebackhide__ = True
        import psycopg

        if name in self.sessions:
            raise errors.PglocksError(errors.DUPLICATE_SESSION.format(name=name))
        options = connect_kwargs.pop("options", "")
        managed = managed and self.settings.manage_deadlock_timeout
        if role is not None:
            connect_kwargs.update(user=role.name, password=role.password)
            if managed:
                options = f"-c client_min_messages=log {options}".strip()
        elif managed:
            options = (
                f"-c deadlock_timeout={self.settings.deadlock_timeout} -c log_lock_waits=on "
                f"-c client_min_messages=log {options}"
            ).strip()
        connect_kwargs.setdefault("application_name", name)
        connect_kwargs["autocommit"] = True
        if options:
            connect_kwargs["options"] = options
        connection = psycopg.connect(self.dsn, **connect_kwargs)
        deadlock_timeout = self.settings.deadlock_timeout if managed else None
        session = Session(self, name, connection, deadlock_timeout=deadlock_timeout, _ispytest=True)
        session._role = role
        self.sessions[name] = session
        self.own_pids.add(session.pid)
        return session

    def names(self) -> dict[int, str]:
        """pid → name, for every session and observed backend of this test."""
        names = {pid: observed.name for pid, observed in self.observed.items()}
        names.update({session.pid: name for name, session in self.sessions.items()})
        return names

    def busy(self) -> frozenset[int]:
        """pids that may still end their transactions by themselves: sessions with a statement
        in flight, and every observed backend (the code under test drives it)."""
        running = {session.pid for session in self.sessions.values() if session.busy}
        return frozenset(running | set(self.observed))

    def session_of(self, pid: int) -> Session | Observed | None:
        session = next((s for s in self.sessions.values() if s.pid == pid), None)
        return session if session is not None else self.observed.get(pid)

    # observation

    def graph(self) -> WaitGraph:
        return WaitGraph.build(self.monitor.snapshot(self.names()))

    def locks(self) -> list[LockRow]:
        return list(self.monitor.snapshot(self.names()).locks)

    def server_deadlock_timeout(self) -> int:
        """The server's own deadlock_timeout in milliseconds: what sessions get without us."""
        if self._server_deadlock_timeout is None:
            rows = self.monitor.query(
                "SELECT setting::int FROM pg_catalog.pg_settings WHERE name = 'deadlock_timeout'"
            )
            self._server_deadlock_timeout = int(rows[0][0])
        return self._server_deadlock_timeout

    def is_blocked(self, pending: Pending) -> bool:
        return self.monitor.is_blocked(pending.session.pid, self.names())

    def stable_graph(self) -> tuple[WaitGraph, frozenset[int]]:
        """A graph taken while no session started or finished a statement, with the busy set.

        A session seen idle before the look cannot hold a lock its finished COMMIT released,
        so "blocked by an idle session" read from this pair is never a transient.
        """
        while True:
            before = self.busy()
            graph = self.graph()
            if self.busy() == before:
                return graph, before

    # waiting

    def await_pending(self, pending: Pending, timeout: float | None, *, call: str) -> Rows | None:
        """Wait for ``pending``; raise ``SessionBlocked`` if it can never end, fail at timeout."""
        __tracebackhide__ = True
        limit = self.settings.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        examined_at: tuple[int, frozenset[int]] | None = None
        for gap in poll_gaps():
            if pending._finished.wait(gap):
                break
            if time.monotonic() >= deadline:
                self.fail_timeout(pending, limit, call)
            if not self.is_blocked(pending):
                continue
            state = (len(self.timeline), self.busy())
            if state == examined_at:
                continue  # nothing changed since the last full look
            examined_at = state
            graph, busy = self.stable_graph()
            if pending.done():
                break
            idle = self.unending_blockers(pending, graph, busy)
            if idle:
                raise errors.SessionBlocked.build(pending, graph, idle, call)
        return pending._outcome()

    def unending_blockers(
        self, pending: Pending, graph: WaitGraph, busy: frozenset[int]
    ) -> set[int]:
        """The idle sessions ``pending`` waits for when no timeout will ever end its wait."""
        if pending.session._waits_bounded:
            return set()  # its lock_timeout or statement_timeout ends it
        idle = graph.idle_blockers(pending.session.pid, busy)
        return {
            pid
            for pid in idle
            if not isinstance(blocker := self.session_of(pid), Session) or not blocker._idle_bounded
        }

    def stuck(self) -> tuple[WaitGraph, list[tuple[Pending, set[int]]]] | None:
        """When every statement in flight waits for idle sessions and none can ever go on:
        the graph and each such wait (nothing in the test can change anything any more)."""
        graph, busy = self.stable_graph()
        running = [s._last for s in self.sessions.values() if s.pid in busy and s._last]
        if not running or len(running) != len(busy):  # observed backends may still move
            return None
        waits = []
        for pending in running:
            idle = self.unending_blockers(pending, graph, busy)
            if not idle:
                return None
            waits.append((pending, idle))
        return graph, waits

    def fail_timeout(self, pending: Pending, limit: float, call: str) -> None:
        """Cancel a statement still running at its timeout and fail with the graph."""
        __tracebackhide__ = True
        graph = self.graph()
        self.cancel(pending)
        raise errors.WaitTimeout(
            errors.STATEMENT_TIMEOUT.format(
                name=pending.session.name,
                call=call,
                sql=shorten(pending.sql),
                where=pending.where,
                limit=limit,
                graph=graph,
            )
        )

    def cancel(self, pending: Pending) -> None:
        """Cancel ``pending`` on the server and wait until its session is free again."""
        if not pending.done():
            pending._cancel(CLOSE_TIMEOUT)
        self.timeline.record(pending.session.name, "cancelled", pending.sql, where=pending.where)

    def close(self) -> None:
        """Cancel what still runs, close every connection."""
        for session in self.sessions.values():
            session._close(CLOSE_TIMEOUT)
        self.monitor.close()
