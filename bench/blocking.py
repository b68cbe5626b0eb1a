"""Blocked-detection latency, a two-session deadlock test, and that test written by hand."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_pglocks._context import TestContext, TestSettings
    from pytest_pglocks.server import Server

SCHEMA = "CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)"


def plain_settings() -> TestSettings:
    """A test's settings with the defaults of a plain run (10 s timeout, 10 ms deadlocks)."""
    from pytest_pglocks._context import TestSettings

    return TestSettings(timeout=10.0, deadlock_timeout="10ms", manage_deadlock_timeout=True)


def context_for(server: Server, dbname: str) -> TestContext:
    """What one test's sessions share (timeline, monitor), on database ``dbname``."""
    from pytest_pglocks._context import TestContext

    return TestContext(server.own_conninfo(dbname), plain_settings())


def detection(server: Server, runs: int) -> tuple[list[float], list[float]]:
    """Seconds from ``submit()`` of a statement that waits to ``assert_blocks()`` returning,
    and of one ``SELECT 1`` round trip through a session (the floor)."""
    import psycopg

    from pytest_pglocks import assert_blocks
    from pytest_pglocks._database import Databases

    databases = Databases(server, f"{server.template.removesuffix('_template')}_latency")
    dbname = databases.create()
    context = context_for(server, dbname)
    latencies: list[float] = []
    round_trips: list[float] = []
    try:
        with psycopg.connect(server.own_conninfo(dbname), autocommit=True) as setup:
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
            context = context_for(server, dbname)
            with psycopg.connect(server.own_conninfo(dbname), autocommit=True) as setup:
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


def _transfer(dsn: str, first: int, second: int) -> str:
    """One thread of the hand-written test: lock ``first``, wait, lock ``second``, commit."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        try:
            conn.execute("UPDATE t SET v = 1 WHERE k = %s", (first,))
            time.sleep(0.1)  # sleep-ok: the hand-written ordering: the other thread locks its row
            conn.execute("UPDATE t SET v = 2 WHERE k = %s", (second,))
            conn.commit()
        except psycopg.errors.DeadlockDetected as exc:
            conn.rollback()
            return str(exc.sqlstate)
    return "committed"


def handwritten_deadlock(server: Server, runs: int) -> tuple[list[float], str]:
    """Seconds of the same deadlock written the common way, and the ``deadlock_timeout`` used.

    Two threads with plain psycopg connections take their first row lock, sleep 0.1 s so that
    the other thread has taken its own, then ask for the other row; the server finds the
    deadlock after its ``deadlock_timeout`` (default 1 s) and one thread gets 40P01. Each run
    clones and drops a database like ``deadlock_test``.
    """
    import psycopg

    from pytest_pglocks._database import Databases

    with psycopg.connect(server.dsn) as conn:
        deadlock_timeout = str(conn.execute("SHOW deadlock_timeout").fetchall()[0][0])
    databases = Databases(server, f"{server.template.removesuffix('_template')}_handwritten")
    timings: list[float] = []
    try:
        for _ in range(runs):
            started = perf_counter()
            dbname = databases.create()
            dsn = server.conninfo(dbname)
            with psycopg.connect(dsn, autocommit=True) as setup:
                setup.execute(SCHEMA)
            with ThreadPoolExecutor(2) as threads:
                outcomes = list(threads.map(_transfer, [dsn, dsn], [1, 2], [2, 1]))
            if sorted(outcomes) != ["40P01", "committed"]:
                raise RuntimeError(
                    f"hand-written deadlock: expected 40P01 and a commit: {outcomes}"
                )
            databases.drop(dbname)
            timings.append(perf_counter() - started)
    finally:
        databases.close()
    return timings, deadlock_timeout
