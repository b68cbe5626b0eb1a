"""The application under test in test_application_code.py: a tiny memory store.

Two functions as a service would have them, each opening its own connection (here psycopg; the
tests work the same with asyncpg or a pool): ``retain_links`` records units of a chunk and links
between units in one transaction; ``delete_chunks`` deletes chunks, and the database cascades to
their units and to every link touching those units. Run concurrently, with immediate foreign
keys, they deadlock (see test_fk_cascade.py for the lock mechanics).
"""

from __future__ import annotations

import psycopg

SCHEMA = """
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
INSERT INTO memory_units VALUES (1, 1), (2, 1);
"""


def create_schema(dsn: str, *, deferred_fks: bool) -> None:
    deferral = "DEFERRABLE INITIALLY DEFERRED" if deferred_fks else ""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.format(deferral=deferral))


def before_commit() -> None:
    """A seam: called before retain_links commits (tests park the thread here)."""


def retain_links(dsn: str, units: list[tuple[int, int]], links: list[tuple[int, int]]) -> None:
    """One transaction: insert the units (id, chunk), then each link (src, dst) by itself."""
    with (
        psycopg.connect(dsn, application_name="retain_links") as conn,
        conn.transaction(),
    ):
        for unit in units:
            conn.execute("INSERT INTO memory_units VALUES (%s, %s)", unit)
        for link in links:
            conn.execute("INSERT INTO memory_links VALUES (%s, %s)", link)
        before_commit()


def link_all(dsn: str, links: list[tuple[int, int]]) -> None:
    """One autocommit statement inserting every link (a batch import)."""
    rows = ", ".join("(%s, %s)" for _ in links)
    with psycopg.connect(dsn, application_name="link_all", autocommit=True) as conn:
        conn.execute(f"INSERT INTO memory_links VALUES {rows}", [v for link in links for v in link])


def delete_chunks(dsn: str, ids: list[int]) -> None:
    """One DELETE; the foreign keys cascade to the chunks' units and their links."""
    with psycopg.connect(dsn, application_name="delete_chunks", autocommit=True) as conn:
        conn.execute("DELETE FROM chunks WHERE id = ANY(%s)", (ids,))
