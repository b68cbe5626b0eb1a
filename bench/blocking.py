"""Blocked-detection latency and a two-session deadlock test, through the plugin's own engine."""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_pglocks.server import Server

SCHEMA = "CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)"


def _context(server: Server, dbname: str):  # type: ignore[no-untyped-def]
    from pytest_pglocks._context import TestContext, TestSettings

    settings = TestSettings(timeout=10.0, deadlock_timeout="10ms", manage_deadlock_timeout=True)
    return TestContext(server.conninfo(dbname), settings)


def detection(server: Server, runs: int) -> tuple[list[float], list[float]]:
    """Seconds from ``submit()`` of a statement that waits to ``assert_blocks()`` returning,
    and of one ``SELECT 1`` round trip through a session (the floor)."""
    import psycopg

    from pytest_pglocks import assert_blocks
    from pytest_pglocks._database import Databases

    databases = Databases(server, f"{server.template.removesuffix('_template')}_latency")
    dbname = databases.create()
    context = _context(server, dbname)
    latencies: list[float] = []
    round_trips: list[float] = []
    try:
        with psycopg.connect(server.conninfo(dbname), autocommit=True) as setup:
            setup.execute(SCHEMA)
        s1 = context.new_session("s1", {})
        s2 = context.new_session("s2", {})
        for _ in range(runs):
            s1.begin()
            s1.execute("UPDATE t SET v = v + 1 WHERE k = 1")
            started = perf_counter()
            pending = s2.submit("UPDATE t SET v = v + 1 WHERE k = 1")
            assert_blocks(pending, on=s1)
            latencies.append(perf_counter() - started)
            s1.commit()
            pending.result()
            started = perf_counter()
            s1.execute("SELECT 1")
            round_trips.append(perf_counter() - started)
    finally:
        context.close()
        databases.drop(dbname)
        databases.close()
    return latencies, round_trips


def deadlock_test(server: Server, runs: int) -> list[float]:
    """Seconds of a whole two-session deadlock test: database, sessions, deadlock, cleanup."""
    import psycopg

    from pytest_pglocks import assert_blocks, expect_deadlock
    from pytest_pglocks._database import Databases

    databases = Databases(server, f"{server.template.removesuffix('_template')}_deadlock")
    timings: list[float] = []
    try:
        for _ in range(runs):
            started = perf_counter()
            dbname = databases.create()
            context = _context(server, dbname)
            with psycopg.connect(server.conninfo(dbname), autocommit=True) as setup:
                setup.execute(SCHEMA)
            s1 = context.new_session("s1", {})
            s2 = context.new_session("s2", {})
            s1.begin()
            s2.begin()
            s1.execute("UPDATE t SET v = 1 WHERE k = 1")
            s2.execute("UPDATE t SET v = 1 WHERE k = 2")
            blocked = s1.submit("UPDATE t SET v = 2 WHERE k = 2")
            assert_blocks(blocked, on=s2)
            with expect_deadlock(victim=s2):
                s2.execute("UPDATE t SET v = 2 WHERE k = 1")
            s2.rollback()
            blocked.result()
            s1.commit()
            context.close()
            databases.drop(dbname)
            timings.append(perf_counter() - started)
    finally:
        databases.close()
    return timings
