"""A server that dies in the middle of a run: one clear message, the same short one after it,
and its log kept for a look afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from fix_inner import Inner

DIES_MIDWAY = """
import os, signal
from pytest_pglocks.server._process import wait_exit

def test_passes_first(pglocks):
    pglocks.execute("SELECT 1")

def test_the_server_dies(pglocks, pglocks_server):
    s1 = pglocks.session("s1")
    s1.begin()
    s1.execute("DO $$ BEGIN RAISE WARNING 'evidence in the log'; END $$")
    postmaster = pglocks_server.process.postmaster_pid
    os.kill(postmaster, signal.SIGQUIT)  # an immediate shutdown: every backend ends first
    assert wait_exit(postmaster, 60)
    s1.execute("SELECT 2")

def test_after_it(pglocks):
    pass

def test_after_it_too(pglocks):
    pass
"""


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_a_server_that_dies_is_reported_once_with_its_log_kept(
    inner: Inner, workers: str | None
) -> None:
    inner.pytester.makepyfile(test_dies=DIES_MIDWAY)
    args = ["-n", workers, "-p", "no:randomly"] if workers else []
    result = inner.run(*args, "-p", "no:cacheprovider")
    output = result.stdout.str()
    if workers:  # which tests run before the server dies, and which first meets it, vary
        outcomes = result.parseoutcomes()
        met = outcomes["failed"] + outcomes.get("errors", 0)
        assert outcomes["failed"] == 1  # test_the_server_dies
        assert outcomes["passed"] + met == 4
        # Lines of the reports themselves (with CI=true pytest's summary repeats them whole).
        reports = [line for line in result.outlines if line.startswith("The PostgreSQL server")]
        assert len([line for line in reports if "The last lines of its log" in line]) == 1
        assert len([line for line in reports if "(see that test's failure)" in line]) == met - 1
    else:
        result.assert_outcomes(passed=1, failed=1, errors=2)
        result.stdout.fnmatch_lines(
            [  # pytest lists the errors before the failures
                "*_ ERROR at setup of test_after_it _*",
                "The PostgreSQL server of this run (*) stopped answering during "
                "test_dies.py::test_the_server_dies (see that test's failure); its log: *",
                "*_ test_the_server_dies _*",
                "The PostgreSQL server of this run (PostgreSQL *) stopped answering: its "
                "postmaster (pid *) exited. The last lines of its log (kept at *-server.log):",
                "*WARNING:  evidence in the log*",
            ]
        )
        assert "ERROR at teardown" not in output  # no second, raw traceback
    for raw in ("Traceback", "During handling", "AdminShutdown", "refused", "psycopg"):
        assert raw not in output
    result.stdout.fnmatch_lines(["pglocks: the server stopped answering during *; its log: *"])
    kept = Path(output.split("; its log: ")[-1].split()[0])
    assert kept.name.endswith("-server.log")
    assert "WARNING:  evidence in the log" in kept.read_text()
    assert kept.stat().st_mode & 0o077 == 0
    assert inner.leftovers() == [kept.name]  # nothing else: no server, no run directory
    kept.unlink()
