"""pytest-pglocks: deterministic tests of PostgreSQL lock waits and deadlocks."""

from __future__ import annotations

from .assertions import (
    DeadlockExpectation,
    Wait,
    assert_blocks,
    assert_not_blocks,
    expect_deadlock,
)
from .errors import PglocksError, PglocksWarning, ServerError, SessionBlocked, WaitTimeout
from .handle import Pglocks
from .monitor import LockRow, WaitGraph
from .server import Server
from .session import Pending, Session

__all__ = [
    "DeadlockExpectation",
    "LockRow",
    "Pending",
    "Pglocks",
    "PglocksError",
    "PglocksWarning",
    "Server",
    "ServerError",
    "Session",
    "SessionBlocked",
    "Wait",
    "WaitGraph",
    "WaitTimeout",
    "assert_blocks",
    "assert_not_blocks",
    "expect_deadlock",
]
