"""pytest hooks of pytest-pglocks: options, fixtures, header and summary.

Only what the hooks of every run need is imported here; sessions, servers, databases, specs
and reports are imported by the fixtures and hooks that use them, so that a run which never
asks for ``pglocks`` pays almost nothing for the plugin.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import _settings
from ._keys import (
    CALL_FAILED_KEY,
    CONTEXT_KEY,
    HANDLE_KEY,
    OUTAGE_KEY,
    PICTURE_PROPERTY,
    RUN_KEY,
    WROTE_PROPERTY,
)
from ._run import Run, new_run_id

if TYPE_CHECKING:
    from ._context import TestContext
    from ._schema import SchemaSource
    from .handle import Pglocks
    from .monitor import WaitGraph
    from .server import Server

MARKERS = (
    "no_deadlock: fail the test if any of its pglocks sessions got a deadlock error (40P01), "
    "even one the test or the code under test caught.",
    "pglocks(*, timeout=None, deadlock_timeout=None, min_version=None, max_version=None): "
    "per-test pglocks settings; timeout in seconds, deadlock_timeout as '10ms'; "
    "min_version/max_version (e.g. 15 or '16.4') skip the test on other servers.",
)

REUSE_NOTE = "; kept warm for the next run (stop it with: pytest --pglocks-reuse-stop)"


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
    parser.getgroup("pglocks").addoption(
        "--pglocks-reuse-stop",
        action="store_true",
        default=False,
        help="Stop the servers kept warm by --pglocks-reuse, then exit without running tests.",
    )


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--pglocks-reuse-stop``: stop the kept servers instead of running tests."""
    if not config.getoption("pglocks_reuse_stop"):
        return None
    from .server import _reuse

    stopped = _reuse.stop_all()
    for description in stopped:
        print(f"pglocks: stopped the kept server {description}")
    if not stopped:
        print("pglocks: no kept server to stop")
    return 0


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """``NAME.spec`` under a ``pglocks_specs`` folder, or named on the command line."""
    if file_path.suffix != ".spec":
        return None
    from .isolation._collect import SpecFile

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
    if config.getoption("xmlpath", None) and workerinput is None:
        from .report._outputs import JunitOutput

        config.pluginmanager.register(JunitOutput(config), "pglocks-junitxml")


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
    if not run.is_owner or config.get_verbosity() < -1:  # -qq: errors only
        return
    pictures = 0
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in report.user_properties:
                if name == WROTE_PROPERTY:
                    terminalreporter.write_line(f"pglocks: wrote the expected output {value}")
                pictures += name == PICTURE_PROPERTY
    if pictures:
        terminalreporter.write_line(
            f"pglocks: {pictures} picture{'s' * (pictures != 1)} of sessions and waits in "
            f"{run.settings.report.value}"
        )
    outage = run.outage_summary()
    if outage is not None:
        terminalreporter.write_line(outage)
    server = run.recorded_server()
    if server is not None:
        terminalreporter.write_line(
            f"pglocks: {server.describe()}, ready in {server.start_seconds:.2f} s"
            + (REUSE_NOTE if server.process is not None and server.process.lease else "")
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
        from .assertions import deadlock_failure

        failure = deadlock_failure(context)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    if report.when != "call":
        return report
    if report.failed:
        item.stash[CALL_FAILED_KEY] = True
    handle = item.stash.get(HANDLE_KEY, None)
    if handle is None or not _used(handle):
        return report
    outage = _outage_of(item, handle.server) if report.failed else None
    if outage is not None:  # the test's own error is only a symptom of it
        report.longrepr = outage
        return report
    settings = item.config.stash[RUN_KEY].settings
    directory = settings.report.value
    wants_picture = directory is not None and (report.failed or settings.report_passed.value)
    wants_html = bool(item.config.getoption("htmlpath", None)) and (report.failed or wants_picture)
    if not (report.failed or wants_picture or wants_html):
        return report
    graph, unreadable = _final_graph(handle._context)
    if report.failed:
        from . import _report

        section = _report.section(
            handle._context.timeline.events(), graph, verbose=item.config.get_verbosity() > 0
        )
        if unreadable:
            section += f"\n(could not read the locks: {unreadable})"
        held = [gate.report() for gate in handle._gates]
        if any(held):
            section += "\n\ngates:\n" + "\n".join(f"  {line}" for line in held if line)
        _attach_section(report, section)
    if wants_picture or wants_html:
        from .report import _outputs

        try:
            svg = _outputs.picture(
                handle._context, graph, title=item.nodeid, verdict=_verdict(report)
            )
            if wants_picture and directory is not None:
                path = _outputs.save(directory, item.nodeid, svg)
                report.user_properties.append((PICTURE_PROPERTY, str(path)))
        except Exception as exc:  # a picture must never hide the test's own outcome
            report.sections.append(("pglocks", f"(could not draw the picture: {exc})"))
            return report
        if wants_html:
            _outputs.attach_html(report, svg)
    return report


def _outage_of(item: pytest.Item, server: Server) -> str | None:
    """The outage message once per test: the call's report and the teardown share it."""
    if OUTAGE_KEY not in item.stash:
        item.stash[OUTAGE_KEY] = item.config.stash[RUN_KEY].outage(server, item.nodeid)
    return item.stash[OUTAGE_KEY]


def _used(handle: Pglocks) -> bool:
    """Whether the test drove anything a pglocks section can show."""
    context = handle._context
    return bool(context.sessions or context.observed or handle._gates or len(context.timeline))


def _final_graph(context: TestContext) -> tuple[WaitGraph | None, str]:
    """The wait-for graph as the test ended, or why it could not be read."""
    try:
        return (context.graph() if context.sessions else None), ""
    except Exception as exc:  # the server may be what failed; the timeline still helps
        return None, str(exc)


def _attach_section(report: pytest.TestReport, section: str) -> None:
    """The report goes with the failure itself, so that ``--show-capture=no`` and
    ``--show-capture=stdout`` cannot hide it (they filter ``report.sections``)."""
    longrepr: Any = report.longrepr
    if hasattr(longrepr, "addsection"):
        longrepr.addsection("pglocks", section)
    else:
        report.sections.append(("pglocks", section))


def _verdict(report: pytest.TestReport) -> str:
    """The failure's first line, or the outcome."""
    message = getattr(getattr(report.longrepr, "reprcrash", None), "message", "")
    return str(message).splitlines()[0] if message else report.outcome


@pytest.fixture(scope="session")
def pglocks_server(request: pytest.FixtureRequest) -> Server:
    """The PostgreSQL server of this run: started on first use, shared by xdist workers."""
    __tracebackhide__ = True
    from ._items import server_for

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
    from . import _context
    from ._items import settings_for, template_for
    from .handle import Pglocks

    run = request.config.stash[RUN_KEY]
    settings = settings_for(request.node, run, pglocks_server)
    template = template_for(request.config, run, pglocks_server, pglocks_schema)
    databases = run.databases(pglocks_server)
    with _failing_on_outage(request.node, pglocks_server, run_teardown=False):
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
        with _failing_on_outage(request.node, pglocks_server, run_teardown=True):
            handle._close()
            if run.settings.keep.value and request.node.stash.get(CALL_FAILED_KEY, False):
                run.keep(pglocks_server, dbname, request.node.nodeid)
            else:
                handle._drop_roles()  # in the database, which held what they owned
                databases.drop(dbname)


@contextlib.contextmanager
def _failing_on_outage(item: pytest.Item, server: Server, *, run_teardown: bool) -> Iterator[None]:
    """A server error in the fixture becomes the outage message, if the server is gone; at
    teardown, nothing more when the test's failure already said so."""
    __tracebackhide__ = True
    import psycopg

    try:
        yield
    except psycopg.OperationalError:
        outage = _outage_of(item, server)
        if outage is None:
            raise
        failure = outage
    else:
        return
    if not (run_teardown and item.stash.get(CALL_FAILED_KEY, False)):
        raise pytest.fail.Exception(failure, pytrace=False) from None  # the message alone


@pytest.fixture
def pglocks_django(request: pytest.FixtureRequest, pglocks: Pglocks) -> Iterator[Pglocks]:
    """``pglocks``, with every Django connection of the test (any thread, ``sync_to_async``) on
    its database, each named after its thread for ``observe()``."""
    __tracebackhide__ = True
    from .contrib.django import bind

    with bind(pglocks, request):
        yield pglocks
