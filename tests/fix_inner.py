"""Running pytest with pglocks inside a test, against real servers, and checking what it leaves.

The ``inner`` fixture prepares a pytester project whose runs

* use the same PostgreSQL as the outer run (its version, bindir, cache and offline settings,
  passed through the environment so an inner command line can override them);
* put every temporary file of the plugin into a private ``TMPDIR`` (``inner.tmpdir``), so that
  leftovers of exactly this run can be listed, and no other run is disturbed;
* record what their tests saw (database, port, data directory, server processes) through the
  ``facts`` fixture of the inner conftest; ``inner.records()`` reads them back.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_pglocks import _settings
from pytest_pglocks.server._process import wait_exit

INNER_CONFTEST = '''
import dataclasses, json, os, pathlib, re, tempfile
import pytest

RECORDS = pathlib.Path({records!r})


@pytest.fixture
def facts(request, pglocks, pglocks_server):
    """What this test saw of its database and server; saved for the outer test afterwards."""
    dbname, port, datadir = pglocks.execute(
        "SELECT current_database(), current_setting('port'), current_setting('data_directory')"
    )[0]
    process = pglocks_server.process
    data = {{
        "nodeid": request.node.nodeid,
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "dbname": dbname,
        "dsn": pglocks.dsn,
        "port": int(port),
        "data_directory": datadir,
        "server_dsn": pglocks_server.dsn,
        "backend": pglocks_server.backend,
        "version": pglocks_server.version,
        "process": dataclasses.asdict(process) if process else None,
        "tmp_entries": sorted(
            name for name in os.listdir(tempfile.gettempdir()) if name.startswith("pglocks-")
        ),
    }}
    yield data
    name = re.sub(r"\\W+", "_", request.node.name)
    (RECORDS / f"{{name}}.json").write_text(json.dumps(data))
'''


# The classic two-row deadlock as an inner test module's function: a report shows its timeline.
DEADLOCK_TEST = """@pytest.mark.no_deadlock
def test_deadlock(pglocks):
    pglocks.execute("CREATE TABLE t (k int, v int); INSERT INTO t VALUES (1, 0), (2, 0)")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.begin()
    s2.execute("UPDATE t SET v = 1 WHERE k = 2")
    waiting = s1.submit("UPDATE t SET v = 1 WHERE k = 2")
    assert_blocks(waiting, on=s2)
    with expect_deadlock(victim=s2):
        s2.execute("UPDATE t SET v = 1 WHERE k = 1")
    waiting.result()
"""


class Inner:
    """A pytester project for runs of pglocks in a subprocess; see the module docstring."""

    def __init__(self, pytester: pytest.Pytester, public: Path) -> None:
        self.pytester = pytester
        self.public = public
        self.tmpdir = public / "tmp"
        self.tmpdir.mkdir(mode=0o755)
        self.tmpdir.chmod(0o755)  # the server account must reach its data directory in here
        self.records_dir = pytester.path / "records"
        self.records_dir.mkdir()
        pytester.makeconftest(INNER_CONFTEST.format(records=str(self.records_dir)))

    def run(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        """``pytest ARGS`` in a subprocess; the timeout only guards against a hang."""
        return self.pytester.runpytest_subprocess(*args, timeout=timeout)

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """``pytest ARGS`` started in the background; its output goes to ``self.output``."""
        self.output = self.pytester.path / "popen-output.txt"
        with self.output.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "pytest", f"--basetemp={self.pytester.path / 'popen'}"]
                + list(args),
                cwd=self.pytester.path,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                **kwargs,
            )

    def records(self) -> dict[str, dict[str, Any]]:
        """The ``facts`` each inner test saved, by test name."""
        return {
            path.stem: json.loads(path.read_text())
            for path in sorted(self.records_dir.glob("*.json"))
        }

    def leftovers(self) -> list[str]:
        """What the inner runs left in their TMPDIR."""
        return sorted(os.listdir(self.tmpdir))

    def assert_nothing_left(self, records: dict[str, dict[str, Any]]) -> None:
        """No server process, watchdog, data directory or run directory outlived the run."""
        __tracebackhide__ = True
        for record in records.values():
            process = record["process"]
            if process is None:
                continue
            assert wait_exit(process["postmaster_pid"], 0), f"postmaster still runs: {process}"
            assert wait_exit(process["watchdog_pid"], 0), f"watchdog still runs: {process}"
            assert not Path(process["root"]).exists(), f"server directory left: {process}"
        assert processes_mentioning(str(self.public)) == []
        assert self.leftovers() == []

    def stop_leftovers(self) -> None:
        """Safety net after a failed test: end the processes our runs started and left."""
        pids = [pid for pid, _ in processes_mentioning(str(self.public))]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for pid in pids:
            wait_exit(pid, 30)


def read_line(fd: int, timeout: float) -> bytes:
    """One line from a pipe; b"" if the writer closed it first. Fails after ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            pytest.fail(f"no line from the inner run within {timeout} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            return b""
        data += chunk
    return data


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line contains ``text``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append((int(entry.name), cmdline.strip()))
    return found


@pytest.fixture(scope="session")
def outer_settings(pytestconfig: pytest.Config) -> _settings.Settings:
    """The pglocks settings of this (outer) run.

    Session-scoped so that it is resolved before pytester points HOME elsewhere (the default
    cache directory of a non-root user is under HOME).
    """
    return _settings.Settings.from_config(pytestconfig)


@pytest.fixture
def inner(
    outer_settings: _settings.Settings,
    pytester: pytest.Pytester,
    public_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Inner]:
    """A pytester project whose subprocess runs use the outer run's PostgreSQL (see module)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("checks leftover processes through /proc")
    for option in _settings.OPTIONS:
        monkeypatch.delenv(option.env, raising=False)
    for name in list(os.environ):
        if name.startswith("PYTEST_XDIST_"):  # set by xdist when the outer run uses -n
            monkeypatch.delenv(name)
    project = Inner(pytester, public_dir)
    monkeypatch.setenv("TMPDIR", str(project.tmpdir))
    outer = outer_settings
    monkeypatch.setenv("PGLOCKS_CACHE_DIR", str(outer.cache_dir.value))
    if outer.pg.value is not None and not outer.dsn.value:
        monkeypatch.setenv("PGLOCKS_PG", str(outer.pg.value))
    if outer.bindir.value is not None:
        monkeypatch.setenv("PGLOCKS_BINDIR", str(outer.bindir.value))
    if outer.offline.value:
        monkeypatch.setenv("PGLOCKS_OFFLINE", "1")
    yield project
    project.stop_leftovers()


@pytest.fixture
def clean_pglocks_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PGLOCKS_* setting leaks from the outer environment into what the test parses."""
    for option in _settings.OPTIONS:
        monkeypatch.delenv(option.env, raising=False)
