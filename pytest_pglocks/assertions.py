"""Assertions on lock behaviour: assert_blocks, assert_not_blocks, expect_deadlock."""

from __future__ import annotations

import re
import threading
import time
import types
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _context, errors
from ._execute import Rows
from ._report import deadlock_report, logged_deadlock_report
from ._timeline import DEADLOCK_DETECTED, Event
from .errors import PglocksError, PglocksWarning, WaitTimeout
from .monitor import LockRow, WaitGraph
from .observe import Observed
from .session import Pending, Session, caller_location, shorten

__all__ = ["DeadlockExpectation", "Wait", "assert_blocks", "assert_not_blocks", "expect_deadlock"]

# deadlock_timeout of the sessions that must not be the victim inside expect_deadlock(victim=).
NEVER_FIRST = "1h"
# A line of the server's deadlock DETAIL: "Process 12 waits for ...; blocked by process 34."
_BLOCKED_BY = re.compile(r"Process (\d+) waits for .*?; blocked by process (\d+)\.")

Target = Session | Pending | Observed
Waiter = Session | Observed
On = Waiter | Sequence[Waiter] | str | None


@dataclass(frozen=True)
class Wait:
    """A statement's wait: ``.blockers``, ``.lock``, ``.locktype``, ``.mode``, ``.relation``."""

    __module__ = "pytest_pglocks"

    waiter: Waiter
    blockers: tuple[Waiter, ...]
    locktype: str | None
    mode: str | None
    relation: str | None
    graph: WaitGraph = field(repr=False)
    lock: LockRow | None = None

    @classmethod
    def observe(cls, waiter: Waiter, graph: WaitGraph) -> Wait:
        """The wait of ``waiter`` (a session or an observed backend) as seen in ``graph``."""
        context = waiter._context
        pid = waiter.pid
        awaited = graph.snapshot.awaited(pid)
        held_tuple = graph.snapshot.held_tuple_lock(pid)
        blockers = tuple(
            session
            for session in (context.session_of(blocker) for blocker in graph.blockers(pid))
            if session is not None
        )
        relation = awaited.relation if awaited and awaited.relation else None
        if relation is None and held_tuple is not None:
            relation = held_tuple.relation
        return cls(
            waiter=waiter,
            blockers=blockers,
            locktype=awaited.locktype if awaited else None,
            mode=awaited.mode if awaited else None,
            relation=relation,
            graph=graph,
            lock=awaited,
        )

    def __str__(self) -> str:
        pid = self.waiter.pid
        edges = [
            edge.describe(self.graph.snapshot) for edge in self.graph.edges if edge.waiter == pid
        ]
        if edges:
            return "; ".join(edges)
        what = self.graph.snapshot.waits_for(pid)
        return f"{self.waiter.name} waits for {what} held outside this test's sessions"


@dataclass
class DeadlockExpectation:
    """What ``expect_deadlock`` saw: ``.victim`` (the session that got 40P01), ``.survivor``
    (the statement its abort let go on) and ``.report``."""

    __module__ = "pytest_pglocks"

    victim: Session | None = None
    survivor: Pending | None = None
    report: str = ""


def _pending_of(target: Target, function: str) -> Pending:
    __tracebackhide__ = True
    if isinstance(target, Pending):
        return target
    if isinstance(target, Session):
        if target._last is None:
            raise PglocksError(errors.NOTHING_SENT.format(function=function, name=target.name))
        return target._last
    raise TypeError(errors.BAD_TARGET.format(function=function, value=target))


def _describe_target(pending: Pending) -> str:
    return f"{pending.session.name}: {shorten(pending.sql)!r} ({pending.where})"


def _outcome_text(pending: Pending) -> str:
    error = pending.error
    if error is not None:
        state = getattr(error, "sqlstate", None)
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"failed with {state + ' ' if state else ''}{first}"
    rows = pending._future.result()
    return "completed" if rows is None else f"returned {len(rows)} row{'s' * (len(rows) != 1)}"


def _blocker_names(on: On) -> set[str] | None:
    if on is None or isinstance(on, str):
        return None
    if isinstance(on, Session | Observed):
        return {on.name}
    return {session.name for session in on}


def _relation_matches(wanted: str, relation: str | None) -> bool:
    """``foo`` and ``public.foo`` both match ``foo`` (regclass drops visible schemas)."""
    if relation is None:
        return False
    if "." in wanted and "." in relation:
        return wanted == relation
    return wanted.split(".")[-1] == relation.split(".")[-1]


def _mismatch(wait: Wait, on: On, relation: str | None, lock: str | None) -> str | None:
    """Why ``wait`` is not the one asserted, or None when it is."""
    names = _blocker_names(on)
    got = sorted(session.name for session in wait.blockers)
    if names is not None and set(got) != names:
        wanted = " and ".join(sorted(names))
        return f"blocked by {' and '.join(got) or 'no session of this test'}, not {wanted}"
    for wanted_relation in (on, relation):
        if isinstance(wanted_relation, str) and not _relation_matches(
            wanted_relation, wait.relation
        ):
            return f"waiting on relation {wait.relation or '(none)'}, not {wanted_relation}"
    if lock is not None and lock.lower() not in {
        (wait.locktype or "").lower(),
        (wait.mode or "").lower(),
    }:
        return f"waiting for {wait.mode} on a {wait.locktype} lock, not {lock}"
    return None


def _seen_waiting(pending: Pending) -> Wait | None:
    """``pending``'s wait if the server shows it blocked now (recorded in the timeline)."""
    context = pending.session._context
    if not context.is_blocked(pending):
        return None
    graph = context.graph()
    if pending.done():  # it finished meanwhile: the look was a transient
        return None
    wait = Wait.observe(pending.session, graph)
    context.timeline.record(
        pending.session.name,
        "blocked",
        pending.sql,
        str(wait),
        where=pending.where,
        blockers=tuple(blocker.name for blocker in wait.blockers),
    )
    return wait


def assert_blocks(
    target: Target,
    on: On = None,
    *,
    relation: str | None = None,
    lock: str | None = None,
    timeout: float | None = None,
) -> Wait:
    """Wait until ``target``'s statement is blocked (by ``on``, on ``relation``, for ``lock``,
    each if given); return the ``Wait``."""
    __tracebackhide__ = True
    if relation is not None and not isinstance(relation, str):
        raise TypeError(errors.BAD_RELATION.format(value=relation))
    if isinstance(target, Observed):
        return _assert_backend_blocks(target, on, relation, lock, timeout)
    pending = _pending_of(target, "assert_blocks")
    context = pending.session._context
    limit = context.settings.timeout if timeout is None else timeout
    deadline = time.monotonic() + limit
    for gap in _context.poll_gaps():
        if pending._finished.wait(gap):
            raise AssertionError(
                errors.COMPLETED_NOT_BLOCKED.format(
                    target=_describe_target(pending), outcome=_outcome_text(pending)
                )
            )
        wait = _seen_waiting(pending)
        if wait is not None:
            why = _mismatch(wait, on, relation, lock)
            if why is not None:
                raise AssertionError(
                    errors.WRONG_WAIT.format(
                        target=_describe_target(pending), why=why, wait=wait, graph=wait.graph
                    )
                )
            return wait
        if time.monotonic() >= deadline:
            graph = context.graph()
            context.cancel(pending)
            raise WaitTimeout(
                errors.NEVER_BLOCKED.format(
                    target=_describe_target(pending), limit=limit, graph=graph
                )
            )
    raise AssertionError("unreachable")  # pragma: no cover


def assert_not_blocks(target: Target, *, timeout: float | None = None) -> Rows | None:
    """Wait for ``target``'s statement to finish without ever being seen blocked; its rows."""
    __tracebackhide__ = True
    if isinstance(target, Observed):
        _assert_backend_not_blocks(target, timeout)
        return None
    pending = _pending_of(target, "assert_not_blocks")
    context = pending.session._context
    limit = context.settings.timeout if timeout is None else timeout
    deadline = time.monotonic() + limit
    for gap in _context.poll_gaps():
        if pending._finished.wait(gap):
            return pending._outcome()
        wait = _seen_waiting(pending)
        if wait is not None:
            raise AssertionError(
                errors.BLOCKED_UNEXPECTEDLY.format(
                    target=_describe_target(pending), wait=wait, graph=wait.graph
                )
            )
        if time.monotonic() >= deadline:
            context.fail_timeout(pending, limit, "assert_not_blocks()")
    raise AssertionError("unreachable")  # pragma: no cover


def _assert_backend_blocks(
    backend: Observed, on: On, relation: str | None, lock: str | None, timeout: float | None
) -> Wait:
    """``assert_blocks`` for an observed backend: wait until the server shows it blocked."""
    __tracebackhide__ = True
    context = backend._context
    limit = context.settings.timeout if timeout is None else timeout
    deadline = time.monotonic() + limit
    pace = threading.Event()  # never set: paces the looks at the server
    for gap in _context.poll_gaps():
        pace.wait(gap)
        if context.monitor.is_blocked(backend.pid, context.names()):
            wait = Wait.observe(backend, context.graph())
            if wait.blockers or wait.mode:
                why = _mismatch(wait, on, relation, lock)
                if why is not None:
                    raise AssertionError(
                        errors.WRONG_WAIT.format(
                            target=_describe_backend(backend), why=why, wait=wait, graph=wait.graph
                        )
                    )
                context.timeline.record(
                    backend.name,
                    "blocked",
                    "",
                    str(wait),
                    where=caller_location(),
                    blockers=tuple(blocker.name for blocker in wait.blockers),
                )
                return wait
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                errors.BACKEND_NEVER_BLOCKED.format(
                    target=_describe_backend(backend), limit=limit, graph=context.graph()
                )
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _assert_backend_not_blocks(backend: Observed, timeout: float | None) -> None:
    """``assert_not_blocks`` for an observed backend: it goes idle without being blocked."""
    __tracebackhide__ = True
    context = backend._context
    limit = context.settings.timeout if timeout is None else timeout
    deadline = time.monotonic() + limit
    pace = threading.Event()
    for gap in _context.poll_gaps():
        pace.wait(gap)
        if context.monitor.is_blocked(backend.pid, context.names()):
            wait = Wait.observe(backend, context.graph())
            raise AssertionError(
                errors.BLOCKED_UNEXPECTEDLY.format(
                    target=_describe_backend(backend), wait=wait, graph=wait.graph
                )
            )
        state = context.monitor.query(
            f"SELECT state FROM pg_catalog.pg_stat_activity WHERE pid = {int(backend.pid)}"
        )
        if not state or state[0][0] != "active":
            return
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                errors.BACKEND_STILL_ACTIVE.format(
                    target=_describe_backend(backend), limit=limit, graph=context.graph()
                )
            )


def _describe_backend(backend: Observed) -> str:
    return f"{backend.name} (pid {backend.pid}, observed)"


def _prepare_victim(victim: Session) -> None:
    """Make ``victim`` the only session whose deadlock check can still see a new cycle."""
    __tracebackhide__ = True
    context = victim._context
    if not context.settings.manage_deadlock_timeout:
        raise PglocksError(errors.VICTIM_UNMANAGED.format(name=victim.name))
    bound = victim._wait_bound
    if bound is not None and bound < context.server_deadlock_timeout():
        raise PglocksError(
            errors.VICTIM_TIMEOUT.format(
                name=victim.name, bound=bound, server=context.server_deadlock_timeout()
            )
        )
    running = victim._last if victim.busy else None
    if running is not None and running._sent_deadlock_timeout == NEVER_FIRST:
        # Its deadlock check is held back: a release inside the block cannot make it the victim.
        raise PglocksError(errors.VICTIM_BUSY.format(name=victim.name, sql=shorten(running.sql)))
    for session in context.sessions.values():
        if session._role is not None and not session._role.can_set_deadlock_timeout:
            raise PglocksError(
                errors.VICTIM_ROLE.format(
                    victim=victim.name,
                    name=session.name,
                    role=session._role.label,
                )
            )
    deadline = time.monotonic() + context.settings.timeout
    for session in context.sessions.values():
        if session is victim:
            continue
        pending = session._last
        if pending is not None and session.busy and pending._sent_deadlock_timeout != NEVER_FIRST:
            # Its deadlock check must already have run, or it could still pick itself.
            for gap in _context.poll_gaps():
                if pending._checked.is_set() or pending.done():
                    break
                if time.monotonic() >= deadline:
                    raise PglocksError(
                        errors.VICTIM_UNCERTAIN.format(
                            victim=victim.name, name=session.name, sql=shorten(pending.sql)
                        )
                    )
                pending._checked.wait(max(gap, 0.0005))
        session._deadlock_override = NEVER_FIRST
    victim._deadlock_override = context.settings.deadlock_timeout


def _is_deadlock(exc: BaseException | None) -> bool:
    return getattr(exc, "sqlstate", None) == DEADLOCK_DETECTED


def _await_deadlock(context: _context.TestContext, start: int) -> None:
    """Wait for a deadlock after the block, until none can come: nothing runs any more, or
    every statement still running waits for a session idle in a transaction (fails at once)."""
    __tracebackhide__ = True
    timeline = context.timeline
    deadline = time.monotonic() + context.settings.timeout
    for gap in _context.poll_gaps():
        if timeline.wait_until(lambda: bool(timeline.deadlocks(start)) or not context.busy(), gap):
            return
        stuck = context.stuck()
        if stuck is not None:
            graph, waits = stuck
            raise AssertionError(
                errors.DEADLOCK_IMPOSSIBLE.format(
                    waits="; ".join(
                        f"{_describe_target(pending)} waits for "
                        + " and ".join(sorted(graph.snapshot.name(pid) for pid in idle))
                        for pending, idle in waits
                    ),
                    graph=graph,
                )
            )
        if time.monotonic() >= deadline:
            return


class expect_deadlock:
    """Assert that a deadlock (40P01) hits one of this test's sessions inside the block."""

    __module__ = "pytest_pglocks"

    def __init__(
        self, victim: Session | None = None, *, one_of: Sequence[Session] | None = None
    ) -> None:
        __tracebackhide__ = True
        if victim is not None and not isinstance(victim, Session):
            raise TypeError(errors.BAD_VICTIM.format(value=victim))
        if one_of is not None and (
            isinstance(one_of, str | Session)
            or len(one_of) < 2
            or not all(isinstance(session, Session) for session in one_of)
        ):
            raise TypeError(errors.BAD_ONE_OF.format(value=one_of))
        if victim is not None and one_of is not None:
            raise TypeError(errors.VICTIM_AND_ONE_OF)
        self._victim = victim
        self._one_of = tuple(one_of) if one_of is not None else None
        self._context = victim._context if victim is not None else _context.current()
        self._start = 0
        self._expectation = DeadlockExpectation()

    def __enter__(self) -> DeadlockExpectation:
        __tracebackhide__ = True
        if self._victim is not None:
            _prepare_victim(self._victim)
        elif not self._context.settings.manage_deadlock_timeout:
            warnings.warn(PglocksWarning(errors.DEADLOCK_TIMEOUT_UNMANAGED), stacklevel=2)
        self._start = len(self._context.timeline)
        return self._expectation

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: types.TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        context = self._context
        for session in context.sessions.values():
            session._deadlock_override = None
        if error is not None and not _is_deadlock(error):
            return False
        if not context.timeline.deadlocks(self._start):
            _await_deadlock(context, self._start)
        deadlocks = context.timeline.deadlocks(self._start)
        if not deadlocks:
            raise AssertionError(errors.NO_DEADLOCK.format(graph=context.graph())) from error
        expectation = self._expectation
        expectation.victim = got = context.sessions[deadlocks[0].session]
        expectation.survivor = _survivor(context, deadlocks[0], got)
        expectation.report = deadlock_report(deadlocks, context.names())
        wanted = (self._victim,) if self._victim is not None else self._one_of
        if wanted is not None and got not in wanted:
            raise AssertionError(
                errors.WRONG_VICTIM.format(
                    wanted=" or ".join(session.name for session in wanted),
                    got=got.name,
                    report=expectation.report,
                )
            ) from error
        return True


def _survivor(context: _context.TestContext, deadlock: Event, victim: Session) -> Pending | None:
    """The statement the victim's abort let go on: the one the server saw blocked by it."""
    for waiter, blocker in _BLOCKED_BY.findall(deadlock.detail):
        session = context.session_of(int(waiter))
        if int(blocker) == victim.pid and isinstance(session, Session):
            return session._last
    return None


def deadlock_failure(context: _context.TestContext) -> str | None:
    """The ``no_deadlock`` verdict: a report if any session of the test, or any other backend
    of its database (the server's log says), got 40P01."""
    deadlocks = context.timeline.deadlocks()
    logged = []
    if context.server_log is not None:
        logged = [d for d in context.server_log.deadlocks() if d.pid not in context.own_pids]
    if not deadlocks and not logged:
        return None
    names = context.names()
    reports = [deadlock_report(deadlocks, names)] if deadlocks else []
    reports += [logged_deadlock_report(logged, names)] if logged else []
    return errors.DEADLOCK_SEEN.format(report="\n".join(reports))
