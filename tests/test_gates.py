"""Gates: a statement stops at a row of a table, on the server, until the test lets it go on.

How far a held statement got is read with ``SELECT ... FOR UPDATE SKIP LOCKED`` from another
connection: the rows the held statement has deleted, updated or is at (a BEFORE trigger runs
with its row locked) are skipped, the rows it has not reached yet are returned.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fix_inner import Inner
from fix_messages import Glob, assert_message
from fix_sessions import Connection

from pytest_pglocks import (
    Pglocks,
    PglocksError,
    WaitTimeout,
    assert_blocks,
    assert_not_blocks,
    errors,
    gates,
)
from pytest_pglocks.gates import describe_gate_wait
from pytest_pglocks.monitor import LockRow

HERE = Glob("test_gates.py:*")
# The gate's objects in the test's database: its schema, sequence, function and trigger.
GATE_OBJECTS = """
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pglocks\\_gate\\_%'),
       (SELECT count(*) FROM pg_class WHERE relname = 'generation'),
       (SELECT count(*) FROM pg_proc WHERE proname = 'pass'),
       (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)
"""


def free_rows(pglocks: Pglocks) -> list[int]:
    """Rows of ``t`` that no other transaction has locked, deleted or updated."""
    rows = pglocks.execute("SELECT k FROM t ORDER BY k FOR UPDATE SKIP LOCKED")
    assert rows is not None
    return [k for (k,) in rows]


# stopping and going on


def test_a_delete_stops_at_the_row_of_the_gates_condition(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete", when="OLD.k = 2")
    assert (gate.name, gate.table, gate.event, gate.when) == (
        "t before delete",
        "t",
        "before delete",
        "OLD.k = 2",
    )
    s1 = pglocks.session()
    s1.begin()
    delete = s1.submit("DELETE FROM t RETURNING k")
    assert gate.wait_reached(s1) == s1.pid
    assert gate.held() == [s1.pid]
    assert not delete.done()
    # Row 1 is deleted, row 2 is locked at the gate, row 3 is not reached yet.
    assert free_rows(pglocks) == [3]
    gate.open()
    assert delete.result() == [(1,), (2,), (3,)]
    assert gate.held() == []
    s1.commit()
    assert pglocks.execute("SELECT count(*) FROM t") == [(0,)]


def test_an_open_gate_lets_every_row_through_until_closed(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete")
    assert gate.closed
    s1 = pglocks.session()
    delete = s1.submit("DELETE FROM t RETURNING k")
    gate.wait_reached(s1)
    assert free_rows(pglocks) == [2, 3]
    gate.open()
    assert not gate.closed
    assert delete.result() == [(1,), (2,), (3,)]
    gate.open()  # already open: nothing changes

    pglocks.execute("INSERT INTO t VALUES (4, 0), (5, 0)")
    assert assert_not_blocks(s1.submit("DELETE FROM t RETURNING k")) == [(4,), (5,)]

    gate.close()
    gate.close()  # already closed: nothing changes
    assert gate.closed
    pglocks.execute("INSERT INTO t VALUES (6, 0)")
    delete = s1.submit("DELETE FROM t RETURNING k")
    assert gate.wait_reached() == s1.pid
    gate.open()
    assert delete.result() == [(6,)]


def test_once_lets_a_held_statement_through_one_row_at_a_time(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "BEFORE  Delete")
    assert gate.event == "before delete"
    s1 = pglocks.session()
    delete = s1.submit("DELETE FROM t RETURNING k")
    for not_reached in ([2, 3], [3], []):
        assert gate.wait_reached(s1) == s1.pid
        assert free_rows(pglocks) == not_reached
        assert not delete.done()
        gate.open(once=True)
    assert delete.result() == [(1,), (2,), (3,)]
    # Still closed: the next statement stops at its first row.
    pglocks.execute("INSERT INTO t VALUES (4, 0)")
    delete = s1.submit("DELETE FROM t RETURNING k")
    gate.wait_reached(s1)
    gate.open()
    assert delete.result() == [(4,)]


def test_once_lets_each_held_backend_through_one_row(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "after insert")
    s1, s2, s3 = pglocks.sessions(3)
    first = s1.submit("INSERT INTO t VALUES (4, 0) RETURNING k")
    second = s2.submit("INSERT INTO t VALUES (5, 0) RETURNING k")
    gate.wait_reached(s1)
    gate.wait_reached(s2)
    assert gate.held() == sorted([s1.pid, s2.pid])
    gate.open(once=True)
    assert first.result() == [(4,)]
    assert second.result() == [(5,)]
    assert gate.held() == []
    third = s3.submit("INSERT INTO t VALUES (6, 0) RETURNING k")
    assert gate.wait_reached() == s3.pid
    gate.open()
    assert third.result() == [(6,)]


def test_only_rows_meeting_the_condition_stop(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before update", when="NEW.v > 10")
    s1 = pglocks.session()
    # No new value above 10: the statement never stops.
    assert assert_not_blocks(s1.submit("UPDATE t SET v = k RETURNING k")) == [(1,), (2,), (3,)]
    assert gate.held() == []
    update = s1.submit("UPDATE t SET v = k * 10 RETURNING k, v")
    gate.wait_reached(s1)
    assert free_rows(pglocks) == [3]  # row 1 (v = 10) passed, row 2 (v = 20) stopped
    gate.open()
    assert update.result() == [(1, 10), (2, 20), (3, 30)]


def test_an_application_connection_stops_at_the_gate(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete", when="OLD.k = 3")
    with (
        psycopg.connect(pglocks.dsn, autocommit=True) as app,
        ThreadPoolExecutor(1) as executor,
    ):
        pid = app.info.backend_pid
        future = executor.submit(lambda: app.execute("DELETE FROM t RETURNING k").fetchall())
        assert gate.wait_reached(pid) == pid
        assert gate.held() == [pid]
        assert free_rows(pglocks) == []
        assert not future.done()
        gate.open()
        assert future.result(timeout=pglocks._context.settings.timeout) == [(1,), (2,), (3,)]


def test_a_repeatable_read_transaction_sees_each_once(pglocks: Pglocks, table: str) -> None:
    """The generation is read from a sequence, which no snapshot hides: the transaction's
    snapshot, taken before the gate moved, still sees every new generation."""
    gate = pglocks.gate(table, "before delete")
    s1 = pglocks.session()
    s1.begin("repeatable read")
    assert s1.execute("SELECT count(*) FROM t") == [(3,)]  # the snapshot is taken
    delete = s1.submit("DELETE FROM t RETURNING k")
    for not_reached in ([2, 3], [3], []):
        assert gate.wait_reached(s1) == s1.pid
        assert free_rows(pglocks) == not_reached
        gate.open(once=True)
    assert delete.result() == [(1,), (2,), (3,)]
    s1.commit()
    assert pglocks.execute("SELECT count(*) FROM t") == [(0,)]


def test_a_gate_fires_before_the_rows_foreign_key_checks(pglocks: Pglocks, table: str) -> None:
    """After-insert triggers run row by row at the end of the statement, in name order; the
    gate's name sorts first, so row 2 stops before its check key-share-locks t's row 2."""
    pglocks.execute("CREATE TABLE links (k int NOT NULL REFERENCES t)")
    gate = pglocks.gate("links", "after insert", when="NEW.k = 2")
    s1 = pglocks.session()
    insert = s1.submit("INSERT INTO links VALUES (1), (2) RETURNING k")
    gate.wait_reached(s1)
    assert free_rows(pglocks) == [2, 3]  # row 1's check locked t's row 1, row 2's did not run
    gate.open()
    assert insert.result() == [(1,), (2,)]


def test_a_deferred_gate_stops_a_commit_between_the_deferred_checks_of_two_rows(
    pglocks: Pglocks, table: str
) -> None:
    pglocks.execute(
        "CREATE TABLE links (k int NOT NULL REFERENCES t DEFERRABLE INITIALLY DEFERRED)"
    )
    gate = pglocks.gate("links", "after insert deferred", when="NEW.k = 2")
    s1 = pglocks.session()
    s1.begin()
    s1.execute("INSERT INTO links VALUES (1), (2)")
    assert free_rows(pglocks) == [1, 2, 3]  # deferred: no check has run yet
    commit = s1.submit("COMMIT")
    gate.wait_reached(s1)
    assert free_rows(pglocks) == [2, 3]  # row 1's check ran at COMMIT, row 2's not yet
    gate.open()
    assert commit.result() is None
    assert pglocks.execute("SELECT count(*) FROM links") == [(2,)]


def test_a_gate_for_one_session_lets_the_others_through(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    gate = pglocks.gate("t", "before update", session=s2)
    assert_not_blocks(s1.submit("UPDATE t SET v = 1 WHERE k = 1"))
    held = s2.submit("UPDATE t SET v = 2 WHERE k = 2")
    assert gate.wait_reached(s2) == s2.pid
    gate.open()
    held.result()
    assert pglocks.execute("SELECT v FROM t WHERE k < 3 ORDER BY k") == [(1,), (2,)]


@pytest.mark.parametrize(
    ("event", "kwargs"), [("before insert deferred", {}), ("after insert", {"session": 42})]
)
def test_bad_deferred_events_and_sessions_are_refused(
    pglocks: Pglocks, table: str, event: str, kwargs: dict[str, object]
) -> None:
    with pytest.raises((PglocksError, TypeError)) as excinfo:
        pglocks.gate("t", event, **kwargs)  # type: ignore[arg-type]
    template = errors.GATE_BAD_SESSION if kwargs else errors.GATE_BAD_EVENT
    assert_message(str(excinfo.value), template, table="t", event=event)


@pytest.mark.no_deadlock
def test_a_cascade_held_between_two_rows(pglocks: Pglocks) -> None:
    """The deleter stops inside its cascade, after unit 1 and at unit 2: a linker that links
    unit 1 then waits for the deleter, and fails cleanly once the deleter commits."""
    pglocks.execute(
        """
        CREATE TABLE chunks (id int PRIMARY KEY);
        CREATE TABLE memory_units (
            id int PRIMARY KEY, chunk_id int NOT NULL REFERENCES chunks ON DELETE CASCADE);
        CREATE TABLE memory_links (
            src_unit int NOT NULL REFERENCES memory_units ON DELETE CASCADE,
            dst_unit int NOT NULL REFERENCES memory_units ON DELETE CASCADE);
        INSERT INTO chunks VALUES (1), (2);
        INSERT INTO memory_units VALUES (1, 1), (2, 1), (3, 2);
        """
    )
    gate = pglocks.gate("memory_units", "before delete", when="OLD.id = 2")
    assert gate.name == "memory_units before delete"
    deleter, linker = pglocks.sessions("deleter", "linker")
    deleter.begin()
    delete = deleter.submit("DELETE FROM chunks WHERE id = 1")
    gate.wait_reached(deleter)
    linker.begin()
    link = linker.submit("INSERT INTO memory_links VALUES (3, 1)")
    assert_blocks(link, on=deleter, lock="transactionid")
    gate.open()
    assert delete.result() is None
    deleter.commit()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        link.result()
    linker.rollback()
    assert pglocks.execute("SELECT id FROM memory_units") == [(3,)]


# a gate is not a lock of the test


def test_a_backend_held_at_a_gate_is_blocked_by_no_session(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete", when="OLD.k = 2")
    s1, s2 = pglocks.sessions(2)
    delete = s1.submit("DELETE FROM t RETURNING k")
    gate.wait_reached(s1)
    graph = pglocks.graph()
    assert graph.blockers(s1.pid) == ()
    awaited = graph.snapshot.awaited(s1.pid)
    assert awaited is not None
    assert (awaited.locktype, awaited.mode, awaited.classid) == ("advisory", "ShareLock", gate.key)
    assert describe_gate_wait(awaited) == "at gate t before delete"
    # Row 1 is deleted by s1's transaction, not committed: updating it is a real lock wait.
    update = s2.submit("UPDATE t SET v = 1 WHERE k = 1 RETURNING k")
    wait = assert_blocks(update, on=s1, lock="transactionid")
    assert wait.relation == "t"
    gate.open()
    assert delete.result() == [(1,), (2,), (3,)]
    assert update.result() == []  # the row it waited for is gone


def test_assert_blocks_never_sees_a_held_backend_blocked(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete")
    s1 = pglocks.session()
    delete = s1.submit("DELETE FROM t")
    gate.wait_reached(s1)
    with pytest.raises(WaitTimeout) as excinfo:  # not AssertionError: it never looked blocked
        assert_blocks(delete, timeout=0.2)
    assert_message(
        str(excinfo.value),
        errors.NEVER_BLOCKED,
        target=Glob("s1: 'DELETE FROM t' (test_gates.py:*)"),
        limit=0.2,
    )
    assert isinstance(delete.error, psycopg.errors.QueryCanceled)
    assert gate.held() == []
    assert free_rows(pglocks) == [1, 2, 3]


def test_assert_not_blocks_never_sees_a_held_backend_blocked(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete")
    s1 = pglocks.session()
    delete = s1.submit("DELETE FROM t")
    gate.wait_reached(s1)
    with pytest.raises(WaitTimeout) as excinfo:  # the timeout, not "is blocked"
        assert_not_blocks(delete, timeout=0.2)
    assert_message(
        str(excinfo.value),
        errors.STATEMENT_TIMEOUT,
        name="s1",
        call="assert_not_blocks()",
        sql="DELETE FROM t",
        where=HERE,
        limit=0.2,
    )
    assert isinstance(delete.error, psycopg.errors.QueryCanceled)
    assert free_rows(pglocks) == [1, 2, 3]


def test_describe_gate_wait_knows_only_live_gates(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "after update")
    lock = LockRow(None, 1, "advisory", "ShareLock", False, classid=gate.key, objid=1, objsubid=2)
    assert describe_gate_wait(lock) == "at gate t after update"
    bigint_form = LockRow(None, 1, "advisory", "ShareLock", False, classid=gate.key, objsubid=1)
    assert describe_gate_wait(bigint_form) is None
    row_lock = LockRow(None, 1, "transactionid", "ShareLock", False, transactionid="7")
    assert describe_gate_wait(row_lock) is None
    gate._close()
    assert describe_gate_wait(lock) is None


# waiting for a gate


def test_wait_reached_times_out_with_what_the_backends_do(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before update", when="OLD.k = 3")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    update = s2.submit("UPDATE t SET v = 2 WHERE k = 1")
    assert_blocks(update, on=s1)
    with pytest.raises(WaitTimeout) as excinfo:
        gate.wait_reached(s2, timeout=0.1)
    assert_message(
        str(excinfo.value),
        errors.GATE_NOT_REACHED,
        name="t before update",
        limit=0.1,
        who=f"s2 (pid {s2.pid})",
        condition="when=OLD.k = 3",
        held="none",
        activity=Glob(
            f"  s1 (pid {s1.pid}): idle in transaction: 'UPDATE t SET v = 1 WHERE k = 1'\n"
            f"  s2 (pid {s2.pid}): active, waiting for Lock transactionid: "
            "'UPDATE t SET v = 2 WHERE k = 1'"
        ),
        graph=Glob("wait-for graph:*s2 waits for ShareLock on transaction * held by s1*"),
    )
    s1.rollback()
    assert update.result() is None


def test_wait_reached_for_any_backend_times_out(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "after delete")
    with pytest.raises(WaitTimeout) as excinfo:
        gate.wait_reached(timeout=0.05)
    assert_message(
        str(excinfo.value),
        errors.GATE_NOT_REACHED,
        name="t after delete",
        limit=0.05,
        who="a backend",
        condition="no when= condition",
        held="none",
    )


def test_wait_reached_fails_at_once_when_the_statement_passes(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete", when="OLD.k = 4")
    s1 = pglocks.session()
    delete = s1.submit("DELETE FROM t RETURNING k")
    with pytest.raises(AssertionError) as excinfo:
        gate.wait_reached(s1)
    assert not isinstance(excinfo.value, WaitTimeout)
    assert_message(
        str(excinfo.value),
        errors.GATE_PASSED,
        name="t before delete",
        who=f"s1 (pid {s1.pid})",
        sql="DELETE FROM t RETURNING k",
        where=HERE,
        outcome="returned 3 rows",
        condition="when=OLD.k = 4",
        held="none",
    )
    assert delete.result() == [(1,), (2,), (3,)]


def test_wait_reached_takes_a_session_with_a_statement_or_a_pid(
    pglocks: Pglocks, table: str
) -> None:
    gate = pglocks.gate(table, "before delete")
    s1 = pglocks.session()
    with pytest.raises(PglocksError) as nothing_sent:
        gate.wait_reached(s1)
    assert_message(
        str(nothing_sent.value), errors.GATE_NOTHING_SENT, name="t before delete", who="s1"
    )
    with pytest.raises(TypeError) as bad:
        gate.wait_reached("s1")  # type: ignore[arg-type]
    assert_message(str(bad.value), errors.GATE_BAD_TARGET, name="t before delete", value="s1")
    delete = s1.submit("DELETE FROM t RETURNING k")
    assert gate.wait_reached(s1.pid) == s1.pid
    gate.open()
    assert delete.result() == [(1,), (2,), (3,)]


def test_once_needs_a_closed_gate(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before insert")
    gate.open()
    with pytest.raises(PglocksError) as excinfo:
        gate.open(once=True)
    assert_message(str(excinfo.value), errors.GATE_ONCE_OPEN, name="t before insert")


# what a gate can be


@pytest.mark.parametrize("event", ["during delete", "before truncate", "before", ""])
def test_a_bad_event_says_which_are_allowed(pglocks: Pglocks, table: str, event: str) -> None:
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, event)
    assert_message(str(excinfo.value), errors.GATE_BAD_EVENT, table="t", event=event)


def test_an_unknown_table_is_named(pglocks: Pglocks) -> None:
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate("memory_units", "before delete")
    assert_message(
        str(excinfo.value),
        errors.GATE_NO_TABLE,
        table="memory_units",
        event="before delete",
        search_path=pglocks.execute("SHOW search_path")[0][0],  # type: ignore[index]
    )


def test_a_view_is_not_a_table(pglocks: Pglocks, table: str) -> None:
    pglocks.execute("CREATE VIEW w AS SELECT * FROM t")
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate("w", "after update")
    assert_message(
        str(excinfo.value), errors.GATE_NOT_A_TABLE, table="w", event="after update", kind="view"
    )


def test_a_condition_the_server_refuses_leaves_nothing(pglocks: Pglocks, table: str) -> None:
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, "before insert", when="OLD.k = 1")
    assert_message(
        str(excinfo.value),
        errors.GATE_NOT_CREATED,
        table="t",
        event="before insert",
        when="OLD.k = 1",
        why="INSERT trigger's WHEN condition cannot reference OLD values",
    )
    assert pglocks.execute(GATE_OBJECTS) == [(0, 0, 0, 0)]
    assert pglocks.gate(table, "before insert").key == gates.GATE_KEY  # its key was given back


@pytest.mark.pglocks(timeout=0.2)
def test_a_table_written_in_an_open_transaction_cannot_get_a_gate(
    pglocks: Pglocks, table: str
) -> None:
    s1 = pglocks.session()
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")  # RowExclusiveLock until s1 ends
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, "before delete")
    assert_message(
        str(excinfo.value),
        errors.GATE_NOT_CREATED,
        table="t",
        event="before delete",
        when=None,
        why=errors.GATE_TABLE_BUSY.format(table="public.t", limit=0.2),
    )
    s1.rollback()
    assert pglocks.execute(GATE_OBJECTS) == [(0, 0, 0, 0)]


def test_a_gate_key_held_by_someone_else_is_named(
    pglocks: Pglocks, table: str, outsider: Connection
) -> None:
    outsider.execute("SELECT pg_advisory_lock(%s, 1)", (gates.GATE_KEY,))
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, "before delete")
    assert_message(
        str(excinfo.value),
        errors.GATE_KEY_TAKEN,
        name="t before delete",
        key=gates.GATE_KEY,
        generation=1,
        first=gates.GATE_KEY,
        last=gates.GATE_KEY | 255,
    )
    outsider.execute("SELECT pg_advisory_unlock_all()")
    assert pglocks.gate(table, "before delete").key == gates.GATE_KEY


def test_a_test_has_a_limited_number_of_gates(
    pglocks: Pglocks, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gates, "MAX_GATES", 1)
    pglocks.gate(table, "before delete")
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, "after delete")
    assert_message(
        str(excinfo.value), errors.GATE_TOO_MANY, table="t", event="after delete", limit=1
    )


def test_gates_of_a_test_have_their_own_keys(pglocks: Pglocks, table: str) -> None:
    first = pglocks.gate(table, "before update")
    second = pglocks.gate(table, "after update")
    assert (first.key, second.key) == (gates.GATE_KEY, gates.GATE_KEY | 1)
    s1 = pglocks.session()
    update = s1.submit("UPDATE t SET v = 1 WHERE k = 1 RETURNING k")
    gate_reached = first.wait_reached(s1)
    assert second.held() == []
    first.open()
    assert second.wait_reached(s1) == gate_reached
    assert first.held() == []
    second.open()
    assert update.result() == [(1,)]


# teardown


def test_closing_releases_held_backends_and_drops_the_gate(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before delete", when="OLD.k = 2")
    assert pglocks.execute(GATE_OBJECTS) == [(1, 1, 1, 1)]
    s1 = pglocks.session()
    delete = s1.submit("DELETE FROM t RETURNING k")
    gate.wait_reached(s1)
    gate._close()  # what the test's teardown does
    assert delete.result() == [(1,), (2,), (3,)]
    assert pglocks.execute(GATE_OBJECTS) == [(0, 0, 0, 0)]
    assert repr(gate) == "<pytest_pglocks.Gate 't before delete' removed>"
    with pytest.raises(PglocksError) as excinfo:
        gate.held()
    assert_message(str(excinfo.value), errors.GATE_REMOVED, name="t before delete", call="held")
    gate._close()  # the fixture's teardown closes it again: nothing happens


def test_closing_gives_up_the_drop_when_an_idle_transaction_holds_the_table(
    pglocks: Pglocks, table: str
) -> None:
    """The trigger stays, but passes every row once its gatekeeper is gone."""
    gate = pglocks.gate(table, "before delete")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("SELECT count(*) FROM t")  # an AccessShareLock until s1 ends its transaction
    gate._close()
    assert pglocks.execute(GATE_OBJECTS) == [(1, 1, 1, 1)]
    assert assert_not_blocks(s2.submit("DELETE FROM t RETURNING k")) == [(1,), (2,), (3,)]
    s1.rollback()


def test_the_fixture_teardown_opens_every_gate(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_left="""
        from concurrent.futures import ThreadPoolExecutor

        import psycopg
        from pytest_pglocks import gates

        LEFT = {}

        def test_leaves_backends_at_gates(pglocks):
            pglocks.execute("CREATE TABLE t (k int); INSERT INTO t VALUES (1), (2)")
            pglocks.execute("CREATE TABLE u (k int); INSERT INTO u VALUES (1), (2)")
            t_gate = pglocks.gate("t", "before delete")
            u_gate = pglocks.gate("u", "after update")
            LEFT["gates"] = [t_gate, u_gate]
            LEFT["session"] = pglocks.session().submit("DELETE FROM t RETURNING k")
            t_gate.wait_reached()
            app = psycopg.connect(pglocks.dsn, autocommit=True)
            LEFT["executor"] = executor = ThreadPoolExecutor(1)
            LEFT["app"] = executor.submit(
                lambda: app.execute("UPDATE u SET k = k + 10 RETURNING k").fetchall()
            )
            u_gate.wait_reached(app.info.backend_pid)

        def test_they_went_on():
            assert LEFT["session"].result() == [(1,), (2,)]
            assert LEFT["app"].result(timeout=10) == [(11,), (12,)]
            LEFT["executor"].shutdown()
            assert [repr(gate) for gate in LEFT["gates"]] == [
                "<pytest_pglocks.Gate 't before delete' removed>",
                "<pytest_pglocks.Gate 'u after update' removed>",
            ]
            assert gates._live == {}
        """
    )
    result = inner.run("-p", "no:randomly", timeout=60)  # the timeout only guards a hang
    result.assert_outcomes(passed=2)
