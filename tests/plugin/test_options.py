"""A bad pglocks setting stops the run before any test, naming the value and where it came from."""

from __future__ import annotations

import pytest
from fix_messages import pattern

from pytest_pglocks import errors

pytestmark = pytest.mark.usefixtures("clean_pglocks_env")


def assert_stops(pytester: pytest.Pytester, *args: str, template: str, **fields: object) -> None:
    """The run with ``args`` ends with a usage error reading ``template``, running no test."""
    __tracebackhide__ = True
    pytester.makepyfile("def test_never_runs(pglocks):\n    raise AssertionError\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + pattern(template, **fields)])
    result.stdout.no_fnmatch_line("*test_never_runs*")


def test_unsupported_major_on_the_command_line_stops_the_run(pytester: pytest.Pytester) -> None:
    assert_stops(
        pytester,
        "--pglocks-pg=13",
        template=errors.UNSUPPORTED_MAJOR,
        value="13",
        source="--pglocks-pg",
        major=13,
    )


def test_a_bad_version_in_the_environment_is_blamed_on_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGLOCKS_PG", "banana")
    assert_stops(pytester, template=errors.BAD_VERSION, value="banana", source="PGLOCKS_PG")


def test_a_bad_version_in_the_ini_file_is_blamed_on_the_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npglocks_pg = 13\n")
    assert_stops(
        pytester, template=errors.UNSUPPORTED_MAJOR, value="13", source="ini pglocks_pg", major=13
    )


def test_the_command_line_overrides_a_bad_environment_value(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGLOCKS_PG", "banana")
    pytester.makepyfile("def test_without_a_server():\n    pass\n")
    result = pytester.runpytest("--pglocks-pg=16", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pglocks: *16*--pglocks-pg*"])  # the header names the source


@pytest.mark.parametrize(
    ("args", "env", "template", "fields"),
    [
        (
            ["--pglocks-backend=podman"],
            {},
            errors.BAD_CHOICE,
            {"value": "podman", "source": "--pglocks-backend", "name": "backend"},
        ),
        (
            [],
            {"PGLOCKS_OFFLINE": "maybe"},
            errors.BAD_BOOL,
            {"value": "maybe", "source": "PGLOCKS_OFFLINE"},
        ),
        (
            ["--pglocks-dsn=host=db", "--pglocks-pg=16"],
            {},
            errors.DSN_AND_PG,
            {"dsn_source": "--pglocks-dsn", "pg_source": "--pglocks-pg"},
        ),
    ],
    ids=["backend", "offline", "dsn-and-pg"],
)
def test_other_bad_settings_stop_the_run_with_their_message(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    template: str,
    fields: dict[str, str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert_stops(pytester, *args, template=template, **fields)
