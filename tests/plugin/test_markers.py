"""The markers: no_deadlock fails a test that saw 40P01; pglocks(...) sets limits or skips."""

from __future__ import annotations

import pytest
from fix_inner import Inner
from fix_messages import line_pattern

from pytest_pglocks import Server, errors

TABLE = "CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0)"


def test_no_deadlock_fails_a_test_that_caught_a_deadlock_and_passes_the_others(
    inner: Inner,
) -> None:
    inner.pytester.makepyfile(
        test_caught=f"""
        import psycopg, pytest
        from pytest_pglocks import assert_blocks

        def deadlock(pglocks):
            pglocks.execute({TABLE!r})
            s1, s2 = pglocks.sessions(2)
            s1.begin()
            s1.execute("UPDATE t SET v = 1 WHERE k = 1")
            s2.begin()
            s2.execute("UPDATE t SET v = 1 WHERE k = 2")
            waiting = s1.submit("UPDATE t SET v = 1 WHERE k = 2")
            assert_blocks(waiting, on=s2)
            closing = s2.submit("UPDATE t SET v = 1 WHERE k = 1")
            caught = 0
            for pending in (waiting, closing):
                try:
                    pending.result()
                except psycopg.errors.DeadlockDetected:
                    caught += 1  # the application retries, say
            assert caught == 1
            s1.rollback()
            s2.rollback()

        @pytest.mark.no_deadlock
        def test_marked_deadlock(pglocks):
            deadlock(pglocks)

        def test_unmarked_deadlock(pglocks):
            deadlock(pglocks)

        @pytest.mark.no_deadlock
        def test_marked_without_deadlock(pglocks):
            s1, s2 = pglocks.sessions(2)
            s1.execute("SELECT 1")
        """
    )
    result = inner.run("-rf")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_marked_deadlock _*",
            line_pattern(errors.DEADLOCK_SEEN),
            "deadlock: s? was chosen as the victim while running 'UPDATE t SET v = 1 WHERE k = ?'"
            " (test_caught.py:*)",
            "  s? (pid *) waits for ShareLock on transaction *; blocked by s? (pid *).",
            "  s? (pid *) waits for ShareLock on transaction *; blocked by s? (pid *).",
            "*- pglocks -*",
            "timeline:",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_caught.py::test_marked_deadlock - *"])


def test_a_version_condition_skips_the_test_naming_both_versions(
    inner: Inner, pglocks_server: Server
) -> None:
    major, version = pglocks_server.major, pglocks_server.version
    inner.pytester.makepyfile(
        test_versions=f"""
        import pytest

        @pytest.mark.pglocks(min_version={major})
        def test_new_enough(pglocks):
            assert pglocks.server.major == {major}

        @pytest.mark.pglocks(min_version="14.0", max_version={major})
        def test_in_range(pglocks):
            pass

        @pytest.mark.pglocks(min_version={major + 1})
        def test_needs_a_newer_major(pglocks):
            raise AssertionError("ran on too old a server")

        @pytest.mark.pglocks(min_version="{version}.1")
        def test_needs_a_newer_minor(pglocks):
            raise AssertionError("ran on too old a server")

        @pytest.mark.pglocks(max_version={major - 1})
        def test_needs_an_older_major(pglocks):
            raise AssertionError("ran on too new a server")
        """
    )
    result = inner.run("-rs")
    result.assert_outcomes(passed=2, skipped=3)
    result.stdout.fnmatch_lines_random(
        [
            f"SKIPPED [[]1[]] *: needs PostgreSQL >= {major + 1}, the server is {version}",
            f"SKIPPED [[]1[]] *: needs PostgreSQL >= {version}.1, the server is {version}",
            f"SKIPPED [[]1[]] *: needs PostgreSQL <= {major - 1}, the server is {version}",
        ]
    )


def test_a_bad_marker_argument_errors_that_test_alone(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_bad_markers="""
        import pytest

        @pytest.mark.pglocks(timeout="soon")
        def test_bad_timeout(pglocks):
            pass

        @pytest.mark.pglocks(deadlock_timeout="1h")
        def test_bad_deadlock_timeout(pglocks):
            pass

        @pytest.mark.pglocks(tiemout=1)
        def test_misspelt_argument(pglocks):
            pass

        @pytest.mark.pglocks(min_version="fifteen")
        def test_bad_version(pglocks):
            pass

        def test_unmarked(pglocks):
            pass

        @pytest.mark.pglocks(timeout=5)
        def test_good_marker(pglocks):
            pass
        """
    )
    result = inner.run("-rE")
    result.assert_outcomes(passed=2, errors=4)
    source = "@pytest.mark.pglocks"
    result.stdout.fnmatch_lines_random(
        [
            "ERROR test_bad_markers.py::test_bad_timeout - *",
            "ERROR test_bad_markers.py::test_bad_deadlock_timeout - *",
            "ERROR test_bad_markers.py::test_misspelt_argument - *",
            "ERROR test_bad_markers.py::test_bad_version - *",
            "@pytest.mark.pglocks: "
            + errors.BAD_SECONDS.format(value="soon", source=f"{source}(timeout=)"),
            "@pytest.mark.pglocks: "
            + errors.BAD_INTERVAL.format(value="1h", source=f"{source}(deadlock_timeout=)"),
            "@pytest.mark.pglocks: " + errors.BAD_MARKER_ARGUMENT.format(given="tiemout="),
            "@pytest.mark.pglocks: "
            + errors.BAD_MARKER_VERSION.format(value="fifteen", source=f"{source}(min_version=)"),
        ]
    )
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


def test_the_timeout_marker_limits_the_tests_waits(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_timeout="""
        import pytest
        from pytest_pglocks import assert_blocks

        @pytest.mark.pglocks(timeout=0.3)
        def test_slow(pglocks):
            s1 = pglocks.session()
            assert_blocks(s1.submit("SELECT pg_sleep(30)"))  # sleep-ok: slow statement
        """
    )
    result = inner.run("-rf", timeout=60)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * " + line_pattern(errors.NEVER_BLOCKED, limit=0.3).lstrip("*"),
            "*# s1 cancelled by pglocks",
        ]
    )


@pytest.mark.parametrize("marker", ["no_deadlock", "pglocks"])
def test_the_markers_are_registered_with_a_description(
    pytester: pytest.Pytester, marker: str
) -> None:
    result = pytester.runpytest("--markers", "-p", "no:asyncio")  # no pytest-asyncio warnings
    result.stdout.fnmatch_lines([f"@pytest.mark.{marker}*: *"])
