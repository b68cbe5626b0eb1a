"""Application code in the loop: the FK-cascade deadlock as the service really has it.

memory_store.py holds the application: ``retain_links`` (one transaction: a unit, then two link
INSERTs, each a statement of its own), ``link_all`` (one autocommit multi-row INSERT) and
``delete_chunks`` (one DELETE that cascades chunks → units → links), each opening its own
connection. The test runs them concurrently on threads and never touches their connections:

* a **gate** (``pglocks.gate``) stops the linker exactly where the deadlock needs it: inside
  its statement, at the row whose foreign-key check would close the cycle;
* ``pglocks.observe()`` turns the application's backends into names that ``assert_blocks``
  takes, so the test waits until the cascade is blocked by the linker, then opens the gate;
* ``@pytest.mark.no_deadlock`` sees a 40P01 of an application connection too (from the
  server's log), even when the application catches it.

With immediate foreign keys the deadlock happens every time; with ``DEFERRABLE INITIALLY
DEFERRED`` ones nothing waits and the linker fails cleanly with 23503 at COMMIT.
"""

from __future__ import annotations

from typing import Any

import memory_store as app
import psycopg
import pytest
from workers import Worker

from pytest_pglocks import Pglocks, assert_blocks


def deadlocked(*errors: BaseException | None) -> int:
    return sum(isinstance(error, psycopg.errors.DeadlockDetected) for error in errors)


# One transaction, two link statements ---------------------------------------------------------


def start_linker(pglocks: Pglocks) -> tuple[Worker, Any]:
    """retain_links stops before its second link's row (3 → 1) is inserted and checked."""
    gate = pglocks.gate("memory_links", "before insert", when="NEW.src_unit = 3")
    linker = Worker("retain_links", app.retain_links, pglocks.dsn, [(3, 2)], [(2, 3), (3, 1)])
    gate.wait_reached()  # link 2 → 3 is in: its FK checks key-share-locked units 2 and 3
    return linker, gate


def test_immediate_fks_deadlock_every_time(pglocks: Pglocks) -> None:
    app.create_schema(pglocks.dsn, deferred_fks=False)
    linker, gate = start_linker(pglocks)
    retain = pglocks.observe("retain_links")
    deleter = Worker("delete_chunks", app.delete_chunks, pglocks.dsn, [1])
    delete = pglocks.observe("delete_chunks")
    # The cascade deleted unit 1, then waits for unit 2, which the linker key-share-locked.
    assert_blocks(delete, on=retain, lock="transactionid")
    # The gate opens: linking unit 1 must key-share-lock a row the deleter deleted: a cycle.
    gate.open()
    assert deadlocked(linker.join(), deleter.join()) == 1


@pytest.mark.no_deadlock
def test_deferred_fks_never_deadlock(pglocks: Pglocks) -> None:
    app.create_schema(pglocks.dsn, deferred_fks=True)
    linker, gate = start_linker(pglocks)
    deleter = Worker("delete_chunks", app.delete_chunks, pglocks.dsn, [1])
    assert deleter.join() is None  # no FK lock on the units to wait for: it never waits
    gate.open()
    # The deferred checks run at COMMIT and find units 1 and 2 gone.
    assert isinstance(linker.join(), psycopg.errors.ForeignKeyViolation)
    assert pglocks.execute("SELECT count(*) FROM memory_links") == [(0,)]


def test_the_linkers_open_transaction_holds_the_cascade(
    pglocks: Pglocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A barrier parks the application thread between its last statement and its COMMIT."""
    app.create_schema(pglocks.dsn, deferred_fks=False)
    before_commit = pglocks.barrier("before commit")
    monkeypatch.setattr(app, "before_commit", before_commit.wait)
    linker = Worker("retain_links", app.retain_links, pglocks.dsn, [(3, 2)], [(2, 3)])
    before_commit.wait_reached()  # its transaction is open, unit 2 key-share-locked
    deleter = Worker("delete_chunks", app.delete_chunks, pglocks.dsn, [1])
    assert_blocks(pglocks.observe("delete_chunks"), on=pglocks.observe("retain_links"))
    before_commit.release()
    assert linker.join() is None
    assert deleter.join() is None  # then the cascade removed unit 2 and the new link
    assert pglocks.execute("SELECT count(*) FROM memory_links") == [(0,)]


# One statement: a multi-row INSERT against a cascading DELETE --------------------------------


def start_batch(pglocks: Pglocks) -> tuple[Worker, Any]:
    """link_all's INSERT stops in its foreign-key checks, between its first and second row.

    The checks of an INSERT run after its rows are in, row by row; an ``after insert`` gate
    runs among them, before the checks of its own row (gate triggers sort first).
    """
    pglocks.execute("INSERT INTO memory_units VALUES (3, 2)")
    gate = pglocks.gate("memory_links", "after insert", when="NEW.src_unit = 3")
    batch = Worker("link_all", app.link_all, pglocks.dsn, [(2, 3), (3, 1)])
    gate.wait_reached()  # row 2 → 3 checked: units 2 and 3 key-share-locked
    return batch, gate


def test_one_multi_row_insert_deadlocks_with_one_cascading_delete(pglocks: Pglocks) -> None:
    app.create_schema(pglocks.dsn, deferred_fks=False)
    batch, gate = start_batch(pglocks)
    deleter = Worker("delete_chunks", app.delete_chunks, pglocks.dsn, [1])
    assert_blocks(pglocks.observe("delete_chunks"), on=pglocks.observe("link_all"))
    gate.open()  # row 3 → 1 checks unit 1, which the waiting DELETE already deleted
    assert deadlocked(batch.join(), deleter.join()) == 1


@pytest.mark.no_deadlock
def test_one_multi_row_insert_with_deferred_fks_never_deadlocks(pglocks: Pglocks) -> None:
    app.create_schema(pglocks.dsn, deferred_fks=True)
    batch, gate = start_batch(pglocks)
    deleter = Worker("delete_chunks", app.delete_chunks, pglocks.dsn, [1])
    assert deleter.join() is None  # nothing locked the units: the cascade never waits
    gate.open()
    assert isinstance(batch.join(), psycopg.errors.ForeignKeyViolation)
