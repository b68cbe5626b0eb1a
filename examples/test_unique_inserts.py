"""Unique-index inserts: waiting on the inserter's transaction, and the deadlock of key order.

A unique index cannot tell whether a key inserted by a transaction still in progress will
exist, so a second transaction inserting the same key waits for the first one's *transaction
id* (``ShareLock`` on a ``transactionid`` lock, which every transaction holds exclusively on
its own id until it ends). Then the second insert fails with 23505 if the first transaction
committed, or succeeds if it rolled back.

Two transactions that insert the same keys in opposite orders each end up waiting for the
other's transaction: a deadlock. Inserting in one global order (sorted keys) removes it: the
second transaction waits on its first key and holds nothing the first one needs.
"""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import SessionBlocked, assert_blocks, expect_deadlock


@pytest.fixture
def tags(pglocks):
    pglocks.execute("CREATE TABLE tags (name text PRIMARY KEY)")
    return pglocks


@pytest.mark.parametrize("first_ends", ["commit", "rollback"])
def test_duplicate_insert_waits_for_the_inserter(tags, first_ends):
    s1, s2 = tags.sessions("s1", "s2")
    s1.begin()
    s1.execute("INSERT INTO tags VALUES ('red')")

    duplicate = s2.submit("INSERT INTO tags VALUES ('red')")
    # s2 found s1's uncommitted 'red' in the index and waits for s1's transaction to end.
    wait = assert_blocks(duplicate, on=s1, lock="transactionid")
    assert wait.mode == "ShareLock"

    if first_ends == "commit":
        s1.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):  # 23505
            duplicate.result()
    else:
        s1.rollback()
        duplicate.result()  # the key is free again: s2's insert goes through
        assert tags.execute("SELECT name FROM tags") == [("red",)]


def test_waiting_on_an_idle_transaction_fails_fast(tags):
    """execute() of a statement only the test can unblock raises instead of hanging."""
    s1, s2 = tags.sessions("s1", "s2")
    s1.begin()
    s1.execute("INSERT INTO tags VALUES ('red')")
    # s1 is idle in its transaction and nothing but the test can end it: execute() would wait
    # forever (in an application, the thread owning s1 waiting for the thread owning s2 is an
    # application-level deadlock PostgreSQL cannot see). SessionBlocked says who blocks whom.
    with pytest.raises(SessionBlocked, match="blocked by s1, which is idle in a transaction"):
        s2.execute("INSERT INTO tags VALUES ('red')")
    s1.rollback()  # s2's insert, still in flight, now completes; teardown collects it


def test_opposite_key_orders_deadlock(tags):
    s1, s2 = tags.sessions("s1", "s2")
    s1.begin()
    s2.begin()
    s1.execute("INSERT INTO tags VALUES ('red')")
    s2.execute("INSERT INTO tags VALUES ('blue')")

    blue = s1.submit("INSERT INTO tags VALUES ('blue')")
    assert_blocks(blue, on=s2, lock="transactionid")  # s1 waits for s2's transaction

    # s2 now inserts 'red' and waits for s1: the cycle is closed by s2's statement, so s2 is
    # the victim we can ask for. execute() does not raise SessionBlocked here, because s2's
    # wait leads into a cycle that the server will break; the 40P01 it raises instead is
    # what expect_deadlock expects, and the block swallows it.
    with expect_deadlock(victim=s2):
        s2.execute("INSERT INTO tags VALUES ('red')")

    blue.result()  # s2's transaction was aborted, so 'blue' is free for s1
    s1.commit()
    s2.rollback()
    assert tags.execute("SELECT name FROM tags ORDER BY name") == [("blue",), ("red",)]


@pytest.mark.no_deadlock
@pytest.mark.parametrize("first_ends", ["commit", "rollback"])
def test_sorted_key_order_does_not_deadlock(tags, first_ends):
    s1, s2 = tags.sessions("s1", "s2")
    keys = sorted(["red", "blue"])  # the fix: every transaction inserts in the same order
    s1.begin()
    s2.begin()
    s1.execute("INSERT INTO tags VALUES (%s)", (keys[0],))

    first = s2.submit("INSERT INTO tags VALUES (%s)", (keys[0],))
    assert_blocks(first, on=s1, lock="transactionid")
    # s2 holds no key s1 needs, so s1 goes on without waiting.
    s1.execute("INSERT INTO tags VALUES (%s)", (keys[1],))

    if first_ends == "commit":
        s1.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):
            first.result()
        s2.rollback()
    else:
        s1.rollback()
        first.result()
        s2.execute("INSERT INTO tags VALUES (%s)", (keys[1],))
        s2.commit()
    assert tags.execute("SELECT name FROM tags ORDER BY name") == [("blue",), ("red",)]
