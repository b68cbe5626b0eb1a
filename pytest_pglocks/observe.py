"""Application connections as sessions: backends of the code under test, watched by pid.

Code under test opens its own connections (psycopg, asyncpg, SQLAlchemy pools) to
``pglocks.dsn``. ``pglocks.observe()`` finds such a backend on the server and returns an
``Observed`` that works where a session does as a name and a pid: the target or ``on=`` of
``assert_blocks``/``assert_not_blocks``, the wait-for graph, the failure report. Deadlocks of
any backend of the test's database reach ``no_deadlock`` through the server's log
(:class:`ServerLog`), since the plugin never sees those connections' errors itself.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import errors
from ._context import poll_gaps
from .errors import PglocksError, WaitTimeout
from .session import shorten

if TYPE_CHECKING:
    from ._context import TestContext
    from .monitor import LockRow

__all__ = ["Observed", "ServerLog"]

# Connections of the plugin itself, never adopted.
OWN_APPLICATIONS = ("pglocks:", "isolation/")
BACKENDS = """
SELECT pid, coalesce(application_name, ''), coalesce(state, ''), coalesce(query, '')
FROM pg_catalog.pg_stat_activity
WHERE datname = pg_catalog.current_database() AND backend_type = 'client backend'
  AND pid <> pg_catalog.pg_backend_pid()
ORDER BY backend_start, pid
"""


class Observed:
    """A backend of the code under test, found by ``pglocks.observe()``: ``.name``, ``.pid``."""

    __module__ = "pytest_pglocks"

    def __init__(self, context: TestContext, name: str, pid: int, application_name: str) -> None:
        self._context = context
        self.name = name
        self.pid = pid
        self.application_name = application_name

    def __repr__(self) -> str:
        return f"<pytest_pglocks.Observed {self.name} pid={self.pid}>"

    def locks(self) -> list[LockRow]:
        """This backend's rows of ``pg_locks``."""
        return [row for row in self._context.locks() if row.pid == self.pid]


@dataclass(frozen=True)
class Backend:
    """A client backend connected to the test's database, as ``pg_stat_activity`` shows it."""

    pid: int
    application_name: str
    state: str
    query: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.state or 'no state'}): {shorten(self.query) or '(none)'}"


def backends(context: TestContext) -> list[Backend]:
    """The client backends connected to the test's database, oldest first."""
    return [
        Backend(int(pid), str(name), str(state), str(query))
        for pid, name, state, query in context.monitor.query(BACKENDS)
    ]


def _foreign(context: TestContext, backend: Backend) -> bool:
    """Not a connection of the plugin (sessions, monitor, setup, gates, specs)."""
    own = {session.pid for session in context.sessions.values()}
    return backend.pid not in own and not backend.application_name.startswith(OWN_APPLICATIONS)


def observe(
    context: TestContext,
    application_name: str | None,
    pid: int | None,
    name: str | None,
    timeout: float | None,
) -> Observed | list[Observed]:
    """Find the backend(s) asked for, waiting (by looking at the server) for a named one."""
    __tracebackhide__ = True
    if application_name is None and pid is None:
        return [
            _adopt(context, backend.application_name or f"pid {backend.pid}", backend)
            for backend in backends(context)
            if _foreign(context, backend) and backend.pid not in context.observed
        ]
    limit = context.settings.timeout if timeout is None else timeout
    deadline = time.monotonic() + limit
    wake = threading.Event()
    for gap in poll_gaps():
        wake.wait(gap)
        connected = backends(context)
        matching = [
            backend
            for backend in connected
            if (backend.pid == pid if pid is not None else _foreign(context, backend))
            and (application_name is None or backend.application_name == application_name)
        ]
        if len(matching) > 1:
            raise PglocksError(
                errors.OBSERVE_AMBIGUOUS.format(
                    application_name=application_name,
                    count=len(matching),
                    backends="\n".join(f"  {backend.describe()}" for backend in matching),
                )
            )
        if matching:
            backend = matching[0]
            if backend.pid in context.observed:
                return context.observed[backend.pid]
            return _adopt(context, name or application_name or f"pid {backend.pid}", backend)
        if time.monotonic() >= deadline:
            wanted = (
                f"application_name={application_name!r}"
                if application_name is not None
                else f"pid={pid}"
            )
            listed = ", ".join(
                f"{backend.application_name or '(none)'} (pid {backend.pid})"
                for backend in connected
            )
            raise WaitTimeout(
                errors.OBSERVE_TIMEOUT.format(
                    wanted=wanted, limit=limit, connected=listed or "none"
                )
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _adopt(context: TestContext, name: str, backend: Backend) -> Observed:
    taken = set(context.names().values())
    if name in taken:
        raise PglocksError(errors.OBSERVE_DUPLICATE.format(name=name, pid=backend.pid))
    observed = Observed(context, name, backend.pid, backend.application_name)
    context.observed[backend.pid] = observed
    return observed


# The server's log: deadlocks of backends the plugin does not drive.

# log_line_prefix of the plugin's servers (see server/_local.py).
LOG_LINE = re.compile(
    r"^\S+ \S+ \S+ \[(?P<pid>\d+)\] db=(?P<db>\S*) (?P<level>[A-Z]+):  (?P<text>.*)$"
)


@dataclass(frozen=True)
class LoggedDeadlock:
    """A deadlock error as the server logged it: the victim's pid, the cycle, the statement."""

    pid: int
    detail: str
    statement: str


class ServerLog:
    """The part of a local server's log written since a test started, for one database."""

    def __init__(self, path: Path, dbname: str) -> None:
        self.path = path
        self.dbname = dbname
        self.offset = path.stat().st_size if path.exists() else 0

    def deadlocks(self) -> list[LoggedDeadlock]:
        """Deadlock errors logged for the test's database since the test started."""
        found: list[LoggedDeadlock] = []
        current: dict[str, str] | None = None
        for level, pid, text in self._entries():
            if level == "ERROR":
                current = None
                if text.startswith("deadlock detected"):
                    current = {"pid": pid, "detail": "", "statement": ""}
                    found.append(LoggedDeadlock(int(pid), "", ""))
            elif current is not None and pid == current["pid"] and level in ("DETAIL", "STATEMENT"):
                current["detail" if level == "DETAIL" else "statement"] = text
                found[-1] = LoggedDeadlock(int(pid), current["detail"], current["statement"])
        return found

    def _entries(self) -> Iterator[tuple[str, str, str]]:
        """(level, pid, text) of this database's entries; continuation lines joined."""
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read().decode("utf-8", "replace")
        except OSError:
            return
        entry: list[str] | None = None
        for line in data.splitlines():
            match = LOG_LINE.match(line)
            if match:
                if entry is not None:
                    yield entry[0], entry[1], "\n".join(entry[2:])
                entry = None
                if match["db"] == self.dbname:
                    entry = [match["level"], match["pid"], match["text"]]
            elif entry is not None and line.startswith("\t"):
                entry.append(line[1:])
        if entry is not None:
            yield entry[0], entry[1], "\n".join(entry[2:])
