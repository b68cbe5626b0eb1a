"""The ``pglocks`` fixture's handle: this test's database, sessions and observations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import errors
from ._context import TestContext, TestSettings
from ._execute import Rows, execute
from .errors import PglocksError
from .monitor import LockRow, WaitGraph
from .server import Server
from .session import Session

if TYPE_CHECKING:
    import psycopg

    from .barriers import Barrier
    from .explore import Scenario
    from .gates import Gate
    from .isolation import Spec, SpecOutcome
    from .observe import Observed
    from .race import Race
    from .roles import Role

__all__ = ["Pglocks"]


def url_of(dsn: str) -> str:
    """A libpq conninfo string as a ``postgresql://`` URL (a socket directory in the query)."""
    from urllib.parse import quote, urlencode

    from psycopg.conninfo import conninfo_to_dict

    params = {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    host, port = params.pop("host", ""), params.pop("port", "")
    dbname = quote(params.pop("dbname", ""), safe="")
    if host.startswith("/"):  # a socket directory goes in the query
        params["host"], host = host, ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    netloc = f"{auth}{host}{':' + port if port and host else ''}"
    if port and not host:
        params["port"] = port
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{netloc}/{dbname}{query}"


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
        self._context = TestContext(server.own_conninfo(dbname), settings)
        if server.process is not None:  # a local server: its log shows every deadlock
            from .observe import ServerLog

            log = Path(server.process.root) / "server.log"
            self._context.server_log = ServerLog(log, dbname)
        self._setup_conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._scenarios: list[Scenario] = []
        self._gates: list[Gate] = []
        self._barriers: list[Barrier] = []
        self._roles: dict[str, Role] = {}
        # Set by the fixture from @pytest.mark.no_deadlock: explorations name the interleaving.
        self._no_deadlock = False

    @property
    def url(self) -> str:
        """The test's database as a ``postgresql://`` URL, for drivers and libraries that take
        no conninfo string (asyncpg, SQLAlchemy with ``postgresql+psycopg://``)."""
        return url_of(self.dsn)

    def __repr__(self) -> str:
        return f"<pytest_pglocks.Pglocks {self.dbname} on {self.server.describe()}>"

    def execute(self, sql: str, params: Any = None) -> Rows | None:
        """Run setup SQL in autocommit; returns rows of the last result, or None."""
        import psycopg

        if self._setup_conn is None:
            self._setup_conn = psycopg.connect(
                self._context.dsn, autocommit=True, application_name="pglocks:setup"
            )
        return execute(self._setup_conn, sql, params)

    def session(
        self, name: str | None = None, *, role: Role | None = None, **connect_kwargs: Any
    ) -> Session:
        """A new session (connection on its own thread), as ``role`` if given; extra arguments
        go to psycopg.connect."""
        __tracebackhide__ = True
        from .roles import Role

        if role is not None and not isinstance(role, Role):
            raise TypeError(errors.BAD_ROLE.format(value=role))
        if name is None:
            name = self._next_name()
        return self._context.new_session(name, dict(connect_kwargs), role=role)

    def role(self, name: str, *, superuser: bool = False, options: str = "") -> Role:
        """A login role for this test only (unique in the cluster, dropped after the test);
        ``options``: more CREATE ROLE options, e.g. ``"BYPASSRLS"``."""
        from .roles import create_role

        if name in self._roles:
            raise PglocksError(errors.DUPLICATE_ROLE.format(label=name))
        settings = self._context.settings
        gucs = (
            {"deadlock_timeout": settings.deadlock_timeout, "log_lock_waits": "on"}
            if settings.manage_deadlock_timeout
            else {}
        )
        self.execute("SELECT 1")  # opens the setup connection
        assert self._setup_conn is not None
        role = create_role(
            self._setup_conn,
            self.dbname,
            name,
            superuser=superuser,
            options=options,
            gucs=gucs,
            major=self.server.major,
        )
        self._roles[name] = role
        return role

    def sessions(self, *names: str | int) -> tuple[Session, ...]:
        """Several sessions: ``sessions("a", "b")`` or ``sessions(3)`` (named s1, s2, s3)."""
        __tracebackhide__ = True
        if len(names) == 1 and isinstance(names[0], int):
            return tuple(self.session() for _ in range(names[0]))
        given = [str(name) for name in names]
        for name in given:  # all checked before any connects
            if given.count(name) > 1 or name in self._context.sessions:
                raise PglocksError(errors.DUPLICATE_SESSION.format(name=name))
        created = []
        for name in given:
            created.append(self.session(name))
        return tuple(created)

    def run_spec(self, spec: Path | str | Spec, *, timeout: float | None = None) -> SpecOutcome:
        """Run an isolation-tester spec in this test's database, with sessions of this test.

        ``spec`` is a file (a ``Path``), the spec's text (a ``str``) or a parsed ``Spec``. The
        outcome has the isolation tester's ``output`` and, per permutation, the facts: which
        steps waited for whom and which failed. ``no_deadlock`` covers its sessions. A step is
        cancelled after ``timeout``: by default ``--pglocks-timeout`` (or the test's marker) if
        set, else the isolation tester's limit (360 s).
        """
        from .isolation import parse, parse_file, run_spec

        if isinstance(spec, Path):
            spec = parse_file(spec)
        elif isinstance(spec, str):
            spec = parse(spec, "<spec text>")
        limit = self._context.settings.spec_timeout if timeout is None else timeout
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

    def observe(
        self,
        application_name: str | None = None,
        *,
        pid: int | None = None,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Observed | list[Observed]:
        """A backend of the code under test, to use like a session in assertions and reports.

        By ``application_name`` (waits until such a backend connects to the test's database)
        or ``pid``; with neither, every backend now connected that the plugin did not open.
        """
        from .observe import observe

        return observe(self._context, application_name, pid, name, timeout)

    def gate(
        self,
        table: str,
        event: str,
        *,
        when: str | None = None,
        session: Session | Observed | None = None,
    ) -> Gate:
        """A pause inside statements: rows of ``table`` reaching ``event`` (``"before delete"``,
        ``"after insert"``, ``"after insert deferred"`` at COMMIT, ...) stop there, optionally
        only where ``when`` (a trigger WHEN condition on ``OLD``/``NEW``) holds and only in
        ``session``, until the gate is opened. ``"before lock"``: statements stop before
        locking a row meeting ``when`` (a condition on the columns), ``FOR UPDATE`` included."""
        from ._row_gates import ROW_LOCK_EVENT, RowGate
        from .gates import Gate

        kind = RowGate if " ".join(event.lower().split()) == ROW_LOCK_EVENT else Gate
        gate = kind(
            self._context, self.dsn, table, event, when=when, session=session, _ispytest=True
        )
        self._gates.append(gate)
        return gate

    def race(
        self,
        *scripts: str | Sequence[str],
        rounds: int = 1000,
        seconds: float | None = None,
        reset: str | None = None,
        stop_on: str | None = None,
    ) -> Race:
        """Run the scripts side by side, each on its own connection, ``rounds`` times (at most
        ``seconds``; until an outcome ``stop_on`` if given), ``reset`` before each round; how
        their runs ended, by SQLSTATE. The last resort for races no gate can stop."""
        __tracebackhide__ = True
        from .race import run_race

        return run_race(
            self._context, scripts, rounds=rounds, seconds=seconds, reset=reset, stop_on=stop_on
        )

    def barrier(self, name: str) -> Barrier:
        """A point application code (threads or asyncio tasks) stops at until released."""
        from .barriers import Barrier

        barrier = Barrier(
            name,
            timeout=self._context.settings.timeout,
            _registry=self._barriers,
            _timeline=self._context.timeline,
            _ispytest=True,
        )
        self._barriers.append(barrier)
        return barrier

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

    def _drop_roles(self) -> None:
        """Drop this test's roles, and what they own in its database, before that goes."""
        import psycopg

        from .roles import drop_roles

        if self._roles:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                drop_roles(conn, list(self._roles.values()))
            self._roles.clear()

    def _close(self) -> None:
        for barrier in self._barriers:
            barrier._close()
        for gate in self._gates:
            gate._close()
        for scenario in self._scenarios:
            scenario.close()
        self._context.close()
        if self._setup_conn is not None:
            self._setup_conn.close()
            self._setup_conn = None
