"""A run that never asks for a pglocks fixture loads none of the plugin's machinery."""

from __future__ import annotations

import pytest

import pytest_pglocks

# Modules a run without pglocks fixtures must not import: the drivers, the engine, the server.
HEAVY = [
    "psycopg",
    "sqlglot",
    "filelock",
    "testcontainers",
    "pytest_pglocks.session",
    "pytest_pglocks.monitor",
    "pytest_pglocks.assertions",
    "pytest_pglocks.handle",
    "pytest_pglocks.aio",
    "pytest_pglocks.gates",
    "pytest_pglocks.barriers",
    "pytest_pglocks.explore",
    "pytest_pglocks.isolation",
    "pytest_pglocks.server._shared",
    "pytest_pglocks.server._local",
    "pytest_pglocks._database",
]

CHECKING_CONFTEST = f"""
import sys

HEAVY = {HEAVY!r}

def pytest_sessionfinish(session):
    loaded = [name for name in HEAVY if name in sys.modules]
    print("loaded heavy modules:", loaded)
"""


def test_a_run_without_pglocks_fixtures_imports_no_heavy_module(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CHECKING_CONFTEST)
    pytester.makepyfile("def test_one():\n    assert 1 == 1\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:asyncio", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pglocks: *", "*loaded heavy modules: [[][]]"])


def test_the_check_sees_a_run_that_uses_the_plugin(pytester: pytest.Pytester) -> None:
    """The negative control: importing a public name loads its module."""
    pytester.makeconftest(CHECKING_CONFTEST)
    pytester.makepyfile("from pytest_pglocks import Session\n\ndef test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:asyncio", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*loaded heavy modules: [[]*'pytest_pglocks.session'*"])


@pytest.mark.parametrize("name", pytest_pglocks.__all__)
def test_every_public_name_is_importable_from_the_package(name: str) -> None:
    value = getattr(pytest_pglocks, name)
    assert getattr(value, "__name__", name) == name
    assert name in dir(pytest_pglocks)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        pytest_pglocks.nothing_here  # noqa: B018
