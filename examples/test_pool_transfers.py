"""Pools: psycopg_pool and asyncpg transfers that deadlock in opposite orders, and the fix.

``transfer()`` debits, records and credits in one transaction of a pooled connection: two
transfers in opposite directions update the two accounts in opposite orders. Gates stop each
transfer inside its first ``UPDATE`` (the row already locked), so both hold one account before
either asks for the other, and the deadlock happens every time. Locking both accounts first,
in id order (``SELECT ... ORDER BY id FOR UPDATE``), makes the second transfer wait instead.

The pools come from ``pytest_pglocks.contrib.pools``: a connection handed out carries the name
of the thread or task that asked for it, so ``pglocks.observe()`` finds each transfer's
backend among the pool's connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import psycopg
import pytest
from workers import BANK, Worker, outcome, start_task

from pytest_pglocks import Pglocks, aassert_blocks, assert_blocks
from pytest_pglocks.contrib.pools import asyncpg_pool, connection_pool

DEBIT = "UPDATE accounts SET balance = balance - %s WHERE id = %s"
CREDIT = "UPDATE accounts SET balance = balance + %s WHERE id = %s"
RECORD = "INSERT INTO transfers (source, target, amount) VALUES (%s, %s, %s)"
LOCK_BOTH = "SELECT id FROM accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE"


def to_asyncpg(sql: str) -> str:
    """The same statement with asyncpg's $n placeholders."""
    parts = sql.split("%s")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, 1))


# The application ------------------------------------------------------------------------------


def transfer(pool: Any, source: int, target: int, amount: int, in_order: bool) -> None:
    with pool.connection() as conn:  # one transaction, committed when the block ends
        if in_order:
            conn.execute(LOCK_BOTH, ([source, target],))
        conn.execute(DEBIT, (amount, source))
        conn.execute(RECORD, (source, target, amount))
        conn.execute(CREDIT, (amount, target))


async def atransfer(pool: Any, source: int, target: int, amount: int, in_order: bool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if in_order:
            await conn.execute(to_asyncpg(LOCK_BOTH), [source, target])
        await conn.execute(to_asyncpg(DEBIT), amount, source)
        await conn.execute(to_asyncpg(RECORD), source, target, amount)
        await conn.execute(to_asyncpg(CREDIT), amount, target)


# psycopg_pool, threads ------------------------------------------------------------------------


def test_psycopg_pool_opposite_transfers_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    second = pglocks.gate("accounts", "before update", when="OLD.id = 2")
    with connection_pool(pglocks, min_size=2) as pool:
        one_two = Worker("transfer-1-2", transfer, pool, 1, 2, 10, False)
        first.wait_reached()  # 1→2 has locked account 1
        two_one = Worker("transfer-2-1", transfer, pool, 2, 1, 10, False)
        second.wait_reached()  # 2→1 has locked account 2
        first.open()  # 1→2 goes on to account 2
        assert_blocks(pglocks.observe("transfer-1-2"), on=pglocks.observe("transfer-2-1"))
        second.open()  # 2→1 goes on to account 1: a cycle
        errors = [one_two.join(), two_one.join()]
    assert sum(isinstance(error, psycopg.errors.DeadlockDetected) for error in errors) == 1


@pytest.mark.no_deadlock
def test_psycopg_pool_transfers_in_id_order_never_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    with connection_pool(pglocks, min_size=2) as pool:
        one_two = Worker("transfer-1-2", transfer, pool, 1, 2, 10, True)
        first.wait_reached()  # 1→2 has locked both accounts
        two_one = Worker("transfer-2-1", transfer, pool, 2, 1, 10, True)
        # 2→1 asks for account 1 first too: it waits, holding nothing 1→2 needs.
        assert_blocks(pglocks.observe("transfer-2-1"), on=pglocks.observe("transfer-1-2"))
        first.open()
        assert one_two.join() is None
        assert two_one.join() is None
    assert pglocks.execute("SELECT balance FROM accounts ORDER BY id") == [(100,), (100,)]


# asyncpg, tasks -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_asyncpg_pool_opposite_transfers_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    second = pglocks.gate("accounts", "before update", when="OLD.id = 2")
    async with asyncpg_pool(pglocks, min_size=2, max_size=2) as pool:
        one_two = start_task("transfer-1-2", atransfer(pool, 1, 2, 10, False))
        await asyncio.to_thread(first.wait_reached)  # off the loop: the task runs meanwhile
        two_one = start_task("transfer-2-1", atransfer(pool, 2, 1, 10, False))
        await asyncio.to_thread(second.wait_reached)
        first.open()
        waiter = await asyncio.to_thread(pglocks.observe, "transfer-1-2")
        await aassert_blocks(waiter, on=await asyncio.to_thread(pglocks.observe, "transfer-2-1"))
        second.open()
        errors = [await outcome(one_two), await outcome(two_one)]
    assert sum(isinstance(error, asyncpg.DeadlockDetectedError) for error in errors) == 1


@pytest.mark.asyncio
@pytest.mark.no_deadlock
async def test_asyncpg_pool_transfers_in_id_order_never_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    async with asyncpg_pool(pglocks, min_size=2, max_size=2) as pool:
        one_two = start_task("transfer-1-2", atransfer(pool, 1, 2, 10, True))
        await asyncio.to_thread(first.wait_reached)
        two_one = start_task("transfer-2-1", atransfer(pool, 2, 1, 10, True))
        waiter = await asyncio.to_thread(pglocks.observe, "transfer-2-1")
        await aassert_blocks(waiter, on=await asyncio.to_thread(pglocks.observe, "transfer-1-2"))
        first.open()
        assert await outcome(one_two) is None
        assert await outcome(two_one) is None
    assert pglocks.execute("SELECT balance FROM accounts ORDER BY id") == [(100,), (100,)]
