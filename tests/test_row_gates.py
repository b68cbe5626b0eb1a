"""Row-lock gates: statements stop before locking a row, where no trigger fires
(``SELECT ... FOR UPDATE`` and the other row-lock strengths)."""

from __future__ import annotations

import pytest
from fix_messages import assert_message

from pytest_pglocks import (
    Pglocks,
    PglocksError,
    assert_blocks,
    assert_not_blocks,
    errors,
    expect_deadlock,
)

LOCKS = ["FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE"]


def free_rows(pglocks: Pglocks) -> list[int]:
    """Rows of ``t`` that no other transaction has locked."""
    rows = pglocks.execute("SELECT k FROM t ORDER BY k FOR UPDATE SKIP LOCKED")
    assert rows is not None
    return [k for (k,) in rows]


@pytest.mark.parametrize("strength", LOCKS)
def test_a_locking_select_stops_before_the_gates_row(
    pglocks: Pglocks, table: str, strength: str
) -> None:
    gate = pglocks.gate(table, "before lock", when="k = 2")
    assert (gate.name, gate.event, gate.closed) == ("t before lock", "before lock", True)
    s1 = pglocks.session()
    s1.begin()
    select = s1.submit(f"SELECT k FROM t ORDER BY k {strength}")
    assert gate.wait_reached(s1) == s1.pid
    assert gate.held() == [s1.pid]
    # Row 1 is locked by s1, row 2 by the gate, row 3 is not reached yet.
    assert free_rows(pglocks) == [3]
    gate.open()
    assert select.result() == [(1,), (2,), (3,)]
    assert gate.held() == []
    s1.commit()


def test_a_held_backend_is_blocked_by_no_session_and_its_lock_names_the_gate(
    pglocks: Pglocks, table: str
) -> None:
    gate = pglocks.gate(table, "before lock", when="k = 1")
    s1, s2 = pglocks.sessions(2)
    held = s1.submit("UPDATE t SET v = 1 WHERE k = 1")
    gate.wait_reached(s1)
    assert_not_blocks(s2.submit("SELECT 1"))
    waits = [row.describe() for row in pglocks.locks() if not row.granted]
    assert waits == ["ShareLock on gate t before lock"]
    assert not pglocks.graph().waiting()
    gate.open()
    assert_not_blocks(held)


@pytest.mark.no_deadlock
def test_the_first_waiter_at_the_gate_goes_first(pglocks: Pglocks, table: str) -> None:
    """Both wait for row 2: s2 arrived first, so it gets the row and s1 queues behind it."""
    gate = pglocks.gate(table, "before lock", when="k = 2")
    s1, s2 = pglocks.sessions(2)
    s2.begin()
    first = s2.submit("SELECT k FROM t WHERE k = 2 FOR UPDATE")
    gate.wait_reached(s2)
    second = s1.submit("SELECT k FROM t WHERE k = 2 FOR UPDATE")
    assert_blocks(second, on=s2)  # the tuple lock of the queue, held by the first waiter
    gate.open()
    assert first.result() == [(2,)]
    assert_blocks(second, on=s2, lock="transactionid")
    s2.commit()
    assert second.result() == [(2,)]


def test_a_bulk_lock_in_two_orders_deadlocks_every_time(pglocks: Pglocks, table: str) -> None:
    """s2 (descending) waits at row 2 before locking anything; s1 (ascending) locks row 1 and
    queues behind s2; the open gate gives row 2 to s2, which then needs row 1: a cycle."""
    gate = pglocks.gate(table, "before lock", when="k = 2")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s2.begin()
    descending = s2.submit("SELECT k FROM t WHERE k < 3 ORDER BY k DESC FOR UPDATE")
    gate.wait_reached(s2)
    ascending = s1.submit("SELECT k FROM t WHERE k < 3 ORDER BY k FOR UPDATE")
    assert_blocks(ascending, on=s2)
    with expect_deadlock(one_of=(s1, s2)) as deadlock:
        gate.open()
    assert deadlock.survivor in (ascending, descending)
    assert deadlock.survivor.result() in ([(1,), (2,)], [(2,), (1,)])


def test_close_locks_the_rows_again(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before lock", when="k >= 2")
    gate.open()
    assert not gate.closed
    assert free_rows(pglocks) == [1, 2, 3]
    gate.close()
    assert gate.closed
    assert free_rows(pglocks) == [1]
    s1 = pglocks.session()
    held = s1.submit("DELETE FROM t WHERE k = 3")
    gate.wait_reached(s1)
    gate.open()
    assert held.result() is None
    assert held.rowcount == 1


def test_closing_on_rows_a_session_holds_says_so(pglocks: Pglocks, table: str) -> None:
    s1 = pglocks.session()
    s1.begin()
    s1.execute("SELECT FROM t WHERE k = 2 FOR KEY SHARE")
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, "before lock", when="k = 2")
    assert_message(
        str(excinfo.value),
        errors.GATE_NOT_CREATED,
        table="t",
        event="before lock",
        when="k = 2",
        why=errors.ROW_GATE_BUSY,
    )


def test_a_gate_without_rows_is_refused(pglocks: Pglocks, table: str) -> None:
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, "before lock", when="k = 7")
    assert_message(
        str(excinfo.value), errors.ROW_GATE_NO_ROWS, table="t", when="k = 7", qualified="public.t"
    )


def test_once_and_session_are_refused(pglocks: Pglocks, table: str) -> None:
    s1 = pglocks.session()
    with pytest.raises(PglocksError) as excinfo:
        pglocks.gate(table, "before lock", session=s1)
    assert_message(str(excinfo.value), errors.ROW_GATE_SESSION, table="t")
    gate = pglocks.gate(table, "Before  LOCK")
    with pytest.raises(PglocksError) as excinfo:
        gate.open(once=True)
    assert_message(str(excinfo.value), errors.ROW_GATE_ONCE, name="t before lock")


def test_a_bad_condition_is_the_servers_message(pglocks: Pglocks, table: str) -> None:
    with pytest.raises(PglocksError, match='column "nope" does not exist'):
        pglocks.gate(table, "before lock", when="nope = 1")


def test_the_end_of_the_test_lets_held_statements_go(pglocks: Pglocks, table: str) -> None:
    gate = pglocks.gate(table, "before lock", when="k = 1")
    s1 = pglocks.session()
    held = s1.submit("SELECT FROM t FOR NO KEY UPDATE")
    gate.wait_reached(s1)
    gate._close()
    assert held.result() == [(), (), ()]
    with pytest.raises(PglocksError, match="removed at the end of its test"):
        gate.held()
