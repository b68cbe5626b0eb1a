"""Exploration throughput: ``explore()`` on the scenarios of examples/test_interleavings.py."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .blocking import plain_settings

if TYPE_CHECKING:
    from pytest_pglocks import Scenario
    from pytest_pglocks.server import Server

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "test_interleavings.py"


def _example() -> ModuleType:
    """The example module, loaded from its file (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_example_explore", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def explore_rates(server: Server, runs: int) -> dict[str, tuple[list[float], tuple[int, int]]]:
    """Interleavings per second of each scenario's ``explore()``, and (run, brute force).

    The rate is ``Exploration.per_second``: interleavings run over the time spent running
    them (what ``explore()`` reports), each run from a new scenario on one database.
    """
    from pytest_pglocks import Pglocks
    from pytest_pglocks._database import Databases

    example = _example()
    databases = Databases(server, f"{server.template.removesuffix('_template')}_explore")
    dbname = databases.create()
    handle = Pglocks(server, dbname, plain_settings(), _ispytest=True)
    builders: dict[str, Callable[[], Scenario]] = {
        "unsorted-key inserts": lambda: example.inserting(handle, [1, 2], [2, 1]),
        "counter, SELECT … FOR UPDATE": lambda: example.incrementing(
            handle, "READ COMMITTED", "SELECT n FROM counter FOR UPDATE"
        ),
    }
    results: dict[str, tuple[list[float], tuple[int, int]]] = {}
    try:
        for label, build in builders.items():
            rates: list[float] = []
            for _ in range(runs):
                scenario = build()
                exploration = scenario.explore()
                rates.append(exploration.per_second)
                scenario.close()
            results[label] = (rates, (exploration.run, exploration.brute_force))
    finally:
        handle._close()
        databases.drop(dbname)
        databases.close()
    return results
