"""pytest_pglocks.contrib: checkouts named after their thread or task, idle ones renamed."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import text

from pytest_pglocks import Pglocks, PglocksError, errors
from pytest_pglocks.contrib._naming import IDLE
from pytest_pglocks.contrib.pools import async_connection_pool, asyncpg_pool, connection_pool
from pytest_pglocks.contrib.sqlalchemy import create_async_engine, create_engine

NAMES = "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"


def names(pglocks: Pglocks) -> list[str]:
    """application_name of the backends of the test's database, but the plugin's setup one."""
    return sorted(name for (name,) in pglocks.execute(NAMES) or [] if name != "pglocks:setup")


def in_thread(name: str, function: object) -> None:
    thread = threading.Thread(target=function, name=name)  # type: ignore[arg-type]
    thread.start()
    thread.join(30)


def test_an_engine_names_each_checkout_and_renames_it_when_checked_in(pglocks: Pglocks) -> None:
    engine = create_engine(pglocks, pool_size=2)
    seen: list[str] = []

    def work() -> None:
        with engine.connect() as conn:
            seen.append(conn.execute(text("SELECT current_setting('application_name')")).scalar())

    in_thread("worker-1", work)
    assert seen == ["worker-1"]
    assert names(pglocks) == [IDLE]  # back in the pool
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_setting('application_name')")).scalar() == (
            "MainThread"
        )
    engine.dispose()


@pytest.mark.asyncio
async def test_an_async_engine_names_checkouts_after_their_task(pglocks: Pglocks) -> None:
    engine = create_async_engine(pglocks)

    async def work() -> str:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT current_setting('application_name')"))
            return str(result.scalar())

    assert await asyncio.create_task(work(), name="task-a") == "task-a"
    assert await asyncio.create_task(work(), name="task-b") == "task-b"
    await engine.dispose()


def test_a_psycopg_pool_names_checkouts_and_idles_them(pglocks: Pglocks) -> None:
    with connection_pool(pglocks, min_size=1, max_size=1) as pool:
        seen: list[object] = []

        def work() -> None:
            with pool.connection() as conn:
                seen.append(conn.execute("SHOW application_name").fetchone())

        in_thread("worker-1", work)
        assert seen == [("worker-1",)]
        # With a reset function, putconn() hands the connection to a pool worker, which
        # renames it: the server shows it renamed soon after, not at once.
        deadline = time.monotonic() + 10
        while names(pglocks) != [IDLE] and time.monotonic() < deadline:
            pass
        assert names(pglocks) == [IDLE]


@pytest.mark.asyncio
async def test_an_async_psycopg_pool_names_checkouts_after_their_task(pglocks: Pglocks) -> None:
    async with async_connection_pool(pglocks, min_size=1, max_size=1) as pool:

        async def work() -> object:
            async with pool.connection() as conn:
                cursor = await conn.execute("SHOW application_name")
                return await cursor.fetchone()

        assert await asyncio.create_task(work(), name="task-a") == ("task-a",)
        assert await asyncio.create_task(work(), name="task-b") == ("task-b",)


@pytest.mark.asyncio
async def test_an_asyncpg_pool_names_acquires_and_idles_on_release(pglocks: Pglocks) -> None:
    async with asyncpg_pool(pglocks, min_size=1, max_size=1) as pool:

        async def work() -> str:
            async with pool.acquire() as conn:
                return str(await conn.fetchval("SHOW application_name"))

        assert await asyncio.create_task(work(), name="task-a") == "task-a"
        assert await asyncio.to_thread(names, pglocks) == [IDLE]


def test_two_checkouts_of_one_thread_make_its_name_ambiguous(pglocks: Pglocks) -> None:
    engine = create_engine(pglocks, pool_size=2)
    with engine.connect(), engine.connect():
        with pytest.raises(PglocksError) as raised:
            pglocks.observe("MainThread")
        assert str(raised.value).startswith(
            errors.OBSERVE_AMBIGUOUS.split("{count}")[0].format(application_name="MainThread")
        )
    engine.dispose()
