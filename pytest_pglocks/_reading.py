"""Reading a statement's input on the session's thread so that another thread can tell when
everything the server sent has been read: notices raised before a wait are delivered then.

The isolation tester reads a step's connection itself (``PQconsumeInput``) before it prints
``<waiting ...>``; a session's thread reads it here, and :meth:`InputWatch.drain` waits until
the socket holds nothing unread while the thread sits idle between two reads.
"""

from __future__ import annotations

import selectors
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def _wait_mask(wait: int) -> int:
    from psycopg.waiting import WAIT_R, WAIT_W

    return (selectors.EVENT_READ if wait & WAIT_R else 0) | (
        selectors.EVENT_WRITE if wait & WAIT_W else 0
    )


def _ready(events: int) -> int:
    from psycopg.waiting import READY_NONE, READY_R, READY_W

    ready = READY_R if events & selectors.EVENT_READ else READY_NONE
    return ready | READY_W if events & selectors.EVENT_WRITE else ready


class InputWatch:
    """One session's reads, in steps another thread can wait between."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._fileno: int | None = None  # the socket, while a statement's input is read

    def run(self, fileno: int, send: Callable[[], None], gen: Generator[Any, Any, T]) -> T:
        """Send a statement and drive its psycopg generator to the end; every read and parse
        (notices delivered) happens while :meth:`drain` cannot look."""
        with self._cond:
            self._fileno = fileno
            try:
                send()
                wait = next(gen)
                with selectors.DefaultSelector() as selector:
                    selector.register(fileno, _wait_mask(wait))
                    while True:
                        self._cond.notify_all()
                        self._cond.release()
                        try:
                            events = selector.select()
                        finally:
                            self._cond.acquire()
                        wait = gen.send(_ready(events[0][1] if events else 0))
                        selector.modify(fileno, _wait_mask(wait))
            except StopIteration as stop:
                result: T = stop.value
                return result
            finally:
                self._fileno = None
                self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Until the session's thread has read and parsed all the socket's input (or
        ``timeout``); True if its statement is still running then, False if it has ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._fileno is None or not self._readable(), timeout)
            return self._fileno is not None

    def _readable(self) -> bool:
        assert self._fileno is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._fileno, selectors.EVENT_READ)
            return bool(selector.select(0))
