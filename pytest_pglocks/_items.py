"""What a test item (a test using ``pglocks``, or a spec) needs: its settings and the server."""

from __future__ import annotations

import re
from typing import Any

import pytest

from . import _schema, _settings, errors
from ._context import TestSettings
from ._keys import RUN_KEY
from ._run import Run
from ._schema import SchemaSource
from ._terminal import progress
from .errors import ServerError
from .server import Server

MARKER_ARGUMENTS = ("timeout", "deadlock_timeout", "min_version", "max_version")


def _marker_arguments(marker: pytest.Mark) -> dict[str, Any]:
    """The pglocks marker's keyword arguments; anything else is refused by name."""
    unknown = [repr(arg) for arg in marker.args]
    unknown += [f"{name}=" for name in marker.kwargs if name not in MARKER_ARGUMENTS]
    if unknown:
        raise TypeError(errors.BAD_MARKER_ARGUMENT.format(given=", ".join(unknown)))
    return {name: marker.kwargs.get(name) for name in MARKER_ARGUMENTS}


def _version_tuple(version: int | str | float, source: str) -> tuple[int, ...]:
    """``15`` → ``(15,)``, ``"16.4"`` → ``(16, 4)``; a bad value names ``source``."""
    try:
        return tuple(int(part) for part in str(version).split("."))
    except ValueError:
        raise ValueError(errors.BAD_MARKER_VERSION.format(value=version, source=source)) from None


def _server_version_tuple(version: str) -> tuple[int, ...]:
    """The numeric part of a server version: ``"16.4"`` → ``(16, 4)``, ``"18beta1"`` → ``(18,)``."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match[0].split(".")) if match else ()


def settings_for(node: pytest.Item, run: Run, server: Server) -> TestSettings:
    """Settings of this test: its pglocks marker over the run's settings; may skip it."""
    __tracebackhide__ = True
    settings = run.settings
    timeout, deadlock_timeout = settings.timeout.value, settings.deadlock_timeout.value
    timeout_given = settings.timeout.source != "default"
    marker = node.get_closest_marker("pglocks")
    failure: str | None = None
    if marker is not None:
        source = "@pytest.mark.pglocks"
        try:
            args = _marker_arguments(marker)
            if args["timeout"] is not None:
                timeout = _settings.parse_seconds(str(args["timeout"]), f"{source}(timeout=)")
                timeout_given = True
            if args["deadlock_timeout"] is not None:
                deadlock_timeout = _settings.parse_interval(
                    str(args["deadlock_timeout"]), f"{source}(deadlock_timeout=)"
                )
            have = _server_version_tuple(server.version)
            low, high = args["min_version"], args["max_version"]
            if low is not None and have < _version_tuple(low, f"{source}(min_version=)"):
                pytest.skip(f"needs PostgreSQL >= {low}, the server is {server.version}")
            if high is not None:
                wanted = _version_tuple(high, f"{source}(max_version=)")
                if have[: len(wanted)] > wanted:
                    pytest.skip(f"needs PostgreSQL <= {high}, the server is {server.version}")
        except (TypeError, ValueError, pytest.UsageError) as exc:
            failure = f"{source}: {exc}"
    if failure is not None:  # raised outside the except: no "During handling ..." in the report
        pytest.fail(failure, pytrace=False)
    return TestSettings(
        timeout=timeout,
        deadlock_timeout=deadlock_timeout,
        manage_deadlock_timeout=server.superuser,
        explore_limit=settings.explore_limit.value,
        timeout_given=timeout_given,
    )


def server_for(config: pytest.Config) -> Server:
    """The run's server; fails the test with the server's error message if there is none."""
    __tracebackhide__ = True
    try:
        return config.stash[RUN_KEY].server(progress(config))
    except ServerError as exc:
        failure = str(exc)
    pytest.fail(failure, pytrace=False)  # outside the except: the message once, no chain


def template_for(
    config: pytest.Config, run: Run, server: Server, sources: list[SchemaSource]
) -> str:
    """The template of the project's schema; fails the test with the build's error message."""
    __tracebackhide__ = True
    root = config.inipath.parent if config.inipath else config.rootpath
    try:
        return run.template(server, _schema.parse(sources, root), config)
    except _schema.SchemaError as exc:
        failure = str(exc)
    pytest.fail(failure, pytrace=False)
