"""Hindsight: one INSERT ... ON CONFLICT DO NOTHING of an unsorted array deadlocks with another.

Report: https://github.com/vectorize-io/hindsight/pull/2353 ("sort unit_ids to eliminate
concurrent-insert deadlock"). ``enqueue_graph_maintenance`` inserts a bank's unit ids in one
statement, in the order a ``SELECT DISTINCT`` happened to return them. Each row's unique-key
check waits for a transaction that has inserted the same key and not committed, so two
concurrent PATCH requests with overlapping ids in opposite orders deadlock inside their single
statements (``DeadlockDetectedError``, an opaque 500). The fix sorts the ids before the insert.

A gate stops the first statement between its two rows, the only way to make the bad
interleaving happen every time.
"""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import Pglocks, assert_blocks, expect_deadlock

SCHEMA = """
CREATE TABLE graph_maintenance_queue (
    bank_id text, unit_id int, PRIMARY KEY (bank_id, unit_id)
)
"""
ENQUEUE = """
INSERT INTO graph_maintenance_queue (bank_id, unit_id)
SELECT 'default', unnest(%s::int[]) ON CONFLICT DO NOTHING
"""


def test_opposite_orders_deadlock_inside_one_statement(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    patch_a, patch_b = pglocks.sessions("patch_a", "patch_b")
    gate = pglocks.gate(
        "graph_maintenance_queue", "before insert", when="NEW.unit_id = 2", session=patch_a
    )
    patch_a.begin()
    enqueue_a = patch_a.submit(ENQUEUE, ([1, 2],))
    gate.wait_reached(patch_a)  # unit 1 is in, unit 2 is next
    patch_b.begin()
    enqueue_b = patch_b.submit(ENQUEUE, ([2, 1],))  # inserts 2, then waits on patch_a's 1
    assert_blocks(enqueue_b, on=patch_a, lock="transactionid")
    with expect_deadlock(victim=patch_a):
        gate.open()  # patch_a's unit 2 waits on patch_b's: a cycle
    assert isinstance(enqueue_a.error, psycopg.errors.DeadlockDetected)
    assert enqueue_b.result() is None  # patch_b's statement goes on once patch_a is aborted
    patch_b.commit()
    patch_a.rollback()
    assert pglocks.execute("SELECT count(*) FROM graph_maintenance_queue") == [(2,)]


@pytest.mark.no_deadlock
def test_sorted_ids_wait_instead(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    patch_a, patch_b = pglocks.sessions("patch_a", "patch_b")
    gate = pglocks.gate(
        "graph_maintenance_queue", "before insert", when="NEW.unit_id = 2", session=patch_a
    )
    patch_a.begin()
    enqueue_a = patch_a.submit(ENQUEUE, (sorted([1, 2]),))
    gate.wait_reached(patch_a)
    patch_b.begin()
    # The fix: patch_b starts with unit 1 too, so it waits holding nothing patch_a needs.
    enqueue_b = patch_b.submit(ENQUEUE, (sorted([2, 1]),))
    assert_blocks(enqueue_b, on=patch_a, lock="transactionid")
    gate.open()
    enqueue_a.result()
    patch_a.commit()
    enqueue_b.result()
    assert enqueue_b.status == "INSERT 0 0"  # both ids were queued by patch_a
    patch_b.commit()
    assert pglocks.execute("SELECT count(*) FROM graph_maintenance_queue") == [(2,)]
