"""pglocks.role(): login roles unique to the test, sessions that connect as them."""

from __future__ import annotations

import psycopg
import pytest
from fix_messages import assert_message
from fix_sessions import close, half_cycle

from pytest_pglocks import (
    Pglocks,
    PglocksError,
    Role,
    assert_blocks,
    assert_not_blocks,
    errors,
    expect_deadlock,
)


def test_a_session_connects_as_a_role_named_after_the_tests_database(
    pglocks: Pglocks, table: str
) -> None:
    app = pglocks.role("app")
    assert isinstance(app, Role)
    assert (app.label, app.name) == ("app", f"{pglocks.dbname}_app")
    assert str(app) == f'"{pglocks.dbname}_app"'
    session = pglocks.session("web", role=app)
    assert session.execute(
        "SELECT current_user, rolsuper FROM pg_roles WHERE oid = %s", (app.oid,)
    ) == [(app.name, False)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        session.execute("SELECT count(*) FROM t")
    pglocks.execute(f"GRANT SELECT ON t TO {app}")
    assert session.execute("SELECT count(*) FROM t") == [(3,)]


def test_row_level_security_sees_the_rows_of_the_role(pglocks: Pglocks) -> None:
    alice, bob = pglocks.role("alice"), pglocks.role("bob")
    pglocks.execute(
        "CREATE TABLE notes (owner name NOT NULL, body text);"
        "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;"
        "CREATE POLICY own ON notes USING (owner = current_user);"
        f"GRANT SELECT ON notes TO {alice}, {bob};"
        f"INSERT INTO notes VALUES ('{alice.name}', 'a'), ('{bob.name}', 'b')"
    )
    assert pglocks.session(role=alice).execute("SELECT body FROM notes") == [("a",)]
    assert pglocks.session(role=bob).execute("SELECT body FROM notes") == [("b",)]


def test_role_sessions_keep_the_managed_deadlock_settings(pglocks: Pglocks) -> None:
    session = pglocks.session(role=pglocks.role("app"))
    assert session.execute("SHOW deadlock_timeout") == [("10ms",)]
    assert session.execute("SHOW log_lock_waits") == [("on",)]


def test_an_advisory_lock_keyed_by_the_roles_oid(pglocks: Pglocks) -> None:
    app = pglocks.role("app")
    s1, s2 = pglocks.session("s1", role=app), pglocks.session("s2", role=app)
    s1.execute("SELECT pg_advisory_lock(%s)", (app.oid,))
    wait = assert_blocks(s2.submit("SELECT pg_advisory_lock(%s)", (app.oid,)), on=s1)
    assert wait.lock is not None
    assert wait.lock.advisory_key == app.oid
    s1.execute("SELECT pg_advisory_unlock(%s)", (app.oid,))
    assert_not_blocks(s2)


def test_a_deadlock_between_role_sessions_with_a_chosen_victim(
    pglocks: Pglocks, table: str
) -> None:
    app = pglocks.role("app")
    pglocks.execute(f"GRANT SELECT, UPDATE ON t TO {app}")
    s1, s2 = pglocks.session("s1", role=app), pglocks.session("s2", role=app)
    waiting = half_cycle(s1, s2)
    if pglocks.server.major < 15:  # no GRANT SET ON PARAMETER: the victim cannot be chosen
        with pytest.raises(PglocksError) as excinfo, expect_deadlock(victim=s2):
            pass
        assert_message(str(excinfo.value), errors.VICTIM_ROLE, victim="s2", role="app")
        s2.rollback()
        waiting.result()
        return
    with expect_deadlock(victim=s2) as deadlock:
        close(s2)
    assert deadlock.survivor is waiting
    waiting.result()


def test_a_superuser_role_can_be_the_victim_on_every_major(pglocks: Pglocks, table: str) -> None:
    root = pglocks.role("root", superuser=True)
    s1, s2 = pglocks.session("s1", role=root), pglocks.session("s2", role=root)
    waiting = half_cycle(s1, s2)
    with expect_deadlock(victim=s2):
        close(s2)
    waiting.result()


def test_role_misuse_is_refused_with_what_to_do(pglocks: Pglocks) -> None:
    pglocks.role("app")
    with pytest.raises(PglocksError) as duplicate:
        pglocks.role("app")
    assert_message(str(duplicate.value), errors.DUPLICATE_ROLE, label="app")
    with pytest.raises(TypeError) as not_a_role:
        pglocks.session(role="app")  # type: ignore[arg-type]
    assert_message(str(not_a_role.value), errors.BAD_ROLE, value="app")
    with pytest.raises(PglocksError) as bad_options:
        pglocks.role("other", options="SUPERDUPER")
    assert_message(
        str(bad_options.value), errors.BAD_ROLE_OPTIONS, label="other", options="SUPERDUPER"
    )


def test_roles_granted_and_dropped_at_once_by_two_workers_wait_for_each_other(
    pglocks: Pglocks,
) -> None:
    """Their SET on deadlock_timeout shares one pg_parameter_acl row (15+): without a lock,
    one of two concurrent GRANTs or DROP OWNEDs fails with "tuple concurrently updated"."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from pytest_pglocks.roles import create_role, drop_roles

    gucs = {"deadlock_timeout": "10ms"}
    start = Barrier(2)

    def churn(worker: int) -> None:
        with psycopg.connect(pglocks.dsn, autocommit=True) as conn:
            for round_ in range(30):
                start.wait(10)
                role = create_role(
                    conn,
                    pglocks.dbname,
                    f"w{worker}_{round_}",
                    superuser=False,
                    options="",
                    gucs=gucs,
                    major=pglocks.server.major,
                )
                start.wait(10)
                drop_roles(conn, [role])

    with ThreadPoolExecutor(2) as workers:
        for done in [workers.submit(churn, worker) for worker in range(2)]:
            done.result()
