"""Races: scripts run side by side for many rounds, counting how each run ends.

Some races live inside one statement, where no trigger fires and no lock can be held for it
(the speculative insertion of ``INSERT ... ON CONFLICT`` against a second unique index). No
gate stops them, so ``pglocks.race()`` is the last resort: it starts the scripts together,
round after round, and counts the outcomes by SQLSTATE, keeping one whole error of each kind.
The statement a test makes is then "at least one 40P01 in 3000 rounds" for the bug and "none"
for the fix: bounded (rounds, seconds), and reproducible in what it states, not in its timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import PglocksError

if TYPE_CHECKING:
    import psycopg

    from ._context import TestContext

__all__ = ["Race", "run_race"]

SUCCESS = "00000"  # SQLSTATE successful_completion: the script ran to its end
WRONG_SQL_CLASS = "42"  # syntax error or access rule violation: the script is wrong, not racy
Script = str | Sequence[str]


@dataclass
class Race:
    """What ``pglocks.race()`` saw: how many rounds, and how the scripts' runs ended."""

    __module__ = "pytest_pglocks"

    scripts: int
    rounds: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    """SQLSTATE → how many script runs ended so (``"00000"``: ran to the end)."""
    errors: dict[str, psycopg.Error] = field(default_factory=dict)
    """SQLSTATE → the first error of that kind, whole (``.diag`` has DETAIL and CONTEXT)."""
    where: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def count(self, sqlstate: str) -> int:
        """How many script runs ended with ``sqlstate`` (``"40P01"``, or ``"00000"``)."""
        return self.counts.get(sqlstate, 0)

    def __str__(self) -> str:
        outcomes = ", ".join(f"{state} x{n}" for state, n in sorted(self.counts.items()))
        lines = [
            f"race of {self.scripts} scripts, {self.rounds} rounds in {self.seconds:.1f} s: "
            f"{outcomes or 'no run'}"
        ]
        for state, error in sorted(self.errors.items()):
            script, round_ = self.where[state]
            lines.append(f"  {state}, first in round {round_}, script {script}: {_whole(error)}")
        return "\n".join(lines)


def _whole(error: psycopg.Error) -> str:
    diag = error.diag
    parts = [diag.message_primary or str(error).strip()]
    parts += [f"DETAIL: {diag.message_detail}"] if diag.message_detail else []
    parts += [f"CONTEXT: {diag.context.strip()}"] if diag.context else []
    return "\n    ".join(parts)


class _Runner(threading.Thread):
    """One script on its own connection: waits for each round's start, runs, reports."""

    def __init__(self, number: int, conn: psycopg.Connection[Any], statements: list[str]) -> None:
        super().__init__(name=f"pglocks-race-{number}", daemon=True)
        self.number = number
        self.conn = conn
        self.statements = statements
        self.start_round = threading.Event()
        self.finished = threading.Event()
        self.outcome: tuple[str, psycopg.Error | None] = (SUCCESS, None)
        self.stopping = False
        self.crash: BaseException | None = None

    def run(self) -> None:
        import psycopg

        while True:
            self.start_round.wait()
            self.start_round.clear()
            if self.stopping:
                return
            try:
                self.outcome = (SUCCESS, None)
                try:
                    for statement in self.statements:
                        self.conn.execute(statement)
                except psycopg.Error as exc:
                    if exc.sqlstate is None:
                        raise
                    self.outcome = (exc.sqlstate, exc)
                if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.conn.execute("ROLLBACK")  # an unfinished transaction ends with its script
            except BaseException as exc:  # the connection broke: the race stops and says why
                self.crash = exc
            finally:
                self.finished.set()


def _statements(script: object, number: int) -> list[str]:
    if isinstance(script, str):
        script = [script]
    if (
        not isinstance(script, Sequence)
        or not script
        or not all(isinstance(s, str) and s.strip() for s in script)
    ):
        raise PglocksError(errors.RACE_BAD_SCRIPT.format(number=number, value=script))
    return list(script)


def run_race(
    context: TestContext,
    scripts: Sequence[Script],
    *,
    rounds: int,
    seconds: float | None,
    reset: str | None,
    stop_on: str | None,
) -> Race:
    """Run ``scripts`` together for ``rounds`` rounds (or until ``seconds`` or ``stop_on``)."""
    __tracebackhide__ = True
    import psycopg

    bodies = [_statements(script, n) for n, script in enumerate(scripts, 1)]
    if len(bodies) < 2:
        raise PglocksError(errors.RACE_TOO_FEW.format(count=len(bodies)))
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise PglocksError(errors.RACE_BAD_LIMIT.format(name="rounds", value=rounds))
    if seconds is not None and (isinstance(seconds, bool) or not seconds > 0):
        raise PglocksError(errors.RACE_BAD_LIMIT.format(name="seconds", value=seconds))
    settings = context.settings
    options = f"-c statement_timeout={max(1, round(settings.timeout * 1000))}"
    if settings.manage_deadlock_timeout:
        options += f" -c deadlock_timeout={settings.deadlock_timeout}"
    connections: list[psycopg.Connection[Any]] = []
    runners: list[_Runner] = []
    race = Race(scripts=len(bodies))
    try:
        admin = psycopg.connect(context.dsn, autocommit=True, application_name="pglocks:race")
        connections.append(admin)
        for number, body in enumerate(bodies, 1):
            conn = psycopg.connect(
                context.dsn,
                autocommit=True,
                application_name=f"pglocks:race:{number}",
                options=options,
            )
            connections.append(conn)
            runners.append(_Runner(number, conn, body))
        for runner in runners:
            runner.start()
        started = time.monotonic()
        while race.rounds < rounds:
            if seconds is not None and time.monotonic() - started >= seconds:
                break
            if reset:
                admin.execute(reset)
            race.rounds += 1
            _one_round(runners, race, settings.timeout)
            if stop_on is not None and stop_on in race.counts:
                break
        race.seconds = time.monotonic() - started
    except psycopg.Error as exc:
        raise PglocksError(errors.RACE_FAILED.format(why=str(exc).strip())) from None
    finally:
        for runner in runners:
            runner.stopping = True
            runner.start_round.set()
            runner.join(settings.timeout)
        for conn in connections:
            conn.close()
    return race


def _one_round(runners: list[_Runner], race: Race, timeout: float) -> None:
    __tracebackhide__ = True
    for runner in runners:
        runner.finished.clear()
        runner.start_round.set()
    for runner in runners:
        # Every statement is bounded by statement_timeout; this bound is for a lost server.
        if not runner.finished.wait(timeout * 2 + 5):
            raise PglocksError(errors.RACE_STUCK.format(number=runner.number, round=race.rounds))
        if runner.crash is not None:
            raise PglocksError(errors.RACE_FAILED.format(why=str(runner.crash).strip()))
        state, error = runner.outcome
        race.counts[state] = race.counts.get(state, 0) + 1
        if error is not None and state not in race.errors:
            if state.startswith(WRONG_SQL_CLASS):
                raise PglocksError(
                    errors.RACE_WRONG_SQL.format(number=runner.number, error=_whole(error))
                )
            race.errors[state] = error
            race.where[state] = (runner.number, race.rounds)
