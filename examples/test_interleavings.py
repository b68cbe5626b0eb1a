"""Every interleaving, not just one: scenarios explored, with the bug as a negative control.

A hand-written test proves one order of the statements. ``pglocks.scenario()`` describes the
sessions and their steps once; ``explore()`` runs every order that keeps each session's steps
in sequence (skipping orders that only swap steps touching nothing in common), each from a
clean state, and groups what happened into outcomes. ``control=`` runs the same exploration on
the code before the fix and fails unless that variant shows the forbidden outcome: proof that
the test would have caught the bug.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_pglocks import Interleaving, Pglocks, Scenario

# 1. Two transactions inserting the same keys ------------------------------------------------


def inserting(pglocks: Pglocks, a_keys: list[int], b_keys: list[int]) -> Scenario:
    """Sessions a and b each insert their keys (one step per key), then commit."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY)", check="SELECT count(*) FROM t"
    )
    for name, keys in (("a", a_keys), ("b", b_keys)):
        session = scenario.session(name, setup="BEGIN")
        for number, key in enumerate(keys, 1):
            session.step(f"{name}{number}", f"INSERT INTO t VALUES ({key}) ON CONFLICT DO NOTHING")
        session.step(f"{name}_commit", "COMMIT")
    return scenario


@pytest.mark.no_deadlock
def test_inserting_keys_in_sorted_order_never_deadlocks(pglocks: Pglocks) -> None:
    # A duplicate key waits for the other inserter's transaction. In the same (sorted) order
    # the second transaction only ever waits for the first; in opposite orders each can wait
    # for the other: the unsorted variant must deadlock somewhere, or this test proves nothing.
    exploration = inserting(pglocks, [1, 2], [1, 2]).explore(
        allowed={"ok"},  # every interleaving: both commit, no error
        control=inserting(pglocks, [1, 2], [2, 1]),
    )
    assert exploration.run == exploration.brute_force == 20  # every step touches t
    assert [group.count for group in exploration.outcomes()] == [20]
    control = exploration.control
    assert control is not None
    assert {str(group.outcome) for group in control.outcomes()} == {
        "ok, check=[(2,)]",
        "a2 40P01 (deadlock), check=[(2,)]",  # a's second insert closed the cycle
        "b2 40P01 (deadlock), check=[(2,)]",
    }


# 2. A read-modify-write counter ---------------------------------------------------------------


def incrementing(pglocks: Pglocks, isolation: str, read: str) -> Scenario:
    """Two clients read the counter, then write back what they read plus one."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)",
        check="SELECT n FROM counter",
    )
    for name in ("a", "b"):
        seen: dict[str, Any] = {}

        def read_counter(conn: Any, seen: dict[str, Any] = seen) -> None:
            seen["n"] = conn.execute(read)[0][0]

        def write_counter(conn: Any, seen: dict[str, Any] = seen) -> None:
            conn.execute("UPDATE counter SET n = %s", (seen["n"] + 1,))

        session = scenario.session(name)
        session.step(f"{name}_begin", f"BEGIN ISOLATION LEVEL {isolation}")
        session.step(f"{name}_read", read_counter)
        session.step(f"{name}_write", write_counter)
        session.step(f"{name}_commit", "COMMIT")
    return scenario


def counted_both(run: Interleaving) -> bool:
    return run.check == [(2,)]


def test_select_for_update_loses_no_increment(pglocks: Pglocks) -> None:
    # READ COMMITTED with a plain SELECT: if both read 0 before either writes, both write 1.
    # FOR UPDATE makes the second reader wait for the first writer's commit, then read 1.
    exploration = incrementing(
        pglocks, "READ COMMITTED", "SELECT n FROM counter FOR UPDATE"
    ).explore(
        expect=counted_both,
        control=incrementing(pglocks, "READ COMMITTED", "SELECT n FROM counter"),
    )
    # BEGIN touches nothing, so orders that differ only in where a BEGIN goes are run once.
    assert exploration.brute_force == 70
    assert exploration.run < exploration.brute_force
    control = exploration.control
    assert control is not None
    assert any(run.check == [(1,)] for run in control.interleavings)  # the lost update


def test_repeatable_read_turns_a_lost_update_into_a_retryable_error(pglocks: Pglocks) -> None:
    # Under REPEATABLE READ the second writer of the row fails with 40001 instead of
    # overwriting: the application retries, and no increment is silently lost.
    exploration = incrementing(pglocks, "REPEATABLE READ", "SELECT n FROM counter").explore(
        expect=lambda run: counted_both(run) or run.sqlstates == ("40001",),
        control=incrementing(pglocks, "READ COMMITTED", "SELECT n FROM counter"),
    )
    assert {group.outcome.sqlstates for group in exploration.outcomes()} == {(), ("40001",)}


# 3. FK insert vs cascading delete (see test_fk_cascade.py) ---------------------------------


def linking(pglocks: Pglocks, fks: str) -> Scenario:
    """The deleter deletes chunk 1 (cascading to units 1, 2); the linker links units."""
    scenario = pglocks.scenario(
        setup=f"""
        CREATE TABLE chunks (id int PRIMARY KEY);
        CREATE TABLE memory_units (
            id int PRIMARY KEY, chunk_id int NOT NULL REFERENCES chunks ON DELETE CASCADE);
        CREATE TABLE memory_links (
            src_unit int NOT NULL REFERENCES memory_units ON DELETE CASCADE {fks},
            dst_unit int NOT NULL REFERENCES memory_units ON DELETE CASCADE {fks});
        INSERT INTO chunks VALUES (1), (2);
        INSERT INTO memory_units VALUES (1, 1), (2, 1), (3, 2);
        """,
        check="SELECT count(*) FROM memory_links",
    )
    deleter = scenario.session("deleter", setup="BEGIN")
    deleter.step("delete", "DELETE FROM chunks WHERE id = 1").step("d_commit", "COMMIT")
    linker = scenario.session("linker", setup="BEGIN")
    linker.step("link_2_3", "INSERT INTO memory_links VALUES (2, 3)")
    linker.step("link_3_1", "INSERT INTO memory_links VALUES (3, 1)")
    linker.step("l_commit", "COMMIT")
    return scenario


@pytest.mark.no_deadlock
def test_deferred_fks_never_deadlock_in_any_interleaving(pglocks: Pglocks) -> None:
    # With deferred FKs the linker either commits its links or fails with 23503 at COMMIT;
    # the immediate-FK schema must deadlock in some interleaving (the negative control).
    exploration = linking(pglocks, "DEFERRABLE INITIALLY DEFERRED").explore(
        allowed={"ok", "23503"},
        control=linking(pglocks, ""),
    )
    assert exploration.run == exploration.brute_force == 10
    control = exploration.control
    assert control is not None
    assert any(run.deadlocked for run in control.interleavings)
