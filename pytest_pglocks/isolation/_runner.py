"""Running a spec with the isolation tester's semantics, on pglocks sessions.

One control connection plus one session per spec session, kept for the whole file. Each
permutation: global setup on the control connection, session setups, then the steps: a step is
sent and reported completed, or ``<waiting ...>`` when the server says it is blocked by another
session of the spec (the test pglocks' assertions use); waiting steps are re-examined after
every later step in the order they started waiting; a step for a session still waiting first
waits for it. The output is byte for byte the isolation tester's (PostgreSQL 14 and later), as
``pg_regress`` records it (standard error included); the facts (who waited for whom, errors)
come with it as data.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .._context import TestContext, poll_gaps
from .._execute import ErrorFields, Result, connection_lost, execute, execute_results
from ..monitor import Monitor, WaitGraph
from ._spec import PermutationStep, Spec, Step
from ._table import format_table

if TYPE_CHECKING:
    import psycopg

    from ..session import Pending, Session

__all__ = ["PermutationOutcome", "SpecOutcome", "SpecRunner", "StepFact", "max_step_wait"]

DEADLOCK_DETECTED = "40P01"
TESTER_QUIET = 0.010  # the isolation tester's wait on a step's socket before a blocked check


def max_step_wait() -> float:
    """The isolation tester's ``max_step_wait``: twice ``PG_TEST_TIMEOUT_DEFAULT`` (180 s)."""
    value = os.environ.get("PG_TEST_TIMEOUT_DEFAULT", "")
    seconds = int(value) if value.isdigit() and int(value) > 0 else 180
    return 2.0 * seconds


@dataclass
class StepFact:
    """What happened to one step of a permutation."""

    step: str
    session: str
    waited: bool = False
    blocked_by: tuple[str, ...] = ()
    errors: tuple[ErrorFields, ...] = ()
    graph: str = ""  # the wait-for graph when the step was first seen waiting

    @property
    def sqlstates(self) -> tuple[str, ...]:
        return tuple(error.sqlstate or "" for error in self.errors)

    def describe(self) -> str:
        """``s2u waited for s1; ERROR 40P01 deadlock detected``."""
        parts = [self.step]
        if self.blocked_by:
            parts.append(f"waited for {', '.join(self.blocked_by)}")
        elif self.waited:
            parts.append("reported waiting")
        for error in self.errors:
            parts.append(f"{error.severity} {error.sqlstate}: {error.message}")
        return " ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if len(parts) > 1 else "")


@dataclass
class PermutationOutcome:
    """One permutation's output section and the facts of its steps."""

    steps: tuple[PermutationStep, ...]
    output: str = ""
    facts: list[StepFact] = field(default_factory=list)
    check: list[tuple[Any, ...]] | None = None  # rows of the check query, when there is one

    @property
    def title(self) -> str:
        return " ".join(step.name for step in self.steps)

    def deadlocks(self) -> list[StepFact]:
        return [fact for fact in self.facts if DEADLOCK_DETECTED in fact.sqlstates]


@dataclass
class SpecOutcome:
    """The whole output of a spec, per permutation, and why it stopped early if it did."""

    spec: Spec
    preamble: str = ""
    permutations: list[PermutationOutcome] = field(default_factory=list)
    failure: str | None = None
    seconds: float = 0.0

    @property
    def output(self) -> str:
        return self.preamble + "".join(p.output for p in self.permutations) + (self.failure or "")

    def facts(self) -> str:
        """The blocked steps and errors of every permutation, one line each."""
        lines = []
        for number, permutation in enumerate(self.permutations, 1):
            notable = [f for f in permutation.facts if f.waited or f.errors]
            lines.append(f"permutation {number}: {permutation.title}")
            lines += [f"  {fact.describe()}" for fact in notable] or ["  no step waited or failed"]
        return "\n".join(lines)


class Fatal(Exception):
    """Where the isolation tester exits: setup failed, a step timed out, steps block forever."""

    partial: PermutationOutcome | None = None  # the permutation it interrupted


@dataclass
class Active:
    """A step that was sent and is not reported completed yet."""

    pstep: PermutationStep
    step: Step
    session: Session
    pending: Pending
    fact: StepFact
    target_notices: dict[str, int] = field(default_factory=dict)


def notice_text(diagnostic: Any) -> str:
    """A notice as libpq formats it for its notice processor (DETAIL, HINT and all)."""
    result = getattr(diagnostic, "_info", None)  # the PGresult, valid during the callback
    message = getattr(result, "error_message", None)
    if isinstance(message, bytes) and message:
        return message.decode("utf-8", "replace")
    return ErrorFields(
        diagnostic.severity or "",
        diagnostic.message_primary or "",
        detail=diagnostic.message_detail,
        hint=diagnostic.message_hint,
    ).libpq_text()


def regress_options(superuser: bool) -> str:
    """The settings of PostgreSQL's regression driver, as libpq ``options``."""
    settings = {
        "DateStyle": "Postgres, MDY",
        "IntervalStyle": "postgres_verbose",
        "TimeZone": "America/Los_Angeles",
        "lc_monetary": "C",
        "lc_numeric": "C",
        "lc_time": "C",
    }
    if superuser:  # lc_messages may only be set by a superuser
        settings["lc_messages"] = "C"
    options = [f"-c {name}={value.replace(' ', chr(92) + ' ')}" for name, value in settings.items()]
    environment = os.environ.get("PGOPTIONS", "").strip()  # libpq's, after: its settings win
    return " ".join(options + [environment] if environment else options)


class RunHooks(Protocol):
    """What a scenario adds to each permutation (its gates)."""

    def after_setup(self, runner: SpecRunner) -> None:
        """The setups ran; the steps come next."""

    def before_teardown(self) -> None:
        """The steps finished (or the permutation stopped); the teardown comes next."""

    def held(self, pid: int) -> bool:
        """Whether this backend waits where the hooks hold it: a step there is waiting."""


class SpecRunner:
    """Runs one parsed spec against a database through a pglocks test context."""

    def __init__(
        self,
        spec: Spec,
        context: TestContext,
        *,
        superuser: bool,
        step_timeout: float,
        echo: Callable[[str], None] | None = None,
        managed: bool = False,
        options: str | None = None,
        check: str | None = None,
        hooks: RunHooks | None = None,
    ) -> None:
        """``managed``: sessions with pglocks' short ``deadlock_timeout`` and a deterministic
        victim (the step that closes a cycle), left transactions rolled back after each
        permutation; ``options``: libpq options instead of the regression driver's;
        ``check``: a query run on the control connection after each permutation;
        ``hooks``: called around each permutation's steps (a scenario's gates). Setup and
        teardown blocks run without a limit, as the tester's do, unless ``managed``."""
        self.hooks = hooks
        self.spec = spec
        self.context = context
        self.superuser = superuser
        self.step_timeout = step_timeout
        self.echo = echo
        self.managed = managed
        self.options = regress_options(superuser) if options is None else options
        self.check = check
        self.block_timeout = step_timeout if managed else None
        # Spec runs watch from outside the database: a spec may count its backends.
        self.monitor = context.monitor if managed else Monitor(context.dsn, database="postgres")
        self.outcome = SpecOutcome(spec)
        self._section: list[str] = []
        self._control: psycopg.Connection[tuple[Any, ...]] | None = None
        self._old_libpq = False
        self._sessions: dict[str, Session] = {}
        self._active: dict[str, Active | None] = {}
        self._notices: dict[str, list[str]] = {}
        self._notice_counts: dict[str, int] = {}
        self._notifies: dict[str, list[Any]] = {}
        self._new_notice = False

    # output

    def out(self, text: str) -> None:
        self._section.append(text)
        if self.echo is not None:
            self.echo(text)

    def _take_section(self) -> str:
        text = "".join(self._section)
        self._section.clear()
        return text

    # the run

    def run(self) -> SpecOutcome:
        """Run every permutation; the outcome holds the output and the facts."""
        started = time.monotonic()
        try:
            for warning in self.spec.warnings:
                self.out(warning + "\n")
            self.out(f"Parsed test spec with {len(self.spec.sessions)} sessions\n")
            self.start()
            self.outcome.preamble = self._take_section()
            for steps in self.spec.runs():
                self.outcome.permutations.append(self.permutation(steps))
        except Fatal as exc:
            if exc.partial is not None:
                self.outcome.permutations.append(exc.partial)
            self.out(str(exc))
            self.outcome.failure = self._take_section()
        finally:
            self.outcome.seconds = time.monotonic() - started
            self.close()
        return self.outcome

    def start(self) -> None:
        """Open the control connection and the sessions' connections."""
        self._connect()

    def permutation(self, steps: tuple[PermutationStep, ...]) -> PermutationOutcome:
        """Run one permutation; a ``Fatal`` ending the run carries the permutation so far."""
        permutation = PermutationOutcome(steps)
        try:
            self._permutation(permutation)
        except Fatal as exc:
            exc.partial = permutation
            raise
        finally:
            permutation.output = self._take_section()
        return permutation

    def close(self) -> None:
        """Close the connections; the sessions leave the context (their events stay)."""
        if self.monitor is not self.context.monitor:
            self.monitor.close()
        if self._control is not None:
            self._control.close()
            self._control = None
        for name, session in self._sessions.items():
            session._close(self.step_timeout)
            self.context.sessions.pop(name, None)
        self._sessions.clear()

    def _connect(self) -> None:
        import psycopg

        options = self.options
        prefix = f"isolation/{self.spec.name}"
        self._control = psycopg.connect(
            self.context.dsn,
            autocommit=True,
            application_name=f"{prefix}/control connection",
            options=options,
        )
        # The tester's libpq is of the server's major: before 15, it repeats the server's last
        # message in its own when the connection is lost.
        self._old_libpq = self._control.info.server_version < 150000
        for spec_session in self.spec.sessions:
            name = spec_session.name
            session = self.context.new_session(
                name,
                {"application_name": f"{prefix}/{name}", "options": options},
                managed=self.managed,
            )
            self._sessions[name] = session
            self._active[name] = None
            self._notices[name] = []
            self._notice_counts[name] = 0
            self._notifies[name] = []
            session.connection.add_notice_handler(self._notice_handler(name))
            session.connection.add_notify_handler(self._notifies[name].append)

    def _notice_handler(self, name: str) -> Callable[[Any], None]:
        def on_notice(diagnostic: Any) -> None:
            if self.managed and diagnostic.severity_nonlocalized == "LOG":
                return  # log_lock_waits messages pglocks asked for, not the test's output
            self._notices[name].append(notice_text(diagnostic))
            self.context.timeline.notify()

        return on_notice

    def _flush_notices(self, name: str) -> None:
        """Print what a session's connection received, as libpq does when the tester reads
        it; only then does a notice count for ``(step notices N)`` blockers."""
        received = list(self._notices[name])
        del self._notices[name][: len(received)]
        for text in received:
            self.out(f"{name}: {text}")
        self._notice_counts[name] += len(received)
        self._new_notice = self._new_notice or bool(received)

    # one permutation

    def _permutation(self, permutation: PermutationOutcome) -> None:
        self.out(f"\nstarting permutation: {permutation.title}\n")
        for sql in self.spec.setup:
            self._run_control(sql, "setup failed: ", fatal=True)
        self._session_blocks("setup", fatal=True)
        if self.hooks is not None:
            self.hooks.after_setup(self)
        if self.managed:
            waiting = self._steps_deferring(permutation)
        else:
            waiting = self._steps_in_order(permutation)
        waiting = self._try_complete_all(waiting, nonblock=False)
        if waiting:
            raise Fatal("failed to complete permutation due to mutually-blocking steps\n")
        self._session_blocks("teardown", fatal=False)
        if self.managed:
            self._end_transactions()
        if self.hooks is not None:
            self.hooks.before_teardown()
        if self.check is not None:
            assert self._control is not None
            permutation.check = execute(self._control, self.check)
        if self.spec.teardown is not None:
            self._run_control(self.spec.teardown, "teardown failed: ", fatal=False)

    def _session_blocks(self, which: Literal["setup", "teardown"], *, fatal: bool) -> None:
        """Every session's setup (or teardown) block, each on its own connection."""
        for spec_session in self.spec.sessions:
            sql = spec_session.setup if which == "setup" else spec_session.teardown
            if sql is not None:
                failure = f"{which} of session {spec_session.name} failed: "
                self._run_session(spec_session.name, sql, failure, fatal=fatal)

    def _steps_in_order(self, permutation: PermutationOutcome) -> list[Active]:
        """The tester's rule: a step for a session still waiting first waits for it."""
        steps = self.spec.steps()
        waiting: list[Active] = []
        for pstep in permutation.steps:
            step = steps[pstep.name]
            if self._active[step.session] is not None:
                waiting = self._wait_for_session(step.session, waiting)
            waiting = self._step(pstep, step, waiting, permutation)
        return waiting

    def _steps_deferring(self, permutation: PermutationOutcome) -> list[Active]:
        """Managed sessions: a step for a session still waiting is held back, like a client
        thread that has not returned yet, while the other sessions' steps go on."""
        steps = self.spec.steps()
        waiting: list[Active] = []
        held: dict[str, list[Step]] = {name: [] for name in self._sessions}

        def release() -> None:
            nonlocal waiting
            progress = True
            while progress:
                progress = False
                for name, queue in held.items():
                    if queue and self._active[name] is None:
                        step = queue.pop(0)
                        waiting = self._step(PermutationStep(step.name), step, waiting, permutation)
                        progress = True

        for pstep in permutation.steps:
            step = steps[pstep.name]
            if self._active[step.session] is not None or held[step.session]:
                held[step.session].append(step)
            else:
                waiting = self._step(pstep, step, waiting, permutation)
            release()
        while any(held.values()):
            self._await_any(waiting)
            waiting = self._try_complete_all(waiting, nonblock=True)
            release()
        return waiting

    def _step(
        self,
        pstep: PermutationStep,
        step: Step,
        waiting: list[Active],
        permutation: PermutationOutcome,
    ) -> list[Active]:
        """Send one step, report it, re-examine the waiting ones; the steps still waiting."""
        if self.managed:
            self._await_deadlock_checks(waiting)
        active = self._send(pstep, step)
        permutation.facts.append(active.fact)
        must_wait = self._try_complete(active, nonblock=True, retry=False)
        waiting = self._try_complete_all(waiting, nonblock=True)
        return [*waiting, active] if must_wait else waiting

    def _await_any(self, waiting: list[Active]) -> None:
        """Until one waiting step finishes; fails if none ever can, or at the timeout."""
        started = time.monotonic()
        for gap in poll_gaps():
            finished = self.context.timeline.wait_until(
                lambda: any(a.pending.done() for a in waiting), gap
            )
            if finished:
                return
            if time.monotonic() - started > self.step_timeout:
                raise Fatal(
                    f"no waiting step finished within {self.step_timeout:g} s\n{self._graph()}\n"
                )
            if all(self._stuck(active) for active in waiting):
                self._fail_if_stuck(waiting[0])

    def _send(self, pstep: PermutationStep, step: Step) -> Active:
        session = self._sessions[step.session]
        pending = session._send(
            step.sql,
            None,
            f"step {step.name}",
            results=True,
            function=step.function,
            where="",  # a spec's step: no test line sent it
        )
        active = Active(pstep, step, session, pending, StepFact(step.name, step.session))
        for blocker in pstep.blockers:
            if blocker.kind == "notices":
                other = self.spec.steps()[blocker.step or ""].session
                active.target_notices[other] = blocker.notices + self._notice_counts[other]
        self._active[step.session] = active
        return active

    def _wait_for_session(self, name: str, waiting: list[Active]) -> list[Active]:
        """A step for a session still busy with an earlier one: wait for that one first."""
        started = time.monotonic()
        while (old := self._active[name]) is not None:
            if not self._try_complete(old, nonblock=False, retry=True):
                waiting = [a for a in waiting if a is not old]
            waiting = self._try_complete_all(waiting, nonblock=True)
            if self._active[name] is not None and (
                time.monotonic() - started > 2 * self.step_timeout
            ):
                active = " ".join(a.step.name for a in self._active.values() if a is not None)
                raise Fatal(
                    f"step {old.step.name} timed out after {int(time.monotonic() - started)} "
                    f"seconds\nactive steps are: {active}\n"
                )
        return waiting

    def _try_complete_all(self, waiting: list[Active], *, nonblock: bool) -> list[Active]:
        """Re-examine waiting steps in the order they started waiting; those still waiting."""
        while True:
            self._new_notice = False
            before = len(waiting)
            have_blocker = False
            still = []
            for active in waiting:
                if self._try_complete(active, nonblock=nonblock, retry=True):
                    have_blocker = have_blocker or bool(active.pstep.blockers)
                    still.append(active)
            waiting = still
            # A completion or a notice may have satisfied another step's blocker: look again.
            if not (have_blocker and (len(waiting) < before or self._new_notice)):
                return waiting

    def _try_complete(self, active: Active, *, nonblock: bool, retry: bool) -> bool:
        """Report ``active`` completed (False) or still waiting (True); see try_complete_step."""
        step, pending = active.step, active.pending
        if not retry and any(blocker.kind == "once" for blocker in active.pstep.blockers):
            # The tester does not read the connection here: its notices print later.
            self.out(f"step {step.name}: {step.sql} <waiting ...>\n")
            self._note_wait(active, blocked_by=())
            return True
        if self._await(active, nonblock=nonblock):
            self._flush_notices(step.session)
            if not retry:
                self.out(f"step {step.name}: {step.sql} <waiting ...>\n")
            return True
        if self._has_blocker(active):
            self._flush_notices(step.session)
            if not retry:
                self.out(f"step {step.name}: {step.sql} <waiting ...>\n")
                self._note_wait(active, blocked_by=())
            return True
        self._flush_notices(step.session)
        if retry:
            self.out(f"step {step.name}: <... completed>\n")
        else:
            self.out(f"step {step.name}: {step.sql}\n")
        results = pending._results()
        lost = connection_lost(
            self._sessions[step.session].connection, results, repeating=self._old_libpq
        )
        if lost is not None:  # printed by the tester as it prints every result
            results = [*results, lost]
        self._print_results(results)
        self._print_notifies(step.session)
        active.fact.errors = tuple(r.error for r in results if r.error is not None)
        self._active[step.session] = None
        return False

    def _await(self, active: Active, *, nonblock: bool) -> bool:
        """Wait until the statement ends (False) or, with ``nonblock``, is blocked (True)."""
        pending = active.pending
        started = time.monotonic()
        cancelled = False
        for gap in self._gaps(nonblock):
            if pending._finished.wait(gap):
                return False
            if not nonblock and self.managed:
                self._fail_if_stuck(active)
            if nonblock and (self._is_blocked(pending) or self._held(pending)):
                if not self._read_input(active):
                    return False
                if not active.fact.waited:
                    graph = self._graph()
                    blockers = graph.blockers(pending.session.pid)
                    names = graph.snapshot.names
                    self._note_wait(
                        active,
                        blocked_by=tuple(sorted({names.get(p, f"pid {p}") for p in blockers})),
                    )
                    active.fact.graph = str(graph)
                return True
            elapsed = time.monotonic() - started
            if elapsed > self.step_timeout and not cancelled:
                active.session.connection.cancel_safe()
                self.out(
                    f"isolationtester: canceling step {active.step.name} after "
                    f"{int(elapsed)} seconds\n"
                )
                cancelled = True
            if elapsed > 2 * self.step_timeout:
                raise Fatal(f"step {active.step.name} timed out after {int(elapsed)} seconds\n")
        raise AssertionError("unreachable")  # pragma: no cover

    def _held(self, pending: Pending) -> bool:
        return self.hooks is not None and self.hooks.held(pending.session.pid)

    def session(self, name: str) -> Session:
        """The pglocks session that runs the spec session ``name``."""
        return self._sessions[name]

    def _is_blocked(self, pending: Pending) -> bool:
        return self.monitor.is_blocked(pending.session.pid, self.context.names())

    def _graph(self) -> WaitGraph:
        return WaitGraph.build(self.monitor.snapshot(self.context.names()))

    def _read_input(self, active: Active) -> bool:
        """Read what a step seen waiting has received (its notices), as the tester's
        ``PQconsumeInput`` does before it prints ``<waiting ...>``; False if that ended it."""
        pending = active.pending
        if active.step.function is None and not active.session._input.drain(self.step_timeout):
            pending._finished.wait(self.step_timeout)  # its result is read: it is ending
        return not pending.done()

    def _gaps(self, nonblock: bool) -> Iterator[float]:
        """Pauses between two blocked checks. Spec runs follow the isolation tester: a step is
        asked about only after ``TESTER_QUIET`` without a result (``try_complete_step``), so a
        step that one commit releases with others is not caught in a momentary wait on them."""
        if nonblock and not self.managed:
            return itertools.repeat(TESTER_QUIET)
        return poll_gaps()

    def _stuck(self, active: Active) -> set[int]:
        """Idle sessions the step waits for (directly or down a chain): it can never finish."""
        if not self._is_blocked(active.pending):
            return set()
        busy = frozenset(
            self._sessions[name].pid for name, other in self._active.items() if other is not None
        )
        idle = self._graph().idle_blockers(active.session.pid, busy)
        return set() if active.pending.done() else idle

    def _fail_if_stuck(self, active: Active) -> None:
        """Managed sessions: a step that waits for an idle session can never complete."""
        idle = self._stuck(active)
        if idle:
            graph = self._graph()
            names = " and ".join(sorted(graph.snapshot.name(pid) for pid in idle))
            raise Fatal(
                f"step {active.step.name} waits for {names}, idle in a transaction with no "
                f"step left that could end it; add a COMMIT or ROLLBACK step to {names} "
                f"(teardowns run only after every step has finished)\n{graph}\n"
            )

    def _await_deadlock_checks(self, waiting: list[Active]) -> None:
        """Managed sessions: before the next step, every waiting step's deadlock check has run.

        The check runs once per wait, ``deadlock_timeout`` after it began; once it has run for
        every waiter, only the next step can find a cycle it closes: it is the victim.
        """
        deadline = time.monotonic() + self.step_timeout
        for active in waiting:
            pending = active.pending
            while not (pending._checked.is_set() or pending._finished.is_set()):
                if not self.context.timeline.wait_until(
                    lambda p=pending: p._checked.is_set() or p._finished.is_set(),  # type: ignore[misc]
                    max(0.0, deadline - time.monotonic()),
                ):
                    return

    def _end_transactions(self) -> None:
        """Managed sessions: roll back what the steps and teardowns left open."""
        from psycopg.pq import TransactionStatus

        for name, session in self._sessions.items():
            if session.connection.info.transaction_status != TransactionStatus.IDLE:
                self._run_session(
                    name, "ROLLBACK", f"rollback of session {name} failed: ", fatal=True
                )

    def _note_wait(self, active: Active, blocked_by: tuple[str, ...]) -> None:
        active.fact.waited = True
        active.fact.blocked_by = blocked_by

    def _has_blocker(self, active: Active) -> bool:
        """A finished step is not reported completed while one of its blockers holds."""
        for blocker in active.pstep.blockers:
            if blocker.kind == "step":
                other = self.spec.steps()[blocker.step or ""]
                running = self._active[other.session]
                if running is not None and running.step.name == other.name:
                    return True
            elif blocker.kind == "notices":
                other_session = self.spec.steps()[blocker.step or ""].session
                if self._notice_counts[other_session] < active.target_notices[other_session]:
                    return True
        return False

    # printing

    def _print_results(self, results: Iterable[Result]) -> None:
        for result in results:
            if result.error is not None:
                error = result.error
                if error.severity:
                    self.out(f"{error.severity}:  {error.message}\n")
                else:
                    self.out(f"{error.message}\n")
            elif result.tuples:
                self.out(format_table(result.names, result.rows).decode("utf-8", "replace"))

    def _print_notifies(self, name: str) -> None:
        pids = {session.pid: session_name for session_name, session in self._sessions.items()}
        notifies = list(self._notifies[name])
        del self._notifies[name][: len(notifies)]
        for notify in notifies:
            sender = pids.get(notify.pid, f"PID {notify.pid}")
            self.out(
                f'{name}: NOTIFY "{notify.channel}" with payload "{notify.payload}" from {sender}\n'
            )

    # setup and teardown blocks

    def _run_control(self, sql: str, failure: str, *, fatal: bool) -> None:
        """A block on the control connection, cancelled if it outlasts ``block_timeout``."""
        assert self._control is not None
        with self._cancel_after(self._control, self.block_timeout):
            results = execute_results(self._control, sql)
        self._finish_block(results, failure, fatal=fatal, name=None)

    def control_execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on the control connection (cancelled after the step timeout)."""
        assert self._control is not None
        with self._cancel_after(self._control, self.step_timeout):
            return execute(self._control, sql) or []

    @contextmanager
    def _cancel_after(
        self, connection: psycopg.Connection[tuple[Any, ...]], seconds: float | None
    ) -> Iterator[None]:
        if seconds is None:
            yield
            return
        watchdog = threading.Timer(seconds, connection.cancel_safe)
        watchdog.start()
        try:
            yield
        finally:
            watchdog.cancel()

    def recover(self) -> None:
        """After a permutation that stopped: cancel its steps, roll back, run the teardown."""
        for name, active in self._active.items():
            if active is not None:
                active.pending._cancel(self.step_timeout)
                self._active[name] = None
        for name, session in self._sessions.items():
            self._notices[name].clear()
            self._notifies[name].clear()
            if session.connection.info.transaction_status.name != "IDLE":
                self._run_session(name, "ROLLBACK", "", fatal=False)
        if self.spec.teardown is not None:
            self._run_control(self.spec.teardown, "teardown failed: ", fatal=False)
        self._take_section()

    def _run_session(self, name: str, sql: str, failure: str, *, fatal: bool) -> None:
        pending = self._sessions[name]._send(sql, None, "setup", results=True)
        if not pending._finished.wait(self.block_timeout):
            pending._cancel(self.step_timeout)
            raise Fatal(f"{failure}ERROR:  did not finish within {self.block_timeout:g} s\n")
        self._finish_block(pending._results(), failure, fatal=fatal, name=name)

    def _finish_block(
        self, results: list[Result], failure: str, *, fatal: bool, name: str | None
    ) -> None:
        """``PQexec``'s view of a block: its error if any, else its last result."""
        if name is not None:
            self._flush_notices(name)
        error = next((r.error for r in results if r.error is not None), None)
        if error is not None:
            message = failure + error.libpq_text()
            if fatal:
                raise Fatal(message)
            self.out(message)
            return
        if results and results[-1].tuples:
            self.out(format_table(results[-1].names, results[-1].rows).decode("utf-8", "replace"))


def run_spec(
    spec: Spec,
    context: TestContext,
    *,
    superuser: bool,
    timeout: float,
    echo: Callable[[str], None] | None = None,
) -> SpecOutcome:
    """Run ``spec`` with sessions of ``context`` (which the caller closes)."""
    return SpecRunner(spec, context, superuser=superuser, step_timeout=timeout, echo=echo).run()
