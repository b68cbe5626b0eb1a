"""GOV.UK Notify: an alembic migration queued behind a long SELECT makes every later query wait.

Report: https://github.com/alphagov/notifications-api/pull/3901 ("add a lock timeout of one second
to migrations"). A long, harmless ``SELECT`` holds ``ACCESS SHARE`` on a big table; alembic's
``ALTER TABLE`` asks for ``ACCESS EXCLUSIVE`` and queues behind it; every later ``SELECT`` then
queues behind the ``ALTER`` although it could share the table with the first one: timeouts and
downtime. The fix sets ``lock_timeout`` for migrations: the ``ALTER`` gives up (55P03), the queue
drains, and the deploy retries later.
"""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import Pglocks, assert_blocks, assert_not_blocks

SCHEMA = """
CREATE TABLE notifications (id int PRIMARY KEY, status text NOT NULL);
INSERT INTO notifications VALUES (1, 'sending');
"""
MIGRATION = "ALTER TABLE notifications ADD COLUMN postage text"
READ = "SELECT status FROM notifications WHERE id = 1"


def test_a_queued_alter_blocks_every_later_reader(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    report, alembic, api = pglocks.sessions("long_report", "alembic", "api")
    report.begin()
    report.execute("SELECT count(*) FROM notifications")  # ACCESS SHARE until it ends
    alter = alembic.submit(MIGRATION)
    assert_blocks(alter, on=report, relation="notifications", lock="AccessExclusiveLock")
    # The api's read conflicts with nothing granted, only with the ALTER queued ahead of it.
    read = api.submit(READ)
    wait = assert_blocks(read, on=alembic, relation="notifications", lock="AccessShareLock")
    (edge,) = [edge for edge in wait.graph.edges if edge.waiter == api.pid]
    assert edge.held is None  # alembic holds nothing on the table: it is only queued ahead
    report.commit()
    alter.result()
    assert read.result() == [("sending",)]


@pytest.mark.no_deadlock
def test_lock_timeout_lets_the_migration_give_up(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    report, alembic, api = pglocks.sessions("long_report", "alembic", "api")
    report.begin()
    report.execute("SELECT count(*) FROM notifications")
    alembic.set(lock_timeout="100ms")  # the fix (notifications-api uses 1 s)
    with pytest.raises(psycopg.errors.LockNotAvailable):  # 55P03: try again later
        alembic.execute(MIGRATION)
    assert assert_not_blocks(api.submit(READ)) == [("sending",)]
    report.commit()
    alembic.set(lock_timeout="0")
    alembic.execute(MIGRATION)  # the retry, once the long query is gone
