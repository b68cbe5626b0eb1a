"""The ``pglocks`` fixture's handle: one fresh database per test."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._execute import Rows, execute
from .server import Server

if TYPE_CHECKING:
    import psycopg

__all__ = ["Pglocks"]


class Pglocks:
    """This test's database: ``.dsn``, ``.server``, ``.execute()`` for setup."""

    __module__ = "pytest_pglocks"

    def __init__(self, server: Server, dbname: str, *, _ispytest: bool = False) -> None:
        if not _ispytest:
            raise TypeError("Pglocks is created by the pglocks fixture; request the fixture")
        self.server = server
        self.dbname = dbname
        self.dsn = server.conninfo(dbname)
        self._setup_conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def __repr__(self) -> str:
        return f"<pytest_pglocks.Pglocks {self.dbname} on {self.server.describe()}>"

    def execute(self, sql: str, params: Any = None) -> Rows | None:
        """Run setup SQL in autocommit; returns rows of the last result, or None."""
        import psycopg

        if self._setup_conn is None:
            self._setup_conn = psycopg.connect(self.dsn, autocommit=True)
        return execute(self._setup_conn, sql, params)

    def _close(self) -> None:
        if self._setup_conn is not None:
            self._setup_conn.close()
            self._setup_conn = None
