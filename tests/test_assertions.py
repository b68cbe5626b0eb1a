"""assert_blocks, assert_not_blocks: blocked as the isolation tester means it, by whom, on what."""

from __future__ import annotations

from fnmatch import fnmatchcase

import psycopg
import pytest
from fix_messages import Glob, assert_message
from fix_sessions import Connection

from pytest_pglocks import (
    Pglocks,
    PglocksError,
    Session,
    Wait,
    WaitTimeout,
    assert_blocks,
    assert_not_blocks,
    errors,
)

HERE = Glob("test_assertions.py:*")


def row_lock_wait(pglocks: Pglocks) -> tuple[Session, Session]:
    """s1 updated row 1 and stays in its transaction; s2 has sent an update of the same row."""
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.submit("UPDATE t SET v = 2 WHERE k = 1")
    return s1, s2


# what counts as blocked


def test_a_slow_statement_that_waits_for_no_lock_is_not_blocked(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    assert assert_not_blocks(s1.submit("SELECT pg_sleep(0.2), 'slept'")) == [  # sleep-ok
        ("", "slept")
    ]  # sleep-ok: slow statement


def test_assert_blocks_fails_when_the_statement_completes(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    with pytest.raises(AssertionError) as excinfo:
        assert_blocks(s1.submit("SELECT pg_sleep(0.2)"))  # sleep-ok: slow statement
    assert_message(
        str(excinfo.value),
        errors.COMPLETED_NOT_BLOCKED,
        target=Glob(
            "s1: 'SELECT pg_sleep(0.2)' (test_assertions.py:*)"  # sleep-ok
        ),  # sleep-ok: slow statement
        outcome="returned 1 row",
    )


def test_assert_blocks_fails_when_the_statement_fails_instead(pglocks: Pglocks, table: str) -> None:
    s1 = pglocks.session()
    with pytest.raises(AssertionError) as excinfo:
        assert_blocks(s1.submit("INSERT INTO t VALUES (1, 0)"))
    assert_message(
        str(excinfo.value),
        errors.COMPLETED_NOT_BLOCKED,
        outcome=Glob("failed with 23505 duplicate key value violates unique constraint*"),
    )


def test_a_row_lock_wait_is_blocked_on_the_transaction_holding_the_row(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = row_lock_wait(pglocks)
    wait = assert_blocks(s2, on=s1)
    assert isinstance(wait, Wait)
    assert wait.waiter is s2
    assert wait.blockers == (s1,)
    assert (wait.locktype, wait.mode, wait.relation) == ("transactionid", "ShareLock", "t")
    assert fnmatchcase(str(wait), "s2 waits for ShareLock on transaction * held by s1")
    # The same wait, asserted by lock type, by mode and by the relation of the row.
    assert assert_blocks(s2, on=s1, lock="transactionid").blockers == (s1,)
    assert assert_blocks(s2, lock="ShareLock").mode == "ShareLock"
    assert assert_blocks(s2, on="t").relation == "t"
    s1.commit()
    assert assert_not_blocks(s2) is None


def test_assert_blocks_on_the_wrong_session_fails_naming_both(pglocks: Pglocks, table: str) -> None:
    s1, s2 = row_lock_wait(pglocks)
    s3 = pglocks.session()
    with pytest.raises(AssertionError) as excinfo:
        assert_blocks(s2, on=s3)
    assert_message(
        str(excinfo.value),
        errors.WRONG_WAIT,
        target=Glob("s2: 'UPDATE t SET v = 2 WHERE k = 1' (test_assertions.py:*)"),
        why="blocked by s1, not s3",
        wait=Glob("s2 waits for ShareLock on transaction * held by s1"),
        graph=Glob("wait-for graph:*"),
    )
    s1.rollback()
    assert_not_blocks(s2)


def test_assert_blocks_on_several_sessions_wants_exactly_those(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2, s3 = pglocks.sessions(3)
    for holder in (s1, s2):
        holder.begin()
        holder.execute("LOCK TABLE t IN SHARE MODE")
    s3.begin()
    pending = s3.submit("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    wait = assert_blocks(pending, on=[s1, s2], lock="relation")
    assert set(wait.blockers) == {s1, s2}
    assert (wait.locktype, wait.mode, wait.relation) == ("relation", "AccessExclusiveLock", "t")
    assert "s3 waits for AccessExclusiveLock on t held by s1 (ShareLock)" in str(wait)
    assert "s3 waits for AccessExclusiveLock on t held by s2 (ShareLock)" in str(wait)
    with pytest.raises(AssertionError) as excinfo:
        assert_blocks(pending, on=[s1])
    assert_message(str(excinfo.value), errors.WRONG_WAIT, why="blocked by s1 and s2, not s1")
    s1.commit()
    assert_blocks(pending, on=(s2,))
    s2.commit()
    assert pending.result() is None
    s3.commit()


def test_assert_blocks_on_a_relation_name(pglocks: Pglocks, table: str) -> None:
    pglocks.execute("CREATE TABLE other (a int)")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("LOCK TABLE t IN EXCLUSIVE MODE")
    pending = s2.submit("INSERT INTO t VALUES (4, 0)")
    assert assert_blocks(pending, on="t").relation == "t"
    assert assert_blocks(pending, on="public.t").relation == "t"  # schema-qualified works too
    with pytest.raises(AssertionError) as excinfo:
        assert_blocks(pending, on="other")
    assert_message(str(excinfo.value), errors.WRONG_WAIT, why="waiting on relation t, not other")
    s1.rollback()
    assert_not_blocks(pending)


def test_a_wait_for_a_tuple_lock_is_on_the_session_queued_ahead(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2, s3 = pglocks.sessions(3)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.begin()
    s2.submit("UPDATE t SET v = 2 WHERE k = 1")
    assert_blocks(s2, on=s1)
    third = s3.submit("UPDATE t SET v = 3 WHERE k = 1")
    wait = assert_blocks(third, on=s2, lock="tuple")
    assert (wait.locktype, wait.mode, wait.relation) == ("tuple", "ExclusiveLock", "t")
    assert fnmatchcase(str(wait), "s3 waits for ExclusiveLock on tuple (*,1) of t held by s2")
    s1.rollback()
    assert_not_blocks(s2)
    assert_blocks(third, on=s2, lock="transactionid")  # now it waits for s2's transaction
    s2.rollback()
    assert_not_blocks(third)


def test_a_lock_table_wait_is_a_relation_lock(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("SELECT * FROM t")
    s2.begin()
    pending = s2.submit("LOCK TABLE t")
    wait = assert_blocks(pending, on=s1, lock="relation")
    assert (wait.locktype, wait.mode, wait.relation) == ("relation", "AccessExclusiveLock", "t")
    assert str(wait) == "s2 waits for AccessExclusiveLock on t held by s1 (AccessShareLock)"
    s1.commit()
    assert_not_blocks(pending)


def test_an_advisory_lock_wait(pglocks: Pglocks) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.execute("SELECT pg_advisory_lock(42)")  # session level: s1 holds it while idle
    pending = s2.submit("SELECT pg_advisory_lock(42)")
    wait = assert_blocks(pending, on=s1, lock="advisory")
    assert (wait.locktype, wait.mode, wait.relation) == ("advisory", "ExclusiveLock", None)
    assert str(wait) == "s2 waits for ExclusiveLock on advisory lock 42 held by s1"
    s1.execute("SELECT pg_advisory_unlock(42)")
    assert_not_blocks(pending)


def test_a_two_part_advisory_key_reads_as_a_pair(pglocks: Pglocks) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.execute("SELECT pg_advisory_lock_shared(7, 8)")
    pending = s2.submit("SELECT pg_advisory_lock(7, 8)")
    assert str(assert_blocks(pending, on=s1)) == (
        "s2 waits for ExclusiveLock on advisory lock (7,8) held by s1 (ShareLock)"
    )
    s1.execute("SELECT pg_advisory_unlock_all()")
    assert_not_blocks(pending)


@pytest.mark.parametrize(
    ("args", "key"),
    [("42", 42), ("-1", -1), ("7, 8", (7, 8)), ("-7, 8", (-7, 8))],
)
def test_the_wait_carries_the_awaited_lock_with_its_advisory_key(
    pglocks: Pglocks, args: str, key: int | tuple[int, int]
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.execute(f"SELECT pg_advisory_lock({args})")
    wait = assert_blocks(s2.submit(f"SELECT pg_advisory_lock({args})"), on=s1)
    assert wait.lock is not None
    assert (wait.lock.locktype, wait.lock.mode, wait.lock.granted) == (
        "advisory",
        "ExclusiveLock",
        False,
    )
    assert (wait.lock.session, wait.lock.pid, wait.lock.advisory_key) == ("s2", s2.pid, key)
    s1.execute("SELECT pg_advisory_unlock_all()")
    assert_not_blocks(s2)


def test_the_wait_carries_the_awaited_transaction_id(pglocks: Pglocks, table: str) -> None:
    s1, s2 = row_lock_wait(pglocks)
    xid = s1.execute("SELECT pg_current_xact_id()::text")
    wait = assert_blocks(s2, on=s1)
    assert wait.lock is not None
    assert (wait.lock.locktype, wait.lock.transactionid) == ("transactionid", xid and xid[0][0])
    assert wait.lock.advisory_key is None
    s1.rollback()
    assert_not_blocks(s2)


def test_assert_blocks_checks_blocker_relation_and_lock_at_once(
    pglocks: Pglocks, table: str
) -> None:
    pglocks.execute("CREATE TABLE other (k int)")
    s1, s2 = row_lock_wait(pglocks)
    wait = assert_blocks(s2, on=s1, relation="t", lock="transactionid")
    assert (wait.relation, wait.locktype) == ("t", "transactionid")
    with pytest.raises(AssertionError) as excinfo:
        assert_blocks(s2, on=s1, relation="other", lock="transactionid")
    assert_message(
        str(excinfo.value),
        errors.WRONG_WAIT,
        target=Glob("s2: 'UPDATE t SET v = 2 WHERE k = 1' (test_assertions.py:*)"),
        why="waiting on relation t, not other",
    )
    with pytest.raises(TypeError) as type_error:
        assert_blocks(s2, on=s1, relation=s1)  # type: ignore[arg-type]
    assert_message(str(type_error.value), errors.BAD_RELATION, value=s1)
    s1.rollback()
    assert_not_blocks(s2)


def test_a_safe_snapshot_wait_is_blocked_without_a_lock(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin(isolation="serializable")
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.execute("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE")
    pending = s2.submit("SELECT count(*) FROM t")
    wait = assert_blocks(pending, on=s1)
    assert (wait.locktype, wait.mode) == (None, None)
    assert str(wait) == "s2 waits for a safe snapshot until s1 finishes"
    s1.commit()
    assert pending.result() == [(3,)]


def test_assert_blocks_checks_the_lock_it_is_given(pglocks: Pglocks, table: str) -> None:
    s1, s2 = row_lock_wait(pglocks)
    with pytest.raises(AssertionError) as excinfo:
        assert_blocks(s2, on=s1, lock="tuple")
    assert_message(
        str(excinfo.value),
        errors.WRONG_WAIT,
        why="waiting for ShareLock on a transactionid lock, not tuple",
    )
    with pytest.raises(AssertionError):
        assert_blocks(s2, lock="AccessExclusiveLock")
    s1.rollback()
    assert_not_blocks(s2)


def test_assert_not_blocks_fails_naming_the_blocker(pglocks: Pglocks, table: str) -> None:
    s1, s2 = row_lock_wait(pglocks)
    with pytest.raises(AssertionError) as excinfo:
        assert_not_blocks(s2)
    assert_message(
        str(excinfo.value),
        errors.BLOCKED_UNEXPECTEDLY,
        target=Glob("s2: 'UPDATE t SET v = 2 WHERE k = 1' (test_assertions.py:*)"),
        wait=Glob("s2 waits for ShareLock on transaction * held by s1"),
    )
    s1.rollback()
    assert_not_blocks(s2)


def test_assert_not_blocks_returns_rows_or_raises_the_statements_error(
    pglocks: Pglocks, table: str
) -> None:
    s1 = pglocks.session()
    assert assert_not_blocks(s1.submit("SELECT k FROM t ORDER BY k")) == [(1,), (2,), (3,)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        assert_not_blocks(s1.submit("INSERT INTO t VALUES (1, 0)"))


# targets


def test_a_session_target_means_its_latest_statement(pglocks: Pglocks, table: str) -> None:
    s1, s2 = row_lock_wait(pglocks)
    assert assert_blocks(s2).waiter is s2
    s3 = pglocks.session()
    with pytest.raises(PglocksError) as excinfo:
        assert_blocks(s3)
    assert_message(str(excinfo.value), errors.NOTHING_SENT, function="assert_blocks", name="s3")
    with pytest.raises(PglocksError) as excinfo:
        assert_not_blocks(s3)
    assert_message(str(excinfo.value), errors.NOTHING_SENT, function="assert_not_blocks")
    s1.rollback()
    assert_not_blocks(s2)


def test_a_target_that_is_not_a_session_or_pending_is_a_type_error(pglocks: Pglocks) -> None:
    with pytest.raises(TypeError) as excinfo:
        assert_blocks("s1")  # type: ignore[arg-type]
    assert_message(str(excinfo.value), errors.BAD_TARGET, function="assert_blocks", value="s1")


# timeouts


def test_assert_blocks_gives_up_at_its_timeout_and_cancels_the_statement(
    pglocks: Pglocks,
) -> None:
    s1 = pglocks.session()
    pending = s1.submit("SELECT pg_sleep(30)")  # sleep-ok: slow statement
    with pytest.raises(WaitTimeout) as excinfo:
        assert_blocks(pending, timeout=0.3)
    assert isinstance(excinfo.value, AssertionError)
    assert_message(
        str(excinfo.value),
        errors.NEVER_BLOCKED,
        target=Glob("s1: 'SELECT pg_sleep(30)' (test_assertions.py:*)"),  # sleep-ok: slow statement
        limit=0.3,
        graph="wait-for graph: no session of this test waits for another",
    )
    assert isinstance(pending.error, psycopg.errors.QueryCanceled)
    assert s1.execute("SELECT 1") == [(1,)]


def test_assert_not_blocks_gives_up_at_its_timeout_and_cancels_the_statement(
    pglocks: Pglocks,
) -> None:
    s1 = pglocks.session()
    pending = s1.submit("SELECT pg_sleep(30)")  # sleep-ok: slow statement
    with pytest.raises(WaitTimeout) as excinfo:
        assert_not_blocks(pending, timeout=0.3)
    assert_message(
        str(excinfo.value),
        errors.STATEMENT_TIMEOUT,
        name="s1",
        call="assert_not_blocks()",
        sql="SELECT pg_sleep(30)",  # sleep-ok: slow statement
        limit=0.3,
    )
    assert isinstance(pending.error, psycopg.errors.QueryCanceled)
    assert s1.execute("SELECT 1") == [(1,)]


@pytest.mark.pglocks(timeout=0.3)
def test_the_marker_timeout_is_the_default_limit_of_an_assertion(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    with pytest.raises(WaitTimeout) as excinfo:
        assert_blocks(s1.submit("SELECT pg_sleep(30)"))  # sleep-ok: slow statement
    assert_message(str(excinfo.value), errors.NEVER_BLOCKED, limit=0.3)


def test_a_wait_on_a_connection_outside_the_test_never_counts_as_blocked(
    pglocks: Pglocks, table: str, outsider: Connection
) -> None:
    outsider.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    s1 = pglocks.session()
    pending = s1.submit("SELECT count(*) FROM t")
    with pytest.raises(WaitTimeout):
        assert_blocks(pending, timeout=0.3)
    assert isinstance(pending.error, psycopg.errors.QueryCanceled)
    outsider.rollback()
    assert assert_not_blocks(s1.submit("SELECT count(*) FROM t")) == [(3,)]
