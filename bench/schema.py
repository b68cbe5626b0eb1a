"""(m) A project's schema per test: cloned from a template built once, or its DDL run per test.

The schema has ``tables`` tables, each with a primary key, a few columns, a unique index and a
foreign key to the one before: the shape of an application's schema, not its data. Both ways
are timed on the same server in the same run, alternated, each sample a whole per-test setup
and teardown as the ``pglocks`` fixture does it (create, drop).
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_pglocks.server import Server


def ddl(tables: int) -> str:
    """CREATE TABLE statements of a schema of ``tables`` linked tables."""
    statements = []
    for n in range(tables):
        parent = f", parent_id bigint REFERENCES t{n - 1:03d}" if n else ""
        statements.append(
            f"CREATE TABLE t{n:03d} (id bigserial PRIMARY KEY, name text NOT NULL, "
            f"created timestamptz NOT NULL DEFAULT now(), amount numeric(12, 2){parent});"
            f"CREATE UNIQUE INDEX ON t{n:03d} (name);"
        )
    return "\n".join(statements)


@dataclass(frozen=True)
class SchemaTimes:
    """Seconds: the template's one build, then per-test setup + teardown both ways."""

    build: float
    cloned: list[float]
    per_test_ddl: list[float]


def schema_setup(server: Server, runs: int, tables: int = 200) -> SchemaTimes:
    """Time ``runs`` per-test setups with the schema's template and with the DDL per test."""
    import psycopg

    from pytest_pglocks import _schema
    from pytest_pglocks._database import Databases

    schema = ddl(tables)

    def build(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(schema.encode())

    started = perf_counter()
    template = f"{server.template}_bench_schema"
    # The template build as the plugin does it (_schema._build), once.
    _schema._build(server, template, [_schema.Step("python", "bench", build)], None)
    built = perf_counter() - started
    databases = Databases(server, f"{server.template.removesuffix('_template')}_schema")
    cloned: list[float] = []
    per_test: list[float] = []
    try:
        databases.drop(databases.create(template))  # untimed: the maintenance connection
        for _ in range(runs):  # alternated, so that drift affects both alike
            started = perf_counter()
            databases.drop(databases.create(template))
            cloned.append(perf_counter() - started)
            started = perf_counter()
            name = databases.create()
            build(server.conninfo(name))
            databases.drop(name)
            per_test.append(perf_counter() - started)
    finally:
        databases.close()
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            _schema._drop(conn, template)
    return SchemaTimes(built, cloned, per_test)
