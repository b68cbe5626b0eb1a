"""The per-test database: its conninfo, and execute() for setup."""

from __future__ import annotations

import psycopg
import pytest

from pytest_pglocks import Pglocks, Server


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
