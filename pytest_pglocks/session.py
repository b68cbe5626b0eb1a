"""Sessions: one real connection each, driven on its own thread; Pending statements."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from . import errors
from ._execute import ErrorFields, Executed, Result, Rows, StepConnection, execute_results, run
from ._reading import InputWatch
from ._worker import Worker
from .errors import PglocksError

if TYPE_CHECKING:
    import psycopg

    from ._context import TestContext
    from .monitor import LockRow
    from .roles import Role

__all__ = ["Pending", "Session"]

ISOLATION_LEVELS = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")
# log_lock_waits messages, sent to the session itself: its deadlock check has run.
CHECKED_NOTICE = re.compile(r"process \d+ (still waiting|avoided deadlock|detected deadlock)")
PACKAGE_DIR = os.path.dirname(__file__)
# Seconds between two cancel requests for a statement that has not ended yet.
CANCEL_RETRY = 0.05
# Settings that end a wait by themselves: the waiter's lock_timeout and statement_timeout
# (55P03, 57014), the blocker's idle_in_transaction_session_timeout (its session ends).
WAIT_BOUNDS = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
MENTIONS_BOUND = re.compile("|".join(WAIT_BOUNDS), re.IGNORECASE)
READ_BOUNDS = "SELECT name, setting::int FROM pg_catalog.pg_settings WHERE name = ANY(%s)"


def caller_location() -> str:
    """``file.py:12`` of the first frame outside this package (where the user called us)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:  # pragma: no cover
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def shorten(sql: str, width: int = 60) -> str:
    """One line of SQL, cut to ``width`` characters."""
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def counted(executed: Executed) -> str:
    """The command tag when it counts rows (``UPDATE 2``), for reports; else nothing."""
    status = executed.status or ""
    return status if status[-1:].isdigit() else ""


def context_lines(context: str) -> str:
    """The server's CONTEXT field as psql prints it: ``CONTEXT:  while updating tuple ...``."""
    first, *rest = context.rstrip("\n").splitlines() or [""]
    return "\n".join([f"CONTEXT:  {first}", *rest])


class Pending:
    """A statement sent with ``submit()``: ``.result()``, ``.done()``, ``.error``."""

    __module__ = "pytest_pglocks"

    def __init__(self, session: Session, sql: str, future: Future[Any], where: str):
        self.session = session
        self.sql = sql
        self.where = where
        self._future = future
        self._finished = threading.Event()
        self._checked = threading.Event()  # the server ran its deadlock check for this wait
        self._sent_deadlock_timeout: str | None = None
        self._executed: Executed | None = None  # set by the session's thread on success
        future.add_done_callback(self._on_done)

    def _on_done(self, _: Future[Any]) -> None:
        self._finished.set()
        self.session._context.timeline.notify()

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        if self.done() and self.error is not None:
            state = f"failed {getattr(self.error, 'sqlstate', None) or type(self.error).__name__}"
        return f"<pytest_pglocks.Pending {self.session.name} {state} {shorten(self.sql)!r}>"

    def done(self) -> bool:
        """Whether the statement has completed (successfully or not)."""
        return self._future.done()

    @property
    def error(self) -> BaseException | None:
        """The statement's exception once it has failed; None while running or on success."""
        return self._future.exception(0) if self._future.done() else None

    @property
    def status(self) -> str | None:
        """The command tag of its last result (``UPDATE 2``); None while running or on error."""
        return self._executed.status if self._executed is not None else None

    @property
    def rowcount(self) -> int | None:
        """Rows its last result affected or returned; None while running or on error."""
        return self._executed.rowcount if self._executed is not None else None

    def _outcome(self) -> Rows | None:
        """The finished statement's rows, or its exception re-raised from the caller's frame."""
        __tracebackhide__ = True
        error = self._future.exception()
        if error is not None:
            raise error.with_traceback(None)
        rows: Rows | None = self._future.result()
        return rows

    def _results(self) -> list[Result]:
        """Every result of a finished statement sent with ``results=True`` (spec runner)."""
        results: list[Result] = self._future.result()
        return results

    def result(self, timeout: float | None = None) -> Rows | None:
        """Wait for the statement; its rows, or its error raised. Fails fast if it can't end."""
        __tracebackhide__ = True
        return self.session._context.await_pending(self, timeout, call="result()")

    async def aresult(self, timeout: float | None = None) -> Rows | None:
        """``result()`` for async tests: waits in a worker thread, not on the event loop."""
        __tracebackhide__ = True
        from .aio import aresult

        return await aresult(self, timeout)

    def _cancel(self, timeout: float) -> bool:
        """Cancel the statement on the server until it has ended; whether it ended in time.

        A cancel request that reaches the backend before the statement does is ignored (the
        worker thread may not have sent it yet), so one request is not enough: ask again.
        """
        deadline = time.monotonic() + timeout
        while not self._finished.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.session.connection.cancel_safe(timeout=remaining)
            self._finished.wait(min(CANCEL_RETRY, remaining))
        return True


class Session:
    """One real connection of this test, driven on its own thread."""

    __module__ = "pytest_pglocks"

    def __init__(
        self,
        context: TestContext,
        name: str,
        connection: psycopg.Connection[tuple[Any, ...]],
        *,
        deadlock_timeout: str | None,
        _ispytest: bool = False,
    ) -> None:
        if not _ispytest:
            raise TypeError("sessions are made by pglocks.session(); request the fixture")
        self._context = context
        self.name = name
        self.connection = connection
        self.pid: int = connection.info.backend_pid
        self._worker = Worker(name)
        self._last: Pending | None = None
        self._running: Pending | None = None
        # deadlock_timeout management (see docs/blocking.md): base, override, what is in force.
        self._deadlock_timeout = deadlock_timeout
        self._deadlock_override: str | None = None
        self._applied: str | None = deadlock_timeout
        self._set_in_transaction = False
        self._bounds: dict[str, int] = {}  # milliseconds, 0: none
        self._bounds_stale = False  # read inside a transaction: its end may undo them
        self._role: Role | None = None  # set by the context for pglocks.session(role=)
        self._input = InputWatch()  # the reads of results=True statements (spec steps)
        self._read_bounds()
        connection.add_notice_handler(self._on_notice)

    def __repr__(self) -> str:
        # libpq marks the connection active only after the worker thread sent the
        # statement, which the server may already be running: trust our own record.
        status = "ACTIVE" if self.busy else self.connection.info.transaction_status.name
        running = ""
        if self.busy:
            assert self._last is not None
            running = f" running {shorten(self._last.sql)!r}"
        return f"<pytest_pglocks.Session {self.name} pid={self.pid} [{status}]{running}>"

    @property
    def busy(self) -> bool:
        """Whether a statement of this session is still in flight."""
        return self._last is not None and not self._last.done()

    @property
    def status(self) -> str | None:
        """The command tag of its last statement (``INSERT 0 1``), as ``Pending.status``."""
        return self._last.status if self._last is not None else None

    @property
    def rowcount(self) -> int | None:
        """The row count of its last statement, as ``Pending.rowcount``."""
        return self._last.rowcount if self._last is not None else None

    def execute(self, sql: str, params: Any = None, *, timeout: float | None = None) -> Rows | None:
        """Run a statement and wait for it; raises ``SessionBlocked`` if it could never end."""
        __tracebackhide__ = True
        return self._wait(self._send(sql, params, "execute"), "execute()", timeout)

    def submit(self, sql: str, params: Any = None) -> Pending:
        """Send a statement and return at once; the statement runs on the session's thread."""
        __tracebackhide__ = True
        return self._send(sql, params, "submit")

    def begin(self, isolation: str | None = None) -> None:
        """``BEGIN``, optionally ``ISOLATION LEVEL`` (e.g. ``"repeatable read"``)."""
        __tracebackhide__ = True
        if isolation is None:
            self._wait(self._send("BEGIN", None, "begin"), "begin()")
            return
        level = " ".join(isolation.replace("_", " ").upper().split())
        if level not in ISOLATION_LEVELS:
            raise PglocksError(
                errors.BAD_ISOLATION.format(
                    name=self.name, value=isolation, levels=", ".join(ISOLATION_LEVELS)
                )
            )
        self._wait(self._send(f"BEGIN ISOLATION LEVEL {level}", None, "begin"), "begin()")

    def commit(self) -> None:
        """``COMMIT``."""
        __tracebackhide__ = True
        self._wait(self._send("COMMIT", None, "commit"), "commit()")

    def rollback(self) -> None:
        """``ROLLBACK``."""
        __tracebackhide__ = True
        self._wait(self._send("ROLLBACK", None, "rollback"), "rollback()")

    # await forms for async tests: they wait in a worker thread, not on the event loop
    # (submit() never waits: call it as it is)

    async def aexecute(
        self, sql: str, params: Any = None, *, timeout: float | None = None
    ) -> Rows | None:
        """``execute()`` for async tests."""
        __tracebackhide__ = True
        from .aio import aexecute

        return await aexecute(self, sql, params, timeout=timeout)

    async def abegin(self, isolation: str | None = None) -> None:
        """``begin()`` for async tests."""
        __tracebackhide__ = True
        from .aio import abegin

        await abegin(self, isolation)

    async def acommit(self) -> None:
        """``commit()`` for async tests."""
        __tracebackhide__ = True
        from .aio import acommit

        await acommit(self)

    async def arollback(self) -> None:
        """``rollback()`` for async tests."""
        __tracebackhide__ = True
        from .aio import arollback

        await arollback(self)

    def set(self, **gucs: Any) -> None:
        """Set server parameters for this session, e.g. ``s.set(deadlock_timeout="10ms")``."""
        __tracebackhide__ = True
        from psycopg import sql

        for name, value in gucs.items():
            # Values inline, not as parameters: the timeline and errors show what was set.
            statement = sql.SQL("SELECT pg_catalog.set_config({}, {}, false)").format(
                sql.Literal(name), sql.Literal(str(value))
            )
            self.execute(statement.as_string(None))
            if name == "deadlock_timeout":
                self._deadlock_timeout = self._applied = str(value)
        if any(name in WAIT_BOUNDS for name in gucs):
            self._read_bounds()  # the session is idle again: its connection is free

    @property
    def _wait_bound(self) -> int | None:
        """Milliseconds after which its lock_timeout or statement_timeout ends any wait."""
        bounds = [self._bounds.get(name, 0) for name in WAIT_BOUNDS[:2]]
        return min((bound for bound in bounds if bound > 0), default=None)

    @property
    def _waits_bounded(self) -> bool:
        """Whether its lock_timeout or statement_timeout ends any wait of its statements."""
        return self._wait_bound is not None

    @property
    def _idle_bounded(self) -> bool:
        """Whether idle_in_transaction_session_timeout ends its idle transactions."""
        return self._bounds.get("idle_in_transaction_session_timeout", 0) > 0

    def locks(self) -> list[LockRow]:
        """This session's rows of ``pg_locks``."""
        return [row for row in self._context.locks() if row.pid == self.pid]

    # internals

    def _wait(self, pending: Pending, call: str, timeout: float | None = None) -> Rows | None:
        __tracebackhide__ = True
        return self._context.await_pending(pending, timeout, call=call)

    def _send(
        self,
        sql: str,
        params: Any,
        call: str,
        *,
        results: bool = False,
        function: Callable[[StepConnection], Any] | None = None,
        where: str | None = None,
    ) -> Pending:
        """Queue ``sql`` on the session's thread; ``results=True``: every result, as sent;
        ``function``: call it with the session's connection instead (its error is a result)."""
        __tracebackhide__ = True
        where = caller_location() if where is None else where
        if self.busy:
            assert self._last is not None
            raise PglocksError(
                errors.SESSION_BUSY.format(
                    name=self.name,
                    call=call,
                    sql=shorten(self._last.sql),
                    where=self._last.where,
                )
            )
        self._context.timeline.record(self.name, "sent", sql, detail=call, where=where)
        pending = Pending(self, sql, Future(), where)
        # Decided here, in the caller's thread: an expect_deadlock block may end before the
        # session's thread starts the statement.
        pending._sent_deadlock_timeout = self._deadlock_override or self._deadlock_timeout
        job: Callable[[], Any]
        if function is not None:
            job = partial(self._run_function, pending, function)
        elif results:
            job = partial(self._run_results, pending)
        else:
            job = partial(self._run, pending, params)
        self._worker.put(job, pending._future)
        self._last = pending
        return pending

    def _run(self, pending: Pending, params: Any) -> Rows | None:
        """Runs on the session's thread."""
        import psycopg

        self._running = pending
        try:
            self._apply_deadlock_timeout(pending._sent_deadlock_timeout)
            executed = run(self.connection, pending.sql, params)
        except psycopg.Error as exc:
            detail = exc.diag.message_primary or str(exc).strip() or type(exc).__name__
            if exc.diag.message_detail:
                detail += "\n" + exc.diag.message_detail
            if exc.diag.context:
                detail += "\n" + context_lines(exc.diag.context)
            self._context.timeline.record(
                self.name,
                "error",
                pending.sql,
                detail=detail,
                sqlstate=exc.sqlstate,
                where=pending.where,
            )
            exc.add_note(f"pglocks: raised in session {self.name} by {shorten(pending.sql)!r}")
            raise
        finally:
            self._running = None
            self._after_statement(pending.sql)
        pending._executed = executed
        self._context.timeline.record(
            self.name, "done", pending.sql, detail=counted(executed), where=pending.where
        )
        return executed.rows

    def _run_results(self, pending: Pending) -> list[Result]:
        """Runs on the session's thread; errors are results here, recorded but not raised."""
        return self._record_results(
            pending, lambda: execute_results(self.connection, pending.sql, self._input)
        )

    def _run_function(
        self, pending: Pending, function: Callable[[StepConnection], Any]
    ) -> list[Result]:
        """Runs on the session's thread: a Python step; a database error is its result."""
        import psycopg

        def call() -> list[Result]:
            try:
                function(StepConnection(self.name, self.connection))
            except psycopg.Error as exc:
                return [Result(error=ErrorFields.from_diagnostic(exc.diag))]
            except Exception as exc:
                exc.add_note(f"pglocks: raised by {pending.sql} in session {self.name}")
                raise
            return [Result()]

        return self._record_results(pending, call)

    def _record_results(self, pending: Pending, run: Callable[[], list[Result]]) -> list[Result]:
        self._running = pending
        try:
            self._apply_deadlock_timeout(pending._sent_deadlock_timeout)
            results = run()
        finally:
            self._running = None
            self._after_statement(pending.sql)
        failed = [result.error for result in results if result.error is not None]
        for error in failed:
            self._context.timeline.record(
                self.name,
                "error",
                pending.sql,
                detail=error.message,
                sqlstate=error.sqlstate,
                where=pending.where,
            )
        if not failed:
            self._context.timeline.record(self.name, "done", pending.sql, where=pending.where)
        return results

    def _apply_deadlock_timeout(self, wanted: str | None) -> None:
        from psycopg.pq import TransactionStatus

        bound = self._wait_bound
        if bound is not None and wanted == self._context.settings.deadlock_timeout:
            server = self._context.server_deadlock_timeout()
            if bound < server:
                # Without the plugin its timeout fires before any deadlock check: keep it so,
                # and the statement gets 55P03/57014 as it would, not 40P01.
                wanted = f"{server}ms"
        status = self.connection.info.transaction_status
        if wanted is None or wanted == self._applied or status == TransactionStatus.INERROR:
            return
        if self._role is not None and not self._role.can_set_deadlock_timeout:
            return  # expect_deadlock(victim=) refuses such sessions
        self.connection.execute(
            "SELECT pg_catalog.set_config('deadlock_timeout', %s, false)", (wanted,)
        )
        self._applied = wanted
        self._set_in_transaction = status == TransactionStatus.INTRANS

    def _after_statement(self, sql: str) -> None:
        from psycopg.pq import TransactionStatus

        status = self.connection.info.transaction_status
        if self._set_in_transaction and status != TransactionStatus.INTRANS:
            # The transaction ended; a rollback would have undone our set_config.
            self._applied = None
            self._set_in_transaction = False
        if MENTIONS_BOUND.search(sql) or (self._bounds_stale and status == TransactionStatus.IDLE):
            self._read_bounds()

    def _read_bounds(self) -> None:
        """Read the settings that bound waits (a SET LOCAL or a rollback may change them)."""
        from psycopg.pq import TransactionStatus

        if self.connection.broken:
            return
        status = self.connection.info.transaction_status
        if status == TransactionStatus.INERROR:  # nothing runs; read again once it ends
            self._bounds_stale = True
            return
        rows = self.connection.execute(READ_BOUNDS, (list(WAIT_BOUNDS),)).fetchall()
        self._bounds = {name: int(value) for name, value in rows}
        self._bounds_stale = status != TransactionStatus.IDLE

    def _on_notice(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        message = diagnostic.message_primary or ""
        sql = self._running.sql if self._running else ""
        self._context.timeline.record(
            self.name,
            "notice",
            sql,
            detail=f"{diagnostic.severity}: {message}",
            where=self._running.where if self._running else "",
        )
        if self._running is not None and CHECKED_NOTICE.match(message):
            self._running._checked.set()

    def _close(self, timeout: float) -> None:
        """Cancel a statement still in flight, then close the connection and end the thread."""
        if self.busy:
            assert self._last is not None
            self._last._cancel(timeout)
        self._worker.stop(timeout)
        self.connection.close()
