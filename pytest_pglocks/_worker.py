"""The thread that owns one session's connection and runs its statements one at a time."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Worker:
    """One thread, one queue; jobs run in order and report through futures."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=f"pglocks:{name}", daemon=True)
        self._thread.start()

    def put(self, job: Callable[[], Any], future: Future[Any]) -> None:
        """Queue ``job``; its outcome goes to ``future``."""
        self._jobs.put((job, future))

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

    def stop(self, timeout: float) -> None:
        """Finish queued jobs, then end the thread."""
        self._jobs.put(None)
        self._thread.join(timeout)
