"""pytest-pglocks: deterministic tests of PostgreSQL lock waits and deadlocks."""

from __future__ import annotations

from ._execute import StepConnection
from .aio import aassert_blocks, aassert_not_blocks, aexpect_deadlock
from .assertions import (
    DeadlockExpectation,
    Wait,
    assert_blocks,
    assert_not_blocks,
    expect_deadlock,
)
from .barriers import Barrier
from .errors import PglocksError, PglocksWarning, ServerError, SessionBlocked, WaitTimeout
from .explore import Exploration, Interleaving, Outcome, OutcomeGroup, Scenario
from .gates import Gate
from .handle import Pglocks
from .isolation import SpecOutcome, StepFact
from .monitor import LockRow, WaitGraph
from .observe import Observed
from .roles import Role
from .server import Server
from .session import Pending, Session

__all__ = [
    "Barrier",
    "DeadlockExpectation",
    "Exploration",
    "Gate",
    "Interleaving",
    "LockRow",
    "Observed",
    "Outcome",
    "OutcomeGroup",
    "Pending",
    "Pglocks",
    "PglocksError",
    "PglocksWarning",
    "Role",
    "Scenario",
    "Server",
    "ServerError",
    "Session",
    "SessionBlocked",
    "SpecOutcome",
    "StepConnection",
    "StepFact",
    "Wait",
    "WaitGraph",
    "WaitTimeout",
    "aassert_blocks",
    "aassert_not_blocks",
    "aexpect_deadlock",
    "assert_blocks",
    "assert_not_blocks",
    "expect_deadlock",
]
