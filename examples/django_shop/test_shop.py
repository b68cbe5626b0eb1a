"""Django: two orders reserving stock in opposite orders with select_for_update() deadlock.

``reserve()`` locks each product of an order (``select_for_update()``) in the order's own
order and saves its new stock. An order for apples then pears and one for pears then apples
lock the two rows in opposite orders. Gates stop each order inside its first ``UPDATE``
(its first product locked), so both hold one product before either asks for the other: the
deadlock happens every time. ``reserve_sorted()`` locks in one global order (by sku): the
second order waits for the first and never deadlocks.

``pglocks_django`` puts every Django connection of the test on the test's database, whichever
thread opens it, and names each after its thread: ``pglocks.observe("reserve-a")`` finds the
worker's connection, not the main thread's. The migrations ran once per run into the template
(``pglocks_schema`` in conftest.py).
"""

from __future__ import annotations

from types import ModuleType

import psycopg
import pytest
from workers import Worker

from pytest_pglocks import Pglocks, assert_blocks

APPLES_THEN_PEARS = [("apple", 1), ("pear", 1)]
PEARS_THEN_APPLES = [("pear", 1), ("apple", 1)]


@pytest.fixture
def shop(pglocks_django: Pglocks) -> ModuleType:
    """The application, imported once Django is set up (see conftest.py)."""
    from django_shop import shop

    shop.Product.objects.bulk_create(
        [shop.Product(sku="apple", stock=10), shop.Product(sku="pear", stock=10)]
    )
    return shop


def stock(shop: ModuleType) -> dict[str, int]:
    return dict(shop.Product.objects.values_list("sku", "stock"))


def test_opposite_orders_deadlock(pglocks_django: Pglocks, shop: ModuleType) -> None:
    pglocks = pglocks_django
    apple = pglocks.gate("django_shop_product", "before update", when="OLD.sku = 'apple'")
    pear = pglocks.gate("django_shop_product", "before update", when="OLD.sku = 'pear'")
    a = Worker("reserve-a", shop.reserve, APPLES_THEN_PEARS)
    apple.wait_reached()  # a has locked the apples
    b = Worker("reserve-b", shop.reserve, PEARS_THEN_APPLES)
    pear.wait_reached()  # b has locked the pears
    apple.open()  # a goes on to the pears
    assert_blocks(pglocks.observe("reserve-a"), on=pglocks.observe("reserve-b"))
    pear.open()  # b goes on to the apples: a cycle
    errors = [a.join(), b.join()]
    assert sum(isinstance(e.__cause__, psycopg.errors.DeadlockDetected) for e in errors if e) == 1
    assert stock(shop) == {"apple": 9, "pear": 9}  # the survivor's order went through


@pytest.mark.no_deadlock
def test_sorted_locking_never_deadlocks(pglocks_django: Pglocks, shop: ModuleType) -> None:
    pglocks = pglocks_django
    apple = pglocks.gate("django_shop_product", "before update", when="OLD.sku = 'apple'")
    a = Worker("reserve-a", shop.reserve_sorted, APPLES_THEN_PEARS)
    apple.wait_reached()  # a has locked the apples
    b = Worker("reserve-b", shop.reserve_sorted, PEARS_THEN_APPLES)
    # b asks for the apples first too: it waits, holding nothing a needs.
    assert_blocks(pglocks.observe("reserve-b"), on=pglocks.observe("reserve-a"))
    apple.open()
    assert a.join() is None
    assert b.join() is None
    assert stock(shop) == {"apple": 8, "pear": 8}
