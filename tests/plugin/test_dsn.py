"""--pglocks-dsn: an existing server (here: the outer run's), still one database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fix_inner import Inner
from fix_messages import Glob, line_pattern
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_pglocks import Server, errors
from pytest_pglocks._keys import RUN_KEY
from pytest_pglocks.server import _local
from pytest_pglocks.server._binaries import find_binaries


@pytest.fixture
def dsn_inner(pglocks_server: Server, inner: Inner, monkeypatch: pytest.MonkeyPatch) -> Inner:
    """An inner project for DSN runs: a version setting would clash with --pglocks-dsn."""
    monkeypatch.delenv("PGLOCKS_PG", raising=False)
    return inner


def test_each_test_gets_its_own_database_on_the_existing_server_and_all_are_dropped(
    pglocks_server: Server, dsn_inner: Inner
) -> None:
    dsn_inner.pytester.makepyfile(
        test_on_dsn="""
        def test_first(facts, pglocks):
            pglocks.execute("CREATE TABLE t (a int)")

        def test_second(facts, pglocks):
            facts["t_absent"] = pglocks.execute("SELECT to_regclass('t') IS NULL")[0][0]
        """
    )
    result = dsn_inner.run(f"--pglocks-dsn={pglocks_server.dsn}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"pglocks: PostgreSQL {pglocks_server.version} (dsn, *"])
    first, second = dsn_inner.records()["test_first"], dsn_inner.records()["test_second"]
    for record in (first, second):
        assert (record["backend"], record["process"]) == ("dsn", None)
        assert record["server_dsn"] == pglocks_server.dsn
    assert first["dbname"] != second["dbname"]
    assert second["t_absent"] is True
    run_prefix = first["dbname"].rsplit("_", 2)[0]  # pglocks_<run id>
    with psycopg.connect(pglocks_server.dsn) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (run_prefix,)
        ).fetchall()
    assert left == []  # test databases and the template are gone
    assert dsn_inner.leftovers() == []


def test_an_unreachable_server_is_reported_with_what_to_check(
    dsn_inner: Inner, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    dsn = f"host=127.0.0.1 port={closed_port} user=postgres connect_timeout=10"
    monkeypatch.setenv("PGLOCKS_DSN", dsn)
    dsn_inner.pytester.makepyfile("def test_needs_a_server(pglocks):\n    pass\n")
    result = dsn_inner.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [line_pattern(errors.DSN_UNREACHABLE, source="PGLOCKS_DSN", why=Glob("*refused*"), dsn=dsn)]
    )
    assert dsn_inner.leftovers() == []


@pytest.fixture
def role_without_createdb(pglocks_server: Server) -> Iterator[str]:
    """A login role of the outer server that may not create databases."""
    if pglocks_server.backend != "local":
        pytest.skip("creates a role; needs the server this run started")
    role = f"pglocks_nocreatedb_{os.getpid()}"
    password = conninfo_to_dict(pglocks_server.dsn)["password"]  # TCP asks every role for one
    with psycopg.connect(pglocks_server.dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    yield role
    with psycopg.connect(pglocks_server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_role_that_may_not_create_databases_is_told_how_to_grant_it(
    pglocks_server: Server, dsn_inner: Inner, role_without_createdb: str
) -> None:
    dsn = make_conninfo(pglocks_server.dsn, user=role_without_createdb)
    dsn_inner.pytester.makepyfile("def test_needs_a_server(pglocks):\n    pass\n")
    result = dsn_inner.run(f"--pglocks-dsn={dsn}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [line_pattern(errors.DSN_NO_CREATEDB, role=role_without_createdb, source="--pglocks-dsn")]
    )


@pytest.fixture
def sql_ascii_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second server of the outer run's version whose databases are SQL_ASCII (initdb under
    the C locale without -E), as some long-lived servers are; yields its conninfo."""
    if request.getfixturevalue("pglocks_server").backend != "local":
        pytest.skip("starts a server from the binaries of the outer run's local server")
    settings = request.config.stash[RUN_KEY].settings
    binaries = find_binaries(settings, progress=lambda line: None)
    dsn, process = _local.start(binaries, os.getpid(), tmp_path, encoding=None)
    try:
        yield dsn
    finally:
        _local.stop(process)


def test_a_sql_ascii_server_works_like_any_other(dsn_inner: Inner, sql_ascii_server: str) -> None:
    dsn_inner.pytester.makepyfile(
        test_on_sql_ascii="""
        from pytest_pglocks import assert_blocks, expect_deadlock

        def test_sessions_reports_and_deadlocks(facts, pglocks):
            facts["encoding"] = pglocks.execute("SHOW server_encoding")[0][0]
            pglocks.execute("CREATE TABLE t (a int PRIMARY KEY, b text)")
            pglocks.execute("INSERT INTO t VALUES (1, 'x'), (2, 'y')")
            s1, s2 = pglocks.sessions("s1", "s2")
            s1.begin()
            s2.begin()
            assert s1.execute("UPDATE t SET b = 'é' WHERE a = 1 RETURNING b") == [("é",)]
            s2.execute("UPDATE t SET b = 'z' WHERE a = 2")
            waiting = s2.submit("UPDATE t SET b = 'w' WHERE a = 1")
            wait = assert_blocks(waiting, on=s1)
            facts["relation"] = wait.relation
            facts["graph"] = str(pglocks.graph())
            with expect_deadlock(victim=s1):
                s1.submit("UPDATE t SET b = 'v' WHERE a = 2")
            s1.rollback()
            waiting.result()
            s2.commit()

        def test_a_failure_report(pglocks):
            pglocks.execute("CREATE TABLE u (a int PRIMARY KEY)")
            s1 = pglocks.session("s1")
            s1.execute("SELECT 'é' FROM u")
            raise AssertionError("to see the report")
        """
    )
    result = dsn_inner.run(f"--pglocks-dsn={sql_ascii_server}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*- pglocks -*", "*s1*SELECT 'é' FROM u*"])
    assert "ValueError" not in result.stdout.str()
    record = dsn_inner.records()["test_sessions_reports_and_deadlocks"]
    assert record["encoding"] == "SQL_ASCII"
    assert record["relation"] == "t"
    assert "s2" in record["graph"]
    assert "s1" in record["graph"]
    assert dsn_inner.leftovers() == []


def test_roles_are_unique_per_test_under_xdist_and_dropped_after_each_test(
    pglocks_server: Server, dsn_inner: Inner
) -> None:
    dsn_inner.pytester.makepyfile(
        test_roles="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_app_role(facts, pglocks, n):
            role = pglocks.role("app")
            facts["role"] = role.name
            assert pglocks.session(role=role).execute("SELECT current_user") == [(role.name,)]
        """
    )
    result = dsn_inner.run(f"--pglocks-dsn={pglocks_server.dsn}", "-n", "2")
    result.assert_outcomes(passed=4)
    names = {record["role"] for record in dsn_inner.records().values()}
    assert len(names) == 4  # the same label, a different role in each test
    assert all(name.rsplit("_", 3)[1] in ("gw0", "gw1") for name in names)  # worker ids
    with psycopg.connect(pglocks_server.dsn) as conn:
        left = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (sorted(names),)
        ).fetchall()
    assert left == []
