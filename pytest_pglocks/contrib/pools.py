"""Connection pools on the test's database whose connections are observed by name.

``connection_pool(pglocks)`` and ``async_connection_pool(pglocks)`` are psycopg_pool's
``ConnectionPool`` and ``AsyncConnectionPool``; ``asyncpg_pool(pglocks)`` is an asyncpg pool.
Each takes the pool's own keyword arguments. A connection handed out carries the name of the
thread or asyncio task that asked for it; one back in the pool is ``pglocks:idle-in-pool``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._naming import IDLE, SET_NAME, SET_NAME_ASYNCPG, current_name

if TYPE_CHECKING:
    import asyncpg
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from ..handle import Pglocks

__all__ = ["async_connection_pool", "asyncpg_pool", "connection_pool"]

MISSING = (
    "pytest_pglocks.contrib.pools needs {package}: pip install {package} "
    "(or 'pytest-pglocks[pools]')"
)


def connection_pool(pglocks: Pglocks, **kwargs: Any) -> ConnectionPool[Any]:
    """A psycopg_pool ``ConnectionPool`` (not opened: use ``with``); checkouts are named."""
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise ImportError(MISSING.format(package="psycopg-pool")) from None
    kwargs.setdefault("open", False)
    connect = {"application_name": IDLE, **kwargs.pop("kwargs", {})}
    return ConnectionPool(pglocks.dsn, check=_check, reset=_reset, kwargs=connect, **kwargs)


def async_connection_pool(pglocks: Pglocks, **kwargs: Any) -> AsyncConnectionPool[Any]:
    """A psycopg_pool ``AsyncConnectionPool`` (use ``async with``); checkouts are named."""
    try:
        from psycopg_pool import AsyncConnectionPool
    except ImportError:
        raise ImportError(MISSING.format(package="psycopg-pool")) from None
    kwargs.setdefault("open", False)
    connect = {"application_name": IDLE, **kwargs.pop("kwargs", {})}
    return AsyncConnectionPool(pglocks.dsn, check=_acheck, reset=_areset, kwargs=connect, **kwargs)


def asyncpg_pool(pglocks: Pglocks, **kwargs: Any) -> asyncpg.Pool:
    """An asyncpg pool (``async with`` or ``await``); each ``acquire()`` is named."""
    try:
        import asyncpg
    except ImportError:
        raise ImportError(MISSING.format(package="asyncpg")) from None
    settings = {"application_name": IDLE, **kwargs.pop("server_settings", {})}
    # asyncpg's release runs RESET ALL: the connection goes back to its startup name, IDLE.
    return asyncpg.create_pool(pglocks.url, setup=_asetup, server_settings=settings, **kwargs)


def _rename(conn: psycopg.Connection[Any], name: str) -> None:
    with conn.transaction():
        conn.execute(SET_NAME, (name,))


async def _arename(conn: psycopg.AsyncConnection[Any], name: str) -> None:
    async with conn.transaction():
        await conn.execute(SET_NAME, (name,))


def _check(conn: psycopg.Connection[Any]) -> None:
    _rename(conn, current_name())


def _reset(conn: psycopg.Connection[Any]) -> None:
    _rename(conn, IDLE)


async def _acheck(conn: psycopg.AsyncConnection[Any]) -> None:
    await _arename(conn, current_name())


async def _areset(conn: psycopg.AsyncConnection[Any]) -> None:
    await _arename(conn, IDLE)


async def _asetup(conn: Any) -> None:
    await conn.execute(SET_NAME_ASYNCPG, current_name())
