"""Interleavings of the sessions' steps: all of them, or one per class of equivalent orders.

Two orders are equivalent when one becomes the other by swapping adjacent independent steps of
different sessions (``Footprint.conflicts`` is false). Among equivalent orders the one that is
smallest, comparing steps by session, never has an independent pair out of session order next to
each other; so enumerating only the orders without such a pair still reaches every class, and
runs each class at least once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cache
from math import factorial, prod

StepRef = tuple[int, int]  # (session index, step index within the session)
Independent = Callable[[StepRef, StepRef], bool]


def brute_force_count(lengths: Sequence[int]) -> int:
    """How many orders keep each session's steps in sequence: a multinomial coefficient."""
    return factorial(sum(lengths)) // prod(factorial(n) for n in lengths)


def orders(
    lengths: Sequence[int], independent: Independent | None = None
) -> Iterator[list[StepRef]]:
    """Every order (session by session first, like the isolation tester), reduced if asked."""
    taken = [0] * len(lengths)
    order: list[StepRef] = []

    def walk() -> Iterator[list[StepRef]]:
        if len(order) == sum(lengths):
            yield list(order)
            return
        for session, length in enumerate(lengths):
            if taken[session] == length:
                continue
            step = (session, taken[session])
            if independent and order and _out_of_order(order[-1], step, independent):
                continue
            order.append(step)
            taken[session] += 1
            yield from walk()
            taken[session] -= 1
            order.pop()

    yield from walk()


def count(lengths: Sequence[int], independent: Independent | None = None) -> int:
    """How many orders ``orders()`` yields, without listing them."""
    if independent is None:
        return brute_force_count(lengths)
    total = sum(lengths)

    @cache
    def ways(taken: tuple[int, ...], last: StepRef | None) -> int:
        if sum(taken) == total:
            return 1
        result = 0
        for session, length in enumerate(lengths):
            if taken[session] == length:
                continue
            step = (session, taken[session])
            if last is not None and _out_of_order(last, step, independent):
                continue
            following = taken[:session] + (taken[session] + 1,) + taken[session + 1 :]
            result += ways(following, step)
        return result

    return ways(tuple(0 for _ in lengths), None)


def _out_of_order(previous: StepRef, step: StepRef, independent: Independent) -> bool:
    """``step`` right after ``previous`` although it could go first and has a lower session."""
    return step[0] < previous[0] and independent(previous, step)
