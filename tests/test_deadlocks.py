"""Deadlocks: found in milliseconds, expect_deadlock with a deterministic victim, its failures."""

from __future__ import annotations

from fnmatch import fnmatchcase

import psycopg
import pytest
from fix_messages import Glob, assert_message
from fix_sessions import close, half_cycle

from pytest_pglocks import (
    Pglocks,
    PglocksError,
    assert_blocks,
    errors,
    expect_deadlock,
)

ROUNDS = 30


def test_sessions_run_the_deadlock_check_after_10ms_and_report_lock_waits(
    pglocks: Pglocks,
) -> None:
    s1 = pglocks.session()
    assert s1.execute("SHOW deadlock_timeout") == [("10ms",)]
    assert s1.execute("SHOW log_lock_waits") == [("on",)]
    # Only the sessions: the setup connection keeps the server's own setting (1s by default).
    assert pglocks.execute("SHOW deadlock_timeout") != [("10ms",)]


@pytest.mark.pglocks(deadlock_timeout="250ms")
def test_the_marker_sets_the_sessions_deadlock_timeout(pglocks: Pglocks) -> None:
    assert pglocks.session().execute("SHOW deadlock_timeout") == [("250ms",)]


@pytest.mark.parametrize("closer_name", ["s2", "s1"])
def test_the_victim_is_the_session_asked_for_every_time(
    pglocks: Pglocks, table: str, closer_name: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    closer = s1 if closer_name == "s1" else s2
    first = s2 if closer is s1 else s1
    for _ in range(ROUNDS):
        waiting = half_cycle(first, closer)
        with expect_deadlock(victim=closer) as deadlock:
            closing = close(closer)
        assert deadlock.victim is closer
        assert isinstance(closing.error, psycopg.errors.DeadlockDetected)
        assert waiting.result() is None  # the survivor got its row
        closer.rollback()
        first.rollback()
    # Outside the block every session is back to the run's deadlock_timeout.
    assert first.execute("SHOW deadlock_timeout") == [("10ms",)]
    assert closer.execute("SHOW deadlock_timeout") == [("10ms",)]


def test_a_session_outside_the_cycle_does_not_disturb_the_victim(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2, s3 = pglocks.sessions(3)
    # s1 holds row 1 and stays idle; s2 and s3 deadlock, s3 closing the cycle.
    s1.begin()
    s1.execute("UPDATE t SET v = v + 1 WHERE k = 1")
    s2.begin()
    s2.execute("UPDATE t SET v = v + 1 WHERE k = 2")
    s3.begin()
    s3.execute("UPDATE t SET v = v + 1 WHERE k = 3")
    s2_waits = s2.submit("UPDATE t SET v = v + 1 WHERE k = 3")
    assert_blocks(s2_waits, on=s3)
    with expect_deadlock(victim=s3) as deadlock:
        s3_waits = s3.submit("UPDATE t SET v = v + 1 WHERE k = 2")
    assert deadlock.victim is s3
    assert isinstance(s3_waits.error, psycopg.errors.DeadlockDetected)
    s2_waits.result()
    s1.rollback()


def test_a_deadlock_raised_inside_the_block_is_swallowed(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    waiting = half_cycle(s1, s2)
    with expect_deadlock(victim=s2) as deadlock:
        # A wait that leads into a cycle is not SessionBlocked: the server breaks the cycle.
        s2.execute("UPDATE t SET v = v + 1 WHERE k = 1")
    assert deadlock.victim is s2
    assert waiting.result() is None
    s1.commit()
    s2.rollback()
    assert pglocks.execute("SELECT k, v FROM t ORDER BY k") == [(1, 1), (2, 1), (3, 0)]


def test_expect_deadlock_counts_a_pending_whose_result_was_never_read(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    waiting = half_cycle(s1, s2)
    with expect_deadlock() as deadlock:
        closing = close(s2)
    assert deadlock.victim in (s1, s2)
    victim, survivor = (closing, waiting) if deadlock.victim is s2 else (waiting, closing)
    assert isinstance(victim.error, psycopg.errors.DeadlockDetected)
    assert survivor.result() is None
    name = deadlock.victim.name
    first_line, *detail = deadlock.report.splitlines()
    assert first_line == (
        f"deadlock: {name} was chosen as the victim while running {victim.sql!r} ({victim.where})"
    )
    assert any(fnmatchcase(line, f"  {name} (pid *) waits for ShareLock on *") for line in detail)
    s1.rollback()
    s2.rollback()


def test_the_deadlock_report_names_the_sessions_of_the_cycle(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    waiting = half_cycle(s1, s2)
    with expect_deadlock(victim=s2) as deadlock:
        close(s2)
    waiting.result()
    lines = deadlock.report.splitlines()
    assert fnmatchcase(
        lines[0],
        "deadlock: s2 was chosen as the victim while running 'UPDATE t SET v = v + 1 WHERE k = 1'"
        " (fix_sessions.py:*)",  # the line that sent it: close() of the shared fixtures
    )
    assert fnmatchcase(
        lines[1],
        f"  s2 (pid {s2.pid}) waits for ShareLock on transaction *; blocked by s1 (pid {s1.pid}).",
    )
    assert fnmatchcase(
        lines[2],
        f"  s1 (pid {s1.pid}) waits for ShareLock on transaction *; blocked by s2 (pid {s2.pid}).",
    )
    assert fnmatchcase(lines[3], '  CONTEXT:  while updating tuple (*,1) in relation "t"')
    s1.rollback()
    s2.rollback()


def test_expect_deadlock_fails_when_no_deadlock_happened(pglocks: Pglocks, table: str) -> None:
    s1 = pglocks.session()
    with pytest.raises(AssertionError) as excinfo, expect_deadlock():
        s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    assert_message(
        str(excinfo.value),
        errors.NO_DEADLOCK,
        graph="wait-for graph: no session of this test waits for another",
    )


@pytest.mark.pglocks(timeout=60)
def test_expect_deadlock_fails_at_once_when_the_block_ends_with_a_wait_that_cannot_end(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    with pytest.raises(AssertionError) as excinfo, expect_deadlock():
        waiting = s2.submit("UPDATE t SET v = 2 WHERE k = 1")
    # Without the early verdict this would have waited the whole 60 s and said NO_DEADLOCK.
    assert_message(
        str(excinfo.value),
        errors.DEADLOCK_IMPOSSIBLE,
        waits=Glob("s2: 'UPDATE t SET v = 2 WHERE k = 1' (test_deadlocks.py:*) waits for s1"),
        graph=Glob("wait-for graph:\n  s2 waits for ShareLock on transaction * held by s1"),
    )
    s1.rollback()
    waiting.result()


def test_a_deadlock_before_the_block_does_not_count(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    waiting = half_cycle(s1, s2)
    with expect_deadlock(victim=s2):
        close(s2)
    waiting.result()
    s1.rollback()
    s2.rollback()
    with pytest.raises(AssertionError) as excinfo, expect_deadlock():
        s1.execute("SELECT 1")
    assert_message(str(excinfo.value), errors.NO_DEADLOCK)


def test_expect_deadlock_fails_when_another_session_was_the_victim(pglocks: Pglocks) -> None:
    s1, s2 = pglocks.sessions(2)
    with pytest.raises(AssertionError) as excinfo, expect_deadlock(victim=s1):
        s2.submit(  # a 40P01 that s1 cannot have prevented
            "DO $$ BEGIN RAISE deadlock_detected; END $$"
        )
    assert_message(
        str(excinfo.value),
        errors.WRONG_VICTIM,
        wanted="s1",
        got="s2",
        report=Glob("deadlock: s2 was chosen as the victim while running 'DO $$*"),
    )


def test_expect_deadlock_refuses_a_victim_whose_running_statement_cannot_be_chosen(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2, s3 = pglocks.sessions(3)
    s2.execute("SELECT pg_advisory_lock(1)")
    with expect_deadlock(victim=s3):
        held_back = s1.submit("SELECT pg_advisory_lock(1)")  # sent with the 1h deadlock_timeout
        s3.execute("DO $$ BEGIN RAISE deadlock_detected; END $$")
    assert_blocks(held_back, on=s2)
    with pytest.raises(PglocksError) as excinfo, expect_deadlock(victim=s1):
        pass
    assert_message(
        str(excinfo.value), errors.VICTIM_BUSY, name="s1", sql="SELECT pg_advisory_lock(1)"
    )
    s2.execute("SELECT pg_advisory_unlock(1)")
    held_back.result()


@pytest.mark.parametrize("release", ["commit", "rollback"])
def test_the_victim_can_be_a_running_statement_that_a_release_lets_close_the_cycle(
    pglocks: Pglocks, table: str, release: str
) -> None:
    s1, s2, s3 = pglocks.sessions(3)
    for session, k in ((s1, 1), (s2, 2), (s3, 3)):
        session.begin()
        session.execute("UPDATE t SET v = v + 1 WHERE k = %s", (k,))
    # s1 waits for row 3 (s3), then will want row 2 (s2); s2 waits for row 1 (s1).
    closer = s1.submit("SELECT FROM t WHERE k = 3 FOR UPDATE; SELECT FROM t WHERE k = 2 FOR UPDATE")
    assert_blocks(closer, on=s3)
    other = s2.submit("UPDATE t SET v = v + 1 WHERE k = 1")
    assert_blocks(other, on=s1)
    with expect_deadlock(victim=s1) as deadlock:
        getattr(s3, release)()  # lets s1 go on to row 2: its new wait closes the cycle
    assert deadlock.victim is s1
    assert deadlock.survivor is other
    assert isinstance(closer.error, psycopg.errors.DeadlockDetected)
    assert other.result() is None
    s1.rollback()
    s2.rollback()


def test_the_victim_can_be_a_statement_a_gate_lets_go_on(pglocks: Pglocks, table: str) -> None:
    pglocks.execute("CREATE TABLE u (k int); INSERT INTO u VALUES (1)")
    gate = pglocks.gate("u", "before update")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = v + 1 WHERE k = 1")
    s2.begin()
    s2.execute("UPDATE t SET v = v + 1 WHERE k = 2")
    closer = s1.submit("UPDATE u SET k = 2; UPDATE t SET v = v + 1 WHERE k = 2")
    gate.wait_reached(s1)
    other = s2.submit("UPDATE t SET v = v + 1 WHERE k = 1")
    assert_blocks(other, on=s1)
    with expect_deadlock(victim=s1) as deadlock:
        gate.open()
    assert (deadlock.victim, deadlock.survivor) == (s1, other)
    assert isinstance(closer.error, psycopg.errors.DeadlockDetected)
    other.result()
    s1.rollback()
    s2.rollback()


def test_one_of_accepts_either_victim_and_names_the_survivor(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    waiting = half_cycle(s1, s2)
    with expect_deadlock(one_of=(s1, s2)) as deadlock:
        closing = close(s2)
    assert deadlock.victim in (s1, s2)
    victim, survivor = (closing, waiting) if deadlock.victim is s2 else (waiting, closing)
    assert deadlock.survivor is survivor
    assert isinstance(victim.error, psycopg.errors.DeadlockDetected)
    assert survivor.result() is None
    s1.rollback()
    s2.rollback()


def test_one_of_fails_when_another_session_was_the_victim(pglocks: Pglocks) -> None:
    s1, s2, s3 = pglocks.sessions(3)
    with pytest.raises(AssertionError) as excinfo, expect_deadlock(one_of=(s1, s2)):
        s3.execute("DO $$ BEGIN RAISE deadlock_detected; END $$")
    assert_message(str(excinfo.value), errors.WRONG_VICTIM, wanted="s1 or s2", got="s3")


@pytest.mark.parametrize("one_of", ["s1", (), "one"])
def test_one_of_takes_two_or_more_sessions(pglocks: Pglocks, one_of: object) -> None:
    s1 = pglocks.session()
    value = (s1,) if one_of == "one" else one_of
    with pytest.raises(TypeError) as excinfo:
        expect_deadlock(one_of=value)  # type: ignore[arg-type]
    assert_message(str(excinfo.value), errors.BAD_ONE_OF, value=value)


def test_a_lock_timeout_below_the_servers_deadlock_timeout_still_ends_in_55p03(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    # Not s1's own check: 10 ms into its wait, it finds the cycle if s2 has closed it by then.
    s1.set(deadlock_timeout="1h")
    waiting = half_cycle(s1, s2)
    s2.set(lock_timeout="200ms")  # the server's deadlock_timeout is 1 s: 55P03 comes first
    with pytest.raises(psycopg.errors.LockNotAvailable):
        s2.execute("UPDATE t SET v = v + 1 WHERE k = 1")  # closes the cycle
    s2.rollback()
    assert waiting.result() is None
    s1.rollback()


def test_expect_deadlock_refuses_a_victim_whose_timeout_comes_before_any_deadlock_check(
    pglocks: Pglocks,
) -> None:
    s1 = pglocks.session()
    s1.execute("SET lock_timeout = '200ms'")
    with pytest.raises(PglocksError) as excinfo, expect_deadlock(victim=s1):
        pass
    assert_message(str(excinfo.value), errors.VICTIM_TIMEOUT, name="s1", bound=200, server=1000)


def test_victim_and_one_of_do_not_go_together(pglocks: Pglocks) -> None:
    s1, s2 = pglocks.sessions(2)
    with pytest.raises(TypeError) as excinfo:
        expect_deadlock(victim=s1, one_of=(s1, s2))
    assert_message(str(excinfo.value), errors.VICTIM_AND_ONE_OF)


def test_expect_deadlock_refuses_a_victim_that_is_not_a_session(pglocks: Pglocks) -> None:
    pglocks.session()
    with pytest.raises(TypeError) as excinfo, expect_deadlock(victim="s1"):  # type: ignore[arg-type]
        pass
    assert_message(str(excinfo.value), errors.BAD_VICTIM, value="s1")


@pytest.mark.pglocks(timeout=0.3)
def test_expect_deadlock_refuses_a_victim_when_another_session_might_still_be_chosen(
    pglocks: Pglocks,
) -> None:
    s1, s2 = pglocks.sessions(2)
    s1.submit(
        "SELECT pg_sleep(30)"  # sleep-ok: slow statement
    )  # running, not waiting: its deadlock check never ran  # sleep-ok: slow statement
    with pytest.raises(PglocksError) as excinfo, expect_deadlock(victim=s2):
        pass
    assert_message(
        str(excinfo.value),
        errors.VICTIM_UNCERTAIN,
        victim="s2",
        name="s1",
        sql="SELECT pg_sleep(30)",  # sleep-ok: slow statement
    )


def test_expect_deadlock_without_victim_needs_the_pglocks_fixture() -> None:
    with pytest.raises(PglocksError) as excinfo, expect_deadlock():
        pass
    assert_message(str(excinfo.value), errors.NO_CURRENT_TEST)


@pytest.mark.pglocks(deadlock_timeout="60min")
def test_a_cycle_nobody_breaks_shows_in_the_graph(pglocks: Pglocks, table: str) -> None:
    s1, s2 = pglocks.sessions(2)
    half_cycle(s1, s2)
    assert_blocks(close(s2), on=s1)
    graph = pglocks.graph()
    assert graph.cycles() == [sorted([s1.pid, s2.pid])]
    text = str(graph)
    assert "cycle (deadlock): " in text
    assert fnmatchcase(
        text.splitlines()[-1],
        "  cycle (deadlock): s? waits for ShareLock on transaction * held by s?; "
        "s? waits for ShareLock on transaction * held by s?",
    )
    # Teardown cancels both statements; nothing hangs.


def test_a_statement_sent_last_in_a_victim_block_keeps_the_long_deadlock_timeout(
    pglocks: Pglocks, table: str
) -> None:
    s1, s2 = pglocks.sessions(2)
    with pytest.raises(AssertionError), expect_deadlock(victim=s1):
        inside = s2.submit("SELECT current_setting('deadlock_timeout')")
    # The block ended (no deadlock) before s2's thread ran the statement, often.
    assert inside.result() == [("1h",)]
    assert s2.execute("SELECT current_setting('deadlock_timeout')") == [("10ms",)]


def test_without_a_manageable_deadlock_timeout_expect_deadlock_warns(
    pglocks: Pglocks, table: str
) -> None:
    from dataclasses import replace

    from pytest_pglocks import PglocksWarning

    context = pglocks._context
    context.settings = replace(context.settings, manage_deadlock_timeout=False)
    (s1,) = pglocks.sessions(1)
    with (
        pytest.warns(PglocksWarning, match="may not set deadlock_timeout"),
        pytest.raises(AssertionError),
        expect_deadlock(),
    ):
        pass
    assert s1.execute("SHOW log_lock_waits") == [("off",)]
