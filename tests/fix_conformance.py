"""Summing up the conformance tests: matched/total on this run's server, and their time.

With ``PGLT_CONFORMANCE_RECORD=FILE``, each differential result (``test_differential.py``) is
appended to FILE as a JSON line, for ``tests/conformance.py`` to make the table of.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from pytest_pglocks._keys import RUN_KEY

_results: list[tuple[str, float]] = []
_in_worker = False  # under xdist the controller records (it sees every worker's reports)


def pytest_configure(config: pytest.Config) -> None:
    global _in_worker
    _in_worker = hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    properties = dict(report.user_properties)
    record = os.environ.get("PGLT_CONFORMANCE_RECORD")
    if record and "differential" in properties and not _in_worker:
        with open(record, "a", encoding="utf-8") as file:
            file.write(json.dumps(properties["differential"]) + "\n")
    if "conformance" in properties:
        _results.append((properties["conformance"], float(properties["conformance_seconds"])))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _results or hasattr(config, "workerinput"):
        return
    matched = sum(1 for verdict, _ in _results if verdict == "match")
    seconds = sum(seconds for _, seconds in _results)
    server = config.stash[RUN_KEY].recorded_server()
    version = f"PostgreSQL {server.version}" if server else "the run's server"
    terminalreporter.write_line(
        f"conformance: {matched}/{len(_results)} isolation specs match PostgreSQL's expected "
        f"output on {version} ({seconds:.2f} s of spec runs)"
    )
