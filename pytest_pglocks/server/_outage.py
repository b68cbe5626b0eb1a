"""A server that stopped answering in the middle of a run: why, and what its log said.

The first test that meets the outage reports it with the last lines of the server's log; the
tests after it (in any xdist worker) say so in one line. The watchdog keeps the log of a
local server that exited on its own before it removes the server's directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import errors
from .._private import write_private
from . import LocalProcess, Server
from ._process import wait_exit

RECORD = "pglocks-server.exited"
LOG_TAIL_LINES = 20
WATCHDOG_WAIT = 60
EXIT_WAIT = 10


def kept_log_path(run_dir: Path) -> Path:
    """Where the watchdog keeps the log of a local server that exited: beside the run's
    shared directory, which goes at the end of the run."""
    return run_dir.with_name(run_dir.name + "-server.log")


def unreachable(server: Server) -> str | None:
    """Why the server no longer serves this run, or None if it answers."""
    import psycopg

    try:
        with psycopg.connect(server.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        # A postmaster on its way out refuses connections before it exits: give it a moment.
        if server.process is not None and wait_exit(server.process.postmaster_pid, EXIT_WAIT):
            return f"its postmaster (pid {server.process.postmaster_pid}) exited"
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def message(server: Server, run_dir: Path, nodeid: str, why: str) -> str:
    """The failure of test ``nodeid`` whose server is gone; the first such test gets the log."""
    from filelock import FileLock

    record = run_dir / RECORD
    with FileLock(str(run_dir / (RECORD + ".lock"))):  # one first test, in any worker
        if record.exists():
            first = json.loads(record.read_text())
            where = f"; its log: {first['log']}" if first["log"] else ""
            return errors.SERVER_GONE_AGAIN.format(
                what=_what(server), nodeid=first["nodeid"], log=where
            )
        log = _keep_log(server.process, run_dir) if server.process is not None else None
        write_private(record, json.dumps({"nodeid": nodeid, "log": str(log) if log else None}))
    if log is None:
        return errors.SERVER_GONE_NO_LOG.format(what=_what(server), why=why)
    return errors.SERVER_GONE.format(what=_what(server), why=why, log=log, tail=_tail(log))


def summary(run_dir: Path) -> str | None:
    """The terminal summary's line about an outage, if any test met one."""
    record = run_dir / RECORD
    if not record.exists():
        return None
    first = json.loads(record.read_text())
    log = f"; its log: {first['log']}" if first["log"] else ""
    return f"pglocks: the server stopped answering during {first['nodeid']}{log}"


def keep_log(process: LocalProcess, run_dir: Path) -> Path | None:
    """Move the server's log out of its directory before that goes (the watchdog's part)."""
    log, kept = Path(process.root) / "server.log", kept_log_path(run_dir)
    try:
        write_private(kept, log.read_text(errors="replace"))
    except OSError:
        return None
    return kept


def _keep_log(process: LocalProcess, run_dir: Path) -> Path | None:
    """The kept log, once the watchdog has had its chance to keep it."""
    wait_exit(process.watchdog_pid, WATCHDOG_WAIT)
    kept = kept_log_path(run_dir)
    if kept.exists():
        return kept
    return keep_log(process, run_dir)  # the watchdog was gone before the server


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(f"  {line}" for line in lines) or "  (the log is empty)"


def _what(server: Server) -> str:
    if server.backend == "dsn":
        return "The server given by --pglocks-dsn"
    return f"The PostgreSQL server of this run ({server.describe()})"
