"""--pglocks-reuse: a warm server kept between runs, stopped on command or when idle."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fix_inner import Inner, processes_mentioning

from pytest_pglocks._settings import Settings
from pytest_pglocks.plugin import REUSE_NOTE
from pytest_pglocks.server import _reuse
from pytest_pglocks.server._process import wait_exit

TWO_TESTS = """
def test_one(facts):
    pass

def test_two(facts):
    pass
"""
KEPT = "pglocks: PostgreSQL * ready in * s" + REUSE_NOTE


def kept_dir(inner: Inner) -> Path:
    return inner.tmpdir / f"pglocks-reuse-{os.geteuid()}"


def test_the_next_run_gets_the_kept_server_and_the_stop_command_ends_it(inner: Inner) -> None:
    inner.pytester.makepyfile(test_kept=TWO_TESTS)
    first = inner.run("--pglocks-reuse")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines([KEPT])
    server = inner.records()["test_one"]
    process = server["process"]
    assert not wait_exit(process["postmaster_pid"], 0)  # still running after the run

    # Its connection details are the owner's alone, and never printed.
    (record,) = kept_dir(inner).glob("*.json")
    assert stat.S_IMODE(kept_dir(inner).stat().st_mode) == 0o700
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert server["server_dsn"] not in first.stdout.str()

    second = inner.run("--pglocks-reuse", "-n", "2")
    second.assert_outcomes(passed=2)
    again = inner.records()
    assert {record["process"]["postmaster_pid"] for record in again.values()} == {
        process["postmaster_pid"]
    }
    assert again["test_one"]["dbname"] != server["dbname"]  # a new run: its own databases
    assert not any(name.startswith("pglocks-run-") for name in inner.leftovers())

    throwaway = inner.run()  # the default is unchanged: a server of the run's own
    throwaway.assert_outcomes(passed=2)
    own = inner.records()["test_one"]["process"]
    assert own["postmaster_pid"] != process["postmaster_pid"]
    assert wait_exit(own["postmaster_pid"], 0)

    stop = inner.run("--pglocks-reuse-stop")
    assert stop.ret == 0
    stop.stdout.fnmatch_lines(["pglocks: stopped the kept server PostgreSQL *"])
    assert wait_exit(process["postmaster_pid"], 60)
    assert wait_exit(process["watchdog_pid"], 60)
    assert not Path(process["root"]).exists()
    assert processes_mentioning(str(inner.public)) == []
    assert inner.leftovers() == []
    inner.run("--pglocks-reuse-stop").stdout.fnmatch_lines(["pglocks: no kept server to stop"])


def test_a_kept_server_stops_once_idle_for_the_timeout(inner: Inner) -> None:
    inner.pytester.makepyfile(test_kept=TWO_TESTS)
    result = inner.run("--pglocks-reuse", "--pglocks-reuse-idle=0.5")
    result.assert_outcomes(passed=2)
    process = inner.records()["test_one"]["process"]
    # Its watchdog stops it by itself: waited on the kernel, the bound only guards a hang.
    assert wait_exit(process["postmaster_pid"], 60)
    assert wait_exit(process["watchdog_pid"], 60)
    assert not Path(process["root"]).exists()
    assert inner.leftovers() == []


def test_the_key_tells_majors_and_binaries_apart() -> None:
    def key(**values: str) -> str:
        return _reuse.key_of(Settings.resolve(lambda option: values.get(option.name)))

    assert key(pg="16") == key(pg="16")
    assert key(pg="16") != key(pg="17")
    assert key(pg="16") != key(pg="16", bindir="/opt/pg16/bin")
    assert key(pg="16") == key(pg="16", timeout="3")  # a test setting: same server
