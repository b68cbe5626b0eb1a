"""Sessions: real connections on their own threads, statements in flight, waits that cannot end."""

from __future__ import annotations

import psycopg
import pytest
from fix_messages import Glob, assert_message
from fix_sessions import Connection, wait_until_waiting

from pytest_pglocks import (
    Pending,
    Pglocks,
    PglocksError,
    Session,
    SessionBlocked,
    WaitTimeout,
    assert_blocks,
    assert_not_blocks,
    errors,
)

HERE = Glob("test_session.py:*")
NO_EDGES = "wait-for graph: no session of this test waits for another"


def status(pglocks: Pglocks, session: Session) -> tuple[str, str | None]:
    """``(state, wait_event_type)`` of the session's backend, read by another connection."""
    rows = pglocks.execute(
        "SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s", (session.pid,)
    )
    assert rows is not None
    return rows[0]


# the connection


def test_a_session_is_a_real_connection_named_after_the_session(pglocks: Pglocks) -> None:
    alice = pglocks.session("alice")
    assert isinstance(alice.connection, psycopg.Connection)
    assert alice.name == "alice"
    assert alice.execute("SELECT pg_backend_pid(), current_database()") == [
        (alice.pid, pglocks.dbname)
    ]
    assert pglocks.execute(
        "SELECT application_name, datname FROM pg_stat_activity WHERE pid = %s", (alice.pid,)
    ) == [("alice", pglocks.dbname)]


def test_connect_arguments_reach_psycopg(pglocks: Pglocks) -> None:
    session = pglocks.session("app", application_name="billing-worker")
    assert session.execute("SHOW application_name") == [("billing-worker",)]
    assert session.name == "app"


def test_a_session_cannot_be_made_without_the_fixture(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    with pytest.raises(TypeError, match=r"pglocks\.session\(\)"):
        Session(s1._context, "rogue", s1.connection, deadlock_timeout=None)


def test_sessions_by_count_are_named_s1_to_sn(pglocks: Pglocks) -> None:
    sessions = pglocks.sessions(3)
    assert [session.name for session in sessions] == ["s1", "s2", "s3"]
    assert len({session.pid for session in sessions}) == 3
    assert pglocks.session().name == "s4"
    assert [session.name for session in pglocks.sessions("reader", "writer")] == [
        "reader",
        "writer",
    ]
    names = pglocks.execute(
        "SELECT application_name FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY 1",
        ([session.pid for session in sessions],),
    )
    assert names == [("s1",), ("s2",), ("s3",)]


def test_a_duplicate_session_name_is_refused(pglocks: Pglocks) -> None:
    pglocks.sessions("s1", "s2")
    with pytest.raises(PglocksError) as excinfo:
        pglocks.session("s2")
    assert_message(str(excinfo.value), errors.DUPLICATE_SESSION, name="s2")
    assert [session.name for session in pglocks.sessions(2)] == ["s3", "s4"]  # taken: skipped


# statements


def test_execute_returns_the_rows_of_the_last_result_set(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    assert s1.execute("SELECT 1, 'a' UNION ALL SELECT 2, 'b' ORDER BY 1") == [(1, "a"), (2, "b")]
    assert s1.execute("SELECT %s::int * 2", (21,)) == [(42,)]
    assert s1.execute("SELECT 1; SELECT 2, 3") == [(2, 3)]
    assert s1.execute("SELECT 1 WHERE false") == []


def test_execute_returns_none_when_the_last_statement_has_no_result_rows(
    pglocks: Pglocks,
) -> None:
    s1 = pglocks.session()
    assert s1.execute("CREATE TABLE u (a int)") is None
    assert s1.execute("SELECT 1; INSERT INTO u VALUES (1)") is None
    assert s1.execute("INSERT INTO u VALUES (2) RETURNING a") == [(2,)]


def test_a_failing_statement_raises_psycopgs_own_error_with_a_note_naming_the_session(
    pglocks: Pglocks, table: str
) -> None:
    s1 = pglocks.session()
    with pytest.raises(psycopg.errors.UniqueViolation) as excinfo:
        s1.execute("INSERT INTO t VALUES (1, 0)")
    assert excinfo.value.sqlstate == "23505"
    assert "pglocks: raised in session s1 by 'INSERT INTO t VALUES (1, 0)'" in (
        excinfo.value.__notes__
    )
    assert s1.execute("SELECT count(*) FROM t") == [(3,)]  # autocommit: still usable


def test_a_submitted_statements_error_is_kept_and_raised_by_result(
    pglocks: Pglocks, table: str
) -> None:
    s1 = pglocks.session()
    pending = s1.submit("INSERT INTO t VALUES (2, 0)")
    with pytest.raises(psycopg.errors.UniqueViolation) as excinfo:
        pending.result()
    assert pending.done()
    assert pending.error is excinfo.value
    assert repr(pending) == "<pytest_pglocks.Pending s1 failed 23505 'INSERT INTO t VALUES (2, 0)'>"


def test_submit_returns_at_once_and_result_waits_for_the_statement(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    pending = s2.submit("SELECT count(*) FROM t")  # could never return if submit waited
    assert isinstance(pending, Pending)
    assert (pending.sql, pending.session) == ("SELECT count(*) FROM t", s2)
    assert not pending.done()
    assert pending.error is None
    assert repr(pending) == "<pytest_pglocks.Pending s2 running 'SELECT count(*) FROM t'>"
    assert_blocks(pending, on=s1)
    s1.commit()
    assert pending.result() == [(3,)]
    assert pending.done()
    assert pending.error is None
    assert repr(pending) == "<pytest_pglocks.Pending s2 done 'SELECT count(*) FROM t'>"


@pytest.mark.parametrize(
    ("call", "send"),
    [
        ("submit", lambda s: s.submit("SELECT 2")),
        ("execute", lambda s: s.execute("SELECT 2")),
        ("begin", lambda s: s.begin()),
        ("commit", lambda s: s.commit()),
    ],
    ids=["submit", "execute", "begin", "commit"],
)
def test_a_session_refuses_a_second_statement_while_one_is_in_flight(
    pglocks: Pglocks, table: str, call: str, send: object
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    pending = s2.submit("SELECT count(*) FROM t")
    with pytest.raises(PglocksError) as excinfo:
        send(s2)  # type: ignore[operator]
    assert_message(
        str(excinfo.value),
        errors.SESSION_BUSY,
        name="s2",
        call=call,
        sql="SELECT count(*) FROM t",
        where=HERE,
    )
    s1.rollback()
    assert pending.result() == [(3,)]
    assert s2.execute("SELECT 2") == [(2,)]  # free again once the statement ended


# transactions and settings


def test_begin_commit_and_rollback_drive_a_transaction(pglocks: Pglocks, table: str) -> None:
    s1 = pglocks.session()
    s1.begin()
    s1.execute("DELETE FROM t WHERE k = 1")
    s1.rollback()
    assert pglocks.execute("SELECT count(*) FROM t") == [(3,)]
    s1.begin()
    s1.execute("DELETE FROM t WHERE k = 1")
    assert pglocks.execute("SELECT count(*) FROM t") == [(3,)]  # not committed yet
    s1.commit()
    assert pglocks.execute("SELECT count(*) FROM t") == [(2,)]


@pytest.mark.parametrize(
    ("isolation", "shown"),
    [
        ("repeatable read", "repeatable read"),
        ("SERIALIZABLE", "serializable"),
        ("read_committed", "read committed"),
    ],
)
def test_begin_takes_an_isolation_level(pglocks: Pglocks, isolation: str, shown: str) -> None:
    s1 = pglocks.session()
    s1.begin(isolation=isolation)
    assert s1.execute("SHOW transaction_isolation") == [(shown,)]
    s1.commit()
    assert s1.execute("SHOW transaction_isolation") == [("read committed",)]


def test_a_bad_isolation_level_is_refused_before_anything_is_sent(pglocks: Pglocks) -> None:
    s1 = pglocks.session()
    with pytest.raises(PglocksError) as excinfo:
        s1.begin(isolation="snapshot")
    assert_message(
        str(excinfo.value),
        errors.BAD_ISOLATION,
        name="s1",
        value="snapshot",
        levels="READ UNCOMMITTED, READ COMMITTED, REPEATABLE READ, SERIALIZABLE",
    )
    assert s1.connection.info.transaction_status.name == "IDLE"


def test_set_changes_server_parameters_of_that_session_only(pglocks: Pglocks) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.set(deadlock_timeout="50ms", lock_timeout="2s")
    assert s1.execute("SHOW deadlock_timeout") == [("50ms",)]
    assert s1.execute("SHOW lock_timeout") == [("2s",)]
    assert s1.execute("SHOW deadlock_timeout") == [("50ms",)]  # it stays in force
    assert s2.execute("SHOW deadlock_timeout") == [("10ms",)]


def test_session_locks_lists_the_sessions_own_lock_rows(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("LOCK TABLE t IN SHARE MODE")
    s2.begin()
    s2.execute("LOCK TABLE t IN ROW SHARE MODE")
    mine = s1.locks()
    assert {row.pid for row in mine} == {s1.pid}
    assert {row.session for row in mine} == {"s1"}
    assert [(row.locktype, row.mode, row.granted) for row in mine if row.relation == "t"] == [
        ("relation", "ShareLock", True)
    ]
    assert {row.pid for row in pglocks.locks()} == {s1.pid, s2.pid}
    s1.commit()
    assert [row for row in s1.locks() if row.relation == "t"] == []


def test_the_repr_of_a_session_shows_its_state(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    assert repr(s1) == f"<pytest_pglocks.Session s1 pid={s1.pid} [IDLE]>"
    s1.begin()
    s1.execute("LOCK TABLE t")
    assert repr(s1) == f"<pytest_pglocks.Session s1 pid={s1.pid} [INTRANS]>"
    pending = s2.submit("SELECT * FROM t")
    assert_blocks(pending, on=s1)
    assert (
        repr(s2) == f"<pytest_pglocks.Session s2 pid={s2.pid} [ACTIVE] running 'SELECT * FROM t'>"
    )
    s1.rollback()
    pending.result()


# waits that cannot end: SessionBlocked


def test_execute_blocked_by_a_session_idle_in_transaction_raises_session_blocked(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    # With the default 10 s timeout, waiting would end in WaitTimeout, not SessionBlocked.
    with pytest.raises(SessionBlocked) as excinfo:
        s2.execute("UPDATE t SET v = 2 WHERE k = 1")
    assert isinstance(excinfo.value, AssertionError)
    assert_message(
        str(excinfo.value),
        errors.SESSION_BLOCKED,
        name="s2",
        call="execute()",
        sql="UPDATE t SET v = 2 WHERE k = 1",
        where=HERE,
        blockers="s1",
        verb="is",
        waits=Glob("s2 waits for ShareLock on transaction * held by s1"),
        first="s1",
        graph=Glob("wait-for graph:\n  s2 waits for ShareLock on transaction * held by s1"),
    )
    assert "s2.submit(...)" in str(excinfo.value)
    # The statement is still waiting; once s1 lets go it ends normally.
    assert_blocks(s2, on=s1)
    s1.rollback()
    assert assert_not_blocks(s2) is None
    assert pglocks.execute("SELECT v FROM t WHERE k = 1") == [(2,)]


def test_session_blocked_follows_a_wait_chain_to_the_idle_session(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2, s3 = pglocks.sessions(3)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.begin()
    s2.execute("UPDATE t SET v = 2 WHERE k = 2")
    middle = s2.submit("UPDATE t SET v = 2 WHERE k = 1")
    assert_blocks(middle, on=s1)
    with pytest.raises(SessionBlocked) as excinfo:
        s3.execute("UPDATE t SET v = 3 WHERE k = 2")  # waits on s2, which waits on idle s1
    assert_message(
        str(excinfo.value),
        errors.SESSION_BLOCKED,
        name="s3",
        call="execute()",
        blockers="s1",
        waits=Glob("s3 waits for ShareLock on transaction * held by s2"),
        first="s1",
    )
    s1.rollback()
    middle.result()
    s2.commit()
    assert_not_blocks(s3)


def test_pending_result_raises_session_blocked_too(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("LOCK TABLE t IN EXCLUSIVE MODE")
    pending = s2.submit("UPDATE t SET v = 5 WHERE k = 3 RETURNING k")
    with pytest.raises(SessionBlocked) as excinfo:
        pending.result()
    assert_message(
        str(excinfo.value),
        errors.SESSION_BLOCKED,
        name="s2",
        call="result()",
        sql="UPDATE t SET v = 5 WHERE k = 3 RETURNING k",
        blockers="s1",
        waits="s2 waits for RowExclusiveLock on t held by s1 (ExclusiveLock)",
    )
    s1.commit()
    assert pending.result() == [(3,)]


def test_a_safe_snapshot_wait_on_an_idle_session_raises_session_blocked(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin(isolation="serializable")
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.execute("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE")
    with pytest.raises(SessionBlocked) as excinfo:
        s2.execute("SELECT count(*) FROM t")
    assert "s2 waits for a safe snapshot until s1 finishes" in str(excinfo.value)
    s1.commit()
    assert assert_not_blocks(s2) == [(3,)]


# command tags and row counts


def test_pending_and_session_give_the_command_tag_and_row_count(
    pglocks: Pglocks, table: str
) -> None:
    s1 = pglocks.session()
    assert (s1.status, s1.rowcount) == (None, None)
    pending = s1.submit("UPDATE t SET v = 1 WHERE k < 3")
    assert pending.result() is None
    assert (pending.status, pending.rowcount) == ("UPDATE 2", 2)
    s1.execute("INSERT INTO t VALUES (1, 0) ON CONFLICT DO NOTHING")
    assert (s1.status, s1.rowcount) == ("INSERT 0 0", 0)
    s1.execute("SELECT 1; SELECT k FROM t")  # the last result's
    assert (s1.status, s1.rowcount) == ("SELECT 3", 3)
    with pytest.raises(psycopg.errors.UniqueViolation):
        s1.execute("INSERT INTO t VALUES (1, 0)")
    assert (s1.status, s1.rowcount) == (None, None)
    assert [event.detail for event in s1._context.timeline.events() if event.kind == "done"][
        :2
    ] == ["UPDATE 2", "INSERT 0 0"]


# waits a timeout ends are just waits


def test_a_wait_bounded_by_lock_timeout_ends_with_the_statements_own_error(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    s2.set(lock_timeout="200ms")
    with pytest.raises(psycopg.errors.LockNotAvailable) as excinfo:
        s2.execute("SELECT * FROM t")
    assert excinfo.value.sqlstate == "55P03"
    with pytest.raises(psycopg.errors.LockNotAvailable):
        s2.submit("SELECT * FROM t").result()
    s1.rollback()


def test_a_wait_bounded_by_statement_timeout_set_in_sql_ends_with_57014(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.execute("SET statement_timeout = '200ms'")
    with pytest.raises(psycopg.errors.QueryCanceled) as excinfo:
        s2.execute("UPDATE t SET v = 2 WHERE k = 1")
    assert excinfo.value.sqlstate == "57014"
    s2.execute("RESET statement_timeout")
    with pytest.raises(SessionBlocked):
        s2.execute("UPDATE t SET v = 2 WHERE k = 1")
    s1.rollback()
    assert_not_blocks(s2)


def test_a_set_local_timeout_bounds_waits_only_until_its_transaction_ends(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.begin()
    s2.execute("SET LOCAL lock_timeout = '100ms'")
    with pytest.raises(psycopg.errors.LockNotAvailable):
        s2.execute("UPDATE t SET v = 2 WHERE k = 1")
    s2.rollback()  # lock_timeout is 0 again: the same wait can never end
    with pytest.raises(SessionBlocked):
        s2.execute("UPDATE t SET v = 2 WHERE k = 1")
    s1.rollback()
    assert_not_blocks(s2)


def test_a_blocker_with_an_idle_in_transaction_timeout_ends_the_wait_by_itself(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.set(idle_in_transaction_session_timeout="200ms")
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    # The server ends s1's session after 200 ms idle, which lets s2 go on.
    assert s2.execute("UPDATE t SET v = 2 WHERE k = 1 RETURNING v") == [(2,)]


def test_execute_waits_for_a_blocker_that_is_still_running(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    # s1 stays busy until it has seen s2 wait for its row lock, then commits: no sleep involved.
    releasing = s1.submit(
        "DO $$ BEGIN"
        f" WHILE NOT EXISTS (SELECT FROM pg_locks WHERE pid = {s2.pid} AND NOT granted) LOOP"
        " END LOOP; END $$; COMMIT"
    )
    assert s2.execute("UPDATE t SET v = v + 10 WHERE k = 1 RETURNING v") == [(11,)]
    assert releasing.result() is None


# timeouts


def test_execute_blocked_by_a_connection_outside_the_test_times_out_and_is_cancelled(
    pglocks: Pglocks, table: str, outsider: Connection
) -> None:
    outsider.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    s1 = pglocks.session()
    with pytest.raises(WaitTimeout) as excinfo:
        s1.execute("SELECT count(*) FROM t", timeout=0.3)
    assert isinstance(excinfo.value, AssertionError)
    assert_message(
        str(excinfo.value),
        errors.STATEMENT_TIMEOUT,
        name="s1",
        call="execute()",
        sql="SELECT count(*) FROM t",
        where=HERE,
        limit=0.3,
        graph=NO_EDGES,
    )
    state, wait_event_type = status(pglocks, s1)
    assert (state, wait_event_type != "Lock") == ("idle", True)  # no longer waiting
    assert s1.execute("SELECT 1") == [(1,)]


def test_pending_result_times_out_and_cancels_the_statement(
    pglocks: Pglocks, table: str, outsider: Connection
) -> None:
    outsider.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    s1 = pglocks.session()
    pending = s1.submit("SELECT count(*) FROM t")
    with pytest.raises(WaitTimeout) as excinfo:
        pending.result(timeout=0.3)
    assert_message(str(excinfo.value), errors.STATEMENT_TIMEOUT, name="s1", call="result()")
    assert isinstance(pending.error, psycopg.errors.QueryCanceled)
    outsider.rollback()
    assert s1.execute("SELECT count(*) FROM t") == [(3,)]


def test_a_statement_waiting_for_a_connection_outside_the_test_is_not_blocked(
    pglocks: Pglocks, table: str, outsider: Connection
) -> None:
    outsider.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    s1 = pglocks.session()
    pending = s1.submit("SELECT count(*) FROM t")
    wait_until_waiting(pglocks.dsn, s1.pid)
    waits = [(row.locktype, row.relation) for row in s1.locks() if not row.granted]
    assert waits == [("relation", "t")]  # it does wait, for a lock of the outsider
    graph = pglocks.graph()
    assert graph.edges == ()
    assert str(graph) == NO_EDGES
    with pytest.raises(WaitTimeout) as excinfo:
        assert_blocks(pending, timeout=0.3)
    assert_message(str(excinfo.value), errors.NEVER_BLOCKED, limit=0.3, graph=NO_EDGES)
    assert isinstance(pending.error, psycopg.errors.QueryCanceled)
