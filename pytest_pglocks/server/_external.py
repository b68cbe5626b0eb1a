"""An existing server named by --pglocks-dsn."""

from __future__ import annotations

import re

from .. import errors
from .._settings import SUPPORTED_MAJORS, Setting


def check(dsn: Setting[str | None]) -> tuple[str, str, bool]:
    """Connect once; return version, description and superuser flag. Refuse unusable DSNs."""
    import psycopg

    assert dsn.value is not None
    try:
        with psycopg.connect(dsn.value, autocommit=True, connect_timeout=10) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            role = conn.execute(
                "SELECT current_user, rolsuper, rolcreatedb FROM pg_roles "
                "WHERE rolname = current_user"
            ).fetchone()
            host = conn.info.host
            port = conn.info.port
    except psycopg.Error as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise errors.ServerError(
            errors.DSN_UNREACHABLE.format(source=dsn.source, why=why, dsn=dsn.value)
        ) from None
    assert version is not None
    assert role is not None
    server_version = str(version[0]).split()[0]
    if int(re.split(r"\D", server_version, maxsplit=1)[0]) not in SUPPORTED_MAJORS:  # "18beta1"
        raise errors.ServerError(
            errors.DSN_UNSUPPORTED_VERSION.format(source=dsn.source, version=server_version)
        )
    user, is_super, can_create = role
    if not (is_super or can_create):
        raise errors.ServerError(errors.DSN_NO_CREATEDB.format(role=user, source=dsn.source))
    superuser = "superuser" if is_super else "not superuser"
    return server_version, f"{user}@{host}:{port}, {superuser}", bool(is_super)
