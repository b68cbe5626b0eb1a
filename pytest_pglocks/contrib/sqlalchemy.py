"""SQLAlchemy 2 engines on the test's database whose connections are observed by name.

``create_engine(pglocks)`` and ``create_async_engine(pglocks)`` take SQLAlchemy's own keyword
arguments. Each checkout names its connection after the checking-out thread (or asyncio task),
and a connection back in the pool is renamed ``pglocks:idle-in-pool``, so at any time
``pglocks.observe("worker-a")`` finds the connection that worker holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._naming import IDLE, SET_NAME, current_name

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ..handle import Pglocks

__all__ = ["create_async_engine", "create_engine", "name_checkouts"]

MISSING = (
    "pytest_pglocks.contrib.sqlalchemy needs SQLAlchemy 2: pip install 'pytest-pglocks[sqlalchemy]'"
)


def url(pglocks: Pglocks) -> str:
    """The test's database as a SQLAlchemy URL with the psycopg 3 driver."""
    return pglocks.url.replace("postgresql://", "postgresql+psycopg://", 1)


def create_engine(pglocks: Pglocks, **kwargs: Any) -> Engine:
    """An ``Engine`` on the test's database; each checkout carries its thread's name."""
    try:
        import sqlalchemy
    except ImportError:
        raise ImportError(MISSING) from None
    engine = sqlalchemy.create_engine(url(pglocks), **kwargs)
    name_checkouts(engine)
    return engine


def create_async_engine(pglocks: Pglocks, **kwargs: Any) -> AsyncEngine:
    """An ``AsyncEngine`` on the test's database; each checkout carries its task's name."""
    try:
        from sqlalchemy.ext import asyncio
    except ImportError:
        raise ImportError(MISSING) from None
    engine = asyncio.create_async_engine(url(pglocks), **kwargs)
    name_checkouts(engine.sync_engine)
    return engine


def name_checkouts(engine: Engine) -> None:
    """Name ``engine``'s connections after whoever checks them out (any PostgreSQL engine)."""
    from sqlalchemy import event

    event.listen(engine, "checkout", _on_checkout)
    event.listen(engine, "reset", _on_reset)


def _rename(dbapi_connection: Any, name: str) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(SET_NAME, (name,))
    finally:
        cursor.close()
    dbapi_connection.commit()  # a session setting made in a transaction ends with it


def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    _rename(dbapi_connection, current_name())


def _on_reset(dbapi_connection: Any, record: Any, state: Any) -> None:
    if state.terminate_only or not state.asyncio_safe:
        return
    dbapi_connection.rollback()  # the pool's own reset rolls back next: nothing lost
    _rename(dbapi_connection, IDLE)
