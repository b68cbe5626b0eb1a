"""The application: reserving stock for an order, as a view or a task would."""

from __future__ import annotations

from django.db import transaction

from django_shop.models import Product

__all__ = ["Product", "reserve", "reserve_sorted"]


def reserve(order: list[tuple[str, int]]) -> None:
    """Lock each product of the order in the order's own order, and take its quantity."""
    with transaction.atomic():
        for sku, quantity in order:
            product = Product.objects.select_for_update().get(sku=sku)
            product.stock -= quantity
            product.save(update_fields=["stock"])


def reserve_sorted(order: list[tuple[str, int]]) -> None:
    """The fix: every order locks its products in one global order (by sku)."""
    reserve(sorted(order))
