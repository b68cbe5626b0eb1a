"""The PostgreSQL server of a test run, whichever backend provides it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Backend = Literal["local", "docker", "dsn"]

__all__ = ["Backend", "Container", "LocalProcess", "Server", "without_password"]


def without_password(conninfo: str, **changes: str) -> str:
    """``conninfo`` (with ``changes``) without its password, for anything printed."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = {**conninfo_to_dict(conninfo), **changes}
    except Exception:  # not a conninfo at all: there is no password to find in it
        return conninfo
    if "password" not in params and not changes:
        return conninfo  # as the user wrote it
    params.pop("password", None)
    return make_conninfo("", **params)


@dataclass(frozen=True)
class LocalProcess:
    """The processes and files of a server this run started (local backend only)."""

    root: str
    datadir: str
    postmaster_pid: int
    watchdog_pid: int
    run_as: str | None
    lease: str | None = None  # a server kept between runs (--pglocks-reuse): this run's lease


@dataclass(frozen=True)
class Container:
    """The container of a server this run started (docker backend only)."""

    id: str
    image: str
    watchdog_pid: int


@dataclass(frozen=True)
class Server:
    """The server of this run: ``.dsn`` (maintenance database), ``.version``, ``.backend``."""

    __module__ = "pytest_pglocks"

    dsn: str = field(repr=False)  # it holds the password
    version: str
    backend: Backend
    source: str
    template: str
    superuser: bool = True
    start_seconds: float = 0.0
    process: LocalProcess | None = field(default=None, repr=False)
    container: Container | None = field(default=None, repr=False)

    @property
    def major(self) -> int:
        """The major version, e.g. ``16``."""
        return int(re.split(r"\D", self.version, maxsplit=1)[0])  # "16.4", "18beta1"

    def conninfo(self, dbname: str) -> str:
        """The conninfo of database ``dbname`` on this server."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.dsn, dbname=dbname)

    def own_conninfo(self, dbname: str | None = None) -> str:
        """The conninfo of ``dbname`` (default: the maintenance database) for the plugin's own
        connections: for a local server its private socket (no TCP, no password exchange:
        a connection in a third of the time)."""
        from psycopg.conninfo import make_conninfo

        changes = {} if dbname is None else {"dbname": dbname}
        if self.process is not None:
            changes["host"] = self.process.root
        return make_conninfo(self.dsn, **changes)

    def printable_conninfo(self, dbname: str) -> str:
        """A conninfo of ``dbname`` that is safe to print: never the password. For a local
        server it names the private socket directory, where the run's own account needs none."""
        socket = {"host": self.process.root} if self.process is not None else {}
        return without_password(self.conninfo(dbname), **socket)

    def describe(self) -> str:
        """One line for the terminal: version, backend, where it came from."""
        return f"PostgreSQL {self.version} ({self.backend}, {self.source})"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Server:
        data: dict[str, Any] = json.loads(text)
        process = data.pop("process")
        container = data.pop("container", None)
        return cls(
            **data,
            process=LocalProcess(**process) if process else None,
            container=Container(**container) if container else None,
        )
