"""Per-test database cost on the server: a clone of the template and its drop, which the
pool's thread does ahead of and behind the tests (the tests' own wait is (f)'s setup)."""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_pglocks.server import Server


def create_drop(server: Server, runs: int) -> tuple[list[float], list[float]]:
    """Seconds taken by each clone and each drop of the pool's thread, done here in turn."""
    from pytest_pglocks._database import Databases

    databases = Databases(server, f"{server.template.removesuffix('_template')}_bench")
    creates: list[float] = []
    drops: list[float] = []
    try:
        databases._drop(databases._clone())  # untimed: opens the maintenance connection
        for _ in range(runs):
            started = perf_counter()
            name = databases._clone()
            created = perf_counter()
            databases._drop(name)
            creates.append(created - started)
            drops.append(perf_counter() - created)
    finally:
        databases.close()
    return creates, drops


def create_file_copy(server: Server, runs: int) -> list[float]:
    """For comparison (15+): seconds of each clone with the FILE_COPY strategy."""
    import psycopg
    from psycopg import sql

    name = sql.Identifier(f"{server.template.removesuffix('_template')}_bench_file_copy")
    create = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
        name, sql.Identifier(server.template)
    )
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name)
    timings: list[float] = []
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        for _ in range(runs):
            started = perf_counter()
            conn.execute(create)
            timings.append(perf_counter() - started)
            conn.execute(drop)
    return timings
