"""Gates: pauses inside a statement, at a row trigger that waits while the gate is closed.

A gate is a ROW trigger on a table of the test's database. Its function reads the gate's current
*generation* from a sequence (sequences are not transactional, so every snapshot sees the latest
value), then takes and at once releases ``pg_advisory_lock_shared(KEY, generation)``. A
*gatekeeper* connection of the plugin holds ``pg_advisory_lock(KEY, generation)`` exclusively
while the gate is closed, so a backend reaching the trigger waits there, on the server, until
the gatekeeper lets go:

* ``open()``: the gatekeeper releases the lock; every later row passes;
* ``open(once=True)``: the gatekeeper first locks generation + 1, publishes it in the sequence,
  then releases the old generation: each held backend passes one row and stops at its next one;
* ``close()``: the gatekeeper locks a new generation and publishes it.

The trigger's name sorts first, so for each row a gate fires before the table's other triggers
of that event (an ``after insert`` gate stops a row before its foreign-key checks). The
gatekeeper only ever locks a generation nobody has asked for, so it never waits, and it is
none of the test's sessions: ``pg_isolation_test_session_is_blocked`` (``assert_blocks``) never
counts a wait at a gate as a block.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from . import errors
from ._context import poll_gaps
from .errors import PglocksError, WaitTimeout
from .monitor import WaitGraph
from .session import Pending, Session, caller_location, shorten

if TYPE_CHECKING:
    import psycopg

    from ._context import TestContext
    from .monitor import LockRow, Snapshot

__all__ = ["Gate", "describe_gate_wait"]

# The gates' advisory keys: (GATE_KEY | gate number, generation), objsubid 2 in pg_locks.
GATE_KEY = 0x706C6B00  # "plk\0"
MAX_GATES = 256
# Teardown: how long to keep trying to drop a gate whose table a running statement still holds.
TEARDOWN_LIMIT = 5.0
TEARDOWN_STATEMENT_TIMEOUT = "10s"
# Triggers of one event fire in the byte order of their names: "!" sorts before letters and
# digits, so a gate fires before the table's other triggers for the same row, foreign-key checks
# ("RI_ConstraintTrigger_...") included.
TRIGGER_PREFIX = "!"
EVENT = re.compile(r"(before|after) (insert|update|delete)( deferred)?")
RELKINDS = {
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "f": "foreign table",
    "i": "index",
    "I": "partitioned index",
    "c": "composite type",
    "t": "TOAST table",
}


LOCATE = """
SELECT c.oid::int8, c.relkind::text,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = pg_catalog.to_regclass(%s)
"""
TRY_LOCK = "SELECT pg_catalog.pg_try_advisory_lock(%s::int4, %s::int4)"
UNLOCK = "SELECT pg_catalog.pg_advisory_unlock(%s::int4, %s::int4)"
PUBLISH = "SELECT pg_catalog.setval(%s::regclass, %s::int8, true)"
HELD = """
SELECT l.pid FROM pg_catalog.pg_locks l
WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_catalog.pg_database
                    WHERE datname = pg_catalog.current_database())
  AND l.classid::int8 = %s::int8 AND l.objid::int8 = %s::int8
ORDER BY l.pid
"""
# Other backends holding a lock on the table: whether any, and whether one of them still runs
# (active and waiting for no lock), so that it may end its transaction by itself.
TABLE_HOLDERS = """
SELECT count(*) > 0,
       coalesce(bool_or(a.state = 'active' AND NOT EXISTS (
         SELECT FROM pg_catalog.pg_locks w WHERE w.pid = a.pid AND NOT w.granted)), false)
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation::int8 = %s::int8 AND l.granted
  AND a.pid <> pg_catalog.pg_backend_pid()
"""
FUNCTION_BODY = """
DECLARE
  generation int4;
BEGIN
  SELECT last_value INTO generation FROM {sequence};
  PERFORM pg_catalog.pg_advisory_lock_shared({key}, generation);
  PERFORM pg_catalog.pg_advisory_unlock_shared({key}, generation);
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END
"""

_live: dict[int, Gate] = {}  # by advisory key (the ``classid`` of its locks)
_live_lock = threading.Lock()


class _HasPid(Protocol):
    @property
    def pid(self) -> int: ...


def describe_gate_wait(lock: LockRow) -> str | None:
    """``"at gate <name>"`` when ``lock`` is a wait at a live gate (its advisory lock, or the
    transaction of a row-lock gate), else None."""
    with _live_lock:
        gates = list(_live.values())
    return next((f"at gate {gate.name}" for gate in gates if gate.awaits(lock)), None)


def _reserve(gate: Gate) -> int:
    """The lowest free gate key, now taken by ``gate``."""
    with _live_lock:
        for number in range(MAX_GATES):
            if GATE_KEY | number not in _live:
                _live[GATE_KEY | number] = gate
                return GATE_KEY | number
    raise PglocksError(
        errors.GATE_TOO_MANY.format(table=gate.table, event=gate.event, limit=MAX_GATES)
    )


def _release(key: int) -> None:
    with _live_lock:
        _live.pop(key, None)


def _activity(snapshot: Snapshot, held: list[int]) -> str:
    """One line per backend of the test: its state, its wait, its query."""
    lines = []
    for pid, name in sorted(snapshot.names.items(), key=lambda item: item[1]):
        activity = snapshot.activity.get(pid)
        if activity is None:
            lines.append(f"  {name} (pid {pid}): not connected")
            continue
        line = f"  {name} (pid {pid}): {activity.state or 'unknown state'}"
        if pid in held:
            line += ", held at this gate"
        elif activity.state == "active" and activity.wait_event_type:
            line += f", waiting for {activity.wait_event_type} {activity.wait_event}"
        if activity.query:
            line += f": {shorten(activity.query)!r}"
        lines.append(line)
    return "\n".join(lines) or "  (none)"


class Gate:
    """A pause inside statements: rows of ``table`` reaching ``event`` wait while it is closed.

    Made by ``pglocks.gate(table, event, when=...)``, closed. ``wait_reached()`` waits until a
    backend is held at it; ``open()`` lets everything through, ``open(once=True)`` lets each
    held backend through one row; ``close()`` re-arms it. It is removed at the end of the test.
    """

    __module__ = "pytest_pglocks"

    def __init__(
        self,
        context: TestContext,
        dsn: str,
        table: str,
        event: str,
        *,
        when: str | None = None,
        session: _HasPid | None = None,
        _options: str = "",
        _ispytest: bool = False,
    ) -> None:
        if not _ispytest:
            raise TypeError("gates are made by pglocks.gate(); request the fixture")
        self._context = context
        self._dsn = dsn
        self._options = f"-c client_min_messages=warning {_options}".strip()
        self.table = table
        self.when = when
        self.event = self._check_event(table, event, session)
        self.session = session
        self.name = f"{table} {self.event}"
        self._lock = threading.RLock()
        self._generation = 1
        self._armed = False
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self.key = _reserve(self)
        try:
            self._conn = self._install(event)
        except BaseException:
            _release(self.key)
            raise

    @classmethod
    def _check_event(cls, table: str, event: str, session: object) -> str:
        """The event, normalized; PglocksError or TypeError for a bad event or session."""
        normalized = " ".join(event.lower().split())
        match = EVENT.fullmatch(normalized)
        if not match or (match[3] and match[1] == "before"):
            raise PglocksError(errors.GATE_BAD_EVENT.format(table=table, event=event))
        if session is not None and not isinstance(getattr(session, "pid", None), int):
            raise TypeError(errors.GATE_BAD_SESSION.format(table=table, event=event, value=session))
        return normalized

    def awaits(self, lock: LockRow) -> bool:
        """Whether ``lock`` is a wait at this gate (its advisory lock)."""
        return lock.locktype == "advisory" and lock.objsubid == 2 and lock.classid == self.key

    def __repr__(self) -> str:
        state = "removed" if self._conn is None else "closed" if self._armed else "open"
        return f"<pytest_pglocks.Gate {self.name!r} {state}>"

    # creation

    def _install(self, event: str) -> psycopg.Connection[tuple[Any, ...]]:
        """Connect the gatekeeper, close the gate, create its trigger; the gatekeeper."""
        import psycopg

        conn = psycopg.connect(
            self._dsn, autocommit=True, application_name="pglocks:gate", options=self._options
        )
        try:
            self._table_oid, self._qualified = self._locate(conn, event)
            self._schema = f"pglocks_gate_{self.key & 0xFF:03d}_{secrets.token_hex(4)}"
            self._take(conn, self._generation)
            self._armed = True
            self._create(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _locate(self, conn: psycopg.Connection[tuple[Any, ...]], event: str) -> tuple[int, str]:
        """The table's oid and schema-qualified name; PglocksError if it is no table."""
        import psycopg

        try:
            row = conn.execute(LOCATE, (self.table,)).fetchone()
        except psycopg.Error:  # not even a name (to_regclass raises on bad syntax before 16)
            row = None
        if row is None:
            path = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()
            raise PglocksError(
                errors.GATE_NO_TABLE.format(
                    table=self.table, event=event, search_path=path[0] if path else "?"
                )
            )
        oid, relkind, qualified = row
        if relkind not in ("r", "p"):
            kind = RELKINDS.get(relkind, f"relation of kind {relkind!r}")
            raise PglocksError(
                errors.GATE_NOT_A_TABLE.format(table=self.table, event=event, kind=kind)
            )
        return int(oid), str(qualified)

    def _create(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Schema, generation sequence, trigger function and trigger, in one transaction."""
        import psycopg
        from psycopg import sql

        schema = sql.Identifier(self._schema)
        timing, operation, *deferred = self.event.upper().split()
        body = FUNCTION_BODY.format(sequence=self._sequence(conn), key=self.key)
        conditions = [sql.SQL("({})").format(sql.SQL(self.when))] if self.when else []
        if self.session is not None:  # WHEN may call functions: only that backend stops
            conditions.append(
                sql.SQL("pg_catalog.pg_backend_pid() = {}").format(sql.Literal(self.session.pid))
            )
        condition = (
            sql.SQL("WHEN ({}) ").format(sql.SQL(" AND ").join(conditions))
            if conditions
            else sql.SQL("")
        )
        # A deferred gate is a constraint trigger: it fires at COMMIT, row by row, in the order
        # the rows were queued, each before that row's deferred foreign-key checks.
        kind = sql.SQL("CONSTRAINT TRIGGER" if deferred else "TRIGGER")
        deferral = sql.SQL("DEFERRABLE INITIALLY DEFERRED " if deferred else "")
        limit = self._context.settings.timeout
        statements: list[sql.Composed] = [
            sql.SQL("CREATE SCHEMA {}").format(schema),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO PUBLIC").format(schema),
            sql.SQL("CREATE SEQUENCE {}.generation MINVALUE 1 START 1").format(schema),
            sql.SQL("GRANT SELECT ON SEQUENCE {}.generation TO PUBLIC").format(schema),
            sql.SQL(
                "CREATE FUNCTION {}.pass() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER AS {}"
            ).format(schema, sql.Literal(body)),
            sql.SQL("CREATE {} {} {} {} ON {} {}FOR EACH ROW {}EXECUTE FUNCTION {}.pass()").format(
                kind,
                sql.Identifier(TRIGGER_PREFIX + self._schema),
                sql.SQL(timing),
                sql.SQL(operation),
                sql.SQL(self._qualified),
                deferral,
                condition,
                schema,
            ),
        ]
        lock_timeout = sql.SQL("SET LOCAL lock_timeout = {}").format(
            sql.Literal(f"{max(1, round(limit * 1000))}ms")
        )
        try:
            with conn.transaction():  # one round trip: a scenario makes its gates every run
                conn.execute(sql.SQL("; ").join([lock_timeout, *statements]))
        except psycopg.Error as exc:
            why = exc.diag.message_primary or str(exc).strip()
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                why = errors.GATE_TABLE_BUSY.format(table=self._qualified, limit=limit)
            raise PglocksError(
                errors.GATE_NOT_CREATED.format(
                    table=self.table, event=self.event, when=self.when, why=why
                )
            ) from None

    def _sequence(self, conn: psycopg.Connection[tuple[Any, ...]] | None = None) -> str:
        """The generation sequence's qualified name, quoted."""
        from psycopg import sql

        return sql.SQL("{}.generation").format(sql.Identifier(self._schema)).as_string(conn)

    # the lock protocol (callers hold self._lock)

    def _take(self, conn: psycopg.Connection[tuple[Any, ...]], generation: int) -> None:
        """Hold ``generation``'s exclusive lock; nobody can have asked for it, so never waits."""
        row = conn.execute(TRY_LOCK, (self.key, generation)).fetchone()
        if not (row and row[0]):
            raise PglocksError(
                errors.GATE_KEY_TAKEN.format(
                    name=self.name,
                    key=self.key,
                    generation=generation,
                    first=GATE_KEY,
                    last=GATE_KEY | (MAX_GATES - 1),
                )
            )

    def _advance(self, conn: psycopg.Connection[tuple[Any, ...]]) -> int:
        """Lock a new generation and publish it: rows from now on wait for it. The old one."""
        old = self._generation
        self._take(conn, old + 1)
        conn.execute(PUBLISH, (self._sequence(conn), old + 1))
        self._generation = old + 1
        return old

    def _connection(self, call: str) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None:
            raise PglocksError(errors.GATE_REMOVED.format(name=self.name, call=call))
        return self._conn

    # API

    def open(self, once: bool = False) -> None:
        """Let everything through (the gate stays open); ``once=True``: let each backend held
        now through one row, then stop it (and every other) at the next one."""
        with self._lock:
            conn = self._connection("open")
            if once:
                if not self._armed:
                    raise PglocksError(errors.GATE_ONCE_OPEN.format(name=self.name))
                old = self._advance(conn)
                conn.execute(UNLOCK, (self.key, old))
                self._record("opened once")
            elif self._armed:
                conn.execute(UNLOCK, (self.key, self._generation))
                self._armed = False
                self._record("opened")

    def close(self) -> None:
        """Re-arm an open gate: rows reaching it from now on wait (no-op if it is closed)."""
        with self._lock:
            conn = self._connection("close")
            if not self._armed:
                self._advance(conn)
                self._armed = True
                self._record("closed")

    @property
    def closed(self) -> bool:
        """Whether rows reaching the gate wait."""
        return self._armed

    def report(self) -> str:
        """One line for a failure report: the gate, its state, who is held there ('' if
        the gate was removed or cannot be asked)."""
        try:
            pids = self.held()
        except Exception:  # removed, or the server is what failed: the report goes on
            return ""
        names = self._context.names()
        who = ", ".join(f"{names.get(pid, 'backend')} (pid {pid})" for pid in pids) or "nobody"
        state = "closed" if self.closed else "open"
        return f"{self.name} ({state}): holds {who}"

    def held(self) -> list[int]:
        """pids of the backends held at the gate now."""
        with self._lock:
            conn = self._connection("held")
            rows = conn.execute(HELD, (self.key, self._generation)).fetchall()
        return [int(pid) for (pid,) in rows]

    def wait_reached(
        self, session_or_pid: _HasPid | int | None = None, *, timeout: float | None = None
    ) -> int:
        """Wait until a backend (this session or pid, if given) is held at the gate; its pid.

        Looks at the server's ``pg_locks``; fails at once if the session's statement ends
        without stopping, and with ``WaitTimeout`` after ``timeout`` (the test's by default).
        """
        __tracebackhide__ = True
        pid, who, pending = self._target(session_or_pid)
        limit = self._context.settings.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        pace = pending._finished if pending is not None else threading.Event()
        for gap in poll_gaps():
            finished = pace.wait(gap)
            held = self.held()
            if pid is None and held:
                self._record(f"reached by {self._held_names(held[:1])}")
                return held[0]
            if pid is not None and pid in held:
                self._record(f"reached by {self._held_names([pid])}")
                return pid
            if finished and pending is not None:
                raise AssertionError(self._passed(pending, who, held))
            if time.monotonic() >= deadline:
                raise WaitTimeout(self._not_reached(pid, who, limit, held))
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, what: str) -> None:
        self._context.timeline.record(
            f"gate {self.name}", "gate", "", detail=what, where=caller_location()
        )

    # wait_reached's helpers

    def _target(self, who: _HasPid | int | None) -> tuple[int | None, str, Pending | None]:
        """(pid or None, how to name it, the session's statement in flight if a session)."""
        if who is None:
            return None, "a backend", None
        pid = who if isinstance(who, int) else getattr(who, "pid", None)
        if isinstance(who, bool) or not isinstance(pid, int):
            raise TypeError(errors.GATE_BAD_TARGET.format(name=self.name, value=who))
        known = self._context.session_of(pid)
        label = f"{known.name} (pid {pid})" if known is not None else f"pid {pid}"
        if not isinstance(known, Session):
            return pid, label, None
        pending = known._last
        if pending is None:
            raise PglocksError(errors.GATE_NOTHING_SENT.format(name=self.name, who=known.name))
        return pid, label, pending

    def _condition(self) -> str:
        return f"when={self.when}" if self.when else "no when= condition"

    def _held_names(self, held: list[int]) -> str:
        names = self._context.names()
        return (
            ", ".join(f"{names[pid]} (pid {pid})" if pid in names else f"pid {pid}" for pid in held)
            or "none"
        )

    def _passed(self, pending: Pending, who: str, held: list[int]) -> str:
        from .assertions import _outcome_text

        return errors.GATE_PASSED.format(
            name=self.name,
            who=who,
            sql=shorten(pending.sql),
            where=pending.where,
            outcome=_outcome_text(pending),
            condition=self._condition(),
            held=self._held_names(held),
        )

    def _not_reached(self, pid: int | None, who: str, limit: float, held: list[int]) -> str:
        names = self._context.names()
        if pid is not None and pid not in names:
            names[pid] = f"pid {pid}"
        graph = WaitGraph.build(self._context.monitor.snapshot(names))
        return errors.GATE_NOT_REACHED.format(
            name=self.name,
            who=who,
            limit=limit,
            condition=self._condition(),
            held=self._held_names(held),
            activity=_activity(graph.snapshot, held),
            graph=graph,
        )

    # teardown

    def _close(self) -> None:
        """Open every gate of the test, drop this one's objects if possible, disconnect.

        Never hangs: the drop never queues for the table's lock, and gives up when the table
        is held by a transaction that does not run (the test's database is dropped anyway; a
        trigger left behind lets every row through once its gatekeeper is gone).
        """
        with _live_lock:
            others = [gate for gate in _live.values() if gate._dsn == self._dsn]
        for gate in others:
            gate._open_quietly()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            self._drop(conn)
        finally:
            conn.close()
            _release(self.key)

    def _open_quietly(self) -> None:
        import psycopg

        with self._lock:
            if self._conn is None or not self._armed:
                return
            with contextlib.suppress(psycopg.Error):  # if the backends are gone, none is held
                self._conn.execute("SELECT pg_catalog.pg_advisory_unlock_all()")
            self._armed = False

    def _drop(self, conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
        """Drop the trigger, function and sequence unless an idle transaction holds the table."""
        import psycopg
        from psycopg import sql

        deadline = time.monotonic() + TEARDOWN_LIMIT
        pace = threading.Event()
        lock_table = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT").format(
            sql.SQL(self._qualified)
        )
        drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self._schema))
        for gap in poll_gaps():
            pace.wait(gap)
            try:
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_catalog.set_config('lock_timeout', '50ms', true), "
                        "pg_catalog.set_config('statement_timeout', %s, true)",
                        (TEARDOWN_STATEMENT_TIMEOUT,),
                    )
                    conn.execute(lock_table)
                    conn.execute(drop)
                return True
            except psycopg.errors.LockNotAvailable:
                if time.monotonic() >= deadline:
                    return False
                try:
                    row = conn.execute(TABLE_HOLDERS, (self._table_oid,)).fetchone()
                except psycopg.Error:
                    return False
                if row is not None and row[0] and not row[1]:
                    return False  # held by transactions that do not run: they will not let go
            except psycopg.Error:
                return False  # the table or the database is gone
        raise AssertionError("unreachable")  # pragma: no cover
