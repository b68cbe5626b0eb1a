"""Per-test databases cloned from the run's template, dropped with their backends terminated."""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING

from .server import Server

if TYPE_CHECKING:
    import psycopg

CREATE_ATTEMPTS = 5


class Databases:
    """Creates and drops this process's test databases over one maintenance connection."""

    def __init__(self, server: Server, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self._counter = itertools.count(1)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.server.dsn, autocommit=True)
        return self._conn

    def create(self, name: str | None = None) -> str:
        """A new database cloned from the template (named ``name``, or numbered); its name."""
        import psycopg
        from psycopg import sql

        name = name or f"{self.prefix}_{next(self._counter):04d}"
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(self.server.template)
        )
        for attempt in range(CREATE_ATTEMPTS):
            try:
                self._connection().execute(statement)
                return name
            except psycopg.errors.ObjectInUse:
                # Someone (autovacuum on a DSN server) is in the template; the server itself
                # waited 5 s for them to leave before saying so, so this retry is bounded.
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def drop(self, name: str) -> None:
        """Drop a test database, terminating whatever is still connected to it."""
        import psycopg
        from psycopg import sql

        conn = self._connection()
        # Backends of closed connections may still be exiting; DROP ... WITH (FORCE) would then
        # wait 100 ms before looking again. Ending them first, waiting for each, is faster.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "SELECT pg_catalog.pg_terminate_backend(pid, 5000)"
                " FROM pg_catalog.pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()",
                (name,),
            )
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
