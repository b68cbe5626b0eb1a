"""A small table for lock tests, and a connection of the test database that is not a session.

``table`` creates ``t (k int PRIMARY KEY, v int)`` holding rows ``k`` = 1, 2, 3 (``v`` = 0).
``outsider`` is a plain psycopg connection to the test's database: it can hold locks, but it is
none of the test's sessions, so pytest-pglocks must never count it as a blocker.
``wait_until_waiting`` synchronises by observation: it returns once a backend waits for a lock.
``half_cycle`` and ``close`` make the classic two-row deadlock on ``t``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pytest_pglocks import Pending, Pglocks, Session, assert_blocks

Connection = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def table(pglocks: Pglocks) -> str:
    """The name of a fresh table ``t (k int PRIMARY KEY, v int)`` with rows 1, 2, 3."""
    pglocks.execute(
        "CREATE TABLE t (k int PRIMARY KEY, v int NOT NULL);"
        "INSERT INTO t SELECT k, 0 FROM generate_series(1, 3) AS k"
    )
    return "t"


@pytest.fixture
def outsider(pglocks: Pglocks) -> Iterator[Connection]:
    """A connection to the test's database that is not one of its sessions (autocommit off)."""
    with psycopg.connect(pglocks.dsn, application_name="outsider") as conn:
        yield conn
        conn.rollback()


def wait_until_waiting(dsn: str, pid: int, timeout: float = 10.0) -> None:
    """Return once backend ``pid`` waits for a heavyweight lock (looks again, never sleeps)."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while True:
            row = watcher.execute(
                "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND NOT granted)", (pid,)
            ).fetchone()
            if row and row[0]:
                return
            assert time.monotonic() < deadline, f"backend {pid} never waited for a lock"


def half_cycle(first: Session, closer: Session) -> Pending:
    """``first`` holds row 1 of ``t`` and waits for row 2, held by ``closer``; first's wait.

    ``closer`` closes the cycle by updating row 1 (see ``close``).
    """
    first.begin()
    first.execute("UPDATE t SET v = v + 1 WHERE k = 1")
    closer.begin()
    closer.execute("UPDATE t SET v = v + 1 WHERE k = 2")
    waiting = first.submit("UPDATE t SET v = v + 1 WHERE k = 2")
    assert_blocks(waiting, on=closer)
    return waiting


def close(closer: Session) -> Pending:
    """The statement of ``closer`` that closes ``half_cycle``'s cycle."""
    return closer.submit("UPDATE t SET v = v + 1 WHERE k = 1")
