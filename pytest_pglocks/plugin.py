"""pytest hooks of pytest-pglocks: options, fixtures, header and summary."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import _context, _report, _settings
from ._context import TestContext
from ._items import server_for, settings_for, template_for
from ._keys import CALL_FAILED_KEY, CONTEXT_KEY, HANDLE_KEY, RUN_KEY, WROTE_PROPERTY
from ._run import Run, new_run_id
from ._schema import SchemaSource
from .assertions import deadlock_failure
from .handle import Pglocks
from .isolation._collect import SpecFile
from .server import Server

MARKERS = (
    "no_deadlock: fail the test if any of its pglocks sessions got a deadlock error (40P01), "
    "even one the test or the code under test caught.",
    "pglocks(*, timeout=None, deadlock_timeout=None, min_version=None, max_version=None): "
    "per-test pglocks settings; timeout in seconds, deadlock_timeout as '10ms'; "
    "min_version/max_version (e.g. 15 or '16.4') skip the test on other servers.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)
    parser.addini(
        "pglocks_specs",
        type="paths",
        help="Folders whose isolation-tester specs (NAME.spec) are collected as tests.",
    )
    parser.addini(
        "pglocks_schema",
        type="linelist",
        help="The project's schema, built once per run into the template every test database "
        "clones: SQL files or folders of them, python:module:function, "
        "alembic:path/to/alembic.ini, django (one per line, relative to the ini file).",
    )
    parser.getgroup("pglocks").addoption(
        "--pglocks-update-expected",
        action="store_true",
        default=False,
        help="Write the expected output (NAME.out) of specs that have none, from this run.",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """``NAME.spec`` under a ``pglocks_specs`` folder, or named on the command line."""
    if file_path.suffix != ".spec":
        return None
    folders: list[Path] = parent.config.getini("pglocks_specs")
    if parent.session.isinitpath(file_path) or any(
        file_path.is_relative_to(folder) for folder in folders
    ):
        return SpecFile.from_parent(parent, path=file_path)
    return None


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
    for report in terminalreporter.stats.get("passed", []):
        for name, value in report.user_properties:
            if name == WROTE_PROPERTY:
                terminalreporter.write_line(f"pglocks: wrote the expected output {value}")
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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if "pglocks_django" in getattr(item, "fixturenames", ()):  # before pytest-django's fixtures
        from .contrib.django import refuse_django_db_transaction

        refuse_django_db_transaction(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    result = yield
    context = item.stash.get(CONTEXT_KEY, None)
    if context is not None and item.get_closest_marker("no_deadlock"):
        failure = deadlock_failure(context)
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
            section = _failure_section(handle._context, item.config)
            held = [gate.report() for gate in handle._gates]
            if any(held):
                section += "\n\ngates:\n" + "\n".join(f"  {line}" for line in held if line)
            report.sections.append(("pglocks", section))
    return report


def _failure_section(context: TestContext, config: pytest.Config) -> str:
    verbose = config.get_verbosity() > 0
    try:
        graph = context.graph() if context.sessions else None
    except Exception as exc:  # the server may be what failed; the timeline still helps
        return _report.section(context.timeline.events(), None, verbose=verbose) + (
            f"\n(could not read the locks: {exc})"
        )
    return _report.section(context.timeline.events(), graph, verbose=verbose)


@pytest.fixture(scope="session")
def pglocks_server(request: pytest.FixtureRequest) -> Server:
    """The PostgreSQL server of this run: started on first use, shared by xdist workers."""
    __tracebackhide__ = True
    return server_for(request.config)


@pytest.fixture(scope="session")
def pglocks_schema(request: pytest.FixtureRequest) -> list[SchemaSource]:
    """The project's schema, built once per run into the template that every test database
    clones: the ``pglocks_schema`` ini lines; override it to give paths or callables."""
    return list(request.config.getini("pglocks_schema"))


@pytest.fixture
def pglocks(
    request: pytest.FixtureRequest, pglocks_server: Server, pglocks_schema: list[SchemaSource]
) -> Iterator[Pglocks]:
    """A fresh database for this test, cloned from the run's template and dropped afterwards."""
    __tracebackhide__ = True
    run = request.config.stash[RUN_KEY]
    settings = settings_for(request.node, run, pglocks_server)
    template = template_for(request.config, run, pglocks_server, pglocks_schema)
    databases = run.databases(pglocks_server)
    dbname = databases.create(template)
    handle = Pglocks(pglocks_server, dbname, settings, _ispytest=True)
    handle._no_deadlock = request.node.get_closest_marker("no_deadlock") is not None
    request.node.stash[HANDLE_KEY] = handle
    request.node.stash[CONTEXT_KEY] = handle._context
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


@pytest.fixture
def pglocks_django(request: pytest.FixtureRequest, pglocks: Pglocks) -> Iterator[Pglocks]:
    """``pglocks``, with every Django connection of the test (any thread, ``sync_to_async``) on
    its database, each named after its thread for ``observe()``."""
    __tracebackhide__ = True
    from .contrib.django import bind

    with bind(pglocks, request):
        yield pglocks
