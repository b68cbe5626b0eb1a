"""django-pg-zero-downtime-migrations: dropping a model with a foreign key locks the other table.

Report: https://github.com/tbicr/django-pg-zero-downtime-migrations/issues/25
("migrations.DeleteModel locks DB when it has ForeignKey field"), fixed by
https://github.com/tbicr/django-pg-zero-downtime-migrations/pull/65.
Deleting ``ModelB``, whose foreign key points at ``ModelA``, ran ``DROP TABLE model_b CASCADE``:
dropping the constraint's triggers takes ``ACCESS EXCLUSIVE`` on ``model_a`` as well, held until
the migration's transaction ends, and ``model_a`` was locked for 8 minutes. The fix drops the
foreign key first, in a short statement of its own, so the slow drop locks ``model_b`` only.
"""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import Pglocks, assert_blocks, assert_not_blocks

SCHEMA = """
CREATE TABLE model_a (id int PRIMARY KEY);
CREATE TABLE model_b (id int PRIMARY KEY, related_a_id int NOT NULL REFERENCES model_a);
INSERT INTO model_a VALUES (1);
"""
READ_A = "SELECT id FROM model_a"


def test_drop_table_locks_the_referenced_table(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    migration, app = pglocks.sessions("migration", "app")
    migration.begin()
    migration.execute("DROP TABLE model_b CASCADE")
    # model_b is gone from the app's view, and so is model_a until the migration commits.
    read = app.submit(READ_A)
    assert_blocks(read, on=migration, relation="model_a", lock="AccessShareLock")
    migration.commit()
    assert read.result() == [(1,)]


@pytest.mark.no_deadlock
def test_dropping_the_foreign_key_first_leaves_the_other_table_free(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    migration, app = pglocks.sessions("migration", "app")
    # The fix: the constraint goes first, in its own short transaction.
    migration.execute("ALTER TABLE model_b DROP CONSTRAINT model_b_related_a_id_fkey")
    migration.begin()
    migration.execute("DROP TABLE model_b CASCADE")
    assert assert_not_blocks(app.submit(READ_A)) == [(1,)]
    count_b = app.submit("SELECT count(*) FROM model_b")  # only model_b is locked
    assert_blocks(count_b, on=migration, relation="model_b", lock="AccessShareLock")
    migration.commit()
    with pytest.raises(psycopg.errors.UndefinedTable):
        count_b.result()
