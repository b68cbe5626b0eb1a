"""Row-lock gates: a pause before a statement locks a row, where no trigger fires.

``SELECT ... FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE`` locks rows without firing a
trigger, so the gate of ``pglocks.gate(table, "before lock", when=...)`` is a row lock itself:
while it is closed, the gatekeeper's transaction holds the rows meeting ``when`` (a condition on
the table's columns, read when the gate closes) ``FOR UPDATE``. A statement that reaches one of
them waits on the gatekeeper's transaction, exactly where it would wait on a session holding
that row: after the rows before it are locked, before that row and those after it. ``open()``
ends the gatekeeper's transaction; ``close()`` locks the rows again.

The gatekeeper is none of the test's sessions, so ``assert_blocks`` never counts a wait at the
gate as a block, as with trigger gates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .errors import PglocksError
from .gates import Gate

if TYPE_CHECKING:
    import psycopg

    from .monitor import LockRow

__all__ = ["ROW_LOCK_EVENT", "RowGate"]

ROW_LOCK_EVENT = "before lock"
# Backends waiting for a lock the gatekeeper holds (its transaction id, or a tuple of its rows).
# (pg_locks, unlike pg_stat_activity, is read afresh within the gatekeeper's transaction.)
HELD = """
SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l
WHERE NOT l.granted AND %s = ANY (pg_catalog.pg_blocking_pids(l.pid))
ORDER BY l.pid
"""


class RowGate(Gate):
    """A gate at the row locks of ``table``: rows meeting ``when`` are held while it is closed.

    Made by ``pglocks.gate(table, "before lock", when=...)``. Stops every statement that locks,
    updates or deletes those rows (``SKIP LOCKED`` skips them, ``NOWAIT`` fails, as for any
    locked row); ``open(once=True)`` and ``session=`` are for trigger gates only.
    """

    __module__ = "pytest_pglocks"

    _xid: str | None = None

    @classmethod
    def _check_event(cls, table: str, event: str, session: object) -> str:
        if session is not None:
            raise PglocksError(errors.ROW_GATE_SESSION.format(table=table))
        return ROW_LOCK_EVENT

    def _install(self, event: str) -> psycopg.Connection[tuple[Any, ...]]:
        """Connect the gatekeeper and lock the gate's rows; the gatekeeper."""
        import psycopg

        conn = psycopg.connect(
            self._dsn, autocommit=True, application_name="pglocks:gate", options=self._options
        )
        try:
            self._table_oid, self._qualified = self._locate(conn, event)
            self._pid = conn.info.backend_pid
            self._lock_rows(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _lock_rows(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Begin the gatekeeper's transaction and lock the rows, never waiting for them."""
        import psycopg
        from psycopg import sql

        where = sql.SQL(" WHERE ({})").format(sql.SQL(self.when)) if self.when else sql.SQL("")
        query = sql.SQL("SELECT FROM {}{} FOR UPDATE NOWAIT").format(
            sql.SQL(self._qualified), where
        )
        conn.execute("BEGIN")
        try:
            count = len(conn.execute(query).fetchall())
            row = conn.execute("SELECT pg_catalog.pg_current_xact_id()::xid::text").fetchone()
        except psycopg.Error as exc:
            conn.execute("ROLLBACK")
            why = exc.diag.message_primary or str(exc).strip()
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                why = errors.ROW_GATE_BUSY
            raise PglocksError(
                errors.GATE_NOT_CREATED.format(
                    table=self.table, event=self.event, when=self.when, why=why
                )
            ) from None
        if count == 0:
            conn.execute("ROLLBACK")
            raise PglocksError(
                errors.ROW_GATE_NO_ROWS.format(
                    table=self.table, when=self.when, qualified=self._qualified
                )
            )
        self._xid = row[0] if row else None
        self._armed = True

    def awaits(self, lock: LockRow) -> bool:
        """Whether ``lock`` is a wait at this gate (on the gatekeeper's transaction)."""
        return lock.locktype == "transactionid" and self._armed and lock.transactionid == self._xid

    def open(self, once: bool = False) -> None:
        """Let every held statement go on (ends the gatekeeper's transaction)."""
        with self._lock:
            conn = self._connection("open")
            if once:
                raise PglocksError(errors.ROW_GATE_ONCE.format(name=self.name))
            if self._armed:
                conn.execute("ROLLBACK")
                self._armed = False
                self._xid = None
                self._record("opened")

    def close(self) -> None:
        """Lock the rows meeting ``when`` again (fails if a session holds one of them now)."""
        with self._lock:
            conn = self._connection("close")
            if not self._armed:
                self._lock_rows(conn)
                self._record("closed")

    def held(self) -> list[int]:
        """pids of the backends waiting for a row the gate holds."""
        with self._lock:
            conn = self._connection("held")
            if not self._armed:
                return []
            rows = conn.execute(HELD, (self._pid,)).fetchall()
        return [int(pid) for (pid,) in rows]

    def _open_quietly(self) -> None:
        import contextlib

        import psycopg

        with self._lock:
            if self._conn is None or not self._armed:
                return
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("ROLLBACK")
            self._armed = False
            self._xid = None

    def _drop(self, conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
        return True  # nothing was created: the rows go free with the gatekeeper's transaction
