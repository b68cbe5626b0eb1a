"""A pytest plugin for the benchmark's pytest runs: ``-p bench.pytest_timing``.

It records how long each fixture's setup took (around the ``pytest_fixture_setup`` hook, so
a figure includes the fixtures that this one is the first to request) and the duration of
each test's setup, call and teardown phases, and writes them as JSON to the file named by
``BENCH_TIMING_FILE`` when the session ends (under pytest-xdist, the controller, which gets
the workers' test reports but not their fixture timings).
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest

FILE_VARIABLE = "BENCH_TIMING_FILE"

_fixtures: list[dict[str, Any]] = []
_phases: dict[str, dict[str, float]] = {}


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    started = perf_counter()
    try:
        return (yield)
    finally:
        _fixtures.append(
            {
                "fixture": fixturedef.argname,
                "test": request.node.nodeid,
                "seconds": perf_counter() - started,
            }
        )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _phases.setdefault(report.nodeid, {})[report.when] = report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(FILE_VARIABLE)
    if path and not hasattr(session.config, "workerinput"):  # the xdist controller writes
        Path(path).write_text(json.dumps({"fixtures": _fixtures, "tests": _phases}))
