"""A private PostgreSQL server in a temporary directory, tuned for tests."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import errors
from .._private import write_private
from . import LocalProcess
from ._binaries import Binaries
from ._process import RunAs, run_as, wait_exit

# Durability is worthless for throw-away test data; lock behaviour is unaffected.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",  # an autovacuum worker in the template would block CREATE DATABASE
    "max_connections": "200",
    "lc_messages": "C",
    "log_min_messages": "warning",
    # The pid and database of every entry: deadlocks of application connections are read from
    # here (observe.ServerLog).
    "log_line_prefix": "%m [%p] db=%d ",
}
START_TIMEOUT = 60
KEEP_MARKER = "keep"

# Watchdogs this process started, kept so they are reaped here rather than left as zombies.
_watchdogs: dict[int, subprocess.Popen[bytes]] = {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log was written)"
    return "\n".join(text[-lines:]) or "(the log is empty)"


def _check_readable(binaries: Binaries, account: RunAs) -> None:
    try:
        subprocess.run(
            [str(binaries.bindir / "postgres"), "--version"],
            capture_output=True,
            check=True,
            cwd="/",
            timeout=30,
            **account.subprocess_kwargs(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise errors.ServerError(
            errors.RUN_AS_CANNOT_READ.format(user=account.user, bindir=binaries.bindir, why=exc)
        ) from None


def _run(argv: list[str], account: RunAs | None, cwd: Path, log: Path, what: str) -> None:
    kwargs = account.subprocess_kwargs() if account else {}
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    with log.open("ab") as out:
        result = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            timeout=START_TIMEOUT,
            start_new_session=True,  # Ctrl-C reaches pytest, which then stops the server
            check=False,
            **kwargs,
        )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, what)


def start(
    binaries: Binaries,
    owner_pid: int,
    run_dir: Path,
    *,
    extra: Mapping[str, str] | None = None,
    watchdog_argv: Callable[[int, Path], list[str]] | None = None,
    encoding: str | None = "UTF8",
) -> tuple[str, LocalProcess]:
    """initdb and start a server; return its conninfo and processes. Stopped by the watchdog
    (by default the one watching the run's owner; ``watchdog_argv(postmaster, root)`` gives
    another's command line); ``extra``: more server settings.

    Only this run can connect: TCP needs a random superuser password (scram-sha-256), which
    is in the returned conninfo only, and the Unix socket lies in a directory only the
    server's account may enter. ``encoding=None`` keeps initdb's choice (SQL_ASCII under the
    C locale), for tests of servers like that.
    """
    account = run_as()
    if account:
        _check_readable(binaries, account)
    root = Path(tempfile.mkdtemp(prefix="pglocks-"))
    if account:
        os.chown(root, account.uid, account.gid)
    datadir = root / "data"
    log = root / "server.log"
    log.touch()
    if account:
        os.chown(log, account.uid, account.gid)
    bindir = binaries.bindir
    port = _free_port()
    password = secrets.token_urlsafe(24)
    pwfile = root / "initdb.pw"
    options = " ".join(  # pg_ctl hands them to a shell
        f"-c {name}={shlex.quote(value)}"
        for name, value in {
            **SERVER_SETTINGS,
            **(extra or {}),
            "port": str(port),
            "unix_socket_directories": str(root),
        }.items()
    )
    try:
        write_private(pwfile, password, owner=(account.uid, account.gid) if account else None)
        _run(
            [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres"]
            + ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
            + (["-E", encoding] if encoding else [])
            + ["--locale=C", "--no-sync", "--no-instructions"],
            account,
            root,
            log,
            "initdb",
        )
        pwfile.unlink()
        _run(
            [str(bindir / "pg_ctl"), "start", "-w", "-t", str(START_TIMEOUT), "-s"]
            + ["-D", str(datadir), "-l", str(log), "-o", options],
            account,
            root,
            log,
            "pg_ctl start",
        )
        postmaster_pid = int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        tail = _log_tail(log)
        shutil.rmtree(root, ignore_errors=True)
        raise errors.ServerError(
            errors.START_FAILED.format(
                version=binaries.version, datadir=datadir, why=exc, log_tail=tail
            )
        ) from None
    argv = (
        watchdog_argv(postmaster_pid, root)
        if watchdog_argv is not None
        else [sys.executable, "-m", "pytest_pglocks.server._watchdog"]
        + [str(owner_pid), str(postmaster_pid), str(root), str(run_dir)]
    )
    watchdog = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _watchdogs[watchdog.pid] = watchdog
    process = LocalProcess(
        root=str(root),
        datadir=str(datadir),
        postmaster_pid=postmaster_pid,
        watchdog_pid=watchdog.pid,
        run_as=account.user if account else None,
    )
    dsn = f"host=127.0.0.1 port={port} user=postgres password={password} dbname=postgres"
    return dsn, process


def keep(process: LocalProcess) -> None:
    """Leave the server running after the run (for --pglocks-keep); the watchdog waits."""
    (Path(process.root) / KEEP_MARKER).touch()


def is_kept(process: LocalProcess) -> bool:
    return (Path(process.root) / KEEP_MARKER).exists()


def stop_and_remove(process: LocalProcess) -> None:
    """Immediate shutdown, then remove the directory. Used by the watchdog and as fallback."""
    try:
        os.kill(process.postmaster_pid, signal.SIGQUIT)
    except ProcessLookupError:
        pass
    else:
        wait_exit(process.postmaster_pid, START_TIMEOUT)
    shutil.rmtree(process.root, ignore_errors=True)


def stop(process: LocalProcess) -> None:
    """Stop the server at the end of the run: ask its watchdog and wait until it is done."""
    if is_kept(process):
        return
    try:
        os.kill(process.watchdog_pid, signal.SIGTERM)
    except ProcessLookupError:
        stop_and_remove(process)
        return
    wait_exit(process.watchdog_pid, START_TIMEOUT)
    if Path(process.root).exists():  # the watchdog died before it could clean up
        stop_and_remove(process)
    own = _watchdogs.pop(process.watchdog_pid, None)
    if own is not None:
        own.wait()
