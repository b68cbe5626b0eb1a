"""Roles of one test: cluster-wide objects, so named after the test's database and dropped after.

A role connects with the sessions' deadlock_timeout and log_lock_waits as its own defaults
(``ALTER ROLE ... SET``): a role that is not a superuser may not set them at connection time.
From PostgreSQL 15 on it is also granted ``SET`` on deadlock_timeout, so that
``expect_deadlock(victim=)`` can still change it per statement.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import PglocksError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg

__all__ = ["Role"]

# PostgreSQL truncates identifiers longer than this.
MAX_NAME = 63


@dataclass(frozen=True)
class Role:
    """A role made for this test by ``pglocks.role()``: ``.name`` (unique), ``.label``."""

    __module__ = "pytest_pglocks"

    label: str
    name: str
    oid: int
    password: str = field(repr=False)
    can_set_deadlock_timeout: bool = field(repr=False)

    def __str__(self) -> str:
        """The role's name as a quoted SQL identifier: ``f"GRANT SELECT ON t TO {role}"``."""
        return '"' + self.name.replace('"', '""') + '"'


def role_name(dbname: str, label: str) -> str:
    """``<database>_<label>``: unique while the test's database exists (under xdist too)."""
    return f"{dbname}_{label}"[:MAX_NAME]


def create_role(
    conn: psycopg.Connection[tuple[Any, ...]],
    dbname: str,
    label: str,
    *,
    superuser: bool,
    options: str,
    gucs: dict[str, str],
    major: int,
) -> Role:
    """Create the role (a leftover of a killed run with the same name is replaced)."""
    import psycopg
    from psycopg import sql

    name = role_name(dbname, label)
    password = secrets.token_hex(16)
    create = sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {} {}").format(
        sql.Identifier(name),
        sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER"),
        sql.Literal(password),
        sql.SQL(options),
    )
    try:
        try:
            conn.execute(create)
        except psycopg.errors.DuplicateObject:
            _drop(conn, name)
            conn.execute(create)
        for guc, value in gucs.items():
            conn.execute(
                sql.SQL("ALTER ROLE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(guc), sql.Literal(value)
                )
            )
        can_set = superuser
        if not superuser and major >= 15 and "deadlock_timeout" in gucs:
            with _parameter_grants_in_line(conn):
                conn.execute(
                    sql.SQL("GRANT SET ON PARAMETER deadlock_timeout TO {}").format(
                        sql.Identifier(name)
                    )
                )
            can_set = True
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PglocksError(errors.ROLE_NOT_ALLOWED.format(label=label, why=exc)) from None
    except psycopg.errors.SyntaxError as exc:
        raise PglocksError(
            errors.BAD_ROLE_OPTIONS.format(label=label, options=options, why=exc)
        ) from None
    row = conn.execute("SELECT oid::int8 FROM pg_catalog.pg_roles WHERE rolname = %s", (name,))
    oid = row.fetchone()
    assert oid is not None
    return Role(label, name, int(oid[0]), password, can_set or "deadlock_timeout" not in gucs)


def drop_roles(conn: psycopg.Connection[tuple[Any, ...]], roles: list[Role]) -> None:
    """Drop the test's roles, from the test's database (DROP OWNED works in the current one)."""
    for role in roles:
        _drop(conn, role.name)


def _drop(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> None:
    """DROP OWNED revokes what it was granted on shared objects (the SET on a parameter)."""
    from psycopg import sql

    with _parameter_grants_in_line(conn):
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def _parameter_grants_in_line(conn: psycopg.Connection[tuple[Any, ...]]) -> Iterator[None]:
    """A transaction in which grants on a parameter wait for each other, server-wide.

    Every role's SET on deadlock_timeout is in one row of ``pg_parameter_acl`` (15+): two
    workers granting or revoking it at once fail with "tuple concurrently updated". A lock
    of that shared catalog (a superuser's) puts them in line.
    """
    with conn.transaction():
        superuser = conn.info.parameter_status("is_superuser") == "on"
        if superuser and conn.info.server_version >= 150000:
            conn.execute("LOCK TABLE pg_catalog.pg_parameter_acl IN SHARE ROW EXCLUSIVE MODE")
        yield
