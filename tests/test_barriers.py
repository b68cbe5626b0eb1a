"""Barriers: application code (threads, asyncio tasks) parks at a named point; the test waits
for it there, releases it, and is told when the test and the code wait on each other."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from functools import partial

import psycopg
import pytest
from fix_inner import Inner
from fix_messages import Glob, assert_message, pattern

from pytest_pglocks import Pglocks, PglocksError, WaitTimeout, barriers
from pytest_pglocks.barriers import Barrier
from pytest_pglocks.errors import (
    BAD_BARRIER_COUNT,
    BARRIER_CALLER_TIMEOUT,
    BARRIER_CODE_GAVE_UP,
    BARRIER_CODE_PARKED,
    BARRIER_NOT_REACHED,
    BARRIER_PARKED_AT,
    BARRIER_RELEASE_COUNT,
    BARRIER_TEST_WAITS,
    DUPLICATE_BARRIER,
)

HERE = Glob("test_barriers.py:*")
# How long a test lets a thread take to finish once it may: only a guard against a hang.
FINISH = 10.0


def make(name: str, timeout: float = 30.0, registry: list[Barrier] | None = None) -> Barrier:
    """A barrier as pglocks.barrier() makes it; ``registry``: the other barriers of the test."""
    barrier = Barrier(name, timeout=timeout, _registry=registry, _ispytest=True)
    if registry is not None:
        registry.append(barrier)
    return barrier


class Caller(threading.Thread):
    """Application code in a thread; ``finish()`` returns ``"passed"`` or what it raised."""

    def __init__(self, function: Callable[[], object], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.function = function
        self.outcome: object = None

    def run(self) -> None:
        try:
            self.function()
            self.outcome = "passed"
        except BaseException as exc:
            self.outcome = exc

    def finish(self) -> object:
        self.join(FINISH)
        assert not self.is_alive(), f"{self.name} is still running"
        return self.outcome


def started(function: Callable[[], object], name: str = "app") -> Caller:
    caller = Caller(function, name)
    caller.start()
    return caller


def test_threads_park_at_the_barrier_until_the_test_releases_them() -> None:
    barrier = make("before_commit")
    callers = [started(barrier.wait, f"app{number}") for number in (1, 2)]
    barrier.wait_reached(2)
    assert barrier.reached == 2
    assert [caller.is_alive() for caller in callers] == [True, True]
    assert repr(barrier) == "<pytest_pglocks.Barrier 'before_commit' reached=2>"
    assert barrier.release() == 2
    assert [caller.finish() for caller in callers] == ["passed", "passed"]
    assert barrier.reached == 0


def test_release_count_lets_the_first_arrivals_go_in_their_order() -> None:
    barrier = make("step")
    callers = []
    for number in (1, 2, 3):
        callers.append(started(barrier.wait, f"app{number}"))
        barrier.wait_reached(number)  # so they arrive in this order
    assert barrier.release(1) == 1
    assert callers[0].finish() == "passed"
    assert barrier.reached == 2
    assert [caller.is_alive() for caller in callers[1:]] == [True, True]
    assert barrier.release(2) == 2
    assert [caller.finish() for caller in callers[1:]] == ["passed", "passed"]


def test_wait_reached_counts_callers_already_parked_and_starts_over_after_a_release() -> None:
    barrier = make("loop")
    passes: list[int] = []

    def twice_through() -> None:
        for number in (1, 2):
            barrier.wait()
            passes.append(number)

    app = started(twice_through)
    barrier.wait_reached()
    barrier.wait_reached()  # the caller parked already counts: returns at once
    assert passes == []
    assert barrier.release() == 1
    barrier.wait_reached()  # its second arrival
    assert passes == [1]
    assert barrier.release() == 1
    assert app.finish() == "passed"
    assert passes == [1, 2]
    assert barrier.release() == 0  # nobody parked: nothing to do


def test_releasing_more_callers_than_are_parked_fails() -> None:
    barrier = make("before_commit")
    app = started(barrier.wait)
    barrier.wait_reached()
    with pytest.raises(PglocksError) as excinfo:
        barrier.release(2)
    assert str(excinfo.value) == (
        "barrier 'before_commit': release(2) but 1 caller is parked; wait for them with "
        "wait_reached(2) first"
    )
    assert_message(
        str(excinfo.value),
        BARRIER_RELEASE_COUNT,
        name="before_commit",
        count=2,
        reached=1,
        s="",
        verb="is",
    )
    assert barrier.reached == 1  # nobody went
    assert barrier.release() == 1
    assert app.finish() == "passed"


@pytest.mark.parametrize("call", ["wait_reached", "release"])
def test_a_count_below_one_is_refused(call: str) -> None:
    barrier = make("before_commit")
    with pytest.raises(ValueError) as excinfo:
        getattr(barrier, call)(0)
    assert str(excinfo.value) == BAD_BARRIER_COUNT.format(name="before_commit", call=call, count=0)


def test_two_barriers_of_a_test_may_not_share_a_name() -> None:
    registry: list[Barrier] = []
    make("before_commit", registry=registry)
    with pytest.raises(PglocksError) as excinfo:
        make("before_commit", registry=registry)
    assert str(excinfo.value) == DUPLICATE_BARRIER.format(name="before_commit")
    assert str(excinfo.value) == (
        "a barrier named 'before_commit' already exists in this test; pick another name"
    )


def test_barriers_are_made_by_the_fixture() -> None:
    with pytest.raises(TypeError) as excinfo:
        Barrier("before_commit", timeout=1.0)
    assert str(excinfo.value) == "Barrier is created by pglocks.barrier(name); request the fixture"


# timeouts


def test_a_caller_parked_longer_than_the_barriers_timeout_fails_naming_the_barrier() -> None:
    barrier = make("before_commit", timeout=0.05)
    error = started(barrier.wait).finish()
    assert isinstance(error, WaitTimeout)
    assert_message(
        str(error),
        BARRIER_CALLER_TIMEOUT,
        name="before_commit",
        who="thread 'app'",
        where=HERE,
        limit=0.05,
        mutual="",
    )
    assert barrier.reached == 0
    assert barrier._timeouts == [str(error)]  # kept for the test's teardown to report


def test_a_callers_own_timeout_overrides_the_barriers() -> None:
    barrier = make("before_commit")
    error = started(partial(barrier.wait, timeout=0.02)).finish()
    assert isinstance(error, WaitTimeout)
    assert_message(
        str(error),
        BARRIER_CALLER_TIMEOUT,
        name="before_commit",
        who="thread 'app'",
        where=HERE,
        limit=0.02,
        mutual="",
    )
    assert str(error).startswith("barrier 'before_commit': thread 'app' (test_barriers.py:")
    assert str(error).endswith(
        ") was not released within 0.02 s; the test lets callers go with barrier.release()"
    )


def test_wait_reached_fails_at_its_timeout_saying_how_many_callers_came() -> None:
    barrier = make("before_commit")
    app = started(barrier.wait)
    barrier.wait_reached()
    with pytest.raises(WaitTimeout) as excinfo:
        barrier.wait_reached(2, timeout=0.05)
    assert_message(
        str(excinfo.value),
        BARRIER_NOT_REACHED,
        name="before_commit",
        reached=1,
        count=2,
        s="s",
        limit=0.05,
        where=HERE,
        mutual="",
    )
    assert str(excinfo.value).startswith(
        "barrier 'before_commit': 1 of 2 callers reached it within 0.05 s (wait_reached() at "
        "test_barriers.py:"
    )
    barrier.release()
    assert app.finish() == "passed"


def test_the_test_waiting_for_a_barrier_while_code_is_parked_at_another_is_told_so() -> None:
    registry: list[Barrier] = []
    first, second = make("first", registry=registry), make("second", registry=registry)
    app = started(first.wait)
    first.wait_reached()
    with pytest.raises(WaitTimeout) as excinfo:
        second.wait_reached(timeout=0.05)  # the code can't get there: it is parked at first
    parked = pattern(
        BARRIER_PARKED_AT,
        callers=Glob("thread 'app' (test_barriers.py:*)"),
        verb="is",
        name="first",
    )
    assert_message(
        str(excinfo.value),
        BARRIER_NOT_REACHED,
        name="second",
        reached=0,
        count=1,
        s="",
        limit=0.05,
        where=HERE,
        mutual=Glob(
            pattern(BARRIER_CODE_PARKED, name="second", parked=Glob(parked), others="'first'")
        ),
    )
    assert str(excinfo.value).endswith(
        ") is parked at barrier 'first': the test and the code wait on each other; release "
        "'first' before waiting for 'second'"
    )
    assert first.release() == 1
    assert app.finish() == "passed"


def test_code_timing_out_while_the_test_waits_at_another_barrier_fails_both_at_once() -> None:
    registry: list[Barrier] = []
    first, second = make("first", registry=registry), make("second", registry=registry)

    def app() -> None:
        with barriers._changed:  # park only once the test waits at the second barrier
            assert barriers._changed.wait_for(lambda: bool(second._waits), FINISH)
        first.wait(timeout=0.05)

    caller = started(app)
    with pytest.raises(WaitTimeout) as excinfo:
        second.wait_reached(timeout=FINISH)  # fails when the code gives up, not at FINISH
    error = caller.finish()
    assert isinstance(error, WaitTimeout)
    assert_message(
        str(error),
        BARRIER_CALLER_TIMEOUT,
        name="first",
        who="thread 'app'",
        where=HERE,
        limit=0.05,
        mutual=Glob(pattern(BARRIER_TEST_WAITS, name="first", other="second", test_where=HERE)),
    )
    assert str(error).endswith(
        ": the test and the code wait on each other; release 'first' before waiting for 'second'"
    )
    assert_message(
        str(excinfo.value),
        BARRIER_CODE_GAVE_UP,
        name="second",
        reached=0,
        count=1,
        s="",
        where=HERE,
        who="thread 'app'",
        caller_where=HERE,
        other="first",
        limit=0.05,
    )
    assert (first.reached, second.reached) == (0, 0)


# teardown


def test_close_lets_parked_callers_go_and_later_ones_pass_straight_through() -> None:
    barrier = make("before_commit")
    callers = [started(barrier.wait, f"app{number}") for number in (1, 2)]
    barrier.wait_reached(2)
    barrier._close()
    assert [caller.finish() for caller in callers] == ["passed", "passed"]
    assert repr(barrier) == "<pytest_pglocks.Barrier 'before_commit' closed>"
    barrier.wait(timeout=0.01)  # parking would fail after 0.01 s
    asyncio.run(barrier.wait_async(timeout=0.01))
    assert barrier.reached == 0


def test_the_fixture_teardown_releases_threads_still_parked(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_parked="""
        import threading

        left = {}

        def test_leaves_a_thread_parked(pglocks):
            barrier = pglocks.barrier("before_commit")
            outcome = []

            def app():
                barrier.wait()
                outcome.append("released")

            thread = threading.Thread(target=app, daemon=True)
            thread.start()
            barrier.wait_reached()
            left.update(thread=thread, outcome=outcome, barrier=barrier)

        def test_the_thread_went_on_at_the_teardown():
            left["thread"].join(10)
            assert left["outcome"] == ["released"]
            left["barrier"].wait(timeout=0.01)  # passes straight through now
        """
    )
    result = inner.run("-p", "no:randomly")
    result.assert_outcomes(passed=2)


# the application's code, reached through a seam


def before_commit() -> None:
    """The application's seam before it commits; does nothing in production."""


def bump(dsn: str) -> None:
    """Application code: add 1 to row 1 in one transaction."""
    with psycopg.connect(dsn, application_name="app") as conn:
        conn.execute("UPDATE t SET v = v + 1 WHERE k = 1")
        before_commit()


def test_a_barrier_holds_application_code_inside_its_transaction(
    pglocks: Pglocks, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    barrier = pglocks.barrier("before_commit")
    monkeypatch.setattr(sys.modules[__name__], "before_commit", barrier.wait)
    app = started(partial(bump, pglocks.dsn))
    barrier.wait_reached()
    s1 = pglocks.session()
    with pytest.raises(psycopg.errors.LockNotAvailable):  # the application holds row 1
        s1.execute("SELECT v FROM t WHERE k = 1 FOR UPDATE NOWAIT")
    assert s1.execute("SELECT v FROM t WHERE k = 1") == [(0,)]  # not committed yet
    assert barrier.release() == 1
    assert app.finish() == "passed"
    assert s1.execute("SELECT v FROM t WHERE k = 1 FOR UPDATE NOWAIT") == [(1,)]


# asyncio


def test_a_task_on_a_loop_in_another_thread_is_released_by_the_test_thread() -> None:
    barrier = make("before_send")
    events: list[str] = []

    async def app() -> None:
        events.append("parking")
        await barrier.wait_async()
        events.append("released")

    loop_thread = started(partial(asyncio.run, app()), "loop")
    barrier.wait_reached()
    assert events == ["parking"]
    assert barrier.release() == 1
    assert loop_thread.finish() == "passed"
    assert events == ["parking", "released"]


@pytest.mark.asyncio
async def test_a_task_is_released_by_another_task_of_the_same_loop() -> None:
    barrier = make("before_send")
    events: list[str] = []

    async def app() -> None:
        await barrier.wait_async()
        events.append("app released")

    async def controller() -> None:
        await barrier.wait_reached_async()
        events.append(f"controller saw {barrier.reached} parked")
        barrier.release()

    await asyncio.wait_for(asyncio.gather(app(), controller()), FINISH)
    assert events == ["controller saw 1 parked", "app released"]


@pytest.mark.asyncio
async def test_a_task_parked_longer_than_the_timeout_fails_naming_the_barrier() -> None:
    barrier = make("before_send", timeout=0.05)

    async def app() -> None:
        await barrier.wait_async()

    with pytest.raises(WaitTimeout) as excinfo:
        await asyncio.create_task(app(), name="app")
    assert_message(
        str(excinfo.value),
        BARRIER_CALLER_TIMEOUT,
        name="before_send",
        who="task 'app'",
        where=HERE,
        limit=0.05,
        mutual="",
    )
    assert barrier.reached == 0
    # A task that is the barrier's wait itself has no line of its own to show.
    with pytest.raises(WaitTimeout) as excinfo:
        await asyncio.create_task(barrier.wait_async(), name="bare")
    assert_message(str(excinfo.value), BARRIER_CALLER_TIMEOUT, where="called by asyncio")


@pytest.mark.asyncio
async def test_a_cancelled_task_leaves_the_barrier() -> None:
    barrier = make("before_send")
    app = asyncio.create_task(barrier.wait_async(), name="app")
    await barrier.wait_reached_async()
    app.cancel()
    with pytest.raises(asyncio.CancelledError):
        await app
    assert barrier.reached == 0


@pytest.mark.asyncio
async def test_wait_reached_async_reports_code_parked_at_another_barrier() -> None:
    registry: list[Barrier] = []
    first, second = make("first", registry=registry), make("second", registry=registry)
    app = asyncio.create_task(first.wait_async(), name="app")
    await first.wait_reached_async()
    with pytest.raises(WaitTimeout) as excinfo:
        await second.wait_reached_async(timeout=0.05)
    parked = pattern(BARRIER_PARKED_AT, callers=Glob("task 'app' (*)"), verb="is", name="first")
    assert_message(
        str(excinfo.value),
        BARRIER_NOT_REACHED,
        name="second",
        reached=0,
        count=1,
        s="",
        limit=0.05,
        where=HERE,
        mutual=Glob(
            pattern(BARRIER_CODE_PARKED, name="second", parked=Glob(parked), others="'first'")
        ),
    )
    assert first.release() == 1
    await app


@pytest.mark.asyncio
async def test_a_task_timing_out_while_the_test_awaits_another_barrier_fails_both() -> None:
    registry: list[Barrier] = []
    first, second = make("first", registry=registry), make("second", registry=registry)

    async def app() -> None:
        await first.wait_async(timeout=0.05)

    # The task starts once the test awaits: the test is waiting before the task parks.
    task = asyncio.create_task(app(), name="app")
    with pytest.raises(WaitTimeout) as excinfo:
        await second.wait_reached_async(timeout=FINISH)
    assert_message(
        str(excinfo.value),
        BARRIER_CODE_GAVE_UP,
        name="second",
        reached=0,
        count=1,
        s="",
        where=HERE,
        who="task 'app'",
        caller_where=HERE,
        other="first",
        limit=0.05,
    )
    with pytest.raises(WaitTimeout) as app_excinfo:
        await task
    assert_message(
        str(app_excinfo.value),
        BARRIER_CALLER_TIMEOUT,
        name="first",
        who="task 'app'",
        where=HERE,
        limit=0.05,
        mutual=Glob(pattern(BARRIER_TEST_WAITS, name="first", other="second", test_where=HERE)),
    )
