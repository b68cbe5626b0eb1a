"""pytest hooks of pytest-pglocks: options, fixtures, header and summary."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest

from . import _settings
from ._run import Run, new_run_id
from .errors import ServerError
from .handle import Pglocks
from .server import Server

RUN_KEY = pytest.StashKey[Run]()
CALL_FAILED_KEY = pytest.StashKey[bool]()


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
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[CALL_FAILED_KEY] = True
    return report


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
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pglocks(request: pytest.FixtureRequest, pglocks_server: Server) -> Iterator[Pglocks]:
    """A fresh database for this test, cloned from the run's template and dropped afterwards."""
    run = request.config.stash[RUN_KEY]
    databases = run.databases(pglocks_server)
    dbname = databases.create()
    handle = Pglocks(pglocks_server, dbname, _ispytest=True)
    try:
        yield handle
    finally:
        handle._close()
        if run.settings.keep.value and request.node.stash.get(CALL_FAILED_KEY, False):
            run.keep(pglocks_server, dbname, request.node.nodeid)
        else:
            databases.drop(dbname)
