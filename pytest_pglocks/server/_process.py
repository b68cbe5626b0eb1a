"""Process helpers: waiting for any process to exit (not only children), dropping root."""

from __future__ import annotations

import os
import pwd
import select
import sys
from dataclasses import dataclass
from typing import Any

from .. import errors

RUN_AS_USER = "nobody"


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account the server runs as when the tests run as root."""

    user: str
    uid: int
    gid: int

    def subprocess_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def run_as() -> RunAs | None:
    """The account to drop to when running as root (PostgreSQL refuses root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(RUN_AS_USER)
    except KeyError:
        raise errors.ServerError(errors.NO_RUN_AS_USER.format(user=RUN_AS_USER)) from None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_any_exit(pids: list[int], timeout: float | None = None) -> set[int]:
    """Block until at least one of ``pids`` has exited (or the timeout); return the exited ones.

    Uses pidfds on Linux and kqueue on macOS, so it waits on the kernel, never by polling.
    """
    if hasattr(os, "pidfd_open"):
        return _wait_pidfd(pids, timeout)
    if sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
        return _wait_kqueue(pids, timeout)
    raise OSError("waiting for a process needs Linux pidfds or macOS kqueue")  # pragma: no cover


def _wait_pidfd(pids: list[int], timeout: float | None) -> set[int]:
    fds: dict[int, int] = {}
    gone: set[int] = set()
    try:
        for pid in pids:
            try:
                fds[os.pidfd_open(pid)] = pid
            except ProcessLookupError:
                gone.add(pid)
        if gone:
            return gone
        ready, _, _ = select.select(list(fds), [], [], timeout)
        return {fds[fd] for fd in ready}
    finally:
        for fd in fds:
            os.close(fd)


def _wait_kqueue(pids: list[int], timeout: float | None) -> set[int]:  # pragma: no cover
    gone = {pid for pid in pids if not is_alive(pid)}
    if gone or sys.platform != "darwin":
        return gone
    queue = select.kqueue()
    try:
        events = [
            select.kevent(pid, select.KQ_FILTER_PROC, select.KQ_EV_ADD, select.KQ_NOTE_EXIT)
            for pid in pids
        ]
        fired = queue.control(events, len(events), timeout)
        return {int(event.ident) for event in fired}
    finally:
        queue.close()


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited; True if it did within ``timeout`` seconds."""
    return pid in wait_any_exit([pid], timeout)
