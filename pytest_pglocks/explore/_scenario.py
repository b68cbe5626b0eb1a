"""Scenarios: sessions with named steps, run in one order or in every order that matters."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import errors
from .._context import TestContext
from .._execute import StepConnection
from ..errors import PglocksError
from ..isolation._runner import Fatal, SpecRunner
from ..isolation._spec import PermutationStep, Session, Spec, Step
from ._footprint import Footprint, read_catalog, session_footprints
from ._orders import StepRef, brute_force_count, count, orders
from ._results import Exploration, Interleaving

if TYPE_CHECKING:
    from ..gates import Gate
    from ..server import Server

__all__ = ["Scenario", "ScenarioGate", "ScenarioSession"]

SCHEMA = "pglocks_scenario"
StepBody = str | Callable[[StepConnection], Any]
Expectation = Callable[[Interleaving], bool]


@dataclass
class ScenarioSession:
    """A session of a scenario: optional setup and teardown, and its steps in order."""

    scenario: Scenario = field(repr=False)
    name: str
    setup: str | None = None
    teardown: str | None = None
    steps: list[tuple[str, StepBody]] = field(default_factory=list)

    def step(self, name: str, body: StepBody) -> ScenarioSession:
        """Add a step: SQL, or a callable taking the session's ``StepConnection``."""
        self.scenario._claim(name, "step")
        self.steps.append((name, body))
        return self

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self.steps)


@dataclass
class ScenarioGate:
    """A gate of a scenario: closed at the start of every run, opened by its own step.

    Made by ``scenario.gate(table, event, when=..., session=..., open_step=...)``. A step held
    at it counts as waiting, as a step blocked by a lock does, so the scenario's other steps go
    on; the step ``open_step`` (in a session of its own) lets it through.
    """

    table: str
    event: str
    when: str | None
    session: str | None
    open_step: str
    live: Gate | None = field(default=None, repr=False)

    def open(self, _connection: StepConnection) -> None:
        """The body of the gate's step: let everything through. A held statement's deadlock
        check ran for its wait at the gate; its next wait gets a check of its own, which the
        runner awaits before the next step, so the victim stays the step closing a cycle."""
        from ..session import Session

        live = self.live
        assert live is not None, "a scenario gate's step runs only within a run"
        for pid in live.held():
            session = live._context.session_of(pid)
            if isinstance(session, Session) and session._last is not None:
                session._last._checked.clear()
        live.open()


class _GateHooks:
    """Around each run's steps: the scenario's gates made after its setup, removed after."""

    def __init__(self, scenario: Scenario, gates: list[ScenarioGate], options: str) -> None:
        self.scenario = scenario
        self.gates = gates
        self.options = options

    def after_setup(self, runner: SpecRunner) -> None:
        from ..gates import Gate

        context = self.scenario._context
        for gate in self.gates:
            session = runner.session(gate.session) if gate.session is not None else None
            gate.live = Gate(
                context,
                context.dsn,
                gate.table,
                gate.event,
                when=gate.when,
                session=session,
                _options=self.options,
                _ispytest=True,
            )

    def before_teardown(self) -> None:
        for gate in self.gates:
            live, gate.live = gate.live, None
            if live is not None:
                live._close()

    def held(self, pid: int) -> bool:
        return any(gate.live is not None and pid in gate.live.held() for gate in self.gates)


class Scenario:
    """Sessions with named steps over a clean state, run in chosen or all orders."""

    __module__ = "pytest_pglocks"

    def __init__(
        self,
        context: TestContext,
        server: Server,
        *,
        setup: str | Sequence[str] | None = None,
        teardown: str | None = None,
        check: str | None = None,
        forbid_deadlocks: bool = False,
        _ispytest: bool = False,
    ) -> None:
        if not _ispytest:
            raise TypeError("scenarios are made by pglocks.scenario(); request the fixture")
        # Its own sessions: names may repeat across scenarios (a control variant), and only
        # the scenario decides which of its deadlocks are failures.
        self._context = TestContext(context.dsn, context.settings, own_pids=context.own_pids)
        self._server = server
        self.setup = [setup] if isinstance(setup, str) else list(setup or ())
        self.teardown = teardown
        self.check = check
        self.sessions: list[ScenarioSession] = []
        self._names: set[str] = set()
        self._forbid_deadlocks = forbid_deadlocks
        self._runner: SpecRunner | None = None
        self._footprints: dict[str, Footprint] | None = None
        self.gates: list[ScenarioGate] = []

    def __repr__(self) -> str:
        sessions = ", ".join(f"{s.name}: {' '.join(s)}" for s in self.sessions)
        return f"<pytest_pglocks.Scenario {sessions}>"

    # building

    def session(
        self, name: str, *, setup: str | None = None, teardown: str | None = None
    ) -> ScenarioSession:
        """A new session; add its steps with ``.step(name, sql_or_callable)``."""
        self._claim(name, "session")
        session = ScenarioSession(self, name, setup, teardown)
        self.sessions.append(session)
        return session

    def gate(
        self,
        table: str,
        event: str,
        *,
        when: str | None = None,
        session: str | None = None,
        open_step: str,
    ) -> ScenarioGate:
        """A gate made closed at the start of every run (after the setup), as
        ``pglocks.gate(table, event, when=..., session=...)`` makes it, with ``session`` a
        session of this scenario; ``open_step`` names the step that opens it, alone in a
        session of the same name, so that exploring puts the opening at every point."""
        if session is not None and session not in {s.name for s in self.sessions}:
            raise PglocksError(errors.SCENARIO_GATE_SESSION.format(session=session))
        self._claim(open_step, "step")
        gate = ScenarioGate(table, event, when, session, open_step)

        def opener(connection: StepConnection) -> None:
            gate.open(connection)

        opener.__qualname__ = f"open gate {table} {' '.join(event.lower().split())}"
        self.sessions.append(ScenarioSession(self, open_step, steps=[(open_step, opener)]))
        self.gates.append(gate)
        return gate

    def _claim(self, name: str, what: str) -> None:
        if name in self._names:
            raise PglocksError(errors.SCENARIO_DUPLICATE.format(what=what, name=name))
        if self._runner is not None:
            raise PglocksError(errors.SCENARIO_STARTED.format(what=what, name=name))
        self._names.add(name)

    def steps(self) -> list[str]:
        return [name for session in self.sessions for name in session]

    # running

    def run(self, order: Sequence[str]) -> Interleaving:
        """Run the steps in ``order`` (names) from a clean state."""
        known = set(self.steps())
        for name in order:
            if name not in known:
                raise PglocksError(
                    errors.SCENARIO_UNKNOWN_STEP.format(name=name, steps=", ".join(self.steps()))
                )
        interleaving = self._run(tuple(order))
        why = Verdict(None, None, self._forbid_deadlocks).forbidden(interleaving)
        if why is not None:
            raise AssertionError(
                errors.FORBIDDEN_RUN.format(
                    order=interleaving,
                    outcome=interleaving.outcome,
                    why=why,
                    report=interleaving.report(),
                )
            )
        return interleaving

    def count(self, *, reduce: bool = True) -> tuple[int, int]:
        """(interleavings ``explore()`` would run, all interleavings)."""
        lengths = [len(session.steps) for session in self.sessions]
        return count(lengths, self._independence() if reduce else None), brute_force_count(lengths)

    def explore(
        self,
        *,
        allowed: Collection[str | Sequence[str]] | None = None,
        expect: Expectation | None = None,
        control: Scenario | None = None,
        limit: int | None = None,
        reduce: bool = True,
    ) -> Exploration:
        """Run every interleaving that matters; fail on the first forbidden outcome.

        ``allowed``: the outcomes allowed, as sets of SQLSTATEs (``"ok"`` or ``()`` for no
        error, ``"23505"``, ``("23505", "40001")``). ``expect``: a predicate on each
        ``Interleaving``. ``control``: a variant that must produce a forbidden outcome.
        """
        exploration = self._explore(limit, reduce)
        verdict = Verdict(allowed, expect, self._forbid_deadlocks)
        for index, interleaving in enumerate(exploration.interleavings, 1):
            why = verdict.forbidden(interleaving)
            if why is not None:
                raise AssertionError(
                    errors.FORBIDDEN_OUTCOME.format(
                        index=index,
                        run=exploration.run,
                        order=interleaving,
                        outcome=interleaving.outcome,
                        why=why,
                        report=interleaving.report(),
                        table=exploration.table(),
                    )
                )
        if control is not None:
            exploration.control = control._explore_control(verdict, limit, reduce)
        return exploration

    def _explore_control(self, verdict: Verdict, limit: int | None, reduce: bool) -> Exploration:
        if not verdict.has_expectation and not verdict.deadlocks:
            verdict = Verdict(None, None, deadlocks=True)
        exploration = self._explore(limit, reduce)
        if not any(verdict.forbidden(i) is not None for i in exploration.interleavings):
            raise AssertionError(
                errors.CONTROL_PASSED.format(run=exploration.run, table=exploration.table())
            )
        return exploration

    def _explore(self, limit: int | None, reduce: bool) -> Exploration:
        import time

        lengths = [len(session.steps) for session in self.sessions]
        independent = self._independence() if reduce else None
        total, brute_force = count(lengths, independent), brute_force_count(lengths)
        limit = limit or self._context.settings.explore_limit
        if total > limit:
            raise PglocksError(
                errors.EXPLORE_LIMIT.format(count=total, brute_force=brute_force, limit=limit)
            )
        started = time.monotonic()
        runs = [self._run(self._names_of(order)) for order in orders(lengths, independent)]
        return Exploration(runs, brute_force, time.monotonic() - started)

    def _names_of(self, order: list[StepRef]) -> tuple[str, ...]:
        return tuple(self.sessions[s].steps[i][0] for s, i in order)

    def _run(self, order: tuple[str, ...]) -> Interleaving:
        runner = self._start()
        try:
            permutation = runner.permutation(tuple(PermutationStep(name) for name in order))
        except Fatal as exc:
            output = exc.partial.output if exc.partial else ""
            if runner.hooks is not None:
                runner.hooks.before_teardown()
            runner.recover()  # the next run starts clean again
            raise PglocksError(
                errors.SCENARIO_STOPPED.format(
                    order=" ".join(order), reason=str(exc).strip(), output=output
                )
            ) from None
        return Interleaving(order, permutation.facts, permutation.check, permutation.output)

    # the engine

    def _spec(self) -> Spec:
        if not self.sessions or not all(session.steps for session in self.sessions):
            raise PglocksError(errors.SCENARIO_EMPTY)
        setup, teardown = list(self.setup), self.teardown
        if self.setup and teardown is None:  # a fresh schema for every run
            setup = [f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}", *setup]
            teardown = f"DROP SCHEMA {SCHEMA} CASCADE"
        sessions = [
            Session(
                session.name,
                [
                    Step(
                        name,
                        body if isinstance(body, str) else f"<{_describe(body)}>",
                        session.name,
                        0,
                        function=None if isinstance(body, str) else body,
                    )
                    for name, body in session.steps
                ],
                session.setup,
                session.teardown,
            )
            for session in self.sessions
        ]
        return Spec("scenario", setup, teardown, sessions, [])

    def _start(self) -> SpecRunner:
        if self._runner is None:
            options = f"-c search_path={SCHEMA},public" if self.setup and not self.teardown else ""
            self._runner = SpecRunner(
                self._spec(),
                self._context,
                superuser=self._server.superuser,
                step_timeout=self._context.settings.timeout,
                managed=True,
                options=options,
                check=self.check,
                hooks=_GateHooks(self, self.gates, options) if self.gates else None,
            )
            self._runner.start()
        return self._runner

    def _independence(self) -> Callable[[StepRef, StepRef], bool]:
        """Whether two steps of different sessions commute, from what they touch."""
        footprints = self._read_footprints()
        by_ref = {
            (s, i): footprints[name]
            for s, session in enumerate(self.sessions)
            for i, (name, _) in enumerate(session.steps)
        }
        return lambda a, b: not by_ref[a].conflicts(by_ref[b])

    def _read_footprints(self) -> dict[str, Footprint]:
        if self._footprints is None:
            runner = self._start()
            for sql in runner.spec.setup:
                runner.control_execute(sql)
            try:
                catalog = read_catalog(runner.control_execute)
            finally:
                if runner.spec.teardown is not None:
                    runner.control_execute(runner.spec.teardown)
            self._footprints = {}
            for session in self.sessions:
                bodies = [body if isinstance(body, str) else None for _, body in session.steps]
                parts = session_footprints(bodies, session.setup, catalog)
                for (name, _), part in zip(session.steps, parts, strict=True):
                    self._footprints[name] = part
        return self._footprints

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self._context.close()


@dataclass(frozen=True)
class Verdict:
    """Which outcomes are forbidden: not in ``allowed``, failing ``expect``, or deadlocks."""

    allowed: Collection[str | Sequence[str]] | None
    expect: Expectation | None
    deadlocks: bool = False

    @property
    def has_expectation(self) -> bool:
        return self.allowed is not None or self.expect is not None

    def allowed_sets(self) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for item in self.allowed or ():
            if isinstance(item, str):
                out.add(() if item in ("ok", "") else (item,))
            else:
                out.add(tuple(sorted(item)))
        return out

    def forbidden(self, interleaving: Interleaving) -> str | None:
        """Why this interleaving's outcome is forbidden, or None."""
        if self.deadlocks and interleaving.deadlocked:
            return " (a deadlock, and the test is marked no_deadlock)"
        if self.allowed is not None and interleaving.sqlstates not in self.allowed_sets():
            allowed = sorted(self.allowed_sets())
            return f" (SQLSTATEs {list(interleaving.sqlstates)} are not among allowed {allowed})"
        if self.expect is not None and not self.expect(interleaving):
            return f" (expect={_describe(self.expect)} returned false)"
        return None


def _describe(function: Callable[..., Any]) -> str:
    return getattr(function, "__qualname__", None) or repr(function)
