"""The per-test database: its conninfo, execute() for setup, and the pool it comes from."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from pytest_pglocks import Pglocks, Server
from pytest_pglocks._database import Databases


def test_the_dsn_connects_to_this_tests_own_database(pglocks: Pglocks) -> None:
    pglocks.execute("CREATE TABLE mine (a int); INSERT INTO mine VALUES (1)")
    with psycopg.connect(pglocks.dsn) as conn:
        row = conn.execute("SELECT current_database(), (SELECT count(*) FROM mine)").fetchone()
    assert row is not None
    name, rows = row
    assert rows == 1
    assert name.startswith("pglocks_")
    assert name != pglocks.server.template
    assert (name,) in pglocks.execute("SELECT datname FROM pg_database")  # type: ignore[operator]


def test_execute_returns_the_rows_of_the_last_result(pglocks: Pglocks) -> None:
    assert pglocks.execute("SELECT 1, 'a' UNION ALL SELECT 2, 'b' ORDER BY 1") == [
        (1, "a"),
        (2, "b"),
    ]
    assert pglocks.execute("SELECT 1; SELECT 2, 3") == [(2, 3)]
    assert pglocks.execute("SELECT 1 WHERE false") == []
    assert pglocks.execute("SELECT %s::int + %s", (40, 2)) == [(42,)]


def test_execute_returns_none_when_the_last_statement_returns_no_rows(pglocks: Pglocks) -> None:
    assert pglocks.execute("CREATE TABLE t (a int)") is None
    assert pglocks.execute("SELECT 1; INSERT INTO t VALUES (1), (2)") is None
    assert pglocks.execute("INSERT INTO t VALUES (3) RETURNING a") == [(3,)]


def test_execute_runs_every_statement_of_a_script_in_autocommit(pglocks: Pglocks) -> None:
    pglocks.execute(
        "CREATE TABLE foo (a int PRIMARY KEY, b text);"
        "CREATE TABLE bar (a int NOT NULL REFERENCES foo);"
        "INSERT INTO foo VALUES (42, 'x'); INSERT INTO bar VALUES (42)"
    )
    with psycopg.connect(pglocks.dsn) as other:  # committed: another connection sees it all
        assert other.execute("SELECT foo.a, b FROM foo JOIN bar USING (a)").fetchall() == [
            (42, "x")
        ]
    with pytest.raises(psycopg.errors.UniqueViolation):
        pglocks.execute("INSERT INTO foo VALUES (42, 'again')")
    assert pglocks.execute("SELECT count(*) FROM foo") == [(1,)]  # still usable after an error


def test_the_server_describes_itself(pglocks: Pglocks, pglocks_server: Server) -> None:
    assert pglocks.server == pglocks_server
    ((version,),) = pglocks.execute("SHOW server_version")  # type: ignore[misc]
    assert version.split()[0] == pglocks_server.version
    assert pglocks_server.major == int(version.split(".")[0])
    assert pglocks_server.backend in ("local", "dsn", "docker")
    assert pglocks_server.version in pglocks_server.describe()


def test_databases_are_cloned_ahead_of_need_and_dropped_behind(pglocks_server: Server) -> None:
    databases = Databases(pglocks_server, f"{pglocks_server.template}_pool", ahead=2)
    try:
        first = databases.create()
        databases.settle()  # one asked for: one more cloned ahead
        assert existing(pglocks_server, databases.prefix) == [first, f"{databases.prefix}_0002"]
        databases.drop(first)
        second = databases.create()
        databases.settle()
        names = existing(pglocks_server, databases.prefix)
        assert first not in names  # dropped behind the test, by the pool's thread
        assert second in names
        assert len(names) == 1 + databases.ahead  # two asked for: the pool is full, and bounded
        databases.drop(second)
    finally:
        databases.close()
    assert existing(pglocks_server, databases.prefix) == []  # closing drops what is left


def test_a_database_given_back_is_never_handed_out_again(pglocks_server: Server) -> None:
    databases = Databases(pglocks_server, f"{pglocks_server.template}_fresh", ahead=1)
    try:
        used = databases.create()
        with psycopg.connect(pglocks_server.conninfo(used), autocommit=True) as conn:
            conn.execute("CREATE TABLE left_behind (a int)")
            databases.drop(used)  # still connected: the pool ends the backend to drop it
            fresh = databases.create()
            databases.settle()
            assert conn.closed or conn.broken or _is_terminated(conn)
        assert fresh != used
        with psycopg.connect(pglocks_server.conninfo(fresh)) as conn:
            assert conn.execute("SELECT to_regclass('left_behind')").fetchone() == (None,)
        assert used not in existing(pglocks_server, databases.prefix)
    finally:
        databases.close()


def test_a_clone_that_fails_is_raised_to_the_test_asking_for_it(pglocks_server: Server) -> None:
    broken = dataclasses.replace(pglocks_server, template="pglocks_no_such_template")
    databases = Databases(broken, f"{pglocks_server.template}_broken")
    try:
        with pytest.raises(psycopg.errors.InvalidCatalogName, match="pglocks_no_such_template"):
            databases.create()
        with pytest.raises(psycopg.errors.InvalidCatalogName):  # and to every later one
            databases.create()
    finally:
        databases.close()


def existing(server: Server, prefix: str) -> list[str]:
    with psycopg.connect(server.dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
            (prefix + "_",),
        ).fetchall()
    return [name for (name,) in rows]


def _is_terminated(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False
