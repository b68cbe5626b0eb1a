"""The ``pglocks`` fixture's handle: this test's database, sessions and observations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._context import TestContext, TestSettings
from ._execute import Rows, execute
from .monitor import LockRow, WaitGraph
from .server import Server
from .session import Session

if TYPE_CHECKING:
    import psycopg

    from .explore import Scenario
    from .isolation import Spec, SpecOutcome

__all__ = ["Pglocks"]


class Pglocks:
    """This test's database: ``.dsn``, ``.execute()`` for setup, sessions, locks, graph."""

    __module__ = "pytest_pglocks"

    def __init__(
        self, server: Server, dbname: str, settings: TestSettings, *, _ispytest: bool = False
    ) -> None:
        if not _ispytest:
            raise TypeError("Pglocks is created by the pglocks fixture; request the fixture")
        self.server = server
        self.dbname = dbname
        self.dsn = server.conninfo(dbname)
        self._context = TestContext(self.dsn, settings)
        self._setup_conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._scenarios: list[Scenario] = []
        # Set by the fixture from @pytest.mark.no_deadlock: explorations name the interleaving.
        self._no_deadlock = False

    def __repr__(self) -> str:
        return f"<pytest_pglocks.Pglocks {self.dbname} on {self.server.describe()}>"

    def execute(self, sql: str, params: Any = None) -> Rows | None:
        """Run setup SQL in autocommit; returns rows of the last result, or None."""
        import psycopg

        if self._setup_conn is None:
            self._setup_conn = psycopg.connect(
                self.dsn, autocommit=True, application_name="pglocks:setup"
            )
        return execute(self._setup_conn, sql, params)

    def session(self, name: str | None = None, **connect_kwargs: Any) -> Session:
        """A new session (connection on its own thread); extra arguments go to psycopg.connect."""
        if name is None:
            name = self._next_name()
        return self._context.new_session(name, dict(connect_kwargs))

    def sessions(self, *names: str | int) -> tuple[Session, ...]:
        """Several sessions: ``sessions("a", "b")`` or ``sessions(3)`` (named s1, s2, s3)."""
        if len(names) == 1 and isinstance(names[0], int):
            return tuple(self.session() for _ in range(names[0]))
        return tuple(self.session(str(name)) for name in names)

    def run_spec(self, spec: Path | str | Spec, *, timeout: float | None = None) -> SpecOutcome:
        """Run an isolation-tester spec in this test's database, with sessions of this test.

        ``spec`` is a file (a ``Path``), the spec's text (a ``str``) or a parsed ``Spec``. The
        outcome has the isolation tester's ``output`` and, per permutation, the facts: which
        steps waited for whom and which failed. ``no_deadlock`` covers its sessions.
        """
        from .isolation import parse, parse_file, run_spec

        if isinstance(spec, Path):
            spec = parse_file(spec)
        elif isinstance(spec, str):
            spec = parse(spec, "<spec text>")
        limit = self._context.settings.timeout if timeout is None else timeout
        return run_spec(spec, self._context, superuser=self.server.superuser, timeout=limit)

    def scenario(
        self,
        *,
        setup: str | list[str] | None = None,
        teardown: str | None = None,
        check: str | None = None,
    ) -> Scenario:
        """A scenario of sessions with named steps, to run in chosen or in all orders.

        ``setup`` runs before every interleaving; without ``teardown`` it runs in a fresh
        schema each time (dropped afterwards), so every interleaving starts clean. ``check``
        is a query whose rows join each interleaving's outcome.
        """
        from .explore import Scenario

        scenario = Scenario(
            self._context,
            self.server,
            setup=setup,
            teardown=teardown,
            check=check,
            forbid_deadlocks=self._no_deadlock,
            _ispytest=True,
        )
        self._scenarios.append(scenario)
        return scenario

    def locks(self) -> list[LockRow]:
        """A snapshot of ``pg_locks`` rows for this test's sessions."""
        return self._context.locks()

    def graph(self) -> WaitGraph:
        """The wait-for graph of this test's sessions now; ``str()`` reads as a report."""
        return self._context.graph()

    def _next_name(self) -> str:
        number = len(self._context.sessions) + 1
        while f"s{number}" in self._context.sessions:
            number += 1
        return f"s{number}"

    def _close(self) -> None:
        for scenario in self._scenarios:
            scenario.close()
        self._context.close()
        if self._setup_conn is not None:
            self._setup_conn.close()
            self._setup_conn = None
