"""Await forms of the calls that wait, for async tests (pytest-asyncio, or anyio on asyncio).

A blocking call such as ``session.execute()`` would stop the event loop while a statement
waits, so application tasks on that loop could never release the lock it waits for. These
forms send statements from the event loop's thread (so messages name the test's line) and wait
in a worker thread. What they raise is what the blocking form raises, the same exception object;
its traceback leaves out the asyncio and thread-pool frames.

A cancelled await stops waiting, but the statement goes on: it still ends at its timeout, or
at the test's teardown.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import errors
from .assertions import DeadlockExpectation, On, Target, Wait, assert_blocks, assert_not_blocks
from .assertions import expect_deadlock as _expect_deadlock
from .errors import PglocksError
from .session import ISOLATION_LEVELS, Pending, Session

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ._execute import Rows

__all__ = [
    "aassert_blocks",
    "aassert_not_blocks",
    "abegin",
    "acommit",
    "aexecute",
    "aexpect_deadlock",
    "aresult",
    "arollback",
    "asubmit",
]

P = ParamSpec("P")
T = TypeVar("T")

# Modules whose frames a traceback from a worker thread gains on its way back to the test.
MACHINERY = ("asyncio.", "concurrent.futures.", "threading", "contextvars")


def _is_machinery(frame: types.FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and name.startswith(MACHINERY)


def _without_machinery(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without the frames of asyncio, the thread pool and threading."""
    kept: list[types.TracebackType] = []
    while tb is not None:
        if not _is_machinery(tb.tb_frame):
            kept.append(tb)
        tb = tb.tb_next
    trimmed: types.TracebackType | None = None
    for entry in reversed(kept):
        trimmed = types.TracebackType(trimmed, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return trimmed


async def _off_loop(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` in a worker thread; its exception re-raised unchanged."""
    __tracebackhide__ = True
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except Exception as exc:
        # The first entry is this frame, which the raise below adds again.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        raise exc.with_traceback(_without_machinery(tb))  # noqa: B904 - the same exception


async def aexecute(
    session: Session, sql: str, params: Any = None, *, timeout: float | None = None
) -> Rows | None:
    """``session.execute()`` without blocking the event loop."""
    __tracebackhide__ = True
    pending = session._send(sql, params, "execute")
    return await _off_loop(session._wait, pending, "execute()", timeout)


async def asubmit(session: Session, sql: str, params: Any = None) -> Pending:
    """``session.submit()``: it never waits; here so that every call has an await form."""
    __tracebackhide__ = True
    return session._send(sql, params, "submit")


async def abegin(session: Session, isolation: str | None = None) -> None:
    """``session.begin()`` without blocking the event loop."""
    __tracebackhide__ = True
    sql = "BEGIN"
    if isolation is not None:
        level = " ".join(isolation.replace("_", " ").upper().split())
        if level not in ISOLATION_LEVELS:
            raise PglocksError(
                errors.BAD_ISOLATION.format(
                    name=session.name, value=isolation, levels=", ".join(ISOLATION_LEVELS)
                )
            )
        sql = f"BEGIN ISOLATION LEVEL {level}"
    await _off_loop(session._wait, session._send(sql, None, "begin"), "begin()")


async def acommit(session: Session) -> None:
    """``session.commit()`` without blocking the event loop."""
    __tracebackhide__ = True
    await _off_loop(session._wait, session._send("COMMIT", None, "commit"), "commit()")


async def arollback(session: Session) -> None:
    """``session.rollback()`` without blocking the event loop."""
    __tracebackhide__ = True
    await _off_loop(session._wait, session._send("ROLLBACK", None, "rollback"), "rollback()")


async def aresult(pending: Pending, timeout: float | None = None) -> Rows | None:
    """``pending.result()`` without blocking the event loop."""
    __tracebackhide__ = True
    return await _off_loop(pending.result, timeout)


async def aassert_blocks(
    target: Target,
    on: On = None,
    *,
    relation: str | None = None,
    lock: str | None = None,
    timeout: float | None = None,
) -> Wait:
    """``assert_blocks()`` without blocking the event loop."""
    __tracebackhide__ = True
    return await _off_loop(assert_blocks, target, on, relation=relation, lock=lock, timeout=timeout)


async def aassert_not_blocks(target: Target, *, timeout: float | None = None) -> Rows | None:
    """``assert_not_blocks()`` without blocking the event loop."""
    __tracebackhide__ = True
    return await _off_loop(assert_not_blocks, target, timeout=timeout)


class aexpect_deadlock:
    """``expect_deadlock()`` as an async context manager: ``async with aexpect_deadlock():``."""

    def __init__(
        self, victim: Session | None = None, *, one_of: Sequence[Session] | None = None
    ) -> None:
        __tracebackhide__ = True
        self._manager: AbstractContextManager[DeadlockExpectation, bool] = _expect_deadlock(
            victim, one_of=one_of
        )

    async def __aenter__(self) -> DeadlockExpectation:
        __tracebackhide__ = True
        return await _off_loop(self._manager.__enter__)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: types.TracebackType | None,
    ) -> bool | None:
        __tracebackhide__ = True
        return await _off_loop(self._manager.__exit__, kind, error, tb)
