"""pytest hooks of pytest-pglocks: options, fixtures, header and summary."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest

from . import _context, _report, _settings, errors
from ._context import TestSettings
from ._run import Run, new_run_id
from .assertions import deadlock_failure
from .errors import ServerError
from .handle import Pglocks
from .server import Server

RUN_KEY = pytest.StashKey[Run]()
CALL_FAILED_KEY = pytest.StashKey[bool]()
HANDLE_KEY = pytest.StashKey[Pglocks]()

MARKERS = (
    "no_deadlock: fail the test if any of its pglocks sessions got a deadlock error (40P01), "
    "even one the test or the code under test caught.",
    "pglocks(*, timeout=None, deadlock_timeout=None, min_version=None, max_version=None): "
    "per-test pglocks settings; timeout in seconds, deadlock_timeout as '10ms'; "
    "min_version/max_version (e.g. 15 or '16.4') skip the test on other servers.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = _settings.Settings.from_config(config)
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and "pglocks_run_id" in workerinput:
        run = Run(
            settings,
            run_id=workerinput["pglocks_run_id"],
            owner_pid=workerinput["pglocks_owner_pid"],
            worker_id=workerinput["workerid"],
        )
    else:
        run = Run(settings, run_id=new_run_id(), owner_pid=os.getpid(), worker_id=None)
    config.stash[RUN_KEY] = run
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "pglocks-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.close()


class XdistHooks:
    """Hooks that exist only when pytest-xdist is loaded."""

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        run = node.config.stash[RUN_KEY]
        node.workerinput["pglocks_run_id"] = run.run_id
        node.workerinput["pglocks_owner_pid"] = run.owner_pid


def pytest_report_header(config: pytest.Config) -> str:
    return "pglocks: " + config.stash[RUN_KEY].settings.describe()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash[RUN_KEY]
    if not run.is_owner:
        return
    server = run.recorded_server()
    if server is not None:
        terminalreporter.write_line(
            f"pglocks: {server.describe()}, ready in {server.start_seconds:.2f} s"
        )
    for kept in run.kept():
        terminalreporter.write_line(
            f"pglocks: kept the database of failing test {kept['nodeid']}; "
            f"connect with: psql '{kept['dsn']}'"
            + (f"; stop the server with: {kept['stop']}" if "stop" in kept else "")
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield
    handle = item.stash.get(HANDLE_KEY, None)
    if handle is not None and item.get_closest_marker("no_deadlock"):
        failure = deadlock_failure(handle._context)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[CALL_FAILED_KEY] = True
        handle = item.stash.get(HANDLE_KEY, None)
        if handle is not None:
            report.sections.append(("pglocks", _failure_section(handle, item.config)))
    return report


def _failure_section(handle: Pglocks, config: pytest.Config) -> str:
    context = handle._context
    verbose = config.get_verbosity() > 0
    try:
        graph = context.graph() if context.sessions else None
    except Exception as exc:  # the server may be what failed; the timeline still helps
        return _report.section(context.timeline.events(), None, verbose=verbose) + (
            f"\n(could not read the locks: {exc})"
        )
    return _report.section(context.timeline.events(), graph, verbose=verbose)


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


def _test_settings(request: pytest.FixtureRequest, run: Run, server: Server) -> TestSettings:
    """Settings of this test: its pglocks marker over the run's settings; may skip it."""
    __tracebackhide__ = True
    settings = run.settings
    timeout, deadlock_timeout = settings.timeout.value, settings.deadlock_timeout.value
    marker = request.node.get_closest_marker("pglocks")
    failure: str | None = None
    if marker is not None:
        source = "@pytest.mark.pglocks"
        try:
            args = _marker_arguments(marker)
            if args["timeout"] is not None:
                timeout = _settings.parse_seconds(str(args["timeout"]), f"{source}(timeout=)")
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
    )


def _progress(config: pytest.Config) -> Callable[[str], None]:
    """Write one line to the terminal now, even from inside a captured fixture."""

    def write(line: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    return write


@pytest.fixture(scope="session")
def pglocks_server(request: pytest.FixtureRequest) -> Server:
    """The PostgreSQL server of this run: started on first use, shared by xdist workers."""
    __tracebackhide__ = True
    run = request.config.stash[RUN_KEY]
    try:
        return run.server(_progress(request.config))
    except ServerError as exc:
        failure = str(exc)
    pytest.fail(failure, pytrace=False)  # outside the except: the message once, no chain


@pytest.fixture
def pglocks(request: pytest.FixtureRequest, pglocks_server: Server) -> Iterator[Pglocks]:
    """A fresh database for this test, cloned from the run's template and dropped afterwards."""
    run = request.config.stash[RUN_KEY]
    settings = _test_settings(request, run, pglocks_server)
    databases = run.databases(pglocks_server)
    dbname = databases.create()
    handle = Pglocks(pglocks_server, dbname, settings, _ispytest=True)
    request.node.stash[HANDLE_KEY] = handle
    _context.set_current(handle._context)
    try:
        yield handle
    finally:
        _context.set_current(None)
        handle._close()
        if run.settings.keep.value and request.node.stash.get(CALL_FAILED_KEY, False):
            run.keep(pglocks_server, dbname, request.node.nodeid)
        else:
            databases.drop(dbname)
