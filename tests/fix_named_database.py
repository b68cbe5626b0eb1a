"""Specs that name their database: ``isolation_regression``, as ``pg_regress`` calls it.

``named_database(pglocks, spec)`` makes a fresh database of that name (from the run's
template) and yields its conninfo; the roles the spec creates are dropped before and after, as
a run stopped half way leaves them (they belong to the server, not the database). Other
workers' runs of such specs wait for this one. ``run_ours`` runs a spec there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pytest_pglocks import Pglocks, Server, _context
from pytest_pglocks.isolation import max_step_wait, parse_file, run_spec

NAMED_DATABASE = "isolation_regression"


def names_its_database(spec: Path) -> bool:
    return NAMED_DATABASE in spec.read_text(encoding="utf-8")


@contextmanager
def named_database(pglocks: Pglocks, spec: Path) -> Iterator[str]:
    """A fresh ``isolation_regression`` for one run of ``spec``; its conninfo."""
    server = pglocks.server
    roles = re.findall(r"CREATE\s+ROLE\s+(\w+)", spec.read_text(encoding="utf-8"), re.IGNORECASE)
    with psycopg.connect(server.dsn, autocommit=True) as maintenance:
        maintenance.execute("SELECT pg_advisory_lock(hashtext(%s))", (NAMED_DATABASE,))
        try:
            _drop(maintenance, roles)
            name, template = sql.Identifier(NAMED_DATABASE), sql.Identifier(server.template)
            maintenance.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(name, template))
            yield make_conninfo(pglocks.dsn, dbname=NAMED_DATABASE)
        finally:
            _drop(maintenance, roles)


def run_ours(server: Server, dsn: str, spec: Path, timeout: float | None = None) -> str:
    """Our output of ``spec`` in the database of ``dsn``, with the tester's step timeout."""
    limit = max_step_wait() if timeout is None else timeout
    settings = _context.TestSettings(limit, "10ms", manage_deadlock_timeout=False)
    context = _context.TestContext(dsn, settings)
    try:
        return run_spec(parse_file(spec), context, superuser=server.superuser, timeout=limit).output
    finally:
        context.close()


def _drop(maintenance: psycopg.Connection[tuple[object, ...]], roles: list[str]) -> None:
    """The database, then the roles a run left (the database's grants went with it)."""
    name = sql.Identifier(NAMED_DATABASE)
    maintenance.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    for role in roles:
        maintenance.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
