"""A PostgreSQL server in a Docker container, started with testcontainers.

testcontainers is imported lazily, and its Ryuk reaper is disabled (it would be pulled from a
registry): the run's watchdog removes the container instead when pytest dies.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from .. import errors
from .._settings import Settings
from . import Container
from ._local import SERVER_SETTINGS, START_TIMEOUT

PORT = 5432
LABEL_RUN = "pytest-pglocks.run"
CONNECT_TIMEOUT = 2
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
POLL_INTERVAL = 0.1

# Watchdogs this process started, reaped here rather than left as zombies.
_watchdogs: dict[int, subprocess.Popen[bytes]] = {}


def client() -> Any:
    """A Docker SDK client; ``errors.ServerError`` naming the cause if no engine answers."""
    try:
        import docker
    except ImportError as exc:
        raise errors.ServerError(errors.DOCKER_NO_TESTCONTAINERS.format(why=exc)) from None
    try:
        docker_client = docker.from_env(timeout=10)
        docker_client.ping()
    except Exception as exc:  # docker.errors.DockerException, requests errors
        raise errors.ServerError(str(exc) or type(exc).__name__) from None
    return docker_client


def unreachable_reason() -> str | None:
    """Why no Docker engine can be used, or None if one answers."""
    try:
        client().close()
    except errors.ServerError as exc:
        return str(exc)
    return None


def image_for(settings: Settings, major: int) -> str:
    """``--pglocks-image``, else ``postgres:<version asked for>`` (``postgres:17``)."""
    if settings.image.value:
        return settings.image.value
    spec = settings.pg.value
    return f"postgres:{spec if spec is not None else major}"


def start(
    settings: Settings, major: int, run_id: str, owner_pid: int, run_dir: str
) -> tuple[str, str, Container]:
    """Start a container, wait until it serves TCP; return its conninfo, version and record."""
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"  # no registry to pull the reaper from
    try:  # first: without the extra, installing it is the way out, not starting Docker
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer
    except ImportError as exc:
        raise errors.ServerError(errors.DOCKER_NO_TESTCONTAINERS.format(why=exc)) from None
    try:
        docker_client = client()
    except errors.ServerError as exc:
        raise errors.ServerError(
            errors.DOCKER_UNREACHABLE.format(source=settings.backend.source, why=exc)
        ) from None
    docker_client.close()
    testcontainers_config.ryuk_disabled = True
    image = image_for(settings, major)
    password = secrets.token_hex(16)
    command = ["postgres"] + [
        argument
        for name, value in {**SERVER_SETTINGS, **dict(settings.server_settings.value)}.items()
        if name != "listen_addresses"
        for argument in ("-c", f"{name}={value}")
    ]
    container = (
        DockerContainer(image)
        .with_env("POSTGRES_USER", "postgres")
        .with_env("POSTGRES_PASSWORD", password)
        .with_env("POSTGRES_DB", "postgres")
        .with_command(command)
        .with_kwargs(labels={LABEL_RUN: run_id, "pytest-pglocks.owner": str(owner_pid)})
    )
    host = _publish(container)
    try:
        container.start()
    except Exception as exc:  # docker.errors.ImageNotFound, APIError
        raise errors.ServerError(
            errors.DOCKER_IMAGE_MISSING.format(image=image, why=_short(exc), major=major)
        ) from None
    wrapped = container.get_wrapped_container()
    record = Container(wrapped.id, image, _start_watchdog(owner_pid, wrapped.id, run_dir))
    try:
        dsn = _wait_ready(wrapped, image, host, password)
        version = _version(dsn)
    except errors.ServerError:
        stop(record)
        raise
    return dsn, version, record


def _publish(container: Any) -> str:
    """Publish the server's port on a random host port; return the host to connect to.

    A local engine publishes it on 127.0.0.1 only, so no other machine can reach the server;
    a remote engine (DOCKER_HOST=tcp://...) must publish it on its own interfaces.
    """
    host: str = container.get_docker_client().host()
    if host in LOOPBACK_HOSTS:
        # docker-py's binding (address, None): that address, any free port.
        container.ports[f"{PORT}/tcp"] = ("127.0.0.1", None)
        return "127.0.0.1"
    container.with_exposed_ports(PORT)
    return host


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _host_port(wrapped: Any) -> int | None:
    wrapped.reload()
    bindings = (wrapped.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{PORT}/tcp")
    return int(bindings[0]["HostPort"]) if bindings else None


def _log_tail(wrapped: Any, lines: int = 20) -> str:
    try:
        text: str = wrapped.logs(tail=lines).decode(errors="replace")
    except Exception as exc:
        return f"(no log: {_short(exc)})"
    return text.rstrip() or "(the log is empty)"


def _wait_ready(wrapped: Any, image: str, host: str, password: str) -> str:
    """Poll a TCP connection from the host and ``SELECT 1``: the entrypoint's first, temporary
    server listens on the container's Unix socket only, so it never satisfies this."""
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    pace = threading.Event()  # never set: paces the attempts
    why = "timed out"
    while True:
        port = _host_port(wrapped)
        if wrapped.status != "running":
            why = f"the container is {wrapped.status}"
            break
        if port is not None:
            # The run's conninfo carries no connect_timeout: asyncpg would take it, in
            # pglocks.url, for a server setting.
            dsn = f"host={host} port={port} user=postgres password={password} dbname=postgres"
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                    conn.execute("SELECT 1")
                return dsn
            except psycopg.Error as exc:
                why = f"timed out after {START_TIMEOUT} s; last attempt: {_short(exc)}"
        if time.monotonic() > deadline:
            break
        pace.wait(POLL_INTERVAL)
    raise errors.ServerError(
        errors.DOCKER_START_FAILED.format(
            container=wrapped.short_id, image=image, why=why, log_tail=_log_tail(wrapped)
        )
    )


def _version(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    assert row is not None
    return str(row[0]).split()[0]


def _start_watchdog(owner_pid: int, container_id: str, run_dir: str) -> int:
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "pytest_pglocks.server._watchdog", "docker"]
        + [str(owner_pid), container_id, run_dir],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _watchdogs[watchdog.pid] = watchdog
    return watchdog.pid


def remove(container_id: str) -> None:
    """``docker rm -f``: the container and its anonymous volumes; gone already is fine."""
    import docker

    docker_client = docker.from_env(timeout=30)
    try:
        docker_client.containers.get(container_id).remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    finally:
        docker_client.close()


def stop(container: Container) -> None:
    """Remove the container at the end of the run: ask its watchdog, then make sure."""
    from ._process import wait_exit

    try:
        os.kill(container.watchdog_pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    else:
        wait_exit(container.watchdog_pid, START_TIMEOUT)
    own = _watchdogs.pop(container.watchdog_pid, None)
    if own is not None:
        own.wait()
    remove(container.id)  # no-op when the watchdog did it
