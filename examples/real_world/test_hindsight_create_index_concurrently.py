"""Hindsight: CREATE INDEX CONCURRENTLY in a tenant migration waits for the worker's transaction.

Report: https://github.com/vectorize-io/hindsight/pull/493 ("use CONCURRENTLY only for non-empty
schemas to prevent deadlock"). Provisioning a tenant schema ran migrations with ``CREATE INDEX
CONCURRENTLY``, which waits for every transaction of the database holding a snapshot older than
its own, whatever table it touches. The worker's polling loop always had such a transaction
open, so provisioning hung. The fix: a plain ``CREATE INDEX`` on the new, empty tables (it only
locks the table it indexes, which nobody else uses yet); ``CONCURRENTLY`` only where there is
data.

Reduced: the worker's open transaction is a ``REPEATABLE READ`` one, which keeps its snapshot
between statements, as a long statement or an open cursor would.
"""

from __future__ import annotations

import pytest

from pytest_pglocks import Pglocks, Session, assert_blocks, assert_not_blocks

SCHEMA = """
CREATE TABLE async_operations (id int PRIMARY KEY, status text NOT NULL);
INSERT INTO async_operations VALUES (1, 'pending');
CREATE SCHEMA tenant_new;
CREATE TABLE tenant_new.memory_units (id int PRIMARY KEY, bank_id text, text text);
"""


def polling_worker(pglocks: Pglocks) -> Session:
    """The worker, in the middle of a poll: a transaction with a snapshot, on another table."""
    pglocks.execute(SCHEMA)
    worker = pglocks.session("worker")
    worker.begin("repeatable read")
    worker.execute("SELECT id FROM async_operations WHERE status = 'pending'")
    return worker


def test_concurrently_waits_for_the_worker(pglocks: Pglocks) -> None:
    worker = polling_worker(pglocks)
    provisioning = pglocks.session("provisioning")
    index = provisioning.submit(
        "CREATE INDEX CONCURRENTLY units_bank ON tenant_new.memory_units (bank_id)"
    )
    # Not a table lock: the wait is for the worker's (virtual) transaction to end.
    wait = assert_blocks(index, on=worker, lock="virtualxid")
    assert wait.mode == "ShareLock"
    worker.commit()  # in the report, the next poll began at once, and the wait went on
    index.result()


@pytest.mark.no_deadlock
def test_a_plain_index_on_an_empty_table_does_not_wait(pglocks: Pglocks) -> None:
    worker = polling_worker(pglocks)
    provisioning = pglocks.session("provisioning")
    index = provisioning.submit("CREATE INDEX units_bank ON tenant_new.memory_units (bank_id)")
    assert_not_blocks(index)
    worker.commit()
