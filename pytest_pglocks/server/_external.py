"""An existing server named by --pglocks-dsn."""

from __future__ import annotations

from .. import errors
from .._settings import SUPPORTED_MAJORS, Setting
from . import without_password

# Text from a SQL_ASCII database reaches psycopg as bytes unless the client asks for UTF8;
# the server then passes the bytes through unconverted.
SQL_ASCII_CHECK = (
    "SELECT bool_or(pg_catalog.pg_encoding_to_char(encoding) = 'SQL_ASCII')"
    " FROM pg_catalog.pg_database WHERE datname IN (current_database(), 'template1')"
)


def check(dsn: Setting[str | None]) -> tuple[str, str, str, bool]:
    """Connect once; return the conninfo to use, version, description and superuser flag.

    Refuse unusable DSNs. Any server encoding works: on SQL_ASCII databases the conninfo
    gets ``client_encoding=UTF8``, so that every query of the plugin reads text, not bytes.
    """
    import psycopg
    from psycopg.conninfo import make_conninfo

    assert dsn.value is not None
    try:
        with psycopg.connect(
            dsn.value, autocommit=True, connect_timeout=10, client_encoding="UTF8"
        ) as conn:
            version_num = conn.info.server_version  # 170011; "18beta1" is 180000
            version = conn.info.parameter_status("server_version") or ""
            row = conn.execute(
                "SELECT current_user, rolsuper, rolcreatedb FROM pg_catalog.pg_roles "
                "WHERE rolname = current_user"
            ).fetchone()
            sql_ascii = conn.execute(SQL_ASCII_CHECK).fetchone()
            host, port = conn.info.host, conn.info.port
    except psycopg.Error as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise errors.ServerError(
            errors.DSN_UNREACHABLE.format(
                source=dsn.source, why=why, dsn=without_password(dsn.value)
            )
        ) from None
    assert row is not None
    assert sql_ascii is not None
    server_version = (version.split() or [_dotted(version_num)])[0]  # "17.11 (Debian ...)"
    if version_num // 10000 not in SUPPORTED_MAJORS:
        raise errors.ServerError(
            errors.DSN_UNSUPPORTED_VERSION.format(source=dsn.source, version=server_version)
        )
    user, is_super, can_create = row
    if not (is_super or can_create):
        raise errors.ServerError(errors.DSN_NO_CREATEDB.format(role=user, source=dsn.source))
    conninfo = make_conninfo(dsn.value, client_encoding="UTF8") if sql_ascii[0] else dsn.value
    superuser = "superuser" if is_super else "not superuser"
    return conninfo, server_version, f"{user}@{host}:{port}, {superuser}", bool(is_super)


def _dotted(version_num: int) -> str:
    """``170011`` → ``"17.11"``."""
    return f"{version_num // 10000}.{version_num % 10000}"
