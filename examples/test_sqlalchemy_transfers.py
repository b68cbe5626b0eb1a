"""SQLAlchemy 2: a unit of work whose flush order deadlocks against another one, and the fix.

``transfer()`` debits one account, records the transfer and flushes (it wants the transfer's
id), then credits the other account: the flush sends the debit's ``UPDATE`` first, so two
transfers in opposite directions lock the two accounts in opposite orders. Gates
(``pglocks.gate``) stop each transfer inside its first ``UPDATE``, after the row is locked, so
both hold one account before either asks for the other: the deadlock happens every time.
``transfer_locking_in_order()`` locks both accounts up front, in id order
(``with_for_update()`` on an ordered query): the second transfer waits, and never deadlocks.

The engines come from ``pytest_pglocks.contrib.sqlalchemy``: each checkout carries its
thread's (or task's) name, which ``pglocks.observe()`` finds.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from workers import BANK, Worker, outcome, start_task

from pytest_pglocks import Pglocks, aassert_blocks, assert_blocks
from pytest_pglocks.contrib.sqlalchemy import create_async_engine, create_engine


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    balance: Mapped[int]


class Transfer(Base):
    __tablename__ = "transfers"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[int]
    target: Mapped[int]
    amount: Mapped[int]


# The application ------------------------------------------------------------------------------


def transfer(engine: Engine, source: int, target: int, amount: int) -> None:
    with Session(engine) as session, session.begin():
        debit = session.get_one(Account, source)
        debit.balance -= amount
        session.add(Transfer(source=source, target=target, amount=amount))
        session.flush()  # UPDATE accounts (the source row), INSERT INTO transfers
        credit = session.get_one(Account, target)
        credit.balance += amount  # UPDATE accounts (the target row), at COMMIT


def transfer_locking_in_order(engine: Engine, source: int, target: int, amount: int) -> None:
    with Session(engine) as session, session.begin():
        query = select(Account).where(Account.id.in_([source, target])).order_by(Account.id)
        accounts = {account.id: account for account in session.scalars(query.with_for_update())}
        accounts[source].balance -= amount
        session.add(Transfer(source=source, target=target, amount=amount))
        session.flush()
        accounts[target].balance += amount


async def atransfer(engine: AsyncEngine, source: int, target: int, amount: int) -> None:
    async with AsyncSession(engine) as session, session.begin():
        debit = await session.get_one(Account, source)
        debit.balance -= amount
        session.add(Transfer(source=source, target=target, amount=amount))
        await session.flush()
        credit = await session.get_one(Account, target)
        credit.balance += amount


async def atransfer_locking_in_order(
    engine: AsyncEngine, source: int, target: int, amount: int
) -> None:
    async with AsyncSession(engine) as session, session.begin():
        query = select(Account).where(Account.id.in_([source, target])).order_by(Account.id)
        rows = await session.scalars(query.with_for_update())
        accounts = {account.id: account for account in rows}
        accounts[source].balance -= amount
        session.add(Transfer(source=source, target=target, amount=amount))
        await session.flush()
        accounts[target].balance += amount


def deadlocked(*errors: BaseException | None) -> int:
    return sum(
        isinstance(error, sqlalchemy.exc.OperationalError)
        and error.orig is not None
        and getattr(error.orig, "sqlstate", None) == "40P01"
        for error in errors
    )


# The tests: threads ---------------------------------------------------------------------------


def test_flush_order_deadlocks_two_opposite_transfers(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    engine = create_engine(pglocks)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    second = pglocks.gate("accounts", "before update", when="OLD.id = 2")
    one_two = Worker("transfer-1-2", transfer, engine, 1, 2, 10)
    first.wait_reached()  # 1→2 has locked account 1
    two_one = Worker("transfer-2-1", transfer, engine, 2, 1, 10)
    second.wait_reached()  # 2→1 has locked account 2
    first.open()  # 1→2 goes on to account 2, which 2→1 holds
    assert_blocks(pglocks.observe("transfer-1-2"), on=pglocks.observe("transfer-2-1"))
    second.open()  # 2→1 goes on to account 1, which 1→2 holds: a cycle
    assert deadlocked(one_two.join(), two_one.join()) == 1
    engine.dispose()


@pytest.mark.no_deadlock
def test_locking_both_accounts_in_id_order_never_deadlocks(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    engine = create_engine(pglocks)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    one_two = Worker("transfer-1-2", transfer_locking_in_order, engine, 1, 2, 10)
    first.wait_reached()  # 1→2 has locked both accounts
    two_one = Worker("transfer-2-1", transfer_locking_in_order, engine, 2, 1, 10)
    # 2→1 asks for account 1 first, too: it waits, holding nothing 1→2 needs.
    assert_blocks(pglocks.observe("transfer-2-1"), on=pglocks.observe("transfer-1-2"))
    first.open()
    assert one_two.join() is None
    assert two_one.join() is None
    assert pglocks.execute("SELECT id, balance FROM accounts ORDER BY id") == [(1, 100), (2, 100)]
    engine.dispose()


# The same with asyncio: tasks are named, and the test awaits ---------------------------------


@pytest.mark.asyncio
async def test_async_flush_order_deadlocks_two_opposite_transfers(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    engine = create_async_engine(pglocks)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    second = pglocks.gate("accounts", "before update", when="OLD.id = 2")
    one_two = start_task("transfer-1-2", atransfer(engine, 1, 2, 10))
    await asyncio.to_thread(first.wait_reached)  # off the loop: the task runs meanwhile
    two_one = start_task("transfer-2-1", atransfer(engine, 2, 1, 10))
    await asyncio.to_thread(second.wait_reached)
    first.open()
    waiter = await asyncio.to_thread(pglocks.observe, "transfer-1-2")
    holder = await asyncio.to_thread(pglocks.observe, "transfer-2-1")
    await aassert_blocks(waiter, on=holder)
    second.open()
    assert deadlocked(await outcome(one_two), await outcome(two_one)) == 1
    await engine.dispose()


@pytest.mark.asyncio
@pytest.mark.no_deadlock
async def test_async_locking_in_id_order_never_deadlocks(pglocks: Pglocks) -> None:
    pglocks.execute(BANK)
    engine = create_async_engine(pglocks)
    first = pglocks.gate("accounts", "before update", when="OLD.id = 1")
    one_two = start_task("transfer-1-2", atransfer_locking_in_order(engine, 1, 2, 10))
    await asyncio.to_thread(first.wait_reached)
    two_one = start_task("transfer-2-1", atransfer_locking_in_order(engine, 2, 1, 10))
    waiter = await asyncio.to_thread(pglocks.observe, "transfer-2-1")
    await aassert_blocks(waiter, on=await asyncio.to_thread(pglocks.observe, "transfer-1-2"))
    first.open()
    assert await outcome(one_two) is None
    assert await outcome(two_one) is None
    assert pglocks.execute("SELECT id, balance FROM accounts ORDER BY id") == [(1, 100), (2, 100)]
    await engine.dispose()
