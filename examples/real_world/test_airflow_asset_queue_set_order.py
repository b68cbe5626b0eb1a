"""Airflow: two tasks queue the same asset's downstream dags, iterating a set in opposite orders.

Report: https://github.com/apache/airflow/pull/70128 ("Fix deadlock when concurrent tasks queue the
same asset's downstream dags"). ``register_asset_change`` inserts one ``asset_dag_run_queue`` row
per dag scheduled on the asset, looping over a Python ``set``, whose order differs between
processes. An insert of a key another transaction has inserted but not committed waits for that
transaction, so two tasks emitting the same asset deadlock. The fix inserts in ``dag_id`` order.
"""

from __future__ import annotations

import pytest

from pytest_pglocks import Pglocks, Session, assert_blocks, expect_deadlock

SCHEMA = """
CREATE TABLE asset_dag_run_queue (
    asset_id int, target_dag_id text, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, target_dag_id)
)
"""
QUEUE = "INSERT INTO asset_dag_run_queue VALUES (1, %s) ON CONFLICT DO NOTHING"


def queue_dagruns(task: Session, dag_ids: list[str]) -> None:
    """The loop of register_asset_change, for the dags nobody else is queueing."""
    for dag_id in dag_ids:
        task.execute(QUEUE, (dag_id,))


def test_set_order_inserts_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    task_a, task_b = pglocks.sessions("task_a", "task_b")
    task_a.begin()
    task_b.begin()
    queue_dagruns(task_a, ["dag_1"])  # task_a's set iterates dag_1, dag_2
    queue_dagruns(task_b, ["dag_2"])  # task_b's set iterates dag_2, dag_1
    second = task_a.submit(QUEUE, ("dag_2",))
    # The key is task_b's uncommitted row: task_a waits for task_b's transaction.
    assert_blocks(second, on=task_b, lock="transactionid")
    with expect_deadlock(victim=task_b):
        task_b.execute(QUEUE, ("dag_1",))  # and task_b for task_a's
    second.result()
    task_a.commit()
    task_b.rollback()
    assert pglocks.execute("SELECT count(*) FROM asset_dag_run_queue") == [(2,)]


@pytest.mark.no_deadlock
def test_sorted_inserts_wait_instead(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    task_a, task_b = pglocks.sessions("task_a", "task_b")
    task_a.begin()
    task_b.begin()
    dags = sorted({"dag_2", "dag_1"})  # the fix: one order in every process
    queue_dagruns(task_a, dags[:1])
    first = task_b.submit(QUEUE, (dags[0],))
    assert_blocks(first, on=task_a, lock="transactionid")
    queue_dagruns(task_a, dags[1:])  # task_b holds nothing task_a needs
    task_a.commit()
    first.result()
    assert first.status == "INSERT 0 0"  # task_a's row is there: nothing to do
    queue_dagruns(task_b, dags[1:])
    assert task_b.status == "INSERT 0 0"
    task_b.commit()
    assert pglocks.execute("SELECT count(*) FROM asset_dag_run_queue") == [(2,)]
