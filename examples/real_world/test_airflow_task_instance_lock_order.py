"""Airflow: the scheduler and a task runner lock a dag run and its task instance in opposite orders.

Report: https://github.com/apache/airflow/pull/25266 ("Fix Deadlock on refresh from DB by local
task run"). The scheduler locks the ``dag_run`` rows it examines (``FOR UPDATE``), then their task
instances. A task runner's ``refresh_from_db(lock_for_update=True)`` ran ``SELECT ... FROM
task_instance JOIN dag_run ... FOR UPDATE``, which locks the task instance row first and the dag
run second: the opposite order, and a deadlock when both meet on one run. The fix locks the dag
run first, before the joined query.
"""

from __future__ import annotations

import pytest

from pytest_pglocks import Pglocks, assert_blocks, expect_deadlock

SCHEMA = """
CREATE TABLE dag_run (id int PRIMARY KEY, dag_id text NOT NULL, state text NOT NULL);
CREATE TABLE task_instance (
    task_id text, run_id int REFERENCES dag_run, state text, PRIMARY KEY (task_id, run_id)
);
INSERT INTO dag_run VALUES (1, 'etl', 'running');
INSERT INTO task_instance VALUES ('extract', 1, 'queued');
"""
EXAMINE_DAG_RUN = "SELECT id FROM dag_run WHERE id = 1 FOR UPDATE"  # get_next_dagruns_to_examine
LOCK_TASK_INSTANCES = "SELECT task_id FROM task_instance WHERE run_id = 1 FOR UPDATE"
# refresh_from_db(lock_for_update=True): rows are locked in FROM order, the task instance first.
REFRESH_FROM_DB = """
SELECT ti.state FROM task_instance ti JOIN dag_run dr ON dr.id = ti.run_id
WHERE ti.task_id = 'extract' AND ti.run_id = 1 FOR UPDATE
"""


def test_joined_refresh_deadlocks_with_the_scheduler(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    scheduler, runner = pglocks.sessions("scheduler", "task_runner")
    scheduler.begin()
    scheduler.execute(EXAMINE_DAG_RUN)
    runner.begin()
    # The runner locks the task instance, then waits for the dag run the scheduler holds.
    refresh = runner.submit(REFRESH_FROM_DB)
    assert_blocks(refresh, on=scheduler, relation="dag_run", lock="transactionid")
    # The scheduler's next step wants the task instance the runner holds: a cycle.
    with expect_deadlock(victim=scheduler):
        scheduler.execute(LOCK_TASK_INSTANCES)
    assert refresh.result() == [("queued",)]  # the runner goes on once the scheduler is aborted
    runner.commit()
    scheduler.rollback()


@pytest.mark.no_deadlock
def test_locking_the_dag_run_first_makes_the_runner_wait(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    scheduler, runner = pglocks.sessions("scheduler", "task_runner")
    scheduler.begin()
    scheduler.execute(EXAMINE_DAG_RUN)
    runner.begin()
    # The fix: the runner asks for the dag run first, so it waits holding nothing.
    lock_run = runner.submit(EXAMINE_DAG_RUN)
    assert_blocks(lock_run, on=scheduler, relation="dag_run", lock="transactionid")
    scheduler.execute(LOCK_TASK_INSTANCES)
    scheduler.execute("UPDATE task_instance SET state = 'scheduled' WHERE run_id = 1")
    scheduler.commit()
    lock_run.result()
    assert runner.execute(REFRESH_FROM_DB) == [("scheduled",)]
    runner.commit()
