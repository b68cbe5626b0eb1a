"""Application connections as sessions: observe(), assertions on them, deadlocks from the log."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fix_inner import Inner
from fix_messages import Glob, assert_message, line_pattern

from pytest_pglocks import (
    Observed,
    Pglocks,
    PglocksError,
    WaitTimeout,
    assert_blocks,
    assert_not_blocks,
    errors,
)
from pytest_pglocks._context import poll_gaps
from pytest_pglocks.observe import ServerLog

TABLE = "CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)"


class App:
    """A connection of 'the application', opened and driven on its own thread."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self.jobs: list[tuple[str, threading.Event]] = []
        self.ready = threading.Event()
        self.errors: list[BaseException] = []
        self._go = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, application_name=self.name, autocommit=True) as conn:
            self.ready.set()
            while True:
                with self._go:
                    self._go.wait_for(lambda: self.jobs or self._stop)
                    if not self.jobs:
                        return
                    sql, done = self.jobs.pop(0)
                try:
                    conn.execute(sql)
                except psycopg.Error as exc:
                    self.errors.append(exc)
                done.set()

    def send(self, sql: str) -> threading.Event:
        done = threading.Event()
        with self._go:
            self.jobs.append((sql, done))
            self._go.notify()
        return done

    def close(self) -> None:
        with self._go:
            self._stop = True
            self._go.notify()
        self.thread.join(10)


def wait_active(pglocks: Pglocks, pid: int) -> None:
    """Until the server shows ``pid`` running a statement."""
    pace = threading.Event()
    query = f"SELECT state FROM pg_stat_activity WHERE pid = {pid}"
    for gap in itertools.islice(poll_gaps(), 10_000):  # ~20 s at most
        if pglocks.execute(query) == [("active",)]:
            return
        pace.wait(gap)
    raise AssertionError(f"pid {pid} never ran a statement")


@pytest.fixture
def apps(pglocks: Pglocks) -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.close()


def test_observe_by_application_name_and_pid(pglocks: Pglocks, apps: list[App]) -> None:
    apps.append(App(pglocks.dsn, "billing"))
    billing = pglocks.observe("billing")
    assert isinstance(billing, Observed)
    assert billing.name == billing.application_name == "billing"
    again = pglocks.observe(pid=billing.pid)
    assert again is billing
    renamed = pglocks.observe("billing", name="other")
    assert renamed is billing  # one backend, one Observed
    assert pglocks.graph().snapshot.names[billing.pid] == "billing"


def test_observe_without_arguments_adopts_the_applications_backends_only(
    pglocks: Pglocks, apps: list[App]
) -> None:
    pglocks.execute("SELECT 1")  # the setup connection is the plugin's own
    s1 = pglocks.session("s1")
    apps += [App(pglocks.dsn, "worker"), App(pglocks.dsn, "")]
    adopted = pglocks.observe()
    assert isinstance(adopted, list)
    names = sorted(observed.name for observed in adopted)
    assert names[1:] == ["worker"]
    assert names[0].startswith("pid ")
    assert s1.pid not in {observed.pid for observed in adopted}
    assert pglocks.observe() == []  # adopted already


def test_observe_times_out_with_what_is_connected(pglocks: Pglocks) -> None:
    pglocks.session("s1")
    with pytest.raises(WaitTimeout) as raised:
        pglocks.observe("nobody-connects", timeout=0.2)
    assert_message(
        str(raised.value),
        errors.OBSERVE_TIMEOUT,
        wanted="application_name='nobody-connects'",
        limit=0.2,
        connected=Glob("*s1 (pid *"),
    )


def test_observe_refuses_a_name_shared_by_several_backends_and_lists_them(
    pglocks: Pglocks, apps: list[App]
) -> None:
    first, second = App(pglocks.dsn, "worker"), App(pglocks.dsn, "worker")
    apps += [first, second]
    first.send("SELECT 1 /* first */").wait(10)
    with pytest.raises(PglocksError) as raised:
        pglocks.observe("worker")
    pids = [
        pid
        for (pid,) in pglocks.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'worker'"
            " ORDER BY backend_start"
        )
        or []
    ]
    assert len(pids) == 2
    assert_message(
        str(raised.value),
        errors.OBSERVE_AMBIGUOUS,
        application_name="worker",
        count=2,
        backends=Glob(
            f"  pid {pids[0]} (idle): SELECT 1 /[*] first [*]/\n  pid {pids[1]} (idle): *"
        ),
    )
    assert pglocks.observe(pid=pids[1]).pid == pids[1]  # the way out the message names


def test_observe_refuses_a_name_taken_by_a_session(pglocks: Pglocks, apps: list[App]) -> None:
    pglocks.session("s1")
    apps.append(App(pglocks.dsn, "s1"))
    with pytest.raises(PglocksError) as raised:
        pglocks.observe("s1")
    assert_message(str(raised.value), errors.OBSERVE_DUPLICATE, name="s1")
    assert pglocks.observe("s1", name="app").name == "app"


def test_assert_blocks_on_and_of_an_observed_backend(pglocks: Pglocks, apps: list[App]) -> None:
    pglocks.execute(TABLE)
    app = App(pglocks.dsn, "app")
    apps.append(app)
    observed = pglocks.observe("app")
    assert isinstance(observed, Observed)
    s1 = pglocks.session("s1")
    app.send("BEGIN").wait(10)
    app.send("UPDATE t SET v = 1 WHERE k = 1").wait(10)
    # A session waits for the application's transaction.
    pending = s1.submit("UPDATE t SET v = 2 WHERE k = 1")
    wait = assert_blocks(pending, on=observed, lock="transactionid")
    assert wait.blockers == (observed,)
    assert "s1 waits for ShareLock on transaction" in str(wait)
    assert "held by app" in str(wait)
    app.send("COMMIT").wait(10)
    pending.result()
    # The application waits for a session's transaction.
    s1.begin()
    s1.execute("UPDATE t SET v = 3 WHERE k = 2")
    done = app.send("UPDATE t SET v = 4 WHERE k = 2")
    wait = assert_blocks(observed, on=s1)
    assert wait.waiter is observed
    assert wait.mode == "ShareLock"
    with pytest.raises(AssertionError) as wrong:
        assert_blocks(observed, on=pglocks.session("s2"))
    assert_message(
        str(wrong.value),
        errors.WRONG_WAIT,
        target=f"app (pid {observed.pid}, observed)",
        why="blocked by s1, not s2",
    )
    s1.commit()
    assert done.wait(10)
    assert_not_blocks(observed)  # idle again, never seen blocked


def test_assert_not_blocks_fails_for_a_blocked_observed_backend(
    pglocks: Pglocks, apps: list[App]
) -> None:
    pglocks.execute(TABLE)
    app = App(pglocks.dsn, "app")
    apps.append(app)
    observed = pglocks.observe("app")
    assert isinstance(observed, Observed)
    s1 = pglocks.session("s1")
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    done = app.send("UPDATE t SET v = 2 WHERE k = 1")
    wait_active(pglocks, observed.pid)  # an observed backend's statements are seen from outside
    with pytest.raises(AssertionError) as raised:
        assert_not_blocks(observed)
    assert_message(
        str(raised.value),
        errors.BLOCKED_UNEXPECTEDLY,
        target=f"app (pid {observed.pid}, observed)",
        wait=Glob("app waits for ShareLock on transaction * held by s1"),
    )
    s1.rollback()
    assert done.wait(10)


def test_asyncpg_connections_are_observed_too(pglocks: Pglocks) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    pglocks.execute(TABLE)
    s1 = pglocks.session("s1")
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    result: list[str] = []

    async def app() -> None:
        conn = await asyncpg.connect(pglocks.url, server_settings={"application_name": "apg"})
        try:
            result.append(await conn.execute("UPDATE t SET v = 2 WHERE k = 1"))
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(app(),))
    thread.start()
    observed = pglocks.observe("apg")
    assert isinstance(observed, Observed)
    wait = assert_blocks(observed, on=s1, lock="transactionid")
    assert wait.relation == "t"
    s1.commit()
    thread.join(10)
    assert result == ["UPDATE 1"]


def test_no_deadlock_sees_deadlocks_of_application_connections(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_app=f"""
        import threading, psycopg, pytest
        from pytest_pglocks import assert_blocks

        def app(dsn, name, first, second, locked, go):
            with psycopg.connect(dsn, application_name=name) as conn:
                conn.execute(f"UPDATE t SET v = 1 WHERE k = {{first}}")
                locked.set()
                go.wait()
                try:
                    conn.execute(f"UPDATE t SET v = 1 WHERE k = {{second}}")
                except psycopg.errors.DeadlockDetected:
                    conn.rollback()  # the application handles it: no_deadlock must still see it

        def run(pglocks, second_b):
            pglocks.execute({TABLE!r})
            events = [threading.Event() for _ in range(4)]
            a = threading.Thread(target=app, args=(pglocks.dsn, "app-a", 1, 2, *events[:2]))
            b = threading.Thread(target=app, args=(pglocks.dsn, "app-b", 2, second_b, *events[2:]))
            a.start(); b.start()
            events[0].wait(); events[2].wait()
            app_a, app_b = pglocks.observe("app-a"), pglocks.observe("app-b")
            events[1].set()
            assert_blocks(app_a, on=app_b)
            events[3].set()
            a.join(); b.join()

        @pytest.mark.no_deadlock
        def test_deadlock(pglocks):
            run(pglocks, 1)

        @pytest.mark.no_deadlock
        def test_no_deadlock(pglocks):
            run(pglocks, 2)

        def inserting(pglocks, a_keys, b_keys):
            sc = pglocks.scenario(setup="CREATE TABLE u (k int PRIMARY KEY)")
            for name, keys in (("a", a_keys), ("b", b_keys)):
                s = sc.session(name, setup="BEGIN")
                for n, k in enumerate(keys):
                    s.step(f"{{name}}{{n}}", f"INSERT INTO u VALUES ({{k}}) ON CONFLICT DO NOTHING")
                s.step(f"{{name}}c", "COMMIT")
            return sc

        @pytest.mark.no_deadlock
        def test_the_deadlocks_of_a_negative_control_are_not_the_tests(pglocks):
            control = inserting(pglocks, (1, 2), (2, 1))
            inserting(pglocks, (1, 2), (1, 2)).explore(control=control)
            assert any(run.deadlocked for run in control._explore(None, True).interleavings)
        """
    )
    result = inner.run("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            line_pattern(errors.DEADLOCK_SEEN),
            "deadlock (server log): app-? (pid *) was chosen as the victim while running "
            "'UPDATE t SET v = 1 WHERE k = ?'",
            "  app-? (pid *) waits for ShareLock on transaction *; blocked by app-? (pid *).",
        ]
    )


def test_server_log_reads_one_databases_deadlocks_since_it_was_opened(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "2026-11-22 01:00:00.000 UTC [10] db=mine ERROR:  deadlock detected\n"  # before: skipped
    )
    watch = ServerLog(log, "mine")
    with log.open("a") as out:
        out.write(
            "2026-11-22 01:00:01.000 UTC [11] db=other ERROR:  deadlock detected\n"
            "2026-11-22 01:00:02.000 UTC [12] db=mine ERROR:  deadlock detected\n"
            "2026-11-22 01:00:02.000 UTC [12] db=mine DETAIL:  Process 12 waits for ShareLock"
            " on transaction 5; blocked by process 13.\n"
            "\tProcess 13 waits for ShareLock on transaction 6; blocked by process 12.\n"
            "2026-11-22 01:00:02.000 UTC [12] db=mine HINT:  See server log for query details.\n"
            "2026-11-22 01:00:02.000 UTC [12] db=mine STATEMENT:  UPDATE t SET v = 1\n"
            "2026-11-22 01:00:03.000 UTC [13] db=mine ERROR:  duplicate key value\n"
            "2026-11-22 01:00:04.000 UTC [] db= LOG:  checkpoint starting: time\n"
        )
    (deadlock,) = watch.deadlocks()
    assert deadlock.pid == 12
    assert deadlock.statement == "UPDATE t SET v = 1"
    assert deadlock.detail.splitlines() == [
        "Process 12 waits for ShareLock on transaction 5; blocked by process 13.",
        "Process 13 waits for ShareLock on transaction 6; blocked by process 12.",
    ]
    assert ServerLog(tmp_path / "missing.log", "mine").deadlocks() == []


def test_url_reaches_the_test_database(pglocks: Pglocks) -> None:
    assert pglocks.url.startswith("postgresql://")
    with psycopg.connect(pglocks.url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row == (pglocks.dbname,)
