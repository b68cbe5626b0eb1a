"""--pglocks-dsn: an existing server (here: the outer run's), still one database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from fix_inner import Inner
from fix_messages import Glob, line_pattern
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pytest_pglocks import Server, errors


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
    with psycopg.connect(pglocks_server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
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
