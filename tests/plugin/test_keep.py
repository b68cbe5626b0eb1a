"""--pglocks-keep: a failing test's database and its server outlive the run, for a look by hand."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import psycopg
from fix_inner import Inner, processes_mentioning

from pytest_pglocks.server._process import wait_exit

KEPT = re.compile(
    r"^pglocks: kept the database of failing test (?P<nodeid>\S+); "
    r"connect with: psql '(?P<dsn>[^']+)'; stop the server with: kill -INT (?P<pid>\d+)$",
    re.MULTILINE,
)


def test_a_failing_tests_database_is_kept_until_the_server_is_stopped_by_hand(
    inner: Inner,
) -> None:
    inner.pytester.makepyfile(
        test_keep="""
        def test_passes(facts):
            pass

        def test_fails(facts, pglocks):
            pglocks.execute("CREATE TABLE evidence (a int); INSERT INTO evidence VALUES (7)")
            raise AssertionError("look at the evidence")
        """
    )
    result = inner.run("--pglocks-keep")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["pglocks: kept the database of failing test test_keep.py::test_fails; connect with: *"]
    )
    kept = KEPT.search(result.stdout.str())
    assert kept, result.stdout.str()
    records = inner.records()
    failed, passed = records["test_fails"], records["test_passes"]
    postmaster = int(kept["pid"])
    assert postmaster == failed["process"]["postmaster_pid"]

    summary = [line for line in result.outlines if line.startswith("pglocks:")]
    assert summary
    assert not [line for line in summary if "password" in line]
    assert f"host={failed['process']['root']} " in kept["dsn"]  # the private socket: no password
    with psycopg.connect(kept["dsn"]) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (failed["dbname"],)
        assert conn.execute("SELECT a FROM evidence").fetchall() == [(7,)]
        names = {name for (name,) in conn.execute("SELECT datname FROM pg_database")}
    assert failed["dbname"] in names
    assert passed["dbname"] not in names  # only the failing test's database is kept

    os.kill(postmaster, signal.SIGINT)  # what the summary line says to do
    assert wait_exit(postmaster, 60)
    assert wait_exit(failed["process"]["watchdog_pid"], 60)  # it cleans up after the server
    assert not Path(failed["process"]["root"]).exists()
    assert processes_mentioning(str(inner.public)) == []
    assert inner.leftovers() == []
