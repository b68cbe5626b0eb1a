"""Per-test databases cloned from the run's template, ahead of need, and dropped behind.

Each process of a run (the plain pytest process, or each xdist worker) keeps a small pool:
a background thread clones databases from the template before the tests ask for them (one
ahead once a test asked, up to ``ahead`` once two did), and drops the databases of finished
tests (their backends terminated) while the next test runs. A test's database is never handed
to another test; the pool is bounded, and what it still holds is dropped when the process
ends (a clone under way then is cancelled), and goes with the server anyway.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from .server import Server

CREATE_ATTEMPTS = 5
# Databases cloned ahead of need per process: enough to hide a clone behind a test.
AHEAD = 2


class Databases:
    """Hands out this process's test databases and drops them, over one maintenance connection
    used by a background thread (``pglocks:databases``)."""

    def __init__(self, server: Server, prefix: str, *, ahead: int = AHEAD) -> None:
        self.server = server
        self.prefix = prefix
        self.ahead = ahead
        self._counter = itertools.count(1)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._changed = threading.Condition()
        self._ready: deque[str] = deque()  # cloned, never handed out
        self._doomed: deque[str] = deque()  # handed out and given back: to drop
        self._waiting = 0  # create() calls waiting for a clone
        self._working = False  # the thread is cloning or dropping
        self._cloning = False
        self._asked = 0  # create() calls so far: the pool grows to ``ahead`` with the demand
        self._closing = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def create(self, template: str | None = None, *, name: str | None = None) -> str:
        """A database cloned from ``template`` (default: the run's, from the pool), for one
        test, named ``name`` (default: numbered); returns its name."""
        if name is not None or (template is not None and template != self.server.template):
            return self._clone_now(template or self.server.template, name)
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="pglocks:databases", daemon=True
                )
                self._thread.start()
            self._asked += 1
            self._waiting += 1
            try:
                while not self._ready and self._error is None:
                    self._changed.wait()
            finally:
                self._waiting -= 1
            if not self._ready:
                assert self._error is not None
                raise self._error
            name = self._ready.popleft()
            self._changed.notify_all()  # room in the pool: clone the next one
            return name

    def _clone_now(self, template: str, name: str | None) -> str:
        """A clone of another template (a project's schema) or of a given name: made now, on
        its own connection; given back like any other."""
        import psycopg

        with psycopg.connect(self.server.own_conninfo(), autocommit=True) as conn:
            return self._clone_over(conn, template, name)

    def drop(self, name: str) -> None:
        """Give back a test's database: it is dropped in the background, its backends ended."""
        with self._changed:
            self._doomed.append(name)
            self._changed.notify_all()

    def settle(self) -> None:
        """Wait until the pool is full and every given-back database is dropped."""
        with self._changed:
            while self._error is None and (
                self._working or self._doomed or (self._thread and self._should_clone())
            ):
                self._changed.wait()

    def close(self) -> None:
        """Drop every database still given back or cloned ahead, and stop the thread."""
        with self._changed:
            self._closing = True
            cloning = self._cloning
            self._changed.notify_all()
        if cloning and self._conn is not None:  # a clone no test will use: cancel, not wait
            with contextlib.suppress(Exception):
                self._conn.cancel_safe()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with contextlib.suppress(Exception):  # the server may be gone: its databases with it
            for name in [*self._doomed, *self._ready]:
                self._drop(name)
        self._doomed.clear()
        self._ready.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # the background thread

    def _work(self) -> None:
        try:
            while True:
                with self._changed:
                    while not self._closing and not self._doomed and not self._should_clone():
                        self._changed.wait()
                    if self._closing:
                        return
                    # A waiting test comes first, unless ``ahead`` databases wait to be dropped:
                    # both queues stay bounded, however fast the tests come.
                    clone = self._should_clone() and (
                        not self._doomed or (self._waiting > 0 and len(self._doomed) < self.ahead)
                    )
                    doomed = None if clone else self._doomed.popleft()
                    self._working = True
                    self._cloning = doomed is None
                if doomed is not None:
                    self._drop(doomed)
                    cloned = None
                else:
                    cloned = self._clone()
                with self._changed:
                    if cloned is not None:
                        self._ready.append(cloned)
                    self._working = self._cloning = False
                    self._changed.notify_all()
        except BaseException as exc:  # reported to the next test that asks for a database
            with self._changed:
                if not self._closing:  # else: the clone close() cancelled
                    self._error = exc
                self._working = self._cloning = False
                self._changed.notify_all()

    def _should_clone(self) -> bool:
        return len(self._ready) < min(self.ahead, self._asked)

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.server.own_conninfo(), autocommit=True)
        return self._conn

    def _clone(self, template: str | None = None) -> str:
        """Clone ``template`` (default: the run's) over the pool's connection."""
        return self._clone_over(self._connection(), template or self.server.template)

    def _clone_over(
        self, conn: psycopg.Connection[tuple[object, ...]], template: str, name: str | None = None
    ) -> str:
        import psycopg
        from psycopg import sql

        name = name or f"{self.prefix}_{next(self._counter):04d}"
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        for attempt in range(CREATE_ATTEMPTS):
            try:
                conn.execute(statement)
                return name
            except psycopg.errors.ObjectInUse:
                # Someone (autovacuum on a DSN server) is in the template; the server itself
                # waited 5 s for them to leave before saying so, so this retry is bounded.
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self, name: str) -> None:
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
