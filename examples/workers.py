"""Application calls on named threads or asyncio tasks, for the framework examples.

The pytest_pglocks.contrib helpers name each connection after the thread or task that checked
it out, so a worker's name is also what ``pglocks.observe()`` looks for.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

BANK = """
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
CREATE TABLE transfers (
    id serial PRIMARY KEY, source int NOT NULL, target int NOT NULL, amount int NOT NULL
);
INSERT INTO accounts VALUES (1, 100), (2, 100);
"""


class Worker:
    """``function(*args)`` on a thread named ``name``; ``join()`` returns its exception."""

    def __init__(self, name: str, function: Callable[..., Any], *args: Any) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, *args), name=name)
        self._thread.start()

    def _run(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            function(*args)
        except BaseException as exc:  # handed to the test by join()
            self.error = exc

    def join(self) -> BaseException | None:
        self._thread.join(30)
        assert not self._thread.is_alive(), "the application call did not finish"
        return self.error


def start_task(name: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """An asyncio task named ``name`` (its connection's application_name)."""
    return asyncio.create_task(coroutine, name=name)


async def outcome(task: asyncio.Task[Any]) -> BaseException | None:
    """The task's exception, or None once it finished well."""
    try:
        await asyncio.wait_for(task, 30)
    except Exception as exc:  # handed to the test
        return exc
    return None
