"""dstack: SELECT ... FOR UPDATE of a run deadlocks with a job write whose foreign key checks it.

Report: https://github.com/dstackai/dstack/pull/2843 ("Fix Postgres deadlocks"). ``stop_runs``
locked a run and then its jobs ``FOR UPDATE``; background job processing locked a job and then
wrote a row referencing the run, whose foreign-key check takes ``FOR KEY SHARE`` on the run.
``FOR UPDATE`` conflicts with ``FOR KEY SHARE``, so each waited for the other. The fix takes
``FOR NO KEY UPDATE`` (SQLAlchemy ``with_for_update(key_share=True)``) where no key changes: it
does not conflict with the foreign-key check.

Reduced: the job write is a resubmission, a new ``jobs`` row of the same run.
"""

from __future__ import annotations

import pytest

from pytest_pglocks import (
    Pending,
    Pglocks,
    Session,
    assert_blocks,
    assert_not_blocks,
    expect_deadlock,
)

SCHEMA = """
CREATE TABLE runs (id int PRIMARY KEY, status text NOT NULL);
CREATE TABLE jobs (
    id int PRIMARY KEY, run_id int NOT NULL REFERENCES runs, submission_num int NOT NULL,
    status text NOT NULL
);
INSERT INTO runs VALUES (1, 'running');
INSERT INTO jobs VALUES (1, 1, 0, 'running');
"""
FAIL_JOB = "UPDATE jobs SET status = 'failed' WHERE id = 1"
RESUBMIT = "INSERT INTO jobs VALUES (2, 1, 1, 'submitted')"  # FK check: FOR KEY SHARE on run 1
LOCK_JOBS = "SELECT id FROM jobs WHERE run_id = 1 ORDER BY id FOR UPDATE"


def stop_runs_waits_for_the_job(
    pglocks: Pglocks, run_lock: str
) -> tuple[Session, Session, Pending]:
    """The job is locked by processing; stop_runs has locked the run and waits for the job."""
    pglocks.execute(SCHEMA)
    stopper, processor = pglocks.sessions("stop_runs", "process_jobs")
    processor.begin()
    processor.execute(FAIL_JOB)
    stopper.begin()
    stopper.execute(f"SELECT id FROM runs WHERE id = 1 {run_lock}")
    lock_jobs = stopper.submit(LOCK_JOBS)
    assert_blocks(lock_jobs, on=processor, relation="jobs", lock="transactionid")
    return stopper, processor, lock_jobs


def test_for_update_deadlocks_with_the_foreign_key_check(pglocks: Pglocks) -> None:
    stopper, processor, lock_jobs = stop_runs_waits_for_the_job(pglocks, "FOR UPDATE")
    # The FK check's FOR KEY SHARE on the run conflicts with stop_runs' FOR UPDATE: a cycle.
    with expect_deadlock(victim=processor):
        processor.execute(RESUBMIT)
    processor.rollback()
    assert lock_jobs.result() == [(1,)]
    stopper.commit()


@pytest.mark.no_deadlock
def test_for_no_key_update_lets_the_check_through(pglocks: Pglocks) -> None:
    stopper, processor, lock_jobs = stop_runs_waits_for_the_job(pglocks, "FOR NO KEY UPDATE")
    assert_not_blocks(processor.submit(RESUBMIT))  # FOR KEY SHARE and FOR NO KEY UPDATE agree
    processor.commit()
    assert lock_jobs.result() == [(1,)]  # the new job is not in stop_runs' snapshot
    stopper.execute("UPDATE runs SET status = 'terminating' WHERE id = 1")  # no key changes
    stopper.commit()
