"""DBOS: a process stuck holding the migration advisory lock blocks every other process's startup.

Report: https://github.com/dbos-inc/dbos-transact-py/issues/636 ("Advisory Lock Issue"), fixed by
https://github.com/dbos-inc/dbos-transact-py/pull/637 ("Advisory Lock Timeout"). System database
migrations are serialised with ``SELECT pg_advisory_lock(MIGRATION_LOCK_ID)``. A process stuck
while holding it (its session alive, as after a crash the server has not noticed) made every
other process wait in that call, with no end and no message; in DBOS Cloud it blocked
migrations. The fix polls ``pg_try_advisory_lock``, which answers at once, until a deadline.
"""

from __future__ import annotations

import pytest

from pytest_pglocks import Pglocks, assert_blocks, assert_not_blocks

MIGRATION_LOCK_ID = 1234567  # a fixed key every process of the application agrees on


def test_a_stuck_holder_blocks_startup(pglocks: Pglocks) -> None:
    stuck, starting = pglocks.sessions("stuck_process", "starting_process")
    stuck.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))  # and never unlocks
    startup = starting.submit("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    wait = assert_blocks(startup, on=stuck, lock="advisory")
    assert wait.mode == "ExclusiveLock"
    assert wait.lock is not None
    assert wait.lock.advisory_key == MIGRATION_LOCK_ID
    stuck.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))  # only this ends it
    startup.result()


@pytest.mark.no_deadlock
def test_try_lock_answers_at_once(pglocks: Pglocks) -> None:
    stuck, starting = pglocks.sessions("stuck_process", "starting_process")
    stuck.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    # The fix: each attempt returns at once; the caller retries until its deadline, then fails
    # with a message instead of hanging.
    attempt = starting.submit("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    assert assert_not_blocks(attempt) == [(False,)]
    stuck.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    attempt = starting.submit("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
    assert assert_not_blocks(attempt) == [(True,)]
