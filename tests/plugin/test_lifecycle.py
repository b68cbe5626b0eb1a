"""A run's server and databases: one fresh database per test, one server per run, no leftovers."""

from __future__ import annotations

import fnmatch
import json
import os
import signal
from pathlib import Path

import pytest
from fix_inner import Inner, processes_mentioning, read_line

from pytest_pglocks._database import AHEAD
from pytest_pglocks.server._process import wait_exit

SUMMARY = "pglocks: PostgreSQL * (local, *), ready in * s"


def test_each_test_gets_its_own_database_dropped_after_it_and_the_run_leaves_nothing(
    inner: Inner,
) -> None:
    inner.pytester.makepyfile(
        test_isolation="""
        import psycopg

        def test_first_creates_a_table(facts, pglocks):
            pglocks.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2)")
            with psycopg.connect(pglocks.dsn) as conn:
                facts["through_dsn"] = conn.execute(
                    "SELECT current_database(), count(*) FROM t"
                ).fetchone()

        def test_second_does_not_see_it(facts, pglocks):
            facts["t_absent"] = pglocks.execute("SELECT to_regclass('t') IS NULL")[0][0]
            pglocks.execute("CREATE TABLE t (b text)")

        def test_third_fails(facts, pglocks):
            pglocks.execute("CREATE TABLE failing (a int)")
            raise AssertionError("failing on purpose")

        def test_last_finds_only_its_own_database(request, facts, pglocks, pglocks_server):
            from pytest_pglocks._keys import RUN_KEY

            request.config.stash[RUN_KEY].databases(pglocks_server).settle()
            facts["databases"] = [
                name for (name,) in pglocks.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'pglocks%' ORDER BY 1"
                )
            ]
            facts["template"] = pglocks_server.template
        """
    )
    result = inner.run()
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: failing on purpose", SUMMARY])
    records = inner.records()
    first, second, third, last = (
        records[name]
        for name in (
            "test_first_creates_a_table",
            "test_second_does_not_see_it",
            "test_third_fails",
            "test_last_finds_only_its_own_database",
        )
    )
    assert first["through_dsn"] == [first["dbname"], 2]
    assert second["t_absent"] is True
    assert len({record["dbname"] for record in records.values()}) == 4
    # Once the pool settled: the earlier tests' databases are dropped, and besides the template
    # and this test's own database only the clones made ahead for the next tests exist.
    assert {last["template"], last["dbname"]} <= set(last["databases"])
    assert not {first["dbname"], second["dbname"], third["dbname"]} & set(last["databases"])
    assert len(last["databases"]) == 2 + AHEAD
    assert len({json.dumps(record["process"]) for record in records.values()}) == 1
    assert third["process"]["root"] == str(Path(third["data_directory"]).parent)
    inner.assert_nothing_left(records)


def test_xdist_workers_share_one_server_and_leave_nothing(inner: Inner) -> None:
    # Fewer tests than twice the workers: xdist deals them out round-robin, so both get some.
    inner.pytester.makepyfile(
        test_workers="""
        def test_one(facts):
            pass

        def test_two(facts):
            pass

        def test_three_fails(facts):
            raise AssertionError("failing on a worker")
        """
    )
    result = inner.run("-n", "2")
    result.assert_outcomes(passed=2, failed=1)
    assert sum(1 for line in result.outlines if fnmatch.fnmatchcase(line, SUMMARY)) == 1
    records = inner.records()
    assert {record["worker"] for record in records.values()} == {"gw0", "gw1"}
    servers = {
        (record["port"], record["data_directory"], json.dumps(record["process"]))
        for record in records.values()
    }
    assert len(servers) == 1, servers
    root = Path(next(iter(records.values()))["process"]["root"]).name
    for record in records.values():
        assert f"_{record['worker']}_" in record["dbname"]
        # Whenever a test looked, the run had one server directory and one run directory.
        others = [entry for entry in record["tmp_entries"] if entry != root]
        assert root in record["tmp_entries"]
        assert len(others) == 1
        assert others[0].startswith("pglocks-run-")
    inner.assert_nothing_left(records)


def test_a_killed_run_still_stops_its_server(inner: Inner, monkeypatch: pytest.MonkeyPatch) -> None:
    inner.pytester.makepyfile(
        test_killed="""
        import dataclasses, json, os

        def test_waits_until_killed(pglocks, pglocks_server):
            info = os.environ["PGLT_INFO_FD"]
            record = dataclasses.asdict(pglocks_server.process)
            os.write(int(info), json.dumps(record).encode() + b"\\n")
            os.close(int(info))
            os.read(int(os.environ["PGLT_BLOCK_FD"]), 1)  # until the outer test lets go
        """
    )
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    monkeypatch.setenv("PGLT_INFO_FD", str(info_w))
    monkeypatch.setenv("PGLT_BLOCK_FD", str(block_r))
    proc = inner.popen(pass_fds=(info_w, block_r))
    os.close(info_w)
    os.close(block_r)
    try:
        line = read_line(info_r, timeout=120)
        if not line:
            proc.wait()
            pytest.fail("the inner run ended early:\n" + inner.output.read_text())
        process = json.loads(line)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        os.close(info_r)
        os.close(block_w)  # lets an inner test that is still waiting finish
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert wait_exit(process["postmaster_pid"], 60), "the watchdog did not stop the server"
    assert wait_exit(process["watchdog_pid"], 60)
    assert not Path(process["root"]).exists()
    assert processes_mentioning(str(inner.public)) == []
    # The watchdog also removed the run directory, which only the killed pytest knew about.
    assert inner.leftovers() == []


def test_a_run_that_never_asks_for_pglocks_starts_nothing(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_plain="""
        import os, sys, tempfile

        def test_plain():
            assert os.listdir(tempfile.gettempdir()) == []
            assert "psycopg" not in sys.modules
        """
    )
    # -p no:postgresql: pytest-postgresql, if installed, imports psycopg itself; this is
    # about what pytest-pglocks loads.
    inner.run("-n", "2", "-p", "no:postgresql").assert_outcomes(passed=1)
    inner.run("-p", "no:postgresql").assert_outcomes(passed=1)
    assert inner.leftovers() == []
    assert processes_mentioning(str(inner.public)) == []
