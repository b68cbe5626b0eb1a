"""FK lock strength: what a child insert's FOR KEY SHARE lock on the parent row blocks.

Inserting a child row checks the foreign key with ``SELECT ... FOR KEY SHARE`` on the parent
row and keeps that row lock until the transaction ends (since PostgreSQL 9.3; before, it was
``FOR SHARE``). ``FOR KEY SHARE`` only protects the row's key: it conflicts with ``FOR UPDATE``,
which a DELETE or an UPDATE of a key column takes, but not with ``FOR NO KEY UPDATE``, which an
UPDATE of other columns takes, nor with ``FOR SHARE`` or another ``FOR KEY SHARE``.

A conflicting statement takes the tuple lock on the parent row, then waits for the child
inserter's transaction to end (``ShareLock`` on its ``transactionid``).
"""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import assert_blocks, assert_not_blocks


@pytest.fixture
def child_inserted(pglocks):
    """s1 has inserted a child of parent 1 and not committed: parent 1 is FOR KEY SHARE locked."""
    pglocks.execute(
        "CREATE TABLE parent (id int PRIMARY KEY, note text);"
        "CREATE TABLE child (parent_id int NOT NULL REFERENCES parent);"
        "INSERT INTO parent VALUES (1, 'first')"
    )
    s1, s2 = pglocks.sessions("s1", "s2")
    s1.begin()
    s1.execute("INSERT INTO child VALUES (1)")
    return s1, s2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE parent SET note = 'changed' WHERE id = 1",  # FOR NO KEY UPDATE
        "SELECT * FROM parent WHERE id = 1 FOR NO KEY UPDATE",
        "SELECT * FROM parent WHERE id = 1 FOR SHARE",
        "SELECT * FROM parent WHERE id = 1 FOR KEY SHARE",  # what another child insert takes
    ],
)
def test_child_insert_does_not_block(child_inserted, statement):
    s1, s2 = child_inserted
    s2.begin()
    # Completes at once; fails (naming the blocker) if it is ever seen waiting.
    assert_not_blocks(s2.submit(statement))
    s2.commit()
    s1.commit()


@pytest.mark.parametrize(
    ("statement", "after_commit"),
    [
        # FOR UPDATE conflicts with FOR KEY SHARE. Once s1 commits, the parent is referenced,
        # so changing its key or deleting it fails the (NO ACTION) foreign key: 23503.
        ("UPDATE parent SET id = 2 WHERE id = 1", psycopg.errors.ForeignKeyViolation),
        ("DELETE FROM parent WHERE id = 1", psycopg.errors.ForeignKeyViolation),
        ("SELECT * FROM parent WHERE id = 1 FOR UPDATE", None),
    ],
)
def test_child_insert_blocks(child_inserted, statement, after_commit):
    s1, s2 = child_inserted
    s2.begin()
    pending = s2.submit(statement)
    wait = assert_blocks(pending, on=s1, lock="transactionid")
    assert wait.mode == "ShareLock"
    assert wait.relation == "parent"  # the tuple lock s2 holds while it waits

    s1.commit()
    if after_commit is None:
        assert pending.result() == [(1, "first")]
    else:
        with pytest.raises(after_commit):
            pending.result()
    s2.rollback()
