"""Barriers: named points where application code (threads or asyncio tasks) stops until the
test releases it.

The application calls ``barrier.wait()`` (or ``await barrier.wait_async()``) at the point, often
through a monkeypatched seam; the test waits for callers with ``wait_reached()`` and lets them
go with ``release()``. Every wait has a timeout (the test's, by default). When the test waits
for one barrier while code is parked at another barrier of the same test, neither can go on:
the failure, on whichever side it comes first, says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import errors
from .errors import PglocksError, WaitTimeout
from .session import PACKAGE_DIR, caller_location

if TYPE_CHECKING:
    from ._timeline import Timeline

__all__ = ["Barrier"]

# Modules that may run application code's wait itself (a task's or a thread's own target).
MACHINERY = ("asyncio", "threading", "concurrent")

# One condition for every barrier: a caller giving up at one barrier wakes the test waiting at
# another. Async waiters of the test register a wake-up here too (see ``_notify``).
_changed = threading.Condition()
_async_watchers: set[Callable[[], None]] = set()


def _notify() -> None:
    """Wake every waiter to look again; call with ``_changed`` held."""
    _changed.notify_all()
    for wake in list(_async_watchers):
        wake()


def _loop_waker(loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> Callable[[], None]:
    """``wake`` run on ``loop`` from any thread; nothing once the loop is closed."""

    def call() -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
            loop.call_soon_threadsafe(wake)

    return call


def _location() -> str:
    """Where application code called the barrier: ``app.py:12``, or ``called by asyncio``
    when a task or thread runs ``wait``/``wait_async`` itself, with no code of its own."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:  # pragma: no cover
        return "?"
    module = str(frame.f_globals.get("__name__", ""))
    if module.split(".")[0] in MACHINERY:
        return f"called by {module.split('.')[0]}"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


@dataclass(eq=False)
class _Caller:
    """Application code parked at a barrier."""

    who: str  # "thread 'app'" or "task 'worker'"
    where: str
    since: float
    wake: Callable[[], None] | None = None  # wakes an asyncio caller's loop
    released: bool = False

    def describe(self) -> str:
        return f"{self.who} ({self.where})"


@dataclass(eq=False)
class _TestWait:
    """A ``wait_reached()`` in progress; ``gave_up`` is set when code at another barrier
    timed out meanwhile: then neither side can go on, and the wait fails at once."""

    count: int
    where: str
    gave_up: tuple[Barrier, _Caller, float] | None = field(default=None)


class Barrier:
    """A point application code stops at (``wait()``, ``await wait_async()``) until the test
    lets it go (``wait_reached()``, ``release()``)."""

    __module__ = "pytest_pglocks"

    name: str
    timeout: float

    def __init__(
        self,
        name: str,
        *,
        timeout: float,
        _registry: list[Barrier] | None = None,
        _timeline: Timeline | None = None,
        _ispytest: bool = False,
    ) -> None:
        if not _ispytest:
            raise TypeError("Barrier is created by pglocks.barrier(name); request the fixture")
        registry = [] if _registry is None else _registry
        if any(barrier.name == name for barrier in registry):
            raise PglocksError(errors.DUPLICATE_BARRIER.format(name=name))
        self.name = name
        self.timeout = timeout
        # The barriers of the same test (the handle appends this one after construction).
        self._registry = registry
        self._timeline = _timeline  # the test's, where arrivals and releases are recorded
        self._parked: list[_Caller] = []
        self._waits: list[_TestWait] = []
        self._closed = False
        # The messages of callers that timed out: the application may have swallowed them.
        self._timeouts: list[str] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"reached={self.reached}"
        return f"<pytest_pglocks.Barrier {self.name!r} {state}>"

    @property
    def reached(self) -> int:
        """How many callers are parked here now."""
        with _changed:
            return len(self._parked)

    # application side

    def wait(self, *_: object, timeout: float | None = None, **__: object) -> None:
        """Stop here until the test releases this barrier (a thread's call).

        Other arguments are ignored, so ``wait`` can stand in for any function of the
        application (``monkeypatch.setattr(app, "before_commit", barrier.wait)``).
        """
        __tracebackhide__ = True
        who = f"thread {threading.current_thread().name!r}"
        caller = self._arrive(who, _location(), None)
        if caller is None:
            return
        limit = self.timeout if timeout is None else timeout
        deadline = caller.since + limit
        with _changed:
            while not caller.released:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                _changed.wait(remaining)
            if caller.released:
                return
            message = self._give_up(caller, limit)
        raise WaitTimeout(message)

    async def wait_async(self, *_: object, timeout: float | None = None, **__: object) -> None:
        """Stop here until the test releases this barrier, without blocking the event loop.

        The release may come from any thread or task. Other arguments are ignored, as for
        ``wait()``.
        """
        __tracebackhide__ = True
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        who = f"task {task.get_name()!r}" if task is not None else "a coroutine"
        released: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not released.done():
                released.set_result(None)

        caller = self._arrive(who, _location(), _loop_waker(loop, resolve))
        if caller is None:
            return
        limit = self.timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(released, caller.since + limit - time.monotonic())
        except TimeoutError:
            pass
        except BaseException:  # cancelled: this caller is no longer parked
            with _changed:
                if caller in self._parked:
                    self._parked.remove(caller)
                    _notify()
            raise
        with _changed:
            if caller.released:
                return
            message = self._give_up(caller, limit)
        raise WaitTimeout(message)

    # test side

    def wait_reached(self, count: int = 1, timeout: float | None = None) -> None:
        """Return once ``count`` callers are parked here (those already parked count)."""
        __tracebackhide__ = True
        self._check_count(count, "wait_reached")
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with _changed:
            wait = _TestWait(count, caller_location())
            self._waits.append(wait)
            _notify()
            try:
                while (verdict := self._verdict(wait, deadline, limit)) is None:
                    _changed.wait(max(deadline - time.monotonic(), 0))
            finally:
                self._waits.remove(wait)
        if verdict:
            raise WaitTimeout(verdict)

    async def wait_reached_async(self, count: int = 1, timeout: float | None = None) -> None:
        """``wait_reached()`` for async tests: waits without blocking the event loop."""
        __tracebackhide__ = True
        self._check_count(count, "wait_reached_async")
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        changed = asyncio.Event()
        watcher = _loop_waker(asyncio.get_running_loop(), changed.set)
        wait = _TestWait(count, caller_location())
        with _changed:
            self._waits.append(wait)
            _async_watchers.add(watcher)
            _notify()
        try:
            while True:
                with _changed:
                    changed.clear()
                    verdict = self._verdict(wait, deadline, limit)
                if verdict is not None:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(deadline - time.monotonic(), 0))
        finally:
            with _changed:
                self._waits.remove(wait)
                _async_watchers.discard(watcher)
        if verdict:
            raise WaitTimeout(verdict)

    def release(self, count: int | None = None) -> int:
        """Let every parked caller go, or the first ``count`` to arrive; how many went."""
        __tracebackhide__ = True
        if count is not None:
            self._check_count(count, "release")
        with _changed:
            if count is not None and count > len(self._parked):
                reached = len(self._parked)
                raise PglocksError(
                    errors.BARRIER_RELEASE_COUNT.format(
                        name=self.name,
                        count=count,
                        reached=reached,
                        s=_plural(reached),
                        verb="is" if reached == 1 else "are",
                    )
                )
            chosen = self._parked[: len(self._parked) if count is None else count]
            del self._parked[: len(chosen)]
            self._let_go(chosen)
        self._record(f"released {len(chosen)}", caller_location())
        return len(chosen)

    # internals

    def _check_count(self, count: int, call: str) -> None:
        __tracebackhide__ = True
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                errors.BAD_BARRIER_COUNT.format(name=self.name, call=call, count=count)
            )

    def _arrive(self, who: str, where: str, wake: Callable[[], None] | None) -> _Caller | None:
        """Park a caller; None once the barrier is closed (the caller goes straight through)."""
        with _changed:
            if self._closed:
                return None
            caller = _Caller(who, where, time.monotonic(), wake)
            self._parked.append(caller)
            _notify()
        self._record(f"reached by {who}", where)
        return caller

    def _record(self, what: str, where: str) -> None:
        if self._timeline is not None:
            self._timeline.record(f"barrier {self.name}", "barrier", "", detail=what, where=where)

    def _let_go(self, callers: list[_Caller]) -> None:
        """Mark ``callers`` released and wake them; call with ``_changed`` held."""
        for caller in callers:
            caller.released = True
            if caller.wake is not None:
                caller.wake()
        _notify()

    def _peers(self) -> list[Barrier]:
        return [barrier for barrier in self._registry if barrier is not self]

    def _give_up(self, caller: _Caller, limit: float) -> str:
        """Unpark a caller that timed out; its message. Call with ``_changed`` held.

        A test waiting meanwhile at another barrier is told (its wait fails at once).
        """
        self._parked.remove(caller)
        mutual = ""
        for peer in self._peers():
            for wait in peer._waits:
                if wait.gave_up is None:
                    wait.gave_up = (self, caller, limit)
                if not mutual:
                    mutual = errors.BARRIER_TEST_WAITS.format(
                        name=self.name, other=peer.name, test_where=wait.where
                    )
        _notify()
        message = errors.BARRIER_CALLER_TIMEOUT.format(
            name=self.name, who=caller.who, where=caller.where, limit=limit, mutual=mutual
        )
        self._timeouts.append(message)
        return message

    def _verdict(self, wait: _TestWait, deadline: float, limit: float) -> str | None:
        """For a ``wait_reached()``: "" once reached, a failure message, or None to go on
        waiting. Call with ``_changed`` held."""
        reached = len(self._parked)
        if reached >= wait.count:
            return ""
        s = _plural(wait.count)
        if wait.gave_up is not None:
            other, caller, caller_limit = wait.gave_up
            return errors.BARRIER_CODE_GAVE_UP.format(
                name=self.name,
                reached=reached,
                count=wait.count,
                s=s,
                where=wait.where,
                who=caller.who,
                caller_where=caller.where,
                other=other.name,
                limit=caller_limit,
            )
        if time.monotonic() < deadline:
            return None
        parked = [peer for peer in self._peers() if peer._parked]
        mutual = ""
        if parked:
            mutual = errors.BARRIER_CODE_PARKED.format(
                name=self.name,
                parked=" and ".join(
                    errors.BARRIER_PARKED_AT.format(
                        callers=" and ".join(caller.describe() for caller in peer._parked),
                        verb="is" if len(peer._parked) == 1 else "are",
                        name=peer.name,
                    )
                    for peer in parked
                ),
                others=" and ".join(repr(peer.name) for peer in parked),
            )
        return errors.BARRIER_NOT_REACHED.format(
            name=self.name,
            reached=reached,
            count=wait.count,
            s=s,
            limit=limit,
            where=wait.where,
            mutual=mutual,
        )

    def _close(self) -> None:
        """At the test's teardown: let every parked caller go; later callers pass through."""
        with _changed:
            self._closed = True
            chosen, self._parked = self._parked, []
            self._let_go(chosen)
