"""The await forms: statements wait in a worker thread, so the event loop keeps running (here,
application tasks commit while a statement waits for them); errors come out unchanged."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg
import pytest
from fix_messages import Glob, assert_message
from fix_sessions import Connection, wait_until_waiting

from pytest_pglocks import (
    Pglocks,
    PglocksError,
    SessionBlocked,
    WaitTimeout,
    assert_blocks,
    errors,
)
from pytest_pglocks.aio import (
    aassert_blocks,
    aassert_not_blocks,
    abegin,
    acommit,
    aexecute,
    aexpect_deadlock,
    aresult,
    arollback,
    asubmit,
)

pytestmark = pytest.mark.asyncio

HERE = Glob("test_aio.py:*")
# Only a guard against a hang.
FINISH = 10.0


def visible_frames(excinfo: pytest.ExceptionInfo[BaseException]) -> list[tuple[str, str]]:
    """(file, function) of the traceback entries pytest shows (``__tracebackhide__`` applied)."""
    return [(Path(str(entry.path)).name, entry.name) for entry in excinfo.traceback.filter(excinfo)]


def machinery_frames(error: BaseException) -> list[str]:
    """Files of the asyncio, thread-pool and threading frames of ``error``'s traceback."""
    tb, found = error.__traceback__, []
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if any(part in name for part in ("/asyncio/", "/concurrent/", "threading.py")):
            found.append(name)
        tb = tb.tb_next
    return found


# the application: a task on the same event loop, with its own connection


async def before_commit() -> None:
    """The application's seam before it commits; does nothing in production."""


async def bump(dsn: str, events: list[str]) -> None:
    """Application code on the event loop: add 1 to row 1 in one transaction."""
    async with await psycopg.AsyncConnection.connect(dsn, application_name="app") as conn:
        await conn.execute("UPDATE t SET v = v + 1 WHERE k = 1")
        await before_commit()
        await conn.commit()
        events.append("app committed")


async def test_aexecute_waits_while_the_application_commits_on_the_event_loop(
    pglocks: Pglocks, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    barrier = pglocks.barrier("before_commit")
    monkeypatch.setattr(sys.modules[__name__], "before_commit", barrier.wait_async)
    events: list[str] = []
    app = asyncio.create_task(bump(pglocks.dsn, events), name="app")
    await barrier.wait_reached_async()  # the application holds row 1, uncommitted
    s1 = pglocks.session()

    async def release_once_s1_waits() -> None:
        await asyncio.to_thread(wait_until_waiting, pglocks.dsn, s1.pid)
        events.append("s1 waits")
        barrier.release()

    rows, _ = await asyncio.wait_for(
        asyncio.gather(
            aexecute(s1, "UPDATE t SET v = v * 10 WHERE k = 1 RETURNING v"),
            release_once_s1_waits(),
        ),
        FINISH,
    )
    # s1's update came after the application's + 1, committed on the loop while aexecute waited.
    assert rows == [(10,)]
    await app
    assert events == ["s1 waits", "app committed"]


async def test_asubmit_and_aresult_wait_for_the_application_without_blocking_the_loop(
    pglocks: Pglocks, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    barrier = pglocks.barrier("before_commit")
    monkeypatch.setattr(sys.modules[__name__], "before_commit", barrier.wait_async)
    events: list[str] = []
    app = asyncio.create_task(bump(pglocks.dsn, events), name="app")
    await barrier.wait_reached_async()
    s1 = pglocks.session()
    pending = await asubmit(s1, "UPDATE t SET v = v * 10 WHERE k = 1 RETURNING v")
    await asyncio.to_thread(wait_until_waiting, pglocks.dsn, s1.pid)
    assert not pending.done()
    barrier.release()  # the application can only commit while aresult() awaits
    assert await aresult(pending) == [(10,)]  # after the application's + 1
    await app
    assert events == ["app committed"]


async def test_a_row_lock_wait_between_sessions_with_the_await_forms(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    await abegin(s1)
    await aexecute(s1, "UPDATE t SET v = 1 WHERE k = 1")
    pending = await asubmit(s2, "UPDATE t SET v = 2 WHERE k = 1 RETURNING v")
    wait = await aassert_blocks(pending, on=s1, lock="transactionid")
    assert (wait.blockers, wait.locktype, wait.mode) == ((s1,), "transactionid", "ShareLock")
    await acommit(s1)
    assert await aresult(pending) == [(2,)]
    assert await aassert_not_blocks(await asubmit(s1, "SELECT v FROM t WHERE k = 1")) == [(2,)]


async def test_abegin_takes_an_isolation_level_and_arollback_ends_the_transaction(
    pglocks: Pglocks, table: str
) -> None:
    s1 = pglocks.session()
    await abegin(s1, "repeatable_read")
    assert await aexecute(s1, "SHOW transaction_isolation") == [("repeatable read",)]
    await aexecute(s1, "UPDATE t SET v = 7 WHERE k = 1")
    await arollback(s1)
    assert await aexecute(s1, "SELECT v FROM t WHERE k = 1") == [(0,)]
    with pytest.raises(PglocksError) as excinfo:
        await abegin(s1, "snapshot")
    assert_message(str(excinfo.value), errors.BAD_ISOLATION, name="s1", value="snapshot")


async def test_aexpect_deadlock_sees_the_victim_asked_for(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    await abegin(s1)
    await aexecute(s1, "UPDATE t SET v = v + 1 WHERE k = 1")
    await abegin(s2)
    await aexecute(s2, "UPDATE t SET v = v + 1 WHERE k = 2")
    waiting = await asubmit(s1, "UPDATE t SET v = v + 1 WHERE k = 2")
    await aassert_blocks(waiting, on=s2)
    async with aexpect_deadlock(victim=s2) as deadlock:
        await aexecute(s2, "UPDATE t SET v = v + 1 WHERE k = 1")
    assert deadlock.victim is s2
    assert "deadlock: s2 was chosen as the victim" in deadlock.report
    assert await aresult(waiting) is None
    await arollback(s2)
    await acommit(s1)


# errors: the same exceptions, messages and visible tracebacks as the blocking forms


async def test_a_database_error_comes_out_unchanged(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    with pytest.raises(psycopg.errors.DivisionByZero) as excinfo:
        await aexecute(s1, "SELECT 1/0")
    assert excinfo.value.__notes__ == ["pglocks: raised in session s1 by 'SELECT 1/0'"]
    assert machinery_frames(excinfo.value) == []
    assert visible_frames(excinfo) == [("test_aio.py", "test_a_database_error_comes_out_unchanged")]
    # The blocking form shows the same.
    with pytest.raises(psycopg.errors.DivisionByZero) as sync_excinfo:
        s1.execute("SELECT 1/0")
    assert visible_frames(sync_excinfo) == [
        ("test_aio.py", "test_a_database_error_comes_out_unchanged")
    ]


async def test_session_blocked_names_the_tests_line(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    await abegin(s1)
    await aexecute(s1, "UPDATE t SET v = 1 WHERE k = 1")
    with pytest.raises(SessionBlocked) as excinfo:
        await aexecute(s2, "UPDATE t SET v = 2 WHERE k = 1")
    assert_message(
        str(excinfo.value),
        errors.SESSION_BLOCKED,
        name="s2",
        call="execute()",
        sql="UPDATE t SET v = 2 WHERE k = 1",
        where=HERE,
        blockers="s1",
        verb="is",
        first="s1",
    )
    assert machinery_frames(excinfo.value) == []
    assert visible_frames(excinfo) == [("test_aio.py", "test_session_blocked_names_the_tests_line")]
    await arollback(s1)
    assert s2._last is not None
    assert await aresult(s2._last) is None  # still waiting; done once s1 let go


async def test_a_statement_timeout_comes_out_as_wait_timeout(
    pglocks: Pglocks, table: str, outsider: Connection
) -> None:
    outsider.execute("UPDATE t SET v = 1 WHERE k = 1")
    s1 = pglocks.session()
    pending = await asubmit(s1, "UPDATE t SET v = 2 WHERE k = 1")
    with pytest.raises(WaitTimeout) as excinfo:
        await aresult(pending, timeout=0.05)
    assert_message(
        str(excinfo.value),
        errors.STATEMENT_TIMEOUT,
        name="s1",
        call="result()",
        sql="UPDATE t SET v = 2 WHERE k = 1",
        where=HERE,
        limit=0.05,
    )
    assert isinstance(pending.error, psycopg.errors.QueryCanceled)
    assert machinery_frames(excinfo.value) == []


async def test_assertion_failures_come_out_unchanged(
    pglocks: Pglocks, table: str, outsider: Connection
) -> None:
    s1 = pglocks.session()
    with pytest.raises(AssertionError) as excinfo:
        await aassert_blocks(await asubmit(s1, "SELECT 1"))
    assert_message(
        str(excinfo.value),
        errors.COMPLETED_NOT_BLOCKED,
        target=Glob("s1: 'SELECT 1' (test_aio.py:*)"),
        outcome="returned 1 row",
    )
    assert visible_frames(excinfo) == [
        ("test_aio.py", "test_assertion_failures_come_out_unchanged")
    ]
    # The blocking form fails the same way.
    with pytest.raises(AssertionError) as sync_excinfo:
        assert_blocks(s1.submit("SELECT 1"))
    assert_message(
        str(sync_excinfo.value),
        errors.COMPLETED_NOT_BLOCKED,
        target=Glob("s1: 'SELECT 1' (test_aio.py:*)"),
        outcome="returned 1 row",
    )
    assert visible_frames(sync_excinfo) == visible_frames(excinfo)

    s2 = pglocks.session()
    await abegin(s2)
    await aexecute(s2, "UPDATE t SET v = 1 WHERE k = 1")
    waiting = await asubmit(s1, "UPDATE t SET v = 2 WHERE k = 1")
    with pytest.raises(AssertionError) as excinfo:
        await aassert_not_blocks(waiting)
    assert_message(
        str(excinfo.value),
        errors.BLOCKED_UNEXPECTEDLY,
        target=Glob("s1: 'UPDATE t SET v = 2 WHERE k = 1' (test_aio.py:*)"),
        wait=Glob("s1 waits for ShareLock on transaction * held by s2"),
    )
    assert machinery_frames(excinfo.value) == []
    await arollback(s2)
    assert await aresult(waiting) is None

    fresh = pglocks.session("fresh")
    with pytest.raises(PglocksError) as nothing:
        await aassert_blocks(fresh)
    assert str(nothing.value) == errors.NOTHING_SENT.format(function="assert_blocks", name="fresh")


async def test_aexpect_deadlock_fails_without_a_deadlock(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    with pytest.raises(AssertionError) as excinfo:
        async with aexpect_deadlock():
            await aexecute(s1, "SELECT 1")
    assert_message(str(excinfo.value), errors.NO_DEADLOCK)
    assert machinery_frames(excinfo.value) == []
