"""pytest-pglocks: deterministic tests of PostgreSQL lock waits and deadlocks.

Every public name is importable from here, but each is loaded on first use (module
``__getattr__``): a pytest run that never touches the plugin imports none of its machinery.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    from .race import Race
    from .roles import Role
    from .server import Server
    from .session import Pending, Session

# Public name → the module defining it.
_MODULES = {
    "StepConnection": "._execute",
    "aassert_blocks": ".aio",
    "aassert_not_blocks": ".aio",
    "aexpect_deadlock": ".aio",
    "DeadlockExpectation": ".assertions",
    "Wait": ".assertions",
    "assert_blocks": ".assertions",
    "assert_not_blocks": ".assertions",
    "expect_deadlock": ".assertions",
    "Barrier": ".barriers",
    "PglocksError": ".errors",
    "PglocksWarning": ".errors",
    "ServerError": ".errors",
    "SessionBlocked": ".errors",
    "WaitTimeout": ".errors",
    "Exploration": ".explore",
    "Interleaving": ".explore",
    "Outcome": ".explore",
    "OutcomeGroup": ".explore",
    "Scenario": ".explore",
    "Gate": ".gates",
    "Pglocks": ".handle",
    "SpecOutcome": ".isolation",
    "StepFact": ".isolation",
    "LockRow": ".monitor",
    "WaitGraph": ".monitor",
    "Observed": ".observe",
    "Race": ".race",
    "Role": ".roles",
    "Server": ".server",
    "Pending": ".session",
    "Session": ".session",
}

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
    "Race",
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


def __getattr__(name: str) -> object:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
