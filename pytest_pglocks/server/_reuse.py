"""Warm local servers kept between runs (``--pglocks-reuse``).

A kept server is recorded in a private directory of the user (``pglocks-reuse-<uid>`` in the
temporary directory, mode 0700), one record per key: a hash of what decides which server a
run gets (the PostgreSQL asked for, the binary options, the server settings). The record holds
the server's connection details, password included once servers have one, so it is written
0600 and never printed.

A run that finds a live server under its key leases it (a file naming the run's owner pid),
creates its own template database on it, and at the end drops that template and gives the
lease back. The server's watchdog (``_watchdog.py reuse ...``) stops it once no live run holds
a lease and the record was last used ``--pglocks-reuse-idle`` seconds ago, or at once on
SIGTERM, which is what ``pytest --pglocks-reuse-stop`` sends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from .._settings import Settings
from . import LocalProcess, Server
from ._local import SERVER_SETTINGS, START_TIMEOUT, stop_and_remove
from ._process import is_alive, wait_exit

# Builds the watchdog's command line from the postmaster pid and the server's directory.
WatchdogArgv = Callable[[int, Path], list[str]]


def directory() -> Path:
    """The user's private directory of kept servers."""
    return Path(tempfile.gettempdir()) / f"pglocks-reuse-{os.geteuid()}"


def key_of(settings: Settings) -> str:
    """What decides which server a run gets, as a short hash."""
    decisive = {
        "pg": str(settings.pg.value),
        "bindir": str(settings.bindir.value),
        "cache_dir": str(settings.cache_dir.value),
        "offline": settings.offline.value,
        "server_settings": SERVER_SETTINGS,
        "extra_settings": list(settings.server_settings.value),  # --pglocks-server-settings
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


def acquire(
    settings: Settings,
    owner_pid: int,
    template: str,
    start: Callable[[WatchdogArgv], Server],
) -> Server:
    """The kept server of this key, leased to this run; ``start`` makes one if none lives."""
    folder = directory()
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    key = key_of(settings)
    record = folder / f"{key}.json"
    with FileLock(str(folder / f"{key}.lock")):
        server = _live(record)
        if server is None:
            idle = settings.reuse_idle.value
            server = start(
                lambda postmaster, root: (
                    [sys.executable, "-m", "pytest_pglocks.server._watchdog"]
                    + ["reuse", str(postmaster), str(root), str(record), str(idle)]
                )
            )
            if server.process is None:  # auto fell back to Docker: nothing to keep
                return server
            _write_private(record, server.to_json())
        else:
            os.utime(record)
        lease = folder / f"{key}.lease-{owner_pid}"
        _write_private(lease, "")
    assert server.process is not None
    return dataclasses.replace(
        server,
        template=template,
        process=dataclasses.replace(server.process, lease=str(lease)),
    )


def release(process: LocalProcess) -> None:
    """The run is done with its kept server: give the lease back, note the time of use."""
    assert process.lease is not None
    lease = Path(process.lease)
    record = lease.with_name(lease.name.split(".lease-")[0] + ".json")
    with contextlib.suppress(FileNotFoundError):
        os.utime(record)
    lease.unlink(missing_ok=True)


def in_use(record: Path) -> bool:
    """Whether a live run holds a lease on the server of ``record``."""
    key = record.stem
    for lease in record.parent.glob(f"{key}.lease-*"):
        pid = lease.name.rsplit("-", 1)[1]
        if pid.isdigit() and is_alive(int(pid)):
            return True
        lease.unlink(missing_ok=True)  # its run ended without giving it back
    return False


def idle_for(record: Path) -> float:
    """Seconds since a run last used the server of ``record``."""
    return time.time() - record.stat().st_mtime


def records_postmaster(record: Path, postmaster: int) -> bool:
    """Whether ``record`` is (still) the record of the server with that postmaster."""
    server = _read(record)
    return (
        server is not None
        and server.process is not None
        and (server.process.postmaster_pid == postmaster)
    )


def forget(record: Path) -> None:
    """Remove a record (and the user's directory with the last one); under the key's lock."""
    record.unlink(missing_ok=True)
    folder = record.parent
    if not any(folder.glob("*.json")):
        shutil.rmtree(folder, ignore_errors=True)


def stop_all() -> list[str]:
    """Stop every kept server of this user; their descriptions."""
    folder = directory()
    stopped = []
    for record in sorted(folder.glob("*.json")) if folder.exists() else []:
        server = _read(record)
        if server is None or server.process is None:
            record.unlink(missing_ok=True)
            continue
        process = server.process
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.watchdog_pid, signal.SIGTERM)  # it stops the server, then forgets it
        if not wait_exit(process.watchdog_pid, START_TIMEOUT) or Path(process.root).exists():
            stop_and_remove(process)
        record.unlink(missing_ok=True)
        stopped.append(server.describe())
    if folder.exists() and not any(folder.glob("*.json")):
        shutil.rmtree(folder, ignore_errors=True)
    return stopped


def _read(record: Path) -> Server | None:
    try:
        return Server.from_json(record.read_text())
    except (OSError, ValueError, TypeError):
        return None


def _live(record: Path) -> Server | None:
    """The recorded server if its postmaster and watchdog still run; else clean up after it."""
    server = _read(record)
    if server is None or server.process is None:
        return None
    process = server.process
    if is_alive(process.postmaster_pid) and is_alive(process.watchdog_pid):
        return server
    stop_and_remove(process)
    record.unlink(missing_ok=True)
    return None


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (0600), replacing it whole."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)
