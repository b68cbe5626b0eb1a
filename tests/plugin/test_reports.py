"""The "pglocks" section of a failed test's report: timeline, lock table, wait-for graph."""

from __future__ import annotations

import re

import pytest
from fix_inner import DEADLOCK_TEST, Inner

from pytest_pglocks import errors

IMPORTS = """\
import pytest
from pytest_pglocks import assert_blocks, expect_deadlock
"""

WRONG_BLOCKER = """
def test_wrong_blocker(pglocks):
    pglocks.execute("CREATE TABLE t (k int, v int); INSERT INTO t VALUES (1, 0)")
    s1, s2, s3 = pglocks.sessions(3)
    s1.begin()
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.submit("UPDATE t SET v = 2 WHERE k = 1")
    assert_blocks(s2, on=s3)
"""

PASSES_AND_EARLY_FAILURE = """
def test_passes(pglocks):
    pglocks.session().execute("SELECT 1")
    print("output of the passed test")

def test_fails_before_any_session(pglocks):
    raise AssertionError("no session yet")
"""

DEADLOCK_AND_LONG = (
    """
"""
    + DEADLOCK_TEST
    + """
def test_long(pglocks):
    s1 = pglocks.session()
    for n in range(30):
        s1.execute(f"SELECT {n}")
    raise AssertionError("after 60 events")
"""
)

# The line of test_events.py whose statement got the 40P01 (no_deadlock names it).
DEADLOCK_LINE = (IMPORTS + DEADLOCK_AND_LONG).splitlines().index(
    '        s2.execute("UPDATE t SET v = 1 WHERE k = 1")'
) + 1
COMPACT_NOTE = (
    "(compact report: notices, virtualxid and system catalog locks left out; use -v for all)"
)


def section(result: pytest.RunResult, test: str) -> str:
    """The "pglocks" section printed under the failure of ``test``."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"_+ {test} _+", line))
    header = next(i for i in range(start, len(lines)) if re.fullmatch(r"-+ pglocks -+", lines[i]))
    end = next(
        (
            i
            for i in range(header + 1, len(lines))
            if re.match(r"_{3,} |={3,}|-{3,} Captured |pglocks: PostgreSQL", lines[i])
        ),
        len(lines),
    )
    return "\n".join(lines[header + 1 : end]).rstrip("\n")


def normalise(text: str) -> str:
    """Durations, pids and transaction ids replaced by placeholders, the timeline's test lines
    left out (test_timeline_entries_name_the_test_line_they_belong_to checks them); columns to
    two spaces."""
    xids: dict[str, str] = {}

    def xid(match: re.Match[str]) -> str:
        return "transaction " + xids.setdefault(match[1], f"<xid{len(xids) + 1}>")

    text = re.sub(r"\d+(\.\d+)? ms", "<t> ms", text)
    text = re.sub(r"(?m)^( *<t> ms) {2}test_\w+\.py:\d+ +", r"\1  ", text)
    text = re.sub(r"virtual transaction \d+/\d+", "virtual transaction <vxid>", text)
    text = re.sub(r"transaction (\d+)", xid, text)
    text = re.sub(r"(?m)^(s\d +)\d+", r"\1<pid>", text)
    text = re.sub(r"\b(pid|process) \d+", r"\1 <pid>", text)
    return "\n".join(re.sub(r" {2,}", "  ", line).strip() for line in text.splitlines())


def test_a_failed_test_reports_its_timeline_locks_and_wait_for_graph(inner: Inner) -> None:
    source = IMPORTS + WRONG_BLOCKER + PASSES_AND_EARLY_FAILURE
    inner.pytester.makepyfile(test_report=source)
    sent_at = source.splitlines().index('    s2.submit("UPDATE t SET v = 2 WHERE k = 1")') + 1
    result = inner.run("-rP")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            f"E * assert_blocks: s2: 'UPDATE t SET v = 2 WHERE k = 1' (test_report.py:{sent_at}) "
            "is blocked by s1, not s3: s2 waits for ShareLock on transaction * held by s1",
        ]
    )
    assert normalise(section(result, "test_wrong_blocker")) == "\n".join(
        [
            "timeline:",
            "<t> ms  s1.begin()",
            "<t> ms  # s1 done",
            "<t> ms  s1.execute('UPDATE t SET v = 1 WHERE k = 1')",
            "<t> ms  # s1 done: UPDATE 1",
            "<t> ms  s2.submit('UPDATE t SET v = 2 WHERE k = 1')",
            "<t> ms  # s2 blocked: s2 waits for ShareLock on transaction <xid1> held by s1",
            "",
            "locks:",
            "session  pid  granted  mode  lock",
            "s2  <pid>  WAITING  ShareLock  transaction <xid1>",
            "s1  <pid>  yes  RowExclusiveLock  t",
            "s1  <pid>  yes  ExclusiveLock  transaction <xid1>",
            "s2  <pid>  yes  RowExclusiveLock  t",
            "s2  <pid>  yes  ExclusiveLock  transaction <xid2>",
            "s2  <pid>  yes  ExclusiveLock  tuple (0,1) of t",
            "",
            "wait-for graph:",
            "s2 waits for ShareLock on transaction <xid1> held by s1",
            "",
            COMPACT_NOTE,
        ]
    )
    # A test that failed before it used a session gets no (empty) pglocks section.
    early = result.stdout.str().split("_ test_fails_before_any_session _", 1)[1]
    assert "- pglocks -" not in early.split("short test summary info")[0]
    # -rP shows the sections of passed tests: a passed test has no pglocks section.
    passes = result.stdout.str().split("= PASSES =", 1)[1].split("short test summary info")[0]
    assert "output of the passed test" in passes
    assert "- pglocks -" not in passes


DETECTED = (
    "<t> ms  # s2 LOG: process <pid> detected deadlock while waiting for ShareLock on "
    "transaction <xid2> after <t> ms"
)


@pytest.mark.parametrize("verbose", [False, True], ids=["compact", "verbose"])
def test_notices_virtualxid_locks_and_old_events_show_only_in_the_verbose_report(
    inner: Inner, verbose: bool
) -> None:
    inner.pytester.makepyfile(test_events=IMPORTS + DEADLOCK_AND_LONG + WRONG_BLOCKER)
    result = inner.run(*(["-v"] if verbose else []))
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*_ test_deadlock _*",
            errors.DEADLOCK_SEEN.splitlines()[0],
            "deadlock: s2 was chosen as the victim while running 'UPDATE t SET v = 1 WHERE k = 1'"
            f" (test_events.py:{DEADLOCK_LINE})",
        ]
    )
    deadlock = normalise(section(result, "test_deadlock")).splitlines()
    long = normalise(section(result, "test_long")).splitlines()
    assert "<t> ms  # s2 error 40P01: deadlock detected" in deadlock
    assert "<t> ms  s1.execute('SELECT 29')" in long
    assert long[long.index("<t> ms  s1.execute('SELECT 29')") + 1] == "<t> ms  # s1 done: SELECT 1"
    wrong_blocker = normalise(section(result, "test_wrong_blocker"))
    virtualxid_rows = [
        f"{name}  <pid>  yes  ExclusiveLock  virtual transaction <vxid>" for name in ("s1", "s2")
    ]
    if verbose:
        assert all(row in wrong_blocker.splitlines() for row in virtualxid_rows)
        assert COMPACT_NOTE not in wrong_blocker
        assert DETECTED in deadlock
        # The server logs the detection before it sends the error; other sessions' notices
        # may come in between.
        assert deadlock.index(DETECTED) < deadlock.index(
            "<t> ms  # s2 error 40P01: deadlock detected"
        )
        assert long[1] == "<t> ms  s1.execute('SELECT 0')"
        assert not any("earlier events" in line for line in long)
    else:
        assert "virtual transaction" not in wrong_blocker
        assert wrong_blocker.endswith(COMPACT_NOTE)
        assert not any(" LOG: " in line for line in deadlock)
        assert long[1] == "... 35 earlier events (use -v to see all)"
        assert long[2:27] == [line for line in long[2:27] if line.startswith("<t> ms")]
        assert long[27] == ""
        assert "<t> ms  s1.execute('SELECT 0')" not in long


CATALOG_LOCKS = """
def test_catalog(pglocks):
    pglocks.execute("CREATE TABLE t (k int, v int); INSERT INTO t VALUES (1, 0)")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("SELECT count(*) FROM pg_authid")
    s1.execute("UPDATE t SET v = 1 WHERE k = 1")
    s2.submit("UPDATE t SET v = 2 WHERE k = 1")
    assert_blocks(s2, on=s1)
    raise AssertionError("look at the locks")
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["compact", "verbose"])
def test_system_catalog_locks_show_only_in_the_verbose_lock_table(
    inner: Inner, verbose: bool
) -> None:
    inner.pytester.makepyfile(test_catalog=IMPORTS + CATALOG_LOCKS)
    result = inner.run(*(["-v"] if verbose else []))
    result.assert_outcomes(failed=1)
    text = normalise(section(result, "test_catalog"))
    assert ("s1  <pid>  yes  AccessShareLock  pg_authid" in text.splitlines()) is verbose
    assert ("pg_authid" in text.split("\nlocks:\n")[1]) is verbose
    assert "s2  <pid>  WAITING  ShareLock  transaction <xid1>" in text.splitlines()


def test_an_expect_deadlock_failure_points_at_the_tests_line(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_expect="""
        from pytest_pglocks import expect_deadlock

        def test_no_deadlock_here(pglocks):
            s1 = pglocks.session()
            with expect_deadlock():
                s1.execute("SELECT 1")
        """
    )
    result = inner.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [">       with expect_deadlock():", "E * no session of this test got a deadlock*"]
    )
    result.stdout.fnmatch_lines(["test_expect.py:5: AssertionError"])
    assert "contextlib" not in result.stdout.str()


def test_a_cycle_left_open_shows_in_the_report(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_cycle="""
        import pytest
        from pytest_pglocks import assert_blocks

        @pytest.mark.pglocks(deadlock_timeout="60min")  # nobody breaks the cycle
        def test_cycle(pglocks):
            pglocks.execute("CREATE TABLE t (k int, v int); INSERT INTO t VALUES (1, 0), (2, 0)")
            s1, s2 = pglocks.sessions(2)
            s1.begin()
            s1.execute("UPDATE t SET v = 1 WHERE k = 1")
            s2.begin()
            s2.execute("UPDATE t SET v = 1 WHERE k = 2")
            assert_blocks(s1.submit("UPDATE t SET v = 1 WHERE k = 2"), on=s2)
            assert_blocks(s2.submit("UPDATE t SET v = 1 WHERE k = 1"), on=s1)
            raise AssertionError("look at the cycle")
        """
    )
    result = inner.run(timeout=60)
    result.assert_outcomes(failed=1)
    text = normalise(section(result, "test_cycle"))
    assert text.endswith(
        "\n".join(
            [
                "wait-for graph:",
                "s1 waits for ShareLock on transaction <xid1> held by s2",
                "s2 waits for ShareLock on transaction <xid2> held by s1",
                "cycle (deadlock): s1 waits for ShareLock on transaction <xid1> held by s2; "
                "s2 waits for ShareLock on transaction <xid2> held by s1",
                "",
                COMPACT_NOTE,
            ]
        )
    )
    assert "s1  <pid>  WAITING  ShareLock  transaction <xid1>" in text
    assert "s2  <pid>  WAITING  ShareLock  transaction <xid2>" in text


def test_a_statement_error_is_raised_at_the_users_line_with_the_session_named(
    inner: Inner,
) -> None:
    inner.pytester.makepyfile(
        test_error="""
        def test_duplicate(pglocks):
            pglocks.execute("CREATE TABLE t (k int PRIMARY KEY)")
            s1 = pglocks.session()
            s1.execute("INSERT INTO t VALUES (1)")
            s1.execute("INSERT INTO t VALUES (1)")
        """
    )
    result = inner.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       s1.execute("INSERT INTO t VALUES (1)")',
            "E       psycopg.errors.UniqueViolation: duplicate key value violates unique "
            'constraint "t_pkey"',
            "E       DETAIL:  Key (k)=(1) already exists.",
            "E       pglocks: raised in session s1 by 'INSERT INTO t VALUES (1)'",
            "",
            "test_error.py:5: UniqueViolation",
        ]
    )
    timeline = normalise(section(result, "test_duplicate")).split("\n\nlocks:")[0]
    assert timeline.splitlines()[-1] == (
        '<t> ms  # s1 error 23505: duplicate key value violates unique constraint "t_pkey"'
    )


GATE_AND_APPLICATION = """
import threading, psycopg

def test_held_at_a_gate(pglocks):
    pglocks.execute("CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)")
    gate = pglocks.gate("t", "before update")
    s1 = pglocks.session("s1")
    s1.submit("UPDATE t SET v = 1 WHERE k = 1")
    gate.wait_reached(s1)
    app = threading.Thread(target=lambda: psycopg.connect(
        pglocks.dsn, application_name="billing", autocommit=True
    ).execute("SELECT pg_advisory_lock(7), pg_advisory_lock(8)"))
    s2 = pglocks.session("s2")
    s2.execute("SELECT pg_advisory_lock(8)")
    app.start()
    billing = pglocks.observe("billing")
    assert_blocks(billing, on=s2)
    raise AssertionError("look at the report")
"""


def test_the_report_names_gates_and_observed_backends(inner: Inner) -> None:
    inner.pytester.makepyfile(test_gate=IMPORTS + GATE_AND_APPLICATION)
    result = inner.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*look at the report*",
            "*pglocks*",
            "billing * WAITING  ExclusiveLock * advisory lock 8",
            "s1 * WAITING  ShareLock * gate t before update",
            "wait-for graph:",
            "  billing waits for ExclusiveLock on advisory lock 8 held by s2",
            "gates:",
            "  t before update (closed): holds s1 (pid *)",
        ]
    )


MISUSE = """
def test_duplicate_names(pglocks):
    pglocks.sessions("a", "a")

def test_bad_parameter(pglocks):
    pglocks.session("s").set(no_such_parameter="1")
"""


def test_misuse_is_reported_at_the_tests_line_in_the_users_words(inner: Inner) -> None:
    inner.pytester.makepyfile(test_misuse=MISUSE)
    result = inner.run("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            '>       pglocks.sessions("a", "a")',
            "E       *PglocksError: a session named 'a' already exists in this test; *",
            "test_misuse.py:2: PglocksError",
            '>       pglocks.session("s").set(no_such_parameter="1")',
            'E       *UndefinedObject: unrecognized configuration parameter "no_such_parameter"',
            'E       pglocks: raised in session s by "SELECT pg_catalog.set_config('
            "'no_such_parameter', '1'*",
        ]
    )
    output = result.stdout.str()
    for internal in ("handle.py", "_context.py", "session.py", "%s"):
        assert internal not in output


def test_an_error_without_sqlstate_is_shown_without_one() -> None:
    from pytest_pglocks._report import timeline
    from pytest_pglocks._timeline import Event

    events = [
        Event(0.001, "s1", "sent", "SELECT 1", detail="execute"),
        Event(0.002, "s1", "error", "SELECT 1", detail="server closed the connection"),
        Event(0.003, "s2", "error", "SELECT 2", detail="division by zero", sqlstate="22012"),
    ]
    lines = timeline(events, verbose=True).splitlines()
    assert lines[1].endswith("# s1 error: server closed the connection")
    assert lines[2].endswith("# s2 error 22012: division by zero")
