"""django-bulk-sync: two unordered select_for_update() calls lock the same rows in opposite orders.

Report: https://github.com/mathandpencil/django-bulk-sync/pull/29 ("Force Order to Prevent
Deadlocks"). ``bulk_sync()`` locks a batch's existing rows with one ``select_for_update()``
query before updating them, in no particular order. The maintainer asked whether locking three
rows in one query is not atomic; it is not: PostgreSQL locks the rows one by one, in the order
the plan returns them, so two syncs whose plans disagree deadlock inside their single
statements. The fix orders the queryset by primary key.

A row-lock gate (``"before lock"``) holds row 2: the first sync to reach it goes first when it
opens, so the bad interleaving happens every time.
"""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import Pglocks, assert_blocks, expect_deadlock

SCHEMA = """
CREATE TABLE submission (id int PRIMARY KEY, sid text NOT NULL, score int NOT NULL);
INSERT INTO submission VALUES (1, 'b', 0), (2, 'a', 0);
"""
# The rows of one batch, in the order of the plan: here, of the ORDER BY.
LOCK_BATCH = "SELECT id FROM submission WHERE id IN (1, 2) ORDER BY {} FOR UPDATE"


def test_two_plan_orders_deadlock_inside_their_statements(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    gate = pglocks.gate("submission", "before lock", when="id = 2")
    sync_a, sync_b = pglocks.sessions("sync_a", "sync_b")
    sync_a.begin()
    sync_b.begin()
    lock_b = sync_b.submit(LOCK_BATCH.format("sid"))  # this plan returns row 2 first
    gate.wait_reached(sync_b)  # at row 2, holding nothing yet
    lock_a = sync_a.submit(LOCK_BATCH.format("score, id"))  # row 1 first
    assert_blocks(lock_a, on=sync_b, relation="submission")  # row 1 is locked, row 2 queued
    with expect_deadlock(one_of=(sync_a, sync_b)) as deadlock:
        gate.open()  # sync_b takes row 2, then needs row 1: a cycle
    victim = lock_b if deadlock.survivor is lock_a else lock_a
    assert isinstance(victim.error, psycopg.errors.DeadlockDetected)
    assert deadlock.survivor is not None
    assert sorted(deadlock.survivor.result()) == [(1,), (2,)]


@pytest.mark.no_deadlock
def test_ordered_by_pk_the_second_sync_waits_holding_nothing(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    gate = pglocks.gate("submission", "before lock", when="id = 2")
    sync_a, sync_b = pglocks.sessions("sync_a", "sync_b")
    sync_a.begin()
    sync_b.begin()
    lock_a = sync_a.submit(LOCK_BATCH.format("id"))  # the fix: .order_by("pk")
    gate.wait_reached(sync_a)  # row 1 locked, at row 2
    lock_b = sync_b.submit(LOCK_BATCH.format("id"))
    assert_blocks(lock_b, on=sync_a, lock="transactionid")  # waits for row 1, holds nothing
    gate.open()
    assert lock_a.result() == [(1,), (2,)]
    sync_a.commit()
    assert lock_b.result() == [(1,), (2,)]
    sync_b.commit()
