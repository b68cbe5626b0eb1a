"""The name a checked-out connection carries: its asyncio task's, else its thread's."""

from __future__ import annotations

import asyncio
import threading

# application_name of a pooled connection nobody has checked out.
IDLE = "pglocks:idle-in-pool"
# Sets application_name for the session (not only the transaction), in any driver's syntax.
SET_NAME = "SELECT pg_catalog.set_config('application_name', %s, false)"
SET_NAME_ASYNCPG = "SELECT pg_catalog.set_config('application_name', $1, false)"


def current_name() -> str:
    """The running asyncio task's name, or else the current thread's."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        task = None
    return task.get_name() if task is not None else threading.current_thread().name
