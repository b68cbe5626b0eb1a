"""Reading a statement's input on the session's thread so that another thread can tell when
everything the server sent has been read: notices raised before a wait are delivered then.

The isolation tester reads a step's connection itself (``PQconsumeInput``) before it prints
``<waiting ...>``; a session's thread reads it here, and :meth:`InputWatch.drain` waits until
the socket holds nothing unread while the thread sits between two reads.
"""

from __future__ import annotations

import selectors
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class InputWatch:
    """One session's reads, in steps another thread can wait between."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._fileno: int | None = None  # the socket, while a statement's input is read

    def watched(
        self, fileno: int, send: Callable[[], None], gen: Generator[Any, Any, T]
    ) -> Generator[Any, Any, T]:
        """``gen`` (a psycopg generator, for ``Connection.wait``) after ``send()``: every read
        and parse (notices delivered) happens while :meth:`drain` cannot look; it looks
        only while the thread waits on the socket."""
        with self._cond:
            self._fileno = fileno
            try:
                send()
                wait = next(gen)
                while True:
                    self._cond.notify_all()
                    self._cond.release()
                    try:
                        ready = yield wait
                    finally:
                        self._cond.acquire()
                    wait = gen.send(ready)
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
