"""FK insert vs cascading delete: a deadlock, and the deferred foreign keys that remove it.

Schema: chunks → memory_units (ON DELETE CASCADE) → memory_links, whose two foreign keys
(src_unit, dst_unit) point at memory_units.

Two transactions meet:

* the *linker* (Tx B) inserts memory_links rows. With immediate foreign keys each insert checks
  its two units at once with ``SELECT ... FOR KEY SHARE`` and keeps those row locks until it
  commits;
* the *deleter* (Tx A) runs ``DELETE FROM chunks``, which cascades to memory_units and from
  there to memory_links. Deleting a unit that the linker has key-share-locked must wait for the
  linker's transaction to end.

If the linker then links a unit the deleter has already deleted (not yet committed), the linker
waits for the deleter too: a cycle, which PostgreSQL breaks with 40P01 in one of the two.

The fix: both memory_links foreign keys ``DEFERRABLE INITIALLY DEFERRED``. Inserts take no lock
on memory_units any more; the check runs at COMMIT, where the linker fails cleanly with 23503 if
the deleter committed first.
"""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import assert_blocks, assert_not_blocks, expect_deadlock

FK_MODES = {"immediate": "", "deferred": "DEFERRABLE INITIALLY DEFERRED"}


def create_schema(pglocks, fks):
    """Chunk 1 holds units 1 and 2 (in this heap order), chunk 2 holds unit 3."""
    deferral = FK_MODES[fks]
    pglocks.execute(
        f"""
        CREATE TABLE chunks (id int PRIMARY KEY);
        CREATE TABLE memory_units (
            id int PRIMARY KEY,
            chunk_id int NOT NULL REFERENCES chunks ON DELETE CASCADE
        );
        CREATE TABLE memory_links (
            src_unit int NOT NULL REFERENCES memory_units ON DELETE CASCADE {deferral},
            dst_unit int NOT NULL REFERENCES memory_units ON DELETE CASCADE {deferral}
        );
        INSERT INTO chunks VALUES (1), (2);
        INSERT INTO memory_units VALUES (1, 1), (2, 1), (3, 2);
        """
    )


@pytest.mark.parametrize("fks", ["immediate", "deferred"])
def test_cascading_delete_waits_for_uncommitted_links_only_with_immediate_fks(pglocks, fks):
    create_schema(pglocks, fks)
    deleter, linker = pglocks.sessions("deleter", "linker")

    linker.begin()
    linker.execute("INSERT INTO memory_links VALUES (2, 3)")

    deleter.begin()
    delete = deleter.submit("DELETE FROM chunks WHERE id = 1")
    if fks == "immediate":
        # The insert's FK check locked unit 2 FOR KEY SHARE; deleting unit 2 conflicts with
        # that row lock, so the cascade waits for the linker's transaction to end: a
        # ShareLock on the linker's transaction id, while holding the tuple lock on unit 2.
        wait = assert_blocks(delete, on=linker, lock="transactionid")
        assert wait.mode == "ShareLock"
        assert wait.relation == "memory_units"
        linker.commit()
        # The committed link references unit 2, so the cascade deletes it too.
        delete.result()
        deleter.commit()
        assert pglocks.execute("SELECT count(*) FROM memory_links") == [(0,)]
    else:
        # A deferred FK is checked at COMMIT: the insert locked nothing in memory_units, and
        # the cascade does not see (so does not wait for) the linker's uncommitted row.
        assert_not_blocks(delete)
        deleter.commit()
        linker.rollback()  # its COMMIT would fail with 23503: see the tests below
    assert pglocks.execute("SELECT id FROM memory_units") == [(3,)]


def test_immediate_fks_deadlock_when_linking_a_deleted_unit(pglocks):
    """The bug: the linker's next insert closes the cycle; make it the deterministic victim."""
    create_schema(pglocks, "immediate")
    deleter, linker = pglocks.sessions("deleter", "linker")

    linker.begin()
    linker.execute("INSERT INTO memory_links VALUES (2, 3)")  # FOR KEY SHARE on units 2, 3

    deleter.begin()
    # The cascade deletes unit 1, then waits on unit 2, which the linker has key-share-locked.
    delete = deleter.submit("DELETE FROM chunks WHERE id = 1")
    assert_blocks(delete, on=linker)

    # Linking unit 1 must key-share-lock it, but the deleter deleted it and has not committed:
    # the linker waits for the deleter, which waits for the linker. Which backend's deadlock
    # check finds the cycle first is normally a race; with victim= the plugin makes sure the
    # session whose statement closes the cycle (the linker) is the one, and asserts it. The
    # block is entered before that statement is sent.
    with expect_deadlock(victim=linker) as deadlock:
        link = linker.submit("INSERT INTO memory_links VALUES (3, 1)")
        with pytest.raises(psycopg.errors.DeadlockDetected):
            link.result()
    assert deadlock.victim is linker
    # The server's account of the cycle, with session names:
    #   deadlock: linker was chosen as the victim while running 'INSERT INTO memory_links ...'
    #     linker (pid 13064) waits for ShareLock on transaction 742; blocked by deleter (pid ...).
    #     deleter (pid 13062) waits for ShareLock on transaction 741; blocked by linker (pid ...).
    assert "linker was chosen as the victim" in deadlock.report

    # The victim's transaction was aborted and its locks released: the cascade goes on.
    delete.result()
    deleter.commit()
    linker.rollback()
    assert pglocks.execute("SELECT count(*) FROM memory_links") == [(0,)]


@pytest.mark.no_deadlock
@pytest.mark.parametrize("deleter_ends", ["commit", "rollback"])
def test_deferred_fks_check_links_at_commit(pglocks, deleter_ends):
    """The fix: no deadlock, whatever the interleaving; the linker fails cleanly or succeeds."""
    create_schema(pglocks, "deferred")
    deleter, linker = pglocks.sessions("deleter", "linker")

    linker.begin()
    linker.execute("INSERT INTO memory_links VALUES (2, 3)")
    deleter.begin()
    assert_not_blocks(deleter.submit("DELETE FROM chunks WHERE id = 1"))
    # Unit 1 is deleted but not committed; without an immediate check nothing waits.
    assert_not_blocks(linker.submit("INSERT INTO memory_links VALUES (3, 1)"))

    if deleter_ends == "commit":
        deleter.commit()
        # The deferred check runs now, finds units 1 and 2 gone: 23503 at COMMIT, and the
        # linker's transaction is rolled back. No dangling link was ever visible.
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            linker.commit()
        assert pglocks.execute("SELECT count(*) FROM memory_links") == [(0,)]
    else:
        deleter.rollback()
        linker.commit()
        assert pglocks.execute("SELECT count(*) FROM memory_links") == [(2,)]


@pytest.mark.no_deadlock
def test_deferred_fk_check_at_commit_waits_for_the_deleter(pglocks):
    """If the linker commits first, its deferred check waits for the deleter: no cycle."""
    create_schema(pglocks, "deferred")
    deleter, linker = pglocks.sessions("deleter", "linker")

    linker.begin()
    linker.execute("INSERT INTO memory_links VALUES (2, 3)")
    deleter.begin()
    deleter.execute("DELETE FROM chunks WHERE id = 1")

    # COMMIT runs the check: SELECT ... FOR KEY SHARE on unit 2, which the deleter deleted
    # and has not committed, so it waits for the deleter's transaction. The deleter is idle in
    # its transaction, so linker.commit() would raise SessionBlocked: submit the COMMIT.
    commit = linker.submit("COMMIT")
    assert_blocks(commit, on=deleter, lock="transactionid")
    deleter.commit()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        commit.result()
