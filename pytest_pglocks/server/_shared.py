"""One server per test run, shared by pytest-xdist workers through files in the base temp dir.

The first process that needs the server starts it under a file lock and records it in
``pglocks-server.json``; the others read the record. The run's owner (the plain pytest
process, or xdist's controller, which outlives every worker) stops it at the end. A failure
to start is recorded too, so that every worker reports it at once instead of retrying.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from .. import errors
from .._private import write_private
from .._settings import Settings
from . import Server, _docker, _external, _local, _reuse
from ._binaries import DEFAULT_MAJOR, find_binaries
from ._reuse import WatchdogArgv

STATE = "pglocks-server.json"
FAILURE = "pglocks-server.error"
LOCK = "pglocks-server.lock"


def acquire(
    settings: Settings,
    shared_dir: Path,
    *,
    run_id: str,
    owner_pid: int,
    progress: Callable[[str], None],
) -> Server:
    """The run's server, started by this call if no process of the run started it yet."""
    with FileLock(str(shared_dir / LOCK)):
        state = shared_dir / STATE
        if state.exists():
            return Server.from_json(state.read_text())
        failure = shared_dir / FAILURE
        if failure.exists():
            raise errors.ServerError(failure.read_text())
        try:
            server = _provision(settings, run_id, owner_pid, shared_dir, progress)
        except errors.ServerError as exc:
            write_private(failure, str(exc))
            raise
        write_private(state, server.to_json())  # the conninfo holds the password
        return server


def recorded(shared_dir: Path) -> Server | None:
    """The server some process of this run started, if any."""
    state = shared_dir / STATE
    return Server.from_json(state.read_text()) if state.exists() else None


def release(shared_dir: Path) -> Server | None:
    """Stop the run's server (or drop its template on an existing server); owner only."""
    with FileLock(str(shared_dir / LOCK)):
        server = recorded(shared_dir)
        if server is None:
            return None
        if server.process is not None and server.process.lease is not None:
            _drop_template(server)  # the server stays, warm for the next run
            _reuse.release(server.process)
        elif server.process is not None:
            _local.stop(server.process)
        elif server.container is not None:
            _docker.stop(server.container)
        else:
            _drop_template(server)
        (shared_dir / STATE).unlink()
        return server


def _provision(
    settings: Settings,
    run_id: str,
    owner_pid: int,
    run_dir: Path,
    progress: Callable[[str], None],
) -> Server:
    started = time.monotonic()
    template = f"pglocks_{run_id}_template"
    if settings.dsn.value:
        dsn, version, source, superuser = _external.check(settings.dsn)
        server = Server(dsn, version, "dsn", source, template, superuser)
    elif settings.reuse.value and settings.backend.value != "docker":
        server = _reuse.acquire(
            settings,
            owner_pid,
            template,
            lambda watchdog_argv: _start(
                settings, run_id, owner_pid, run_dir, template, progress, watchdog_argv
            ),
        )
    else:
        server = _start(settings, run_id, owner_pid, run_dir, template, progress)
    try:
        _create_template(server)
    except Exception:
        if server.process is not None and server.process.lease is not None:
            _reuse.release(server.process)
        elif server.process is not None:
            _local.stop(server.process)
        if server.container is not None:
            _docker.stop(server.container)
        raise
    return dataclasses.replace(server, start_seconds=time.monotonic() - started)


def _start(
    settings: Settings,
    run_id: str,
    owner_pid: int,
    run_dir: Path,
    template: str,
    progress: Callable[[str], None],
    watchdog_argv: WatchdogArgv | None = None,
) -> Server:
    """A local server, or a container (asked for, or auto's fallback when no binaries)."""
    backend = settings.backend.value
    if backend == "docker":
        return _start_docker(settings, run_id, owner_pid, run_dir, template)
    try:
        binaries = find_binaries(settings, progress=progress)
    except errors.ServerError as exc:
        if backend != "auto" or settings.bindir.value is not None:
            raise
        docker_why = _docker.unreachable_reason()
        if docker_why is not None:
            raise errors.ServerError(
                errors.AUTO_NO_DOCKER.format(why=exc, docker_why=docker_why)
            ) from None
        try:
            return _start_docker(settings, run_id, owner_pid, run_dir, template)
        except errors.ServerError as docker_exc:
            raise errors.ServerError(
                errors.AUTO_DOCKER_FAILED.format(why=exc, docker_why=docker_exc)
            ) from None
    extra = dict(settings.server_settings.value)
    dsn, process = _local.start(
        binaries, owner_pid, run_dir, extra=extra, watchdog_argv=watchdog_argv
    )
    source = f"{binaries.bindir}, {binaries.source}"
    return Server(dsn, binaries.version, "local", source, template, process=process)


def _start_docker(
    settings: Settings, run_id: str, owner_pid: int, run_dir: Path, template: str
) -> Server:
    spec = settings.pg.value
    major = spec.major if spec is not None else DEFAULT_MAJOR
    dsn, version, container = _docker.start(settings, major, run_id, owner_pid, str(run_dir))
    source = f"container {container.id[:12]}, image {container.image}"
    return Server(dsn, version, "docker", source, template, container=container)


def _create_template(server: Server) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(server.template)))


def _drop_template(server: Server) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(server.template)
            )
        )
